//! The axum example (`examples/web`) end to end against the independent oidc-provider peer: login, `/me` with a
//! transparent refresh, logout; and a pushed login at the peer that requires PAR. `cargo xtask ci` (or
//! `cargo xtask with-peers ...`) starts the peers and names them in `NETHEALTH_TEST_ISSUER` and
//! `NETHEALTH_TEST_ISSUER_PAR`; without those variables these tests fail and say how to start them.

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

fn issuer(var: &str) -> String {
    match std::env::var(var) {
        Ok(issuer) if !issuer.is_empty() => issuer,
        _ => panic!(
            "{var} is not set: run the tests with `cargo xtask ci` or `cargo xtask with-peers cargo test -p \
             nethealth-oidc --test web_example_peer`, which start the oidc-provider peers, or start one yourself \
             (`PORT=4562 peers/oidc-provider/start.sh`, with PAR_REQUIRED=1 DPOP_REQUIRE_NONCE=1 for the _PAR one) \
             and set {var}=http://127.0.0.1:4562"
        ),
    }
}

/// The app, registered at the peer `issuer` as a new client and serving on a loopback port: the browser's base
/// URL, the app's session store, its clock, the server task and the time it started.
struct App {
    base: String,
    store: Arc<MemoryKeyedStore>,
    clock: Arc<ManualClock>,
    server: tokio::task::JoinHandle<()>,
    now: u64,
}

async fn app_at(issuer: &str) -> App {
    let (listener, base) = web_support::listener().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(now)));
    let http = HttpClient::new(TransportConfig::default()).unwrap();
    let provider = Provider::discover_with_clock(http, issuer, clock.clone())
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
    App {
        base,
        store,
        clock,
        server,
        now,
    }
}

/// Logs `browser` in through the app's `/login` as a new peer user; returns the authorization URL it was sent to.
async fn log_in(browser: &mut Jar, user: String) -> nethealth_oidc::core::Url {
    let login = browser.get("/login").await;
    assert_eq!(login.status, 303, "{}", login.body);
    let auth_url: nethealth_oidc::core::Url = login.location.unwrap().parse().unwrap();
    let sent_to = auth_url.clone();
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
    sent_to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_me_refresh_and_logout_through_the_web_app_at_the_peer() {
    let issuer = issuer("NETHEALTH_TEST_ISSUER");
    let App {
        base,
        store,
        clock,
        server,
        now,
    } = app_at(&issuer).await;

    let mut browser = Jar::new(&base);
    assert_eq!(browser.get("/me").await.status, 401);
    log_in(&mut browser, format!("web-user-{now}")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_login_through_the_web_app_at_the_peer_that_requires_par() {
    let app = app_at(&issuer("NETHEALTH_TEST_ISSUER_PAR")).await;
    let mut browser = Jar::new(&app.base);
    let auth_url = log_in(&mut browser, format!("web-par-user-{}", app.now)).await;
    web_support::assert_pushed(auth_url.as_str());
    let me = browser.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let answer: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(answer["api_status"], 200, "{answer}");
    assert_eq!(app.store.len(), 1);
    app.server.abort();
}
