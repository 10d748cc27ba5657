//! Every fault knob, seen through real HTTP.

use std::io::Read as _;
use std::time::{Duration, Instant};

use crate::common::*;
use nethealth_oidc_testkit::{ClientSpec, Consent, Endpoint, Fault, TestKit};

fn kit() -> TestKit {
    TestKit::builder()
        .client(ClientSpec::confidential("app", "secret").redirect_uri(REDIRECT))
        .start_blocking()
        .expect("start")
}

#[test]
fn status_faults_for_the_next_n_requests() {
    let kit = kit();
    kit.fail_next(Endpoint::Discovery, 2, Fault::Status(503));
    let url = kit.discovery_url();
    for _ in 0..2 {
        let answer = get(&url);
        assert_eq!(answer.status, 503);
        assert!(answer.text().contains("503 - Service Unavailable"));
        assert!(
            answer
                .header("content-type")
                .expect("ct")
                .starts_with("text/html")
        );
    }
    assert_eq!(get(&url).status, 200);
    assert_eq!(kit.requests(Endpoint::Discovery), 3);
    // Only that endpoint.
    kit.fail_next(Endpoint::Token, 1, Fault::Status(500));
    assert_eq!(get(&kit.url(Endpoint::Jwks)).status, 200);
}

#[test]
fn too_many_requests_then_success_and_the_request_is_not_processed() {
    let kit = kit();
    let code = login_code(&kit, "app", "openid", true, &Consent::GrantAll);
    kit.fail_next(
        Endpoint::Token,
        1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    let answer = exchange(&kit, Auth::Basic("app", "secret"), &code);
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after").as_deref(), Some("7"));
    // The code was not used up by the refused request.
    assert_eq!(
        exchange(&kit, Auth::Basic("app", "secret"), &code).status,
        200
    );
    assert_eq!(kit.requests(Endpoint::Token), 2);
}

#[test]
fn standing_faults_until_cleared() {
    let kit = kit();
    kit.fail_always(Endpoint::Jwks, Fault::Status(502));
    for _ in 0..3 {
        assert_eq!(get(&kit.url(Endpoint::Jwks)).status, 502);
    }
    kit.fail_next(Endpoint::Jwks, 1, Fault::Status(500));
    assert_eq!(
        get(&kit.url(Endpoint::Jwks)).status,
        500,
        "queued faults come first"
    );
    assert_eq!(get(&kit.url(Endpoint::Jwks)).status, 502);
    kit.clear_faults();
    assert_eq!(get(&kit.url(Endpoint::Jwks)).status, 200);
}

#[test]
fn delay() {
    let kit = kit();
    kit.fail_next(
        Endpoint::Discovery,
        1,
        Fault::Delay(Duration::from_millis(400)),
    );
    let started = Instant::now();
    assert_eq!(get(&kit.discovery_url()).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    let started = Instant::now();
    let _ = get(&kit.discovery_url());
    assert!(started.elapsed() < Duration::from_millis(400));
    // A client timeout fires while the site sleeps.
    kit.fail_next(Endpoint::Discovery, 1, Fault::Delay(Duration::from_secs(5)));
    let short: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(300)))
        .build()
        .into();
    let started = Instant::now();
    assert!(short.get(&kit.discovery_url()).call().is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn malformed_and_truncated_json() {
    let kit = kit();
    kit.fail_next(Endpoint::Discovery, 1, Fault::Malformed);
    let answer = get(&kit.discovery_url());
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .expect("ct")
            .starts_with("application/json")
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&answer.body).is_err());

    kit.fail_next(Endpoint::Discovery, 1, Fault::TruncatedJson);
    let whole = get(&kit.discovery_url()).body;
    kit.fail_next(Endpoint::Discovery, 1, Fault::TruncatedJson);
    let answer = get(&kit.discovery_url());
    assert_eq!(answer.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&answer.body).is_err());
    assert!(!answer.body.is_empty());
    assert!(whole.starts_with(&answer.body), "a prefix of the real body");
    let _ = whole;
}

