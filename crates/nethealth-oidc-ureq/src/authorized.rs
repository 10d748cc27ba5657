//! [`AuthorizedClient`]: a ureq agent that sends the session's bearer token with every request.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use nethealth_oidc_core::dpop::{self, DpopError};
use nethealth_oidc_core::secret::AccessToken;
use nethealth_oidc_core::userinfo::parse_www_authenticate_bearer;
use nethealth_oidc_core::{Endpoint, Error, ErrorCode, TransportError};

use crate::Session;

/// A [`ureq::Agent`] bound to a [`Session`]: every request carries `Authorization: Bearer <token>`, with a token
/// that is valid when sent. When the API answers `401` with `WWW-Authenticate: Bearer error="invalid_token"`, the
/// session renews the token once (only if it still holds the refused token, so concurrent refusals cause one
/// renewal) and the request is sent once more with the new token; the refused token is never sent again.
///
/// Requests are `http::Request<Vec<u8>>` values, so the body can always be replayed; 4xx and 5xx come back as
/// responses, not errors, whatever the agent's own settings.
///
/// With DPoP-bound tokens (`ClientOptions::with_dpop`), every request carries `Authorization: DPoP <token>` and a
/// fresh proof for its method and URL (with `ath`); a `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"` is
/// answered once with the server's nonce, and a second such challenge is the typed `use_dpop_nonce` error.
#[derive(Debug, Clone)]
pub struct AuthorizedClient {
    session: Session,
    agent: ureq::Agent,
}

impl Session {
    /// An HTTP client for API calls with this session's token. Bring the agent you call the API with (its proxy
    /// and TLS settings are kept).
    pub fn authorized(&self, agent: ureq::Agent) -> AuthorizedClient {
        AuthorizedClient {
            session: self.clone(),
            agent,
        }
    }
}

impl AuthorizedClient {
    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Sends `request` with the bearer token; see the [type docs](Self) for the one retry on `invalid_token`. The
    /// response is returned whatever its status: a `403` with `error="insufficient_scope"` means the user did not
    /// grant a scope this call needs (check [`Session::allows`] first).
    pub fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<ureq::Body>, Error> {
        // The token is read once: the one sent is the one reported if the API refuses it.
        let (token, header) = self.session.credentials()?;
        let response = self.execute_as(request.clone(), &token, header.clone())?;
        if response.status() != http::StatusCode::UNAUTHORIZED || !invalid_token(&response) {
            return Ok(response);
        }
        tracing::debug!("the API refused the access token as invalid; renewing it once");
        // Renews only if the session still holds the refused token (concurrent refusals cause one renewal).
        self.session.token_rejected(&token);
        let (fresh, header) = self.session.credentials()?;
        if fresh.ct_eq(&token) {
            // Nothing new to send: the refused token is never sent again.
            return Ok(response);
        }
        self.execute_as(request, &fresh, header)
    }

    /// Sends `request` with `token`: as a bearer token, or with a DPoP proof when the session's tokens are
    /// DPoP-bound, answering one `use_dpop_nonce` challenge with exactly one more request.
    fn execute_as(
        &self,
        request: http::Request<Vec<u8>>,
        token: &AccessToken,
        header: http::HeaderValue,
    ) -> Result<http::Response<ureq::Body>, Error> {
        let Some(key) = self.session.state().dpop_key()? else {
            return self.execute(request, header);
        };
        let context = self.session.client().context();
        let nonces = context.dpop_nonces();
        let url = url::Url::parse(&request.uri().to_string())
            .map_err(|_| DpopError::BadUrl(request.uri().to_string()))?;
        let clock = self.session.client().provider().clock();
        let signed = key.sign(&request, Some(token), nonces, clock.now(), &mut rand::rng())?;
        let response = self.execute(signed, header.clone())?;
        if !nonces.handle_response(&url, response.status(), response.headers(), b"") {
            return Ok(response);
        }
        tracing::debug!("the API asked for a DPoP nonce; sending once more with it");
        let signed = key.sign(&request, Some(token), nonces, clock.now(), &mut rand::rng())?;
        let response = self.execute(signed, header)?;
        if nonces.handle_response(&url, response.status(), response.headers(), b"") {
            return Err(dpop::nonce_challenge_repeated(Endpoint::Resource).into());
        }
        Ok(response)
    }

    fn execute(
        &self,
        mut request: http::Request<Vec<u8>>,
        header: http::HeaderValue,
    ) -> Result<http::Response<ureq::Body>, Error> {
        request.headers_mut().insert(AUTHORIZATION, header);
        let place = format!(
            " (to {}{})",
            request.uri().host().unwrap_or(""),
            request.uri().path()
        );
        let request = self
            .agent
            .configure_request(request)
            .http_status_as_error(false)
            .build();
        self.agent.run(request).map_err(|e| {
            let endpoint = Endpoint::Resource;
            let reason = format!("{e}{place}");
            Error::Transport(match e {
                ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                    TransportError::Connect { endpoint, reason }
                }
                ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                    TransportError::Connect { endpoint, reason }
                }
                _ => TransportError::Io { endpoint, reason },
            })
        })
    }
}

fn invalid_token(response: &http::Response<ureq::Body>) -> bool {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(parse_www_authenticate_bearer)
        .any(|c| {
            c.error
                .as_ref()
                .is_some_and(|e| *e == ErrorCode::InvalidToken)
        })
}
