//! The authorize endpoint and the login and consent page, driven by the scripted browser.

use crate::common::*;
use nethealth_oidc_testkit::{
    Browser, ClientSpec, Consent, Endpoint, LoginError, PromptNone, TestKit,
};

const ALL: &str = "openid profile email offline_access patients.read patients.write";

fn kit() -> TestKit {
    TestKit::builder()
        .client(ClientSpec::confidential("app", "secret").redirect_uri(REDIRECT))
        .start_blocking()
        .expect("start")
}

#[test]
fn grant_all() {
    let kit = kit();
    let callback = Browser::new()
        .login(&auth_url(&kit, "app", ALL, true), &Consent::GrantAll)
        .expect("login");
    assert!(
        callback.starts_with(&format!("{REDIRECT}?code=")),
        "{callback}"
    );
    assert_eq!(param(&callback, "state").as_deref(), Some("st-123"));
    assert_eq!(
        param(&callback, "iss"),
        None,
        "IdentityServer3 sends no iss"
    );
    assert_eq!(
        kit.transcript(),
        ["GET /connect/authorize", "POST /connect/consent"]
    );
    let code = param(&callback, "code").expect("code");
    let tokens = exchange(&kit, Auth::Basic("app", "secret"), &code).json();
    let at = verify_jwt(&kit, tokens["access_token"].as_str().expect("at"));
    assert_eq!(
        at["scope"],
        serde_json::json!([
            "openid",
            "profile",
            "email",
            "offline_access",
            "patients.read",
            "patients.write"
        ])
    );
}

#[test]
fn deny() {
    let kit = kit();
    let callback = Browser::new()
        .login(&auth_url(&kit, "app", ALL, true), &Consent::Deny)
        .expect("login");
    assert_eq!(param(&callback, "error").as_deref(), Some("access_denied"));
    assert!(param(&callback, "error_description").is_some());
    assert_eq!(param(&callback, "state").as_deref(), Some("st-123"));
    assert_eq!(param(&callback, "code"), None);
}

#[test]
fn partial_consent_grants_only_the_ticked_scopes() {
    let kit = kit();
    let code = login_code(
        &kit,
        "app",
        ALL,
        true,
        &Consent::grant(["offline_access", "patients.read"]),
    );
    let tokens = exchange(&kit, Auth::Basic("app", "secret"), &code).json();
    assert!(
        tokens.get("scope").is_none(),
        "IdentityServer3 mode: no scope field"
    );
    let at = verify_jwt(&kit, tokens["access_token"].as_str().expect("at"));
    // openid is required, so it stays granted.
    assert_eq!(
        at["scope"],
        serde_json::json!(["openid", "offline_access", "patients.read"])
    );
    assert!(tokens["refresh_token"].is_string());

    // Unticking offline_access means no refresh token.
    let code = login_code(&kit, "app", ALL, true, &Consent::grant(["patients.read"]));
    let tokens = exchange(&kit, Auth::Basic("app", "secret"), &code).json();
    assert!(tokens.get("refresh_token").is_none());
}

