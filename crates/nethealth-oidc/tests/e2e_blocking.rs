//! The whole flow through the blocking API (no async runtime anywhere in the client) against the local Accounts site (`nethealth-oidc-testkit`) on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use nethealth_oidc::blocking::{HttpClient, Provider};
use nethealth_oidc::core::authorize::CallbackError;
use nethealth_oidc::core::discovery::DiscoveryError;
use nethealth_oidc::core::id_token::IdTokenError;
use nethealth_oidc::core::{ScopeSource, TransportError};
use nethealth_oidc::{
    ClientMetadata, ClientOptions, Error, FileStore, NetHealthRegistration, Pkce, Scopes,
    SessionOptions, TokenStore, TransportConfig,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, Fault, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

fn http() -> HttpClient {
    HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(5)))
}

fn kit(spec: ClientSpec) -> TestKit {
    TestKit::builder()
        .client(spec)
        .dynamic_registration(true)
        .start_blocking()
        .expect("the kit starts")
}

fn confidential() -> ClientSpec {
    ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT)
}

fn get_req(url: &str) -> http::Request<Vec<u8>> {
    http::Request::get(url).body(Vec::new()).unwrap()
}

fn post_req(url: &str) -> http::Request<Vec<u8>> {
    http::Request::post(url)
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .unwrap()
}

fn config() -> nethealth_oidc::ClientConfig {
    nethealth_oidc::ClientConfig::new("app", Some(nethealth_oidc::ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![url(REDIRECT)])
}

/// The site's clock for the client, and a client of the site's confidential app.
fn client_at(
    kit: &TestKit,
) -> (
    Arc<nethealth_oidc::ManualClock>,
    nethealth_oidc::blocking::Client,
) {
    let clock = clock_for(kit);
    let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone()).unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    (clock, client)
}

fn login(
    client: &nethealth_oidc::blocking::Client,
    consent: Consent,
) -> Result<nethealth_oidc::Grant, Error> {
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL))?;
    let callback = Browser::new()
        .login(auth_url.as_str(), &consent)
        .expect("the login page works");
    client.finish_login(&pending, &url(&callback))
}

#[test]
fn register_login_partial_consent_call_refresh_revoke() {
    let kit = kit(confidential());
    let clock = clock_for(&kit);
    let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone()).unwrap();

    // 1. Register at /api/Clients/Register (ASP.NET answers in PascalCase).
    let metadata = ClientMetadata::new("Clinic app", vec![url(REDIRECT)]).with_scope(ALL);
    let registered = provider
        .register_net_health(&NetHealthRegistration::default(), &metadata, None)
        .unwrap();
    assert!(registered.client_secret.is_some());
    let client = provider
        .client(registered.to_client_config(), ClientOptions::default())
        .unwrap();

    // 2. Log in; the user unticks patients.write.
    kit.clear_transcript();
    let grant = login(&client, Consent::grant(["offline_access", "patients.read"])).unwrap();
    assert!(grant.is_partial());
    assert_eq!(grant.refused(), Scopes::parse("patients.write"));
    assert_eq!(
        grant.granted.source(),
        ScopeSource::AccessTokenClaim,
        "IdentityServer3 sends no scope field"
    );
    assert_eq!(
        kit.transcript(),
        [
            "GET /connect/authorize",
            "POST /connect/consent",
            "POST /connect/token"
        ],
        "no extra requests: discovery and keys are cached"
    );

    // 3. Call the API; the refused scope is refused plainly.
    let fired = Arc::new(AtomicUsize::new(0));
    let hook = fired.clone();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new(dir.path().join("tokens.json")));
    let options = SessionOptions::default()
        .with_store(store.clone())
        .on_tokens(move |_| {
            hook.fetch_add(1, Ordering::SeqCst);
        });
    let session = client.session(grant, options).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert!(session.allows("patients.read") && !session.allows("patients.write"));
    let api = session.authorized(ureq::Agent::new_with_defaults());
    let get = api.send(get_req(&kit.api_url())).unwrap();
    assert_eq!(get.status(), 200);
    let post = api.send(post_req(&kit.api_url())).unwrap();
    assert_eq!(post.status(), 403);
    let challenge = post.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let me = session.userinfo().unwrap();
    assert_eq!(
        Some(me.sub.as_str()),
        session
            .token_set()
            .id_claims
            .as_ref()
            .map(|c| c.sub.as_str())
    );

    // 4. Let the token expire; exactly one refresh; the rotated refresh token is stored.
    let first = session.access_token().unwrap();
    let stored_before = store.load().unwrap().unwrap().refresh_token.unwrap();
    let token_requests = kit.requests(Endpoint::Token);
    advance(&kit, &clock, Duration::from_secs(3600));
    let second = session.access_token().unwrap();
    assert!(!second.ct_eq(&first));
    assert_eq!(kit.requests(Endpoint::Token), token_requests + 1);
    let stored_after = store.load().unwrap().unwrap();
    assert!(
        !stored_after
            .refresh_token
            .as_ref()
            .unwrap()
            .ct_eq(&stored_before),
        "rotated and stored"
    );
    assert!(stored_after.access_token.ct_eq(&second));
    assert_eq!(
        fired.load(Ordering::SeqCst),
        2,
        "the hook fired for the new set"
    );
    assert!(
        !session.allows("patients.write"),
        "a refresh never widens the grant"
    );
    let get = api.send(get_req(&kit.api_url())).unwrap();
    assert_eq!(get.status(), 200);

    // Revoke: the store is cleared and the session needs a new login.
    session.revoke().unwrap();
    assert!(store.load().unwrap().is_none());
    let err = session.access_token().unwrap_err();
    assert!(err.is_login_required(), "{err}");
}

