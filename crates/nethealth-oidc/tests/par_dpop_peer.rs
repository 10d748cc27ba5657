//! PAR (RFC 9126) and DPoP (RFC 9449) through both transports against the oidc-provider peer: the ordinary peer
//! (`NETHEALTH_TEST_ISSUER`: PAR and DPoP offered, not required) and the FAPI-style one
//! (`NETHEALTH_TEST_ISSUER_PAR`: `PAR_REQUIRED=1`, `DPOP_REQUIRE_NONCE=1`). `cargo xtask ci` and
//! `cargo xtask with-peers` start both.
//!
//! Without those variables, or with a peer that does not answer, every test here fails and says how to start it.

#[path = "../../../peers/oidc-provider/browser.rs"]
mod browser;
mod support;

use std::sync::Arc;
use std::time::Duration;

use browser::Consent;
use nethealth_oidc::core::authorize::AuthorizeRequestError;
use nethealth_oidc::{
    ClientMetadata, ClientOptions, Error, ManualClock, MemoryStore, Prompt, Scopes, SessionOptions,
    TokenAuthMethod, TokenStore, UnixTime,
};
use support::{ALL, REDIRECT, url};

const HOW_TO_START: &str = "run `cargo xtask with-peers cargo test -p nethealth-oidc --test par_dpop_peer` (or \
                            `cargo xtask ci`), which starts both peers";

/// The issuer in `var` once the peer's health route answered for it, with the settings it must run with.
fn issuer(var: &str, settings: &[(&str, bool)]) -> String {
    let issuer = match std::env::var(var) {
        Ok(issuer) if !issuer.is_empty() => issuer,
        _ => panic!("{var} is not set: {HOW_TO_START}"),
    };
    let config = ureq::get(&format!("{issuer}/__test/config"))
        .config()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .call()
        .map_err(|e| e.to_string())
        .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            panic!(
                "the oidc-provider peer at {issuer} ({var}) does not answer ({e}): {HOW_TO_START}"
            )
        });
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    for (name, want) in settings {
        assert_eq!(
            config[name].as_bool(),
            Some(*want),
            "the peer at {issuer} ({var}) must run with {name}={want}: {HOW_TO_START}"
        );
    }
    issuer
}

fn plain_peer() -> String {
    issuer(
        "NETHEALTH_TEST_ISSUER",
        &[("par_required", false), ("dpop_require_nonce", false)],
    )
}

fn fapi_peer() -> String {
    issuer(
        "NETHEALTH_TEST_ISSUER_PAR",
        &[("par_required", true), ("dpop_require_nonce", true)],
    )
}

fn clock() -> Arc<ManualClock> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Arc::new(ManualClock::new(UnixTime::from_secs(now)))
}

fn metadata() -> ClientMetadata {
    ClientMetadata::new("nethealth-oidc PAR/DPoP test", vec![url(REDIRECT)])
        .with_scope(ALL)
        .with_auth_method(TokenAuthMethod::ClientSecretBasic)
}

