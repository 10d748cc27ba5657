//! The token lifecycle on a simulated clock: the test plays the provider, jumps the clock to each
//! `poll_timeout()`, and never sleeps.

use std::time::Duration;

use nethealth_oidc_core::context::{ClientContext, ClientOptions, Grant};
use nethealth_oidc_core::discovery::ProviderMetadata;
use nethealth_oidc_core::id_token::IdTokenClaims;
use nethealth_oidc_core::lifecycle::{Action, GrantKind, Lifecycle, LifecycleConfig, TokenSet};
use nethealth_oidc_core::secret::{ClientSecret, RefreshToken};
use nethealth_oidc_core::token::{self, TokenResponse};
use nethealth_oidc_core::{
    ClientConfig, Error, ErrorCode, GrantedScopes, LoginRequiredReason, ScopeSource, Scopes,
    TransportError, UnixTime,
};

const T0: u64 = 1_700_000_000;

fn context() -> ClientContext {
    let metadata: ProviderMetadata = serde_json::from_value(serde_json::json!({
        "issuer": "https://accounts.example.com",
        "authorization_endpoint": "https://accounts.example.com/connect/authorize",
        "token_endpoint": "https://accounts.example.com/connect/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
    .unwrap();
    let client = ClientConfig::new("app", Some(ClientSecret::new("s")));
    ClientContext::new(metadata, client, ClientOptions::default()).unwrap()
}

fn response(body: serde_json::Value) -> TokenResponse {
    let r = http::Response::builder()
        .status(200)
        .body(body.to_string().into_bytes())
        .unwrap();
    token::parse_token_response(&r).unwrap()
}

fn claims(sub: &str) -> IdTokenClaims {
    serde_json::from_value(serde_json::json!({
        "iss": "https://accounts.example.com", "sub": sub, "aud": "app", "exp": T0 + 300, "iat": T0,
        "auth_time": T0, "nonce": "n"
    }))
    .unwrap()
}

fn login_set(expires_in: u64, refresh: Option<&str>, scope: &str) -> TokenSet {
    let mut body = serde_json::json!({"access_token": "at-0", "token_type": "Bearer", "expires_in": expires_in});
    if let Some(rt) = refresh {
        body["refresh_token"] = rt.into();
    }
    TokenSet::from_grant(
        Grant::new(
            response(body),
            Some(claims("alice")),
            GrantedScopes::new(
                Scopes::parse(scope),
                Scopes::parse(scope),
                ScopeSource::TokenResponse,
            ),
            UnixTime::from_secs(T0),
        ),
        None,
    )
}

/// Plays the provider: counts requests and answers from a script.
struct Sim {
    lc: Lifecycle,
    ctx: ClientContext,
    now: UnixTime,
    requests: Vec<String>,
}

impl Sim {
    fn new(set: TokenSet, kind: GrantKind, config: LifecycleConfig) -> Sim {
        let now = UnixTime::from_secs(T0);
        Sim {
            lc: Lifecycle::new(set, kind, config, now),
            ctx: context(),
            now,
            requests: Vec::new(),
        }
    }

    fn at(&mut self, secs_after_t0: u64) -> Action {
        self.now = UnixTime::from_secs(T0 + secs_after_t0);
        self.poll()
    }

    fn poll(&mut self) -> Action {
        let action = self.lc.poll_action(&stamp(self.now), &self.ctx);
        if let Action::Refresh { request } | Action::RequestNewToken { request } = &action {
            self.requests
                .push(String::from_utf8(request.body().clone()).unwrap());
        }
        action
    }

    /// Jumps to the next deadline.
    fn jump(&mut self) -> Action {
        self.now = self.lc.poll_timeout().expect("a deadline is scheduled");
        self.poll()
    }

    fn answer(
        &mut self,
        body: serde_json::Value,
        id_claims: Option<IdTokenClaims>,
    ) -> Result<(), Error> {
        let set = self
            .lc
            .prepare_refresh(self.now, response(body), id_claims)?;
        self.lc.install(self.now, set);
        Ok(())
    }
}

#[test]
fn fresh_token_is_used_until_the_refresh_is_due() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.at(0), Action::UseToken));
    assert!(matches!(sim.at(3539), Action::UseToken));
    assert_eq!(sim.lc.poll_timeout(), Some(UnixTime::from_secs(T0 + 3540)));
    assert!(
        matches!(sim.jump(), Action::Refresh { .. }),
        "refresh exactly at expiry - margin"
    );
    assert_eq!(
        sim.requests,
        ["grant_type=refresh_token&refresh_token=rt-0"]
    );
}