#[test]
fn consent_denied_is_its_own_error() {
    let kit = kit(confidential());
    let provider = Provider::discover(http(), kit.issuer()).unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let err = login(&client, Consent::Deny).unwrap_err();
    assert!(err.is_consent_denied(), "{err:?}");
    assert!(matches!(
        err,
        Error::Callback(CallbackError::AccessDenied { .. })
    ));
    assert_eq!(
        kit.requests(Endpoint::Token),
        0,
        "no code exchange after a refusal"
    );
}

#[test]
fn a_callback_with_a_wrong_state_is_refused() {
    let kit = kit(confidential());
    let provider = Provider::discover(http(), kit.issuer()).unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let (auth_url, _pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
    let (_, other_pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
    let callback = Browser::new()
        .login(auth_url.as_str(), &Consent::GrantAll)
        .unwrap();
    let err = client
        .finish_login(&other_pending, &url(&callback))
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::StateMismatch)),
        "{err:?}"
    );
    assert_eq!(kit.requests(Endpoint::Token), 0);
}

#[test]
fn a_wrong_iss_on_the_callback_is_refused() {
    let kit = kit(confidential());
    kit.set_callback_iss(Some("https://evil.example"));
    let provider = Provider::discover(http(), kit.issuer()).unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let err = login(&client, Consent::GrantAll).unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::IssMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn a_wrong_issuer_in_discovery_is_refused() {
    let kit = kit(confidential());
    kit.set_discovery_issuer(Some("https://evil.example"));
    let err = Provider::discover(http(), kit.issuer()).unwrap_err();
    assert!(
        matches!(err, Error::Discovery(DiscoveryError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn unexpected_code_verifier_says_to_turn_pkce_off() {
    let kit = kit(confidential().require_pkce(false));
    let provider = Provider::discover(http(), kit.issuer()).unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let err = login(&client, Consent::GrantAll).unwrap_err();
    assert!(err.to_string().contains("turn PKCE off"), "{err}");
    let client = provider
        .client(config(), ClientOptions::default().with_pkce(Pkce::Disabled))
        .unwrap();
    login(&client, Consent::GrantAll).unwrap();
}

#[test]
fn a_key_rotated_between_logins_is_fetched_once_and_refetches_are_rate_limited() {
    let kit = kit(confidential());
    let (clock, client) = client_at(&kit);
    login(&client, Consent::GrantAll).unwrap();
    assert_eq!(kit.requests(Endpoint::Jwks), 1);

    // A published rotation: one refetch, then the login succeeds.
    advance(&kit, &clock, Duration::from_secs(61));
    kit.rotate_keys();
    login(&client, Consent::GrantAll).unwrap();
    assert_eq!(kit.requests(Endpoint::Jwks), 2);

    // Signed with a key not yet published: the refetch happens once per minute at most.
    advance(&kit, &clock, Duration::from_secs(61));
    kit.rotate_keys_unpublished();
    let err = login(&client, Consent::GrantAll).unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::UnknownKey { .. })),
        "{err:?}"
    );
    assert_eq!(kit.requests(Endpoint::Jwks), 3);
    let err = login(&client, Consent::GrantAll).unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::UnknownKey { .. })),
        "{err:?}"
    );
    assert_eq!(kit.requests(Endpoint::Jwks), 3, "rate-limited");
    kit.publish_keys();
    advance(&kit, &clock, Duration::from_secs(61));
    login(&client, Consent::GrantAll).unwrap();
    assert_eq!(kit.requests(Endpoint::Jwks), 4);
}

