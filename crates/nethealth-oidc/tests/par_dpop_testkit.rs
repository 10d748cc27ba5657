//! PAR (RFC 9126) and DPoP (RFC 9449) through both transports against the local Accounts site: pushed logins
//! (required and opted in), DPoP-bound tokens with a server nonce on the token endpoint and the sample API, refresh,
//! and the bad paths: an expired `request_uri`, a proof for the wrong URL, a server that always wants a new nonce.

mod support;

use std::time::Duration;

use nethealth_oidc::core::Clock;
use nethealth_oidc::core::ErrorCode;
use nethealth_oidc::core::authorize::{AuthorizeRequestError, CallbackError};
use nethealth_oidc::{ClientOptions, Error, Scopes, SessionOptions, TransportConfig};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, DpopNonce, Endpoint, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

fn spec() -> ClientSpec {
    ClientSpec::confidential("app", "app-secret")
        .redirect_uri(REDIRECT)
        .allow_client_credentials(true)
}

fn config() -> nethealth_oidc::ClientConfig {
    nethealth_oidc::ClientConfig::new("app", Some(nethealth_oidc::ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![url(REDIRECT)])
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_timeout(Duration::from_secs(5))
}

fn dpop() -> ClientOptions {
    ClientOptions::default().with_dpop(true)
}

fn code(err: &Error) -> Option<&ErrorCode> {
    err.oauth_error().map(|e| &e.code)
}

fn assert_pushed(auth_url: &nethealth_oidc::AuthorizationUrl) {
    let mut keys: Vec<String> = auth_url
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["client_id", "request_uri"], "{}", auth_url.as_str());
}

mod asynchronous {
    use super::*;
    use nethealth_oidc::{Client, HttpClient, Provider};

    async fn kit() -> TestKit {
        TestKit::builder()
            .client(spec())
            .start()
            .await
            .expect("the kit starts")
    }