#[test]
fn refused_forms_and_error_pages() {
    let kit = kit();
    // Wrong password: the page comes back with a message.
    let err = Browser::as_user("alice", "wrong")
        .login(&auth_url(&kit, "app", ALL, true), &Consent::GrantAll)
        .expect_err("bad password");
    assert_eq!(
        err,
        LoginError::Refused("Invalid username or password".into())
    );
    // No scope ticked, openid not requested.
    let err = Browser::new()
        .login(
            &auth_url(&kit, "app", "patients.read", true),
            &Consent::grant(Vec::<String>::new()),
        )
        .expect_err("nothing granted");
    assert_eq!(
        err,
        LoginError::Refused("Must select at least one permission.".into())
    );
    // A scope that was not requested.
    let err = Browser::new()
        .login(
            &auth_url(&kit, "app", "openid", true),
            &Consent::grant(["patients.write"]),
        )
        .expect_err("not offered");
    assert_eq!(err, LoginError::ScopeNotOffered("patients.write".into()));
    // Unknown client: error page, no redirect.
    let err = Browser::new()
        .login(&auth_url(&kit, "nobody", ALL, true), &Consent::GrantAll)
        .expect_err("unknown client");
    assert!(
        matches!(&err, LoginError::ErrorPage { status: 400, message } if message.contains("unknown client_id")),
        "{err:?}"
    );
    // Redirect URI that is not registered: error page.
    let url = auth_url(&kit, "app", ALL, true).replace("8080", "9090");
    let err = Browser::new()
        .login(&url, &Consent::GrantAll)
        .expect_err("redirect");
    assert!(
        matches!(&err, LoginError::ErrorPage { message, .. } if message.contains("redirect_uri")),
        "{err:?}"
    );
    // Unreachable site.
    let err = Browser::new()
        .login("http://127.0.0.1:1/connect/authorize", &Consent::GrantAll)
        .expect_err("unreachable");
    assert!(matches!(err, LoginError::Transport(_)));
    assert!(err.to_string().contains("still running"));
}

#[test]
fn authorize_errors_redirect_to_the_client() {
    let kit = TestKit::builder()
        .client(
            ClientSpec::confidential("app", "secret")
                .redirect_uri(REDIRECT)
                .allowed_scopes(["openid", "patients.read"]),
        )
        .start_blocking()
        .expect("start");
    let cases = [
        (auth_url(&kit, "app", "openid admin", true), "invalid_scope"),
        (
            auth_url(&kit, "app", "openid patients.write", true),
            "invalid_scope",
        ),
        (auth_url(&kit, "app", "openid", false), "invalid_request"),
        (
            auth_url(&kit, "app", "openid", true)
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            auth_url(&kit, "app", "openid", true).replace("S256", "S512"),
            "invalid_request",
        ),
        (
            format!("{}&state=again", auth_url(&kit, "app", "openid", true)),
            "invalid_request",
        ),
    ];
    for (url, error) in cases {
        let callback = Browser::new().login(&url, &Consent::GrantAll).expect(&url);
        assert_eq!(param(&callback, "error").as_deref(), Some(error), "{url}");
        assert!(callback.starts_with(REDIRECT));
    }
}

#[test]
fn prompt_none_and_remembered_consent() {
    let kit = kit();
    let silent = format!(
        "{}&prompt=none",
        auth_url(&kit, "app", "openid patients.read", true)
    );
    let callback = Browser::new()
        .login(&silent, &Consent::GrantAll)
        .expect("login");
    assert_eq!(param(&callback, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&callback, "state").as_deref(), Some("st-123"));

    // Logged in, but consent not remembered.
    Browser::new()
        .login(
            &auth_url(&kit, "app", "openid patients.read", true),
            &Consent::GrantAll,
        )
        .expect("login");
    let callback = Browser::new()
        .login(&silent, &Consent::GrantAll)
        .expect("login");
    assert_eq!(
        param(&callback, "error").as_deref(),
        Some("consent_required")
    );

    // Remembered: a code without the page.
    Browser::new()
        .remember_decision(true)
        .login(
            &auth_url(&kit, "app", "openid patients.read", true),
            &Consent::GrantAll,
        )
        .expect("login");
    kit.clear_transcript();
    let callback = Browser::new()
        .login(&silent, &Consent::GrantAll)
        .expect("login");
    let code = param(&callback, "code").expect("silent code");
    assert_eq!(kit.transcript(), ["GET /connect/authorize"]);
    assert_eq!(
        exchange(&kit, Auth::Basic("app", "secret"), &code).status,
        200
    );

    // The knob forces the errors.
    kit.set_prompt_none(PromptNone::LoginRequired);
    let callback = Browser::new()
        .login(&silent, &Consent::GrantAll)
        .expect("login");
    assert_eq!(param(&callback, "error").as_deref(), Some("login_required"));
    kit.set_prompt_none(PromptNone::ConsentRequired);
    let callback = Browser::new()
        .login(&silent, &Consent::GrantAll)
        .expect("login");
    assert_eq!(
        param(&callback, "error").as_deref(),
        Some("consent_required")
    );

    // End-session forgets the login.
    kit.set_prompt_none(PromptNone::Natural);
    assert_eq!(get(&kit.url(Endpoint::EndSession)).status, 200);
    let callback = Browser::new()
        .login(&silent, &Consent::GrantAll)
        .expect("login");
    assert_eq!(param(&callback, "error").as_deref(), Some("login_required"));
}