#[test]
fn rfc7591_registration_and_public_clients() {
    let kit = kit(confidential());
    let provider = Provider::discover(http(), kit.issuer()).unwrap();
    let metadata = ClientMetadata::new("Public app", vec![url(REDIRECT)])
        .with_scope(ALL)
        .with_auth_method(nethealth_oidc::TokenAuthMethod::None);
    let registered = provider.register(&metadata, None).unwrap();
    assert!(registered.client_secret.is_none());
    let client = provider
        .client(registered.to_client_config(), ClientOptions::default())
        .unwrap();
    let grant = login(&client, Consent::GrantAll).unwrap();
    assert!(!grant.is_partial());
}

#[test]
fn client_secret_post_is_used_when_registered() {
    let kit = kit(confidential());
    let provider = Provider::discover(http(), kit.issuer()).unwrap();
    let config = config().with_auth_method(nethealth_oidc::TokenAuthMethod::ClientSecretPost);
    let client = provider.client(config, ClientOptions::default()).unwrap();
    assert_eq!(
        client.context().auth_method(),
        nethealth_oidc::TokenAuthMethod::ClientSecretPost
    );
    login(&client, Consent::GrantAll).unwrap();
}

#[test]
fn sixty_four_threads_at_expiry_cause_one_refresh() {
    let kit = kit(confidential());
    let (clock, client) = client_at(&kit);
    let grant = login(&client, Consent::GrantAll).unwrap();
    let session = client.session(grant, SessionOptions::default()).unwrap();
    let before = kit.requests(Endpoint::Token);
    advance(&kit, &clock, Duration::from_secs(3600));
    // Slow the refresh down so that every thread arrives while it is in flight.
    kit.fail_next(Endpoint::Token, 1, Fault::Delay(Duration::from_millis(200)));
    let barrier = Arc::new(std::sync::Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let session = session.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                session.access_token()
            })
        })
        .collect();
    let tokens: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert_eq!(
        kit.requests(Endpoint::Token),
        before + 1,
        "exactly one refresh request"
    );
    assert!(
        tokens.iter().all(|t| t.ct_eq(&tokens[0])),
        "every thread got the same new token"
    );
}

#[test]
fn an_outage_keeps_serving_a_valid_token() {
    let kit = kit(confidential());
    let (clock, client) = client_at(&kit);
    let grant = login(&client, Consent::GrantAll).unwrap();
    let session = client.session(grant, SessionOptions::default()).unwrap();
    let first = session.access_token().unwrap();
    // Due for refresh (a minute before expiry), but the token endpoint is down.
    advance(&kit, &clock, Duration::from_secs(3570));
    kit.fail_always(Endpoint::Token, Fault::Status(503));
    let served = session.access_token().unwrap();
    assert!(
        served.ct_eq(&first),
        "a transient failure before expiry is not an error"
    );
    // Past expiry and still down: a typed, transient error.
    advance(&kit, &clock, Duration::from_secs(60));
    let err = session.access_token().unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    kit.clear_faults();
    advance(&kit, &clock, Duration::from_secs(120));
    assert!(!session.access_token().unwrap().ct_eq(&first));
}

