//! The axum example (`examples/web`) end to end against the local Accounts site: a real HTTP client with a cookie
//! jar plays two browsers; the testkit's scripted `Browser` plays each user at the provider.

#[path = "../examples/web/app.rs"]
mod app;
#[path = "web_support/mod.rs"]
mod web_support;

use std::sync::Arc;
use std::time::Duration;

use nethealth_oidc::{
    ClientConfig, ClientOptions, ClientSecret, HttpClient, ManualClock, MemoryKeyedStore, Provider,
    Scopes, SessionOptions, TransportConfig, UnixTime,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, Fault, TestKit};
use web_support::{Jar, serve};

/// The local site knowing the app as client `web`, and the app's client configuration.
async fn site(redirect: &str) -> (TestKit, ClientConfig) {
    let kit = TestKit::builder()
        .client(ClientSpec::confidential("web", "web-secret").redirect_uri(redirect))
        .start()
        .await
        .unwrap();
    let config = ClientConfig::new("web", Some(ClientSecret::new("web-secret")))
        .with_redirect_uris(vec![redirect.parse().unwrap()]);
    (kit, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_me_refresh_and_logout_through_the_web_app() {
    let (listener, base) = web_support::listener().await;
    let (kit, config) = site(&format!("{base}/callback")).await;
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(kit.now())));
    let http = HttpClient::new(TransportConfig::default()).unwrap();
    let provider = Provider::discover_with_clock(http, kit.issuer(), clock.clone())
        .await
        .unwrap();
    let client = provider.client(config, ClientOptions::default()).unwrap();
    let store = Arc::new(MemoryKeyedStore::new());
    let state = app::AppState::new(
        client.sessions(store.clone(), SessionOptions::default()),
        reqwest::Client::new(),
        app::WebConfig {
            scopes: Scopes::parse("openid offline_access patients.read"),
            api_url: kit.api_url(),
            prompt: None,
            post_logout_redirect_uri: Some(format!("{base}/").parse().unwrap()),
            secure_cookies: false,
        },
    );
    let server = serve(listener, app::router(state.clone()));
    let play = |auth_url: String| async move {
        Browser::new()
            .login_async(&auth_url, &Consent::GrantAll)
            .await
            .expect("the login page works")
    };

    // Not logged in, or a callback this browser never started: refused, with what to do next.
    let mut alice = Jar::new(&base);
    let me = alice.get("/me").await;
    assert_eq!(me.status, 401);
    assert!(me.body.contains("/login"), "{}", me.body);
    let stray = alice.get("/callback?code=x&state=y").await;
    assert_eq!(stray.status, 400, "{}", stray.body);

    // Alice logs in: a session cookie, then a new one after the callback (no fixation).
    let login = alice.get("/login").await;
    assert_eq!(login.status, 303);
    let cookie = login.set_cookie.clone().expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let before_login = alice.session_id().unwrap();
    let callback = play(login.location.unwrap()).await;

    // Bob starts a login too; his callback replayed in Alice's browser (login CSRF) is refused.
    let mut bob = Jar::new(&base);
    let bob_login = bob.get("/login").await;
    let bob_callback = play(bob_login.location.unwrap()).await;
    let forged = alice.get(&web_support::path_and_query(&bob_callback)).await;
    assert_eq!(forged.status, 400, "{}", forged.body);

    let done = alice.get(&web_support::path_and_query(&callback)).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/me"));
    assert_ne!(
        alice.session_id().unwrap(),
        before_login,
        "a new session id"
    );
    let me = alice.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let answer: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(answer["api_status"], 200, "{answer}");
    assert!(!answer["sub"].as_str().unwrap().is_empty());
    assert_eq!(store.len(), 1);
    assert_eq!(
        state.pending_logins(),
        0,
        "Alice's login was used up, Bob's with it"
    );

    // The token expires: /me still works, with one transparent refresh.
    let token_requests = kit.requests(Endpoint::Token);
    kit.advance_clock(Duration::from_secs(3_700));
    clock.advance(Duration::from_secs(3_700));
    let me = alice.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(kit.requests(Endpoint::Token), token_requests + 1);

    // Logout: revoked at the provider, the session ended, the cookie cleared, the browser sent to end-session.
    let revocations = kit.requests(Endpoint::Revocation);
    let old_cookie = alice.session_id().unwrap();
    let out = alice.post("/logout").await;
    assert_eq!(out.status, 303);
    let to = out.location.unwrap();
    assert!(to.starts_with(&kit.url(Endpoint::EndSession)), "{to}");
    assert!(to.contains("id_token_hint="), "{to}");
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(kit.requests(Endpoint::Revocation), revocations + 1);
    assert!(store.is_empty());
    alice.set_session_id(&old_cookie);
    assert_eq!(
        alice.get("/me").await.status,
        401,
        "the old cookie is worth nothing"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_par_gets_a_pushed_login_through_the_web_app() {
    let (listener, base) = web_support::listener().await;
    let (kit, config) = site(&format!("{base}/callback")).await;
    kit.set_require_par(true);
    let http = HttpClient::new(TransportConfig::default()).unwrap();
    let provider = Provider::discover(http, kit.issuer()).await.unwrap();
    let client = provider.client(config, ClientOptions::default()).unwrap();
    let state = app::AppState::new(
        client.sessions(Arc::new(MemoryKeyedStore::new()), SessionOptions::default()),
        reqwest::Client::new(),
        app::WebConfig {
            scopes: Scopes::parse("openid patients.read"),
            api_url: kit.api_url(),
            prompt: None,
            post_logout_redirect_uri: None,
            secure_cookies: false,
        },
    );
    let server = serve(listener, app::router(state.clone()));

    // The PAR endpoint fails: /login says so (502) and keeps no pending login.
    kit.fail_always(Endpoint::Par, Fault::Status(503));
    let mut browser = Jar::new(&base);
    let failed = browser.get("/login").await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    assert!(failed.body.contains("503"), "{}", failed.body);
    assert_eq!(state.pending_logins(), 0);
    kit.clear_faults();

    // The login is pushed: the browser goes to a URL with only client_id and request_uri.
    let pushes = kit.requests(Endpoint::Par);
    let login = browser.get("/login").await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(kit.requests(Endpoint::Par), pushes + 1);
    let auth_url = login.location.unwrap();
    web_support::assert_pushed(&auth_url);
    let callback = Browser::new()
        .login_async(&auth_url, &Consent::GrantAll)
        .await
        .expect("the login page takes the pushed request");
    let done = browser.get(&web_support::path_and_query(&callback)).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let me = browser.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let answer: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(answer["api_status"], 200, "{answer}");
    server.abort();
}