#[test]
fn truncated_connection_is_a_transport_error() {
    let kit = kit();
    let code = login_code(&kit, "app", "openid", true, &Consent::GrantAll);
    kit.fail_next(Endpoint::Token, 1, Fault::Truncated);
    let mut response = agent()
        .post(&kit.token_endpoint())
        .header("Authorization", basic_header("app", "secret"))
        .send_form([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .expect("headers arrive");
    assert_eq!(response.status().as_u16(), 200);
    let declared: usize = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    let mut buf = Vec::new();
    let result = response.body_mut().as_reader().read_to_end(&mut buf);
    assert!(
        result.is_err() || buf.len() < declared,
        "the body is cut short"
    );
    // The request was processed: the code is used up.
    assert_eq!(
        exchange(&kit, Auth::Basic("app", "secret"), &code).json()["error"],
        "invalid_grant"
    );
}

fn count_body(url: &str) -> (Option<u64>, u64, Duration) {
    let started = Instant::now();
    let mut response = agent().get(url).call().expect("GET");
    let declared = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let mut first = true;
    loop {
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        if first {
            assert!(buf[..n].starts_with(b"{\"access_token\":\""));
            first = false;
        }
        total += n as u64;
    }
    (declared, total, started.elapsed())
}

#[test]
fn huge_bodies_are_streamed() {
    let kit = kit();
    let size = 100u64 << 20;
    kit.fail_next(
        Endpoint::Token,
        1,
        Fault::Huge {
            bytes: size,
            declare_length: true,
        },
    );
    let (declared, total, _) = count_body(&kit.token_endpoint());
    assert_eq!(declared, Some(size));
    assert_eq!(total, size);
    kit.fail_next(
        Endpoint::Jwks,
        1,
        Fault::Huge {
            bytes: 3 << 20,
            declare_length: false,
        },
    );
    let (declared, total, _) = count_body(&kit.url(Endpoint::Jwks));
    assert_eq!(declared, None, "chunked");
    assert_eq!(total, 3 << 20);
    // A client that refuses early just hangs up; the site carries on.
    kit.fail_next(
        Endpoint::Discovery,
        1,
        Fault::Huge {
            bytes: size,
            declare_length: false,
        },
    );
    let mut response = agent().get(&kit.discovery_url()).call().expect("GET");
    assert!(
        response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .is_err()
    );
    drop(response);
    assert_eq!(get(&kit.discovery_url()).status, 200);
}

#[test]
fn wrong_issuer_in_discovery() {
    let kit = kit();
    kit.set_discovery_issuer(Some("https://accounts.evil.example"));
    assert_eq!(
        get(&kit.discovery_url()).json()["issuer"],
        "https://accounts.evil.example"
    );
    // Tokens still carry the real issuer.
    let body = tokens(&kit, "app", "secret", "openid");
    assert_eq!(
        peek_jwt(body["id_token"].as_str().expect("id"))["iss"],
        kit.issuer()
    );
    kit.set_discovery_issuer(None);
    assert_eq!(get(&kit.discovery_url()).json()["issuer"], kit.issuer());
}

#[test]
fn key_rotation() {
    let kit = kit();
    let old = kit.signing_kid();
    let before = tokens(&kit, "app", "secret", "openid patients.read");
    let new = kit.rotate_keys();
    assert_ne!(old, new);
    assert_eq!(kit.published_kids(), [old.clone(), new.clone()]);
    let after = tokens(&kit, "app", "secret", "openid patients.read");
    let kid = |t: &serde_json::Value, f: &str| {
        jsonwebtoken::decode_header(t[f].as_str().expect("jwt"))
            .expect("header")
            .kid
            .expect("kid")
    };
    assert_eq!(kid(&before, "id_token"), old);
    assert_eq!(kid(&after, "id_token"), new);
    assert_eq!(kid(&after, "access_token"), new);
    // Both verify against the JWKS, and both work at the API.
    verify_jwt(&kit, before["id_token"].as_str().expect("id"));
    verify_jwt(&kit, after["id_token"].as_str().expect("id"));
    for t in [&before, &after] {
        assert_eq!(
            get_bearer(&kit.api_url(), t["access_token"].as_str().expect("at")).status,
            200
        );
    }
    // Retiring the old key breaks old tokens at the API.
    kit.retire_old_keys();
    assert_eq!(kit.published_kids(), std::slice::from_ref(&new));
    assert_eq!(
        get_bearer(&kit.api_url(), before["access_token"].as_str().expect("at")).status,
        401
    );
}

#[test]
fn key_rotation_before_publication() {
    let kit = kit();
    let old = kit.signing_kid();
    let new = kit.rotate_keys_unpublished();
    assert_eq!(kit.signing_kid(), new);
    assert_eq!(kit.published_kids(), std::slice::from_ref(&old));
    let body = tokens(&kit, "app", "secret", "openid patients.read");
    let id = body["id_token"].as_str().expect("id");
    assert_eq!(
        jsonwebtoken::decode_header(id).expect("h").kid.as_deref(),
        Some(new.as_str())
    );
    let jwks = get(&kit.url(Endpoint::Jwks)).json();
    assert!(!jwks.to_string().contains(&new), "not yet in the JWKS");
    // The API only knows published keys; the site itself (introspection) knows its signing key.
    let at = body["access_token"].as_str().expect("at");
    assert_eq!(get_bearer(&kit.api_url(), at).status, 401);
    let info = post_form(
        &kit.url(Endpoint::Introspection),
        Auth::Basic("app", "secret"),
        &[("token", at)],
    )
    .json();
    assert_eq!(info["active"], true);
    // A later rotation publishes it.
    let newer = kit.rotate_keys();
    assert_eq!(kit.published_kids(), [new.clone(), newer]);
    verify_jwt(&kit, id);
    assert_eq!(get_bearer(&kit.api_url(), at).status, 200);
    // publish_keys does it directly.
    let another = kit.rotate_keys_unpublished();
    kit.publish_keys();
    assert!(kit.published_kids().contains(&another));
}

#[test]
fn short_lifetimes() {
    let kit = kit();
    kit.set_access_token_lifetime(Duration::from_secs(1));
    kit.set_id_token_lifetime(Duration::from_secs(2));
    let body = tokens(&kit, "app", "secret", "openid offline_access patients.read");
    assert_eq!(body["expires_in"], 1);
    let at = peek_jwt(body["access_token"].as_str().expect("at"));
    assert_eq!(
        at["exp"].as_u64().expect("exp") - at["nbf"].as_u64().expect("nbf"),
        1
    );
    let id = peek_jwt(body["id_token"].as_str().expect("id"));
    assert_eq!(
        id["exp"].as_u64().expect("exp") - id["iat"].as_u64().expect("iat"),
        2
    );
    // Really expires (wall clock): the API refuses it after a second.
    std::thread::sleep(Duration::from_millis(1100));
    let answer = get_bearer(&kit.api_url(), body["access_token"].as_str().expect("at"));
    assert_eq!(answer.status, 401);
    // Refresh gets a fresh one.
    let refreshed = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().expect("rt")),
        ],
    )
    .json();
    assert_eq!(
        get_bearer(
            &kit.api_url(),
            refreshed["access_token"].as_str().expect("at")
        )
        .status,
        200
    );

    kit.set_code_lifetime(Duration::from_secs(0));
    let code = login_code(&kit, "app", "openid", true, &Consent::GrantAll);
    assert_eq!(
        exchange(&kit, Auth::Basic("app", "secret"), &code).json()["error"],
        "invalid_grant"
    );
}

