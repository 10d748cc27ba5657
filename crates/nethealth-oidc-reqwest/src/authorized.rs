//! [`AuthorizedClient`]: a reqwest client that sends the session's bearer token with every request.

use nethealth_oidc_core::resource::{ApiCall, ResponseHead, Step};
use nethealth_oidc_core::{Endpoint, Error, TransportError};

use crate::Session;

/// A [`reqwest::Client`] bound to a [`Session`]: every request carries `Authorization: Bearer <token>`, with a
/// token that is valid when sent. When the API answers `401` with `WWW-Authenticate: Bearer error="invalid_token"`,
/// the session renews the token once (only if it still holds the refused token, so concurrent refusals cause one
/// renewal) and the request is sent once more with the new token (if its body can be replayed: if not, the `401` is
/// returned, and the next call has the renewed token); the refused token is never sent again. These decisions are
/// the core's (`nethealth_oidc_core::resource`); this type only sends.
///
/// With DPoP-bound tokens (`ClientOptions::with_dpop`), every request carries `Authorization: DPoP <token>` and a
/// fresh proof for its method and URL (with `ath`); a `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"` is
/// answered once with the server's nonce, and a second such challenge is the typed `use_dpop_nonce` error.
#[derive(Debug, Clone)]
pub struct AuthorizedClient {
    session: Session,
    client: reqwest::Client,
}

impl Session {
    /// An HTTP client for API calls with this session's token. Bring the `reqwest::Client` you call the API with
    /// (its proxy, TLS and timeout settings are kept).
    pub fn authorized(&self, client: reqwest::Client) -> AuthorizedClient {
        AuthorizedClient {
            session: self.clone(),
            client,
        }
    }
}

impl AuthorizedClient {
    /// A `GET` to `url`, to finish and pass to [`send`](Self::send).
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// A `POST` to `url`, to finish and pass to [`send`](Self::send).
    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Sends `request` with the bearer token; see the [type docs](Self) for the one retry on `invalid_token`.
    /// The response is returned whatever its status: a `403` with `error="insufficient_scope"` means the user did
    /// not grant a scope this call needs (check [`Session::allows`] first).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        let (client, request) = request.build_split();
        let request = request.map_err(io_error)?;
        // Every decision is `core::resource`'s: this loop only sends, keeping the request and a copy to replay.
        let replay = request.try_clone();
        let provider = self.session.client().provider();
        let nonces = self.session.client().context().dpop_nonces();
        let (method, url) = (request.method().clone(), request.url().as_str());
        let mut call = ApiCall::new(self.session.state(), nonces, method, url);
        let mut first = Some(request);
        loop {
            // The thread's RNG is dropped before any await: the future stays `Send`.
            let step = call.poll(provider.clock().now(), &mut rand::rng());
            match step {
                Step::Credentials => call.handle_credentials(self.session.credentials().await),
                Step::Send(send) => {
                    let Some(mut request) = first.take().or_else(|| replay.as_ref()?.try_clone())
                    else {
                        call.handle_cannot_replay();
                        continue;
                    };
                    send.apply(request.headers_mut());
                    let response = client.execute(request).await.map_err(io_error)?;
                    call.handle_response(Answer(response));
                }
                Step::Done(result) => return result.map(|Answer(response)| response),
            }
        }
    }
}

/// A reqwest response as the core reads it.
struct Answer(reqwest::Response);

impl ResponseHead for Answer {
    fn status(&self) -> http::StatusCode {
        self.0.status()
    }

    fn headers(&self) -> &http::HeaderMap {
        self.0.headers()
    }
}

fn io_error(e: reqwest::Error) -> Error {
    // The URL may carry a query with secrets: name only where the call went.
    let place = e
        .url()
        .map(|url| format!(" (to {}{})", url.host_str().unwrap_or(""), url.path()));
    let e = e.without_url();
    let reason = format!("{e}{}", place.unwrap_or_default());
    let endpoint = Endpoint::Resource;
    Error::Transport(if e.is_connect() {
        TransportError::Connect { endpoint, reason }
    } else {
        TransportError::Io { endpoint, reason }
    })
}
