//! Tracing: every step of a session leaves a span (discovery, login, token requests, renewal, JWKS, store, keyed
//! sessions), and no span or event field carries a secret or patient data. Both transports, against the local
//! Accounts site (`nethealth-oidc-testkit`) on loopback, with a capturing subscriber.
//!
//! The values checked for are the real ones of the run: the client secret, the session key, `state`, `nonce` and
//! the PKCE verifier of the pending login, the authorization code, every access, refresh and ID token, the user's
//! `sub` and userinfo, and the SMART launch context.

mod support;

use std::sync::Arc;
use std::time::Duration;

use nethealth_oidc::core::Url;
use nethealth_oidc::core::userinfo::UserInfo;
use nethealth_oidc::{
    ClientConfig, ClientOptions, ClientSecret, MemoryKeyedStore, PendingLogin, Scopes, SessionKey,
    SessionOptions, TokenSet, TransportConfig,
};
use nethealth_oidc_test_support::capture_logs;
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, TestKit, User};
use support::{ALL, REDIRECT, advance, clock_for, url};

const CLIENT_SECRET: &str = "client-secret-9f2c41d7e0";
const SESSION_KEY: &str = "session-key-5b8e03aa71c4";
const PATIENT: &str = "patient-id-77a1c9e2";
const ENCOUNTER: &str = "encounter-id-3d60f8b5";
const USERNAME: &str = "username-4c1d7e";
const PASSWORD: &str = "password-89a7e2";
const SUB: &str = "subject-id-e61b0c94";

/// The user who logs in, with values long enough to be searched for.
fn user() -> User {
    User::new(USERNAME, PASSWORD, SUB).names("Givenname-Secret", "Familyname-Secret")
}

fn browser() -> Browser {
    Browser::as_user(USERNAME, PASSWORD)
}

/// The spans a login, a refresh and a revocation must leave, and fields they must carry.
const EXPECTED: &[&str] = &[
    "span nethealth_oidc.discovery:",
    "span nethealth_oidc.http:",
    "span nethealth_oidc.login.begin:",
    "span nethealth_oidc.login.finish:",
    "grant_type=authorization_code",
    "span nethealth_oidc.sessions:",
    "op=insert",
    "span nethealth_oidc.store:",
    "op=save",
    "op=lock",
    "op=load",
    "op=clear",
    "span nethealth_oidc.renewal:",
    "role=leader",
    "span nethealth_oidc.refresh:",
    "grant_type=refresh_token",
    "span nethealth_oidc.userinfo:",
    "span nethealth_oidc.revocation:",
    "token_type=refresh_token",
    "endpoint=Jwks",
    "status=200",
    "elapsed_ms=",
];

fn spec() -> ClientSpec {
    ClientSpec::confidential("app", CLIENT_SECRET).redirect_uri(REDIRECT)
}

fn config() -> ClientConfig {
    ClientConfig::new("app", Some(ClientSecret::new(CLIENT_SECRET)))
        .with_redirect_uris(vec![url(REDIRECT)])
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_timeout(Duration::from_secs(5))
}

fn launch_context() -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({ "patient": PATIENT, "encounter": ENCOUNTER })
        .as_object()
        .expect("an object")
        .clone()
}

/// Every secret or patient value seen in a run, by name.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn new() -> Secrets {
        let mut secrets = Secrets::default();
        secrets.add("client secret", CLIENT_SECRET);
        secrets.add("session key", SESSION_KEY);
        secrets.add("patient", PATIENT);
        secrets.add("encounter", ENCOUNTER);
        secrets.add("username", USERNAME);
        secrets.add("password", PASSWORD);
        secrets.add("sub", SUB);
        secrets
    }

    fn add(&mut self, name: &str, value: &str) {
        assert!(value.len() >= 8, "{name} is long enough to be searched for");
        self.0.push((name.to_owned(), value.to_owned()));
    }

    fn pending(&mut self, pending: &PendingLogin) {
        self.add("state", pending.state().expose_secret());
        self.add("nonce", pending.nonce().expose_secret());
        let verifier = pending.code_verifier().expect("PKCE is on");
        self.add("code verifier", verifier.expose_secret());
    }

    fn callback(&mut self, callback: &str) {
        let callback: Url = callback.parse().expect("the callback is a URL");
        let code = callback.query_pairs().find(|(k, _)| k == "code");
        self.add("code", &code.expect("the callback carries a code").1);
    }

    fn token_set(&mut self, set: &TokenSet) {
        self.add("access token", set.access_token.expose_secret());
        let refresh = set.refresh_token.as_ref().expect("a refresh token");
        self.add("refresh token", refresh.expose_secret());
        let id_token = set.id_token.as_ref().expect("an ID token");
        self.add("ID token", id_token.expose_secret());
        let claims = set.id_claims.as_ref().expect("ID token claims");
        assert_eq!(claims.sub, SUB);
        assert_eq!(set.extra["patient"], PATIENT, "the launch context is kept");
    }

    fn userinfo(&mut self, info: &UserInfo) {
        assert_eq!(info.sub, SUB);
        for value in [&info.name, &info.given_name, &info.family_name, &info.email]
            .into_iter()
            .flatten()
            .filter(|v| v.len() >= 8)
        {
            self.add("userinfo claim", value);
        }
    }

    /// The names of the values found in `text`.
    fn found_in(&self, text: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, value)| text.contains(value.as_str()))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// What our crates logged: every `tracing` line, and the `log` lines of our own targets (the test's own HTTP
