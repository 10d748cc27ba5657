//! Many users through the blocking API against the local Accounts site: keyed sessions with single-flight refresh
//! per key across threads, and the callback from a query or a request URI.

mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use nethealth_oidc::blocking::{Client, HttpClient, Provider};
use nethealth_oidc::core::authorize::CallbackError;
use nethealth_oidc::{
    ClientOptions, Error, KeyedFileStore, KeyedTokenStore, ManualClock, Scopes, SessionKey,
    SessionOptions, TransportConfig,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

fn kit() -> TestKit {
    TestKit::builder()
        .client(ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT))
        .start_blocking()
        .expect("the kit starts")
}

fn client_at(kit: &TestKit) -> (Arc<ManualClock>, Client) {
    let clock = clock_for(kit);
    let http = HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(10)));
    let provider = Provider::discover_with_clock(http, kit.issuer(), clock.clone()).unwrap();
    let config = nethealth_oidc::ClientConfig::new(
        "app",
        Some(nethealth_oidc::ClientSecret::new("app-secret")),
    )
    .with_redirect_uris(vec![url(REDIRECT)]);
    (
        clock,
        provider.client(config, ClientOptions::default()).unwrap(),
    )
}

fn browse(client: &Client) -> (nethealth_oidc::PendingLogin, nethealth_oidc::core::Url) {
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
    let callback = Browser::new()
        .login(auth_url.as_str(), &Consent::GrantAll)
        .expect("the login page works");
    (pending, url(&callback))
}

fn user(i: usize) -> SessionKey {
    SessionKey::new(format!("session-{i}"))
}

#[test]
fn a_thousand_calls_on_many_threads_for_a_hundred_expired_users_make_a_hundred_token_requests() {
    let kit = kit();
    let (clock, client) = client_at(&kit);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(KeyedFileStore::open(dir.path().join("sessions")).unwrap());
    let sessions = client.sessions(store.clone(), SessionOptions::default());
    for i in 0..100 {
        let (pending, callback) = browse(&client);
        let grant = client.finish_login(&pending, &callback).unwrap();
        sessions.insert(&user(i), grant).unwrap();
    }
    advance(&kit, &clock, Duration::from_secs(3_700));
    // After a restart: an empty cache over the same folder.
    let sessions = client.sessions(store.clone(), SessionOptions::default());
    let token_requests = kit.requests(Endpoint::Token);
    let threads = 50;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (sessions, start) = (sessions.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                // 20 calls a thread, 1,000 in all, every user asked for by 10 threads at about the same time.
                for n in 0..20 {
                    let session = sessions.get(&user((t + n * 50) % 100))?.expect("stored");
                    session.access_token()?;
                }
                Ok::<(), Error>(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
    assert_eq!(
        kit.requests(Endpoint::Token) - token_requests,
        100,
        "exactly one refresh per user"
    );
    for i in 0..100 {
        let stored = store.load(&user(i)).unwrap().unwrap();
        let live = sessions.get(&user(i)).unwrap().unwrap();
        assert!(live.access_token().unwrap().ct_eq(&stored.access_token));
    }
    sessions.remove(&user(3)).unwrap();
    assert!(sessions.get(&user(3)).unwrap().is_none());
    assert!(!store.path_of(&user(3)).exists());
}

#[test]
fn a_blocking_callback_from_its_query_or_request_uri_is_checked_as_the_full_url() {
    let kit = kit();
    let (_, client) = client_at(&kit);
    let (pending, callback) = browse(&client);
    client
        .finish_login_query(&pending, callback.query().unwrap())
        .unwrap();
    let (pending, callback) = browse(&client);
    let uri: http::Uri = format!("{}?{}", callback.path(), callback.query().unwrap())
        .parse()
        .unwrap();
    client.finish_login_uri(&pending, &uri).unwrap();

    let (pending, _) = browse(&client);
    let (_, other) = browse(&client);
    let err = client
        .finish_login_query(&pending, other.query().unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::StateMismatch)),
        "{err:?}"
    );

    kit.set_callback_iss(Some("https://evil.example"));
    let (pending, callback) = browse(&client);
    let uri: http::Uri = format!("{}?{}", callback.path(), callback.query().unwrap())
        .parse()
        .unwrap();
    let err = client.finish_login_uri(&pending, &uri).unwrap_err();
    assert!(
        matches!(err, Error::Callback(CallbackError::IssMismatch { .. })),
        "{err:?}"
    );
}

/// One key, one live session, even across an eviction (blocking): a session evicted while held is the one `get`
/// returns, so two threads share its one refresh.
#[test]
fn a_blocking_session_evicted_while_held_is_the_one_get_returns_so_one_refresh() {
    let kit = kit();
    let (clock, client) = client_at(&kit);
    let sessions = client
        .sessions(
            Arc::new(nethealth_oidc::MemoryKeyedStore::new()),
            SessionOptions::default(),
        )
        .with_capacity(1);
    for i in 0..2 {
        let (pending, callback) = browse(&client);
        let grant = client.finish_login(&pending, &callback).unwrap();
        sessions.insert(&user(i), grant).unwrap();
    }
    let held = sessions.get(&user(0)).unwrap().expect("stored");
    advance(&kit, &clock, Duration::from_secs(3_700));
    sessions.get(&user(1)).unwrap().expect("stored");
    sessions.get(&user(0)).unwrap().expect("stored");
    sessions.evict(&user(0));
    let again = sessions.get(&user(0)).unwrap().expect("stored");
    let before = kit.requests(Endpoint::Token);
    let barrier = Barrier::new(2);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            barrier.wait();
            held.access_token()
        });
        let b = s.spawn(|| {
            barrier.wait();
            again.access_token()
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.unwrap().ct_eq(&b.unwrap()), "the same renewed token");
    assert_eq!(
        kit.requests(Endpoint::Token) - before,
        1,
        "one refresh for the key"
    );
}
