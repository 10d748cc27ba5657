//! Faults beyond the ones in `transport.rs`, through the async transport against live loopback servers: headers
//! dripped one byte a second, a body that never ends, a 10 GB `Content-Length` then a close, a reset mid-body,
//! 100,000 nested JSON arrays, absurd `expires_in` values, a JWKS of 10,000 keys and a 10 MB ID token. Each ends in
//! a typed error (or a documented interpretation) within the bound that [`TransportConfig::max_send_time`] states.
//!
//! `crates/nethealth-oidc-ureq/tests/faults.rs` runs the same faults through the blocking transport.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nethealth_oidc_core::context::ClientOptions;
use nethealth_oidc_core::retry::{RequestKind, RetryPolicy};
use nethealth_oidc_core::secret::ClientSecret;
use nethealth_oidc_core::{
    ClientConfig, Endpoint, Error, ManualClock, ResponseError, Scopes, TransportError, UnixTime,
    Url,
};
use nethealth_oidc_reqwest::{Client, HttpClient, Provider, SessionOptions, TransportConfig};
use nethealth_oidc_test_support::get_json;
use nethealth_oidc_test_support::{
    RawServer, RawStep, Scripted, ScriptedServer, peak_rss_growth, rerun_self,
};

/// The body limit of the byte-level tests.
const LIMIT: usize = 64 * 1024;
/// The per-attempt timeout of the tests that expect one.
const TIMEOUT: Duration = Duration::from_millis(1500);
/// The start of a response head, up to the headers that differ.
const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n";

fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
    }
}

fn config(max_attempts: u32) -> TransportConfig {
    TransportConfig::default()
        .with_timeout(TIMEOUT)
        .with_connect_timeout(Duration::from_secs(1))
        .with_max_body_bytes(LIMIT)
        .with_retry(retry(max_attempts))
}

fn get(server: &RawServer) -> http::Request<Vec<u8>> {
    get_json(&Url::parse(&server.url("/jwks")).expect("the server URL parses"))
}

/// Sends one request to `server` and returns the error it must end in, with how long that took.
async fn fails(
    server: &RawServer,
    config: &TransportConfig,
    kind: RequestKind,
) -> (TransportError, Duration) {
    let http = HttpClient::new(config.clone()).expect("the HTTP client builds");
    let started = Instant::now();
    let err = http
        .send(Endpoint::Jwks, kind, get(server))
        .await
        .expect_err("the fault ends in an error");
    (err, started.elapsed())
}

/// `elapsed` is within the configured bound, with generous slack for a loaded machine.
fn within_bound(elapsed: Duration, config: &TransportConfig) {
    let bound = config.max_send_time();
    assert!(
        elapsed <= bound + bound / 2 + Duration::from_millis(500),
        "took {elapsed:?}, the bound is {bound:?}"
    );
}

// ---- byte-level faults ----

#[tokio::test]
async fn headers_dripped_one_byte_a_second_end_by_the_configured_bound() {
    let server = RawServer::start(vec![RawStep::drip(
        &format!("{HEAD}content-length: 2\r\n\r\n{{}}"),
        Duration::from_secs(1),
    )]);
    let config = config(2);
    // A one-shot request is not retried once sent: it ends at the timeout. An idempotent one is retried once.
    for (kind, attempts) in [(RequestKind::OneShot, 1u32), (RequestKind::Idempotent, 2)] {
        let before = server.connections();
        let (err, elapsed) = fails(&server, &config, kind).await;
        assert_eq!(
            err,
            TransportError::Timeout {
                endpoint: Endpoint::Jwks,
                timeout: TIMEOUT
            }
        );
        assert!(
            elapsed >= TIMEOUT * attempts - Duration::from_millis(100),
            "{kind:?} gave up early: {elapsed:?}"
        );
        within_bound(elapsed, &config);
        assert_eq!(server.connections() - before, attempts as usize, "{kind:?}");
    }
}

