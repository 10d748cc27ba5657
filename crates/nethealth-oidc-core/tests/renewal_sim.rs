//! The renewal machine (`renewal::Renewal`) driven by a simulated driver: an in-memory store that can fail, a
//! scripted token endpoint, a simulated clock. No sockets, no sleeps: every path the transports' end-to-end tests
//! take (rotation, another process's renewal, invalid_grant, dead sets, store outages, unsaved sets, ID-token
//! continuity, client credentials, backoff) is decided here, so a new driver is correct by construction.

mod id_token_support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use id_token_support::{CLIENT_ID, ISSUER, NOW, RSA_A, header, jwks};
use nethealth_oidc_core::client_auth::RequestStamp;
use nethealth_oidc_core::context::{ClientContext, ClientOptions, Grant};
use nethealth_oidc_core::discovery::ProviderMetadata;
use nethealth_oidc_core::jwks::JwkSet;
use nethealth_oidc_core::lifecycle::{GrantKind, LifecycleConfig, TokenSet};
use nethealth_oidc_core::renewal::{Event, SessionState, Step};
use nethealth_oidc_core::secret::ClientSecret;
use nethealth_oidc_core::store::{SessionOptions, StoreError};
use nethealth_oidc_core::token;
use nethealth_oidc_core::{
    ClientConfig, Error, GrantedScopes, LoginRequiredReason, ScopeSource, Scopes, UnixTime,
};
use serde_json::{Value, json};

fn context() -> ClientContext {
    let metadata: ProviderMetadata = serde_json::from_value(json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/connect/authorize"),
        "token_endpoint": format!("{ISSUER}/connect/token"),
        "jwks_uri": format!("{ISSUER}/.well-known/jwks"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .unwrap();
    let client = ClientConfig::new(CLIENT_ID, Some(ClientSecret::new("s")));
    ClientContext::new(metadata, client, ClientOptions::default()).unwrap()
}

fn ok(body: Value) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap()
}

fn oauth_error(status: u16, code: &str) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(json!({ "error": code }).to_string().into_bytes())
        .unwrap()
}

fn id_claims(sub: &str, iat: u64) -> Value {
    json!({"iss": ISSUER, "aud": CLIENT_ID, "sub": sub, "exp": iat + 300, "iat": iat, "auth_time": NOW - 20})
}

fn id_token(sub: &str, iat: u64) -> String {
    RSA_A.token(&header("RS256", Some("a")), &id_claims(sub, iat))
}

/// A login's set received at `at`, with an access token `at-N` and refresh token `rt-N`.
fn set(n: u32, at: u64, expires_in: u64) -> TokenSet {
    let body = json!({"access_token": format!("at-{n}"), "token_type": "Bearer",
        "expires_in": expires_in, "refresh_token": format!("rt-{n}"), "scope": "openid api"});
    let response = token::parse_token_response(&ok(body)).unwrap();
    let claims = serde_json::from_value(id_claims("alice", NOW)).unwrap();
    let granted = GrantedScopes::new(
        Scopes::parse("openid api"),
        Scopes::parse("openid api"),
        ScopeSource::TokenResponse,
    );
    let grant = Grant::new(response, Some(claims), granted, UnixTime::from_secs(at));
    TokenSet::from_grant(grant, None)
}

/// The simulated store: a set, a log, and failures to inject.
#[derive(Default)]
struct Store {
    set: Option<TokenSet>,
    fail_lock: bool,
    fail_save: bool,
    /// Loads answered from here first (what another process stored meanwhile).
    scripted_loads: VecDeque<Option<TokenSet>>,
}

fn down() -> Error {
    StoreError::Unavailable {
        store: "sim".into(),
        reason: "down".into(),
    }
    .into()
}

struct Sim {
    state: SessionState,
    ctx: ClientContext,
    keys: JwkSet,
    now: u64,
    store: Store,
    /// The token endpoint's answers, in order; each request's form body is logged.
    answers: VecDeque<Result<http::Response<Vec<u8>>, Error>>,
    requests: Vec<String>,
    /// Whether each request was to carry a DPoP proof.
    dpop: Vec<bool>,
    hooks: Arc<Mutex<Vec<String>>>,
    steps: Vec<&'static str>,
}

