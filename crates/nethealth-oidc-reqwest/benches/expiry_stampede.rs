//! 10,000 async tasks asking for the access token the moment it falls due, against one refresh round trip.
//!
//! A loopback token endpoint (the test-support `ScriptedServer`, which counts what it receives) answers every
//! refresh. The session's clock is a `ManualClock`: before each iteration it is moved past the token's expiry, so
//! the next `access_token()` must refresh. Then:
//!
//! - `one_task_refresh_round_trip` (the baseline): one task calls `access_token()` alone; its latency is the whole
//!   refresh (form, HTTP round trip on loopback, parse, install). The grant has no ID token, so none is verified.
//! - `async_10000_tasks_p99`: 10,000 tasks are spawned, each calls `access_token()` and records its own latency
//!   (from its first poll to its answer); the value per iteration is the 99th percentile of the 10,000.
//!
//! Target (checked by `cargo xtask bench`): the p99 at most 2x the round trip. Every iteration of both also checks
//! that the endpoint saw exactly one token request, and panics otherwise.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use nethealth_oidc_core::context::{ClientOptions, Grant};
use nethealth_oidc_core::discovery::ProviderMetadata;
use nethealth_oidc_core::jwks::JwkSet;
use nethealth_oidc_core::secret::{AccessToken, ClientSecret, RefreshToken};
use nethealth_oidc_core::store::SessionOptions;
use nethealth_oidc_core::token::TokenResponse;
use nethealth_oidc_core::{
    ClientConfig, Clock, GrantedScopes, ManualClock, ScopeSource, Scopes, UnixTime,
};
use nethealth_oidc_reqwest::{HttpClient, Provider, Session};
use nethealth_oidc_test_support::{Scripted, ScriptedServer};

const TASKS: usize = 10_000;
/// The tokens' lifetime; the clock jumps twice that before each iteration, beyond any refresh margin.
const LIFETIME: Duration = Duration::from_secs(3600);
const TOKEN_PATH: &str = "/connect/token";

fn metadata(server: &ScriptedServer) -> ProviderMetadata {
    serde_json::from_value(serde_json::json!({
        "issuer": server.url(""),
        "authorization_endpoint": server.url("/connect/authorize"),
        "token_endpoint": server.url(TOKEN_PATH),
    }))
    .expect("valid metadata")
}

fn grant(now: UnixTime) -> Grant {
    let mut response = TokenResponse::new(AccessToken::new("a".repeat(800)));
    response.expires_in = Some(LIFETIME);
    response.refresh_token = Some(RefreshToken::new("refresh-token"));
    let scopes = Scopes::parse("openid patients.read");
    Grant::new(
        response,
        None,
        GrantedScopes::new(scopes.clone(), scopes, ScopeSource::TokenResponse),
        now,
    )
}

/// A session on `server` whose clock the bench moves.
fn session(rt: &tokio::runtime::Runtime, server: &ScriptedServer) -> (Arc<ManualClock>, Session) {
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(1_800_000_000)));
    let provider = Provider::from_parts(
        HttpClient::new(Default::default()).expect("an HTTP client"),
        metadata(server),
        JwkSet::default(),
        clock.clone(),
    )
    .expect("a provider");
    let client = provider
        .client(
            ClientConfig::new("bench", Some(ClientSecret::new("bench-secret"))),
            ClientOptions::default(),
        )
        .expect("a client");
    let session = rt
        .block_on(client.session(grant(clock.now()), SessionOptions::default()))
        .expect("a session");
    (clock, session)
}

/// Makes the session's token due, runs `iteration`, and checks that it made exactly one token request.
fn at_expiry<T>(
    server: &ScriptedServer,
    clock: &ManualClock,
    what: &str,
    iteration: impl FnOnce() -> T,
) -> T {
    clock.advance(2 * LIFETIME);
    let before = server.count(TOKEN_PATH);
    let out = iteration();
    let sent = server.count(TOKEN_PATH) - before;
    assert_eq!(
        sent, 1,
        "{what}: the token endpoint saw {sent} requests for one expiry, not exactly 1: concurrent callers must share \
         one refresh"
    );
    out
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort_unstable();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let server = ScriptedServer::start();
    server.set_default(Scripted::json(
        200,
        &serde_json::json!({
            "access_token": "b".repeat(800),
            "token_type": "Bearer",
            "expires_in": LIFETIME.as_secs(),
            "refresh_token": "refresh-token",
        })
        .to_string(),
    ));
    let (clock, session) = session(&rt, &server);

    let mut group = c.benchmark_group("expiry_stampede");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("one_task_refresh_round_trip", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += at_expiry(&server, &clock, "one task", || {
                    rt.block_on(async {
                        let start = Instant::now();
                        session.access_token().await.expect("the refresh succeeds");
                        start.elapsed()
                    })
                });
            }
            total
        })
    });
    group.bench_function("async_10000_tasks_p99", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += at_expiry(&server, &clock, "10,000 tasks", || {
                    rt.block_on(async {
                        let tasks: Vec<_> = (0..TASKS)
                            .map(|_| {
                                let session = session.clone();
                                tokio::spawn(async move {
                                    let start = Instant::now();
                                    session.access_token().await.expect("the refresh succeeds");
                                    start.elapsed()
                                })
                            })
                            .collect();
                        let mut latencies = Vec::with_capacity(TASKS);
                        for task in tasks {
                            latencies.push(task.await.expect("the task does not panic"));
                        }
                        p99(latencies)
                    })
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
