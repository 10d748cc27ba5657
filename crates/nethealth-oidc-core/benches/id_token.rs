//! ID-token verification speed against the raw signature check it wraps.
//!
//! Both benches verify the same RS256 signature over the same bytes with the same RSA-2048 key. `xtask bench`
//! reads their estimates and fails when `nethealth_id_token_verify` costs more than 1.2x the raw verify.
#![allow(missing_docs)]

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use nethealth_oidc_core::id_token::{Expectations, IdTokenVerifier};
use nethealth_oidc_core::jwks::JwkSet;
use nethealth_oidc_core::secret::{AccessToken, IdToken, Nonce};
use nethealth_oidc_core::{ClientConfig, UnixTime};

const NOW: u64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 generation works");
    let public_der = key.public_key().as_ref().to_vec();
    let components = RsaPublicKeyComponents::<Vec<u8>>::from(key.public_key());
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);

    // An IdentityServer3-shaped ID token.
    let access_token = AccessToken::new("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.access.token");
    let header = r#"{"typ":"JWT","alg":"RS256","x5t":"a3rMUgMFv9tPclLa6yF3zAkfquE","kid":"a3rMUgMFv9tPclLa6yF3zAkfquE"}"#;
    let claims = serde_json::json!({
        "iss": "https://accounts.example.com",
        "aud": "nethealth-app",
        "exp": NOW + 300,
        "nbf": NOW - 5,
        "nonce": "n-0S6_WzA2Mj-4f0a2c1e",
        "iat": NOW - 5,
        "at_hash": nethealth_oidc_core::id_token::access_token_hash(
            nethealth_oidc_core::id_token::SigningAlgorithm::RS256,
            access_token.expose_secret(),
        ),
        "sid": "5f7f0b8e2d4a6c1e",
        "sub": "818727",
        "auth_time": NOW - 20,
        "idp": "idsrv",
        "amr": ["password"],
    });
    let message = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .expect("signing works");
    let token = IdToken::new(format!("{message}.{}", b64(&sig)));

    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA", "use": "sig", "kid": "a3rMUgMFv9tPclLa6yF3zAkfquE",
        "n": b64(&components.n), "e": b64(&components.e),
    }]});
    let keys = JwkSet::from_json(jwks.to_string().as_bytes()).expect("a valid JWKS");
    let client = ClientConfig::new("nethealth-app", None);
    let verifier = IdTokenVerifier::new("https://accounts.example.com", &client, &[]);
    let nonce = Nonce::new("n-0S6_WzA2Mj-4f0a2c1e");
    let expect = Expectations::new()
        .with_nonce(&nonce)
        .with_access_token(&access_token);
    let now = UnixTime::from_secs(NOW);
    verifier
        .verify(&token, &keys, &expect, now)
        .expect("the bench token verifies");

    let mut group = c.benchmark_group("id_token");
    group.bench_function("raw_aws_lc_rs_rsa2048_verify", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                black_box(&public_der),
            )
            .verify(black_box(message.as_bytes()), black_box(&sig))
            .expect("the signature verifies")
        })
    });
    group.bench_function("nethealth_id_token_verify", |b| {
        b.iter(|| {
            verifier
                .verify(
                    black_box(&token),
                    black_box(&keys),
                    black_box(&expect),
                    black_box(now),
                )
                .expect("the token verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
