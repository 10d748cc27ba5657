//! Building a signed client assertion (`private_key_jwt`) against the raw signature it wraps.
//!
//! Each pair signs with the same key: `nethealth_client_assertion_*` draws a request stamp, builds the header and
//! claims, signs them with the `ClientKey`'s key pair (parsed once, when the key was loaded) and encodes the JWS;
//! `raw_aws_lc_rs_*_sign` only signs a message of the same size with the key already parsed. `xtask bench` fails when an assertion costs more than 1.3x its raw signature.
#![allow(missing_docs)]

use std::hint::black_box;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use nethealth_oidc_core::client_auth::{ClientAuth, ClientKey, RequestStamp, client_assertion};
use nethealth_oidc_core::discovery::ProviderMetadata;
use nethealth_oidc_core::{ClientConfig, UnixTime};
use url::Url;

const NOW: u64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 generation works");
    let ec =
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 generation works");
    let rsa_key =
        ClientKey::from_pkcs8_der(rsa.as_der().expect("PKCS#8").as_ref()).expect("an RSA key");
    let ec_key =
        ClientKey::from_pkcs8_der(ec.to_pkcs8v1().expect("PKCS#8").as_ref()).expect("an EC key");
    let metadata: ProviderMetadata = serde_json::from_value(serde_json::json!({
        "issuer": "https://accounts.example.com",
        "authorization_endpoint": "https://accounts.example.com/connect/authorize",
        "token_endpoint": "https://accounts.example.com/connect/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .expect("valid metadata");
    let endpoint = Url::parse("https://accounts.example.com/connect/token").expect("a URL");
    let setup = |key: ClientKey| {
        let client = ClientConfig::new("nethealth-backend", None).with_signing_key(key);
        let auth = ClientAuth::resolve(&metadata, &client).expect("an algorithm fits");
        (client, auth)
    };
    let (rsa_client, rsa_auth) = setup(rsa_key);
    let (ec_client, ec_auth) = setup(ec_key);
    let now = UnixTime::from_secs(NOW);
    // The message a raw signature covers: an assertion's header and claims, as long as the real one.
    let sample = client_assertion(
        &endpoint,
        &rsa_client,
        &rsa_auth,
        &RequestStamp::draw(&mut rand::rng(), now),
    )
    .expect("an assertion");
    let message = sample
        .expose_secret()
        .rsplit_once('.')
        .expect("a JWT")
        .0
        .to_owned();
    let random = SystemRandom::new();

    let mut group = c.benchmark_group("client_assertion");
    group.bench_function("raw_aws_lc_rs_rsa2048_sign", |b| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        b.iter(|| {
            rsa.sign(
                &signature::RSA_PKCS1_SHA256,
                &random,
                black_box(message.as_bytes()),
                &mut sig,
            )
            .expect("signing works");
            black_box(&sig);
        })
    });
    group.bench_function("nethealth_client_assertion_rs256", |b| {
        b.iter(|| {
            let stamp = RequestStamp::draw(&mut rand::rng(), black_box(now));
            black_box(client_assertion(&endpoint, &rsa_client, &rsa_auth, &stamp).expect("signed"))
        })
    });
    group.bench_function("raw_aws_lc_rs_p256_sign", |b| {
        b.iter(|| {
            black_box(
                ec.sign(&random, black_box(message.as_bytes()))
                    .expect("signing works"),
            )
        })
    });
    group.bench_function("nethealth_client_assertion_es256", |b| {
        b.iter(|| {
            let stamp = RequestStamp::draw(&mut rand::rng(), black_box(now));
            black_box(client_assertion(&endpoint, &ec_client, &ec_auth, &stamp).expect("signed"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
