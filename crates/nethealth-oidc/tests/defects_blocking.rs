//! Regression tests for the defects of issue 14, through the blocking API against the local Accounts site on
//! loopback.

mod support;

use std::sync::Arc;
use std::time::Duration;

use nethealth_oidc::blocking::{Client, HttpClient, Provider};
use nethealth_oidc::core::id_token::IdTokenError;
use nethealth_oidc::{ClientOptions, Error, Scopes, TransportConfig};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, Endpoint, TestKit};
use support::{ALL, REDIRECT, advance, clock_for, url};

fn http() -> HttpClient {
    HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(5)))
}

fn kit() -> TestKit {
    TestKit::builder()
        .client(ClientSpec::confidential("app", "app-secret").redirect_uri(REDIRECT))
        .start_blocking()
        .expect("the kit starts")
}

fn config() -> nethealth_oidc::ClientConfig {
    nethealth_oidc::ClientConfig::new("app", Some(nethealth_oidc::ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![url(REDIRECT)])
}

fn client_at(kit: &TestKit) -> (Arc<nethealth_oidc::ManualClock>, Client) {
    let clock = clock_for(kit);
    let provider = Provider::discover_with_clock(http(), kit.issuer(), clock.clone())
        .expect("discovery works");
    let client = provider
        .client(config(), ClientOptions::default())
        .expect("a client");
    (clock, client)
}

fn login(client: &Client) -> Result<nethealth_oidc::Grant, Error> {
    let (auth_url, pending) = client.begin_login(&Scopes::parse(ALL))?;
    let callback = Browser::new()
        .login(auth_url.as_str(), &Consent::GrantAll)
        .expect("the login page works");
    client.finish_login(&pending, &url(&callback))
}

fn is_unknown_key(e: &Error) -> bool {
    matches!(e, Error::IdToken(IdTokenError::UnknownKey { .. }))
}

/// Defect 1: the first, ordinary JWKS fetch is not a refetch, so a rotation right after start is followed.
#[test]
fn a_key_rotated_right_after_start_is_refetched_and_floods_stay_limited() {
    let kit = kit();
    let (clock, client) = client_at(&kit);
    assert_eq!(
        kit.requests(Endpoint::Jwks),
        1,
        "discovery fetched the keys"
    );

    kit.rotate_keys();
    login(&client).expect("an unknown kid within 60 s of start causes a refetch");
    assert_eq!(kit.requests(Endpoint::Jwks), 2);

    // A key that is never published (a flood of unknown kids): at most one refetch per minute.
    kit.rotate_keys_unpublished();
    for _ in 0..3 {
        let err = login(&client).unwrap_err();
        assert!(is_unknown_key(&err), "{err:?}");
    }
    assert_eq!(kit.requests(Endpoint::Jwks), 2, "the refetch was 1 s ago");
    advance(&kit, &clock, Duration::from_secs(61));
    for _ in 0..3 {
        let err = login(&client).unwrap_err();
        assert!(is_unknown_key(&err), "{err:?}");
    }
    assert_eq!(
        kit.requests(Endpoint::Jwks),
        3,
        "one refetch in this minute"
    );
    kit.publish_keys();
    advance(&kit, &clock, Duration::from_secs(61));
    login(&client).expect("the published key is fetched");
    assert_eq!(kit.requests(Endpoint::Jwks), 4);
}
