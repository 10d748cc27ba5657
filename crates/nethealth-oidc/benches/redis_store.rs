//! `RedisStore` on the hot path and in a refresh, against a real redis-server (`NETHEALTH_TEST_REDIS`; `cargo xtask
//! bench` starts one).
//!
//! - The cached hot path, `Session::access_token()` over a `RedisStore`, async and blocking, against the floor (one
//!   clock read plus one atomic load). Target (checked by `cargo xtask bench`): at most 3x the floor, as with
//!   `MemoryStore`: the hot path never touches the store.
//! - One refresh (the token rejected, then `access_token()` renews it) against the local Accounts site, over a
//!   `RedisStore` and over a `MemoryStore`. Target (checked): at most 1.5x. A refresh over Redis adds the lease
//!   (`SET NX PX`), the re-read (`GET`), the fenced save (`EVALSHA`), the release (`EVALSHA`) and the lease's renewal
//!   thread, a few hundred microseconds on loopback, to a refresh that already costs an HTTP round trip, the site
//!   signing a JWT and the client verifying the refreshed ID token.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use nethealth_oidc::core::discovery::ProviderMetadata;
use nethealth_oidc::core::jwks::JwkSet;
use nethealth_oidc::core::token::TokenResponse;
use nethealth_oidc::core::{Clock, ScopeSource};
use nethealth_oidc::{
    AccessToken, ClientConfig, ClientOptions, ClientSecret, Grant, GrantedScopes, HttpClient,
    MemoryStore, Provider, RedisOptions, RedisStore, Scopes, SessionOptions, SystemClock,
    TokenStore,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, TestKit};

const REDIRECT: &str = "http://127.0.0.1:8080/callback";

fn redis_url() -> String {
    std::env::var("NETHEALTH_TEST_REDIS").unwrap_or_else(|_| {
        panic!(
            "NETHEALTH_TEST_REDIS is not set: run `cargo xtask bench`, which starts redis-server, or start one with \
             `redis-server --port 6390 --save ''` and set NETHEALTH_TEST_REDIS=redis://127.0.0.1:6390"
        )
    })
}

fn redis_store(name: &str) -> RedisStore {
    let key = format!("bench:{name}:{}", std::process::id());
    let store = RedisStore::open(&redis_url(), &key, RedisOptions::default())
        .expect("a valid NETHEALTH_TEST_REDIS URL");
    store
        .clear()
        .expect("the redis-server at NETHEALTH_TEST_REDIS answers");
    store
}

fn metadata() -> ProviderMetadata {
    serde_json::from_value(serde_json::json!({
        "issuer": "https://accounts.example.com",
        "authorization_endpoint": "https://accounts.example.com/connect/authorize",
        "token_endpoint": "https://accounts.example.com/connect/token",
    }))
    .expect("valid metadata")
}

fn grant() -> Grant {
    let mut response = TokenResponse::new(AccessToken::new("a".repeat(800)));
    response.expires_in = Some(Duration::from_secs(3600));
    let scopes = Scopes::parse("openid patients.read");
    Grant::new(
        response,
        None,
        GrantedScopes::new(scopes.clone(), scopes, ScopeSource::TokenResponse),
        SystemClock.now(),
    )
}

fn hot_path(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let config = || ClientConfig::new("bench", Some(ClientSecret::new("s")));
    let client = Provider::from_parts(
        HttpClient::new(Default::default()).expect("a client"),
        metadata(),
        JwkSet::default(),
        Arc::new(SystemClock),
    )
    .expect("a provider")
    .client(config(), ClientOptions::default())
    .expect("a client");
    let store = Arc::new(redis_store("hot-async"));
    let session = rt
        .block_on(client.session(grant(), SessionOptions::default().with_store(store)))
        .expect("a session stored in Redis");
    let blocking_session = nethealth_oidc::blocking::Provider::from_parts(
        nethealth_oidc::blocking::HttpClient::default(),
        metadata(),
        JwkSet::default(),
        Arc::new(SystemClock),
    )
    .expect("a provider")
    .client(config(), ClientOptions::default())
    .expect("a client")
    .session(
        grant(),
        SessionOptions::default().with_store(Arc::new(redis_store("hot-blocking"))),
    )
    .expect("a session stored in Redis");

    let mut group = c.benchmark_group("redis_store");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let deadline = AtomicU64::new(u64::MAX);
    group.bench_function("floor_clock_read_plus_atomic_load", |b| {
        b.iter(|| {
            let now = black_box(&clock).now().as_secs();
            black_box(now < deadline.load(Ordering::Acquire))
        })
    });
    group.bench_function("async_session_access_token_redis_store", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(session.access_token().await.expect("a valid token"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("blocking_session_access_token_redis_store", |b| {
        b.iter(|| black_box(blocking_session.access_token().expect("a valid token")))
    });
    group.finish();
}

/// A session of a fresh login at `kit`, kept in `store`.
async fn logged_in(kit: &TestKit, store: Arc<dyn TokenStore>) -> nethealth_oidc::Session {
    let provider = Provider::discover(
        HttpClient::new(Default::default()).expect("a client"),
        kit.issuer(),
    )
    .await
    .expect("discovery at the local site");
    let config = ClientConfig::new("app", Some(ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![REDIRECT.parse().expect("a valid URL")]);
    let client = provider
        .client(config, ClientOptions::default())
        .expect("a client");
    let (auth_url, pending) = client
        .begin_login(&Scopes::parse("openid offline_access patients.read"))
        .expect("a login URL");
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &Consent::GrantAll)
        .await
        .expect("the login page works");
    let grant = client
        .finish_login(&pending, &callback.parse().expect("a callback URL"))
        .await
        .expect("the code exchange");
    client
        .session(grant, SessionOptions::default().with_store(store))
        .await
        .expect("a session")
}

/// Times `iters` refreshes of `session`: each round rejects the current token, so the next call renews it.
fn refreshes(
    rt: &tokio::runtime::Runtime,
    session: &nethealth_oidc::Session,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let old = session.access_token().await.expect("a valid token");
            session.token_rejected(&old);
            let start = Instant::now();
            let new = session.access_token().await.expect("a refreshed token");
            total += start.elapsed();
            assert!(!new.ct_eq(&old), "the token was refreshed");
        }
        total
    })
}

fn refresh(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let kit = rt
        .block_on(
            TestKit::builder()
                .client(ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT))
                .start(),
        )
        .expect("the kit starts");
    let memory = rt.block_on(logged_in(&kit, Arc::new(MemoryStore::new())));
    let redis = rt.block_on(logged_in(&kit, Arc::new(redis_store("refresh"))));

    let mut group = c.benchmark_group("redis_store");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("async_refresh_memory_store", |b| {
        b.iter_custom(|iters| refreshes(rt, &memory, iters))
    });
    group.bench_function("async_refresh_redis_store", |b| {
        b.iter_custom(|iters| refreshes(rt, &redis, iters))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    hot_path(c, &rt);
    refresh(c, &rt);
}

criterion_group!(benches, bench);
criterion_main!(benches);