#[tokio::test]
async fn an_endless_chunked_body_is_refused_at_the_limit() {
    let server = RawServer::start(vec![
        RawStep::text(&format!("{HEAD}transfer-encoding: chunked\r\n\r\n")),
        RawStep::EndlessChunks {
            size: 16 * 1024,
            every: Duration::ZERO,
        },
    ]);
    let (err, elapsed) = fails(&server, &config(3), RequestKind::Idempotent).await;
    assert_eq!(
        err,
        TransportError::BodyTooLarge {
            endpoint: Endpoint::Jwks,
            limit: LIMIT
        }
    );
    assert!(
        elapsed < TIMEOUT,
        "the limit, not the clock, ended it: {elapsed:?}"
    );
    assert_eq!(
        server.connections(),
        1,
        "a body over the limit is not retried"
    );
    let written = server.bytes_written();
    assert!(written < 32 << 20, "{written} bytes were written");
}

#[tokio::test]
async fn an_endless_trickle_ends_at_the_timeout() {
    let server = RawServer::start(vec![
        RawStep::text(&format!("{HEAD}transfer-encoding: chunked\r\n\r\n")),
        RawStep::EndlessChunks {
            size: 16,
            every: Duration::from_millis(50),
        },
    ]);
    let config = config(1);
    let (err, elapsed) = fails(&server, &config, RequestKind::Idempotent).await;
    assert_eq!(
        err,
        TransportError::Timeout {
            endpoint: Endpoint::Jwks,
            timeout: TIMEOUT
        }
    );
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(100),
        "{elapsed:?}"
    );
    within_bound(elapsed, &config);
}

