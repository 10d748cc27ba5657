//! The life of a token set, as a pure state machine.
//!
//! A [`Lifecycle`] holds the current [`TokenSet`] and answers two questions for its driver: *what should I do now?*
//! ([`Lifecycle::poll_action`]) and *when must I ask again?* ([`Lifecycle::poll_timeout`]). It reads no clock:
//! every call that depends on time takes `now`, and a `now` earlier than one already seen is ignored.
//!
//! ```text
//!                      poll_action: due (expires_at - margin)
//!   ┌────────┐  ───────────────────────────────────────────▶  ┌────────────┐
//!   │ Fresh  │                                                │ Refreshing │── handle_failure(transient) ──┐
//!   │        │  ◀── install(new set) ──────────────────────── │ (in flight)│                               │
//!   └────────┘   (rotated RT stored first, by the driver)     └────────────┘                               ▼
//!       │  ▲                                                        │                          ┌─────────────┐
//!       │  └──────────────── retry_at reached: poll_action ─────────┼───────────────────────── │  Backing off │
//!       │                                                           │ handle_failure(           │ old token    │
//!       │ refresh token expired, or none and the                    │   invalid_grant)          │ still served │
//!       │ access token expired                                      ▼                          └─────────────┘
//!       └──────────────────────────────────────────────────▶  ┌───────────────┐
//!                                                              │ LoginRequired │ (terminal)
//!                                                              └───────────────┘
//! ```
//!
//! A driver drains it in this order: call [`poll_action`](Lifecycle::poll_action); on
//! [`Action::Refresh`] or [`Action::RequestNewToken`] send the request, then either compute the new set with
//! [`prepare_refresh`](Lifecycle::prepare_refresh), **persist it**, and [`install`](Lifecycle::install) it, or
//! report the failure with [`handle_failure`](Lifecycle::handle_failure); then sleep until
//! [`poll_timeout`](Lifecycle::poll_timeout).
//!
//! Client-credentials tokens ([`GrantKind::ClientCredentials`]) have no refresh token: the same machine asks for a
//! new token ahead of expiry instead.

use std::fmt;
use std::time::Duration;

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::context::{ClientContext, Grant};
use crate::dpop::DpopKey;
use crate::error::ErrorCode;
use crate::id_token::{self, IdTokenClaims};
use crate::outcome::{Error, LoginRequiredReason};
use crate::scope::{GrantedScopes, Scopes};
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::time::UnixTime;
use crate::token::{self, TokenResponse};

/// The tokens a session holds, as a store persists them. It never holds the client secret.
///
/// `Debug` shows no token and only the names of the extra fields (SMART's `patient` is health data).
#[derive(Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// `token_type`, lower-cased.
    pub token_type: String,
    /// When the access token expires; `None` when the provider did not say.
    pub expires_at: Option<UnixTime>,
    /// The refresh token, if one was issued.
    pub refresh_token: Option<RefreshToken>,
    /// When the refresh token expires, when known (from a `refresh_expires_in` field or the configured lifetime).
    pub refresh_expires_at: Option<UnixTime>,
    /// The ID token, if one was issued.
    pub id_token: Option<IdToken>,
    /// The verified claims of the ID token.
    pub id_claims: Option<IdTokenClaims>,
    /// What was asked for and what was granted.
    pub granted: GrantedScopes,
    /// When the set was received.
    pub received_at: UnixTime,
    /// Extra fields of the token response (SMART on FHIR's `patient`, ...).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The DPoP key the tokens are bound to (RFC 9449). Kept in memory; written to a store only when the key says
    /// so ([`DpopKey::is_stored`], `ClientOptions::with_dpop_key_stored`).
    #[serde(default, skip_serializing_if = "crate::dpop::not_stored")]
    pub dpop_key: Option<DpopKey>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("id_token", &self.id_token)
            .field("sub", &self.id_claims.as_ref().map(|c| &c.sub))
            .field("granted", &self.granted)
            .field("received_at", &self.received_at)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .field("dpop_key", &self.dpop_key)
            .finish()
    }
}

