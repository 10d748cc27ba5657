//! When to retry a request: a pure policy that both transports follow.
//!
//! Only requests that are safe to repeat are retried after they may have reached the server: discovery, JWKS and
//! userinfo ([`RequestKind::Idempotent`]). A code exchange or a refresh ([`RequestKind::OneShot`]) is retried only when
//! the connection was never made, because a rotated refresh token can be spent only once: sending it twice can log
//! the user out.
//!
//! The policy draws no randomness and reads no clock: the caller passes a jitter value in `[0, 1)`.

use std::time::Duration;

use http::Response;
use http::header::RETRY_AFTER;

/// Whether a request may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Safe to repeat (GET of discovery, JWKS, userinfo; revocation too, which RFC 7009 makes idempotent).
    Idempotent,
    /// Must not be repeated once it may have reached the server (code exchange, refresh, registration).
    OneShot,
}

/// What happened on one attempt, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The connection could not be made: the request never reached the server.
    ConnectFailed,
    /// The request may have reached the server, but no full response came back (timeout, reset, bad body).
    NoResponse,
    /// A response with this status and, when sent, a `Retry-After` in seconds.
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, in seconds, when it was sent as a number.
        retry_after: Option<u64>,
    },
}

impl Outcome {
    /// The outcome of a response.
    pub fn of_response<B>(response: &Response<B>) -> Outcome {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Outcome::Status {
            status: response.status().as_u16(),
            retry_after,
        }
    }
}

impl Outcome {
    /// The outcome of one attempt as a transport saw it; `None` when retrying is pointless whatever the policy
    /// (a body over the limit will be over it again).
    pub fn of_result<B>(
        result: &Result<Response<B>, crate::error::TransportError>,
    ) -> Option<Outcome> {
        use crate::error::TransportError;
        match result {
            Ok(response) => Some(Outcome::of_response(response)),
            Err(e) if e.never_sent() => Some(Outcome::ConnectFailed),
            Err(TransportError::BodyTooLarge { .. }) => None,
            Err(_) => Some(Outcome::NoResponse),
        }
    }
}

/// Retries with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many attempts in all, the first included. `1` turns retrying off.
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles each time.
    pub base_delay: Duration,
    /// The longest wait between attempts. A `Retry-After` longer than this is not waited for: the error goes back
    /// to the caller instead of hanging.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub const NEVER: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// After attempt number `attempt` (1-based) ended in `outcome`, how long to wait before the next one; `None`
    /// means do not retry. `jitter` is a number in `[0, 1)` that the caller draws; values outside are clamped.
    pub fn next_delay(
        &self,
        kind: RequestKind,
        attempt: u32,
        outcome: Outcome,
        jitter: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let retryable = match (kind, outcome) {
            (_, Outcome::ConnectFailed) => true,
            (RequestKind::OneShot, _) => false,
            (RequestKind::Idempotent, Outcome::NoResponse) => true,
            (RequestKind::Idempotent, Outcome::Status { status, .. }) => {
                status == 429 || (500..600).contains(&status)
            }
        };
        if !retryable {
            return None;
        }
        if let Outcome::Status {
            retry_after: Some(secs),
            ..
        } = outcome
        {
            let wanted = Duration::from_secs(secs);
            return (wanted <= self.max_delay).then_some(wanted);
        }
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_delay);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.5
        };
        // Full jitter, but never less than half the backoff, so that retries do not bunch at zero.
        Some(cap.mul_f64(0.5 + jitter / 2.0))
    }
}

/// Timeouts, the body limit and the retry policy.
///
/// # How long one request can take
///
/// Each attempt is a single deadline, `timeout`, that covers everything: connecting, sending, waiting for and
/// reading the response headers, and reading the body. A server that sends its headers or its body one byte a
/// second, or a body that never ends, is cut off at `timeout` like one that says nothing; the per-read timeouts that
/// such a server would keep resetting are not what bounds the request. At most `retry.max_attempts` attempts are
/// made, with at most `retry.max_delay` between two (a `Retry-After` that asks for longer is not waited for). So one
/// send of either transport ends, with a response or a typed error, within
///
/// ```text
/// max_attempts × timeout + (max_attempts − 1) × max_delay        (defaults: 3 × 30 s + 2 × 10 s = 110 s)
/// ```
///
/// which [`max_send_time`](Self::max_send_time) computes. A one-shot request (code exchange, refresh) is retried
/// only when the connection was never made, so it usually ends within `timeout`. Memory is bounded the same way: a
/// body is read up to `max_body_bytes` and refused, not truncated, past it (a larger `Content-Length` is refused
/// before any of the body is read).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportConfig {
    /// One attempt, all of it: connect, request, headers and body. Default 30 s. See the [type docs](Self) for the
    /// bound of a whole send, retries included.
    pub timeout: Duration,
    /// Making the connection, TLS included (within `timeout`). Default 10 s.
    pub connect_timeout: Duration,
    /// The largest body read, in bytes. Default 1 MiB; larger bodies are refused, not truncated.
    pub max_body_bytes: usize,
    /// When to retry.
    pub retry: RetryPolicy,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

