//! The Net Health guide's four steps, end to end, against the local Accounts site (`nethealth-oidc-testkit`):
//! register, log in (the user unticks one scope), call the API, let the token expire and refresh it, revoke.
//! Once with the async client, once with the blocking one. Run it with `cargo xtask demo`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use nethealth_oidc::{
    ClientMetadata, ClientOptions, Error, FileStore, ManualClock, NetHealthRegistration, Scopes,
    SessionOptions, TokenStore, TransportConfig, UnixTime,
};
use nethealth_oidc_testkit::{Browser, Consent, Endpoint, TestKit};

const REDIRECT: &str = "http://127.0.0.1:8080/callback";
const SCOPES: &str = "openid offline_access patients.read patients.write";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async_demo())?;
    drop(runtime);
    blocking_demo()?;
    println!("\nBoth clients walked the four steps. Done.");
    Ok(())
}

fn step(n: &str, text: &str) {
    println!("\n{n} {text}");
}

fn say(text: impl AsRef<str>) {
    println!("   {}", text.as_ref());
}

fn start_site(kit: &TestKit) -> Arc<ManualClock> {
    say(format!(
        "local Accounts site (IdentityServer3-like): {}",
        kit.issuer()
    ));
    say(format!("sample Net Health API: {}", kit.api_url()));
    Arc::new(ManualClock::new(UnixTime::from_secs(kit.now())))
}

fn metadata() -> Result<ClientMetadata, Error> {
    let redirect = REDIRECT.parse().expect("REDIRECT is a valid URL constant");
    Ok(ClientMetadata::new("Net Health demo", vec![redirect]).with_scope(SCOPES))
}

async fn async_demo() -> Result<(), Box<dyn std::error::Error>> {
    use nethealth_oidc::{HttpClient, Provider};
    println!("=== The async client (tokio + reqwest) ===");
    let kit = TestKit::builder().start().await?;
    let clock = start_site(&kit);
    let provider = Provider::discover_with_clock(
        HttpClient::new(TransportConfig::default())?,
        kit.issuer(),
        clock.clone(),
    )
    .await?;

    step("1.", "Register the application at /api/Clients/Register");
    let registered = provider
        .register_net_health(&NetHealthRegistration::default(), &metadata()?, None)
        .await?;
    say(format!(
        "client id: {} (the secret is kept, never printed: {:?})",
        registered.client_id, registered.client_secret
    ));
    let client = provider.client(registered.to_client_config(), ClientOptions::default())?;

    step("2.", "Log in and consent");
    let (auth_url, pending) = client.start_login(&Scopes::parse(SCOPES)).await?;
    say(format!("asking for: {SCOPES}"));
    say("alice logs in and unticks patients.write on the consent page");
    let callback = Browser::new()
        .login_async(
            auth_url.as_str(),
            &Consent::grant(["offline_access", "patients.read"]),
        )
        .await?;
    let grant = client.finish_login(&pending, &callback.parse()?).await?;
    say(format!(
        "granted: {} | refused: {} (read from the access token's scope claim: IdentityServer3 sends no scope field)",
        grant.granted.granted(),
        grant.refused()
    ));
    let dir = tempfile::tempdir()?;
    let store = Arc::new(FileStore::new(dir.path().join("tokens.json")));
    let session = client
        .session(grant, SessionOptions::default().with_store(store.clone()))
        .await?;

    step("3.", "Send the token to the API");
    let api = session.authorized(reqwest::Client::new());
    let response = api.send(api.get(kit.api_url())).await?;
    say(format!("GET /api/patients -> {}", response.status()));
    say(format!(
        "may we POST (needs patients.write)? session.allows says {}",
        session.allows("patients.write")
    ));
    let response = api.send(api.post(kit.api_url()).body("{}")).await?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    say(format!(
        "POST /api/patients anyway -> {} ({challenge})",
        response.status()
    ));

    step("4.", "Let the token expire, then refresh it");
    let before = session.access_token().await?;
    let token_requests = kit.requests(Endpoint::Token);
    kit.advance_clock(Duration::from_secs(3600));
    clock.advance(Duration::from_secs(3600));
    say("an hour passes (the site's clock and ours)");
    let after = session.access_token().await?;
    say(format!(
        "access_token() refreshed: new token: {}, token requests: {}",
        !after.ct_eq(&before),
        kit.requests(Endpoint::Token) - token_requests
    ));
    say(format!(
        "the rotated refresh token was stored before the new access token was handed out: {}",
        store.load()?.is_some_and(|s| s.access_token.ct_eq(&after))
    ));
    let response = api.send(api.get(kit.api_url())).await?;
    say(format!("GET /api/patients -> {}", response.status()));

    step("5.", "Revoke");
    session.revoke().await?;
    say(format!("store cleared: {}", store.load()?.is_none()));
    match session.access_token().await {
        Err(e) if e.is_login_required() => say(format!("the session now says: {e}")),
        other => return Err(format!("expected a login to be required, got {other:?}").into()),
    }
    Ok(())
}

fn blocking_demo() -> Result<(), Box<dyn std::error::Error>> {
    use nethealth_oidc::blocking::{HttpClient, Provider};
    println!("\n=== The blocking client (ureq, no async runtime) ===");
    let kit = TestKit::builder().start_blocking()?;
    let clock = start_site(&kit);
    let provider = Provider::discover_with_clock(
        HttpClient::new(TransportConfig::default()),
        kit.issuer(),
        clock.clone(),
    )?;

    step("1.", "Register the application at /api/Clients/Register");
    let registered =
        provider.register_net_health(&NetHealthRegistration::default(), &metadata()?, None)?;
    say(format!("client id: {}", registered.client_id));
    let client = provider.client(registered.to_client_config(), ClientOptions::default())?;

    step("2.", "Log in and consent");
    let (auth_url, pending) = client.start_login(&Scopes::parse(SCOPES))?;
    say("alice logs in and unticks patients.write on the consent page");
    let callback = Browser::new().login(
        auth_url.as_str(),
        &Consent::grant(["offline_access", "patients.read"]),
    )?;
    let grant = client.finish_login(&pending, &callback.parse()?)?;
    say(format!(
        "granted: {} | refused: {}",
        grant.granted.granted(),
        grant.refused()
    ));
    let session = client.session(grant, SessionOptions::default())?;

    step("3.", "Send the token to the API");
    let api = session.authorized(ureq::Agent::new_with_defaults());
    let get = || http::Request::get(kit.api_url()).body(Vec::new());
    say(format!(
        "GET /api/patients -> {}",
        api.send(get()?)?.status()
    ));
    let post = http::Request::post(kit.api_url())
        .header("content-type", "application/json")
        .body(b"{}".to_vec())?;
    say(format!(
        "POST /api/patients (patients.write refused) -> {}",
        api.send(post)?.status()
    ));

    step("4.", "Let the token expire, then refresh it");
    let before = session.access_token()?;
    kit.advance_clock(Duration::from_secs(3600));
    clock.advance(Duration::from_secs(3600));
    let after = session.access_token()?;
    say(format!("refreshed: {}", !after.ct_eq(&before)));
    say(format!(
        "GET /api/patients -> {}",
        api.send(get()?)?.status()
    ));

    step("5.", "Revoke");
    session.revoke()?;
    match session.access_token() {
        Err(e) if e.is_login_required() => say(format!("the session now says: {e}")),
        other => return Err(format!("expected a login to be required, got {other:?}").into()),
    }
    Ok(())
}
