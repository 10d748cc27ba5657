//! Starting and stopping, discovery, JWKS, and registration.

use std::time::Duration;

use crate::common::*;
use nethealth_oidc_testkit::{Endpoint, StartError, TestKit};

#[test]
fn discovery_in_identity_server3_mode() {
    let kit = TestKit::builder().start_blocking().expect("start");
    assert!(kit.issuer().starts_with("http://127.0.0.1:"));
    assert_eq!(kit.issuer(), kit.origin());
    let doc = get(&kit.discovery_url()).json();
    assert_eq!(doc["issuer"], kit.issuer());
    let issuer = kit.issuer();
    for (field, path) in [
        ("jwks_uri", "/.well-known/jwks"),
        ("authorization_endpoint", "/connect/authorize"),
        ("token_endpoint", "/connect/token"),
        ("userinfo_endpoint", "/connect/userinfo"),
        ("end_session_endpoint", "/connect/endsession"),
        ("revocation_endpoint", "/connect/revocation"),
        ("introspection_endpoint", "/connect/introspect"),
    ] {
        assert_eq!(doc[field], format!("{issuer}{path}"), "{field}");
    }
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_post",
            "client_secret_basic",
            "private_key_jwt",
            "client_secret_jwt",
            "none"
        ])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["plain", "S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    let scopes = doc["scopes_supported"].as_array().expect("scopes");
    for s in [
        "openid",
        "profile",
        "email",
        "offline_access",
        "patients.read",
        "patients.write",
    ] {
        assert!(scopes.iter().any(|x| x == s), "{s}");
    }
    // Not advertised unless enabled.
    assert!(doc.get("registration_endpoint").is_none());
    assert!(
        doc.get("authorization_response_iss_parameter_supported")
            .is_none()
    );

    // JWKS: one RSA key, n and e in padded standard base64.
    let jwks = get(&kit.url(Endpoint::Jwks)).json();
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["kid"], kit.signing_kid());
    let n = keys[0]["n"].as_str().expect("n");
    assert!(n.ends_with("=="), "standard base64 pads a 256-byte modulus");
    assert_eq!(keys[0]["e"], "AQAB");
}

#[test]
fn discovery_in_standard_mode_with_options_and_issuer_path() {
    let kit = TestKit::builder()
        .identity_server3(false)
        .iss_parameter(true)
        .dynamic_registration(true)
        .issuer_path("/core")
        .start_blocking()
        .expect("start");
    assert_eq!(kit.issuer(), format!("{}/core", kit.origin()));
    let doc = get(&kit.discovery_url()).json();
    assert_eq!(doc["issuer"], kit.issuer());
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/core/connect/token", kit.origin())
    );
    assert_eq!(
        doc["registration_endpoint"],
        format!("{}/core/connect/register", kit.origin())
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let jwks = get(&kit.url(Endpoint::Jwks)).json();
    let n = jwks["keys"][0]["n"].as_str().expect("n");
    assert!(!n.contains(['=', '+', '/']), "base64url without padding");
    // Routes match case-insensitively, as on IIS; the transcript shows the canonical path.
    assert_eq!(
        get(&format!("{}/CORE/.well-known/JWKS", kit.origin())).status,
        200
    );
    // Without the issuer path the provider is not there.
    assert_eq!(
        get(&format!(
            "{}/.well-known/openid-configuration",
            kit.origin()
        ))
        .status,
        404
    );
    assert_eq!(
        kit.transcript(),
        [
            "GET /.well-known/openid-configuration",
            "GET /.well-known/jwks",
            "GET /.well-known/jwks",
            "GET /.well-known/openid-configuration",
        ]
    );
    assert_eq!(kit.requests(Endpoint::Jwks), 2);
    assert_eq!(
        kit.requests(Endpoint::Discovery),
        1,
        "the 404 is not discovery"
    );
}

