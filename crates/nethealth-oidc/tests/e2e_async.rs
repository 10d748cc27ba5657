//! The whole flow through the async API against the local Accounts site (`nethealth-oidc-testkit`) on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nethealth_oidc::core::authorize::CallbackError;
use nethealth_oidc::core::discovery::DiscoveryError;
use nethealth_oidc::core::id_token::IdTokenError;
use nethealth_oidc::core::{ScopeSource, TransportError};
use nethealth_oidc::{
    ClientMetadata, ClientOptions, Error, FileStore, HttpClient, NetHealthRegistration, Pkce,
    Provider, Scopes, SessionOptions, TokenStore, TransportConfig,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, Fault, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

fn http() -> HttpClient {
    HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(5)))
        .expect("an HTTP client")
}

async fn kit(spec: ClientSpec) -> TestKit {
    TestKit::builder()
        .client(spec)
        .dynamic_registration(true)
        .start()
        .await
        .expect("the kit starts")
}

fn confidential() -> ClientSpec {
    ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT)
}

fn config() -> nethealth_oidc::ClientConfig {
    nethealth_oidc::ClientConfig::new("app", Some(nethealth_oidc::ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![url(REDIRECT)])
}

/// The site's clock for the client, and a client of the site's confidential app.
async fn client_at(kit: &TestKit) -> (Arc<nethealth_oidc::ManualClock>, nethealth_oidc::Client) {
    let clock = clock_for(kit);
    let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
        .await
        .unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    (clock, client)
}

async fn login(
    client: &nethealth_oidc::Client,
    consent: Consent,
) -> Result<nethealth_oidc::Grant, Error> {
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL))?;
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &consent)
        .await
        .expect("the login page works");
    client.finish_login(&pending, &url(&callback)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_partial_consent_call_refresh_revoke() {
    let kit = kit(confidential()).await;
    let clock = clock_for(&kit);
    let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
        .await
        .unwrap();

    // 1. Register at /api/Clients/Register (ASP.NET answers in PascalCase).
    let metadata = ClientMetadata::new("Clinic app", vec![url(REDIRECT)]).with_scope(ALL);
    let registered = provider
        .register_net_health(&NetHealthRegistration::default(), &metadata, None)
        .await
        .unwrap();
    assert!(registered.client_secret.is_some());
    let client = provider
        .client(registered.to_client_config(), ClientOptions::default())
        .unwrap();

    // 2. Log in; the user unticks patients.write.
    kit.clear_transcript();
    let grant = login(&client, Consent::grant(["offline_access", "patients.read"]))
        .await
        .unwrap();
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
    let session = client.session(grant, options).await.unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert!(session.allows("patients.read") && !session.allows("patients.write"));
    let api = session.authorized(reqwest::Client::new());
    let get = api.send(api.get(kit.api_url())).await.unwrap();
    assert_eq!(get.status(), 200);
    let post = api.send(api.post(kit.api_url()).body("{}")).await.unwrap();
    assert_eq!(post.status(), 403);
    let challenge = post.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let me = session.userinfo().await.unwrap();
    assert_eq!(
        Some(me.sub.as_str()),
        session
            .token_set()
            .id_claims
            .as_ref()
            .map(|c| c.sub.as_str())
    );

    // 4. Let the token expire; exactly one refresh; the rotated refresh token is stored.
    let first = session.access_token().await.unwrap();
    let stored_before = store.load().unwrap().unwrap().refresh_token.unwrap();
    let token_requests = kit.requests(Endpoint::Token);
    advance(&kit, &clock, Duration::from_secs(3600));
    let second = session.access_token().await.unwrap();
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
    let get = api.send(api.get(kit.api_url())).await.unwrap();
    assert_eq!(get.status(), 200);

    // Revoke: the store is cleared and the session needs a new login.
    session.revoke().await.unwrap();
    assert!(store.load().unwrap().is_none());
    let err = session.access_token().await.unwrap_err();
    assert!(err.is_login_required(), "{err}");
}

#[tokio::test]
async fn consent_denied_is_its_own_error() {
    let kit = kit(confidential()).await;
    let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let err = login(&client, Consent::Deny).await.unwrap_err();
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

#[tokio::test]
async fn a_callback_with_a_wrong_state_is_refused() {
    let kit = kit(confidential()).await;
    let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let (auth_url, _pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
    let (_, other_pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &Consent::GrantAll)
        .await
        .unwrap();
    let err = client
        .finish_login(&other_pending, &url(&callback))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::StateMismatch)),
        "{err:?}"
    );
    assert_eq!(kit.requests(Endpoint::Token), 0);
}

