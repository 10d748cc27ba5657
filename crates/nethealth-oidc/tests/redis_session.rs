//! `Session` over `RedisStore` when Redis misbehaves, through both transports' public API, against the local Accounts
//! site (OneTimeOnly refresh-token rotation, so a lost rotated token would show) and a real redis-server:
//!
//! - Redis stalls (`SIGSTOP` on a redis-server the test owns) in the middle of a refresh: callers keep getting the
//!   still-valid token quickly, the store error is returned once that token has expired, and when Redis comes back
//!   the rotated set kept aside is stored, with no second refresh: nothing is lost.
//! - The lease is taken by another process while the refresh is held up at the site: the fenced save is refused,
//!   nothing in Redis is overwritten, and the set is stored under a new lease afterwards.
//! - Nothing listens at the Redis URL: a typed error at once.
//!
//! Every wait is bounded (the store's connect and command timeouts, and a limit on each call here), so a test can
//! fail but never hang. The shared server comes from `NETHEALTH_TEST_REDIS` (`cargo xtask ci` starts it).
#![allow(clippy::print_stdout)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nethealth_oidc::{
    AccessToken, ClientOptions, Error, HttpClient, Provider, RedisOptions, RedisStore, Scopes,
    SessionOptions, StoreError, TokenStore, TransportConfig,
};
use nethealth_oidc_test_support::{OwnedRedis, refused_url, shared_redis_url};
use nethealth_oidc_testkit::{
    Browser, ClientSpec, Consent, Endpoint, Fault, RefreshTokenUsage, TestKit,
};
use support::{ALL, REDIRECT, advance, clock_for, url};

/// The access token's lifetime at the site, and how far to move the clocks so that a refresh is due (the default
/// margin is 60 s) while the token is still valid.
const LIFETIME: Duration = Duration::from_secs(3600);
const INTO_MARGIN: Duration = Duration::from_secs(3570);
/// How long the site holds the refresh up.
const HELD: Duration = Duration::from_millis(800);
/// The store's connect and command timeouts.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The most any one call here may take while Redis is stalled (the held refresh, then a few store timeouts).
const LIMIT: Duration = Duration::from_secs(5);

fn redis_options() -> RedisOptions {
    RedisOptions::default()
        .with_timeouts(TIMEOUT, TIMEOUT)
        .with_lease(Duration::from_secs(1))
        .with_lock_wait(Duration::from_secs(3))
}

fn store_at(url: &str, name: &str) -> RedisStore {
    let key = format!("redis-session:{name}:{}", std::process::id());
    let store = RedisStore::open(url, &key, redis_options()).unwrap();
    store.clear().expect("the test redis-server answers");
    store
}

fn spec() -> ClientSpec {
    ClientSpec::confidential("app", "app-secret")
        .redirect_uri(REDIRECT)
        .refresh_token_usage(RefreshTokenUsage::OneTimeOnly)
}