impl TokenSet {
    /// The set from a login or client-credentials grant. `refresh_lifetime` is how long the provider keeps refresh
    /// tokens, when known (IdentityServer3's default is an absolute 30 days); a `refresh_expires_in` or
    /// `refresh_token_expires_in` field in the response wins over it.
    pub fn from_grant(grant: Grant, refresh_lifetime: Option<Duration>) -> TokenSet {
        let now = grant.received_at;
        let response = grant.response;
        let refresh_expires_at = refresh_expiry(&response, now, refresh_lifetime);
        TokenSet {
            expires_at: response.expires_at(now),
            token_type: response.token_type,
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            refresh_expires_at,
            id_token: response.id_token,
            id_claims: grant.id_claims,
            granted: grant.granted,
            received_at: now,
            extra: response.extra,
            dpop_key: grant.dpop_key,
        }
    }

    /// The `Authorization` header value, marked sensitive: `Bearer <token>`, or `DPoP <token>` for a DPoP-bound
    /// token (which also needs a proof per request).
    pub fn authorization_header(&self) -> HeaderValue {
        if self.is_dpop_bound() {
            crate::dpop::authorization_header(&self.access_token)
        } else {
            self.access_token.authorization_header()
        }
    }

    /// The DPoP key to send proofs with: `None` for a bearer token; [`DpopError::MissingKey`](crate::dpop::DpopError::MissingKey) for a DPoP-bound token
    /// whose key was not kept (a set resumed from a store without it).
    pub fn dpop_key(&self) -> Result<Option<DpopKey>, Error> {
        match (&self.dpop_key, self.is_dpop_bound()) {
            (Some(key), _) => Ok(Some(key.clone())),
            (None, false) => Ok(None),
            (None, true) => Err(crate::dpop::DpopError::MissingKey.into()),
        }
    }

    /// Whether the access token is DPoP-bound (`token_type` `dpop`).
    pub fn is_dpop_bound(&self) -> bool {
        self.token_type == "dpop"
    }

    /// Whether the access token is still valid at `now` (a token without expiry is taken as valid).
    pub fn is_valid_at(&self, now: UnixTime) -> bool {
        self.expires_at.is_none_or(|exp| now < exp)
    }

    /// The token to revoke to end this grant: the refresh token (which ends the grant at the provider), else the
    /// access token.
    pub fn revocation_ref(&self) -> crate::revocation::TokenRef<'_> {
        match &self.refresh_token {
            Some(rt) => crate::revocation::TokenRef::Refresh(rt),
            None => crate::revocation::TokenRef::Access(&self.access_token),
        }
    }

    /// Checks that a set loaded from a store belongs to `issuer`'s users (a store shared by mistake between two
    /// providers): [`LoginRequiredReason::OtherProvider`] otherwise.
    pub fn check_issuer(&self, issuer: &str) -> Result<(), Error> {
        match &self.id_claims {
            Some(claims) if claims.iss != issuer => Err(Error::login_required(
                LoginRequiredReason::OtherProvider,
                None,
            )),
            _ => Ok(()),
        }
    }
}

fn refresh_expiry(
    response: &TokenResponse,
    now: UnixTime,
    lifetime: Option<Duration>,
) -> Option<UnixTime> {
    response.refresh_token.as_ref()?;
    sent_refresh_lifetime(response)
        .or(lifetime)
        .map(|d| now.saturating_add(d))
}

/// A refresh-token lifetime the provider states (`refresh_expires_in` or `refresh_token_expires_in`).
fn sent_refresh_lifetime(response: &TokenResponse) -> Option<Duration> {
    ["refresh_expires_in", "refresh_token_expires_in"]
        .iter()
        .find_map(|name| match response.extra.get(*name)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f > 0.0).map(|f| f as u64)),
            serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        })
        .filter(|secs| *secs > 0)
        .map(Duration::from_secs)
}

/// How the tokens were obtained, which decides how they are renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GrantKind {
    /// A user's login: renewed with the refresh token.
    AuthorizationCode,
    /// The client's own credentials: renewed by asking again for these scopes.
    ClientCredentials {
        /// The scopes asked for.
        scope: Scopes,
    },
}

/// Timing of renewals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecycleConfig {
    /// Refresh this long before the access token expires; at most half the token's lifetime, so that a short-lived
    /// token is not refreshed at once. Default 60 s.
    pub refresh_margin: Duration,
    /// The first wait after a failed renewal; it doubles on each further failure. Default 1 s.
    pub min_backoff: Duration,
    /// The longest wait between renewal attempts. Default 60 s.
    pub max_backoff: Duration,
    /// How long refresh tokens live at the provider, when known. Default `None` (IdentityServer3's default is an
    /// absolute 30 days).
    pub refresh_token_lifetime: Option<Duration>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            refresh_margin: Duration::from_secs(60),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            refresh_token_lifetime: None,
        }
    }
}

