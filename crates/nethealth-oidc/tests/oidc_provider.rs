//! Both transports against an independent, certified OpenID Provider: the npm package `oidc-provider`, which
//! `cargo xtask ci` installs and starts on loopback (`peers/oidc-provider/start.sh`) and names in
//! `NETHEALTH_TEST_ISSUER`.
//!
//! Without that variable, or with a peer that does not answer, every test here fails and says how to start it.

#[path = "../../../peers/oidc-provider/browser.rs"]
mod browser;
mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use browser::Consent;
use nethealth_oidc::core::revocation::TokenRef;
use nethealth_oidc::core::secret::RegistrationAccessToken;
use nethealth_oidc::core::{ErrorCode, ScopeSource};
use nethealth_oidc::{
    ClientMetadata, ClientOptions, Error, ManualClock, MemoryStore, Prompt, RegisteredClient,
    Scopes, SessionOptions, TokenAuthMethod, TokenStore, UnixTime,
};
use support::{ALL, REDIRECT, url};

const HOW_TO_START: &str = "run `cargo xtask ci`, which starts it, or `peers/oidc-provider/start.sh` and set \
                            NETHEALTH_TEST_ISSUER to the issuer it prints";

/// The peer's issuer, from `NETHEALTH_TEST_ISSUER`, once its health route has answered. Panics, saying how to start
/// the peer, when the variable is unset or the peer does not answer.
fn issuer() -> String {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let issuer = match std::env::var("NETHEALTH_TEST_ISSUER") {
            Ok(issuer) if !issuer.is_empty() => issuer,
            _ => return Err(format!("NETHEALTH_TEST_ISSUER is not set: {HOW_TO_START}")),
        };
        let health = format!("{issuer}/__test/health");
        let answer = ureq::get(&health)
            .config()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call()
            .map_err(|e| e.to_string())
            .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()));
        let answered_issuer = |body: &str| {
            serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|health| health["issuer"].as_str().map(str::to_owned))
        };
        match answer {
            Ok(body) if answered_issuer(&body).as_deref() == Some(issuer.as_str()) => Ok(issuer),
            Ok(body) => Err(format!(
                "{health} answered, but not as the oidc-provider peer for {issuer} ({body}): {HOW_TO_START}"
            )),
            Err(e) => Err(format!(
                "the oidc-provider peer at {issuer} does not answer ({health}: {e}): {HOW_TO_START}"
            )),
        }
    });
    match checked {
        Ok(issuer) => issuer.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// The peer's settings in force (`GET /__test/config`).
fn peer_config(issuer: &str) -> serde_json::Value {
    let text = ureq::get(&format!("{issuer}/__test/config"))
        .call()
        .expect("the peer answers /__test/config")
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What the update test changes: another name and a second redirect URI.
fn updated_metadata() -> ClientMetadata {
    ClientMetadata::new(
        "nethealth-oidc test, renamed",
        vec![url(REDIRECT), url("http://127.0.0.1:8080/other-callback")],
    )
    .with_scope(ALL)
    .with_auth_method(TokenAuthMethod::ClientSecretBasic)
}

/// `client` with a registration access token the provider never issued.
fn with_wrong_token(client: &RegisteredClient) -> RegisteredClient {
    let mut wrong = client.clone();
    wrong.registration_access_token =
        Some(RegistrationAccessToken::new("not-the-registration-token"));
    wrong
}

fn oauth_code(err: &Error) -> Option<&ErrorCode> {
    err.oauth_error().map(|e| &e.code)
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
        let issuer = issuer();
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
        let issuer = issuer();
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
        let issuer = issuer();
        let client = client(&issuer, TokenAuthMethod::None, clock()).await;
        let err = login(&client, Consent::Deny).await.unwrap_err();
        assert!(err.is_consent_denied(), "{err:?}");
        let grant = login(&client, Consent::All).await.unwrap();
        assert!(grant.id_claims.is_some());
    }

    #[tokio::test]
    async fn offline_access_without_a_chosen_prompt_is_granted_in_full() {
        let issuer = issuer();
        assert_eq!(
            peer_config(&issuer)["offline_access_adds_consent_prompt"],
            false,
            "start the peer with OFFLINE_ACCESS_ADDS_CONSENT_PROMPT=0, or this test proves nothing"
        );
        let client = client(&issuer, TokenAuthMethod::ClientSecretBasic, clock()).await;
        let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
        assert!(
            auth_url
                .query_pairs()
                .any(|(k, v)| k == "prompt" && v == "consent")
        );
        let user = user();
        let callback =
            tokio::task::spawn_blocking(move || browser::login(&auth_url, &user, Consent::All))
                .await
                .unwrap()
                .expect("the interaction works");
        let grant = client.finish_login(&pending, &callback).await.unwrap();
        assert!(!grant.is_partial(), "refused: {}", grant.refused());
        assert!(grant.granted.allows("offline_access"));
        assert!(grant.response.refresh_token.is_some());
    }

    #[tokio::test]
    async fn registration_read_update_delete_and_introspection() {
        let issuer = issuer();
        let http = HttpClient::new(TransportConfig::default()).unwrap();
        let provider = Provider::discover(http, &issuer).await.unwrap();
        let registered = provider
            .register(&metadata(TokenAuthMethod::ClientSecretBasic), None)
            .await
            .unwrap();

        // Read returns what was registered.
        let read = provider.read_registration(&registered).await.unwrap();
        assert_eq!(read.client_id, registered.client_id);
        assert_eq!(
            read.metadata.client_name.as_deref(),
            Some("nethealth-oidc test")
        );
        assert_eq!(read.metadata.redirect_uris, vec![url(REDIRECT)]);

        // A wrong registration access token is the provider's invalid_token.
        let err = provider
            .read_registration(&with_wrong_token(&registered))
            .await
            .unwrap_err();
        assert_eq!(oauth_code(&err), Some(&ErrorCode::InvalidToken), "{err:?}");

        // Update changes the name and the redirect URIs; the provider rotates the registration access token.
        let updated = provider
            .update_registration(&registered, &updated_metadata())
            .await
            .unwrap();
        assert_eq!(
            updated.metadata.client_name.as_deref(),
            Some("nethealth-oidc test, renamed")
        );
        let read = provider.read_registration(&updated).await.unwrap();
        assert_eq!(
            read.metadata.redirect_uris,
            updated_metadata().redirect_uris
        );
        let err = provider.read_registration(&registered).await.unwrap_err();
        assert_eq!(
            oauth_code(&err),
            Some(&ErrorCode::InvalidToken),
            "the old token was rotated out"
        );

        // Introspection: active for a live token, inactive after revocation and for junk.
        let client = provider
            .client(updated.to_client_config(), ClientOptions::default())
            .unwrap();
        let grant = login(&client, Consent::All).await.unwrap();
        let access = &grant.response.access_token;
        let live = client.introspect(TokenRef::Access(access)).await.unwrap();
        assert!(live.active);
        assert_eq!(live.client_id.as_deref(), Some(updated.client_id.as_str()));
        assert!(live.scope.unwrap().contains("patients.read"));
        let junk = nethealth_oidc::AccessToken::new("junk-that-was-never-issued");
        assert!(
            !client
                .introspect(TokenRef::Access(&junk))
                .await
                .unwrap()
                .active
        );
        client.revoke(TokenRef::Access(access)).await.unwrap();
        assert!(
            !client
                .introspect(TokenRef::Access(access))
                .await
                .unwrap()
                .active
        );

        // Delete makes the client unusable, and its registration unreadable.
        provider.delete_registration(&updated).await.unwrap();
        let err = client
            .client_credentials(&Scopes::parse("patients.read"))
            .await
            .unwrap_err();
        assert_eq!(oauth_code(&err), Some(&ErrorCode::InvalidClient), "{err:?}");
        let err = provider.read_registration(&updated).await.unwrap_err();
        assert_eq!(oauth_code(&err), Some(&ErrorCode::InvalidToken), "{err:?}");
    }

    #[tokio::test]
    async fn client_credentials() {
        let issuer = issuer();
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
        let issuer = issuer();
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
        let issuer = issuer();
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
    fn offline_access_without_a_chosen_prompt_is_granted_in_full() {
        let issuer = issuer();
        assert_eq!(
            peer_config(&issuer)["offline_access_adds_consent_prompt"],
            false,
            "start the peer with OFFLINE_ACCESS_ADDS_CONSENT_PROMPT=0, or this test proves nothing"
        );
        let client = client(&issuer, TokenAuthMethod::ClientSecretPost, clock());
        let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
        let callback =
            browser::login(&auth_url, &user(), Consent::All).expect("the interaction works");
        let grant = client.finish_login(&pending, &callback).unwrap();
        assert!(!grant.is_partial(), "refused: {}", grant.refused());
        assert!(grant.response.refresh_token.is_some());
    }

    #[test]
    fn registration_read_update_delete_and_introspection() {
        let issuer = issuer();
        let provider =
            Provider::discover(HttpClient::new(TransportConfig::default()), &issuer).unwrap();
        let registered = provider
            .register(&metadata(TokenAuthMethod::ClientSecretBasic), None)
            .unwrap();

        let read = provider.read_registration(&registered).unwrap();
        assert_eq!(read.client_id, registered.client_id);
        assert_eq!(
            read.metadata.client_name.as_deref(),
            Some("nethealth-oidc test")
        );
        assert_eq!(read.metadata.redirect_uris, vec![url(REDIRECT)]);
        let err = provider
            .read_registration(&with_wrong_token(&registered))
            .unwrap_err();
        assert_eq!(oauth_code(&err), Some(&ErrorCode::InvalidToken), "{err:?}");

        let updated = provider
            .update_registration(&registered, &updated_metadata())
            .unwrap();
        let read = provider.read_registration(&updated).unwrap();
        assert_eq!(
            read.metadata.client_name.as_deref(),
            Some("nethealth-oidc test, renamed")
        );
        assert_eq!(
            read.metadata.redirect_uris,
            updated_metadata().redirect_uris
        );

        let client = provider
            .client(updated.to_client_config(), ClientOptions::default())
            .unwrap();
        let grant = login(&client, Consent::All).unwrap();
        let refresh = grant.response.refresh_token.as_ref().unwrap();
        let live = client.introspect(TokenRef::Refresh(refresh)).unwrap();
        assert!(live.active);
        // The peer's REFRESH_TOKEN_TTL is the refresh token's lifetime.
        let lifetime = live.exp.unwrap() - live.iat.unwrap();
        assert_eq!(
            Some(lifetime),
            peer_config(&issuer)["refresh_token_ttl"].as_u64()
        );
        let junk = nethealth_oidc::RefreshToken::new("junk-that-was-never-issued");
        assert!(!client.introspect(TokenRef::Refresh(&junk)).unwrap().active);
        client.revoke(TokenRef::Refresh(refresh)).unwrap();
        assert!(
            !client
                .introspect(TokenRef::Refresh(refresh))
                .unwrap()
                .active
        );

        provider.delete_registration(&updated).unwrap();
        let err = client
            .client_credentials(&Scopes::parse("patients.read"))
            .unwrap_err();
        assert_eq!(oauth_code(&err), Some(&ErrorCode::InvalidClient), "{err:?}");
    }

    #[test]
    fn public_client_with_pkce() {
        let issuer = issuer();
        let client = client(&issuer, TokenAuthMethod::None, clock());
        assert_eq!(client.context().auth_method(), TokenAuthMethod::None);
        login(&client, Consent::All).unwrap();
    }
}

/// `private_key_jwt` (RFC 7523) against the peer: clients registered with an RSA or an EC public key complete login,
/// refresh, introspection and revocation, and a client-credentials session renews itself.
mod private_key_jwt {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use nethealth_oidc::core::client_auth::ClientKey;
    use nethealth_oidc::core::jwks::SigningAlgorithm;

    fn keys() -> [ClientKey; 2] {
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        [
            ClientKey::from_pkcs8_der(rsa.as_der().unwrap().as_ref())
                .unwrap()
                .with_algorithm(SigningAlgorithm::RS384)
                .unwrap(),
            ClientKey::from_pkcs8_der(ec.to_pkcs8v1().unwrap().as_ref()).unwrap(),
        ]
    }

    fn login_metadata(key: &ClientKey) -> ClientMetadata {
        ClientMetadata::new("nethealth-oidc private_key_jwt test", vec![url(REDIRECT)])
            .with_scope(ALL)
            .with_signing_key(key)
    }

    fn machine_metadata(key: &ClientKey) -> ClientMetadata {
        let mut metadata = ClientMetadata::new("m2m private_key_jwt", Vec::new())
            .with_scope("patients.read")
            .with_grant_types(["client_credentials"])
            .with_signing_key(key);
        metadata.response_types = Vec::new();
        metadata
            .extra
            .insert("response_types".into(), serde_json::json!([]));
        metadata
    }

    /// A client clock 40 s behind the peer's, so that moving it 35 s ahead reaches the renewal point of a 60 s token
    /// while every assertion's `iat` stays in the peer's past.
    fn behind() -> Arc<ManualClock> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Arc::new(ManualClock::new(UnixTime::from_secs(
            now.saturating_sub(40),
        )))
    }

    mod asynchronous {
        use super::*;
        use nethealth_oidc::{HttpClient, Provider, TransportConfig};

        #[tokio::test]
        async fn rsa_and_ec_clients_log_in_refresh_introspect_and_revoke() {
            let issuer = issuer();
            let http = HttpClient::new(TransportConfig::default()).unwrap();
            let provider = Provider::discover(http, &issuer).await.unwrap();
            for key in keys() {
                let registered = provider
                    .register(&login_metadata(&key), None)
                    .await
                    .unwrap();
                let config = registered.to_client_config().with_signing_key(key.clone());
                let client = provider.client(config, ClientOptions::default()).unwrap();
                assert_eq!(
                    client.context().auth_method(),
                    TokenAuthMethod::PrivateKeyJwt
                );
                let request = client
                    .login_request(&Scopes::parse(ALL))
                    .unwrap()
                    .prompt(Prompt::Consent);
                let (auth_url, pending) = client.begin_login_with(request);
                let user = user();
                let callback = tokio::task::spawn_blocking(move || {
                    browser::login(&auth_url, &user, Consent::All)
                })
                .await
                .unwrap()
                .expect("the interaction works");
                let grant = client.finish_login(&pending, &callback).await.unwrap();
                let session = client
                    .session(grant, SessionOptions::default())
                    .await
                    .unwrap();
                let first = session.access_token().await.unwrap();
                // A resource server refused it: the session refreshes now, with a fresh assertion.
                session.token_rejected(&first);
                let second = session.access_token().await.unwrap();
                assert!(!second.ct_eq(&first), "{key:?}: refreshed");
                let info = client.introspect(TokenRef::Access(&second)).await.unwrap();
                assert!(
                    info.active,
                    "{key:?}: introspection authenticated the client"
                );
                client.revoke(TokenRef::Access(&second)).await.unwrap();
                let info = client.introspect(TokenRef::Access(&second)).await.unwrap();
                assert!(!info.active, "{key:?}: revoked");
            }
        }

        #[tokio::test]
        async fn a_client_credentials_session_renews_itself() {
            let issuer = issuer();
            let clock = behind();
            let http = HttpClient::new(TransportConfig::default()).unwrap();
            let provider = Provider::discover_with_clock(http, &issuer, clock.clone())
                .await
                .unwrap();
            let [key, _] = keys();
            let registered = provider
                .register(&machine_metadata(&key), None)
                .await
                .unwrap();
            let config = registered.to_client_config().with_signing_key(key);
            let client = provider.client(config, ClientOptions::default()).unwrap();
            let session = client
                .backend_services_session(
                    &Scopes::parse("patients.read"),
                    SessionOptions::default(),
                )
                .await
                .unwrap();
            let first = session.access_token().await.unwrap();
            clock.advance(Duration::from_secs(35));
            let second = session.access_token().await.unwrap();
            assert!(!second.ct_eq(&first), "renewed ahead of expiry");
            let api = session.authorized(reqwest::Client::new());
            let resource = format!("{issuer}/__test/resource?scope=patients.read");
            assert_eq!(api.send(api.get(&resource)).await.unwrap().status(), 200);
        }
    }

    mod blocking {
        use super::*;
        use nethealth_oidc::TransportConfig;
        use nethealth_oidc::blocking::{HttpClient, Provider};

        #[test]
        fn rsa_and_ec_clients_log_in_refresh_introspect_and_revoke() {
            let issuer = issuer();
            let provider =
                Provider::discover(HttpClient::new(TransportConfig::default()), &issuer).unwrap();
            for key in keys() {
                let registered = provider.register(&login_metadata(&key), None).unwrap();
                let config = registered.to_client_config().with_signing_key(key.clone());
                let client = provider.client(config, ClientOptions::default()).unwrap();
                let request = client
                    .login_request(&Scopes::parse(ALL))
                    .unwrap()
                    .prompt(Prompt::Consent);
                let (auth_url, pending) = client.begin_login_with(request);
                let callback = browser::login(&auth_url, &user(), Consent::All)
                    .expect("the interaction works");
                let grant = client.finish_login(&pending, &callback).unwrap();
                let session = client.session(grant, SessionOptions::default()).unwrap();
                let first = session.access_token().unwrap();
                session.token_rejected(&first);
                let second = session.access_token().unwrap();
                assert!(!second.ct_eq(&first), "{key:?}: refreshed");
                assert!(client.introspect(TokenRef::Access(&second)).unwrap().active);
                client.revoke(TokenRef::Access(&second)).unwrap();
                assert!(!client.introspect(TokenRef::Access(&second)).unwrap().active);
            }
        }

        #[test]
        fn a_client_credentials_session_renews_itself() {
            let issuer = issuer();
            let clock = behind();
            let provider = Provider::discover_with_clock(
                HttpClient::new(TransportConfig::default()),
                &issuer,
                clock.clone(),
            )
            .unwrap();
            let [_, key] = keys();
            let registered = provider.register(&machine_metadata(&key), None).unwrap();
            let config = registered.to_client_config().with_signing_key(key);
            let client = provider.client(config, ClientOptions::default()).unwrap();
            let session = client
                .backend_services_session(
                    &Scopes::parse("patients.read"),
                    SessionOptions::default(),
                )
                .unwrap();
            let first = session.access_token().unwrap();
            clock.advance(Duration::from_secs(35));
            let second = session.access_token().unwrap();
            assert!(!second.ct_eq(&first), "renewed ahead of expiry");
        }
    }
}