fn config() -> nethealth_oidc::ClientConfig {
    nethealth_oidc::ClientConfig::new("app", Some(nethealth_oidc::ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![url(REDIRECT)])
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_timeout(Duration::from_secs(5))
}

fn stored_token(store: &RedisStore) -> AccessToken {
    store
        .load()
        .expect("Redis answers")
        .expect("a set is stored")
        .access_token
}

/// Waits until the site has received `n` token requests (blocking).
fn wait_for_token_requests(kit: &TestKit, n: usize) {
    let started = Instant::now();
    while kit.requests(Endpoint::Token) < n {
        assert!(
            started.elapsed() < LIMIT,
            "the refresh never reached the site"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The request that must not have been made: one refresh in all, and its rotated refresh token the one alive.
fn assert_one_refresh_and_nothing_lost(kit: &TestKit) {
    assert_eq!(
        kit.requests(Endpoint::Token),
        1,
        "the rotated set was kept and stored: no second refresh"
    );
    assert_eq!(
        kit.live_refresh_tokens(),
        1,
        "the rotated refresh token is alive"
    );
}

mod async_api {
    use super::*;

    /// Runs `call`, failing the test if it takes longer than `limit`; returns its outcome and how long it took.
    async fn within<T>(
        limit: Duration,
        call: impl std::future::Future<Output = T>,
    ) -> (T, Duration) {
        let started = Instant::now();
        let out = tokio::time::timeout(limit, call)
            .await
            .unwrap_or_else(|_| panic!("a session call hung for more than {limit:?}"));
        (out, started.elapsed())
    }

    /// Waits (without blocking the runtime) until the site has received `n` token requests.
    async fn wait_for_token_requests_async(kit: &TestKit, n: usize) {
        let started = Instant::now();
        while kit.requests(Endpoint::Token) < n {
            assert!(
                started.elapsed() < LIMIT,
                "the refresh never reached the site"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn kit() -> TestKit {
        TestKit::builder()
            .client(spec())
            .access_token_lifetime(LIFETIME)
            .start()
            .await
            .expect("the kit starts")
    }

    /// A client of `kit` on `clock`, and the grant of a fresh login.
    async fn login(
        kit: &TestKit,
        clock: Arc<nethealth_oidc::ManualClock>,
    ) -> (nethealth_oidc::Client, nethealth_oidc::Grant) {
        let http = HttpClient::new(transport()).unwrap();
        let provider = Provider::discover_with_clock(http, kit.issuer(), clock)
            .await
            .unwrap();
        let client = provider.client(config(), ClientOptions::default()).unwrap();
        let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
        let callback = Browser::new()
            .login_async(auth_url.as_str(), &Consent::GrantAll)
            .await
            .expect("the login page works");
        let grant = client
            .finish_login(&pending, &url(&callback))
            .await
            .unwrap();
        (client, grant)
    }

    /// The site, the site's clock for the client, and a session of a fresh login stored in `store`.
    async fn session(
        store: RedisStore,
    ) -> (
        TestKit,
        Arc<nethealth_oidc::ManualClock>,
        nethealth_oidc::Session,
    ) {
        let kit = kit().await;
        let clock = clock_for(&kit);
        let (client, grant) = login(&kit, clock.clone()).await;
        let session = client
            .session(grant, SessionOptions::default().with_store(Arc::new(store)))
            .await
            .unwrap();
        kit.clear_transcript(); // count from here: the login's code exchange is not a refresh
        (kit, clock, session)
    }

    /// Makes the refresh due, has the site hold it up, and starts a caller; returns once the refresh is at the site.
    async fn held_refresh(
        kit: &TestKit,
        clock: &nethealth_oidc::ManualClock,
        session: &nethealth_oidc::Session,
    ) -> tokio::task::JoinHandle<(Result<Arc<AccessToken>, Error>, Duration)> {
        advance(kit, clock, INTO_MARGIN);
        kit.fail_next(Endpoint::Token, 1, Fault::Delay(HELD));
        let caller = tokio::spawn({
            let session = session.clone();
            async move { within(LIMIT, session.access_token()).await }
        });
        wait_for_token_requests_async(kit, 1).await;
        caller
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_redis_keeps_serving_the_valid_token_and_loses_nothing() {
        let redis = OwnedRedis::start();
        let store = store_at(&redis.url(), "stalled-async");
        let (kit, clock, session) = session(store.clone()).await;
        let first = stored_token(&store);

        // The refresh is due; the site holds it up, and Redis stalls while it is in flight.
        let caller = held_refresh(&kit, &clock, &session).await;
        redis.stall();
        let (served, took) = caller.await.unwrap();
        let served = served.expect("a still-valid token is served while Redis is stalled");
        assert!(
            served.ct_eq(&first),
            "the current token, as the new set is not stored"
        );
        println!("stalled mid-refresh: the caller got the valid token in {took:?}");

        // While Redis stays stalled, callers get the valid token at once.
        for _ in 0..100 {
            let (token, took) = within(LIMIT, session.access_token()).await;
            assert!(token.unwrap().ct_eq(&first));
            assert!(took < Duration::from_millis(500), "{took:?}");
        }
        // Once it has expired, the store's error is returned (typed, bounded by the command timeout).
        advance(&kit, &clock, Duration::from_secs(60));
        let (err, took) = within(LIMIT, session.access_token()).await;
        let err = err.unwrap_err();
        assert!(
            matches!(err, Error::Store(StoreError::Unavailable { .. })),
            "{err:?}"
        );
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("no answer within"), "{err}");
        assert!(
            err.to_string().contains("check that it is running"),
            "{err}"
        );
        println!("stalled, token expired: {err} (after {took:?})");

        // Redis is back: the rotated set kept aside is stored and handed out; no second refresh.
        redis.resume();
        let (token, took) = within(LIMIT, session.access_token()).await;
        let token = token.expect("Redis is back");
        assert!(!token.ct_eq(&first));
        assert!(
            stored_token(&store).ct_eq(&token),
            "the rotated set is in Redis"
        );
        println!("Redis back: the kept set was stored in {took:?}");
        assert_one_refresh_and_nothing_lost(&kit);
        let status = reqwest::Client::new()
            .get(kit.api_url())
            .header(http::header::AUTHORIZATION, token.authorization_header())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "the site accepts the stored token");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_lost_mid_refresh_refuses_the_save_and_loses_nothing() {
        let store = store_at(&shared_redis_url(), "lease-lost-async");
        let (kit, clock, session) = session(store.clone()).await;
        let first = stored_token(&store);
        let caller = held_refresh(&kit, &clock, &session).await;
        // Another process takes the lease while the refresh is held up at the site.
        take_lease(&store);
        let (served, _) = caller.await.unwrap();
        assert!(served.unwrap().ct_eq(&first), "the valid token is served");
        assert!(
            stored_token(&store).ct_eq(&first),
            "the fenced save was refused: nothing in Redis was overwritten"
        );
        // The other process's lease ends; the next renewal (after the backoff) stores the kept set under a new lease.
        advance(&kit, &clock, Duration::from_secs(2));
        let (token, _) = within(LIMIT, session.access_token()).await;
        let token = token.unwrap();
        assert!(!token.ct_eq(&first));
        assert!(stored_token(&store).ct_eq(&token));
        assert_one_refresh_and_nothing_lost(&kit);
    }

    #[tokio::test]
    async fn a_redis_url_where_nothing_listens_fails_the_session_with_a_typed_error() {
        let kit = kit().await;
        let (client, grant) = login(&kit, clock_for(&kit)).await;
        let refused = refused_url("").replace("http://", "redis://");
        let store = RedisStore::open(&refused, "user-1", redis_options()).unwrap();
        let options = SessionOptions::default().with_store(Arc::new(store));
        let (err, _) = within(LIMIT, client.session(grant, options)).await;
        let err = err.unwrap_err();
        assert!(
            matches!(err, Error::Store(StoreError::Unavailable { .. })),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("check that it is running"),
            "{err}"
        );
    }
}

/// Another process's lease on `store`'s key, for 500 ms.
fn take_lease(store: &RedisStore) {
    let mut conn = redis::Client::open(shared_redis_url().as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let () = redis::cmd("SET")
        .arg(store.lease_key())
        .arg("4242:another-process")
        .arg("PX")
        .arg(500)
        .query(&mut conn)
        .unwrap();
}

mod blocking_api {
    use super::*;
    use nethealth_oidc::blocking;

    /// Runs `call` on a thread of its own, failing the test if it takes longer than `limit`; returns its outcome
    /// and how long it took.
    fn within<T: Send + 'static>(
        limit: Duration,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> (T, Duration) {
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(call());
        });
        let out = rx
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("a session call hung for more than {limit:?}"));
        (out, started.elapsed())
    }

    fn session(
        store: RedisStore,
    ) -> (TestKit, Arc<nethealth_oidc::ManualClock>, blocking::Session) {
        let kit = TestKit::builder()
            .client(spec())
            .access_token_lifetime(LIFETIME)
            .start_blocking()
            .expect("the kit starts");
        let clock = clock_for(&kit);
        let provider = blocking::Provider::discover_with_clock(
            blocking::HttpClient::new(transport()),
            kit.issuer(),
            clock.clone(),
        )
        .unwrap();
        let client = provider.client(config(), ClientOptions::default()).unwrap();
        let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
        let callback = Browser::new()
            .login(auth_url.as_str(), &Consent::GrantAll)
            .expect("the login page works");
        let grant = client.finish_login(&pending, &url(&callback)).unwrap();
        let session = client
            .session(grant, SessionOptions::default().with_store(Arc::new(store)))
            .unwrap();
        kit.clear_transcript(); // count from here: the login's code exchange is not a refresh
        (kit, clock, session)
    }

    /// Makes the refresh due, has the site hold it up, and starts a caller; returns once the refresh is at the site.
    fn held_refresh(
        kit: &TestKit,
        clock: &nethealth_oidc::ManualClock,
        session: &blocking::Session,
    ) -> std::thread::JoinHandle<(Result<Arc<AccessToken>, Error>, Duration)> {
        advance(kit, clock, INTO_MARGIN);
        kit.fail_next(Endpoint::Token, 1, Fault::Delay(HELD));
        let caller = {
            let session = session.clone();
            std::thread::spawn(move || within(LIMIT, move || session.access_token()))
        };
        wait_for_token_requests(kit, 1);
        caller
    }

    #[test]
    fn a_stalled_redis_keeps_serving_the_valid_token_and_loses_nothing() {
        let redis = OwnedRedis::start();
        let store = store_at(&redis.url(), "stalled-blocking");
        let (kit, clock, session) = session(store.clone());
        let first = stored_token(&store);

        let caller = held_refresh(&kit, &clock, &session);
        redis.stall();
        let (served, took) = caller.join().unwrap();
        let served = served.expect("a still-valid token is served while Redis is stalled");
        assert!(served.ct_eq(&first));
        println!("stalled mid-refresh: the caller got the valid token in {took:?}");

        for _ in 0..100 {
            let session = session.clone();
            let (token, took) = within(LIMIT, move || session.access_token());
            assert!(token.unwrap().ct_eq(&first));
            assert!(took < Duration::from_millis(500), "{took:?}");
        }
        advance(&kit, &clock, Duration::from_secs(60));
        let (err, took) = within(LIMIT, {
            let session = session.clone();
            move || session.access_token()
        });
        let err = err.unwrap_err();
        assert!(
            matches!(err, Error::Store(StoreError::Unavailable { .. })),
            "{err:?}"
        );
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("no answer within"), "{err}");
        println!("stalled, token expired: {err} (after {took:?})");

        redis.resume();
        let (token, took) = within(LIMIT, {
            let session = session.clone();
            move || session.access_token()
        });
        let token = token.expect("Redis is back");
        assert!(!token.ct_eq(&first));
        assert!(stored_token(&store).ct_eq(&token));
        println!("Redis back: the kept set was stored in {took:?}");
        assert_one_refresh_and_nothing_lost(&kit);
        let status = blocking::ureq::get(kit.api_url())
            .header(
                "authorization",
                token.authorization_header().to_str().unwrap(),
            )
            .call()
            .map(|r| r.status().as_u16())
            .unwrap();
        assert_eq!(status, 200, "the site accepts the stored token");
    }

    #[test]
    fn a_lease_lost_mid_refresh_refuses_the_save_and_loses_nothing() {
        let store = store_at(&shared_redis_url(), "lease-lost-blocking");
        let (kit, clock, session) = session(store.clone());
        let first = stored_token(&store);
        let caller = held_refresh(&kit, &clock, &session);
        take_lease(&store);
        let (served, _) = caller.join().unwrap();
        assert!(served.unwrap().ct_eq(&first), "the valid token is served");
        assert!(
            stored_token(&store).ct_eq(&first),
            "the fenced save was refused: nothing in Redis was overwritten"
        );
        advance(&kit, &clock, Duration::from_secs(2));
        let (token, _) = within(LIMIT, move || session.access_token());
        let token = token.unwrap();
        assert!(!token.ct_eq(&first));
        assert!(stored_token(&store).ct_eq(&token));
        assert_one_refresh_and_nothing_lost(&kit);
    }
}
