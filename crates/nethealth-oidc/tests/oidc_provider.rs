//! Both transports against an independent, certified OpenID Provider: the npm package `oidc-provider`, which
//! `.ci/run` installs and starts on loopback (`peers/oidc-provider/start.sh`) and names in `NETHEALTH_TEST_ISSUER`.
//!
//! Without that variable the tests say so and pass, except under CI (`CI` set), where a missing peer is a failure.

#![allow(clippy::print_stderr)]

#[path = "../../../peers/oidc-provider/browser.rs"]
mod browser;
mod support;

use std::sync::Arc;
use std::time::Duration;

use browser::Consent;
use nethealth_oidc::core::ScopeSource;
use nethealth_oidc::core::revocation::TokenRef;
use nethealth_oidc::{
    ClientMetadata, ClientOptions, Error, ManualClock, MemoryStore, Prompt, Scopes, SessionOptions,
    TokenAuthMethod, TokenStore, UnixTime,
};
use support::{ALL, REDIRECT, url};

fn issuer() -> Option<String> {
    match std::env::var("NETHEALTH_TEST_ISSUER") {
        Ok(issuer) if !issuer.is_empty() => Some(issuer),
        _ if std::env::var_os("CI").is_some() => {
            panic!("NETHEALTH_TEST_ISSUER is not set: .ci/run must start peers/oidc-provider")
        }
        _ => {
            eprintln!(
                "skipped: start peers/oidc-provider/start.sh and set NETHEALTH_TEST_ISSUER to run this test"
            );
            None
        }
    }
}

fn clock() -> Arc<ManualClock> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Arc::new(ManualClock::new(UnixTime::from_secs(now)))
}

fn metadata(method: TokenAuthMethod) -> ClientMetadata {
    ClientMetadata::new("nethealth-oidc test", vec![url(REDIRECT)])
        .with_scope(ALL)
        .with_auth_method(method)
}