#[test]
fn iss_on_the_callback() {
    let kit = TestKit::builder()
        .iss_parameter(true)
        .client(ClientSpec::confidential("app", "secret").redirect_uri(REDIRECT))
        .start_blocking()
        .expect("start");
    for consent in [Consent::GrantAll, Consent::Deny] {
        let callback = Browser::new()
            .login(&auth_url(&kit, "app", "openid", true), &consent)
            .expect("login");
        assert_eq!(param(&callback, "iss").as_deref(), Some(kit.issuer()));
    }
    kit.set_callback_iss(Some("https://evil.example"));
    let callback = Browser::new()
        .login(&auth_url(&kit, "app", "openid", true), &Consent::GrantAll)
        .expect("login");
    assert_eq!(
        param(&callback, "iss").as_deref(),
        Some("https://evil.example")
    );
    kit.set_callback_iss(None);
    let callback = Browser::new()
        .login(&auth_url(&kit, "app", "openid", true), &Consent::GrantAll)
        .expect("login");
    assert_eq!(param(&callback, "iss").as_deref(), Some(kit.issuer()));

    // Forced even when the parameter is off.
    let plain = self::kit();
    plain.set_callback_iss(Some("https://evil.example"));
    let callback = Browser::new()
        .login(&auth_url(&plain, "app", "openid", true), &Consent::GrantAll)
        .expect("login");
    assert_eq!(
        param(&callback, "iss").as_deref(),
        Some("https://evil.example")
    );
}

#[test]
fn the_consent_form_is_single_use_and_checks_its_token() {
    let kit = kit();
    let page = get(&auth_url(&kit, "app", "openid", true)).text();
    let signin = between(&page, "name=\"signin\" value=\"", "\"");
    let xsrf = between(&page, "name=\"idsrv.xsrf\" value=\"", "\"");
    let consent = kit.url(Endpoint::Consent);
    let post = |xsrf: &str| {
        post_form(
            &consent,
            Auth::Nothing,
            &[
                ("signin", &signin),
                ("idsrv.xsrf", xsrf),
                ("username", "alice"),
                ("password", "password"),
                ("button", "yes"),
            ],
        )
    };
    let answer = post("forged");
    assert_eq!(answer.status, 400);
    assert!(answer.text().contains("anti-forgery"));
    let answer = post(&xsrf);
    assert_eq!(answer.status, 302);
    let answer = post(&xsrf);
    assert_eq!(answer.status, 400, "the sign-in request is used up");
}

fn between(text: &str, start: &str, end: &str) -> String {
    let i = text.find(start).expect("start") + start.len();
    let j = text[i..].find(end).expect("end") + i;
    text[i..j].to_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn login_from_an_async_test() {
    let kit = TestKit::builder()
        .client(ClientSpec::public("cli").redirect_uri(REDIRECT))
        .start()
        .await
        .expect("start");
    let callback = Browser::new()
        .login_async(
            &auth_url(&kit, "cli", "openid patients.read", true),
            &Consent::GrantAll,
        )
        .await
        .expect("login");
    let code = param(&callback, "code").expect("code");
    let token = kit.token_endpoint();
    let answer = tokio::task::spawn_blocking(move || {
        post_form(
            &token,
            Auth::Public("cli"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
    })
    .await
    .expect("join");
    assert_eq!(answer.status, 200, "{}", answer.text());
}
