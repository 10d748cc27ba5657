//! Regression tests for the defects of issue 14, through the async API against the local Accounts site on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nethealth_oidc::core::authorize::CallbackError;
use nethealth_oidc::core::id_token::IdTokenError;
use nethealth_oidc::core::revocation::TokenRef;
use nethealth_oidc::{
    ClientOptions, Error, HttpClient, LoginRequiredReason, MemoryStore, Provider, Scopes,
    SessionOptions, TokenStore, TransportConfig, UnixTime, UsageError,
};
use nethealth_oidc_test_support::{Scripted, ScriptedServer};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

fn http() -> HttpClient {
    HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(5)))
        .expect("an HTTP client")
}

async fn kit() -> TestKit {
    TestKit::builder()
        .client(ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT))
        .start()
        .await
        .expect("the kit starts")
}

fn config() -> nethealth_oidc::ClientConfig {
    nethealth_oidc::ClientConfig::new("app", Some(nethealth_oidc::ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![url(REDIRECT)])
}

async fn client_at(kit: &TestKit) -> (Arc<nethealth_oidc::ManualClock>, nethealth_oidc::Client) {
    let clock = clock_for(kit);
    let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
        .await
        .expect("discovery works");
    let client = provider
        .client(config(), ClientOptions::default())
        .expect("a client");
    (clock, client)
}

async fn login(client: &nethealth_oidc::Client) -> Result<nethealth_oidc::Grant, Error> {
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL))?;
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &Consent::GrantAll)
        .await
        .expect("the login page works");
    client.finish_login(&pending, &url(&callback)).await
}

fn is_unknown_key(e: &Error) -> bool {
    matches!(e, Error::IdToken(IdTokenError::UnknownKey { .. }))
}

/// Defect 1: the first, ordinary JWKS fetch is not a refetch, so a rotation right after start is followed.
#[tokio::test]
async fn a_key_rotated_right_after_start_is_refetched_and_floods_stay_limited() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit).await;
    assert_eq!(
        kit.requests(Endpoint::Jwks),
        1,
        "discovery fetched the keys"
    );

    kit.rotate_keys();
    login(&client)
        .await
        .expect("an unknown kid within 60 s of start causes a refetch");
    assert_eq!(kit.requests(Endpoint::Jwks), 2);

    // A key that is never published (a flood of unknown kids): at most one refetch per minute.
    kit.rotate_keys_unpublished();
    for _ in 0..3 {
        let err = login(&client).await.unwrap_err();
        assert!(is_unknown_key(&err), "{err:?}");
    }
    assert_eq!(kit.requests(Endpoint::Jwks), 2, "the refetch was 1 s ago");
    advance(&kit, &clock, Duration::from_secs(61));
    for _ in 0..3 {
        let err = login(&client).await.unwrap_err();
        assert!(is_unknown_key(&err), "{err:?}");
    }
    assert_eq!(
        kit.requests(Endpoint::Jwks),
        3,
        "one refetch in this minute"
    );
    kit.publish_keys();
    advance(&kit, &clock, Duration::from_secs(61));
    login(&client).await.expect("the published key is fetched");
    assert_eq!(kit.requests(Endpoint::Jwks), 4);
}

/// Defect 2: a set whose refresh token the provider rejects leaves the store; a later start finds nothing.
#[tokio::test]
async fn a_dead_token_set_leaves_the_store() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit).await;
    let store = Arc::new(MemoryStore::new());
    let options = || SessionOptions::default().with_store(store.clone());
    let session = client
        .session(login(&client).await.unwrap(), options())
        .await
        .unwrap();
    let rt = session
        .token_set()
        .refresh_token
        .expect("offline_access was granted");
    client.revoke(TokenRef::Refresh(&rt)).await.unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    let err = session.access_token().await.unwrap_err();
    assert!(err.is_login_required(), "{err:?}");
    assert!(store.load().unwrap().is_none(), "the dead set was cleared");
    assert!(client.resume(options()).await.unwrap().is_none());
}

