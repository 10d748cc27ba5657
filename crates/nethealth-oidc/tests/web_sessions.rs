//! Many users through the async API against the local Accounts site: keyed sessions (single-flight refresh per
//! key, an async store, one file per key), the callback from a query or a request URI, and a pending login kept as
//! JSON between the redirect and the callback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nethealth_oidc::core::authorize::CallbackError;
use nethealth_oidc::core::lifecycle::TokenSet;
use nethealth_oidc::core::store::StoreGuard;
use nethealth_oidc::{
    AsyncKeyedTokenStore, Client, ClientOptions, Error, HttpClient, KeyedFileStore,
    KeyedTokenStore, ManualClock, MemoryKeyedStore, PendingLogin, Provider, Scopes, SessionKey,
    SessionOptions, StoreError, TransportConfig,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

async fn kit() -> TestKit {
    TestKit::builder()
        .client(ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT))
        .start()
        .await
        .expect("the kit starts")
}

async fn client_at(kit: &TestKit, options: ClientOptions) -> (Arc<ManualClock>, Client) {
    let clock = clock_for(kit);
    let http = HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(10)))
        .expect("an HTTP client");
    let provider = Provider::discover_with_clock(http, kit.issuer(), clock.clone())
        .await
        .unwrap();
    let config = nethealth_oidc::ClientConfig::new(
        "app",
        Some(nethealth_oidc::ClientSecret::new("app-secret")),
    )
    .with_redirect_uris(vec![url(REDIRECT)]);
    (clock, provider.client(config, options).unwrap())
}

/// Starts a login and plays the user at the site; returns the pending login and the callback URL.
async fn browse(client: &Client) -> (PendingLogin, nethealth_oidc::core::Url) {
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &Consent::GrantAll)
        .await
        .expect("the login page works");
    (pending, url(&callback))
}

/// `query` with its `state` replaced.
fn with_state(query: &str, state: &str) -> String {
    let pairs = url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| {
        if k == "state" {
            (k, state.into())
        } else {
            (k, v)
        }
    });
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// An async keyed store standing in for a database: it awaits on every call and counts them.
#[derive(Debug, Default)]
struct SlowDb {
    rows: MemoryKeyedStore,
    calls: AtomicUsize,
}

