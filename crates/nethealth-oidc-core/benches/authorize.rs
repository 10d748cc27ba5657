//! Building an authorization URL against the PKCE computation at its heart.
//!
//! The floor is what any S256 login must do: draw 32 random bytes, hash them with SHA-256 and base64url the
//! digest. The bench builds a whole login (PKCE S256, `state`, `nonce`, three scopes, the URL and the `PendingLogin`)
//! with the same thread-local generator, from a `LoginTemplate` (the request prepared once, as a web application's
//! client does for its logins). `xtask bench` fails when it costs more than 3x the floor. `one_shot_request` (for
//! information, no target) also configures and encodes the request for each login.
#![allow(missing_docs)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use nethealth_oidc_core::UnixTime;
use nethealth_oidc_core::authorize::AuthorizationRequest;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use url::Url;

fn bench(c: &mut Criterion) {
    let endpoint = Url::parse("https://accounts.nethealth.example/core/connect/authorize")
        .expect("a valid endpoint");
    let redirect = Url::parse("https://app.example/callback").expect("a valid redirect URI");
    let request = AuthorizationRequest::new(
        endpoint,
        "https://accounts.nethealth.example/core",
        "nethealth-app",
        redirect,
    )
    .expect("a valid request")
    .scope("profile patients.read");
    let template = request.clone().prepare();
    let now = UnixTime::from_secs(1_800_000_000);

    let mut group = c.benchmark_group("authorize");
    group.bench_function("floor_pkce_s256", |b| {
        b.iter(|| {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            black_box(URL_SAFE_NO_PAD.encode(Sha256::digest(bytes)))
        });
    });
    group.bench_function("nethealth_authorization_url", |b| {
        b.iter(|| black_box(template.build(&mut rand::rng(), now)));
    });
    group.bench_function("one_shot_request", |b| {
        b.iter(|| black_box(request.clone().build(&mut rand::rng(), now)));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
