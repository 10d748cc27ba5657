//! The device flow (RFC 8628) through both transports against the local Accounts site: approved with a partial
//! grant, denied, and expired.

use std::time::Duration;

use nethealth_oidc::core::Clock as _;
use nethealth_oidc::{
    ClientConfig, ClientOptions, ClientSecret, DeviceStep, Scopes, SystemClock, TransportConfig,
};
use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, TestKit};

fn kit() -> TestKit {
    let kit = TestKit::builder()
        .client(
            ClientSpec::confidential("tv", "tv-secret").redirect_uri("http://127.0.0.1:8080/cb"),
        )
        .start_blocking()
        .expect("the kit starts");
    kit.set_device_interval(Duration::from_secs(1));
    kit
}

fn config() -> ClientConfig {
    ClientConfig::new("tv", Some(ClientSecret::new("tv-secret")))
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_timeout(Duration::from_secs(5))
}

fn wait_until(at: nethealth_oidc::UnixTime) -> Duration {
    let now = SystemClock.now().as_secs();
    Duration::from_secs(at.as_secs().saturating_sub(now)).max(Duration::from_millis(50))
}

#[test]
fn blocking_device_login_approved_denied_and_expired() {
    use nethealth_oidc::blocking::{HttpClient, Provider};
    let kit = kit();
    let provider = Provider::discover(HttpClient::new(transport()), kit.issuer()).unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let scopes = Scopes::parse("offline_access patients.read patients.write");

    let mut flow = client.begin_device_login(&scopes).unwrap();
    assert!(matches!(
        client.poll_device_login(&mut flow).unwrap(),
        DeviceStep::Waiting
    ));
    let page = flow
        .authorization()
        .verification_uri_complete
        .clone()
        .unwrap();
    Browser::new()
        .approve_device(
            page.as_str(),
            &Consent::grant(["offline_access", "patients.read"]),
        )
        .unwrap();
    let grant = loop {
        std::thread::sleep(wait_until(flow.poll_at()));
        match client.poll_device_login(&mut flow).unwrap() {
            DeviceStep::Granted(grant) => break grant,
            DeviceStep::Waiting => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(grant.id_claims.is_some(), "the ID token was verified");
    assert_eq!(grant.refused(), Scopes::parse("patients.write"));
    assert!(grant.response.refresh_token.is_some());

    let mut flow = client.begin_device_login(&scopes).unwrap();
    let page = flow
        .authorization()
        .verification_uri_complete
        .clone()
        .unwrap();
    Browser::new()
        .approve_device(page.as_str(), &Consent::Deny)
        .unwrap();
    std::thread::sleep(wait_until(flow.poll_at()));
    assert!(matches!(
        client.poll_device_login(&mut flow).unwrap(),
        DeviceStep::Denied
    ));

    let mut flow = client.begin_device_login(&scopes).unwrap();
    kit.advance_clock(Duration::from_secs(301));
    std::thread::sleep(wait_until(flow.poll_at()));
    assert!(matches!(
        client.poll_device_login(&mut flow).unwrap(),
        DeviceStep::Expired
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn async_device_login_approved() {
    use nethealth_oidc::{HttpClient, Provider};
    let kit = TestKit::builder()
        .client(
            ClientSpec::confidential("tv", "tv-secret").redirect_uri("http://127.0.0.1:8080/cb"),
        )
        .start()
        .await
        .expect("the kit starts");
    kit.set_device_interval(Duration::from_secs(1));
    let provider = Provider::discover(HttpClient::new(transport()).unwrap(), kit.issuer())
        .await
        .unwrap();
    let client = provider.client(config(), ClientOptions::default()).unwrap();
    let mut flow = client
        .begin_device_login(&Scopes::parse("patients.read"))
        .await
        .unwrap();
    let page = flow
        .authorization()
        .verification_uri_complete
        .clone()
        .unwrap();
    let browser = Browser::new();
    tokio::task::spawn_blocking(move || browser.approve_device(page.as_str(), &Consent::GrantAll))
        .await
        .unwrap()
        .unwrap();
    let grant = loop {
        tokio::time::sleep(wait_until(flow.poll_at())).await;
        match client.poll_device_login(&mut flow).await.unwrap() {
            DeviceStep::Granted(grant) => break grant,
            DeviceStep::Waiting => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(grant.granted.allows("patients.read"));
    assert!(
        grant.response.refresh_token.is_none(),
        "offline_access was not asked for"
    );
}
