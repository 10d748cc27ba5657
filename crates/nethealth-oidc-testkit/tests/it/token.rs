//! The token endpoint: code exchange, client authentication, PKCE, refresh, client credentials.

use std::time::Duration;

use crate::common::*;
use nethealth_oidc_testkit::{ClientSpec, Consent, Endpoint, RefreshTokenUsage, TestKit};

const SCOPE: &str = "openid profile offline_access patients.read";

fn kit_with(clients: Vec<ClientSpec>, is3: bool) -> TestKit {
    let mut builder = TestKit::builder().identity_server3(is3);
    for c in clients {
        builder = builder.client(c);
    }
    builder.start_blocking().expect("start")
}

fn app() -> ClientSpec {
    ClientSpec::confidential("app", "secret").redirect_uri(REDIRECT)
}

#[test]
fn code_exchange_with_basic_and_post() {
    let kit = kit_with(vec![app()], true);
    for auth in [Auth::Basic("app", "secret"), Auth::Post("app", "secret")] {
        let code = login_code(&kit, "app", SCOPE, true, &Consent::GrantAll);
        let answer = exchange(&kit, auth, &code);
        assert_eq!(answer.status, 200, "{auth:?}: {}", answer.text());
        assert_eq!(
            answer.header("cache-control").as_deref(),
            Some("no-store, no-cache, max-age=0")
        );
        let body = answer.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert!(body.get("scope").is_none());
        let at = verify_jwt(&kit, body["access_token"].as_str().expect("at"));
        assert_eq!(at["aud"], format!("{}/resources", kit.issuer()));
        assert_eq!(at["iss"], kit.issuer());
        assert_eq!(at["client_id"], "app");
        assert_eq!(at["sub"], "818727");
        assert!(at["scope"].is_array());
        let id = verify_jwt(&kit, body["id_token"].as_str().expect("id"));
        assert_eq!(id["aud"], "app");
        assert_eq!(id["azp"], "app");
        assert_eq!(id["sub"], "818727");
        assert_eq!(id["nonce"], "n-456");
        assert!(id["auth_time"].is_u64());
        assert!(id["exp"].as_u64() > id["iat"].as_u64());
        let expected_hash = {
            use base64::Engine as _;
            use sha2::Digest as _;
            let d = sha2::Sha256::digest(body["access_token"].as_str().expect("at").as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d[..16])
        };
        assert_eq!(id["at_hash"], expected_hash);
        let header =
            jsonwebtoken::decode_header(body["id_token"].as_str().expect("id")).expect("header");
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(kit.signing_kid().as_str()));
    }
}

#[test]
fn basic_credentials_are_form_urlencoded() {
    let id = "my app:1";
    let secret = "p@ss+w%rd/=";
    let kit = kit_with(
        vec![ClientSpec::confidential(id, secret).redirect_uri(REDIRECT)],
        true,
    );
    let code = login_code(&kit, id, SCOPE, true, &Consent::GrantAll);
    let answer = exchange(&kit, Auth::Basic(id, secret), &code);
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn client_authentication_failures() {
    let kit = kit_with(
        vec![app(), ClientSpec::public("cli").redirect_uri(REDIRECT)],
        true,
    );
    let token = kit.token_endpoint();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("redirect_uri", REDIRECT),
    ];
    let cases: Vec<(Auth<'_>, &str)> = vec![
        (Auth::Basic("app", "wrong"), "Invalid client secret"),
        (Auth::Post("app", "wrong"), "Invalid client secret"),
        (Auth::Basic("nobody", "x"), "Unknown client"),
        (Auth::Public("app"), "The client secret is missing"),
        (
            Auth::Post("cli", "x"),
            "The client is public and has no secret",
        ),
        (Auth::Nothing, "No client credentials found"),
    ];
    for (auth, description) in cases {
        let answer = post_form(&token, auth, &form);
        assert_eq!(answer.status, 400, "IdentityServer3 answers 400: {auth:?}");
        let body = answer.json();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], description, "{auth:?}");
    }
    // Garbage Basic header.
    let answer = {
        let mut r = agent()
            .post(&token)
            .header("Authorization", "Basic !!!")
            .send_form(form)
            .expect("POST");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().expect("body"),
        )
    };
    assert_eq!(answer.0, 400);
    assert!(answer.1.contains("invalid_client"));
    // Two methods at once.
    let mut r = agent()
        .post(&token)
        .header("Authorization", basic_header("app", "secret"))
        .send_form([
            ("grant_type", "client_credentials"),
            ("client_secret", "secret"),
        ])
        .expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.body_mut()
            .read_to_string()
            .expect("body")
            .contains("invalid_request")
    );
    // Not a form.
    let answer = post_json(&token, "{}", None);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "invalid_request");

    // Standard mode: 401 with a Basic challenge.
    let std_kit = kit_with(vec![app()], false);
    let answer = post_form(
        &std_kit.token_endpoint(),
        Auth::Basic("app", "wrong"),
        &form,
    );
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .expect("challenge")
            .starts_with("Basic")
    );
}