#[tokio::test]
async fn a_wrong_iss_on_the_callback_is_refused() {
    let kit = kit(confidential()).await;
    kit.set_callback_iss(Some("https://evil.example"));
    let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let err = login(&client, Consent::GrantAll).await.unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::IssMismatch { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_wrong_issuer_in_discovery_is_refused() {
    let kit = kit(confidential()).await;
    kit.set_discovery_issuer(Some("https://evil.example"));
    let err = Provider::discover(http(), kit.issuer()).await.unwrap_err();
    assert!(
        matches!(err, Error::Discovery(DiscoveryError::IssuerMismatch { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn unexpected_code_verifier_says_to_turn_pkce_off() {
    let kit = kit(confidential().require_pkce(false)).await;
    let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let err = login(&client, Consent::GrantAll).await.unwrap_err();
    assert!(err.to_string().contains("turn PKCE off"), "{err}");
    let client = provider
        .client(config(), ClientOptions::default().with_pkce(Pkce::Disabled))
        .unwrap();
    login(&client, Consent::GrantAll).await.unwrap();
}

#[tokio::test]
async fn a_key_rotated_between_logins_is_fetched_once_and_refetches_are_rate_limited() {
    let kit = kit(confidential()).await;
    let (clock, client) = client_at(&kit).await;
    login(&client, Consent::GrantAll).await.unwrap();
    assert_eq!(kit.requests(Endpoint::Jwks), 1);

    // A published rotation: one refetch, then the login succeeds.
    advance(&kit, &clock, Duration::from_secs(61));
    kit.rotate_keys();
    login(&client, Consent::GrantAll).await.unwrap();
    assert_eq!(kit.requests(Endpoint::Jwks), 2);

    // Signed with a key not yet published: the refetch happens once per minute at most.
    advance(&kit, &clock, Duration::from_secs(61));
    kit.rotate_keys_unpublished();
    let err = login(&client, Consent::GrantAll).await.unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::UnknownKey { .. })),
        "{err:?}"
    );
    assert_eq!(kit.requests(Endpoint::Jwks), 3);
    let err = login(&client, Consent::GrantAll).await.unwrap_err();
    assert!(
        matches!(err, Error::IdToken(IdTokenError::UnknownKey { .. })),
        "{err:?}"
    );
    assert_eq!(kit.requests(Endpoint::Jwks), 3, "rate-limited");
    kit.publish_keys();
    advance(&kit, &clock, Duration::from_secs(61));
    login(&client, Consent::GrantAll).await.unwrap();
    assert_eq!(kit.requests(Endpoint::Jwks), 4);
}

#[tokio::test]
async fn rfc7591_registration_and_public_clients() {
    let kit = kit(confidential()).await;
    let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
    let metadata = ClientMetadata::new("Public app", vec![url(REDIRECT)])
        .with_scope(ALL)
        .with_auth_method(nethealth_oidc::TokenAuthMethod::None);
    let registered = provider.register(&metadata, None).await.unwrap();
    assert!(registered.client_secret.is_none());
    let client = provider
        .client(registered.to_client_config(), ClientOptions::default())
        .unwrap();
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    assert!(!grant.is_partial());
}

#[tokio::test]
async fn client_secret_post_is_used_when_registered() {
    let kit = kit(confidential()).await;
    let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
    let config = config().with_auth_method(nethealth_oidc::TokenAuthMethod::ClientSecretPost);
    let client = provider.client(config, ClientOptions::default()).unwrap();
    assert_eq!(
        client.context().auth_method(),
        nethealth_oidc::TokenAuthMethod::ClientSecretPost
    );
    login(&client, Consent::GrantAll).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_at_expiry_cause_one_refresh() {
    let kit = kit(confidential()).await;
    let (clock, client) = client_at(&kit).await;
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    let session = client
        .session(grant, SessionOptions::default())
        .await
        .unwrap();
    let before = kit.requests(Endpoint::Token);
    advance(&kit, &clock, Duration::from_secs(3600));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap());
    }
    assert_eq!(
        kit.requests(Endpoint::Token),
        before + 1,
        "exactly one refresh request"
    );
    assert!(
        tokens.iter().all(|t| t.ct_eq(&tokens[0])),
        "everyone got the same new token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_caller_does_not_cancel_the_refresh() {
    let kit = kit(confidential()).await;
    let (clock, client) = client_at(&kit).await;
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    let session = client
        .session(grant, SessionOptions::default())
        .await
        .unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    kit.fail_next(Endpoint::Token, 1, Fault::Delay(Duration::from_millis(300)));
    let before = kit.requests(Endpoint::Token);
    // The first caller gives up before the refresh answers.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), session.access_token()).await;
    assert!(gave_up.is_err());
    // The refresh finishes anyway, and the next caller gets its result without a second request.
    session.access_token().await.unwrap();
    assert_eq!(kit.requests(Endpoint::Token), before + 1);
}

#[tokio::test]
async fn an_outage_keeps_serving_a_valid_token() {
    let kit = kit(confidential()).await;
    let (clock, client) = client_at(&kit).await;
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    let session = client
        .session(grant, SessionOptions::default())
        .await
        .unwrap();
    let first = session.access_token().await.unwrap();
    // Due for refresh (a minute before expiry), but the token endpoint is down.
    advance(&kit, &clock, Duration::from_secs(3570));
    kit.fail_always(Endpoint::Token, Fault::Status(503));
    let served = session.access_token().await.unwrap();
    assert!(
        served.ct_eq(&first),
        "a transient failure before expiry is not an error"
    );
    // Past expiry and still down: a typed, transient error.
    advance(&kit, &clock, Duration::from_secs(60));
    let err = session.access_token().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    kit.clear_faults();
    advance(&kit, &clock, Duration::from_secs(120));
    assert!(!session.access_token().await.unwrap().ct_eq(&first));
}

#[tokio::test]
async fn a_store_that_cannot_save_fails_the_caller_and_loses_nothing() {
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
    let kit = kit(confidential()).await;
    let (clock, client) = client_at(&kit).await;
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    let store = Arc::new(Flaky::default());
    let session = client
        .session(grant, SessionOptions::default().with_store(store.clone()))
        .await
        .unwrap();
    let old = store.load().unwrap().unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    store.broken.store(true, Ordering::SeqCst);
    let err = session.access_token().await.unwrap_err();
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
    let token = session.access_token().await.unwrap();
    assert_eq!(
        kit.requests(Endpoint::Token),
        requests,
        "the rotated refresh token was not lost"
    );
    assert!(store.load().unwrap().unwrap().access_token.ct_eq(&token));
}

#[tokio::test]
async fn two_processes_sharing_a_file_store_refresh_once() {
    let kit = kit(confidential()).await;
    let (clock, client) = client_at(&kit).await;
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let a = client
        .session(
            grant,
            SessionOptions::default().with_store(Arc::new(FileStore::new(&path))),
        )
        .await
        .unwrap();
    // The second "process" resumes from the same file.
    let b = client
        .resume(SessionOptions::default().with_store(Arc::new(FileStore::new(&path))))
        .await
        .unwrap()
        .expect("a stored session");
    advance(&kit, &clock, Duration::from_secs(3600));
    let before = kit.requests(Endpoint::Token);
    let ta = a.access_token().await.unwrap();
    let tb = b.access_token().await.unwrap();
    assert_eq!(
        kit.requests(Endpoint::Token),
        before + 1,
        "the second process adopted the first one's refresh"
    );
    assert!(ta.ct_eq(&tb));
}

#[tokio::test]
async fn client_credentials_are_renewed_ahead_of_expiry() {
    let kit = kit(confidential().allow_client_credentials(true)).await;
    let (clock, client) = client_at(&kit).await;
    let session = client
        .client_credentials_session(&Scopes::parse("patients.read"), SessionOptions::default())
        .await
        .unwrap();
    let first = session.access_token().await.unwrap();
    let api = session.authorized(reqwest::Client::new());
    assert_eq!(
        api.send(api.get(kit.api_url())).await.unwrap().status(),
        200
    );
    advance(&kit, &clock, Duration::from_secs(3590));
    let second = session.access_token().await.unwrap();
    assert!(!second.ct_eq(&first));
    assert_eq!(kit.requests(Endpoint::Token), 2);
}

#[tokio::test]
async fn an_api_401_invalid_token_refreshes_once_and_retries_once() {
    let kit = kit(confidential()).await;
    let (_clock, client) = client_at(&kit).await;
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    let session = client
        .session(grant, SessionOptions::default())
        .await
        .unwrap();
    // The site's clock runs ahead: the API sees the token as expired, the client does not.
    kit.advance_clock(Duration::from_secs(3600));
    let before = kit.requests(Endpoint::Token);
    let api = session.authorized(reqwest::Client::new());
    let response = api.send(api.get(kit.api_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(kit.requests(Endpoint::Token), before + 1);
}

/// A body that cannot be sent twice: the `401` comes back (never a resend), and the refused token is still reported,
/// so the next call has a renewed one without asking the API again.
#[tokio::test]
async fn an_api_401_on_a_request_that_cannot_be_replayed_is_returned() {
    let kit = kit(confidential()).await;
    let (_clock, client) = client_at(&kit).await;
    let grant = login(&client, Consent::GrantAll).await.unwrap();
    let session = client
        .session(grant, SessionOptions::default())
        .await
        .unwrap();
    kit.advance_clock(Duration::from_secs(3600));
    let (tokens, calls) = (kit.requests(Endpoint::Token), kit.requests(Endpoint::Api));
    let api = session.authorized(reqwest::Client::new());
    let streamed = reqwest::Body::wrap(String::from("one pass only"));
    let response = api
        .send(api.get(kit.api_url()).body(streamed))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(kit.requests(Endpoint::Api), calls + 1, "never resent");
    assert_eq!(
        kit.requests(Endpoint::Token),
        tokens + 1,
        "the refused token was reported and renewed"
    );
    let response = api.send(api.get(kit.api_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(kit.requests(Endpoint::Token), tokens + 1);
}

#[tokio::test]
async fn bad_days_give_typed_errors_in_bounded_time() {
    let kit = kit(confidential()).await;
    // 429 then success: retried after Retry-After.
    kit.fail_next(
        Endpoint::Discovery,
        1,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    Provider::discover(http(), kit.issuer()).await.unwrap();
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
    let err = Provider::discover(http(), kit.issuer()).await.unwrap_err();
    assert!(
        matches!(err, Error::Transport(TransportError::BodyTooLarge { .. })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Malformed and truncated JSON.
    kit.fail_next(Endpoint::Discovery, 1, Fault::Malformed);
    let err = Provider::discover(http(), kit.issuer()).await.unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
    kit.fail_next(Endpoint::Discovery, 1, Fault::TruncatedJson);
    let err = Provider::discover(http(), kit.issuer()).await.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // A slow server: a timeout, in bounded time (idempotent requests are retried, so 3 attempts).
    kit.fail_always(Endpoint::Discovery, Fault::Delay(Duration::from_secs(3)));
    let impatient = HttpClient::new(
        TransportConfig::default()
            .with_timeout(Duration::from_millis(200))
            .with_retry(nethealth_oidc::RetryPolicy::NEVER),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = Provider::discover(impatient, kit.issuer())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport(TransportError::Timeout { .. })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    kit.clear_faults();

    // The server is down.
    let addr = kit.addr();
    drop(kit);
    let err = Provider::discover(http(), &format!("http://{addr}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport(TransportError::Connect { .. })),
        "{err:?}"
    );
}