impl Sim {
    fn new(initial: TokenSet, kind: GrantKind) -> Sim {
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&hooks);
        let mut options = SessionOptions::default().with_lifecycle(LifecycleConfig::default());
        options.hooks.push(Arc::new(move |set: &TokenSet| {
            seen.lock()
                .unwrap()
                .push(set.access_token.expose_secret().to_owned())
        }));
        Sim {
            state: SessionState::new(initial.clone(), kind, options, UnixTime::from_secs(NOW)),
            ctx: context(),
            keys: jwks(&[RSA_A.jwk(Some("a"))]),
            now: NOW,
            store: Store {
                set: Some(initial),
                ..Store::default()
            },
            answers: VecDeque::new(),
            requests: Vec::new(),
            dpop: Vec::new(),
            hooks,
            steps: Vec::new(),
        }
    }

    fn answer(&mut self, response: http::Response<Vec<u8>>) -> &mut Self {
        self.answers.push_back(Ok(response));
        self
    }

    /// The caller's view: the cached token while it may be handed out, else a renewal.
    fn access_token(&mut self) -> Result<String, Error> {
        if let Some(token) = self.state.fresh_token(self.now) {
            return Ok(token.expose_secret().to_owned());
        }
        self.renew().map(|token| token.expose_secret().to_owned())
    }

    /// Runs one renewal to its end, doing the I/O it asks for.
    fn renew(&mut self) -> Result<Arc<nethealth_oidc_core::secret::AccessToken>, Error> {
        self.steps.clear();
        let mut renewal = self.state.renewal(&self.ctx);
        let mut locked = false;
        for _ in 0..20 {
            let stamp = RequestStamp::new_inner(UnixTime::from_secs(self.now), "jti");
            let step = renewal.poll(&stamp);
            let event = match step {
                Step::Lock => {
                    self.steps.push("lock");
                    locked = !self.store.fail_lock;
                    Event::Locked(if locked { Ok(()) } else { Err(down()) })
                }
                Step::Load => {
                    self.steps.push("load");
                    assert!(locked, "the store is read under its lock");
                    let loaded = match self.store.scripted_loads.pop_front() {
                        Some(scripted) => scripted,
                        None => self.store.set.clone(),
                    };
                    Event::Loaded(Ok(loaded))
                }
                Step::Save(set) => {
                    self.steps.push("save");
                    assert!(locked, "the store is written under its lock");
                    if self.store.fail_save {
                        Event::Saved(Err(down()))
                    } else {
                        self.store.set = Some(set);
                        Event::Saved(Ok(()))
                    }
                }
                Step::Clear => {
                    self.steps.push("clear");
                    self.store.set = None;
                    Event::Cleared(Ok(()))
                }
                Step::Send { request, dpop_key } => {
                    self.steps.push("send");
                    self.dpop.push(dpop_key.is_some());
                    self.requests
                        .push(String::from_utf8(request.body().clone()).unwrap());
                    Event::Response(self.answers.pop_front().expect("a scripted answer"))
                }
                Step::VerifyIdToken => {
                    self.steps.push("verify");
                    Event::Verified(renewal.verify_id_token(&self.keys))
                }
                Step::Unlock => {
                    self.steps.push("unlock");
                    assert!(locked, "only a lock taken is released");
                    locked = false;
                    Event::Unlocked
                }
                Step::Done(result) => {
                    self.steps.push("done");
                    assert!(
                        !locked,
                        "the lock is released before the outcome is handed out"
                    );
                    return result;
                }
                other => panic!("unknown step {other:?}"),
            };
            renewal.handle(event);
        }
        panic!("the renewal did not finish in 20 steps: {:?}", self.steps)
    }

    fn stored_access_token(&self) -> Option<String> {
        self.store
            .set
            .as_ref()
            .map(|s| s.access_token.expose_secret().to_owned())
    }
}

const DUE: u64 = NOW + 3540;

#[test]
fn a_due_token_is_refreshed_stored_then_handed_out() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.now = DUE - 1;
    assert_eq!(sim.access_token().unwrap(), "at-0");
    assert!(sim.steps.is_empty(), "no renewal before it is due");
    sim.now = DUE;
    sim.answer(ok(
        json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt-1"}),
    ));
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(
        sim.steps,
        ["lock", "load", "send", "save", "unlock", "done"]
    );
    assert_eq!(
        sim.requests,
        ["grant_type=refresh_token&refresh_token=rt-0"]
    );
    // The rotated refresh token was stored before the new access token was handed out.
    let stored = sim.store.set.clone().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "rt-1");
    assert_eq!(*sim.hooks.lock().unwrap(), ["at-1"]);
    // The hot path now serves it without a renewal.
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn a_set_another_process_renewed_is_adopted_without_a_request() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.store.set = Some(set(7, DUE - 5, 3600));
    sim.now = DUE;
    assert_eq!(sim.access_token().unwrap(), "at-7");
    assert_eq!(sim.steps, ["lock", "load", "unlock", "done"]);
    assert!(sim.requests.is_empty());
}

