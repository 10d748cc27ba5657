//! The sample API, userinfo, revocation, introspection and end-session.

use std::time::Duration;

use crate::common::*;
use nethealth_oidc_testkit::{ClientSpec, Consent, Endpoint, TestKit};

fn kit() -> TestKit {
    TestKit::builder()
        .client(
            ClientSpec::confidential("app", "secret")
                .redirect_uri(REDIRECT)
                .post_logout_redirect_uri("http://127.0.0.1:8080/bye"),
        )
        .client(ClientSpec::confidential("other", "s").redirect_uri(REDIRECT))
        .start_blocking()
        .expect("start")
}

fn access_token(kit: &TestKit, consent: &Consent) -> (String, serde_json::Value) {
    let code = login_code(
        kit,
        "app",
        "openid profile email offline_access patients.read patients.write",
        true,
        consent,
    );
    let body = exchange(kit, Auth::Basic("app", "secret"), &code).json();
    (body["access_token"].as_str().expect("at").to_owned(), body)
}

fn post_patient(kit: &TestKit, token: Option<&str>, body: &str) -> Answer {
    post_json(&kit.api_url(), body, token)
}

#[test]
fn api_200_401_403() {
    let kit = kit();
    let (full, _) = access_token(&kit, &Consent::GrantAll);
    let answer = get_bearer(&kit.api_url(), &full);
    assert_eq!(answer.status, 200);
    assert!(answer.json().as_array().expect("list").len() >= 2);
    let answer = post_patient(
        &kit,
        Some(&full),
        r#"{"Name":"Ada Lovelace","BirthDate":"1815-12-10"}"#,
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(answer.json()["Name"], "Ada Lovelace");
    let id = answer.json()["Id"].as_u64().expect("id");
    assert_eq!(
        answer.header("location"),
        Some(format!("{}/api/patients/{id}", kit.origin()))
    );
    assert!(
        get_bearer(&kit.api_url(), &full)
            .text()
            .contains("Ada Lovelace")
    );
    assert_eq!(post_patient(&kit, Some(&full), "{}").status, 400);
    assert_eq!(post_patient(&kit, Some(&full), "[]").status, 400);

    // The user unticked patients.write: reading works, writing is 403 insufficient_scope.
    let (read_only, _) = access_token(&kit, &Consent::grant(["patients.read"]));
    assert_eq!(get_bearer(&kit.api_url(), &read_only).status, 200);
    let answer = post_patient(&kit, Some(&read_only), r#"{"Name":"X"}"#);
    assert_eq!(answer.status, 403);
    let challenge = answer.header("www-authenticate").expect("challenge");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"patients.write\""),
        "{challenge}"
    );

    // No token: 401 with a bare challenge (RFC 6750 §3.1).
    let answer = get(&kit.api_url());
    assert_eq!(answer.status, 401);
    let challenge = answer.header("www-authenticate").expect("challenge");
    assert_eq!(challenge, "Bearer realm=\"Net Health\"");
    assert_eq!(
        answer.json()["Message"],
        "Authorization has been denied for this request."
    );

    // Bad tokens: 401 invalid_token with a description.
    // Change a character in the middle of the signature: the last one may only carry padding bits.
    let mut tampered = full.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    for (token, description) in [
        ("not-a-jwt", "The access token is not a JWT"),
        (tampered.as_str(), "The access token signature is invalid"),
    ] {
        let answer = get_bearer(&kit.api_url(), token);
        assert_eq!(answer.status, 401);
        let challenge = answer.header("www-authenticate").expect("challenge");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(
            challenge.contains(&format!("error_description=\"{description}\"")),
            "{challenge}"
        );
    }
    // A token from another site (different key) is refused.
    let other = TestKit::builder()
        .client(ClientSpec::confidential("app", "secret").redirect_uri(REDIRECT))
        .start_blocking()
        .expect("start");
    let (foreign, _) = access_token(&other, &Consent::GrantAll);
    let answer = get_bearer(&kit.api_url(), &foreign);
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .expect("c")
            .contains("unknown key")
    );

    // Expired.
    kit.advance_clock(Duration::from_secs(3600));
    let answer = get_bearer(&kit.api_url(), &full);
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .expect("c")
            .contains("The access token expired")
    );
    assert_eq!(
        agent()
            .delete(&kit.api_url())
            .call()
            .expect("DELETE")
            .status()
            .as_u16(),
        405
    );
}