#[test]
fn rotation_replaces_the_refresh_token_and_no_rotation_keeps_it() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.answer(serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600,"refresh_token":"rt-1"}), None)
        .unwrap();
    assert_eq!(sim.lc.access_token().expose_secret(), "at-1");
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.answer(
        serde_json::json!({"access_token":"at-2","token_type":"bearer","expires_in":3600}),
        None,
    )
    .unwrap();
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    assert_eq!(
        sim.requests[1],
        "grant_type=refresh_token&refresh_token=rt-1"
    );
    assert_eq!(
        sim.requests[2], "grant_type=refresh_token&refresh_token=rt-1",
        "old refresh token kept"
    );
    assert!(
        sim.lc.id_claims().is_some(),
        "the original ID token's claims are kept"
    );
}

#[test]
fn invalid_grant_means_login_required() {
    let mut sim = Sim::new(
        login_set(600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    let rejected = http::Response::builder()
        .status(400)
        .body(br#"{"error":"invalid_grant"}"#.to_vec())
        .unwrap();
    let error = token::parse_token_response(&rejected).unwrap_err();
    assert_eq!(error.oauth_error().unwrap().code, ErrorCode::InvalidGrant);
    sim.lc.handle_failure(sim.now, error.into());
    match sim.poll() {
        Action::LoginRequired { reason } => {
            assert_eq!(reason, LoginRequiredReason::RefreshTokenRejected)
        }
        other => panic!("{other:?}"),
    }
    // The error callers get names the reason and keeps the provider's answer as its source.
    let err = sim.lc.poll_renewal(&stamp(sim.now), &sim.ctx).unwrap_err();
    assert_eq!(
        err.login_required_reason(),
        Some(LoginRequiredReason::RefreshTokenRejected)
    );
    assert!(err.to_string().contains("log in again"), "{err}");
    let source = std::error::Error::source(&err).expect("the invalid_grant is kept");
    assert!(source.to_string().contains("invalid_grant"), "{source}");
    assert_eq!(sim.lc.poll_timeout(), None);
}

#[test]
fn expired_refresh_token_requires_login_without_a_request() {
    let config =
        LifecycleConfig::default().with_refresh_token_lifetime(Some(Duration::from_secs(1800)));
    let mut set = login_set(3600, Some("rt-0"), "openid");
    set.refresh_expires_at = Some(UnixTime::from_secs(T0 + 1800));
    let mut sim = Sim::new(set, GrantKind::AuthorizationCode, config);
    match sim.at(3540) {
        Action::LoginRequired { reason } => {
            assert_eq!(reason, LoginRequiredReason::RefreshTokenExpired)
        }
        other => panic!("{other:?}"),
    }
    assert!(sim.requests.is_empty());
}

#[test]
fn refresh_expiry_comes_from_the_response_or_the_configured_lifetime() {
    let mut body = serde_json::json!({"access_token":"a","token_type":"bearer","expires_in":60,"refresh_token":"r"});
    let grant = |body: serde_json::Value| {
        Grant::new(
            response(body),
            None,
            GrantedScopes::new(
                Scopes::new(),
                Scopes::new(),
                ScopeSource::AssumedFromRequest,
            ),
            UnixTime::from_secs(T0),
        )
    };
    let set = TokenSet::from_grant(grant(body.clone()), Some(Duration::from_secs(100)));
    assert_eq!(set.refresh_expires_at, Some(UnixTime::from_secs(T0 + 100)));
    body["refresh_expires_in"] = "500".into();
    let set = TokenSet::from_grant(grant(body), Some(Duration::from_secs(100)));
    assert_eq!(set.refresh_expires_at, Some(UnixTime::from_secs(T0 + 500)));
}

#[test]
fn transient_failures_keep_serving_the_token_and_back_off() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    let down = || {
        Error::Transport(TransportError::Connect {
            endpoint: nethealth_oidc_core::Endpoint::Token,
            reason: "refused".into(),
        })
    };
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.lc.handle_failure(sim.now, down());
    assert!(
        matches!(sim.poll(), Action::UseToken),
        "a transient failure before expiry is not an error"
    );
    let first_retry = sim.lc.poll_timeout().unwrap();
    assert_eq!(first_retry, UnixTime::from_secs(T0 + 3541));
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.lc.handle_failure(sim.now, down());
    assert_eq!(
        sim.lc.poll_timeout().unwrap(),
        UnixTime::from_secs(T0 + 3543),
        "backoff doubles"
    );
    // Past expiry, still failing: a typed error, and a retry time.
    for _ in 0..10 {
        if let Action::Refresh { .. } = sim.jump() {
            sim.lc.handle_failure(sim.now, down());
        }
    }
    sim.now = UnixTime::from_secs(T0 + 3600);
    let unavailable = sim.poll();
    assert!(
        matches!(
            unavailable,
            Action::Unavailable {
                error: Error::Transport(_),
                ..
            } | Action::Refresh { .. }
        ),
        "{unavailable:?}"
    );
    // The provider comes back.
    loop {
        if let Action::Refresh { .. } = sim.jump() {
            break;
        }
    }
    sim.answer(serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600,"refresh_token":"rt-1"}), None)
        .unwrap();
    assert!(matches!(sim.poll(), Action::UseToken));
    assert_eq!(sim.lc.access_token().expose_secret(), "at-1");
}

