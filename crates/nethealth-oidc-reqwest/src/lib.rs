//! # nethealth-oidc-reqwest
//!
//! The async transport of nethealth-oidc. It carries the `http::Request<Vec<u8>>` values that
//! `nethealth-oidc-core` builds and hands back `http::Response<Vec<u8>>` values for it to parse, over a
//! [`reqwest::Client`] on tokio.
//!
//! Every client it builds has these safety settings, including one built from the caller's
//! [`reqwest::ClientBuilder`]:
//! - redirects are off (reqwest follows them unless its policy is `none`; a redirect is an error in the core);
//! - a connect timeout, and one deadline on each whole attempt (connect, headers and body: a server that drips its
//!   headers or body is cut off at it); one [`HttpClient::send`], retries included, ends within
//!   [`TransportConfig::max_send_time`];
//! - a body limit, so that a hostile server cannot make the client read a gigabyte;
//! - retries with backoff and jitter only where [`RequestKind`] allows them (see
//!   [`nethealth_oidc_core::retry`]).
//!
//! Tracing spans carry the endpoint, method, host and path; never a query, a header or a body.

use std::sync::Arc;

use http::{Request, Response};
pub use nethealth_oidc_core::retry::TransportConfig;
use nethealth_oidc_core::retry::{Outcome, RequestKind};
use nethealth_oidc_core::{Endpoint, TransportError};
use tracing::Instrument;

pub use reqwest;

mod authorized;
mod callback;
mod device;
mod management;
mod provider;
mod session;
mod sessions;
mod start;
mod store;

pub use authorized::AuthorizedClient;
pub use nethealth_oidc_core::device::DeviceStep;
pub use nethealth_oidc_core::store::{SessionOptions, TokenHook};
pub use provider::{Client, Provider, SystemClock};
pub use session::Session;
pub use sessions::{Sessions, WeakSession};
pub use store::BlockingStore;

/// An async HTTP client with nethealth-oidc's safety settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    config: Arc<TransportConfig>,
}

impl HttpClient {
    /// A client with its own connection pool.
    pub fn new(config: TransportConfig) -> Result<Self, TransportError> {
        HttpClient::from_builder(reqwest::Client::builder(), config)
    }

    /// A client from the caller's builder (for proxies, custom CAs or mTLS), with the safety settings applied on
    /// top: redirects off and the configured timeouts.
    pub fn from_builder(
        builder: reqwest::ClientBuilder,
        config: TransportConfig,
    ) -> Result<Self, TransportError> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| TransportError::Io {
                endpoint: Endpoint::Discovery,
                reason: format!("could not build the HTTP client: {e}"),
            })?;
        Ok(HttpClient {
            client,
            config: Arc::new(config),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// The underlying client, for calls of the application's own.
    pub fn reqwest_client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` to `endpoint`, retrying as `kind` and the policy allow, and reads the body up to the limit.
    /// Ends within [`TransportConfig::max_send_time`], with a response or a typed error.
    pub async fn send(
        &self,
        endpoint: Endpoint,
        kind: RequestKind,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let span = tracing::debug_span!(
            "nethealth_oidc.http",
            ?endpoint,
            method = %request.method(),
            host = request.uri().host().unwrap_or(""),
            path = request.uri().path(),
        );
        async move {
            let mut attempt = 1;
            loop {
                let started = std::time::Instant::now();
                let result = self.send_once(endpoint, request.clone()).await;
                let elapsed_ms = started.elapsed().as_millis() as u64;
                match &result {
                    Ok(r) => {
                        tracing::debug!(
                            attempt,
                            status = r.status().as_u16(),
                            elapsed_ms,
                            "response"
                        )
                    }
                    Err(e) => tracing::debug!(attempt, error = %e, elapsed_ms, "no response"),
                }
                let delay = Outcome::of_result(&result).and_then(|outcome| {
                    self.config
                        .retry
                        .next_delay(kind, attempt, outcome, rand::random::<f64>())
                });
                let Some(delay) = delay else {
                    return result;
                };
                tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
        .instrument(span)
        .await
    }

    async fn send_once(
        &self,
        endpoint: Endpoint,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let limit = self.config.max_body_bytes;
        let request = reqwest::Request::try_from(request).map_err(|e| TransportError::Io {
            endpoint,
            reason: format!("the request could not be built: {e}"),
        })?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| self.classify(endpoint, e))?;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(TransportError::BodyTooLarge { endpoint, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.classify(endpoint, e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(TransportError::BodyTooLarge { endpoint, limit });
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = Response::new(body);
        *out.status_mut() = response.status();
        *out.version_mut() = response.version();
        *out.headers_mut() = std::mem::take(response.headers_mut());
        Ok(out)
    }

    fn classify(&self, endpoint: Endpoint, error: reqwest::Error) -> TransportError {
        if error.is_connect() {
            TransportError::Connect {
                endpoint,
                reason: source_chain(error),
            }
        } else if error.is_timeout() {
            TransportError::Timeout {
                endpoint,
                timeout: self.config.timeout,
            }
        } else {
            TransportError::Io {
                endpoint,
                reason: source_chain(error),
            }
        }
    }
}

/// The error and its sources in one line, without the URL (reqwest puts it in the message; ours may carry a query).
fn source_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