#[test]
fn userinfo_claims_by_scope() {
    let kit = kit();
    let (token, _) = access_token(&kit, &Consent::GrantAll);
    let url = kit.url(Endpoint::Userinfo);
    let claims = get_bearer(&url, &token).json();
    assert_eq!(claims["sub"], "818727");
    assert_eq!(claims["name"], "Alice Smith");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    let (narrow, _) = access_token(&kit, &Consent::grant(["patients.read"]));
    let claims = get_bearer(&url, &narrow).json();
    assert_eq!(claims, serde_json::json!({"sub": "818727"}));
    let answer = get(&url);
    assert_eq!(answer.status, 401);
    let answer = get_bearer(&url, "garbage");
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .expect("c")
            .contains("invalid_token")
    );
    // POST with the token in the form.
    let answer = post_form(&url, Auth::Nothing, &[("access_token", &token)]);
    assert_eq!(answer.status, 200);
}

#[test]
fn revocation_of_refresh_and_access_tokens() {
    let kit = kit();
    let (at, body) = access_token(&kit, &Consent::GrantAll);
    let rt = body["refresh_token"].as_str().expect("rt").to_owned();
    let revoke = |auth: Auth<'_>, token: &str, hint: Option<&str>| {
        let mut fields = vec![("token", token)];
        if let Some(h) = hint {
            fields.push(("token_type_hint", h));
        }
        post_form(&kit.url(Endpoint::Revocation), auth, &fields)
    };
    // Another client cannot revoke it (silently ignored, 200).
    assert_eq!(revoke(Auth::Basic("other", "s"), &rt, None).status, 200);
    assert_eq!(
        post_form(
            &kit.token_endpoint(),
            Auth::Basic("app", "secret"),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)]
        )
        .status,
        200
    );
    let (_, body) = access_token(&kit, &Consent::GrantAll);
    let rt = body["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(
        revoke(Auth::Basic("app", "secret"), &rt, Some("refresh_token")).status,
        200
    );
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(answer.json()["error"], "invalid_grant");

    assert_eq!(get_bearer(&kit.api_url(), &at).status, 200);
    assert_eq!(
        revoke(Auth::Post("app", "secret"), &at, Some("access_token")).status,
        200
    );
    let answer = get_bearer(&kit.api_url(), &at);
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .expect("c")
            .contains("revoked")
    );

    // Unknown tokens are fine; bad requests are not.
    assert_eq!(
        revoke(Auth::Basic("app", "secret"), "unknown", None).status,
        200
    );
    let answer = revoke(Auth::Basic("app", "secret"), "x", Some("id_token"));
    assert_eq!(answer.json()["error"], "unsupported_token_type");
    let answer = post_form(
        &kit.url(Endpoint::Revocation),
        Auth::Basic("app", "secret"),
        &[],
    );
    assert_eq!(answer.json()["error"], "invalid_request");
    assert_eq!(
        revoke(Auth::Basic("app", "bad"), &at, None).json()["error"],
        "invalid_client"
    );
}

#[test]
fn introspection() {
    let kit = kit();
    let (at, body) = access_token(&kit, &Consent::grant(["offline_access", "patients.read"]));
    let url = kit.url(Endpoint::Introspection);
    let info = post_form(&url, Auth::Basic("app", "secret"), &[("token", &at)]).json();
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "access_token");
    assert_eq!(info["scope"], "openid offline_access patients.read");
    assert_eq!(info["client_id"], "app");
    assert_eq!(info["sub"], "818727");
    let rt = body["refresh_token"].as_str().expect("rt");
    let info = post_form(&url, Auth::Basic("app", "secret"), &[("token", rt)]).json();
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "refresh_token");
    let info = post_form(&url, Auth::Basic("app", "secret"), &[("token", "nope")]).json();
    assert_eq!(info, serde_json::json!({"active": false}));
    kit.advance_clock(Duration::from_secs(4000));
    let info = post_form(&url, Auth::Basic("app", "secret"), &[("token", &at)]).json();
    assert_eq!(info["active"], false);
    assert_eq!(
        post_form(&url, Auth::Basic("app", "x"), &[("token", &at)]).status,
        400
    );
}

#[test]
fn end_session_redirects_with_state() {
    let kit = kit();
    let (_, body) = access_token(&kit, &Consent::GrantAll);
    let id_token = body["id_token"].as_str().expect("id");
    let mut url = url::Url::parse(&kit.url(Endpoint::EndSession)).expect("url");
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "http://127.0.0.1:8080/bye")
        .append_pair("state", "s1");
    let answer = get(url.as_str());
    assert_eq!(answer.status, 302);
    assert_eq!(
        answer.header("location").as_deref(),
        Some("http://127.0.0.1:8080/bye?state=s1")
    );
    // Not registered: the logged-out page.
    let mut url = url::Url::parse(&kit.url(Endpoint::EndSession)).expect("url");
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair(
            "post_logout_redirect_uri",
            "http://127.0.0.1:8080/elsewhere",
        );
    let answer = get(url.as_str());
    assert_eq!(answer.status, 200);
    assert!(answer.text().contains("You are now logged out"));
}