/// Defect 2, the cross-process rule: a set that is not the one that failed stays in the store.
#[tokio::test]
async fn a_set_another_process_stored_is_not_cleared() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit).await;
    let store = Arc::new(MemoryStore::new());
    let session = client
        .session(
            login(&client).await.unwrap(),
            SessionOptions::default().with_store(store.clone()),
        )
        .await
        .unwrap();
    let rt = session.token_set().refresh_token.unwrap();
    client.revoke(TokenRef::Refresh(&rt)).await.unwrap();
    // Another process stores its own set (one this session does not adopt, as it is not newer).
    let mut other = nethealth_oidc::TokenSet::from_grant(login(&client).await.unwrap(), None);
    other.received_at = UnixTime::from_secs(0);
    store.save(&other).unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    let err = session.access_token().await.unwrap_err();
    assert!(err.is_login_required(), "{err:?}");
    let kept = store.load().unwrap().expect("the other set is kept");
    assert!(kept.access_token.ct_eq(&other.access_token));
}

/// Defect 3: the SMART launch context of the login survives a refresh whose response does not carry it.
#[tokio::test]
async fn the_launch_context_survives_a_refresh() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit).await;
    kit.set_launch_context(launch_context());
    let session = client
        .session(login(&client).await.unwrap(), SessionOptions::default())
        .await
        .unwrap();
    let first = session.access_token().await.unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    let second = session.access_token().await.unwrap();
    assert!(!second.ct_eq(&first), "refreshed");
    let extra = session.token_set().extra;
    assert_eq!(extra["patient"], "p-123");
    assert_eq!(extra["encounter"], "e-9");
    assert_eq!(extra["need_patient_banner"], true);
}

