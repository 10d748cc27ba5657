//! DPoP proof building (ES256) against the raw signature it wraps.
//!
//! Both benches sign with the same P-256 key; the raw one signs a message as long as the proof's signing input.
//! `xtask bench` fails when `nethealth_dpop_proof` costs more than 1.3x the raw aws-lc-rs signature.
#![allow(missing_docs)]

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use nethealth_oidc_core::dpop::DpopKey;
use nethealth_oidc_core::secret::AccessToken;
use nethealth_oidc_core::{UnixTime, Url};
use rand::SeedableRng as _;

const NOW: u64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9449);
    let scalar = [0x2a; 32];
    let key = DpopKey::from_scalar(&scalar).expect("a valid P-256 scalar");
    let url = Url::parse("https://api.example.com/fhir/Patient?_id=1001").expect("a URL");
    let token =
        AccessToken::new("eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJSUzI1NiJ9.a-dpop-bound-access-token.sig");
    let method = http::Method::GET;
    let now = UnixTime::from_secs(NOW);
    let proof = key
        .proof(
            &method,
            &url,
            Some(&token),
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
            now,
            &mut rng,
        )
        .expect("the proof builds");
    // The raw signature signs as many bytes as the proof's signing input, with the same key.
    let signing_input_len = proof.rfind('.').expect("a compact JWS");
    let message = vec![b'a'; signing_input_len];
    let der = aws_lc_rs::agreement::PrivateKey::from_private_key(
        &aws_lc_rs::agreement::ECDH_P256,
        &scalar,
    )
    .expect("the same key");
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
        aws_lc_rs::encoding::AsDer::as_der(&der).expect("PKCS#8");
    let raw =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).expect("the key");
    let system = SystemRandom::new();

    let mut group = c.benchmark_group("dpop");
    group.bench_function("raw_aws_lc_rs_p256_sign", |b| {
        b.iter(|| {
            raw.sign(&system, black_box(&message))
                .expect("signing works")
        })
    });
    group.bench_function("nethealth_dpop_proof", |b| {
        b.iter(|| {
            key.proof(
                black_box(&method),
                black_box(&url),
                Some(black_box(&token)),
                Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
                black_box(now),
                &mut rng,
            )
            .expect("the proof builds")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
