//! The device authorization grant (RFC 8628), for machines with no browser: the user approves on another device.
//!
//! ```text
//!  device_authorization_request(scopes) ──send──▶ parse_device_authorization ──▶ DeviceAuthorization
//!        show the user_code and verification_uri; DeviceFlow::new(authorization, scopes, now)
//!  loop, at flow.poll_at():
//!     device_token_request(flow) ──send──▶ flow.handle_poll(now, response) ──▶ DevicePoll
//!        Pending / SlowDown (the interval grows by 5 s)   poll again at flow.poll_at()
//!        Granted(TokenResponse)                           complete_device_login(flow, response, keys, now) ──▶ Grant
//!        Denied / Expired                                 stop: the user said no, or the code ran out
//! ```
//!
//! Like the rest of the core it does no I/O and never reads the clock: the driver sleeps until
//! [`DeviceFlow::poll_at`] and passes `now` in. [`DeviceFlow::is_expired`] says when to stop without asking the
//! provider again.

use std::time::Duration;

use http::{Request, Response};
use serde::Deserialize;
use url::Url;

use crate::client_auth::{self, RequestStamp};
use crate::context::{ClientContext, Grant};
use crate::error::{Endpoint, ErrorCode, OAuthError, ResponseError};
use crate::id_token::Expectations;
use crate::jwks::JwkSet;
use crate::outcome::Error;
use crate::scope::Scopes;
use crate::secret::DeviceCode;
use crate::time::UnixTime;
use crate::token::{self, TokenResponse};
use crate::wire;

/// The `grant_type` of the device-code token request.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the provider names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How much `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The longest interval honoured: a provider asking for more is polled this often instead.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// The provider's answer to a device authorization request (RFC 8628 §3.2).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeviceAuthorization {
    /// The device code, sent when polling. Secret.
    pub device_code: DeviceCode,
    /// The code the user types at the verification page. Meant to be shown.
    pub user_code: String,
    /// Where the user goes to approve.
    pub verification_uri: Url,
    /// The verification page with the user code filled in, when the provider offers it.
    pub verification_uri_complete: Option<Url>,
    /// How long the codes are valid.
    pub expires_in: Duration,
    /// How long to wait between polls.
    pub interval: Duration,
}

/// Builds the device authorization request for `scopes`, authenticated as the token endpoint would be.
pub fn device_authorization_request(
    endpoint: &Url,
    context: &ClientContext,
    scopes: &Scopes,
    stamp: &RequestStamp,
) -> Result<Request<Vec<u8>>, Error> {
    let scope = scopes.to_string();
    let mut params = Vec::new();
    if !scopes.is_empty() {
        params.push(("scope", scope.as_str()));
    }
    Ok(client_auth::form_request(
        endpoint,
        context.config(),
        context.client_auth(),
        &params,
        stamp,
    )?)
}

/// Parses the device authorization response. The verification URIs must be https or on a loopback host.
pub fn parse_device_authorization(
    response: &Response<Vec<u8>>,
) -> Result<DeviceAuthorization, ResponseError> {
    const E: Endpoint = Endpoint::Token;
    #[derive(Deserialize)]
    struct Wire {
        device_code: String,
        user_code: String,
        // Some providers (older drafts, Google) say `verification_url`.
        #[serde(alias = "verification_url")]
        verification_uri: String,
        verification_uri_complete: Option<String>,
        expires_in: u64,
        interval: Option<u64>,
    }
    let body = response.body();
    let wire: Wire = wire::parse_json(E, response)?;
    let bad = |reason: &str| wire::malformed(E, body, reason);
    if wire.device_code.is_empty() || wire.user_code.is_empty() {
        return Err(bad("`device_code` or `user_code` is empty"));
    }
    let endpoint = |text: &str| {
        wire::parse_endpoint(text).map_err(|e| {
            bad(&format!(
                "the verification URI is unusable ({e}); the provider must send an https URL"
            ))
        })
    };
    let verification_uri = endpoint(&wire.verification_uri)?;
    let verification_uri_complete = wire
        .verification_uri_complete
        .as_deref()
        .map(endpoint)
        .transpose()?;
    let interval = wire
        .interval
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
        .clamp(Duration::from_secs(1), MAX_INTERVAL);
    Ok(DeviceAuthorization {
        device_code: DeviceCode::new(wire.device_code),
        user_code: wire.user_code,
        verification_uri,
        verification_uri_complete,
        expires_in: Duration::from_secs(wire.expires_in),
        interval,
    })
}

/// One poll's outcome.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DevicePoll {
    /// The user approved: the tokens. Finish with [`ClientContext::complete_device_login`].
    Granted(TokenResponse),
    /// `authorization_pending`: the user has not answered yet; poll again at [`DeviceFlow::poll_at`].
    Pending,
    /// `slow_down`: polled too often; the interval grew by [`SLOW_DOWN_STEP`].
    SlowDown,
    /// `access_denied`: the user refused. The provider's error, for its description.
    Denied(OAuthError),
    /// `expired_token`, or the codes' lifetime ran out: start again.
    Expired,
}