#[test]
fn a_refresh_in_flight_is_not_requested_twice() {
    let mut sim = Sim::new(
        login_set(120, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    assert!(
        matches!(sim.poll(), Action::UseToken),
        "still valid: serve it"
    );
    assert_eq!(sim.lc.poll_timeout(), None);
    assert!(
        matches!(sim.at(200), Action::Wait),
        "expired, refresh still in flight"
    );
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn clock_going_backwards_is_ignored() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.at(3540), Action::Refresh { .. }));
    sim.answer(
        serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600}),
        None,
    )
    .unwrap();
    // The clock jumps back an hour: the new token's times are from the latest time seen, not the earlier one.
    assert!(matches!(sim.at(0), Action::UseToken));
    assert_eq!(sim.lc.now(), UnixTime::from_secs(T0 + 3540));
    assert_eq!(
        sim.lc.expires_at(),
        Some(UnixTime::from_secs(T0 + 3540 + 3600))
    );
}

#[test]
fn scopes_are_narrowed_never_widened() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid patients.read patients.write"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.answer(
        serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600,"scope":"openid patients.read admin"}),
        None,
    )
    .unwrap();
    assert!(sim.lc.allows("patients.read"));
    assert!(!sim.lc.allows("admin"), "never widened");
    assert!(!sim.lc.allows("patients.write"), "narrowed");
}

#[test]
fn a_refreshed_id_token_must_continue_the_login() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    let body = serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600});
    let err = sim
        .answer(body.clone(), Some(claims("mallory")))
        .unwrap_err();
    assert!(matches!(err, Error::IdToken(_)), "{err:?}");
    assert_eq!(
        sim.lc.access_token().expose_secret(),
        "at-0",
        "nothing installed"
    );
    sim.answer(body, Some(claims("alice"))).unwrap();
}

#[test]
fn client_credentials_are_requested_again_ahead_of_expiry() {
    let scope = Scopes::parse("patients.read");
    let set = TokenSet::from_grant(
        Grant::new(
            response(
                serde_json::json!({"access_token":"m2m-0","token_type":"bearer","expires_in":300}),
            ),
            None,
            GrantedScopes::new(
                scope.clone(),
                scope.clone(),
                ScopeSource::AssumedFromRequest,
            ),
            UnixTime::from_secs(T0),
        ),
        None,
    );
    let mut sim = Sim::new(
        set,
        GrantKind::ClientCredentials { scope },
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.jump(), Action::RequestNewToken { .. }));
    assert_eq!(sim.now, UnixTime::from_secs(T0 + 240));
    assert_eq!(
        sim.requests,
        ["grant_type=client_credentials&scope=patients.read"]
    );
    sim.answer(
        serde_json::json!({"access_token":"m2m-1","token_type":"bearer","expires_in":300}),
        None,
    )
    .unwrap();
    assert_eq!(sim.lc.access_token().expose_secret(), "m2m-1");
    assert!(matches!(sim.jump(), Action::RequestNewToken { .. }));
}