#[test]
fn transcript_of_a_whole_flow() {
    let kit = kit();
    let _ = get(&kit.discovery_url());
    let body = tokens(&kit, "app", "secret", "openid offline_access patients.read");
    let _ = get(&kit.url(Endpoint::Jwks));
    let _ = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().expect("rt")),
        ],
    );
    let _ = get_bearer(&kit.api_url(), body["access_token"].as_str().expect("at"));
    let _ = get(&format!("{}/nope?x=1", kit.origin()));
    assert_eq!(
        kit.transcript(),
        [
            "GET /.well-known/openid-configuration",
            "GET /connect/authorize",
            "POST /connect/consent",
            "POST /connect/token",
            "GET /.well-known/jwks",
            "POST /connect/token",
            "GET /api/patients",
            "GET /nope",
        ]
    );
    assert_eq!(kit.requests(Endpoint::Token), 2);
    assert_eq!(kit.requests(Endpoint::Userinfo), 0);
    kit.clear_transcript();
    assert!(kit.transcript().is_empty());
    assert_eq!(kit.requests(Endpoint::Token), 0);
}

#[test]
fn knobs_work_from_other_threads_while_serving() {
    let kit = std::sync::Arc::new(kit());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let kit = std::sync::Arc::clone(&kit);
            std::thread::spawn(move || {
                for _ in 0..10 {
                    if i == 0 {
                        kit.fail_next(Endpoint::Discovery, 1, Fault::Status(503));
                    }
                    let status = get(&kit.discovery_url()).status;
                    assert!(status == 200 || status == 503);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(kit.requests(Endpoint::Discovery), 40);
}