fn user() -> String {
    format!("user-{}", rand_suffix())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

mod asynchronous {
    use super::*;
    use nethealth_oidc::{Client, HttpClient, Provider, TransportConfig};

    async fn client(issuer: &str, method: TokenAuthMethod, clock: Arc<ManualClock>) -> Client {
        let http = HttpClient::new(TransportConfig::default()).unwrap();
        let provider = Provider::discover_with_clock(http, issuer, clock)
            .await
            .unwrap();
        assert!(
            provider.metadata().requires_iss_parameter(),
            "oidc-provider advertises RFC 9207"
        );
        let registered = provider.register(&metadata(method), None).await.unwrap();
        provider
            .client(registered.to_client_config(), ClientOptions::default())
            .unwrap()
    }

    async fn login(client: &Client, consent: Consent) -> Result<nethealth_oidc::Grant, Error> {
        // oidc-provider issues a refresh token only with prompt=consent.
        let request = client
            .login_request(&Scopes::parse(ALL))?
            .prompt(Prompt::Consent);
        let (auth_url, pending) = client.begin_login_with(request);
        let user = user();
        let callback =
            tokio::task::spawn_blocking(move || browser::login(&auth_url, &user, consent))
                .await
                .unwrap()
                .expect("the interaction works");
        assert!(
            callback.query_pairs().any(|(k, _)| k == "iss"),
            "the iss parameter came back"
        );
        client.finish_login(&pending, &callback).await
    }

    #[tokio::test]
    async fn full_flow_with_basic_auth_refresh_rotation_and_revocation() {
        let Some(issuer) = issuer() else { return };
        let clock = clock();
        let client = client(&issuer, TokenAuthMethod::ClientSecretBasic, clock.clone()).await;
        let grant = login(&client, Consent::All).await.unwrap();
        assert!(!grant.is_partial());
        assert_eq!(grant.granted.source(), ScopeSource::TokenResponse);
        assert!(grant.response.refresh_token.is_some());

        let store = Arc::new(MemoryStore::new());
        let session = client
            .session(grant, SessionOptions::default().with_store(store.clone()))
            .await
            .unwrap();
        let me = session.userinfo().await.unwrap();
        assert!(!me.sub.is_empty());
        let api = session.authorized(reqwest::Client::new());
        let resource = format!("{issuer}/__test/resource?scope=patients.read");
        assert_eq!(api.send(api.get(&resource)).await.unwrap().status(), 200);

        // Expiry and refresh with rotation.
        let first = session.access_token().await.unwrap();
        let rt_before = store.load().unwrap().unwrap().refresh_token.unwrap();
        clock.advance(Duration::from_secs(61));
        let second = session.access_token().await.unwrap();
        assert!(!second.ct_eq(&first));
        let rt_after = store.load().unwrap().unwrap().refresh_token.unwrap();
        assert!(!rt_after.ct_eq(&rt_before), "rotated, and stored");
        assert_eq!(api.send(api.get(&resource)).await.unwrap().status(), 200);

        // Revoked at the provider: the next refresh means "log in again".
        client.revoke(TokenRef::Refresh(&rt_after)).await.unwrap();
        clock.advance(Duration::from_secs(61));
        let err = session.access_token().await.unwrap_err();
        assert!(err.is_login_required(), "{err:?}");
    }

    #[tokio::test]
    async fn partial_consent_with_client_secret_post() {
        let Some(issuer) = issuer() else { return };
        let client = client(&issuer, TokenAuthMethod::ClientSecretPost, clock()).await;
        let grant = login(
            &client,
            Consent::only(["openid", "offline_access", "patients.read"]),
        )
        .await
        .unwrap();
        assert!(grant.is_partial());
        assert_eq!(grant.refused(), Scopes::parse("patients.write"));
        let session = client
            .session(grant, SessionOptions::default())
            .await
            .unwrap();
        assert!(session.allows("patients.read") && !session.allows("patients.write"));
        let api = session.authorized(reqwest::Client::new());
        let write = format!("{issuer}/__test/resource?scope=patients.write");
        assert_eq!(api.send(api.get(&write)).await.unwrap().status(), 403);
    }

    #[tokio::test]
    async fn consent_denied_and_public_clients() {
        let Some(issuer) = issuer() else { return };
        let client = client(&issuer, TokenAuthMethod::None, clock()).await;
        let err = login(&client, Consent::Deny).await.unwrap_err();
        assert!(err.is_consent_denied(), "{err:?}");
        let grant = login(&client, Consent::All).await.unwrap();
        assert!(grant.id_claims.is_some());
    }

    #[tokio::test]
    async fn client_credentials() {
        let Some(issuer) = issuer() else { return };
        let http = HttpClient::new(TransportConfig::default()).unwrap();
        let provider = Provider::discover(http, &issuer).await.unwrap();
        let mut metadata = ClientMetadata::new("m2m", Vec::new())
            .with_scope("patients.read")
            .with_grant_types(["client_credentials"]);
        metadata.response_types = Vec::new();
        metadata
            .extra
            .insert("response_types".into(), serde_json::json!([]));
        let registered = provider.register(&metadata, None).await.unwrap();
        let client = provider
            .client(registered.to_client_config(), ClientOptions::default())
            .unwrap();
        let session = client
            .client_credentials_session(&Scopes::parse("patients.read"), SessionOptions::default())
            .await
            .unwrap();
        let api = session.authorized(reqwest::Client::new());
        let resource = format!("{issuer}/__test/resource?scope=patients.read");
        assert_eq!(api.send(api.get(&resource)).await.unwrap().status(), 200);
    }
}

mod blocking {
    use super::*;
    use nethealth_oidc::TransportConfig;
    use nethealth_oidc::blocking::{Client, HttpClient, Provider};

    fn client(issuer: &str, method: TokenAuthMethod, clock: Arc<ManualClock>) -> Client {
        let provider = Provider::discover_with_clock(
            HttpClient::new(TransportConfig::default()),
            issuer,
            clock,
        )
        .unwrap();
        let registered = provider.register(&metadata(method), None).unwrap();
        provider
            .client(registered.to_client_config(), ClientOptions::default())
            .unwrap()
    }

    fn login(client: &Client, consent: Consent) -> Result<nethealth_oidc::Grant, Error> {
        let request = client
            .login_request(&Scopes::parse(ALL))?
            .prompt(Prompt::Consent);
        let (auth_url, pending) = client.begin_login_with(request);
        let callback = browser::login(&auth_url, &user(), consent).expect("the interaction works");
        client.finish_login(&pending, &callback)
    }

    fn get(url: &str) -> http::Request<Vec<u8>> {
        http::Request::get(url).body(Vec::new()).unwrap()
    }

    #[test]
    fn full_flow_with_basic_auth_refresh_rotation_and_revocation() {
        let Some(issuer) = issuer() else { return };
        let clock = clock();
        let client = client(&issuer, TokenAuthMethod::ClientSecretBasic, clock.clone());
        let grant = login(&client, Consent::All).unwrap();
        let store = Arc::new(MemoryStore::new());
        let session = client
            .session(grant, SessionOptions::default().with_store(store.clone()))
            .unwrap();
        assert!(!session.userinfo().unwrap().sub.is_empty());
        let api = session.authorized(ureq::Agent::new_with_defaults());
        let resource = format!("{issuer}/__test/resource?scope=patients.read");
        assert_eq!(api.send(get(&resource)).unwrap().status(), 200);
        let first = session.access_token().unwrap();
        let rt_before = store.load().unwrap().unwrap().refresh_token.unwrap();
        clock.advance(Duration::from_secs(61));
        let second = session.access_token().unwrap();
        assert!(!second.ct_eq(&first));
        let rt_after = store.load().unwrap().unwrap().refresh_token.unwrap();
        assert!(!rt_after.ct_eq(&rt_before));
        assert_eq!(api.send(get(&resource)).unwrap().status(), 200);
        client.revoke(TokenRef::Refresh(&rt_after)).unwrap();
        clock.advance(Duration::from_secs(61));
        assert!(session.access_token().unwrap_err().is_login_required());
    }

    #[test]
    fn partial_and_denied_consent_with_client_secret_post() {
        let Some(issuer) = issuer() else { return };
        let client = client(&issuer, TokenAuthMethod::ClientSecretPost, clock());
        let grant = login(
            &client,
            Consent::only(["openid", "offline_access", "patients.read"]),
        )
        .unwrap();
        assert_eq!(grant.refused(), Scopes::parse("patients.write"));
        assert!(
            login(&client, Consent::Deny)
                .unwrap_err()
                .is_consent_denied()
        );
    }

    #[test]
    fn public_client_with_pkce() {
        let Some(issuer) = issuer() else { return };
        let client = client(&issuer, TokenAuthMethod::None, clock());
        assert_eq!(client.context().auth_method(), TokenAuthMethod::None);
        login(&client, Consent::All).unwrap();
    }
}