#[test]
fn short_tokens_refresh_at_half_life_and_huge_ones_never_overflow() {
    let mut sim = Sim::new(
        login_set(10, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert_eq!(sim.lc.refresh_due_at(), Some(UnixTime::from_secs(T0 + 5)));
    let huge = response(
        serde_json::json!({"access_token":"a","token_type":"bearer","expires_in":u64::MAX}),
    );
    let set = TokenSet::from_grant(
        Grant::new(
            huge,
            None,
            GrantedScopes::new(
                Scopes::new(),
                Scopes::new(),
                ScopeSource::AssumedFromRequest,
            ),
            UnixTime::from_secs(T0),
        ),
        None,
    );
    assert_eq!(set.expires_at, Some(UnixTime::MAX));
    sim.lc.install(sim.now, set);
    assert!(matches!(sim.at(10_000_000), Action::UseToken));
}

#[test]
fn no_refresh_token_means_login_after_expiry() {
    let mut sim = Sim::new(
        login_set(100, None, "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(
        matches!(sim.at(60), Action::UseToken),
        "valid, nothing to refresh with"
    );
    match sim.at(100) {
        Action::LoginRequired { reason } => {
            assert_eq!(reason, LoginRequiredReason::NoRefreshToken);
            assert!(reason.to_string().contains("offline_access"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn token_set_round_trips_and_debug_is_redacted() {
    let mut set = login_set(3600, Some("rt-SECRET"), "openid");
    set.extra.insert("patient".into(), "PATIENT-123".into());
    let json = serde_json::to_string(&set).unwrap();
    let back: TokenSet = serde_json::from_str(&json).unwrap();
    assert!(
        back.refresh_token
            .unwrap()
            .ct_eq(&RefreshToken::new("rt-SECRET"))
    );
    assert_eq!(back.expires_at, set.expires_at);
    let debug = format!("{set:?}");
    assert!(
        !debug.contains("rt-SECRET") && !debug.contains("at-0"),
        "{debug}"
    );
    assert!(!json.contains("client_secret"));
    let lc = Lifecycle::new(
        set,
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
        UnixTime::from_secs(T0),
    );
    assert!(!format!("{lc:?}").contains("rt-SECRET"));
    assert!(lc.authorization_header().is_sensitive());
}

#[test]
fn a_rejected_token_is_renewed_once() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    let old = sim.lc.access_token().clone();
    sim.lc.handle_token_rejected(sim.now, &old);
    assert!(matches!(sim.poll(), Action::Refresh { .. }));
    sim.answer(
        serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600}),
        None,
    )
    .unwrap();
    // A late refusal of the old token changes nothing.
    sim.lc.handle_token_rejected(sim.now, &old);
    assert!(matches!(sim.poll(), Action::UseToken));
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn expires_in_zero_cannot_drive_a_renewal_loop() {
    let mut sim = Sim::new(
        login_set(0, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(!matches!(sim.at(0), Action::Refresh { .. }), "not at once");
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    assert_eq!(
        sim.now,
        UnixTime::from_secs(T0 + 1),
        "one min_backoff later"
    );
    sim.answer(serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":0,"refresh_token":"rt-1"}), None)
        .unwrap();
    assert!(
        !matches!(sim.poll(), Action::Refresh { .. }),
        "not again in the same second"
    );
    // A simulated minute makes at most one renewal a second.
    for _ in 0..60 {
        if let Action::Refresh { .. } = sim.jump() {
            sim.answer(
                serde_json::json!({"access_token":"at-n","token_type":"bearer","expires_in":0,"refresh_token":"rt-n"}),
                None,
            )
            .unwrap();
        }
    }
    assert!(sim.now >= UnixTime::from_secs(T0 + 61));
    assert_eq!(sim.requests.len(), 61);
}

#[test]
fn an_absolute_refresh_lifetime_survives_rotation() {
    let config =
        LifecycleConfig::default().with_refresh_token_lifetime(Some(Duration::from_secs(7200)));
    let mut set = login_set(3600, Some("rt-0"), "openid");
    set.refresh_expires_at = Some(UnixTime::from_secs(T0 + 7200));
    let mut sim = Sim::new(set, GrantKind::AuthorizationCode, config);
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.answer(serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600,"refresh_token":"rt-1"}), None)
        .unwrap();
    assert_eq!(
        sim.lc.token_set().refresh_expires_at,
        Some(UnixTime::from_secs(T0 + 7200)),
        "absolute: from the login"
    );
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.answer(
        serde_json::json!({"access_token":"at-2","token_type":"bearer","expires_in":3600,"refresh_token":"rt-2","refresh_expires_in":100}),
        None,
    )
    .unwrap();
    assert_eq!(
        sim.lc.token_set().refresh_expires_at,
        Some(sim.now.saturating_add(Duration::from_secs(100))),
        "stated wins"
    );
}

#[test]
fn driver_helpers_adopt_newer_sets_classify_failures_and_bound_hand_outs() {
    let mut sim = Sim::new(
        login_set(3600, Some("rt-0"), "openid"),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert_eq!(
        sim.lc.hand_out_until(),
        T0 + 3540,
        "until the refresh is due"
    );
    // Another process renewed: the stored set is newer and is adopted; the same set again is not.
    let mut newer = login_set(3600, Some("rt-9"), "openid");
    newer.access_token = nethealth_oidc_core::secret::AccessToken::new("at-9");
    newer.received_at = UnixTime::from_secs(T0 + 10);
    assert!(sim.lc.handle_stored(newer.clone()));
    assert!(!sim.lc.handle_stored(newer));
    assert_eq!(sim.lc.access_token().expose_secret(), "at-9");
    // A transient failure before expiry: keep serving, and hand out until the backoff ends.
    let renewal = sim
        .lc
        .poll_renewal(&stamp(UnixTime::from_secs(T0 + 3560)), &sim.ctx)
        .unwrap()
        .expect("due");
    assert!(renewal.is_refresh);
    let down = Error::Transport(TransportError::Timeout {
        endpoint: nethealth_oidc_core::Endpoint::Token,
        timeout: Duration::from_secs(30),
    });
    assert!(
        sim.lc
            .handle_renewal_error(UnixTime::from_secs(T0 + 3560), down)
            .is_ok()
    );
    assert_eq!(sim.lc.hand_out_until(), T0 + 3561);
    // invalid_grant: login required, nothing handed out.
    let renewal = sim
        .lc
        .poll_renewal(&stamp(UnixTime::from_secs(T0 + 3561)), &sim.ctx)
        .unwrap();
    assert!(renewal.is_some());
    let rejected = http::Response::builder()
        .status(400)
        .body(br#"{"error":"invalid_grant"}"#.to_vec())
        .unwrap();
    let err = sim
        .lc
        .handle_renewal_error(
            UnixTime::from_secs(T0 + 3561),
            token::parse_token_response(&rejected).unwrap_err().into(),
        )
        .unwrap_err();
    assert!(err.is_login_required(), "{err}");
    assert_eq!(sim.lc.hand_out_until(), 0);
    assert!(matches!(
        sim.lc
            .poll_renewal(&stamp(UnixTime::from_secs(T0 + 3562)), &sim.ctx),
        Err(Error::LoginRequired {
            reason: LoginRequiredReason::RefreshTokenRejected,
            source: Some(_),
        })
    ));
}

#[test]
fn a_refresh_keeps_the_launch_context_and_new_values_win() {
    let mut set = login_set(3600, Some("rt-0"), "openid");
    for (k, v) in [
        ("patient", serde_json::json!("p-123")),
        ("encounter", serde_json::json!("e-9")),
        ("need_patient_banner", serde_json::json!(true)),
        ("fhirContext", serde_json::json!([{"reference": "Group/7"}])),
    ] {
        set.extra.insert(k.into(), v);
    }
    let mut sim = Sim::new(
        set,
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
    );
    assert!(matches!(sim.jump(), Action::Refresh { .. }));
    sim.answer(
        serde_json::json!({"access_token":"at-1","token_type":"bearer","expires_in":3600,
            "need_patient_banner": false, "smart_style_url": "https://ehr.example/style"}),
        None,
    )
    .unwrap();
    let extra = &sim.lc.token_set().extra;
    assert_eq!(
        extra["patient"], "p-123",
        "kept: the response did not carry it"
    );
    assert_eq!(extra["encounter"], "e-9");
    assert_eq!(extra["fhirContext"][0]["reference"], "Group/7");
    assert_eq!(extra["need_patient_banner"], false, "the new value wins");
    assert_eq!(
        extra["smart_style_url"], "https://ehr.example/style",
        "new fields are added"
    );
}

/// A request stamp at `now` (the `jti` is fixed: the simulated provider does not check for replays).
fn stamp(now: UnixTime) -> nethealth_oidc_core::client_auth::RequestStamp {
    nethealth_oidc_core::client_auth::RequestStamp::new_inner(now, "sim-jti")
}