impl SlowDb {
    async fn round_trip(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[async_trait::async_trait]
impl AsyncKeyedTokenStore for SlowDb {
    async fn load(&self, key: &SessionKey) -> Result<Option<TokenSet>, StoreError> {
        self.round_trip().await;
        self.rows.load(key)
    }
    async fn save(&self, key: &SessionKey, set: &TokenSet) -> Result<(), StoreError> {
        self.round_trip().await;
        self.rows.save(key, set)
    }
    async fn clear(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.round_trip().await;
        self.rows.clear(key)
    }
    async fn lock(&self, key: &SessionKey) -> Result<StoreGuard, StoreError> {
        self.round_trip().await;
        self.rows.lock(key)
    }
}

fn user(i: usize) -> SessionKey {
    SessionKey::new(format!("session-{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_tasks_on_a_hundred_expired_users_make_a_hundred_token_requests() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit, ClientOptions::default()).await;
    let db = Arc::new(SlowDb::default());
    let sessions = client.sessions_async(db.clone(), SessionOptions::default());
    for i in 0..100 {
        let (pending, callback) = browse(&client).await;
        let grant = client.finish_login(&pending, &callback).await.unwrap();
        sessions.insert(&user(i), grant).await.unwrap();
    }
    assert_eq!(db.rows.len(), 100, "every user's set is in the async store");
    let before: Vec<TokenSet> = (0..100)
        .map(|i| db.rows.load(&user(i)).unwrap().unwrap())
        .collect();

    // Every access token expires; a fresh Sessions (an empty cache, as after a restart) over the same store.
    advance(&kit, &clock, Duration::from_secs(3_700));
    let sessions = client.sessions_async(db.clone(), SessionOptions::default());
    let (token_requests, discoveries) = (
        kit.requests(Endpoint::Token),
        kit.requests(Endpoint::Discovery),
    );
    let mut tasks = Vec::new();
    for n in 0..1_000 {
        let sessions = sessions.clone();
        tasks.push(tokio::spawn(async move {
            let session = sessions.get(&user(n % 100)).await?.expect("stored");
            session.access_token().await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        kit.requests(Endpoint::Token) - token_requests,
        100,
        "exactly one refresh per user"
    );
    assert_eq!(
        kit.requests(Endpoint::Discovery),
        discoveries,
        "no discovery per user"
    );
    assert_eq!(sessions.cached(), 100);
    for (i, old) in before.iter().enumerate() {
        let now = db.rows.load(&user(i)).unwrap().unwrap();
        assert!(
            !now.access_token.ct_eq(&old.access_token),
            "user {i} renewed and stored"
        );
        let live = sessions.get(&user(i)).await.unwrap().unwrap();
        assert!(live.access_token().await.unwrap().ct_eq(&now.access_token));
    }
    assert!(db.calls.load(Ordering::SeqCst) > 0);

    // A user who is not stored gets None; a removed one too, and their set is gone.
    assert!(sessions.get(&user(100)).await.unwrap().is_none());
    sessions.remove(&user(7)).await.unwrap();
    assert!(sessions.get(&user(7)).await.unwrap().is_none());
    assert_eq!(db.rows.len(), 99);
    assert!(!format!("{sessions:?}").contains("session-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_in_a_keyed_file_store_survive_a_restart_and_stay_bounded() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit, ClientOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(KeyedFileStore::open(dir.path().join("sessions")).unwrap());
    let sessions = client
        .sessions(store.clone(), SessionOptions::default())
        .with_capacity(2);
    for i in 0..3 {
        let (pending, callback) = browse(&client).await;
        let grant = client.finish_login(&pending, &callback).await.unwrap();
        sessions.insert(&user(i), grant).await.unwrap();
        assert!(sessions.cached() <= 2, "bounded: {}", sessions.cached());
    }
    // Evicted or not, every user's session is there: loaded from its file.
    for i in 0..3 {
        let session = sessions.get(&user(i)).await.unwrap().expect("stored");
        let stored = store.load(&user(i)).unwrap().unwrap();
        assert!(
            session
                .access_token()
                .await
                .unwrap()
                .ct_eq(&stored.access_token)
        );
        assert!(sessions.cached() <= 2);
    }
    // A restart: a new Sessions over the same folder, the tokens expired; a refresh is stored in the user's file.
    advance(&kit, &clock, Duration::from_secs(3_700));
    let restarted = client.sessions(store.clone(), SessionOptions::default());
    let token = restarted
        .get(&user(1))
        .await
        .unwrap()
        .unwrap()
        .access_token()
        .await
        .unwrap();
    assert!(
        store
            .load(&user(1))
            .unwrap()
            .unwrap()
            .access_token
            .ct_eq(&token)
    );
    assert!(store.path_of(&user(1)).exists());
}

#[tokio::test]
async fn a_callback_from_its_query_or_request_uri_is_checked_as_the_full_url() {
    let kit = kit().await;
    let (_, client) = client_at(&kit, ClientOptions::default()).await;

    let (pending, callback) = browse(&client).await;
    let grant = client
        .finish_login_query(&pending, callback.query().unwrap())
        .await
        .unwrap();
    assert!(grant.id_claims.is_some());

    let (pending, callback) = browse(&client).await;
    let uri: http::Uri = format!("{}?{}", callback.path(), callback.query().unwrap())
        .parse()
        .unwrap();
    client.finish_login_uri(&pending, &uri).await.unwrap();

    // A wrong state, by query and by URI: refused before any code exchange.
    let token_requests = kit.requests(Endpoint::Token);
    let (pending, callback) = browse(&client).await;
    let forged = with_state(callback.query().unwrap(), "forged");
    let err = client
        .finish_login_query(&pending, &format!("?{forged}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::StateMismatch)),
        "{err:?}"
    );
    let uri: http::Uri = format!("/callback?{forged}").parse().unwrap();
    let err = client.finish_login_uri(&pending, &uri).await.unwrap_err();
    assert!(matches!(err, Error::Callback(CallbackError::StateMismatch)));
    // A path the redirect URI does not have (a proxy that rewrites paths) is refused too.
    let uri: http::Uri = format!("/elsewhere?{}", callback.query().unwrap())
        .parse()
        .unwrap();
    let err = client.finish_login_uri(&pending, &uri).await.unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::WrongRedirect { .. })),
        "{err:?}"
    );
    assert_eq!(kit.requests(Endpoint::Token), token_requests);

    // A wrong iss (RFC 9207 mix-up), by query and by URI.
    kit.set_callback_iss(Some("https://evil.example"));
    let (pending, callback) = browse(&client).await;
    let err = client
        .finish_login_query(&pending, callback.query().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::IssMismatch { .. })),
        "{err:?}"
    );
    let uri: http::Uri = format!("{}?{}", callback.path(), callback.query().unwrap())
        .parse()
        .unwrap();
    let err = client.finish_login_uri(&pending, &uri).await.unwrap_err();
    assert!(matches!(
        err,
        Error::Callback(CallbackError::IssMismatch { .. })
    ));
    assert_eq!(kit.requests(Endpoint::Token), token_requests);
}

#[tokio::test]
async fn a_pending_login_kept_as_json_completes_and_an_expired_one_is_refused() {
    let kit = kit().await;
    let options = ClientOptions::default().with_login_lifetime(Duration::from_secs(120));
    let (clock, client) = client_at(&kit, options).await;

    let (pending, callback) = browse(&client).await;
    let json = serde_json::to_string(&pending).unwrap();
    let back: PendingLogin = serde_json::from_str(&json).unwrap();
    let grant = client
        .finish_login_query(&back, callback.query().unwrap())
        .await
        .unwrap();
    assert!(grant.id_claims.is_some());

    let (pending, callback) = browse(&client).await;
    let back: PendingLogin =
        serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
    clock.advance(Duration::from_secs(121));
    let token_requests = kit.requests(Endpoint::Token);
    let err = client
        .finish_login_query(&back, callback.query().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Callback(CallbackError::Expired {
                lifetime_secs: 120,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("start the login again"), "{err}");
    assert_eq!(kit.requests(Endpoint::Token), token_requests, "no exchange");
}

/// One key, one live session, even across an eviction: a session evicted from the cache while a caller holds it is
/// the one `get` returns, so the two callers share its one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_evicted_while_held_is_the_one_get_returns_so_one_refresh() {
    let kit = kit().await;
    let (clock, client) = client_at(&kit, ClientOptions::default()).await;
    let sessions = client
        .sessions(Arc::new(MemoryKeyedStore::new()), SessionOptions::default())
        .with_capacity(1);
    for i in 0..2 {
        let (pending, callback) = browse(&client).await;
        let grant = client.finish_login(&pending, &callback).await.unwrap();
        sessions.insert(&user(i), grant).await.unwrap();
    }
    let held = sessions.get(&user(0)).await.unwrap().expect("stored");
    advance(&kit, &clock, Duration::from_secs(3_700));
    // Swept out by another user's session (capacity 1), then evicted explicitly: still held here.
    sessions.get(&user(1)).await.unwrap().expect("stored");
    sessions.get(&user(0)).await.unwrap().expect("stored");
    sessions.evict(&user(0));
    let again = sessions.get(&user(0)).await.unwrap().expect("stored");
    let before = kit.requests(Endpoint::Token);
    let (a, b) = tokio::join!(held.access_token(), again.access_token());
    assert!(a.unwrap().ct_eq(&b.unwrap()), "the same renewed token");
    assert_eq!(
        kit.requests(Endpoint::Token) - before,
        1,
        "one refresh for the key"
    );
    // Once nobody holds it, the key is loaded again from the store (the renewed set).
    drop((held, again));
    sessions.evict(&user(0));
    let stored = sessions.get(&user(0)).await.unwrap().expect("stored");
    stored.access_token().await.unwrap();
    assert_eq!(
        kit.requests(Endpoint::Token) - before,
        1,
        "no second refresh"
    );
}