#[test]
fn code_is_single_use_bound_and_short_lived() {
    let kit = kit_with(
        vec![
            app(),
            ClientSpec::confidential("other", "s").redirect_uri(REDIRECT),
        ],
        true,
    );
    let code = login_code(&kit, "app", SCOPE, true, &Consent::GrantAll);
    assert_eq!(
        exchange(&kit, Auth::Basic("app", "secret"), &code).status,
        200
    );
    let again = exchange(&kit, Auth::Basic("app", "secret"), &code);
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"], "invalid_grant");

    // Another client cannot redeem it (and that attempt uses it up).
    let code = login_code(&kit, "app", SCOPE, true, &Consent::GrantAll);
    let answer = exchange(&kit, Auth::Basic("other", "s"), &code);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(
        exchange(&kit, Auth::Basic("app", "secret"), &code).json()["error"],
        "invalid_grant"
    );

    // redirect_uri must match.
    let code = login_code(&kit, "app", SCOPE, true, &Consent::GrantAll);
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8080/other"),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert!(
        answer.json()["error_description"]
            .as_str()
            .expect("d")
            .contains("redirect_uri")
    );

    // Expired after the code lifetime.
    let code = login_code(&kit, "app", SCOPE, true, &Consent::GrantAll);
    kit.advance_clock(Duration::from_secs(301));
    let answer = exchange(&kit, Auth::Basic("app", "secret"), &code);
    assert_eq!(
        answer.json()["error_description"],
        "The authorization code expired"
    );

    // Unknown grant type and repeated parameters.
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[("grant_type", "password")],
    );
    assert_eq!(answer.json()["error"], "unsupported_grant_type");
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[
            ("grant_type", "authorization_code"),
            ("code", "a"),
            ("code", "b"),
        ],
    );
    assert_eq!(answer.json()["error"], "invalid_request");
}

#[test]
fn pkce_required_checks_the_verifier() {
    let kit = kit_with(vec![app()], true);
    let token = kit.token_endpoint();
    let redeem = |verifier: Option<&str>| {
        let code = login_code(&kit, "app", SCOPE, true, &Consent::GrantAll);
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = verifier {
            fields.push(("code_verifier", v));
        }
        post_form(&token, Auth::Basic("app", "secret"), &fields)
    };
    assert_eq!(redeem(Some(VERIFIER)).status, 200);
    let answer = redeem(None);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(answer.json()["error_description"], "Missing code_verifier");
    let wrong = "x".repeat(43);
    let answer = redeem(Some(&wrong));
    assert_eq!(
        answer.json()["error_description"],
        "Transformed code verifier does not match code challenge"
    );
    assert_eq!(
        redeem(Some("short")).json()["error_description"],
        "Invalid code_verifier"
    );

    // plain, and plain by default when no method is sent.
    let plain = "p".repeat(50);
    for method in [Some("plain"), None] {
        let mut url = url::Url::parse(&kit.authorization_endpoint()).expect("url");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", "app")
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid")
                .append_pair("code_challenge", &plain);
            if let Some(m) = method {
                q.append_pair("code_challenge_method", m);
            }
        }
        let callback = nethealth_oidc_testkit::Browser::new()
            .login(url.as_str(), &Consent::GrantAll)
            .expect("login");
        let code = param(&callback, "code").expect("code");
        let answer = post_form(
            &token,
            Auth::Basic("app", "secret"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &plain),
            ],
        );
        assert_eq!(answer.status, 200, "{method:?}: {}", answer.text());
    }
}

#[test]
fn pkce_not_registered_rejects_a_verifier_like_identity_server3() {
    let kit = kit_with(vec![app().require_pkce(false)], true);
    // The authorize request may carry a challenge (ignored); the verifier is then unexpected.
    let code = login_code(&kit, "app", SCOPE, true, &Consent::GrantAll);
    let answer = exchange(&kit, Auth::Basic("app", "secret"), &code);
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        serde_json::json!({"error": "invalid_grant", "error_description": "Unexpected code_verifier"})
    );
    // Without PKCE it works.
    let code = login_code(&kit, "app", SCOPE, false, &Consent::GrantAll);
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn refresh(kit: &TestKit, rt: &str) -> Answer {
    post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
}

