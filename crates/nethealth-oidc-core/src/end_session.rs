//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the URL to send the browser to, and the check of
//! the redirect back.
//!
//! IdentityServer3 serves this at `connect/endsession`. It redirects back to `post_logout_redirect_uri` only when
//! an `id_token_hint` is given and the URI is registered for the client. The ID token then travels in the URL, so it
//! can end up in the provider's access logs; it is expired or about to be, and it grants no access.

use url::Url;

use crate::secret::{IdToken, State, ct_eq_str};

/// The parameters of a logout request. All are optional; build with [`EndSessionParams::new`] and the `with_*`
/// methods.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct EndSessionParams<'a> {
    /// `id_token_hint`: the ID token of the session to end (recommended).
    pub id_token_hint: Option<&'a IdToken>,
    /// `post_logout_redirect_uri`: where to come back to; must be registered.
    pub post_logout_redirect_uri: Option<&'a Url>,
    /// `state`: echoed on the way back.
    pub state: Option<&'a State>,
    /// `client_id`: needed when there is no `id_token_hint` and a redirect URI is given.
    pub client_id: Option<&'a str>,
    /// `ui_locales`: the languages for the logout page, space-separated.
    pub ui_locales: Option<&'a str>,
    /// `logout_hint`: which user is logging out.
    pub logout_hint: Option<&'a str>,
}

impl<'a> EndSessionParams<'a> {
    /// No parameters.
    pub fn new() -> Self {
        EndSessionParams::default()
    }

    /// Sets `id_token_hint`.
    pub fn with_id_token_hint(mut self, id_token: &'a IdToken) -> Self {
        self.id_token_hint = Some(id_token);
        self
    }

    /// Sets `post_logout_redirect_uri`.
    pub fn with_post_logout_redirect_uri(mut self, uri: &'a Url) -> Self {
        self.post_logout_redirect_uri = Some(uri);
        self
    }

    /// Sets `state`.
    pub fn with_state(mut self, state: &'a State) -> Self {
        self.state = Some(state);
        self
    }

    /// Sets `client_id`.
    pub fn with_client_id(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// Sets `ui_locales`.
    pub fn with_ui_locales(mut self, ui_locales: &'a str) -> Self {
        self.ui_locales = Some(ui_locales);
        self
    }

    /// Sets `logout_hint`.
    pub fn with_logout_hint(mut self, hint: &'a str) -> Self {
        self.logout_hint = Some(hint);
        self
    }
}

/// The URL of `end_session_endpoint` with the logout parameters added (existing query parameters are kept).
pub fn end_session_url(end_session_endpoint: &Url, params: &EndSessionParams<'_>) -> Url {
    let pairs = [
        (
            "id_token_hint",
            params.id_token_hint.map(IdToken::expose_secret),
        ),
        (
            "post_logout_redirect_uri",
            params.post_logout_redirect_uri.map(Url::as_str),
        ),
        ("state", params.state.map(State::expose_secret)),
        ("client_id", params.client_id),
        ("ui_locales", params.ui_locales),
        ("logout_hint", params.logout_hint),
    ];
    let mut url = end_session_endpoint.clone();
    if pairs.iter().any(|(_, v)| v.is_some()) {
        url.query_pairs_mut()
            .extend_pairs(pairs.iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    }
    url
}

/// Why the redirect back from logout was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndSessionError {
    /// The `state` sent is missing from the redirect.
    #[error(
        "the logout redirect carries no state although one was sent: ignore it (it was not caused by this app)"
    )]
    MissingState,
    /// The `state` differs, or appears twice.
    #[error(
        "the logout redirect's state is not the one sent: ignore it (it was not caused by this app)"
    )]
    WrongState,
}

/// Checks the browser's redirect back to `post_logout_redirect_uri`: the `state` must be the one sent (compared in
/// constant time). The local session should be cleared whatever this says; this only tells whether the redirect was
/// caused by this app.
pub fn check_post_logout_redirect(
    redirect: &Url,
    sent_state: &State,
) -> Result<(), EndSessionError> {
    let mut states = redirect
        .query_pairs()
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v);
    match (states.next(), states.next()) {
        (None, _) => Err(EndSessionError::MissingState),
        (Some(got), None) if ct_eq_str(&got, sent_state.expose_secret()) => Ok(()),
        _ => Err(EndSessionError::WrongState),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_url() {
        let ep = Url::parse("https://accounts.example.com/connect/endsession?tenant=a").unwrap();
        let back = Url::parse("https://app.example.com/signed-out?x=1").unwrap();
        let idt = IdToken::new("h.p.s");
        let st = State::new("st&1");
        let url = end_session_url(
            &ep,
            &EndSessionParams::new()
                .with_id_token_hint(&idt)
                .with_post_logout_redirect_uri(&back)
                .with_state(&st)
                .with_client_id("c 1")
                .with_ui_locales("en fr"),
        );
        assert_eq!(
            url.as_str(),
            "https://accounts.example.com/connect/endsession?tenant=a&id_token_hint=h.p.s&post_logout_redirect_uri=\
             https%3A%2F%2Fapp.example.com%2Fsigned-out%3Fx%3D1&state=st%261&client_id=c+1&ui_locales=en+fr"
        );
        let bare = end_session_url(
            &Url::parse("https://a.example/end").unwrap(),
            &EndSessionParams::new(),
        );
        assert_eq!(bare.as_str(), "https://a.example/end");
    }

    #[test]
    fn checks_state() {
        let st = State::new("abc");
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            check_post_logout_redirect(&u("https://app/x?state=abc"), &st),
            Ok(())
        );
        assert_eq!(
            check_post_logout_redirect(&u("https://app/x"), &st),
            Err(EndSessionError::MissingState)
        );
        assert_eq!(
            check_post_logout_redirect(&u("https://app/x?state=abd"), &st),
            Err(EndSessionError::WrongState)
        );
        assert_eq!(
            check_post_logout_redirect(&u("https://app/x?state=abc&state=abc"), &st),
            Err(EndSessionError::WrongState)
        );
    }
}