#[test]
fn a_store_that_cannot_save_fails_the_caller_and_loses_nothing() {
    #[derive(Debug, Default)]
    struct Flaky {
        inner: nethealth_oidc::MemoryStore,
        broken: std::sync::atomic::AtomicBool,
    }
    impl TokenStore for Flaky {
        fn load(&self) -> Result<Option<nethealth_oidc::TokenSet>, nethealth_oidc::StoreError> {
            self.inner.load()
        }
        fn save(&self, set: &nethealth_oidc::TokenSet) -> Result<(), nethealth_oidc::StoreError> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(nethealth_oidc::StoreError::Other("disk full".into()));
            }
            self.inner.save(set)
        }
        fn clear(&self) -> Result<(), nethealth_oidc::StoreError> {
            self.inner.clear()
        }
    }
    let kit = kit(confidential());
    let (clock, client) = client_at(&kit);
    let grant = login(&client, Consent::GrantAll).unwrap();
    let store = Arc::new(Flaky::default());
    let session = client
        .session(grant, SessionOptions::default().with_store(store.clone()))
        .unwrap();
    let old = store.load().unwrap().unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    store.broken.store(true, Ordering::SeqCst);
    let err = session.access_token().unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(
        store
            .load()
            .unwrap()
            .unwrap()
            .access_token
            .ct_eq(&old.access_token),
        "the stored set is the old one"
    );
    // The disk recovers: the rotated set (kept aside) is stored before the token is handed out; no new request.
    let requests = kit.requests(Endpoint::Token);
    store.broken.store(false, Ordering::SeqCst);
    let token = session.access_token().unwrap();
    assert_eq!(
        kit.requests(Endpoint::Token),
        requests,
        "the rotated refresh token was not lost"
    );
    assert!(store.load().unwrap().unwrap().access_token.ct_eq(&token));
}

#[test]
fn two_processes_sharing_a_file_store_refresh_once() {
    let kit = kit(confidential());
    let (clock, client) = client_at(&kit);
    let grant = login(&client, Consent::GrantAll).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let a = client
        .session(
            grant,
            SessionOptions::default().with_store(Arc::new(FileStore::new(&path))),
        )
        .unwrap();
    // The second "process" resumes from the same file.
    let b = client
        .resume(SessionOptions::default().with_store(Arc::new(FileStore::new(&path))))
        .unwrap()
        .expect("a stored session");
    advance(&kit, &clock, Duration::from_secs(3600));
    let before = kit.requests(Endpoint::Token);
    let ta = a.access_token().unwrap();
    let tb = b.access_token().unwrap();
    assert_eq!(
        kit.requests(Endpoint::Token),
        before + 1,
        "the second process adopted the first one's refresh"
    );
    assert!(ta.ct_eq(&tb));
}

#[test]
fn client_credentials_are_renewed_ahead_of_expiry() {
    let kit = kit(confidential().allow_client_credentials(true));
    let (clock, client) = client_at(&kit);
    let session = client
        .client_credentials_session(&Scopes::parse("patients.read"), SessionOptions::default())
        .unwrap();
    let first = session.access_token().unwrap();
    let api = session.authorized(ureq::Agent::new_with_defaults());
    assert_eq!(api.send(get_req(&kit.api_url())).unwrap().status(), 200);
    advance(&kit, &clock, Duration::from_secs(3590));
    let second = session.access_token().unwrap();
    assert!(!second.ct_eq(&first));
    assert_eq!(kit.requests(Endpoint::Token), 2);
}

#[test]
fn an_api_401_invalid_token_refreshes_once_and_retries_once() {
    let kit = kit(confidential());
    let (_clock, client) = client_at(&kit);
    let grant = login(&client, Consent::GrantAll).unwrap();
    let session = client.session(grant, SessionOptions::default()).unwrap();
    // The site's clock runs ahead: the API sees the token as expired, the client does not.
    kit.advance_clock(Duration::from_secs(3600));
    let before = kit.requests(Endpoint::Token);
    let api = session.authorized(ureq::Agent::new_with_defaults());
    let response = api.send(get_req(&kit.api_url())).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(kit.requests(Endpoint::Token), before + 1);
}

