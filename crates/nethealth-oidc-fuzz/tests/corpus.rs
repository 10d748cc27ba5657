//! Replays every checked-in seed (`fuzz/seeds/<target>/`) and every crash input kept as a regression
//! (`fuzz/regressions/<target>/`) through the target's body, on stable, under `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

use nethealth_oidc_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files in `dir`, sorted; none when the folder does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable folder entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file under `fuzz/<kind>/<target>/` through its target; returns how many ran.
fn replay(kind: &str) -> usize {
    let mut ran = 0;
    for (name, body) in TARGETS {
        for file in inputs(&fuzz_dir().join(kind).join(name)) {
            let data = fs::read(&file).expect("a readable input file");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(
                outcome.is_ok(),
                "target `{name}` panicked on {}: reproduce with `cargo test -p nethealth-oidc-fuzz --test corpus`",
                file.display()
            );
            ran += 1;
        }
    }
    ran
}

#[test]
fn every_target_has_seeds_and_a_fuzz_target() {
    for (name, _) in TARGETS {
        let seeds = inputs(&fuzz_dir().join("seeds").join(name));
        assert!(
            !seeds.is_empty(),
            "no seeds for target `{name}`: add realistic inputs under fuzz/seeds/{name}/"
        );
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = fs::read_to_string(&source).unwrap_or_else(|e| {
            panic!("fuzz/fuzz_targets/{name}.rs is missing ({e}): add the libFuzzer target that calls it")
        });
        assert!(
            text.contains(&format!("nethealth_oidc_fuzz::{name}(")),
            "fuzz/fuzz_targets/{name}.rs does not call nethealth_oidc_fuzz::{name}"
        );
    }
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let declared = manifest.matches("[[bin]]").count();
    assert_eq!(
        declared,
        TARGETS.len(),
        "fuzz/Cargo.toml declares {declared} targets, the crate has {}: keep them in step",
        TARGETS.len()
    );
}

#[test]
fn seeds_do_not_crash() {
    let ran = replay("seeds");
    assert!(ran >= TARGETS.len(), "only {ran} seeds ran");
}

#[test]
fn regressions_do_not_crash() {
    // Folders appear as crashes are found and fixed.
    replay("regressions");
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = fuzz_dir().join("seeds").join(target).join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The realistic seeds get past the parsers: the harness's fixed issuer, keys, clock and `state` are right, so
/// the fuzzer starts from inputs that reach the deep checks.
#[test]
fn realistic_seeds_are_accepted() {
    use nethealth_oidc_core::authorize::{IssPolicy, parse_callback};
    use nethealth_oidc_core::id_token::{Expectations, IdTokenVerifier};
    use nethealth_oidc_core::secret::{ClientSecret, IdToken, Nonce};
    use nethealth_oidc_core::{ClientConfig, Url};
    use nethealth_oidc_fuzz::*;

    for name in ["identityserver3.json", "oidc-provider.json"] {
        let r = response(&seed("discovery", name));
        nethealth_oidc_core::discovery::parse_discovery(ISSUER, &r).expect(name);
        let r = response(&seed("jwks", name));
        assert!(
            !nethealth_oidc_core::jwks::parse_jwks(&r)
                .expect(name)
                .is_empty()
        );
        let r = response(&seed("token_response", name));
        nethealth_oidc_core::token::parse_token_response(&r).expect(name);
    }
    let r = response(&seed("registration_nethealth", "accounts-site.json"));
    let client = nethealth_oidc_core::registration::NetHealthRegistration::default()
        .parse_response(&r)
        .expect("Net Health registration");
    assert_eq!(client.client_id, "nh-42");
    let r = response(&seed("registration_rfc7591", "oidc-provider.json"));
    nethealth_oidc_core::registration::parse_registration_response(&r).expect("RFC 7591");

    let input = seed("callback", "ids3-code");
    let url = Url::parse(&format!(
        "{REDIRECT_URI}?{}",
        String::from_utf8_lossy(&input[1..])
    ))
    .unwrap();
    parse_callback(&pending_login(), &url, IssPolicy::IfPresent).expect("callback");

    let input = seed("id_token", "signed-valid");
    let (header, claims) =
        input[1..].split_at(input[1..].iter().position(|&b| b == b'\n').unwrap());
    let token = hs256(header, &claims[1..]);
    let client = ClientConfig::new(CLIENT_ID, Some(ClientSecret::new(CLIENT_SECRET)));
    let verifier = IdTokenVerifier::new(ISSUER, &client, &["HS256".to_owned()]);
    let keys = nethealth_oidc_core::jwks::JwkSet::from_json(JWKS.as_bytes()).unwrap();
    let nonce = Nonce::new(NONCE);
    let claims = verifier
        .verify(
            &IdToken::new(token),
            &keys,
            &Expectations::new().with_nonce(&nonce),
            NOW,
        )
        .expect("signed ID token");
    assert_eq!(claims.sub, SUB);

    let r = response(&seed("userinfo", "identityserver3.json"));
    nethealth_oidc_core::userinfo::parse_userinfo(&r, SUB).expect("userinfo");
    let r = response(&seed("introspection", "active.json"));
    assert!(
        nethealth_oidc_core::introspection::parse_introspection(&r)
            .unwrap()
            .active
    );
    let value = http::HeaderValue::from_bytes(&seed("www_authenticate", "h0")).unwrap();
    assert!(nethealth_oidc_core::userinfo::parse_www_authenticate_bearer(&value).is_some());
    nethealth_oidc_store::decode_token_file(
        &seed("store_envelope", "filestore.json"),
        Path::new("t"),
    )
    .expect("token file");
}

#[test]
fn response_head_sets_status_and_headers() {
    let r = nethealth_oidc_fuzz::response(
        b"401 text/html\nwww-authenticate: Bearer\nbad header\n\nbody",
    );
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.body(), b"body");
    let r = nethealth_oidc_fuzz::response(b"{\"a\":1}\n\n");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.body(), b"{\"a\":1}\n\n");
}