#[test]
fn wrong_methods_and_bad_issuer_paths() {
    let kit = TestKit::builder().start_blocking().expect("start");
    let answer = post_form(&kit.discovery_url(), Auth::Nothing, &[]);
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow").as_deref(), Some("GET"));
    assert_eq!(get(&kit.token_endpoint()).status, 405);
    for bad in ["core", "/core/", "/co re", "/a//b", "/core?x"] {
        let err = TestKit::builder()
            .issuer_path(bad)
            .start_blocking()
            .expect_err(bad);
        assert_eq!(err, StartError::IssuerPath(bad.into()));
    }
}

#[test]
fn stops_when_dropped_blocking() {
    let kit = TestKit::builder().start_blocking().expect("start");
    let addr = kit.addr();
    // Keep a pooled keep-alive connection open, then drop: the server must still stop promptly.
    let agent = agent();
    let mut r = agent.get(&kit.discovery_url()).call().expect("GET");
    let _ = r.body_mut().read_to_vec();
    let started = std::time::Instant::now();
    drop(kit);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn starts_on_the_callers_runtime_and_stops_when_dropped() {
    let kit = TestKit::builder().start().await.expect("start");
    let addr = kit.addr();
    let url = kit.discovery_url();
    let doc = tokio::task::spawn_blocking(move || get(&url).json())
        .await
        .expect("join");
    assert_eq!(doc["issuer"], kit.issuer());
    drop(kit);
    // The listener closes once the server task sees the signal.
    let mut closed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the listener should close after drop");
}

#[test]
fn fixed_port_conflict_is_a_bind_error() {
    let kit = TestKit::builder().start_blocking().expect("start");
    let port = kit.addr().port();
    let err = TestKit::builder()
        .port(port)
        .start_blocking()
        .expect_err("port taken");
    assert!(
        matches!(err, StartError::Bind { port: p, .. } if p == port),
        "{err:?}"
    );
    assert!(err.to_string().contains("pick another port"));
}

// ------------------------------------------------------------------------------------------------------------
// Registration

#[test]
fn net_health_registration_answers_pascal_case() {
    let kit = TestKit::builder().start_blocking().expect("start");
    let answer = post_json(
        &kit.register_url(),
        r#"{"client_name":"My App","redirect_uris":["http://127.0.0.1:8080/cb"],
            "scope":"openid offline_access patients.read","token_endpoint_auth_method":"client_secret_post"}"#,
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let id = body["ClientId"].as_str().expect("ClientId");
    let secret = body["ClientSecret"].as_str().expect("ClientSecret");
    assert_eq!(id.len(), 36, "GUID-shaped id");
    assert!(secret.len() >= 32);
    assert_eq!(body["ClientName"], "My App");
    assert_eq!(body["Flow"], "AuthorizationCodeWithProofKey");
    assert_eq!(body["TokenEndpointAuthMethod"], "client_secret_post");
    assert_eq!(body["RefreshTokenUsage"], "OneTimeOnly");
    assert_eq!(
        body["AllowedScopes"],
        serde_json::json!(["openid", "offline_access", "patients.read"])
    );
    assert!(body.get("client_id").is_none(), "no snake_case");
    let spec = kit.client(id).expect("registered");
    assert!(!spec.is_public());

    // The registered client can log in and get tokens.
    let tokens = tokens(&kit, id, secret, "openid offline_access patients.read");
    assert!(tokens["refresh_token"].is_string());

    // PascalCase input binds too; public client; a path under the issuer also works.
    let answer = post_json(
        &format!("{}/API/clients/register", kit.origin()),
        r#"{"ClientName":"CLI","RedirectUris":["http://127.0.0.1/cb"],"TokenEndpointAuthMethod":"none"}"#,
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.json()["ClientSecret"].is_null());
}

#[test]
fn net_health_registration_errors() {
    let kit = TestKit::builder()
        .registered_clients_require_pkce(false)
        .start_blocking()
        .expect("start");
    let answer = post_json(&kit.register_url(), r#"{"client_name":"x"}"#, None);
    assert_eq!(answer.status, 400);
    let body = answer.json();
    let message = body["Message"].as_str().expect("Message");
    assert!(message.starts_with("The request is invalid."), "{message}");
    assert!(message.contains("RedirectUris"), "{message}");
    assert!(body["ModelState"]["request.RedirectUris"].is_array());

    assert_eq!(
        post_json(&kit.register_url(), "{not json", None).status,
        400
    );
    let answer = read_text_post(&kit.register_url());
    assert_eq!(answer.status, 415);
    assert!(
        answer.json()["Message"]
            .as_str()
            .expect("Message")
            .contains("media type")
    );
    assert_eq!(get(&kit.register_url()).status, 405);

    // Without PKCE by default for this kit.
    let answer = post_json(
        &kit.register_url(),
        r#"{"redirect_uris":["https://app.example/cb"]}"#,
        None,
    );
    assert_eq!(answer.json()["Flow"], "AuthorizationCode");
}

fn read_text_post(url: &str) -> Answer {
    let mut response = agent()
        .post(url)
        .content_type("text/plain")
        .send("hello")
        .expect("POST");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.body_mut().read_to_vec().expect("body"),
    }
}

#[test]
fn registration_token_is_required_when_configured() {
    let kit = TestKit::builder()
        .registration_token("initial-token")
        .dynamic_registration(true)
        .start_blocking()
        .expect("start");
    let body = r#"{"redirect_uris":["http://127.0.0.1/cb"]}"#;
    let answer = post_json(&kit.register_url(), body, None);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.json()["Message"],
        "Authorization has been denied for this request."
    );
    assert_eq!(
        post_json(&kit.register_url(), body, Some("wrong")).status,
        401
    );
    assert_eq!(
        post_json(&kit.register_url(), body, Some("initial-token")).status,
        200
    );
    let rfc = kit.url(Endpoint::DynamicRegistration);
    let answer = post_json(&rfc, body, None);
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .expect("challenge")
            .contains("invalid_token")
    );
    assert_eq!(post_json(&rfc, body, Some("initial-token")).status, 201);
}

