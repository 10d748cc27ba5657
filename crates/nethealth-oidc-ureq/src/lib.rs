//! # nethealth-oidc-ureq
//!
//! The blocking transport of nethealth-oidc. It carries the `http::Request<Vec<u8>>` values that
//! `nethealth-oidc-core` builds and hands back `http::Response<Vec<u8>>` values for it to parse, over a
//! [`ureq::Agent`]. It never starts an async runtime, so it is safe to call from anywhere, including from inside one.
//!
//! Every request goes out with these safety settings, whatever agent the caller brings:
//! - redirects are off (ureq follows ten by default; a redirect is an error in the core);
//! - 4xx and 5xx are responses, not errors (ureq's default `http_status_as_error` would hide the OAuth error body);
//! - a connect timeout, and one global deadline on each whole attempt (connect, headers and body: a server that
//!   drips its headers or body is cut off at it); one [`HttpClient::send`], retries included, ends within
//!   [`TransportConfig::max_send_time`];
//! - a body limit, so that a hostile server cannot make the client read a gigabyte;
//! - retries with backoff and jitter only where [`RequestKind`] allows them (see
//!   [`nethealth_oidc_core::retry`]).
//!
//! Tracing spans carry the endpoint, method, host and path; never a query, a header or a body.

use std::io;
use std::sync::Arc;

use http::{Request, Response};
pub use nethealth_oidc_core::retry::TransportConfig;
use nethealth_oidc_core::retry::{Outcome, RequestKind};
use nethealth_oidc_core::{Endpoint, TransportError};

pub use ureq;

mod authorized;
mod callback;
mod device;
mod management;
mod provider;
mod session;
mod sessions;
mod start;
mod traced;

pub use authorized::AuthorizedClient;
pub use nethealth_oidc_core::device::DeviceStep;
pub use nethealth_oidc_core::store::{SessionOptions, TokenHook};
pub use provider::{Client, Provider, SystemClock};
pub use session::Session;
pub use sessions::{Sessions, WeakSession};

/// A blocking HTTP client with nethealth-oidc's safety settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    config: Arc<TransportConfig>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(TransportConfig::default())
    }
}

impl HttpClient {
    /// A client with its own agent.
    pub fn new(config: TransportConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.connect_timeout))
            .build()
            .new_agent();
        HttpClient::with_agent(agent, config)
    }

    /// A client over the caller's agent (for proxies, custom CAs or mTLS). The safety settings are applied to each
    /// request on top of the agent's own configuration.
    pub fn with_agent(agent: ureq::Agent, config: TransportConfig) -> Self {
        HttpClient {
            agent,
            config: Arc::new(config),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// The underlying agent.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Sends `request` to `endpoint`, retrying as `kind` and the policy allow, and reads the body up to the limit.
    /// Ends within [`TransportConfig::max_send_time`], with a response or a typed error.
    pub fn send(
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
        let _entered = span.enter();
        let mut attempt = 1;
        loop {
            let started = std::time::Instant::now();
            let result = self.send_once(endpoint, request.clone());
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
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    fn send_once(
        &self,
        endpoint: Endpoint,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let limit = self.config.max_body_bytes;
        let request = self
            .agent
            .configure_request(request)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(self.config.timeout))
            .timeout_connect(Some(self.config.connect_timeout))
            .build();
        let response = self
            .agent
            .run(request)
            .map_err(|e| self.classify(endpoint, e))?;
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(TransportError::BodyTooLarge { endpoint, limit });
        }
        let (parts, mut body) = response.into_parts();
        let bytes = body
            .with_config()
            .limit(limit as u64)
            .read_to_vec()
            .map_err(|e| self.classify(endpoint, e))?;
        Ok(Response::from_parts(parts, bytes))
    }

    fn classify(&self, endpoint: Endpoint, error: ureq::Error) -> TransportError {
        use ureq::Error as E;
        match error {
            E::BodyExceedsLimit(_) => TransportError::BodyTooLarge {
                endpoint,
                limit: self.config.max_body_bytes,
            },
            E::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                TransportError::Connect {
                    endpoint,
                    reason: "connect timed out".into(),
                }
            }
            E::Timeout(_) => TransportError::Timeout {
                endpoint,
                timeout: self.config.timeout,
            },
            E::HostNotFound | E::ConnectionFailed => TransportError::Connect {
                endpoint,
                reason: error.to_string(),
            },
            E::Io(ref e) if is_connect_error(e) => TransportError::Connect {
                endpoint,
                reason: e.kind().to_string(),
            },
            E::Io(ref e) if e.kind() == io::ErrorKind::TimedOut => TransportError::Timeout {
                endpoint,
                timeout: self.config.timeout,
            },
            other => TransportError::Io {
                endpoint,
                reason: other.to_string(),
            },
        }
    }
}

fn is_connect_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
    )
}