/// clients, the browser and reqwest, log the URLs they fetch, `state` included: that is not the library's output).
fn ours(text: &str) -> String {
    text.lines()
        .filter(|line| !line.starts_with("log ") || line.contains(" nethealth_oidc"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The spans are there and no secret is: the check of both tests.
fn check(text: &str, secrets: &Secrets) {
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|e| !text.contains(e))
        .collect();
    assert!(
        missing.is_empty(),
        "missing from the trace: {missing:?}\n{text}"
    );
    let fingerprint = SessionKey::new(SESSION_KEY).fingerprint();
    assert!(
        text.contains(&format!("session={fingerprint}")),
        "the keyed spans name the key's fingerprint\n{text}"
    );
    let leaked = secrets.found_in(text);
    assert!(
        leaked.is_empty(),
        "secrets in the trace: {leaked:?}\n{text}"
    );
    assert!(
        secrets.0.len() >= 14,
        "every secret was collected: {}",
        secrets.0.len()
    );
    // The check itself can fail: a value planted in a field of a captured event is found.
    let capture = capture_logs();
    let (name, planted) = &secrets.0[secrets.0.len() / 2];
    tracing::debug!(field = %planted, "planted");
    assert_eq!(secrets.found_in(&ours(&capture.text())), [name.as_str()]);
}

#[tokio::test]
async fn async_spans_carry_no_secret_or_patient_data() {
    let kit = TestKit::builder()
        .client(spec())
        .user(user())
        .start()
        .await
        .expect("the kit starts");
    kit.set_launch_context(launch_context());
    let mut secrets = Secrets::new();
    let capture = capture_logs();

    let clock = clock_for(&kit);
    let http = nethealth_oidc::HttpClient::new(transport()).expect("an HTTP client");
    let provider = nethealth_oidc::Provider::discover_with_clock(http, kit.issuer(), clock.clone())
        .await
        .expect("discovery");
    let client = provider
        .client(config(), ClientOptions::default())
        .expect("a client");
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).expect("a login");
    secrets.pending(&pending);
    let callback = browser()
        .login_async(auth_url.as_str(), &Consent::grant(ALL.split(' ')))
        .await
        .expect("the login page works");
    secrets.callback(&callback);
    let grant = client
        .finish_login(&pending, &url(&callback))
        .await
        .expect("the login finishes");

    let sessions = client.sessions(Arc::new(MemoryKeyedStore::new()), SessionOptions::default());
    let key = SessionKey::new(SESSION_KEY);
    let session = sessions.insert(&key, grant).await.expect("a session");
    secrets.token_set(&session.token_set());
    advance(&kit, &clock, Duration::from_secs(3600));
    session.access_token().await.expect("a refreshed token");
    secrets.token_set(&session.token_set());
    secrets.userinfo(&session.userinfo().await.expect("userinfo"));
    session.revoke().await.expect("revoked");
    sessions.remove(&key).await.expect("removed");

    let text = ours(&capture.text());
    drop(capture);
    check(&text, &secrets);
}

#[test]
fn blocking_spans_carry_no_secret_or_patient_data() {
    let kit = TestKit::builder()
        .client(spec())
        .user(user())
        .start_blocking()
        .expect("the kit starts");
    kit.set_launch_context(launch_context());
    let mut secrets = Secrets::new();
    let capture = capture_logs();

    let clock = clock_for(&kit);
    let http = nethealth_oidc::blocking::HttpClient::new(transport());
    let provider =
        nethealth_oidc::blocking::Provider::discover_with_clock(http, kit.issuer(), clock.clone())
            .expect("discovery");
    let client = provider
        .client(config(), ClientOptions::default())
        .expect("a client");
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).expect("a login");
    secrets.pending(&pending);
    let callback = browser()
        .login(auth_url.as_str(), &Consent::grant(ALL.split(' ')))
        .expect("the login page works");
    secrets.callback(&callback);
    let grant = client
        .finish_login(&pending, &url(&callback))
        .expect("the login finishes");

    let sessions = client.sessions(Arc::new(MemoryKeyedStore::new()), SessionOptions::default());
    let key = SessionKey::new(SESSION_KEY);
    let session = sessions.insert(&key, grant).expect("a session");
    secrets.token_set(&session.token_set());
    advance(&kit, &clock, Duration::from_secs(3600));
    session.access_token().expect("a refreshed token");
    secrets.token_set(&session.token_set());
    secrets.userinfo(&session.userinfo().expect("userinfo"));
    session.revoke().expect("revoked");
    sessions.remove(&key).expect("removed");

    let text = ours(&capture.text());
    drop(capture);
    check(&text, &secrets);
}
