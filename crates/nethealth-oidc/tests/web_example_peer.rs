//! The axum example (`examples/web`) end to end against the independent oidc-provider peer: login, `/me` with a
//! transparent refresh, logout. `cargo xtask ci` starts the peer and names it in `NETHEALTH_TEST_ISSUER`; without
//! that variable this test fails and says how to start it.

#[path = "../examples/web/app.rs"]
mod app;
#[path = "../../../peers/oidc-provider/browser.rs"]
mod browser;
#[path = "web_support/mod.rs"]
mod web_support;

use std::sync::Arc;
use std::time::Duration;

use nethealth_oidc::{
    ClientMetadata, ClientOptions, HttpClient, ManualClock, MemoryKeyedStore, Prompt, Provider,
    Scopes, SessionOptions, TransportConfig, UnixTime,
};
use web_support::{Jar, serve};

fn issuer() -> String {
    match std::env::var("NETHEALTH_TEST_ISSUER") {
        Ok(issuer) if !issuer.is_empty() => issuer,
        _ => panic!(
            "NETHEALTH_TEST_ISSUER is not set: run the tests with `cargo xtask ci`, which starts the oidc-provider \
             peer, or start it yourself (`PORT=4562 peers/oidc-provider/start.sh`) and set \
             NETHEALTH_TEST_ISSUER=http://127.0.0.1:4562"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_me_refresh_and_logout_through_the_web_app_at_the_peer() {
    let issuer = issuer();
    let (listener, base) = web_support::listener().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(now)));
    let http = HttpClient::new(TransportConfig::default()).unwrap();
    let provider = Provider::discover_with_clock(http, &issuer, clock.clone())
        .await
        .unwrap();
    let after_logout: nethealth_oidc::core::Url = format!("{base}/").parse().unwrap();
    let metadata = ClientMetadata::new(
        "nethealth-oidc web example",
        vec![format!("{base}/callback").parse().unwrap()],
    )
    .with_scope("openid offline_access patients.read")
    .with_post_logout_redirect_uris(vec![after_logout.clone()]);
    let registered = provider.register(&metadata, None).await.unwrap();
    let client = provider
        .client(registered.to_client_config(), ClientOptions::default())
        .unwrap();
    let store = Arc::new(MemoryKeyedStore::new());
    let state = app::AppState::new(
        client.sessions(store.clone(), SessionOptions::default()),
        reqwest::Client::new(),
        app::WebConfig {
            scopes: Scopes::parse("openid offline_access patients.read"),
            api_url: format!("{issuer}/__test/resource?scope=patients.read"),
            // oidc-provider issues a refresh token only with prompt=consent.
            prompt: Some(Prompt::Consent),
            post_logout_redirect_uri: Some(after_logout),
            secure_cookies: false,
        },
    );
    let server = serve(listener, app::router(state));

    let mut browser = Jar::new(&base);
    assert_eq!(browser.get("/me").await.status, 401);
    let login = browser.get("/login").await;
    assert_eq!(login.status, 303);
    let auth_url: nethealth_oidc::core::Url = login.location.unwrap().parse().unwrap();
    let user = format!("web-user-{now}");
    let callback = tokio::task::spawn_blocking(move || {
        browser::login(&auth_url, &user, browser::Consent::All)
    })
    .await
    .unwrap()
    .expect("the interaction works");
    assert!(
        callback.query_pairs().any(|(k, _)| k == "iss"),
        "RFC 9207 iss came back"
    );
    let done = browser
        .get(&web_support::path_and_query(callback.as_str()))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let me = browser.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let answer: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(answer["api_status"], 200, "{answer}");
    assert_eq!(store.len(), 1);
    let key = nethealth_oidc::SessionKey::new(browser.session_id().unwrap());
    let token = |store: &MemoryKeyedStore| {
        use nethealth_oidc::KeyedTokenStore;
        store.load(&key).unwrap().unwrap().access_token
    };
    let before = token(&store);

    // The peer's access tokens live 60 s: past that, /me refreshes on the way and still answers.
    clock.advance(Duration::from_secs(61));
    let me = browser.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let answer: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(answer["api_status"], 200, "{answer}");
    assert!(
        !token(&store).ct_eq(&before),
        "refreshed, and stored under the user's key"
    );

    let out = browser.post("/logout").await;
    assert_eq!(out.status, 303, "{}", out.body);
    let to = out.location.unwrap();
    assert!(to.starts_with(&format!("{issuer}/session/end")), "{to}");
    assert!(to.contains("id_token_hint="), "{to}");
    assert!(store.is_empty(), "the session is over");
    assert_eq!(browser.get("/me").await.status, 401);
    server.abort();
}