#[test]
fn refresh_one_time_only_rotates() {
    let kit = kit_with(vec![app()], true);
    let first = tokens(&kit, "app", "secret", SCOPE);
    let rt1 = first["refresh_token"].as_str().expect("rt").to_owned();
    kit.clear_transcript();
    let answer = refresh(&kit, &rt1);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let rt2 = body["refresh_token"].as_str().expect("new rt").to_owned();
    assert_ne!(rt1, rt2);
    assert!(
        body.get("id_token").is_none(),
        "IdentityServer3 sends no ID token on refresh"
    );
    assert!(body.get("scope").is_none());
    let at = verify_jwt(&kit, body["access_token"].as_str().expect("at"));
    assert_eq!(
        at["scope"],
        serde_json::json!(["openid", "profile", "offline_access", "patients.read"])
    );
    assert_eq!(
        kit.requests(Endpoint::Token),
        1,
        "exactly one refresh request"
    );
    // The used token is dead.
    let answer = refresh(&kit, &rt1);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(refresh(&kit, &rt2).status, 200);
    assert_eq!(kit.live_refresh_tokens(), 1);
}

#[test]
fn refresh_reuse_keeps_the_token() {
    let kit = kit_with(
        vec![app().refresh_token_usage(RefreshTokenUsage::ReUse)],
        true,
    );
    let rt = tokens(&kit, "app", "secret", SCOPE)["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    for _ in 0..3 {
        let body = refresh(&kit, &rt).json();
        assert_eq!(body["refresh_token"], rt.as_str());
    }
}

#[test]
fn refresh_absolute_lifetime_and_failures() {
    let kit = kit_with(
        vec![
            app(),
            ClientSpec::confidential("other", "s").redirect_uri(REDIRECT),
        ],
        true,
    );
    kit.set_refresh_token_lifetime(Duration::from_secs(100));
    let rt = tokens(&kit, "app", "secret", SCOPE)["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    kit.advance_clock(Duration::from_secs(60));
    // Rotation keeps the line's absolute lifetime.
    let rt = refresh(&kit, &rt).json()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    kit.advance_clock(Duration::from_secs(41));
    let answer = refresh(&kit, &rt);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(
        answer.json()["error_description"],
        "The refresh token expired"
    );

    let rt = tokens(&kit, "app", "secret", SCOPE)["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("other", "s"),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(refresh(&kit, "garbage").json()["error"], "invalid_grant");
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[("grant_type", "refresh_token")],
    );
    assert_eq!(answer.json()["error"], "invalid_grant");
}

#[test]
fn standard_mode_sends_scope_and_id_token_on_refresh() {
    let kit = kit_with(vec![app()], false);
    let body = tokens(&kit, "app", "secret", SCOPE);
    assert_eq!(body["scope"], SCOPE);
    let at = verify_jwt(&kit, body["access_token"].as_str().expect("at"));
    assert_eq!(at["scope"], SCOPE, "space-separated in standard mode");
    let rt = body["refresh_token"].as_str().expect("rt");
    let refreshed = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "openid patients.read"),
        ],
    )
    .json();
    assert_eq!(refreshed["scope"], "openid patients.read");
    assert!(refreshed["id_token"].is_string());
    let rt = refreshed["refresh_token"].as_str().expect("rt");
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "patients.write"),
        ],
    );
    assert_eq!(answer.json()["error"], "invalid_scope");
}

#[test]
fn client_credentials() {
    let kit = kit_with(
        vec![
            app().allow_client_credentials(true),
            ClientSpec::confidential("no-cc", "s"),
        ],
        true,
    );
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Post("app", "secret"),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "patients.read"),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("id_token").is_none());
    let at = verify_jwt(&kit, body["access_token"].as_str().expect("at"));
    assert!(at.get("sub").is_none());
    assert_eq!(at["scope"], serde_json::json!(["patients.read"]));
    // Default: every non-identity scope the client may have.
    let body = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[("grant_type", "client_credentials")],
    )
    .json();
    let at = verify_jwt(&kit, body["access_token"].as_str().expect("at"));
    assert_eq!(
        at["scope"],
        serde_json::json!(["patients.read", "patients.write"])
    );
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("app", "secret"),
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    );
    assert_eq!(answer.json()["error"], "invalid_scope");
    let answer = post_form(
        &kit.token_endpoint(),
        Auth::Basic("no-cc", "s"),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(answer.json()["error"], "unauthorized_client");
}