/// What one poll of a transport's `Client::poll_device_login` came to: [`DevicePoll`] with the grant checked.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceStep {
    /// The user approved: the checked grant.
    Granted(Box<Grant>),
    /// Not yet (`authorization_pending` or `slow_down`): sleep until [`DeviceFlow::poll_at`] and poll again.
    Waiting,
    /// The user refused (`access_denied`).
    Denied,
    /// The codes expired before the user answered: start again.
    Expired,
}

/// A device login in progress: what to show the user, and when to poll.
#[derive(Debug, Clone)]
pub struct DeviceFlow {
    authorization: DeviceAuthorization,
    requested: Scopes,
    expires_at: UnixTime,
    interval: Duration,
    poll_at: UnixTime,
}

impl DeviceFlow {
    /// A flow for `authorization`, received at `now`, that asked for `requested`.
    pub fn new(authorization: DeviceAuthorization, requested: Scopes, now: UnixTime) -> DeviceFlow {
        let interval = authorization.interval;
        DeviceFlow {
            expires_at: now.saturating_add(authorization.expires_in),
            poll_at: now.saturating_add(interval),
            authorization,
            requested,
            interval,
        }
    }

    /// The provider's answer: user code and verification URIs.
    pub fn authorization(&self) -> &DeviceAuthorization {
        &self.authorization
    }

    /// The scopes asked for.
    pub fn requested(&self) -> &Scopes {
        &self.requested
    }

    /// When the codes expire.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// The interval between polls now.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When to poll next.
    pub fn poll_at(&self) -> UnixTime {
        self.poll_at
    }

    /// Whether the codes have expired at `now` (then polling is pointless).
    pub fn is_expired(&self, now: UnixTime) -> bool {
        now >= self.expires_at
    }

    /// Handles a token-endpoint answer to a poll sent at `now`: the next poll time moves on by the interval (grown
    /// first on `slow_down`). Errors other than the four RFC 8628 outcomes are [`ResponseError`]s.
    pub fn handle_poll(
        &mut self,
        now: UnixTime,
        response: &Response<Vec<u8>>,
    ) -> Result<DevicePoll, ResponseError> {
        let outcome = match token::parse_token_response(response) {
            Ok(tokens) => DevicePoll::Granted(tokens),
            Err(ResponseError::OAuth { error, .. }) if is_code(&error, "authorization_pending") => {
                DevicePoll::Pending
            }
            Err(ResponseError::OAuth { error, .. }) if is_code(&error, "slow_down") => {
                self.interval = self
                    .interval
                    .saturating_add(SLOW_DOWN_STEP)
                    .min(MAX_INTERVAL);
                DevicePoll::SlowDown
            }
            Err(ResponseError::OAuth { error, .. }) if error.code == ErrorCode::AccessDenied => {
                DevicePoll::Denied(error)
            }
            Err(ResponseError::OAuth { error, .. }) if is_code(&error, "expired_token") => {
                DevicePoll::Expired
            }
            Err(other) => return Err(other),
        };
        self.poll_at = now.saturating_add(self.interval);
        if matches!(outcome, DevicePoll::Pending | DevicePoll::SlowDown) && self.is_expired(now) {
            return Ok(DevicePoll::Expired);
        }
        Ok(outcome)
    }
}

fn is_code(error: &OAuthError, code: &str) -> bool {
    error.code.as_str() == code
}

impl ClientContext {
    /// The device authorization request for `scopes` (`openid` is added, as for a browser login).
    pub fn device_authorization_request(
        &self,
        scopes: &Scopes,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        let endpoint = self
            .metadata()
            .device_authorization_endpoint
            .as_ref()
            .ok_or(Error::Unsupported("device authorization endpoint"))?;
        device_authorization_request(endpoint, self, &self.device_scopes(scopes), stamp)
    }

    /// The scopes [`device_authorization_request`](Self::device_authorization_request) asks for.
    pub fn device_scopes(&self, scopes: &Scopes) -> Scopes {
        let mut scopes = scopes.clone();
        scopes.insert("openid");
        scopes
    }

