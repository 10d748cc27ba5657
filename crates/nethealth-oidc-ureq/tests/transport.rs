//! The blocking transport against a live loopback server: redirects, error bodies, the body limit, timeouts,
//! connection errors, retries, request fidelity and what reaches the logs.
//!
//! `crates/nethealth-oidc-reqwest/tests/transport.rs` runs the same scenarios against the async transport.

use std::time::{Duration, Instant};

use nethealth_oidc_core::retry::{RequestKind, RetryPolicy};
use nethealth_oidc_core::{Endpoint, TransportError, Url};
use nethealth_oidc_test_support::{Scripted, ScriptedServer, capture_logs, refused_url};
use nethealth_oidc_test_support::{bearer, get_json, post_form};
use nethealth_oidc_ureq::{HttpClient, TransportConfig, ureq};

/// The timeout of the tests that expect one; every other test runs with a generous one.
const SHORT: Duration = Duration::from_millis(300);
/// The body limit in these tests.
const LIMIT: usize = 64 * 1024;
/// A 100 MB body.
const HUGE: u64 = 100 * 1000 * 1000;

fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
    }
}

fn config() -> TransportConfig {
    TransportConfig::default()
        .with_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(5))
        .with_max_body_bytes(LIMIT)
        .with_retry(retry(3))
}

fn client(config: TransportConfig) -> HttpClient {
    HttpClient::new(config)
}

fn url(server: &ScriptedServer, path: &str) -> Url {
    Url::parse(&server.url(path)).expect("the server URL parses")
}

fn get(server: &ScriptedServer, path: &str) -> http::Request<Vec<u8>> {
    get_json(&url(server, path))
}

fn form(server: &ScriptedServer, path: &str) -> http::Request<Vec<u8>> {
    post_form(
        &url(server, path),
        [("grant_type", "authorization_code"), ("code", "c0de")],
        None,
    )
}

// ---- redirects ----