impl LifecycleConfig {
    /// Sets the refresh margin.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Sets the refresh-token lifetime.
    pub fn with_refresh_token_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.refresh_token_lifetime = lifetime;
        self
    }

    /// Sets the backoff bounds.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }
}

/// What the driver should do now. `Debug` never shows a request's body or headers.
#[non_exhaustive]
pub enum Action {
    /// The current access token is good: use it.
    UseToken,
    /// Send this refresh request, then report its outcome.
    Refresh {
        /// The token request.
        request: http::Request<Vec<u8>>,
    },
    /// Send this client-credentials request, then report its outcome.
    RequestNewToken {
        /// The token request.
        request: http::Request<Vec<u8>>,
    },
    /// A renewal is already in flight and the token has expired: wait for its outcome.
    Wait,
    /// The token has expired and the last renewal failed; the next attempt is at `retry_at`.
    Unavailable {
        /// Why the last renewal failed.
        error: Error,
        /// When the next attempt may be made.
        retry_at: UnixTime,
    },
    /// No token can be had any more: the user must log in again.
    LoginRequired {
        /// Why.
        reason: LoginRequiredReason,
    },
}

/// A renewal to send, from [`Lifecycle::poll_renewal`].
#[non_exhaustive]
pub struct RenewalRequest {
    /// The token request.
    pub request: http::Request<Vec<u8>>,
    /// A refresh (`true`) or a new client-credentials request (`false`).
    pub is_refresh: bool,
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::wire::RequestSummary;
        match self {
            Action::UseToken => f.write_str("UseToken"),
            Action::Refresh { request } => f
                .debug_struct("Refresh")
                .field("request", &RequestSummary(request))
                .finish(),
            Action::RequestNewToken { request } => f
                .debug_struct("RequestNewToken")
                .field("request", &RequestSummary(request))
                .finish(),
            Action::Wait => f.write_str("Wait"),
            Action::Unavailable { error, retry_at } => f
                .debug_struct("Unavailable")
                .field("error", error)
                .field("retry_at", retry_at)
                .finish(),
            Action::LoginRequired { reason } => f
                .debug_struct("LoginRequired")
                .field("reason", reason)
                .finish(),
        }
    }
}

impl fmt::Debug for RenewalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenewalRequest")
            .field("request", &crate::wire::RequestSummary(&self.request))
            .field("is_refresh", &self.is_refresh)
            .finish()
    }
}

/// The token lifecycle (see the [module docs](self)).
///
/// Methods, in quinn-proto's order: getters; inputs (`handle_failure`); mutators (`install`); outputs
/// (`poll_action`, `poll_timeout`).
pub struct Lifecycle {
    set: TokenSet,
    kind: GrantKind,
    config: LifecycleConfig,
    now: UnixTime,
    in_flight: bool,
    failures: u32,
    retry_at: Option<UnixTime>,
    last_error: Option<Error>,
    login_required: Option<LoginRequiredReason>,
    /// The error that ended the lifecycle, if one did.
    ended_by: Option<Error>,
    /// The current token was refused by a resource server: renew it now, whatever the spacing.
    rejected: bool,
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifecycle")
            .field("kind", &self.kind)
            .field("expires_at", &self.set.expires_at)
            .field("has_refresh_token", &self.set.refresh_token.is_some())
            .field("in_flight", &self.in_flight)
            .field("failures", &self.failures)
            .field("retry_at", &self.retry_at)
            .field("login_required", &self.login_required)
            .finish()
    }
}

impl Lifecycle {
    /// A lifecycle for `set`, obtained through `kind`, at `now`.
    pub fn new(set: TokenSet, kind: GrantKind, config: LifecycleConfig, now: UnixTime) -> Self {
        Lifecycle {
            now,
            set,
            kind,
            config,
            in_flight: false,
            failures: 0,
            retry_at: None,
            last_error: None,
            login_required: None,
            ended_by: None,
            rejected: false,
        }
    }

    // ---- Getters ------------------------------------------------------------------------------------------------

    /// The current token set.
    pub fn token_set(&self) -> &TokenSet {
        &self.set
    }