    async fn client(
        kit: &TestKit,
        options: ClientOptions,
    ) -> (std::sync::Arc<nethealth_oidc::ManualClock>, Client) {
        let clock = clock_for(kit);
        let provider = Provider::discover_with_clock(
            HttpClient::new(transport()).unwrap(),
            kit.issuer(),
            clock.clone(),
        )
        .await
        .unwrap();
        (clock, provider.client(config(), options).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn required_par_and_dpop_with_a_nonce_login_api_and_refresh() {
        let kit = kit().await;
        kit.set_require_par(true);
        kit.set_dpop_nonce(DpopNonce::Required);
        let (_clock, client) = client(&kit, dpop()).await;
        let err = client.begin_login(&Scopes::parse(ALL)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::AuthorizeRequest(AuthorizeRequestError::MustPush)
            ),
            "{err:?}"
        );

        let (auth_url, pending) = client.start_login(&Scopes::parse(ALL)).await.unwrap();
        assert_pushed(&auth_url);
        assert_eq!(kit.requests(Endpoint::Par), 1);
        let callback = Browser::new()
            .login_async(auth_url.as_str(), &Consent::GrantAll)
            .await
            .unwrap();
        let grant = client
            .finish_login(&pending, &url(&callback))
            .await
            .unwrap();
        assert_eq!(grant.response.token_type, "dpop");
        assert_eq!(
            kit.requests(Endpoint::Token),
            2,
            "the nonce challenge was answered with exactly one more request"
        );
        let jkt = grant.dpop_key.as_ref().unwrap().thumbprint().to_owned();

        let session = client
            .session(grant, SessionOptions::default())
            .await
            .unwrap();
        let api = session.authorized(reqwest::Client::new());
        assert_eq!(
            api.send(api.get(kit.api_url())).await.unwrap().status(),
            200
        );

        // The bound token is worthless as a bearer token.
        let token = session.access_token().await.unwrap();
        let stolen = reqwest::Client::new()
            .get(kit.api_url())
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .unwrap();
        assert_eq!(stolen.status(), 401);

        // A refresh keeps the key.
        session.token_rejected(&token);
        let fresh = session.access_token().await.unwrap();
        assert!(!fresh.ct_eq(&token));
        assert_eq!(session.token_set().dpop_key.unwrap().thumbprint(), jkt);
        assert_eq!(
            api.send(api.get(kit.api_url())).await.unwrap().status(),
            200
        );

        // An API that always wants a new nonce: one retry, then a typed error.
        kit.set_dpop_nonce(DpopNonce::AlwaysNew);
        let before = kit.requests(Endpoint::Api);
        let err = api.send(api.get(kit.api_url())).await.unwrap_err();
        assert_eq!(code(&err), Some(&ErrorCode::UseDpopNonce), "{err}");
        assert!(err.to_string().contains("nonce"), "{err}");
        assert_eq!(
            kit.requests(Endpoint::Api) - before,
            2,
            "one retry, not a loop"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_request_uri_says_to_start_again() {
        let kit = kit().await;
        kit.set_par_lifetime(Duration::from_secs(5));
        let (clock, client) = client(&kit, ClientOptions::default().with_par(true)).await;
        let (auth_url, pending) = client.start_login(&Scopes::parse(ALL)).await.unwrap();
        assert_pushed(&auth_url);
        assert!(pending.request_uri_expires_at().is_some());
        advance(&kit, &clock, Duration::from_secs(10));
        assert!(matches!(
            pending.check_request_uri(clock.now()),
            Err(CallbackError::RequestUriExpired {
                expired_secs_ago: 5
            })
        ));
        let callback = Browser::new()
            .login_async(auth_url.as_str(), &Consent::GrantAll)
            .await
            .unwrap();
        let err = client
            .finish_login(&pending, &url(&callback))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Callback(CallbackError::RequestUriExpired { .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("start the login again"), "{err}");
        assert_eq!(kit.requests(Endpoint::Token), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proof_for_the_wrong_url_is_refused() {
        let kit = kit().await;
        kit.set_dpop_public_origin(Some("https://accounts.example.com"));
        let (_clock, client) = client(&kit, dpop()).await;
        let err = client
            .client_credentials(&Scopes::parse("patients.read"))
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(&ErrorCode::InvalidDpopProof), "{err}");
        assert!(err.to_string().contains("htu"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_always_wants_a_new_nonce_gets_one_retry() {
        let kit = kit().await;
        kit.set_dpop_nonce(DpopNonce::AlwaysNew);
        let (_clock, client) = client(&kit, dpop()).await;
        let err = client
            .client_credentials(&Scopes::parse("patients.read"))
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(&ErrorCode::UseDpopNonce), "{err}");
        assert_eq!(kit.requests(Endpoint::Token), 2);
    }
}

mod blocking {
    use super::*;
    use nethealth_oidc::blocking::{Client, HttpClient, Provider};

    fn kit() -> TestKit {
        TestKit::builder()
            .client(spec())
            .start_blocking()
            .expect("the kit starts")
    }

    fn client(kit: &TestKit, options: ClientOptions) -> Client {
        let provider = Provider::discover_with_clock(
            HttpClient::new(transport()),
            kit.issuer(),
            clock_for(kit),
        )
        .unwrap();
        provider.client(config(), options).unwrap()
    }

    fn get(url: &str) -> http::Request<Vec<u8>> {
        http::Request::get(url).body(Vec::new()).unwrap()
    }

    #[test]
    fn required_par_and_dpop_with_a_nonce_login_api_and_refresh() {
        let kit = kit();
        kit.set_require_par(true);
        kit.set_dpop_nonce(DpopNonce::Required);
        let client = client(&kit, dpop());
        assert!(client.begin_login(&Scopes::parse(ALL)).is_err());
        let (auth_url, pending) = client.start_login(&Scopes::parse(ALL)).unwrap();
        assert_pushed(&auth_url);
        let callback = Browser::new()
            .login(auth_url.as_str(), &Consent::GrantAll)
            .unwrap();
        let grant = client.finish_login(&pending, &url(&callback)).unwrap();
        assert_eq!(grant.response.token_type, "dpop");
        assert_eq!(kit.requests(Endpoint::Token), 2);
        let session = client.session(grant, SessionOptions::default()).unwrap();
        let api = session.authorized(ureq::Agent::new_with_defaults());
        assert_eq!(api.send(get(&kit.api_url())).unwrap().status(), 200);
        let token = session.access_token().unwrap();
        session.token_rejected(&token);
        assert!(!session.access_token().unwrap().ct_eq(&token));
        assert_eq!(api.send(get(&kit.api_url())).unwrap().status(), 200);
        kit.set_dpop_nonce(DpopNonce::AlwaysNew);
        let err = api.send(get(&kit.api_url())).unwrap_err();
        assert_eq!(code(&err), Some(&ErrorCode::UseDpopNonce), "{err}");
    }

    #[test]
    fn bad_proofs_and_endless_nonces_are_typed_errors() {
        let kit = kit();
        kit.set_dpop_public_origin(Some("https://accounts.example.com"));
        let client = client(&kit, dpop());
        let err = client
            .client_credentials(&Scopes::parse("patients.read"))
            .unwrap_err();
        assert_eq!(code(&err), Some(&ErrorCode::InvalidDpopProof), "{err}");
        kit.set_dpop_public_origin(None);
        kit.set_dpop_nonce(DpopNonce::AlwaysNew);
        let before = kit.requests(Endpoint::Token);
        let err = client
            .client_credentials(&Scopes::parse("patients.read"))
            .unwrap_err();
        assert_eq!(code(&err), Some(&ErrorCode::UseDpopNonce), "{err}");
        assert_eq!(kit.requests(Endpoint::Token) - before, 2);
    }
}
