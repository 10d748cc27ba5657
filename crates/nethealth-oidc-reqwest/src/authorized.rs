//! [`AuthorizedClient`]: a reqwest client that sends the session's bearer token with every request.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use nethealth_oidc_core::dpop::{self, DpopKey};
use nethealth_oidc_core::secret::AccessToken;
use nethealth_oidc_core::userinfo::parse_www_authenticate_bearer;
use nethealth_oidc_core::{Endpoint, Error, ErrorCode, TransportError};

use crate::Session;

/// A [`reqwest::Client`] bound to a [`Session`]: every request carries `Authorization: Bearer <token>`, with a
/// token that is valid when sent. When the API answers `401` with `WWW-Authenticate: Bearer error="invalid_token"`,
/// the session renews the token once (only if it still holds the refused token, so concurrent refusals cause one
/// renewal) and the request is sent once more with the new token (if its body can be replayed); the refused token is
/// never sent again.
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
        let retry = request.try_clone();
        // The token is read once: the one sent is the one reported if the API refuses it.
        let (token, header) = self.session.credentials().await?;
        let response = self.execute(&client, request, &token, header).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED || !invalid_token(&response) {
            return Ok(response);
        }
        let Some(retry) = retry else {
            return Ok(response);
        };
        tracing::debug!("the API refused the access token as invalid; renewing it once");
        // Renews only if the session still holds the refused token (concurrent refusals cause one renewal).
        self.session.token_rejected(&token);
        let (fresh, header) = self.session.credentials().await?;
        if fresh.ct_eq(&token) {
            // Nothing new to send: the refused token is never sent again.
            return Ok(response);
        }
        self.execute(&client, retry, &fresh, header).await
    }

    /// Sends `request` with `token`: as a bearer token, or with a DPoP proof when the session's tokens are
    /// DPoP-bound, answering one `use_dpop_nonce` challenge with exactly one more request.
    async fn execute(
        &self,
        client: &reqwest::Client,
        request: reqwest::Request,
        token: &AccessToken,
        header: http::HeaderValue,
    ) -> Result<reqwest::Response, Error> {
        let Some(key) = self.session.state().dpop_key()? else {
            return execute(client, request, header).await;
        };
        let nonces = self.session.client().context().dpop_nonces();
        let url = request.url().clone();
        let retry = request.try_clone();
        let response = execute(client, self.prove(request, token, &key)?, header.clone()).await?;
        if !nonces.handle_response(&url, response.status(), response.headers(), b"") {
            return Ok(response);
        }
        let Some(retry) = retry else {
            return Ok(response);
        };
        tracing::debug!("the API asked for a DPoP nonce; sending once more with it");
        let response = execute(client, self.prove(retry, token, &key)?, header).await?;
        if nonces.handle_response(&url, response.status(), response.headers(), b"") {
            return Err(dpop::nonce_challenge_repeated(Endpoint::Resource).into());
        }
        Ok(response)
    }

    /// `request` with a fresh DPoP proof for `token`.
    fn prove(
        &self,
        mut request: reqwest::Request,
        token: &AccessToken,
        key: &DpopKey,
    ) -> Result<reqwest::Request, Error> {
        let nonces = self.session.client().context().dpop_nonces();
        let now = self.session.client().provider().clock().now();
        let proof = key.proof(
            request.method(),
            request.url(),
            Some(token),
            nonces.get(request.url()).as_deref(),
            now,
            &mut rand::rng(),
        )?;
        let proof = http::HeaderValue::from_str(&proof).expect("a compact JWS is printable ASCII");
        request.headers_mut().insert(dpop::DPOP, proof);
        Ok(request)
    }
}

async fn execute(
    client: &reqwest::Client,
    mut request: reqwest::Request,
    header: http::HeaderValue,
) -> Result<reqwest::Response, Error> {
    request.headers_mut().insert(AUTHORIZATION, header);
    client.execute(request).await.map_err(io_error)
}

fn invalid_token(response: &reqwest::Response) -> bool {
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