fn user() -> String {
    format!(
        "user-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// Checks that the browser's URL carries only `client_id` and `request_uri`.
fn assert_pushed(auth_url: &nethealth_oidc::AuthorizationUrl) {
    let mut keys: Vec<String> = auth_url
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["client_id", "request_uri"], "{}", auth_url.as_str());
}

fn assert_must_push(err: Error) {
    assert!(
        matches!(
            err,
            Error::AuthorizeRequest(AuthorizeRequestError::MustPush)
        ),
        "{err:?}"
    );
}

mod asynchronous {
    use super::*;
    use nethealth_oidc::{Client, HttpClient, Provider, TransportConfig};

    async fn client(issuer: &str, options: ClientOptions, clock: Arc<ManualClock>) -> Client {
        let http = HttpClient::new(TransportConfig::default()).unwrap();
        let provider = Provider::discover_with_clock(http, issuer, clock)
            .await
            .unwrap();
        let registered = provider.register(&metadata(), None).await.unwrap();
        provider
            .client(registered.to_client_config(), options)
            .unwrap()
    }

    async fn login(client: &Client) -> Result<nethealth_oidc::Grant, Error> {
        let request = client
            .login_request(&Scopes::parse(ALL))?
            .prompt(Prompt::Consent);
        let (auth_url, pending) = client.start_login_with(request).await?;
        assert_pushed(&auth_url);
        let callback =
            tokio::task::spawn_blocking(move || browser::login(&auth_url, &user(), Consent::All))
                .await
                .unwrap()
                .expect("the interaction works");
        client.finish_login(&pending, &callback).await
    }

    #[tokio::test]
    async fn an_opted_in_login_goes_through_par() {
        let issuer = plain_peer();
        let client = client(&issuer, ClientOptions::default().with_par(true), clock()).await;
        assert!(
            !client
                .provider()
                .metadata()
                .require_pushed_authorization_requests
        );
        assert_must_push(client.begin_login(&Scopes::parse(ALL)).unwrap_err());
        let grant = login(&client).await.unwrap();
        assert_eq!(grant.response.token_type, "bearer");
        assert!(grant.id_claims.is_some());
    }

    #[tokio::test]
    async fn required_par_and_dpop_with_a_nonce_login_call_and_refresh() {
        let issuer = fapi_peer();
        let client = client(&issuer, ClientOptions::default().with_dpop(true), clock()).await;
        let metadata = client.provider().metadata().clone();
        assert!(metadata.require_pushed_authorization_requests);
        // A login without PAR is never attempted.
        assert_must_push(client.begin_login(&Scopes::parse(ALL)).unwrap_err());

        let grant = login(&client).await.unwrap();
        assert_eq!(grant.response.token_type, "dpop");
        let jkt = grant.dpop_key.as_ref().unwrap().thumbprint().to_owned();
        let store = Arc::new(MemoryStore::new());
        let session = client
            .session(grant, SessionOptions::default().with_store(store.clone()))
            .await
            .unwrap();
        let serialized = serde_json::to_value(store.load().unwrap().unwrap()).unwrap();
        assert!(
            serialized.get("dpop_key").is_none(),
            "the key is serialized only when asked: {:?}",
            serialized.as_object().map(|o| o.keys().collect::<Vec<_>>())
        );

        // A resource call: the peer's userinfo endpoint takes DPoP tokens (and DPoP nonces).
        let userinfo = metadata.userinfo_endpoint.clone().unwrap();
        let api = session.authorized(reqwest::Client::new());
        let answer = api.send(api.get(userinfo.as_str())).await.unwrap();
        assert_eq!(answer.status(), 200, "{:?}", answer.headers());
        // Session::userinfo sends the token the DPoP way too.
        assert!(!session.userinfo().await.unwrap().sub.is_empty());

        // A refresh, with a proof from the same key.
        let first = session.access_token().await.unwrap();
        session.token_rejected(&first);
        let second = session.access_token().await.unwrap();
        assert!(!second.ct_eq(&first), "refreshed");
        let set = session.token_set();
        assert_eq!(set.token_type, "dpop");
        assert_eq!(set.dpop_key.as_ref().unwrap().thumbprint(), jkt);
        let answer = api.send(api.get(userinfo.as_str())).await;
        assert_eq!(answer.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn a_stored_dpop_key_comes_back_with_the_set() {
        let issuer = plain_peer();
        let options = ClientOptions::default()
            .with_dpop(true)
            .with_dpop_key_stored(true);
        let client = client(&issuer, options, clock()).await;
        let grant = login_plain(&client).await;
        let jkt = grant.dpop_key.as_ref().unwrap().thumbprint().to_owned();
        let store = Arc::new(MemoryStore::new());
        let _session = client
            .session(grant, SessionOptions::default().with_store(store.clone()))
            .await
            .unwrap();
        let stored = store.load().unwrap().unwrap();
        assert_eq!(stored.dpop_key.as_ref().unwrap().thumbprint(), jkt);
        let resumed = client
            .resume(SessionOptions::default().with_store(store))
            .await
            .unwrap()
            .unwrap();
        let api = resumed.authorized(reqwest::Client::new());
        let userinfo = client
            .provider()
            .metadata()
            .userinfo_endpoint
            .clone()
            .unwrap();
        assert_eq!(
            api.send(api.get(userinfo.as_str())).await.unwrap().status(),
            200
        );
    }

    async fn login_plain(client: &Client) -> nethealth_oidc::Grant {
        let (auth_url, pending) = client.start_login(&Scopes::parse(ALL)).await.unwrap();
        let callback =
            tokio::task::spawn_blocking(move || browser::login(&auth_url, &user(), Consent::All))
                .await
                .unwrap()
                .expect("the interaction works");
        client.finish_login(&pending, &callback).await.unwrap()
    }
}

mod blocking {
    use super::*;
    use nethealth_oidc::TransportConfig;
    use nethealth_oidc::blocking::{Client, HttpClient, Provider};

    fn client(issuer: &str, options: ClientOptions, clock: Arc<ManualClock>) -> Client {
        let provider = Provider::discover_with_clock(
            HttpClient::new(TransportConfig::default()),
            issuer,
            clock,
        )
        .unwrap();
        let registered = provider.register(&metadata(), None).unwrap();
        provider
            .client(registered.to_client_config(), options)
            .unwrap()
    }

    fn login(client: &Client) -> Result<nethealth_oidc::Grant, Error> {
        let request = client
            .login_request(&Scopes::parse(ALL))?
            .prompt(Prompt::Consent);
        let (auth_url, pending) = client.start_login_with(request)?;
        assert_pushed(&auth_url);
        let callback =
            browser::login(&auth_url, &user(), Consent::All).expect("the interaction works");
        client.finish_login(&pending, &callback)
    }

    fn get(url: &nethealth_oidc::core::Url) -> http::Request<Vec<u8>> {
        http::Request::get(url.as_str()).body(Vec::new()).unwrap()
    }

    #[test]
    fn an_opted_in_login_goes_through_par() {
        let issuer = plain_peer();
        let client = client(&issuer, ClientOptions::default().with_par(true), clock());
        assert_must_push(client.begin_login(&Scopes::parse(ALL)).unwrap_err());
        let grant = login(&client).unwrap();
        assert_eq!(grant.response.token_type, "bearer");
    }

    #[test]
    fn required_par_and_dpop_with_a_nonce_login_call_and_refresh() {
        let issuer = fapi_peer();
        let client = client(&issuer, ClientOptions::default().with_dpop(true), clock());
        assert_must_push(client.begin_login(&Scopes::parse(ALL)).unwrap_err());
        let grant = login(&client).unwrap();
        assert_eq!(grant.response.token_type, "dpop");
        let jkt = grant.dpop_key.as_ref().unwrap().thumbprint().to_owned();
        let session = client.session(grant, SessionOptions::default()).unwrap();
        let userinfo = client
            .provider()
            .metadata()
            .userinfo_endpoint
            .clone()
            .unwrap();
        let api = session.authorized(ureq::Agent::new_with_defaults());
        assert_eq!(api.send(get(&userinfo)).unwrap().status(), 200);
        assert!(!session.userinfo().unwrap().sub.is_empty());
        let first = session.access_token().unwrap();
        session.token_rejected(&first);
        let second = session.access_token().unwrap();
        assert!(!second.ct_eq(&first), "refreshed");
        assert_eq!(
            session.token_set().dpop_key.as_ref().unwrap().thumbprint(),
            jkt
        );
        assert_eq!(api.send(get(&userinfo)).unwrap().status(), 200);
    }
}