#[test]
fn bad_days_give_typed_errors_in_bounded_time() {
    let kit = kit(confidential());
    // 429 then success: retried after Retry-After.
    kit.fail_next(
        Endpoint::Discovery,
        1,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    Provider::discover(http(), kit.issuer()).unwrap();
    assert_eq!(kit.requests(Endpoint::Discovery), 2);

    // A 100 MB body is refused without reading it.
    kit.fail_next(
        Endpoint::Discovery,
        1,
        Fault::Huge {
            bytes: 100 << 20,
            declare_length: false,
        },
    );
    let started = std::time::Instant::now();
    let err = Provider::discover(http(), kit.issuer()).unwrap_err();
    assert!(
        matches!(err, Error::Transport(TransportError::BodyTooLarge { .. })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Malformed and truncated JSON.
    kit.fail_next(Endpoint::Discovery, 1, Fault::Malformed);
    let err = Provider::discover(http(), kit.issuer()).unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
    kit.fail_next(Endpoint::Discovery, 1, Fault::TruncatedJson);
    let err = Provider::discover(http(), kit.issuer()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // A slow server: a timeout, in bounded time (idempotent requests are retried, so 3 attempts).
    kit.fail_always(Endpoint::Discovery, Fault::Delay(Duration::from_secs(3)));
    let impatient = HttpClient::new(
        TransportConfig::default()
            .with_timeout(Duration::from_millis(200))
            .with_retry(nethealth_oidc::RetryPolicy::NEVER),
    );
    let started = std::time::Instant::now();
    let err = Provider::discover(impatient, kit.issuer()).unwrap_err();
    assert!(
        matches!(err, Error::Transport(TransportError::Timeout { .. })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    kit.clear_faults();

    // The server is down.
    let addr = kit.addr();
    drop(kit);
    let err = Provider::discover(http(), &format!("http://{addr}")).unwrap_err();
    assert!(
        matches!(err, Error::Transport(TransportError::Connect { .. })),
        "{err:?}"
    );
}

/// The child side of [`two_real_processes_sharing_a_file_store_refresh_once`]: resumes the session from the shared
/// file and asks for a token.
fn child_process(spec: &str) {
    let mut parts = spec.split('|');
    let (issuer, path, now) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let clock = Arc::new(nethealth_oidc::ManualClock::new(
        nethealth_oidc::UnixTime::from_secs(now.parse().unwrap()),
    ));
    let provider = Provider::discover_with_clock(http(), issuer, clock).unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let session = client
        .resume(SessionOptions::default().with_store(Arc::new(FileStore::new(path))))
        .unwrap()
        .expect("a stored session");
    session.access_token().unwrap();
}

const CHILD: &str = "NETHEALTH_OIDC_TEST_CHILD";

#[test]
fn two_real_processes_sharing_a_file_store_refresh_once() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child_process(&spec);
    }
    let kit = kit(confidential());
    let (clock, client) = client_at(&kit);
    let grant = login(&client, Consent::GrantAll).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let session = client
        .session(
            grant,
            SessionOptions::default().with_store(Arc::new(FileStore::new(&path))),
        )
        .unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    let before = kit.requests(Endpoint::Token);
    // Slow the token endpoint so that both processes are due at the same time.
    kit.fail_next(Endpoint::Token, 1, Fault::Delay(Duration::from_millis(300)));
    let spec = format!(
        "{}|{}|{}",
        kit.issuer(),
        path.display(),
        nethealth_oidc::core::Clock::now(&*clock).as_secs()
    );
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_real_processes_sharing_a_file_store_refresh_once",
            "--test-threads",
            "1",
        ])
        .env(CHILD, spec)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mine = session.access_token().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the second process failed");
    assert_eq!(
        kit.requests(Endpoint::Token),
        before + 1,
        "one refresh across both processes"
    );
    let stored = FileStore::new(&path).load().unwrap().unwrap();
    assert!(
        stored.access_token.ct_eq(&mine)
            || session.access_token().unwrap().ct_eq(&stored.access_token)
    );
}
