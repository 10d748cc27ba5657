//! The device flow (RFC 8628) and loopback redirect ports (RFC 8252 §7.3).

use std::time::Duration;

use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, TestKit};

use crate::common::{Auth, REDIRECT, get, post_form};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn kit() -> TestKit {
    TestKit::builder()
        .client(ClientSpec::confidential("tv", "tv-secret").redirect_uri(REDIRECT))
        .start_blocking()
        .unwrap()
}

fn start(kit: &TestKit) -> serde_json::Value {
    let url = kit.url(Endpoint::DeviceAuthorization);
    let answer = post_form(
        &url,
        Auth::Basic("tv", "tv-secret"),
        &[("scope", "openid offline_access patients.read")],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

fn poll(kit: &TestKit, device_code: &str) -> (u16, serde_json::Value) {
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("tv", "tv-secret"),
        &[("grant_type", GRANT), ("device_code", device_code)],
    );
    (answer.status, answer.json())
}

#[test]
fn pending_slow_down_approved_and_single_use() {
    let kit = kit();
    let doc = get(&kit.discovery_url()).json();
    assert_eq!(
        doc["device_authorization_endpoint"],
        kit.url(Endpoint::DeviceAuthorization).as_str()
    );
    let auth = start(&kit);
    let code = auth["device_code"].as_str().unwrap();
    assert_eq!(auth["interval"], 5);
    assert!(auth["user_code"].as_str().unwrap().len() == 9);
    let (status, body) = poll(&kit, code);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (_, body) = poll(&kit, code);
    assert_eq!(
        body["error"], "slow_down",
        "polled sooner than the interval"
    );

    Browser::new()
        .approve_device(
            auth["verification_uri_complete"].as_str().unwrap(),
            &Consent::grant(["patients.read"]),
        )
        .unwrap();
    kit.advance_clock(Duration::from_secs(11));
    let (status, body) = poll(&kit, code);
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string());
    assert!(
        body["refresh_token"].is_null(),
        "offline_access was unticked"
    );
    let (_, body) = poll(&kit, code);
    assert_eq!(
        body["error"], "invalid_grant",
        "a device code is single-use"
    );
}

#[test]
fn denied_expired_and_unknown_codes() {
    let kit = kit();
    let auth = start(&kit);
    let page = format!(
        "{}?user_code={}",
        auth["verification_uri"].as_str().unwrap(),
        auth["user_code"].as_str().unwrap().to_lowercase()
    );
    Browser::new()
        .approve_device(&page, &Consent::Deny)
        .unwrap();
    let (_, body) = poll(&kit, auth["device_code"].as_str().unwrap());
    assert_eq!(body["error"], "access_denied");

    let auth = start(&kit);
    kit.advance_clock(Duration::from_secs(301));
    let (_, body) = poll(&kit, auth["device_code"].as_str().unwrap());
    assert_eq!(body["error"], "expired_token");

    let err = Browser::new()
        .approve_device(
            &format!("{}?user_code=BBBB-BBBB", kit.url(Endpoint::Device)),
            &Consent::GrantAll,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown, expired or already used"),
        "{err}"
    );
}

#[test]
fn a_loopback_ip_redirect_matches_on_any_port_and_nothing_else_changes() {
    let kit = TestKit::builder()
        .client(ClientSpec::public("cli").redirect_uri("http://127.0.0.1/callback"))
        .start_blocking()
        .unwrap();
    let url = |redirect: &str| {
        format!(
            "{}?client_id=cli&redirect_uri={}&response_type=code&scope=openid&state=s&code_challenge={}\
             &code_challenge_method=plain",
            kit.authorization_endpoint(),
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
            "a".repeat(43)
        )
    };
    let callback = Browser::new()
        .login(&url("http://127.0.0.1:49123/callback"), &Consent::GrantAll)
        .unwrap();
    assert!(
        callback.starts_with("http://127.0.0.1:49123/callback?code="),
        "{callback}"
    );
    for other in [
        "http://127.0.0.1:49123/other",
        "http://localhost:49123/callback",
    ] {
        let answer = get(&url(other));
        assert_eq!(answer.status, 400, "{other}");
        assert!(answer.text().contains("not registered"), "{other}");
    }
}