fn assert_redirect_not_followed(http: &HttpClient, status: u16, post: bool) {
    let server = ScriptedServer::start();
    server.enqueue("/start", Scripted::redirect(status, "/target"));
    server.set_default(Scripted::json(200, r#"{"followed":true}"#));
    let request = if post {
        form(&server, "/start")
    } else {
        get(&server, "/start")
    };
    let response = http
        .send(Endpoint::Token, RequestKind::Idempotent, request)
        .expect("a redirect is a response");
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["location"], "/target");
    assert_eq!(server.count("/start"), 1);
    assert_eq!(server.count("/target"), 0, "the redirect was followed");
}

#[test]
fn redirects_are_returned_not_followed() {
    let http = client(config());
    assert_redirect_not_followed(&http, 302, false);
    assert_redirect_not_followed(&http, 302, true);
    assert_redirect_not_followed(&http, 303, true);
    assert_redirect_not_followed(&http, 307, true);
}

#[test]
fn redirects_are_not_followed_with_an_agent_that_follows_them() {
    let agent = ureq::Agent::config_builder()
        .max_redirects(10)
        .build()
        .new_agent();
    let http = HttpClient::with_agent(agent, config());
    assert_redirect_not_followed(&http, 302, false);
    assert_redirect_not_followed(&http, 302, true);
    assert_redirect_not_followed(&http, 308, true);
}

// ---- error statuses ----

fn assert_error_bodies_intact(http: &HttpClient) {
    let server = ScriptedServer::start();
    let bodies = [
        (
            400,
            r#"{"error":"invalid_grant","error_description":"code expired"}"#,
        ),
        (401, r#"{"error":"invalid_client"}"#),
        (500, "<html>Server Error</html>"),
    ];
    for (status, body) in bodies {
        server.enqueue(
            "/token",
            Scripted::json(status, body).header("www-authenticate", "Bearer"),
        );
    }
    for (status, body) in bodies {
        let response = http
            .send(
                Endpoint::Token,
                RequestKind::OneShot,
                form(&server, "/token"),
            )
            .expect("an error status is a response");
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.body().as_slice(), body.as_bytes());
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(response.headers()["content-type"], "application/json");
    }
    assert_eq!(server.count("/token"), 3);
}

#[test]
fn error_bodies_come_back_intact() {
    assert_error_bodies_intact(&client(config()));
}

#[test]
fn error_bodies_come_back_intact_with_an_agent_that_errors_on_status() {
    // ureq's default agent turns 4xx and 5xx into errors, which would lose the OAuth error body.
    let agent = ureq::Agent::new_with_defaults();
    assert!(agent.config().http_status_as_error());
    assert_error_bodies_intact(&HttpClient::with_agent(agent, config()));
}

// ---- body limit ----

#[test]
fn a_body_at_the_limit_is_read_whole() {
    let server = ScriptedServer::start();
    server.enqueue("/a", Scripted::status(200).huge_body(LIMIT as u64, true));
    server.enqueue("/b", Scripted::status(200).huge_body(LIMIT as u64, false));
    let http = client(config());
    for path in ["/a", "/b"] {
        let response = http
            .send(Endpoint::Jwks, RequestKind::Idempotent, get(&server, path))
            .expect("a body at the limit is accepted");
        assert_eq!(response.body().len(), LIMIT, "{path}");
        assert!(response.body().iter().all(|&b| b == b'x'), "{path}");
    }
}

#[test]
fn a_content_length_over_the_limit_is_refused() {
    let server = ScriptedServer::start();
    server.enqueue(
        "/small",
        Scripted::status(200).huge_body(LIMIT as u64 + 1, true),
    );
    server.enqueue("/huge", Scripted::status(200).huge_body(HUGE, true));
    let http = client(config().with_retry(RetryPolicy::NEVER));
    for path in ["/small", "/huge"] {
        let started = Instant::now();
        let err = http
            .send(Endpoint::Jwks, RequestKind::Idempotent, get(&server, path))
            .expect_err("the body is over the limit");
        assert_eq!(
            err,
            TransportError::BodyTooLarge {
                endpoint: Endpoint::Jwks,
                limit: LIMIT
            }
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
    assert!(server.bytes_streamed() < 32 * 1024 * 1024);
}

#[test]
fn a_content_length_over_the_limit_is_refused_before_the_body_arrives() {
    let server = ScriptedServer::start();
    // The headers promise a large body, then one byte comes and the body stalls: only a check of the
    // Content-Length header can refuse it before the timeout.
    server.enqueue(
        "/jwks",
        Scripted::status(200)
            .header("content-length", &(LIMIT + 1).to_string())
            .stalled_body(),
    );
    let http = client(
        config()
            .with_timeout(Duration::from_secs(3))
            .with_retry(RetryPolicy::NEVER),
    );
    let started = Instant::now();
    let err = http
        .send(
            Endpoint::Jwks,
            RequestKind::Idempotent,
            get(&server, "/jwks"),
        )
        .expect_err("the declared body is over the limit");
    assert_eq!(
        err,
        TransportError::BodyTooLarge {
            endpoint: Endpoint::Jwks,
            limit: LIMIT
        }
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_chunked_body_over_the_limit_is_refused_quickly() {
    let server = ScriptedServer::start();
    server.enqueue("/jwks", Scripted::status(200).huge_body(HUGE, false));
    let http = client(config().with_retry(RetryPolicy::NEVER));
    let started = Instant::now();
    let err = http
        .send(
            Endpoint::Jwks,
            RequestKind::Idempotent,
            get(&server, "/jwks"),
        )
        .expect_err("the body is over the limit");
    assert_eq!(
        err,
        TransportError::BodyTooLarge {
            endpoint: Endpoint::Jwks,
            limit: LIMIT
        }
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The client stopped reading: the server could only fill the socket buffers before it noticed.
    let streamed = server.bytes_streamed();
    assert!(
        streamed < 32 * 1024 * 1024,
        "{streamed} bytes were streamed"
    );
    assert_eq!(server.count("/jwks"), 1);
}

// ---- timeouts and connection errors ----

fn assert_slow_server_times_out(http: &HttpClient) {
    let server = ScriptedServer::start();
    server.set_default(Scripted::status(200).delay(Duration::from_secs(5)));
    let started = Instant::now();
    let err = http
        .send(
            Endpoint::Token,
            RequestKind::OneShot,
            form(&server, "/token"),
        )
        .expect_err("the server is too slow");
    let elapsed = started.elapsed();
    assert_eq!(
        err,
        TransportError::Timeout {
            endpoint: Endpoint::Token,
            timeout: SHORT
        }
    );
    assert!(elapsed >= SHORT - Duration::from_millis(50), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(server.count("/token"), 1, "a one-shot request was retried");
}

#[test]
fn a_slow_server_times_out() {
    assert_slow_server_times_out(&client(config().with_timeout(SHORT)));
}

#[test]
fn a_slow_server_times_out_with_an_agent_that_would_wait_longer() {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .timeout_recv_response(None)
        .build()
        .new_agent();
    assert_slow_server_times_out(&HttpClient::with_agent(agent, config().with_timeout(SHORT)));
}

#[test]
fn a_body_that_stalls_times_out() {
    let server = ScriptedServer::start();
    server.set_default(Scripted::status(200).stalled_body());
    let http = client(config().with_timeout(SHORT));
    let started = Instant::now();
    let err = http
        .send(
            Endpoint::Token,
            RequestKind::OneShot,
            form(&server, "/token"),
        )
        .expect_err("the body never ends");
    assert_eq!(
        err,
        TransportError::Timeout {
            endpoint: Endpoint::Token,
            timeout: SHORT
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.count("/token"), 1);
}

#[test]
fn an_idempotent_request_is_retried_after_a_timeout() {
    let server = ScriptedServer::start();
    server.enqueue("/jwks", Scripted::status(200).delay(Duration::from_secs(5)));
    server.enqueue("/jwks", Scripted::json(200, r#"{"keys":[]}"#));
    let http = client(config().with_timeout(SHORT));
    let response = http
        .send(
            Endpoint::Jwks,
            RequestKind::Idempotent,
            get(&server, "/jwks"),
        )
        .expect("the second attempt answers");
    assert_eq!(response.body().as_slice(), br#"{"keys":[]}"#);
    assert_eq!(server.count("/jwks"), 2);
}

#[test]
fn a_closed_port_is_a_connect_error() {
    let http = client(config());
    for kind in [RequestKind::Idempotent, RequestKind::OneShot] {
        let request = get_json(&Url::parse(&refused_url("/x")).expect("a loopback URL parses"));
        let started = Instant::now();
        let err = http
            .send(Endpoint::Discovery, kind, request)
            .expect_err("nothing listens");
        assert!(
            matches!(
                err,
                TransportError::Connect {
                    endpoint: Endpoint::Discovery,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.never_sent());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

#[test]
fn a_one_shot_request_goes_through_after_the_server_closed_the_pooled_connection() {
    let first = ScriptedServer::start();
    first.set_default(Scripted::json(200, "{}"));
    let http = client(config());
    http.send(
        Endpoint::Jwks,
        RequestKind::Idempotent,
        get(&first, "/jwks"),
    )
    .expect("the first server answers");
    let port = first.addr().port();
    // The server goes away (closing the connection the client keeps in its pool) and comes back on the same port.
    drop(first);
    let second = ScriptedServer::start_on(port);
    second.set_default(Scripted::json(200, "{}"));
    let response = http
        .send(
            Endpoint::Token,
            RequestKind::OneShot,
            form(&second, "/token"),
        )
        .expect("a closed pooled connection is not reused");
    assert_eq!(response.status(), 200);
    assert_eq!(second.count("/token"), 1);
}

// ---- retries ----

#[test]
fn idempotent_503_then_200_succeeds_with_two_requests() {
    let server = ScriptedServer::start();
    server.enqueue("/.well-known/openid-configuration", Scripted::status(503));
    server.enqueue(
        "/.well-known/openid-configuration",
        Scripted::json(200, "{}"),
    );
    let http = client(config());
    let response = http
        .send(
            Endpoint::Discovery,
            RequestKind::Idempotent,
            get(&server, "/.well-known/openid-configuration"),
        )
        .expect("the retry answers");
    assert_eq!(response.status(), 200);
    assert_eq!(server.count("/.well-known/openid-configuration"), 2);
}

#[test]
fn retry_after_is_waited_for() {
    let server = ScriptedServer::start();
    server.enqueue(
        "/userinfo",
        Scripted::status(429).header("retry-after", "1"),
    );
    server.enqueue("/userinfo", Scripted::json(200, r#"{"sub":"1"}"#));
    let http = client(config());
    let started = Instant::now();
    let response = http
        .send(
            Endpoint::Userinfo,
            RequestKind::Idempotent,
            get(&server, "/userinfo"),
        )
        .expect("the retry answers");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(server.count("/userinfo"), 2);
}

#[test]
fn a_retry_after_beyond_max_delay_returns_the_429_at_once() {
    let server = ScriptedServer::start();
    server.enqueue(
        "/userinfo",
        Scripted::status(429).header("retry-after", "60"),
    );
    server.set_default(Scripted::json(200, "{}"));
    let http = client(config());
    let started = Instant::now();
    let response = http
        .send(
            Endpoint::Userinfo,
            RequestKind::Idempotent,
            get(&server, "/userinfo"),
        )
        .expect("a 429 is a response");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "60");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.count("/userinfo"), 1);
}

#[test]
fn retries_give_up_after_max_attempts() {
    let server = ScriptedServer::start();
    server.set_default(Scripted::json(500, r#"{"error":"server_error"}"#));
    for attempts in [1, 4] {
        let http = client(config().with_retry(retry(attempts)));
        let response = http
            .send(
                Endpoint::Jwks,
                RequestKind::Idempotent,
                get(&server, "/jwks"),
            )
            .expect("the last 500 is returned");
        assert_eq!(response.status(), 500);
        assert_eq!(response.body().as_slice(), br#"{"error":"server_error"}"#);
    }
    assert_eq!(server.count("/jwks"), 1 + 4);
}

#[test]
fn one_shot_requests_are_not_retried_after_a_503() {
    let server = ScriptedServer::start();
    server.enqueue("/token", Scripted::status(503));
    server.set_default(Scripted::json(200, "{}"));
    let http = client(config());
    let response = http
        .send(
            Endpoint::Token,
            RequestKind::OneShot,
            form(&server, "/token"),
        )
        .expect("a 503 is a response");
    assert_eq!(response.status(), 503);
    assert_eq!(server.count("/token"), 1);
}

// ---- request fidelity ----

#[test]
fn requests_arrive_as_built() {
    let server = ScriptedServer::start();
    server.set_default(Scripted::json(200, "{}"));
    let http = client(config());
    let request = post_form(
        &url(&server, "/connect/token?x=1&y=a%20b"),
        [
            ("grant_type", "authorization_code"),
            ("code", "a b&c=d+é"),
            ("redirect_uri", "http://127.0.0.1:8912/cb?q=1"),
        ],
        Some(bearer("tok.EN_1").expect("a valid token")),
    );
    let expected_body = request.body().clone();
    http.send(Endpoint::Token, RequestKind::OneShot, request)
        .expect("the server answers");
    let received = server.requests();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.path, "/connect/token");
    assert_eq!(r.query.as_deref(), Some("x=1&y=a%20b"));
    assert_eq!(r.body, expected_body);
    assert_eq!(
        r.body_text(),
        "grant_type=authorization_code&code=a+b%26c%3Dd%2B%C3%A9&redirect_uri=http%3A%2F%2F127.0.0.1%3A8912%2Fcb%3Fq%3D1"
    );
    assert_eq!(r.header("authorization"), Some("Bearer tok.EN_1"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.header("content-length"),
        Some(expected_body.len().to_string().as_str())
    );

    let get_request = get(&server, "/.well-known/jwks");
    http.send(Endpoint::Jwks, RequestKind::Idempotent, get_request)
        .expect("the server answers");
    let r = &server.requests_to("/.well-known/jwks")[0];
    assert_eq!(r.method, http::Method::GET);
    assert!(r.body.is_empty());
    assert_eq!(r.header("authorization"), None);
}

// ---- logs ----

#[test]
fn secrets_never_reach_the_logs() {
    let capture = capture_logs();
    let server = ScriptedServer::start();
    server.enqueue("/token", Scripted::status(503));
    server.enqueue(
        "/token",
        Scripted::json(400, r#"{"error":"invalid_grant"}"#),
    );
    server.enqueue(
        "/token",
        Scripted::status(200).delay(Duration::from_secs(5)),
    );
    let http = client(config().with_timeout(SHORT));
    let secret_request = |base: &str| {
        post_form(
            &Url::parse(&format!("{base}?code=SECRET-CODE")).expect("a loopback URL parses"),
            [
                ("grant_type", "authorization_code"),
                ("code", "SECRET-CODE"),
            ],
            Some(bearer("SECRET-TOKEN").expect("a valid token")),
        )
    };
    // A retried 503, then a 400, then a timeout, then a refused connection: every path that logs.
    let response = http
        .send(
            Endpoint::Token,
            RequestKind::Idempotent,
            secret_request(&server.url("/token")),
        )
        .expect("the 400 is a response");
    assert_eq!(response.status(), 400);
    let err = http
        .send(
            Endpoint::Token,
            RequestKind::OneShot,
            secret_request(&server.url("/token")),
        )
        .expect_err("the server is too slow");
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    let err = http
        .send(
            Endpoint::Token,
            RequestKind::OneShot,
            secret_request(&refused_url("/token")),
        )
        .expect_err("nothing listens");
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
    // The request really carried the secrets.
    let first = &server.requests_to("/token")[0];
    assert_eq!(first.query.as_deref(), Some("code=SECRET-CODE"));
    assert!(first.body_text().contains("code=SECRET-CODE"));
    assert_eq!(first.header("authorization"), Some("Bearer SECRET-TOKEN"));

    let text = capture.text();
    // The capture works: our span and events are there.
    assert!(text.contains("nethealth_oidc.http"), "{text}");
    assert!(text.contains("retrying"), "{text}");
    assert!(text.contains("no response"), "{text}");
    // ureq logs through `log`: captured too.
    assert!(text.contains("log DEBUG ureq"), "{text}");
    assert!(text.contains("/token"), "{text}");
    for secret in ["SECRET-CODE", "SECRET-TOKEN"] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
    // Nor in the errors the caller may log.
    for shown in [format!("{err}"), format!("{err:?}")] {
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