#[tokio::test]
async fn a_ten_gigabyte_content_length_then_a_close_is_refused_before_the_body() {
    let server = RawServer::start(vec![
        RawStep::text(&format!("{HEAD}content-length: 10000000000\r\n\r\n")),
        RawStep::Send(vec![b'x'; 1000]),
    ]);
    let (err, elapsed) = fails(&server, &config(3), RequestKind::Idempotent).await;
    assert_eq!(
        err,
        TransportError::BodyTooLarge {
            endpoint: Endpoint::Jwks,
            limit: LIMIT
        }
    );
    assert!(elapsed < TIMEOUT, "{elapsed:?}");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_an_error_not_a_short_body() {
    let server = RawServer::start(vec![
        RawStep::text(&format!("{HEAD}content-length: 1000\r\n\r\n")),
        RawStep::text(r#"{"keys":[]}"#),
    ]);
    let config = config(2);
    let (err, elapsed) = fails(&server, &config, RequestKind::Idempotent).await;
    assert!(
        matches!(
            err,
            TransportError::Io {
                endpoint: Endpoint::Jwks,
                ..
            }
        ),
        "{err:?}"
    );
    within_bound(elapsed, &config);
    assert_eq!(server.connections(), 2, "an idempotent request is retried");
}

#[tokio::test]
async fn a_reset_mid_body_is_an_io_error() {
    let server = RawServer::start(vec![
        RawStep::text(&format!("{HEAD}content-length: 1000\r\n\r\n")),
        RawStep::Send(vec![b'x'; 100]),
        RawStep::Pause(Duration::from_millis(50)),
        RawStep::Reset,
    ]);
    let config = config(2);
    for (kind, attempts) in [(RequestKind::OneShot, 1), (RequestKind::Idempotent, 2)] {
        let before = server.connections();
        let (err, elapsed) = fails(&server, &config, kind).await;
        match &err {
            TransportError::Io { endpoint, reason } => {
                assert_eq!(*endpoint, Endpoint::Jwks);
                assert!(!reason.is_empty());
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(!err.never_sent(), "the request went out");
        within_bound(elapsed, &config);
        assert_eq!(server.connections() - before, attempts, "{kind:?}");
    }
}

// ---- memory ----

const MEASURE: &str = "NETHEALTH_OIDC_TEST_MEASURE";

/// The child side of [`reading_stops_at_the_limit_and_memory_stays_bounded`]: measures the peak resident-set growth
/// of one request, printed as `peak <bytes>`.
fn measure(fault: &str) {
    let limit = 8 << 20;
    let server = RawServer::start(match fault {
        "endless" => vec![
            RawStep::text(&format!("{HEAD}transfer-encoding: chunked\r\n\r\n")),
            RawStep::EndlessChunks {
                size: 64 * 1024,
                every: Duration::ZERO,
            },
        ],
        _ => vec![
            RawStep::text(&format!("{HEAD}content-length: 10000000000\r\n\r\n")),
            RawStep::Send(vec![b'x'; 64 * 1024]),
        ],
    });
    let http = HttpClient::new(
        TransportConfig::default()
            .with_max_body_bytes(limit)
            .with_retry(RetryPolicy::NEVER),
    )
    .expect("the HTTP client builds");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime can be built");
    let send =
        || runtime.block_on(http.send(Endpoint::Jwks, RequestKind::Idempotent, get(&server)));
    // Warm up (thread-locals, the client's pool, the allocator's arenas) so that only the fault is measured.
    let _ = send();
    let (result, grown) = peak_rss_growth(send).expect("/proc/self is readable");
    assert_eq!(
        result.expect_err("over the limit"),
        TransportError::BodyTooLarge {
            endpoint: Endpoint::Jwks,
            limit
        }
    );
    std::io::stdout()
        .write_all(format!("\npeak {grown}\n").as_bytes())
        .expect("stdout is writable");
}

fn peak_of(fault: &str) -> u64 {
    let output = rerun_self(
        "reading_stops_at_the_limit_and_memory_stays_bounded",
        MEASURE,
        fault,
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("peak "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child printed no `peak` line:\n{text}"))
}

#[cfg(target_os = "linux")]
#[test]
fn reading_stops_at_the_limit_and_memory_stays_bounded() {
    if let Ok(fault) = std::env::var(MEASURE) {
        return measure(&fault);
    }
    let limit: u64 = 8 << 20;
    let endless = peak_of("endless");
    let declared = peak_of("declared");
    std::io::stderr()
        .write_all(
            format!(
                "reqwest peak resident-set growth: endless chunked body {} KiB, 10 GB Content-Length {} KiB \
                 (limit {} KiB)\n",
                endless / 1024,
                declared / 1024,
                limit / 1024
            )
            .as_bytes(),
        )
        .expect("stderr is writable");
    // The body is collected up to the limit (a growing buffer may hold up to twice it while it is copied).
    assert!(
        endless <= 3 * limit,
        "{endless} bytes for a limit of {limit}"
    );
    // A declared length over the limit is refused before any of the body is read.
    assert!(declared <= limit / 4, "{declared} bytes");
}

// ---- a provider that answers oddly ----

/// A provider on `server` (discovery and an empty JWKS) with a clock at `clock`, and a client of it.
async fn client_at(
    server: &ScriptedServer,
    config: TransportConfig,
    clock: Arc<ManualClock>,
) -> Client {
    let issuer = server.url("");
    server.enqueue(
        "/.well-known/openid-configuration",
        Scripted::json(
            200,
            &format!(
                r#"{{"issuer":"{issuer}","authorization_endpoint":"{issuer}/authorize","token_endpoint":"{issuer}/token",
                "jwks_uri":"{issuer}/jwks","response_types_supported":["code"],"subject_types_supported":["public"],
                "id_token_signing_alg_values_supported":["RS256"]}}"#
            ),
        ),
    );
    server.enqueue("/jwks", Scripted::json(200, r#"{"keys":[]}"#));
    let provider = Provider::discover_with_clock(
        HttpClient::new(config).expect("the HTTP client builds"),
        &issuer,
        clock,
    )
    .await
    .expect("the provider is discovered");
    let redirect = Url::parse("http://127.0.0.1:9/cb").expect("a loopback URL parses");
    provider
        .client(
            ClientConfig::new("cid", Some(ClientSecret::new("s3cret")))
                .with_redirect_uris(vec![redirect]),
            ClientOptions::default(),
        )
        .expect("the client is made")
}

async fn client(server: &ScriptedServer, config: TransportConfig) -> Client {
    client_at(
        server,
        config,
        Arc::new(ManualClock::new(UnixTime::from_secs(1_700_000_000))),
    )
    .await
}

fn generous() -> TransportConfig {
    TransportConfig::default()
        .with_timeout(Duration::from_secs(10))
        .with_retry(RetryPolicy::NEVER)
}

#[tokio::test]
async fn a_hundred_thousand_nested_arrays_in_a_token_response_are_a_typed_error() {
    let server = ScriptedServer::start();
    let client = client(&server, generous()).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let in_a_field = format!(r#"{{"access_token":"x","token_type":"bearer","extra":{nested}}}"#);
    for body in [nested, in_a_field] {
        server.enqueue("/token", Scripted::json(200, &body));
        let started = Instant::now();
        let err = client
            .client_credentials(&Scopes::parse("api"))
            .await
            .expect_err("the body is refused");
        match &err {
            Error::Response(ResponseError::Malformed {
                endpoint, reason, ..
            }) => {
                assert_eq!(*endpoint, Endpoint::Token);
                assert!(reason.contains("nested more than 128 levels"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn absurd_expires_in_values_have_a_sane_meaning() {
    let server = ScriptedServer::start();
    let client = client(&server, generous()).await;
    let token = |expires_in: &str| {
        Scripted::json(
            200,
            &format!(r#"{{"access_token":"at","token_type":"bearer","expires_in":{expires_in}}}"#),
        )
    };
    let scopes = Scopes::parse("api");
    // Beyond any date: saturates to "practically never"; the session hands the token out and asks for no other.
    for huge in ["1e308", "18446744073709551616", r#""1e308""#] {
        server.enqueue("/token", token(huge));
        let grant = client
            .client_credentials(&scopes)
            .await
            .expect("a huge lifetime is accepted");
        assert_eq!(
            grant.response.expires_in,
            Some(Duration::from_secs(u64::MAX)),
            "{huge}"
        );
        assert_eq!(
            grant.response.expires_at(grant.received_at),
            Some(UnixTime::MAX),
            "{huge}"
        );
        server.enqueue("/token", token(huge));
        let before = server.count("/token");
        let session = client
            .client_credentials_session(&scopes, SessionOptions::default())
            .await
            .expect("a session starts");
        for _ in 0..5 {
            session
                .access_token()
                .await
                .expect("the token is handed out");
        }
        assert_eq!(
            server.count("/token"),
            before + 1,
            "{huge}: one token request"
        );
    }
    // Zero or negative: already expired. The session asks again, but spaced out, never in a loop.
    for expired in ["0", "-1", "-1e308", "1e-300", r#""-5""#] {
        server.set_default(token(expired));
        let grant = client
            .client_credentials(&scopes)
            .await
            .expect("an expired token is a token");
        assert_eq!(grant.response.expires_in, Some(Duration::ZERO), "{expired}");
        let before = server.count("/token");
        let session = client
            .client_credentials_session(&scopes, SessionOptions::default())
            .await
            .expect("a session starts");
        for _ in 0..20 {
            let _ = session.access_token().await;
        }
        let asked = server.count("/token") - before;
        assert!(asked <= 2, "{expired}: {asked} token requests for 20 calls");
    }
    // Not a number at all: refused, naming the field. Beyond a 64-bit float: the JSON itself is refused.
    for (bad, says) in [(r#""soon""#, "expires_in"), ("1e400", "number too large")] {
        server.set_default(token(bad));
        let err = client
            .client_credentials(&scopes)
            .await
            .expect_err("not a usable number");
        assert!(
            matches!(err, Error::Response(ResponseError::Malformed { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
}

/// One RSA public key (2048 bits) in JWK form with key id `kid`: a realistic size for a key flood.
fn rsa_jwk(kid: usize) -> String {
    let n = "x".repeat(342);
    format!(r#"{{"kty":"RSA","use":"sig","alg":"RS256","kid":"k{kid}","n":"{n}","e":"AQAB"}}"#)
}

#[tokio::test]
async fn a_jwks_of_ten_thousand_keys_is_refused_and_the_last_good_keys_are_kept() {
    let flood = format!(
        r#"{{"keys":[{}]}}"#,
        (0..10_000).map(rsa_jwk).collect::<Vec<_>>().join(",")
    );
    assert!(
        flood.len() > 1 << 20,
        "a realistic flood is larger than the default body limit"
    );
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(1_700_000_000)));
    // With the default body limit the flood is too large to read; with a limit that lets it through, the key cap
    // refuses it, within a bounded time. Either way the last good keys are kept.
    for (limit, too_large) in [(None, true), (Some(16 << 20), false)] {
        let server = ScriptedServer::start();
        let config = match limit {
            Some(limit) => generous().with_max_body_bytes(limit),
            None => generous(),
        };
        let client = client_at(&server, config, Arc::clone(&clock)).await;
        server.enqueue("/jwks", Scripted::json(200, &flood));
        // Past the refetch rate limit.
        clock.advance(Duration::from_secs(3600));
        let before = client.provider().keys();
        let started = Instant::now();
        let err = client
            .provider()
            .refresh_keys()
            .await
            .expect_err("the flood is refused");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(server.count("/jwks"), 2, "the refetch went out");
        match &err {
            Error::Transport(TransportError::BodyTooLarge { endpoint, .. }) if too_large => {
                assert_eq!(*endpoint, Endpoint::Jwks);
            }
            Error::Response(ResponseError::Malformed {
                endpoint, reason, ..
            }) if !too_large => {
                assert_eq!(*endpoint, Endpoint::Jwks);
                assert!(reason.contains("10000 keys"), "{reason}");
                let cap = nethealth_oidc_core::jwks::MAX_KEYS.to_string();
                assert!(reason.contains(&cap), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Arc::ptr_eq(&before, &client.provider().keys()),
            "the last good keys are kept"
        );
    }
}

#[tokio::test]
async fn a_ten_megabyte_id_token_is_refused_by_a_size_bound() {
    let id_token = format!("{}.{}.sig", "e".repeat(100), "p".repeat(10 << 20));
    let body = format!(
        r#"{{"access_token":"at","token_type":"bearer","expires_in":3600,"id_token":"{id_token}"}}"#
    );
    for (config, expect_transport) in [
        (generous(), true),
        (generous().with_max_body_bytes(16 << 20), false),
    ] {
        let server = ScriptedServer::start();
        let client = client(&server, config).await;
        server.enqueue("/token", Scripted::json(200, &body));
        let (url, pending) = client
            .begin_login(&Scopes::parse("openid"))
            .expect("a login begins");
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("the authorization URL carries a state");
        let callback = Url::parse(&format!("http://127.0.0.1:9/cb?code=c0de&state={state}"))
            .expect("the callback URL parses");
        let started = Instant::now();
        let err = client
            .finish_login(&pending, &callback)
            .await
            .expect_err("the ID token is too large");
        assert!(started.elapsed() < Duration::from_secs(5));
        if expect_transport {
            assert!(
                matches!(err, Error::Transport(TransportError::BodyTooLarge { .. })),
                "{err:?}"
            );
        } else {
            match &err {
                Error::IdToken(e) => assert!(e.to_string().contains("64 KiB"), "{e}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            !format!("{err:?}").contains("ppppppppp"),
            "the token is not echoed"
        );
    }
}
