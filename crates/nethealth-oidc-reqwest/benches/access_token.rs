//! The hot path: `Session::access_token()` on a valid cached token, async and blocking, against its floor — one
//! clock read plus one atomic load. Target (checked by `cargo xtask bench`): at most 3x the floor.
//!
//! The keyed hot path, in the same run: 10,000 users' sessions cached in `Sessions`, each call a lookup by key then
//! `access_token()`. Target (checked): at most 1.5x the unkeyed path, for one user's requests. Also measured (not
//! checked): the key made from text on each call (its allocation and hash), and the keys taken in turn, where each
//! call reaches another session's memory (CPU-cache misses).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use nethealth_oidc_core::context::{ClientOptions, Grant};
use nethealth_oidc_core::discovery::ProviderMetadata;
use nethealth_oidc_core::jwks::JwkSet;
use nethealth_oidc_core::secret::{AccessToken, ClientSecret};
use nethealth_oidc_core::store::{MemoryKeyedStore, SessionKey, SessionOptions};
use nethealth_oidc_core::token::TokenResponse;
use nethealth_oidc_core::{ClientConfig, Clock, GrantedScopes, ScopeSource, Scopes};
use nethealth_oidc_store::SystemClock;

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

fn config() -> ClientConfig {
    ClientConfig::new("bench", Some(ClientSecret::new("s")))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let provider = nethealth_oidc_reqwest::Provider::from_parts(
        nethealth_oidc_reqwest::HttpClient::new(Default::default()).expect("a client"),
        metadata(),
        JwkSet::default(),
        Arc::new(SystemClock),
    )
    .expect("a provider");
    let client = provider
        .client(config(), ClientOptions::default())
        .expect("a client");
    let session = rt
        .block_on(client.session(grant(), SessionOptions::default()))
        .expect("a session");

    let blocking_provider = nethealth_oidc_ureq::Provider::from_parts(
        nethealth_oidc_ureq::HttpClient::default(),
        metadata(),
        JwkSet::default(),
        Arc::new(SystemClock),
    )
    .expect("a provider");
    let blocking_session = blocking_provider
        .client(config(), ClientOptions::default())
        .expect("a client")
        .session(grant(), SessionOptions::default())
        .expect("a session");

    let users: Vec<SessionKey> = (0..10_000)
        .map(|i| SessionKey::new(format!("session-{i:05}-of-a-web-service")))
        .collect();
    let sessions = client.sessions(Arc::new(MemoryKeyedStore::new()), SessionOptions::default());
    let blocking_sessions = blocking_provider
        .client(config(), ClientOptions::default())
        .expect("a client")
        .sessions(Arc::new(MemoryKeyedStore::new()), SessionOptions::default());
    rt.block_on(async {
        for key in &users {
            sessions.insert(key, grant()).await.expect("a session");
            blocking_sessions.insert(key, grant()).expect("a session");
        }
    });
    assert_eq!(sessions.cached(), users.len());
    assert_eq!(blocking_sessions.cached(), users.len());

    let mut group = c.benchmark_group("access_token");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let deadline = AtomicU64::new(u64::MAX);
    group.bench_function("floor_clock_read_plus_atomic_load", |b| {
        b.iter(|| {
            let now = black_box(&clock).now().as_secs();
            black_box(now < deadline.load(Ordering::Acquire))
        })
    });
    group.bench_function("async_session_access_token", |b| {
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
    group.bench_function("blocking_session_access_token", |b| {
        b.iter(|| black_box(blocking_session.access_token().expect("a valid token")))
    });
    // One user's requests among 10,000 cached sessions: the lookup's own cost (the target).
    let hot = &users[1234];
    group.bench_function("async_sessions_get_then_access_token", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let session = sessions.get(hot).await.expect("no error").expect("cached");
                    black_box(session.access_token().await.expect("a valid token"));
                }
                start.elapsed()
            })
        })
    });
    // The same with the key made from the cookie's text on each call, as a handler does (not checked): the key's
    // allocation and its one SipHash are paid here, not at the lookup.
    let hot_text = hot.as_str().to_owned();
    group.bench_function("async_sessions_new_key_then_get_then_access_token", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let key = SessionKey::new(black_box(hot_text.as_str()));
                    let session = sessions.get(&key).await.expect("no error").expect("cached");
                    black_box(session.access_token().await.expect("a valid token"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("blocking_sessions_get_then_access_token", |b| {
        b.iter(|| {
            let session = blocking_sessions
                .get(hot)
                .expect("no error")
                .expect("cached");
            black_box(session.access_token().expect("a valid token"))
        })
    });
    // Every user in turn: each call touches another session's memory, so this measures CPU-cache misses too.
    group.bench_function("async_sessions_keys_in_turn", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut turn = users.iter().cycle();
                let start = Instant::now();
                for _ in 0..iters {
                    let key = turn.next().expect("cycle never ends");
                    let session = sessions.get(key).await.expect("no error").expect("cached");
                    black_box(session.access_token().await.expect("a valid token"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("blocking_sessions_keys_in_turn", |b| {
        let mut turn = users.iter().cycle();
        b.iter(|| {
            let key = turn.next().expect("cycle never ends");
            let session = blocking_sessions
                .get(key)
                .expect("no error")
                .expect("cached");
            black_box(session.access_token().expect("a valid token"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
