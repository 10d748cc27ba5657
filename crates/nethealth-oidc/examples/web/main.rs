//! A web service with many users, on axum: `/login`, `/callback`, `/me` (calls the protected API with the user's
//! token, refreshed transparently) and `POST /logout` (revokes, then RP-initiated logout). See `app.rs`.
//!
//! Run it against the local Accounts site (started here on loopback):
//! `cargo run -p nethealth-oidc --example web`, then open <http://127.0.0.1:8080/login> and log in as
//! `alice` / `password`.
#![allow(clippy::print_stdout)]

mod app;

use std::sync::Arc;

use nethealth_oidc::{
    ClientConfig, ClientOptions, ClientSecret, HttpClient, KeyedFileStore, Provider, Scopes,
    SessionOptions, TransportConfig,
};
use nethealth_oidc_testkit::{ClientSpec, TestKit};

const ADDR: &str = "127.0.0.1:8080";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redirect = format!("http://{ADDR}/callback");
    let kit = TestKit::builder()
        .client(ClientSpec::confidential("web", "web-secret").redirect_uri(&redirect))
        .start()
        .await?;
    let provider =
        Provider::discover(HttpClient::new(TransportConfig::default())?, kit.issuer()).await?;
    let config = ClientConfig::new("web", Some(ClientSecret::new("web-secret")))
        .with_redirect_uris(vec![redirect.parse()?]);
    let client = provider.client(config, ClientOptions::default())?;
    // Every user's tokens, one file each, in a folder only this user can read.
    let folder = std::env::temp_dir().join("nethealth-oidc-web-example");
    let store = Arc::new(KeyedFileStore::open(folder)?);
    let sessions = client.sessions(store, SessionOptions::default());
    let state = app::AppState::new(
        sessions,
        reqwest::Client::new(),
        app::WebConfig {
            scopes: Scopes::parse("openid offline_access patients.read"),
            api_url: kit.api_url(),
            prompt: None,
            post_logout_redirect_uri: None,
            secure_cookies: false,
        },
    );
    let listener = tokio::net::TcpListener::bind(ADDR).await?;
    println!("open http://{ADDR}/login and log in as alice / password");
    axum::serve(listener, app::router(state)).await?;
    Ok(())
}