#[test]
fn rfc7591_registration() {
    let kit = TestKit::builder()
        .dynamic_registration(true)
        .start_blocking()
        .expect("start");
    let url = kit.url(Endpoint::DynamicRegistration);
    let answer = post_json(
        &url,
        r#"{"client_name":"App","redirect_uris":["http://127.0.0.1:8080/cb"],"grant_types":["authorization_code","refresh_token","client_credentials"]}"#,
        None,
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    assert!(body["client_id"].is_string());
    assert!(body["client_secret"].is_string());
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        body["redirect_uris"],
        serde_json::json!(["http://127.0.0.1:8080/cb"])
    );
    assert!(body.get("ClientId").is_none());
    let id = body["client_id"].as_str().expect("id");
    assert!(!kit.client(id).expect("registered").is_public());

    let answer = post_json(
        &url,
        r#"{"redirect_uris":["http://evil.example/cb"]}"#,
        None,
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "invalid_redirect_uri");
    let answer = post_json(
        &url,
        r#"{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"private_key_jwt"}"#,
        None,
    );
    assert_eq!(answer.json()["error"], "invalid_client_metadata");

    // Disabled: 404 with registration_not_supported.
    let plain = TestKit::builder().start_blocking().expect("start");
    let answer = post_json(&plain.url(Endpoint::DynamicRegistration), "{}", None);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"], "registration_not_supported");
}

#[tokio::test(flavor = "current_thread")]
async fn start_blocking_works_inside_a_runtime_too() {
    let kit = TestKit::builder().start_blocking().expect("start");
    let url = kit.discovery_url();
    // The kit serves from its own thread, so even a blocking call on this runtime's only thread is answered.
    assert_eq!(get(&url).status, 200);
    drop(kit);
}