fn launch_context() -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(map) = serde_json::json!({
        "patient": "p-123", "encounter": "e-9", "need_patient_banner": true,
        "fhirContext": [{"reference": "Group/7"}],
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// A clock that, once armed, jumps forward at its second reading: the moment between two reads of the token.
#[derive(Debug)]
struct JumpClock {
    inner: Arc<nethealth_oidc::ManualClock>,
    readings_until_jump: AtomicUsize,
    jump: Duration,
}

impl nethealth_oidc::core::Clock for JumpClock {
    fn now(&self) -> UnixTime {
        if self
            .readings_until_jump
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            == Ok(1)
        {
            self.inner.advance(self.jump);
        }
        self.inner.now()
    }
}

/// Defect 4: the token sent is the token reported as refused, so the retry carries a new one, even when the
/// cached token fell due between the two.
#[tokio::test]
async fn the_retry_after_a_401_never_resends_the_refused_token() {
    let kit = kit().await;
    let due = Duration::from_secs(3541);
    let clock = Arc::new(JumpClock {
        inner: clock_for(&kit),
        readings_until_jump: AtomicUsize::new(0),
        jump: due,
    });
    let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
        .await
        .unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let session = client
        .session(login(&client).await.unwrap(), SessionOptions::default())
        .await
        .unwrap();
    let api = ScriptedServer::start();
    api.enqueue(
        "/api",
        Scripted::status(401).header("www-authenticate", r#"Bearer error="invalid_token""#),
    );
    api.set_default(Scripted::json(200, "[]"));
    kit.advance_clock(due);
    clock.readings_until_jump.store(2, Ordering::SeqCst);
    let http_api = session.authorized(reqwest::Client::new());
    let response = http_api.send(http_api.get(api.url("/api"))).await.unwrap();
    assert_eq!(response.status(), 200);
    let sent: Vec<String> = api
        .requests_to("/api")
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(sent.len(), 2, "one request, one retry");
    // (Compared without printing: the values are tokens.)
    assert!(sent[0] != sent[1], "the retry carries a new token");
}

/// Defect 4: many requests refused at once with the same token cause one refresh, and every retry succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_cause_one_refresh() {
    let kit = kit().await;
    let (_clock, client) = client_at(&kit).await;
    let session = client
        .session(login(&client).await.unwrap(), SessionOptions::default())
        .await
        .unwrap();
    // The API now refuses the current token (revoked), though it is not expired.
    let token = session.access_token().await.unwrap();
    client.revoke(TokenRef::Access(&token)).await.unwrap();
    let before = kit.requests(Endpoint::Token);
    let api = session.authorized(reqwest::Client::new());
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let api = api.clone();
            let url = kit.api_url();
            tokio::spawn(async move { api.send(api.get(url)).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(kit.requests(Endpoint::Token), before + 1, "one refresh");
}

/// 10,000 tasks that ask for the token the moment it falls due make exactly one token request between them, and
/// every one of them gets the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_at_expiry_make_one_token_request() {
    const TASKS: usize = 10_000;
    let kit = kit().await;
    let (clock, client) = client_at(&kit).await;
    let session = client
        .session(login(&client).await.unwrap(), SessionOptions::default())
        .await
        .unwrap();
    let old = session.access_token().await.unwrap();
    let before = kit.requests(Endpoint::Token);
    advance(&kit, &clock, Duration::from_secs(3600));
    // Every task is running before the first one asks, so the ones behind it find the refresh in flight.
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let session = session.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                session.access_token().await
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(TASKS);
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert_eq!(
        kit.requests(Endpoint::Token),
        before + 1,
        "one refresh for 10,000 callers"
    );
    let new = session.access_token().await.unwrap();
    assert!(!new.ct_eq(&old), "the token was refreshed");
    assert!(
        tokens.iter().all(|t| t.ct_eq(&new)),
        "every task got the new token"
    );
}

/// Defect 5: the caller's own mistakes and a login finished by the wrong client get their own typed errors.
#[tokio::test]
async fn errors_say_whose_mistake_it_is() {
    let kit = kit().await;
    let (_clock, client) = client_at(&kit).await;
    let provider = client.provider().clone();

    // No redirect URI configured: the caller's setup, not the provider.
    let bare = nethealth_oidc::ClientConfig::new(
        "app",
        Some(nethealth_oidc::ClientSecret::new("app-secret")),
    );
    let err = provider
        .client(bare, ClientOptions::default())
        .unwrap()
        .begin_login(&Scopes::parse(ALL))
        .unwrap_err();
    assert_eq!(err, Error::Usage(UsageError::NoRedirectUri));
    assert!(!err.to_string().contains("provider has no"), "{err}");

    // A pending login begun by one client and finished by another: not "forged or replayed".
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &Consent::GrantAll)
        .await
        .unwrap();
    let other = provider
        .client(
            nethealth_oidc::ClientConfig::new(
                "other",
                Some(nethealth_oidc::ClientSecret::new("s")),
            )
            .with_redirect_uris(vec![url(REDIRECT)]),
            ClientOptions::default(),
        )
        .unwrap();
    let err = other
        .finish_login(&pending, &url(&callback))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Callback(CallbackError::OtherClient { client_id, .. }) if client_id == "app"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("forged"), "{err}");

    // A session without a user cannot ask the userinfo endpoint: the caller's mistake.
    kit.add_client(
        ClientSpec::confidential("m2m", "m2m-secret")
            .allowed_scopes(["patients.read"])
            .allow_client_credentials(true),
    );
    let m2m = provider
        .client(
            nethealth_oidc::ClientConfig::new(
                "m2m",
                Some(nethealth_oidc::ClientSecret::new("m2m-secret")),
            ),
            ClientOptions::default(),
        )
        .unwrap();
    let session = m2m
        .client_credentials_session(&Scopes::parse("patients.read"), SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        session.userinfo().await.unwrap_err(),
        Error::Usage(UsageError::NoUser)
    );
}

/// Defect 5: "log in again" carries a reason a program can match, and the provider's answer as its source.
#[tokio::test]
async fn login_required_has_a_reason_and_a_source() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit).await;
    let session = client
        .session(login(&client).await.unwrap(), SessionOptions::default())
        .await
        .unwrap();
    let rt = session.token_set().refresh_token.unwrap();
    client.revoke(TokenRef::Refresh(&rt)).await.unwrap();
    advance(&kit, &clock, Duration::from_secs(3600));
    let err = session.access_token().await.unwrap_err();
    assert_eq!(
        err.login_required_reason(),
        Some(LoginRequiredReason::RefreshTokenRejected)
    );
    let Error::LoginRequired {
        source: Some(source),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(source.is_invalid_grant(), "{source:?}");
    // Later calls say the same, without asking the provider again.
    let before = kit.requests(Endpoint::Token);
    let again = session.access_token().await.unwrap_err();
    assert_eq!(
        again.login_required_reason(),
        Some(LoginRequiredReason::RefreshTokenRejected)
    );
    assert_eq!(kit.requests(Endpoint::Token), before);
}
