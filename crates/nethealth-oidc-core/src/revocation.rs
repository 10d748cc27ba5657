//! Token revocation (RFC 7009): the request and its parser. Client authentication is the token endpoint's.
//!
//! Revoke the refresh token at logout: at IdentityServer3 that also ends the grant. The provider answers 200
//! whether or not the token was valid (RFC 7009 §2.2), so success says only that the provider no longer honours it.

use http::{Request, Response};
use url::Url;

use crate::client::ClientConfig;
use crate::client_auth::{self, ClientAuth, RequestStamp};
use crate::error::{Endpoint, ResponseError};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::TokenRequestError;
use crate::wire;

/// A token to revoke or introspect, which also names its `token_type_hint`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum TokenRef<'a> {
    /// An access token (`token_type_hint=access_token`).
    Access(&'a AccessToken),
    /// A refresh token (`token_type_hint=refresh_token`).
    Refresh(&'a RefreshToken),
}

impl TokenRef<'_> {
    /// The token itself.
    pub(crate) fn secret(&self) -> &str {
        match self {
            TokenRef::Access(t) => t.expose_secret(),
            TokenRef::Refresh(t) => t.expose_secret(),
        }
    }

    /// The RFC 7009 `token_type_hint`.
    pub fn hint(&self) -> &'static str {
        match self {
            TokenRef::Access(_) => "access_token",
            TokenRef::Refresh(_) => "refresh_token",
        }
    }
}

/// Builds an RFC 7009 form-POST with `token`, `token_type_hint` and the client authentication of the token
/// endpoint ([`client_auth::form_request`]).
pub(crate) fn token_form_request(
    endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    token: TokenRef<'_>,
    stamp: &RequestStamp,
) -> Result<Request<Vec<u8>>, TokenRequestError> {
    client_auth::form_request(
        endpoint,
        client,
        auth,
        &[("token", token.secret()), ("token_type_hint", token.hint())],
        stamp,
    )
}

/// Builds the revocation request for `token`, authenticated by `auth` (see [`ClientConfig`]).
pub fn revocation_request(
    endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    token: TokenRef<'_>,
    stamp: &RequestStamp,
) -> Result<Request<Vec<u8>>, TokenRequestError> {
    token_form_request(endpoint, client, auth, token, stamp)
}

/// Parses the revocation answer: 200 is success (the body is ignored); an error body such as
/// `unsupported_token_type` is [`ResponseError::OAuth`]; a 503 is transient ([`ResponseError::is_transient`]).
pub fn parse_revocation(response: &Response<Vec<u8>>) -> Result<(), ResponseError> {
    wire::check_status(Endpoint::Revocation, response)
}

#[cfg(test)]
mod tests {
    use crate::client::TokenAuthMethod;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::error::ErrorCode;
    use crate::secret::ClientSecret;

    fn endpoint() -> Url {
        Url::parse("https://accounts.example.com/connect/revocation").unwrap()
    }

    #[test]
    fn basic_auth_encodes_before_base64() {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded.
        let client = ClientConfig::new("my client", Some(ClientSecret::new("p@ss:w/rd")));
        let rt = RefreshToken::new("rt-1");
        let r = revocation_request(
            &endpoint(),
            &client,
            &ClientAuth::new(TokenAuthMethod::ClientSecretBasic),
            TokenRef::Refresh(&rt),
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        let auth = &r.headers()[http::header::AUTHORIZATION];
        assert!(auth.is_sensitive());
        assert_eq!(
            auth,
            &format!("Basic {}", STANDARD.encode("my+client:p%40ss%3Aw%2Frd"))
        );
        assert_eq!(r.body(), b"token=rt-1&token_type_hint=refresh_token");
        assert_eq!(r.method(), http::Method::POST);
    }

    #[test]
    fn post_and_none_auth() {
        let client = ClientConfig::new("c", Some(ClientSecret::new("s&s")));
        let at = AccessToken::new("at 1");
        let r = revocation_request(
            &endpoint(),
            &client,
            &ClientAuth::new(TokenAuthMethod::ClientSecretPost),
            TokenRef::Access(&at),
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert_eq!(
            r.body(),
            b"token=at+1&token_type_hint=access_token&client_id=c&client_secret=s%26s"
        );
        assert!(r.headers().get(http::header::AUTHORIZATION).is_none());
        let r = revocation_request(
            &endpoint(),
            &client,
            &ClientAuth::new(TokenAuthMethod::None),
            TokenRef::Access(&at),
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert_eq!(
            r.body(),
            b"token=at+1&token_type_hint=access_token&client_id=c"
        );
        let public = ClientConfig::new("c", None);
        assert_eq!(
            revocation_request(
                &endpoint(),
                &public,
                &ClientAuth::new(TokenAuthMethod::ClientSecretBasic),
                TokenRef::Access(&at),
                &crate::client_auth::RequestStamp::new_inner(
                    crate::time::UnixTime::from_secs(0),
                    "jti"
                )
            )
            .unwrap_err(),
            TokenRequestError::MissingSecret {
                method: TokenAuthMethod::ClientSecretBasic
            }
        );
    }

    #[test]
    fn answers() {
        let resp = |status: u16, body: &str| {
            Response::builder()
                .status(status)
                .body(body.as_bytes().to_vec())
                .unwrap()
        };
        assert_eq!(parse_revocation(&resp(200, "")), Ok(()));
        let e = parse_revocation(&resp(400, r#"{"error":"unsupported_token_type"}"#)).unwrap_err();
        assert_eq!(
            e.oauth_error().unwrap().code,
            ErrorCode::UnsupportedTokenType
        );
        assert!(parse_revocation(&resp(503, "")).unwrap_err().is_transient());
    }
}