    /// The current access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.set.access_token
    }

    /// The `Authorization` header value.
    pub fn authorization_header(&self) -> HeaderValue {
        self.set.authorization_header()
    }

    /// What was granted.
    pub fn granted_scopes(&self) -> &GrantedScopes {
        &self.set.granted
    }

    /// Whether `scope` was granted.
    pub fn allows(&self, scope: &str) -> bool {
        self.set.granted.allows(scope)
    }

    /// The verified ID-token claims.
    pub fn id_claims(&self) -> Option<&IdTokenClaims> {
        self.set.id_claims.as_ref()
    }

    /// How the tokens are renewed.
    pub fn kind(&self) -> &GrantKind {
        &self.kind
    }

    /// When the access token expires.
    pub fn expires_at(&self) -> Option<UnixTime> {
        self.set.expires_at
    }

    /// When the access token is due for renewal: `expires_at` less the margin (at most half the lifetime), but never
    /// sooner than `min_backoff` after the set was received — so a provider answering `expires_in: 0`, or an API
    /// refusing every token, cannot drive a renewal loop.
    pub fn refresh_due_at(&self) -> Option<UnixTime> {
        let exp = self.set.expires_at?;
        let lifetime = exp.saturating_duration_since(self.set.received_at);
        let due = exp.saturating_sub(self.config.refresh_margin.min(lifetime / 2));
        Some(due.max(self.set.received_at.saturating_add(self.config.min_backoff)))
    }

    /// Whether a renewal is in flight.
    pub fn is_in_flight(&self) -> bool {
        self.in_flight
    }

    /// The latest `now` seen (times going backwards are ignored).
    pub fn now(&self) -> UnixTime {
        self.now
    }

    // ---- Inputs -------------------------------------------------------------------------------------------------

    /// Computes the token set a renewal response leads to, without changing anything: the driver persists it, then
    /// calls [`install`](Self::install). `new_id_claims` are the claims of the response's ID token, already
    /// verified by [`ClientContext::verify_refreshed`].
    ///
    /// A rotated refresh token replaces the old one; a response without one keeps the old one and its expiry. The
    /// granted scopes are updated but never widened beyond the original grant. A new ID token must continue the
    /// original login (same `iss`, `sub`, `aud`, `auth_time`; Core §12.2). Extra fields the response does not carry
    /// (SMART's launch context: `patient`, `encounter`, `fhirContext`, `need_patient_banner`, ...) are kept; the
    /// ones it carries win.
    pub fn prepare_refresh(
        &self,
        now: UnixTime,
        response: TokenResponse,
        new_id_claims: Option<IdTokenClaims>,
    ) -> Result<TokenSet, Error> {
        let now = now.max(self.now);
        if let GrantKind::ClientCredentials { scope } = &self.kind {
            let granted = token::granted_scopes(scope, &response);
            return Ok(TokenSet::from_grant(
                Grant {
                    response,
                    id_claims: None,
                    granted,
                    received_at: now,
                    dpop_key: self.set.dpop_key.clone(),
                },
                None,
            ));
        }
        let id_claims = match (new_id_claims, &self.set.id_claims) {
            (Some(new), Some(original)) => {
                id_token::check_refresh_continuity(original, &new)?;
                Some(new)
            }
            (Some(new), None) => Some(new),
            (None, original) => original.clone(),
        };
        let fresh = token::granted_scopes(self.set.granted.requested(), &response);
        let granted = self
            .set
            .granted
            .narrowed_to(fresh.granted(), fresh.source());
        // A lifetime the provider states wins; otherwise an absolute lifetime (IdentityServer3's default) runs
        // from the login, so a rotated refresh token keeps the original expiry.
        let refresh_expires_at = match (&response.refresh_token, self.set.refresh_expires_at) {
            (Some(_), _) if sent_refresh_lifetime(&response).is_some() => {
                refresh_expiry(&response, now, None)
            }
            (Some(_), Some(original)) => Some(original),
            (Some(_), None) => refresh_expiry(&response, now, self.config.refresh_token_lifetime),
            (None, original) => original,
        };
        let expires_at = response.expires_at(now);
        let mut extra = self.set.extra.clone();
        extra.extend(response.extra);
        Ok(TokenSet {
            expires_at,
            token_type: response.token_type,
            access_token: response.access_token,
            refresh_token: response
                .refresh_token
                .or_else(|| self.set.refresh_token.clone()),
            refresh_expires_at,
            id_token: response.id_token.or_else(|| self.set.id_token.clone()),
            id_claims,
            granted,
            received_at: now,
            extra,
            dpop_key: self.set.dpop_key.clone(),
        })
    }

    /// Reports that the renewal in flight failed with `error`. `invalid_grant` ends the lifecycle (the user must
    /// log in again); any other failure keeps the current token while it is valid and retries after a backoff.
    pub fn handle_failure(&mut self, now: UnixTime, error: Error) {
        self.observe(now);
        self.in_flight = false;
        let invalid_grant = error
            .oauth_error()
            .is_some_and(|e| e.code == ErrorCode::InvalidGrant);
        if invalid_grant && self.kind == GrantKind::AuthorizationCode {
            self.login_required = Some(LoginRequiredReason::RefreshTokenRejected);
            self.ended_by = Some(error);
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let backoff = self
            .config
            .min_backoff
            .saturating_mul(1u32.checked_shl(self.failures - 1).unwrap_or(u32::MAX))
            .min(self.config.max_backoff);
        self.retry_at = Some(self.now.saturating_add(backoff.max(Duration::from_secs(1))));
        self.last_error = Some(error);
    }

    /// Reports that a resource server refused `token` as invalid (`401` with `error="invalid_token"`). If it is
    /// still the current token, it is taken as expired, so the next [`poll_action`](Self::poll_action) renews it;
    /// a token already replaced is ignored, so many concurrent refusals cause one renewal.
    pub fn handle_token_rejected(&mut self, now: UnixTime, token: &AccessToken) {
        self.observe(now);
        if self.set.access_token.ct_eq(token) {
            self.set.expires_at = Some(self.now);
            self.retry_at = None;
            self.rejected = true;
        }
    }

    /// Reports what the store holds now (re-read under its lock before a renewal, or after an `invalid_grant`):
    /// if it is a newer set, renewed by another process, it is adopted. Returns whether it was.
    pub fn handle_stored(&mut self, stored: TokenSet) -> bool {
        let current = &self.set;
        let newer = !stored.access_token.ct_eq(&current.access_token)
            && stored.received_at >= current.received_at;
        if newer {
            let now = self.now;
            self.install(now, stored);
        }
        newer
    }

    /// Whether `stored` (re-read under the store's lock) is the dead set of an ended lifecycle, which the driver
    /// then clears from the store so that no later start tries it again. A set another process stored meanwhile
    /// (another access token) is not the one that failed, and is left alone.
    pub fn is_dead_set(&self, stored: &TokenSet) -> bool {
        self.login_required.is_some() && stored.access_token.ct_eq(&self.set.access_token)
    }

    /// Reports that the renewal in flight failed, and says what the callers get: `Ok(())` when the current token
    /// may still be served (a transient failure before expiry is not an error), else the error to return —
    /// [`Error::LoginRequired`] after `invalid_grant`.
    pub fn handle_renewal_error(&mut self, now: UnixTime, error: Error) -> Result<(), Error> {
        let invalid_grant = error.is_invalid_grant();
        self.handle_failure(now, error.clone());
        if invalid_grant {
            return Err(Error::login_required(
                LoginRequiredReason::RefreshTokenRejected,
                Some(error),
            ));
        }
        if self.set.is_valid_at(self.now) {
            Ok(())
        } else {
            Err(error)
        }
    }

    // ---- Mutators -----------------------------------------------------------------------------------------------

    /// Installs a new token set (after the driver persisted it). Ends any renewal in flight and clears failures.
    pub fn install(&mut self, now: UnixTime, set: TokenSet) {
        self.observe(now);
        self.set = set;
        self.in_flight = false;
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.login_required = None;
        self.ended_by = None;
        self.rejected = false;
    }

    /// Ends the lifecycle (after a revocation or a logout): from now on it answers
    /// [`Action::LoginRequired`] with `reason`.
    pub fn end(&mut self, reason: LoginRequiredReason) {
        self.in_flight = false;
        self.login_required = Some(reason);
    }

    /// Abandons a renewal in flight without an outcome (its driver went away); the next `poll_action` may start
    /// another.
    pub fn abandon(&mut self) {
        self.in_flight = false;
    }

    // ---- Outputs ------------------------------------------------------------------------------------------------

    /// What to do now (see [`Action`]). Returning [`Action::Refresh`] or [`Action::RequestNewToken`] marks a
    /// renewal in flight: no second request is handed out until its outcome is reported.
    ///
    /// `stamp` carries the time and the fresh `jti` a renewal request authenticates with (see
    /// [`RequestStamp`](crate::client_auth::RequestStamp)); draw one per call.
    pub fn poll_action(
        &mut self,
        stamp: &crate::client_auth::RequestStamp,
        context: &ClientContext,
    ) -> Action {
        self.observe(stamp.now());
        let now = self.now;
        if let Some(reason) = self.login_required {
            return Action::LoginRequired { reason };
        }
        let valid = self.set.is_valid_at(now);
        let due = self.rejected || self.refresh_due_at().is_some_and(|due| now >= due);
        if !due {
            // Valid and not yet due; or "expired" within `min_backoff` of being issued (`expires_in: 0`), which is
            // handed out rather than renewed in a loop.
            return Action::UseToken;
        }
        if self.in_flight {
            return if valid {
                Action::UseToken
            } else {
                Action::Wait
            };
        }
        if let Some(retry_at) = self.retry_at
            && now < retry_at
        {
            return match (valid, &self.last_error) {
                (true, _) => Action::UseToken,
                (false, Some(error)) => Action::Unavailable {
                    error: error.clone(),
                    retry_at,
                },
                (false, None) => Action::Wait,
            };
        }
        let request = match &self.kind {
            GrantKind::ClientCredentials { scope } => {
                let scope = (!scope.is_empty()).then_some(scope);
                context
                    .client_credentials_request(scope, stamp)
                    .map(|request| Action::RequestNewToken { request })
            }
            GrantKind::AuthorizationCode => {
                let Some(refresh_token) = &self.set.refresh_token else {
                    if valid {
                        return Action::UseToken;
                    }
                    return self.require_login(LoginRequiredReason::NoRefreshToken, None);
                };
                if self.set.refresh_expires_at.is_some_and(|exp| now >= exp) {
                    return self.require_login(LoginRequiredReason::RefreshTokenExpired, None);
                }
                context
                    .refresh_request(refresh_token, None, stamp)
                    .map(|request| Action::Refresh { request })
            }
        };
        match request {
            Ok(action) => {
                self.in_flight = true;
                action
            }
            Err(error) => self.require_login(LoginRequiredReason::NoRenewalRequest, Some(error)),
        }
    }

    /// The next time [`poll_action`](Self::poll_action) may answer differently: the refresh due time, or the end of
    /// a backoff. `None` when nothing is scheduled (no expiry, a renewal in flight, or login required).
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        if self.login_required.is_some() || self.in_flight {
            return None;
        }
        match (self.retry_at, self.refresh_due_at()) {
            (Some(retry), _) => Some(retry),
            (None, due) => due,
        }
    }

    /// The renewal to send now, if one is due: `Ok(None)` when the current token is good, `Ok(Some(renewal))` to
    /// send (it is then in flight), or the error the callers get.
    pub fn poll_renewal(
        &mut self,
        stamp: &crate::client_auth::RequestStamp,
        context: &ClientContext,
    ) -> Result<Option<RenewalRequest>, Error> {
        let (request, is_refresh) = match self.poll_action(stamp, context) {
            Action::UseToken => return Ok(None),
            Action::Refresh { request } => (request, true),
            Action::RequestNewToken { request } => (request, false),
            Action::LoginRequired { .. } => return Err(self.login_required_error()),
            Action::Unavailable { error, .. } => return Err(error),
            Action::Wait => return Err(Error::Renewal("another renewal is running".into())),
        };
        Ok(Some(RenewalRequest {
            request,
            is_refresh,
        }))
    }

    /// Until when (Unix seconds) a driver may hand out the current token without asking: the refresh due time, or,
    /// during a backoff after a failed renewal, the end of the backoff — never past the token's expiry.
    pub fn hand_out_until(&self) -> u64 {
        let secs = |t: Option<UnixTime>| t.map_or(u64::MAX, UnixTime::as_secs);
        let expiry = secs(self.set.expires_at);
        let due = secs(self.refresh_due_at()).min(expiry);
        if self.login_required.is_some() || self.rejected {
            return 0;
        }
        match self.poll_timeout() {
            Some(t) if t.as_secs() > due && self.now.as_secs() < expiry => t.as_secs().min(expiry),
            _ => due,
        }
    }

    fn observe(&mut self, now: UnixTime) {
        self.now = self.now.max(now);
    }

    fn require_login(&mut self, reason: LoginRequiredReason, source: Option<Error>) -> Action {
        self.login_required = Some(reason);
        self.ended_by = source;
        Action::LoginRequired { reason }
    }

    /// The [`Error::LoginRequired`] of an ended lifecycle, with the error that ended it.
    fn login_required_error(&self) -> Error {
        Error::login_required(
            self.login_required
                .unwrap_or(LoginRequiredReason::RefreshTokenRejected),
            self.ended_by.clone(),
        )
    }
}