impl TransportConfig {
    /// Sets the overall timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the body limit.
    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The longest one send can take, retries and the waits between them included:
    /// `max_attempts × timeout + (max_attempts − 1) × max_delay` (see the [type docs](Self)). Saturates.
    pub fn max_send_time(&self) -> Duration {
        let attempts = self.retry.max_attempts.max(1);
        self.timeout
            .saturating_mul(attempts)
            .saturating_add(self.retry.max_delay.saturating_mul(attempts - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
    };

    fn status(status: u16, retry_after: Option<u64>) -> Outcome {
        Outcome::Status {
            status,
            retry_after,
        }
    }

    #[test]
    fn one_shot_requests_retry_only_when_never_sent() {
        assert!(
            P.next_delay(RequestKind::OneShot, 1, Outcome::ConnectFailed, 0.0)
                .is_some()
        );
        assert_eq!(
            P.next_delay(RequestKind::OneShot, 1, Outcome::NoResponse, 0.0),
            None
        );
        assert_eq!(
            P.next_delay(RequestKind::OneShot, 1, status(503, None), 0.0),
            None
        );
        assert_eq!(
            P.next_delay(RequestKind::OneShot, 1, status(429, Some(1)), 0.0),
            None
        );
    }

    #[test]
    fn idempotent_requests_retry_on_5xx_429_and_timeouts() {
        for o in [
            status(500, None),
            status(503, None),
            status(429, None),
            Outcome::NoResponse,
        ] {
            assert!(
                P.next_delay(RequestKind::Idempotent, 1, o, 0.3).is_some(),
                "{o:?}"
            );
        }
        for o in [
            status(400, None),
            status(401, None),
            status(404, None),
            status(200, None),
            status(302, None),
        ] {
            assert_eq!(
                P.next_delay(RequestKind::Idempotent, 1, o, 0.3),
                None,
                "{o:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let d = |attempt, j| {
            P.next_delay(RequestKind::Idempotent, attempt, status(503, None), j)
                .unwrap()
        };
        assert_eq!(d(1, 0.0), Duration::from_millis(50));
        assert_eq!(d(1, 1.0), Duration::from_millis(100));
        assert_eq!(d(2, 1.0), Duration::from_millis(200));
        assert_eq!(d(3, 1.0), Duration::from_millis(400));
        assert_eq!(
            P.next_delay(RequestKind::Idempotent, 4, status(503, None), 1.0),
            None
        );
        let big = RetryPolicy {
            max_attempts: u32::MAX,
            ..P
        };
        assert_eq!(
            big.next_delay(RequestKind::Idempotent, 200, status(503, None), f64::NAN),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn results_are_classified() {
        use crate::error::{Endpoint, TransportError};
        let ok: Result<Response<()>, TransportError> =
            Ok(Response::builder().status(503).body(()).unwrap());
        assert_eq!(Outcome::of_result(&ok), Some(status(503, None)));
        let err = |e| -> Result<Response<()>, TransportError> { Err(e) };
        let endpoint = Endpoint::Jwks;
        let refused = TransportError::Connect {
            endpoint,
            reason: "refused".into(),
        };
        assert_eq!(
            Outcome::of_result(&err(refused)),
            Some(Outcome::ConnectFailed)
        );
        let slow = TransportError::Timeout {
            endpoint,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(Outcome::of_result(&err(slow)), Some(Outcome::NoResponse));
        let huge = TransportError::BodyTooLarge {
            endpoint,
            limit: 10,
        };
        assert_eq!(Outcome::of_result(&err(huge)), None);
    }

    #[test]
    fn the_send_time_bound_counts_every_attempt_and_wait() {
        let default = TransportConfig::default();
        assert_eq!(default.max_send_time(), Duration::from_secs(110));
        let once = TransportConfig::default()
            .with_timeout(Duration::from_secs(2))
            .with_retry(RetryPolicy::NEVER);
        assert_eq!(once.max_send_time(), Duration::from_secs(2));
        let zero = once.clone().with_retry(RetryPolicy {
            max_attempts: 0,
            ..P
        });
        assert_eq!(
            zero.max_send_time(),
            Duration::from_secs(2),
            "0 attempts act as 1"
        );
        let huge = once.with_timeout(Duration::MAX).with_retry(P);
        assert_eq!(huge.max_send_time(), Duration::MAX);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        assert_eq!(
            P.next_delay(RequestKind::Idempotent, 1, status(429, Some(1)), 0.9),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            P.next_delay(RequestKind::Idempotent, 1, status(429, Some(3600)), 0.9),
            None
        );
        let r = Response::builder()
            .status(429)
            .header(RETRY_AFTER, " 7 ")
            .body(())
            .unwrap();
        assert_eq!(Outcome::of_response(&r), status(429, Some(7)));
    }
}