#[test]
fn invalid_grant_rereads_the_store_and_adopts_a_rotation_by_another_process() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.now = DUE;
    sim.answer(oauth_error(400, "invalid_grant"));
    // Between our lock's re-read and our request, another process rotated the refresh token.
    sim.store.scripted_loads.push_back(Some(set(0, NOW, 3600)));
    sim.store.set = Some(set(8, DUE, 3600));
    assert_eq!(sim.access_token().unwrap(), "at-8");
    assert_eq!(
        sim.steps,
        ["lock", "load", "send", "load", "unlock", "done"]
    );
    assert_eq!(
        sim.requests.len(),
        1,
        "no second request: the adopted set is fresh"
    );
}

#[test]
fn invalid_grant_with_nothing_newer_ends_the_session_and_clears_the_dead_set() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.now = DUE;
    sim.answer(oauth_error(400, "invalid_grant"));
    let err = sim.access_token().unwrap_err();
    assert_eq!(
        err.login_required_reason(),
        Some(LoginRequiredReason::RefreshTokenRejected)
    );
    assert_eq!(
        sim.steps,
        [
            "lock", "load", "send", "load", "load", "clear", "unlock", "done"
        ]
    );
    assert!(sim.store.set.is_none(), "the dead set left the store");
    // From now on: login required, without a request.
    assert!(sim.access_token().unwrap_err().is_login_required());
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn a_dead_set_is_not_cleared_when_the_store_holds_another_one_by_then() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.now = DUE;
    sim.answer(oauth_error(400, "invalid_grant"));
    // The re-read after invalid_grant still finds our set; by the dead-set check another process stored a new
    // one (with an older timestamp, so it is not adopted either): it is left alone.
    sim.store.scripted_loads.extend([
        Some(set(0, NOW, 3600)),
        Some(set(0, NOW, 3600)),
        Some(set(9, NOW - 100, 3600)),
    ]);
    assert!(sim.access_token().unwrap_err().is_login_required());
    assert_eq!(
        sim.steps,
        ["lock", "load", "send", "load", "load", "unlock", "done"]
    );
    assert!(sim.store.set.is_some());
}

#[test]
fn an_expired_refresh_token_requires_login_without_a_request() {
    let mut initial = set(0, NOW, 3600);
    initial.refresh_expires_at = Some(UnixTime::from_secs(NOW + 100));
    let mut sim = Sim::new(initial, GrantKind::AuthorizationCode);
    sim.now = DUE;
    let err = sim.access_token().unwrap_err();
    assert_eq!(
        err.login_required_reason(),
        Some(LoginRequiredReason::RefreshTokenExpired)
    );
    assert!(sim.requests.is_empty());
    assert_eq!(
        sim.steps,
        ["lock", "load", "load", "clear", "unlock", "done"]
    );
}

#[test]
fn a_store_that_is_down_leaves_the_valid_token_and_then_says_why() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.store.fail_lock = true;
    sim.now = DUE;
    assert_eq!(sim.access_token().unwrap(), "at-0", "still valid: served");
    assert_eq!(sim.steps, ["lock", "done"]);
    // During the backoff the hot path serves it without trying again.
    assert_eq!(sim.access_token().unwrap(), "at-0");
    assert_eq!(sim.steps, ["lock", "done"]);
    sim.now = NOW + 3600;
    let err = sim.access_token().unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(sim.requests.is_empty());
}

#[test]
fn a_set_whose_storing_failed_is_stored_first_next_time_with_no_second_refresh() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.store.fail_save = true;
    sim.now = DUE;
    sim.answer(ok(
        json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt-1"}),
    ));
    assert_eq!(
        sim.access_token().unwrap(),
        "at-0",
        "not handed out unstored"
    );
    assert_eq!(sim.stored_access_token().as_deref(), Some("at-0"));
    assert!(sim.hooks.lock().unwrap().is_empty());
    sim.store.fail_save = false;
    sim.now = DUE + 2;
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(sim.steps, ["lock", "load", "save", "unlock", "done"]);
    assert_eq!(sim.stored_access_token().as_deref(), Some("at-1"));
    assert_eq!(
        sim.requests.len(),
        1,
        "the rotated refresh token was not lost"
    );
}

