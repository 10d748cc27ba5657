//! A fleet of replicas sharing one user's tokens through `RedisStore`, against the local Accounts site
//! (`nethealth-oidc-testkit`, OneTimeOnly refresh-token rotation, 4-second access tokens). Three "replicas" (three
//! clients in this process, as three machines would be) resume the same stored session; across several expiries
//! the site sees one refresh per expiry.
//!
//! Needs a redis-server on loopback: `redis-server --port 6390 --save ''`, then
//! `NETHEALTH_REDIS_URL=redis://127.0.0.1:6390 cargo run -p nethealth-oidc --features redis --example fleet`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use nethealth_oidc::{
    ClientOptions, EncryptionKey, LifecycleConfig, Provider, RedisOptions, RedisStore, Scopes,
    SessionOptions, TransportConfig,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, TestKit};

const REDIRECT: &str = "http://127.0.0.1:8080/callback";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NETHEALTH_REDIS_URL").map_err(|_| {
        "set NETHEALTH_REDIS_URL=redis://127.0.0.1:PORT (start one with `redis-server --port PORT --save ''`)"
    })?;
    let kit = TestKit::builder()
        .client(ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT))
        .access_token_lifetime(Duration::from_secs(4))
        .start()
        .await?;
    let config = nethealth_oidc::ClientConfig::new(
        "app",
        Some(nethealth_oidc::ClientSecret::new("app-secret")),
    )
    .with_redirect_uris(vec![REDIRECT.parse()?]);
    let http = nethealth_oidc::HttpClient::new(TransportConfig::default())?;

    // One store per user: the key is yours to choose. In production the encryption key comes from your secrets
    // manager (`EncryptionKey::from_base64`), and every replica uses the same one.
    let options = || {
        RedisOptions::default()
            .with_lease(Duration::from_secs(5))
            .with_encryption(EncryptionKey::from_bytes([42; 32]))
    };
    let users = RedisStore::open(&url, "example:user:alice", options())?;
    let alice = users.for_key("example:user:alice");

    // The user logs in once, on whichever replica served the callback.
    let provider = Provider::discover(http.clone(), kit.issuer()).await?;
    let client = provider.client(config.clone(), ClientOptions::default())?;
    let scopes = Scopes::parse("openid offline_access patients.read");
    let (auth_url, pending) = client.start_login(&scopes).await?;
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &Consent::GrantAll)
        .await?;
    let grant = client.finish_login(&pending, &callback.parse()?).await?;
    let lifecycle = LifecycleConfig::default().with_refresh_margin(Duration::from_secs(2));
    let session_options = |store: RedisStore| {
        SessionOptions::default()
            .with_store(Arc::new(store))
            .with_lifecycle(lifecycle)
    };
    drop(
        client
            .session(grant, session_options(alice.clone()))
            .await?,
    );
    kit.clear_transcript();

    // Every replica resumes the shared session and asks for tokens as its requests come in.
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let provider = Provider::discover(http.clone(), kit.issuer()).await?;
        let client = provider.client(config.clone(), ClientOptions::default())?;
        let session = client
            .resume(session_options(alice.clone()))
            .await?
            .ok_or("the session was stored")?;
        replicas.push(session);
    }
    for second in 0..10 {
        for session in &replicas {
            session.access_token().await?;
        }
        println!(
            "t={second:>2}s: 3 replicas hold a valid token; refreshes at the site so far: {}",
            kit.requests(Endpoint::Token)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("stored for {:?}", alice);
    Ok(())
}
