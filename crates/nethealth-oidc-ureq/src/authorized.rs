//! [`AuthorizedClient`]: a ureq agent that sends the session's bearer token with every request.

use nethealth_oidc_core::resource::{ApiCall, Step};
use nethealth_oidc_core::{Endpoint, Error, TransportError};

use crate::Session;

/// A [`ureq::Agent`] bound to a [`Session`]: every request carries `Authorization: Bearer <token>`, with a token
/// that is valid when sent. When the API answers `401` with `WWW-Authenticate: Bearer error="invalid_token"`, the
/// session renews the token once (only if it still holds the refused token, so concurrent refusals cause one
/// renewal) and the request is sent once more with the new token; the refused token is never sent again. These
/// decisions are the core's (`nethealth_oidc_core::resource`); this type only sends.
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
        // Every decision is `core::resource`'s: this loop only sends (the request is a value: it always replays).
        let provider = self.session.client().provider();
        let nonces = self.session.client().context().dpop_nonces();
        let url = request.uri().to_string();
        let mut call = ApiCall::new(self.session.state(), nonces, request.method().clone(), &url);
        loop {
            match call.poll(provider.clock().now(), &mut rand::rng()) {
                Step::Credentials => call.handle_credentials(self.session.credentials()),
                Step::Send(send) => {
                    let mut request = request.clone();
                    send.apply(request.headers_mut());
                    call.handle_response(self.execute(request)?);
                }
                Step::Done(result) => return result,
            }
        }
    }

    fn execute(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<ureq::Body>, Error> {
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
