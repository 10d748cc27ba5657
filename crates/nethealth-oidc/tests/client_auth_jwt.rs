//! `private_key_jwt` and `client_secret_jwt` (RFC 7523) through both transports against the local Accounts site:
//! login, refresh, introspection, revocation, a self-renewing client-credentials session, and the bad paths (a key
//! the site does not know, a replayed `jti`, an algorithm the site does not accept).

mod support;

use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm,
};
use nethealth_oidc::core::ErrorCode;
use nethealth_oidc::core::client_auth::{ClientKey, RequestStamp};
use nethealth_oidc::core::jwks::SigningAlgorithm;
use nethealth_oidc::core::revocation::TokenRef;
use nethealth_oidc::core::token::{self, TokenRequestError};
use nethealth_oidc::core::{Endpoint as CoreEndpoint, ResponseError};
use nethealth_oidc::{
    ClientConfig, ClientMetadata, ClientOptions, ClientSecret, Error, Scopes, SessionOptions,
    TokenAuthMethod, TransportConfig,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, Fault, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

const SYSTEM_SCOPES: &str = "system/*.rs";

fn rsa_key() -> ClientKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    ClientKey::from_pkcs8_der(pair.as_der().unwrap().as_ref()).unwrap()
}

fn ec_key(alg: &'static EcdsaSigningAlgorithm) -> ClientKey {
    let pkcs8 = EcdsaKeyPair::generate(alg).unwrap().to_pkcs8v1().unwrap();
    ClientKey::from_pkcs8_der(pkcs8.as_ref()).unwrap()
}

/// A site client that authenticates with `key`, allowed logins and client credentials.
fn spec(id: &str, key: &ClientKey) -> ClientSpec {
    ClientSpec::private_key_jwt(id, key.public_jwks())
        .redirect_uri(REDIRECT)
        .allow_client_credentials(true)
        .allowed_scopes(ALL.split(' ').chain([SYSTEM_SCOPES]))
}

fn config(id: &str, key: ClientKey) -> ClientConfig {
    ClientConfig::new(id, None)
        .with_redirect_uris(vec![url(REDIRECT)])
        .with_signing_key(key)
}

fn is_invalid_client(err: &Error) -> bool {
    matches!(
        err,
        Error::Response(ResponseError::OAuth { error, .. }) if error.code == ErrorCode::InvalidClient
    )
}

mod async_api {
    use super::*;
    use nethealth_oidc::{HttpClient, Provider};