    /// The polling token request of `flow`.
    pub fn device_token_request(
        &self,
        flow: &DeviceFlow,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        Ok(client_auth::form_request(
            self.token_endpoint(),
            self.config(),
            self.client_auth(),
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                (
                    "device_code",
                    flow.authorization.device_code.expose_secret(),
                ),
            ],
            stamp,
        )?)
    }

    /// Checks the tokens of an approved device login: the ID token (signature, issuer, audience, `at_hash`; there
    /// is no nonce in this flow) and the granted scopes.
    pub fn complete_device_login(
        &self,
        flow: &DeviceFlow,
        response: TokenResponse,
        keys: &JwkSet,
        now: UnixTime,
    ) -> Result<Grant, Error> {
        let id_claims = match &response.id_token {
            Some(id_token) => {
                let expect = Expectations::new().with_access_token(&response.access_token);
                Some(self.verifier().verify(id_token, keys, &expect, now)?)
            }
            None => None,
        };
        let granted = token::granted_scopes(&flow.requested, &response);
        Ok(Grant::new(response, id_claims, granted, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    const AUTH: &str = r#"{"device_code":"DEV-SECRET","user_code":"WDJB-MJHT",
        "verification_uri":"https://accounts.example.com/device",
        "verification_uri_complete":"https://accounts.example.com/device?user_code=WDJB-MJHT",
        "expires_in":600,"interval":3}"#;

    fn flow(now: u64) -> DeviceFlow {
        let auth = parse_device_authorization(&resp(200, AUTH)).unwrap();
        DeviceFlow::new(auth, Scopes::parse("openid"), UnixTime::from_secs(now))
    }

    #[test]
    fn parses_the_authorization_and_hides_the_device_code() {
        let auth = parse_device_authorization(&resp(200, AUTH)).unwrap();
        assert_eq!(auth.user_code, "WDJB-MJHT");
        assert_eq!(auth.interval, Duration::from_secs(3));
        assert_eq!(auth.expires_in, Duration::from_secs(600));
        assert!(auth.verification_uri_complete.is_some());
        assert!(!format!("{auth:?}").contains("DEV-SECRET"));
    }

    #[test]
    fn bad_authorizations_are_typed_errors() {
        let no_interval = r#"{"device_code":"d","user_code":"u","verification_url":"https://a.example/d","expires_in":9}"#;
        let auth = parse_device_authorization(&resp(200, no_interval)).unwrap();
        assert_eq!(auth.interval, DEFAULT_INTERVAL);
        for body in [
            r#"{"device_code":"d","user_code":"u","verification_uri":"http://evil.example/d","expires_in":9}"#,
            r#"{"device_code":"","user_code":"u","verification_uri":"https://a.example/d","expires_in":9}"#,
            r#"{"user_code":"u"}"#,
            "not json",
        ] {
            let e = parse_device_authorization(&resp(200, body)).unwrap_err();
            assert!(
                matches!(e, ResponseError::Malformed { .. }),
                "{body}: {e:?}"
            );
        }
        let e =
            parse_device_authorization(&resp(400, r#"{"error":"invalid_client"}"#)).unwrap_err();
        assert_eq!(e.oauth_error().unwrap().code, ErrorCode::InvalidClient);
    }

    #[test]
    fn polling_outcomes() {
        let mut f = flow(1000);
        assert_eq!(f.poll_at(), UnixTime::from_secs(1003));
        let p = f
            .handle_poll(
                UnixTime::from_secs(1003),
                &resp(400, r#"{"error":"authorization_pending"}"#),
            )
            .unwrap();
        assert!(matches!(p, DevicePoll::Pending));
        assert_eq!(f.poll_at(), UnixTime::from_secs(1006));
        let p = f
            .handle_poll(
                UnixTime::from_secs(1006),
                &resp(400, r#"{"error":"slow_down"}"#),
            )
            .unwrap();
        assert!(matches!(p, DevicePoll::SlowDown));
        assert_eq!(f.interval(), Duration::from_secs(8));
        assert_eq!(f.poll_at(), UnixTime::from_secs(1014));
        let p = f
            .handle_poll(
                UnixTime::from_secs(1014),
                &resp(400, r#"{"error":"access_denied"}"#),
            )
            .unwrap();
        assert!(matches!(p, DevicePoll::Denied(_)));
        let p = f
            .handle_poll(
                UnixTime::from_secs(1014),
                &resp(400, r#"{"error":"expired_token"}"#),
            )
            .unwrap();
        assert!(matches!(p, DevicePoll::Expired));
        let p = f
            .handle_poll(
                UnixTime::from_secs(1014),
                &resp(
                    200,
                    r#"{"access_token":"at","token_type":"Bearer","expires_in":60}"#,
                ),
            )
            .unwrap();
        assert!(matches!(p, DevicePoll::Granted(_)));
        let e = f
            .handle_poll(
                UnixTime::from_secs(1014),
                &resp(400, r#"{"error":"invalid_grant"}"#),
            )
            .unwrap_err();
        assert_eq!(e.oauth_error().unwrap().code, ErrorCode::InvalidGrant);
    }

    #[test]
    fn pending_past_the_deadline_is_expired_and_slow_down_is_capped() {
        let mut f = flow(0);
        assert!(!f.is_expired(UnixTime::from_secs(599)));
        let p = f
            .handle_poll(
                UnixTime::from_secs(600),
                &resp(400, r#"{"error":"authorization_pending"}"#),
            )
            .unwrap();
        assert!(matches!(p, DevicePoll::Expired));
        for _ in 0..100 {
            let _ = f.handle_poll(UnixTime::MAX, &resp(400, r#"{"error":"slow_down"}"#));
        }
        assert_eq!(f.interval(), MAX_INTERVAL);
        assert_eq!(f.poll_at(), UnixTime::MAX, "saturates, never panics");
    }
}