#[test]
fn a_kept_aside_set_older_than_the_stored_one_is_dropped() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.store.fail_save = true;
    sim.now = DUE;
    sim.answer(ok(
        json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}),
    ));
    assert_eq!(sim.access_token().unwrap(), "at-0");
    sim.store.fail_save = false;
    // Meanwhile another process renewed (its set is newer than ours) and the store fenced our save.
    sim.store.set = Some(set(5, DUE + 1, 3600));
    sim.now = DUE + 2;
    assert_eq!(sim.access_token().unwrap(), "at-5");
    assert_eq!(sim.steps, ["lock", "load", "unlock", "done"]);
    assert_eq!(sim.stored_access_token().as_deref(), Some("at-5"));
}

#[test]
fn a_failing_token_endpoint_backs_off_while_the_token_is_valid() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.now = DUE;
    sim.answer(oauth_error(503, "temporarily_unavailable"));
    assert_eq!(sim.access_token().unwrap(), "at-0");
    assert_eq!(
        sim.access_token().unwrap(),
        "at-0",
        "no retry during the backoff"
    );
    assert_eq!(sim.requests.len(), 1);
    // A garbage body after the backoff: a typed error, the token still served.
    sim.now = DUE + 1;
    sim.answer(ok(json!(["not", "a", "token", "response"])));
    assert_eq!(sim.access_token().unwrap(), "at-0");
    assert_eq!(sim.requests.len(), 2);
    // After expiry a failure reaches the caller.
    sim.now = NOW + 3600;
    sim.answers.push_back(Err(down()));
    assert!(sim.access_token().is_err());
    assert_eq!(sim.requests.len(), 3);
}

#[test]
fn client_credentials_are_requested_again_with_the_same_scopes() {
    let mut sim = Sim::new(
        set(0, NOW, 3600),
        GrantKind::ClientCredentials {
            scope: Scopes::parse("system/Patient.rs"),
        },
    );
    sim.now = DUE;
    sim.answer(ok(
        json!({"access_token": "cc-1", "token_type": "Bearer", "expires_in": 3600}),
    ));
    assert_eq!(sim.access_token().unwrap(), "cc-1");
    assert_eq!(
        sim.requests,
        ["grant_type=client_credentials&scope=system%2FPatient.rs"]
    );
    assert_eq!(
        sim.steps,
        ["lock", "load", "send", "save", "unlock", "done"]
    );
}

#[test]
fn a_refreshed_id_token_is_verified_and_must_continue_the_login() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.now = DUE;
    sim.answer(ok(
        json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
        "id_token": id_token("alice", DUE)}),
    ));
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(
        sim.steps,
        ["lock", "load", "send", "verify", "save", "unlock", "done"]
    );
    // Another user's ID token: refused, nothing installed or stored, the valid token kept.
    sim.now = DUE + 3540;
    sim.answer(ok(
        json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
        "id_token": id_token("mallory", DUE + 3540)}),
    ));
    assert_eq!(
        sim.access_token().unwrap(),
        "at-1",
        "the valid token is kept"
    );
    assert_eq!(
        sim.steps,
        ["lock", "load", "send", "verify", "unlock", "done"],
        "nothing saved"
    );
    assert_eq!(sim.stored_access_token().as_deref(), Some("at-1"));
    // A token signed with a key the provider does not publish: refused the same way.
    sim.now = DUE + 3542;
    sim.keys = JwkSet::default();
    sim.answer(ok(
        json!({"access_token": "at-3", "token_type": "Bearer", "expires_in": 3600,
        "id_token": id_token("alice", DUE + 3542)}),
    ));
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(sim.requests.len(), 3);
    assert_eq!(sim.hooks.lock().unwrap().as_slice(), ["at-1"]);
}

#[test]
fn a_rejected_token_is_renewed_at_once() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.now = NOW + 10;
    let token = sim.state.fresh_token(sim.now).unwrap();
    sim.state
        .token_rejected(UnixTime::from_secs(sim.now), &token);
    sim.state
        .token_rejected(UnixTime::from_secs(sim.now), &token);
    sim.answer(ok(
        json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}),
    ));
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn a_driver_that_reports_the_wrong_thing_gets_an_error_not_a_panic() {
    let sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    let stamp = RequestStamp::new_inner(UnixTime::from_secs(DUE), "jti");
    let mut renewal = sim.state.renewal(&sim.ctx);
    assert!(matches!(renewal.poll(&stamp), Step::Lock));
    renewal.handle(Event::Saved(Ok(())));
    let Step::Done(Err(err)) = renewal.poll(&stamp) else {
        panic!("a misreport ends the renewal")
    };
    assert!(err.to_string().contains("Saved"), "{err}");
    assert!(matches!(renewal.poll(&stamp), Step::Done(Err(_))));
    // A verify asked for at the wrong time is refused too.
    assert!(renewal.verify_id_token(&JwkSet::default()).is_err());
    // The next renewal starts normally.
    let mut next = sim.state.renewal(&sim.ctx);
    assert!(matches!(next.poll(&stamp), Step::Lock));
}