    fn http() -> HttpClient {
        HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(5))).unwrap()
    }

    async fn kit(specs: Vec<ClientSpec>) -> TestKit {
        specs
            .into_iter()
            .fold(TestKit::builder(), |b, s| b.client(s))
            .start()
            .await
            .expect("the kit starts")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rsa_and_ec_keys_log_in_refresh_introspect_and_revoke() {
        let keys = [
            ("rsa-app", rsa_key(), SigningAlgorithm::RS256),
            (
                "ec-app",
                ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING),
                SigningAlgorithm::ES256,
            ),
        ];
        let kit = kit(keys.iter().map(|(id, k, _)| spec(id, k)).collect()).await;
        let clock = clock_for(&kit);
        let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
            .await
            .unwrap();
        for (id, key, alg) in keys {
            let client = provider
                .client(config(id, key), ClientOptions::default())
                .unwrap();
            assert_eq!(
                client.context().auth_method(),
                TokenAuthMethod::PrivateKeyJwt
            );
            assert_eq!(client.context().client_auth().algorithm(), Some(alg));

            let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
            let callback = Browser::new()
                .login_async(auth_url.as_str(), &Consent::GrantAll)
                .await
                .unwrap();
            let grant = client
                .finish_login(&pending, &url(&callback))
                .await
                .unwrap();
            let session = client
                .session(grant, SessionOptions::default())
                .await
                .unwrap();
            let first = session.access_token().await.unwrap();
            let before = kit.requests(Endpoint::Token);
            advance(&kit, &clock, Duration::from_secs(3600));
            let second = session.access_token().await.unwrap();
            assert!(!second.ct_eq(&first), "{id}: the refresh gave a new token");
            assert_eq!(
                kit.requests(Endpoint::Token),
                before + 1,
                "{id}: one refresh"
            );

            let active = client.introspect(TokenRef::Access(&second)).await.unwrap();
            assert!(
                active.active,
                "{id}: introspection authenticated the client"
            );
            client.revoke(TokenRef::Access(&second)).await.unwrap();
            let after = client.introspect(TokenRef::Access(&second)).await.unwrap();
            assert!(!after.active, "{id}: the revoked token is inactive");
            // And the refresh token, which ends the session.
            session.revoke().await.unwrap();
            assert!(session.access_token().await.is_err(), "{id}: logged out");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_credentials_session_renews_itself_ahead_of_expiry() {
        let key = ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING);
        let kit = kit(vec![spec("backend", &key)]).await;
        let clock = clock_for(&kit);
        let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
            .await
            .unwrap();
        let client = provider
            .client(config("backend", key), ClientOptions::default())
            .unwrap();
        let session = client
            .client_credentials_session(&Scopes::parse(SYSTEM_SCOPES), SessionOptions::default())
            .await
            .unwrap();
        assert!(session.allows(SYSTEM_SCOPES));
        assert!(session.token_set().refresh_token.is_none());
        let first = session.access_token().await.unwrap();
        for round in 0..3 {
            let before = kit.requests(Endpoint::Token);
            // Just inside the renewal margin, before expiry: a new token is asked for, each with a fresh assertion.
            advance(&kit, &clock, Duration::from_secs(3590));
            let next = session.access_token().await.unwrap();
            assert!(!next.ct_eq(&first), "round {round}: renewed");
            assert_eq!(kit.requests(Endpoint::Token), before + 1, "round {round}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smart_backend_services_in_one_call_and_the_launch_context_of_a_login() {
        let key = rsa_key().with_algorithm(SigningAlgorithm::RS384).unwrap();
        let kit = kit(vec![spec("backend", &key)]).await;
        let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
        let smart = provider
            .smart_configuration(&url(kit.issuer()))
            .await
            .unwrap();
        assert!(smart.supports_backend_services(), "{smart:?}");
        assert!(smart.has_capability("client-confidential-asymmetric"));
        assert!(
            smart
                .token_endpoint_auth_signing_alg_values_supported
                .contains(&"RS384".to_owned())
        );

        let client = provider
            .client(config("backend", key), ClientOptions::default())
            .unwrap();
        let session = client
            .backend_services_session(&Scopes::parse(SYSTEM_SCOPES), SessionOptions::default())
            .await
            .unwrap();
        assert!(session.allows(SYSTEM_SCOPES));

        // A client with a secret is not a backend service: refused before anything is sent.
        let before = kit.requests(Endpoint::Token);
        let secret_client = provider
            .client(
                ClientConfig::new("backend", Some(ClientSecret::new("s"))),
                ClientOptions::default(),
            )
            .unwrap();
        let err = secret_client
            .backend_services_session(&Scopes::parse(SYSTEM_SCOPES), SessionOptions::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("with_signing_key"), "{err}");
        assert_eq!(kit.requests(Endpoint::Token), before);

        // A user login's launch context is typed, and survives a refresh.
        let clock = clock_for(&kit);
        let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
            .await
            .unwrap();
        let client = provider
            .client(
                config(
                    "backend",
                    client.context().config().signing_key.clone().unwrap(),
                ),
                ClientOptions::default(),
            )
            .unwrap();
        let fields = serde_json::json!({"patient": "pat-1", "encounter": "enc-1", "need_patient_banner": true,
                                        "smart_style_url": "http://127.0.0.1/style.json", "intent": "summary"});
        kit.set_launch_context(fields.as_object().unwrap().clone());
        let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
        let callback = Browser::new()
            .login_async(auth_url.as_str(), &Consent::GrantAll)
            .await
            .unwrap();
        let grant = client
            .finish_login(&pending, &url(&callback))
            .await
            .unwrap();
        let context = grant.launch_context();
        assert_eq!(context.patient.as_deref(), Some("pat-1"));
        assert_eq!(context.encounter.as_deref(), Some("enc-1"));
        assert_eq!(context.need_patient_banner, Some(true));
        assert_eq!(context.intent.as_deref(), Some("summary"));
        let session = client
            .session(grant, SessionOptions::default())
            .await
            .unwrap();
        advance(&kit, &clock, Duration::from_secs(3600));
        session.access_token().await.unwrap();
        assert_eq!(
            session.token_set().launch_context(),
            context,
            "kept across the refresh"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_secret_jwt_authenticates_with_hs256() {
        let secret = "a-long-enough-client-secret-for-hs256";
        let kit = kit(vec![
            ClientSpec::confidential("hmac-app", secret)
                .allow_client_credentials(true)
                .allowed_scopes([SYSTEM_SCOPES]),
        ])
        .await;
        let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
        let config = ClientConfig::new("hmac-app", Some(ClientSecret::new(secret)))
            .with_auth_method(TokenAuthMethod::ClientSecretJwt);
        let client = provider.client(config, ClientOptions::default()).unwrap();
        let grant = client
            .client_credentials(&Scopes::parse(SYSTEM_SCOPES))
            .await
            .unwrap();
        assert!(grant.granted.granted().contains(SYSTEM_SCOPES));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_registered_with_its_signing_key_gets_a_client_credentials_token() {
        let kit = TestKit::builder()
            .dynamic_registration(true)
            .start()
            .await
            .unwrap();
        let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
        let key = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let metadata = ClientMetadata::new("backend", vec![url(REDIRECT)])
            .with_grant_types(["client_credentials"])
            .with_scope("patients.read");

        // private_key_jwt without a key to check assertions with: refused, naming what is missing.
        let without_key = metadata
            .clone()
            .with_auth_method(TokenAuthMethod::PrivateKeyJwt);
        let err = provider.register(&without_key, None).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("needs the client's public keys as jwks"),
            "{err}"
        );

        let registered = provider
            .register(&metadata.with_signing_key(&key), None)
            .await
            .unwrap();
        assert!(
            registered.client_secret.is_none(),
            "no secret for private_key_jwt"
        );
        let (client_id, kid) = (registered.client_id.clone(), key.kid().to_owned());
        let client = provider
            .client(
                registered.to_client_config().with_signing_key(key),
                ClientOptions::default(),
            )
            .unwrap();
        assert_eq!(
            client.context().auth_method(),
            TokenAuthMethod::PrivateKeyJwt
        );
        let grant = client
            .client_credentials(&Scopes::parse("patients.read"))
            .await
            .unwrap();
        assert!(grant.granted.granted().contains("patients.read"));

        // The site checks the assertion against the registered key: another key with the same kid is refused.
        let impostor = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING).with_kid(&kid);
        let impostor = provider
            .client(
                ClientConfig::new(client_id, None).with_signing_key(impostor),
                ClientOptions::default(),
            )
            .unwrap();
        let err = impostor
            .client_credentials(&Scopes::parse("patients.read"))
            .await
            .unwrap_err();
        assert!(is_invalid_client(&err), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_assertion_signed_with_another_key_is_invalid_client_with_a_hint() {
        let registered = rsa_key();
        let kit = kit(vec![spec("app", &registered)]).await;
        let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
        // Same kid, other key: the signature does not verify.
        let other = rsa_key().with_kid(registered.kid());
        let client = provider
            .client(config("app", other), ClientOptions::default())
            .unwrap();
        let err = client
            .client_credentials(&Scopes::parse(SYSTEM_SCOPES))
            .await
            .unwrap_err();
        assert!(is_invalid_client(&err), "{err:?}");
        assert!(err.to_string().contains("registered in its jwks"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replayed_jti_is_refused() {
        let key = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let kit = kit(vec![spec("app", &key)]).await;
        let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
        let client = provider
            .client(config("app", key), ClientOptions::default())
            .unwrap();
        let scopes = Scopes::parse(SYSTEM_SCOPES);
        let stamp = RequestStamp::new_inner(nethealth_oidc::UnixTime::from_secs(kit.now()), "once");
        let send = |stamp: &RequestStamp| {
            let request = client
                .context()
                .client_credentials_request(Some(&scopes), stamp)
                .unwrap();
            let http = provider.http().clone();
            async move {
                let response = http
                    .send(
                        CoreEndpoint::Token,
                        nethealth_oidc::core::retry::RequestKind::OneShot,
                        request,
                    )
                    .await
                    .unwrap();
                token::parse_token_response(&response)
            }
        };
        send(&stamp).await.expect("the first use is accepted");
        let err = Error::from(send(&stamp).await.unwrap_err());
        assert!(is_invalid_client(&err), "{err:?}");
        assert!(err.to_string().contains("replay"), "{err}");
        // The public API draws a fresh stamp for every request, so it never replays.
        client.client_credentials(&scopes).await.unwrap();
        client.client_credentials(&scopes).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_algorithm_the_site_does_not_accept_names_the_accepted_ones() {
        let key = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let kit = TestKit::builder()
            .client(spec("app", &key))
            .assertion_algorithms(["RS384", "ES384"])
            .start()
            .await
            .unwrap();
        let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
        let err = provider
            .client(config("app", key), ClientOptions::default())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TokenRequest(TokenRequestError::NoSupportedSigningAlgorithm { .. })
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("[RS384, ES384]") && msg.contains("[ES256]"),
            "{msg}"
        );
        assert_eq!(kit.requests(Endpoint::Token), 0, "nothing was sent");
    }
    /// An introspection whose answer is lost after the site processed it is not resent with the same assertion
    /// (the site would refuse its `jti` as a replay and the caller would read `invalid_client`); the next call
    /// draws a new assertion and succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_answer_is_not_retried_with_a_spent_assertion() {
        let key = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let kit = kit(vec![spec("backend", &key)]).await;
        let provider = Provider::discover(http(), kit.issuer()).await.unwrap();
        let client = provider
            .client(config("backend", key), ClientOptions::default())
            .unwrap();
        let session = client
            .client_credentials_session(&Scopes::parse(SYSTEM_SCOPES), SessionOptions::default())
            .await
            .unwrap();
        let token = session.access_token().await.unwrap();
        kit.fail_next(Endpoint::Introspection, 1, Fault::Truncated);
        let err = client
            .introspect(TokenRef::Access(&token))
            .await
            .unwrap_err();
        assert!(
            !is_invalid_client(&err),
            "a replay, not the lost answer: {err:?}"
        );
        assert_eq!(kit.requests(Endpoint::Introspection), 1, "not resent");
        assert!(
            client
                .introspect(TokenRef::Access(&token))
                .await
                .unwrap()
                .active
        );
    }
}

mod blocking_api {
    use super::*;
    use nethealth_oidc::blocking::{HttpClient, Provider};

    fn http() -> HttpClient {
        HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(5)))
    }

    fn kit(spec: ClientSpec) -> TestKit {
        TestKit::builder()
            .client(spec)
            .start_blocking()
            .expect("the kit starts")
    }

    #[test]
    fn rsa_and_ec_keys_log_in_refresh_introspect_and_revoke() {
        for key in [rsa_key(), ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING)] {
            let kit = kit(spec("app", &key));
            let clock = clock_for(&kit);
            let provider =
                Provider::discover_with_clock(http(), kit.issuer(), clock.clone()).unwrap();
            let client = provider
                .client(config("app", key), ClientOptions::default())
                .unwrap();
            assert_eq!(
                client.context().auth_method(),
                TokenAuthMethod::PrivateKeyJwt
            );
            let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL)).unwrap();
            let callback = Browser::new()
                .login(auth_url.as_str(), &Consent::GrantAll)
                .unwrap();
            let grant = client.finish_login(&pending, &url(&callback)).unwrap();
            let session = client.session(grant, SessionOptions::default()).unwrap();
            let first = session.access_token().unwrap();
            advance(&kit, &clock, Duration::from_secs(3600));
            let second = session.access_token().unwrap();
            assert!(!second.ct_eq(&first), "the refresh gave a new token");
            assert!(client.introspect(TokenRef::Access(&second)).unwrap().active);
            client.revoke(TokenRef::Access(&second)).unwrap();
            assert!(!client.introspect(TokenRef::Access(&second)).unwrap().active);
            session.revoke().unwrap();
            assert!(session.access_token().is_err(), "logged out");
        }
    }

    #[test]
    fn a_client_credentials_session_renews_itself_ahead_of_expiry() {
        let key = rsa_key().with_algorithm(SigningAlgorithm::RS384).unwrap();
        let kit = kit(spec("backend", &key));
        let clock = clock_for(&kit);
        let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone()).unwrap();
        let client = provider
            .client(config("backend", key), ClientOptions::default())
            .unwrap();
        assert_eq!(
            client.context().client_auth().algorithm(),
            Some(SigningAlgorithm::RS384)
        );
        let session = client
            .client_credentials_session(&Scopes::parse(SYSTEM_SCOPES), SessionOptions::default())
            .unwrap();
        let first = session.access_token().unwrap();
        let before = kit.requests(Endpoint::Token);
        advance(&kit, &clock, Duration::from_secs(3590));
        let next = session.access_token().unwrap();
        assert!(!next.ct_eq(&first));
        assert_eq!(kit.requests(Endpoint::Token), before + 1);
    }

    #[test]
    fn smart_configuration_and_backend_services() {
        let key = ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING);
        let kit = kit(spec("backend", &key));
        let provider = Provider::discover(http(), kit.issuer()).unwrap();
        let smart = provider.smart_configuration(&url(kit.issuer())).unwrap();
        assert!(smart.supports_backend_services());
        let client = provider
            .client(config("backend", key), ClientOptions::default())
            .unwrap();
        let session = client
            .backend_services_session(&Scopes::parse(SYSTEM_SCOPES), SessionOptions::default())
            .unwrap();
        assert!(session.allows(SYSTEM_SCOPES));
    }

    #[test]
    fn an_assertion_signed_with_another_key_is_invalid_client() {
        let registered = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let kit = kit(spec("app", &registered));
        let provider = Provider::discover(http(), kit.issuer()).unwrap();
        let other = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING).with_kid(registered.kid());
        let client = provider
            .client(config("app", other), ClientOptions::default())
            .unwrap();
        let err = client
            .client_credentials(&Scopes::parse(SYSTEM_SCOPES))
            .unwrap_err();
        assert!(is_invalid_client(&err), "{err:?}");
    }

    /// As in the async API: a lost answer is not resent with the same assertion.
    #[test]
    fn a_lost_answer_is_not_retried_with_a_spent_assertion() {
        let key = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let kit = kit(spec("backend", &key));
        let provider = Provider::discover(http(), kit.issuer()).unwrap();
        let client = provider
            .client(config("backend", key), ClientOptions::default())
            .unwrap();
        let session = client
            .client_credentials_session(&Scopes::parse(SYSTEM_SCOPES), SessionOptions::default())
            .unwrap();
        let token = session.access_token().unwrap();
        kit.fail_next(Endpoint::Introspection, 1, Fault::Truncated);
        let err = client.introspect(TokenRef::Access(&token)).unwrap_err();
        assert!(
            !is_invalid_client(&err),
            "a replay, not the lost answer: {err:?}"
        );
        assert_eq!(kit.requests(Endpoint::Introspection), 1, "not resent");
        assert!(client.introspect(TokenRef::Access(&token)).unwrap().active);
    }
}