#[test]
fn ending_the_session_hands_nothing_out() {
    let mut sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    sim.state.end(LoginRequiredReason::Ended);
    assert!(sim.state.fresh_token(NOW + 1).is_none());
    let err = sim.access_token().unwrap_err();
    assert_eq!(
        err.login_required_reason(),
        Some(LoginRequiredReason::Ended)
    );
    assert!(sim.requests.is_empty());
}

#[test]
fn a_dpop_bound_set_renews_with_its_key_and_one_without_it_never_sends() {
    let mut bound = set(0, NOW, 3600);
    bound.token_type = "dpop".into();
    bound.dpop_key = Some(nethealth_oidc_core::dpop::DpopKey::generate(&mut rand::rng()).unwrap());
    let mut sim = Sim::new(bound.clone(), GrantKind::AuthorizationCode);
    sim.now = DUE;
    sim.answer(ok(
        json!({"access_token": "at-1", "token_type": "DPoP", "expires_in": 3600}),
    ));
    assert_eq!(sim.access_token().unwrap(), "at-1");
    assert_eq!(sim.dpop, [true]);
    assert!(
        sim.state.dpop_key().unwrap().is_some(),
        "the key survives the refresh"
    );

    // Resumed from a store that did not keep the key: no request is sent without its proof.
    bound.dpop_key = None;
    let mut sim = Sim::new(bound, GrantKind::AuthorizationCode);
    sim.now = DUE;
    assert_eq!(sim.access_token().unwrap(), "at-0", "still valid: served");
    assert!(sim.requests.is_empty());
    sim.now = NOW + 3600;
    let err = sim.access_token().unwrap_err();
    assert!(err.to_string().to_lowercase().contains("dpop"), "{err}");
    assert!(sim.requests.is_empty());
}

#[test]
fn steps_events_and_actions_never_show_a_secret_in_debug() {
    let sim = Sim::new(set(0, NOW, 3600), GrantKind::AuthorizationCode);
    let stamp = RequestStamp::new_inner(UnixTime::from_secs(DUE), "jti");
    let mut renewal = sim.state.renewal(&sim.ctx);
    let mut shown = vec![format!("{:?}", renewal.poll(&stamp))];
    renewal.handle(Event::Locked(Ok(())));
    shown.push(format!("{:?}", renewal.poll(&stamp)));
    let loaded = Event::Loaded(Ok(sim.store.set.clone()));
    shown.push(format!("{loaded:?}"));
    renewal.handle(loaded);
    let send = renewal.poll(&stamp);
    assert!(matches!(send, Step::Send { .. }), "{send:?}");
    shown.push(format!("{send:?}"));
    let answer = Event::Response(Ok(ok(json!({"access_token": "at-secret-1",
        "token_type": "Bearer", "refresh_token": "rt-secret-1"}))));
    shown.push(format!("{answer:?}"));
    renewal.handle(answer);
    let save = renewal.poll(&stamp);
    shown.push(format!("{save:?}"));
    let verified = Event::Verified(Ok(serde_json::from_value(id_claims("alice", NOW)).unwrap()));
    assert!(
        !format!("{verified:?}").contains("alice"),
        "no ID-token claim in {verified:?}"
    );
    shown.push(format!("{verified:?}"));
    let mut lifecycle = nethealth_oidc_core::lifecycle::Lifecycle::new(
        set(0, NOW, 3600),
        GrantKind::AuthorizationCode,
        LifecycleConfig::default(),
        UnixTime::from_secs(NOW),
    );
    shown.push(format!("{:?}", lifecycle.poll_action(&stamp, &sim.ctx)));
    let all = shown.join("\n");
    assert!(
        all.contains("POST https://accounts.example.com/connect/token"),
        "{all}"
    );
    for secret in [
        "rt-0",
        "at-0",
        "at-secret-1",
        "rt-secret-1",
        "refresh_token=",
    ] {
        assert!(!all.contains(secret), "{secret} shown in:\n{all}");
    }
}
