//! # nethealth-oidc-fuzz
//!
//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, nightly), one public function per parser of network or
//! user input. The targets in `fuzz/fuzz_targets/` only call these functions; this crate's own tests run every
//! checked-in seed (`fuzz/seeds/<target>/`) and every crash input kept as a regression (`fuzz/regressions/<target>/`)
//! through the same functions, so they run under `cargo test` on stable, with no libFuzzer.
//!
//! Each function takes arbitrary bytes and must return without panicking. Parse errors are expected; what is
//! checked is that nothing panics, overflows, allocates without bound or loops, and that an error message stays
//! short (the raw body is cut, never echoed whole).
//!
//! HTTP answers are built from the input by [`response`]: an optional head in the form of a tiny HTTP response
//! (`STATUS [CONTENT-TYPE]`, then `Name: value` lines, then an empty line), then the body. Without a head the input
//! is a `200 application/json` body, so a plain JSON document is a valid seed.
//!
//! Not published; no stability promise.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use nethealth_oidc_core::authorize::{
    AuthorizationRequest, IssPolicy, PendingLogin, parse_callback,
};
use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::id_token::{Expectations, IdTokenVerifier};
use nethealth_oidc_core::jwks::{JwkSet, parse_jwks};
use nethealth_oidc_core::lifecycle::TokenSet;
use nethealth_oidc_core::registration::{
    NetHealthRegistration, parse_delete_response, parse_registration_response,
};
use nethealth_oidc_core::secret::{AccessToken, ClientSecret, IdToken, Nonce};
use nethealth_oidc_core::token::{granted_scopes, parse_token_response};
use nethealth_oidc_core::{ClientConfig, Scopes, UnixTime, Url};
use rand::SeedableRng as _;

/// The issuer every target expects (IdentityServer3-shaped, as the Net Health Accounts site).
pub const ISSUER: &str = "https://accounts.example.com/identity";
/// The client id every target uses.
pub const CLIENT_ID: &str = "fuzz-client";
/// The client secret, which is also the HMAC key of HS256 ID tokens.
pub const CLIENT_SECRET: &str = "fuzz-client-secret-0123456789abcdef";
/// The redirect URI of the pending login in [`callback`].
pub const REDIRECT_URI: &str = "https://app.example.com/signin-oidc";
/// The nonce the ID-token target expects.
pub const NONCE: &str = "fuzz-nonce-0S6_WzA2Mj";
/// The `sub` the userinfo target expects.
pub const SUB: &str = "818727";
/// The fixed clock of every target: 2023-11-14T22:13:20Z.
pub const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);
/// The seed of the random generator that makes the pending login's `state`, nonce and PKCE verifier.
pub const RNG_SEED: u64 = 8;

/// The fixed key set the ID-token target verifies against: an RSA and an EC P-256 public key.
pub const JWKS: &str = r#"{"keys":[
{"kty":"RSA","use":"sig","alg":"RS256","kid":"fuzz-rsa","e":"AQAB","n":"3dwZT370meSUOzDkQD88KrHhJw1-oUqWqXphBNmYnmGt0-TSs10uhyEjeBeeci1F2OUrGUmQpiF0Pj2LuIPLtaDdklfIJZnJ93Ll8CHXJ3-5Ku4by0NbltqH2X0yTqYIH7EWVx008JrSvqJWRPbTcZR4v0-1MqSCnUFw4Xjnvwb4btIJqf-KCuRcOWv_gmWUMbC9KgOV1Trt-FjmRwGgltmEESoCyR2zzDe9k1LqIbUHlGfkTfURdKLYkrAAqRgEt7OHuUXHLb9EVC35NRiAHoxOZQUXNCEFTABAOjN3sIl0qNXETI6rUFInNQqDsI44aAfO8pqtSnRnkMnnpsYiXQ"},
{"kty":"EC","use":"sig","alg":"ES256","kid":"fuzz-ec","crv":"P-256","x":"GzRIRM2rwnC-JdDpYW4WKV3xXP_GKqMw4f2MS1lIlZ4","y":"ZPvRtwesAYAkrg983zVg0jeEx6rlf-TqERMn4ZSXHt8"}
]}"#;

/// The longest error message a parser may produce for any input. Bodies in errors are cut to a snippet, so a
/// message longer than this means some input is echoed whole.
pub const MAX_ERROR_MESSAGE: usize = 4096;

/// One fuzz target: its name (the file in `fuzz/fuzz_targets/` and the folders under `fuzz/seeds/` and
/// `fuzz/regressions/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] = &[
    ("discovery", discovery),
    ("jwks", jwks),
    ("token_response", token_response),
    ("registration_nethealth", registration_nethealth),
    ("registration_rfc7591", registration_rfc7591),
    ("callback", callback),
    ("id_token", id_token),
    ("userinfo", userinfo),
    ("introspection", introspection),
    ("www_authenticate", www_authenticate),
    ("store_envelope", store_envelope),
];

/// Builds an HTTP answer from fuzz input (see the [crate docs](crate) for the format).
///
/// The head is taken only when the input starts with three ASCII digits and holds an empty line (`\n\n`); header
/// lines that are not a valid name and value are skipped. Otherwise the whole input is a `200 application/json`
/// body.
pub fn response(data: &[u8]) -> http::Response<Vec<u8>> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let head = match split {
        Some(end) if data.len() >= 3 && data[..3].iter().all(u8::is_ascii_digit) => {
            Some((&data[..end], &data[end + 2..]))
        }
        _ => None,
    };
    let Some((head, body)) = head else {
        return http::Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/json")
            .body(data.to_vec())
            .expect("a fixed status and header always make a response");
    };
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    let status = std::str::from_utf8(&status_line[..3])
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|code| http::StatusCode::from_u16(code).ok())
        .unwrap_or(http::StatusCode::OK);
    let mut builder = http::Response::builder().status(status);
    let content_type = status_line[3..].trim_ascii();
    if !content_type.is_empty()
        && let Ok(value) = HeaderValue::from_bytes(content_type)
    {
        builder = builder.header(CONTENT_TYPE, value);
    }
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(body.to_vec())
        .expect("a valid status and valid headers always make a response")
}

/// Panics when `error`'s message is longer than [`MAX_ERROR_MESSAGE`] (a fuzz finding: some input is echoed
/// whole).
pub fn check_message(error: &impl std::fmt::Display) {
    let message = error.to_string();
    assert!(
        message.len() <= MAX_ERROR_MESSAGE,
        "an error message of {} bytes: {}...",
        message.len(),
        message.chars().take(200).collect::<String>()
    );
}

fn client() -> ClientConfig {
    ClientConfig::new(CLIENT_ID, Some(ClientSecret::new(CLIENT_SECRET)))
}

/// `parse_discovery` of the answer built from `data`, for [`ISSUER`].
pub fn discovery(data: &[u8]) {
    let response = response(data);
    match nethealth_oidc_core::discovery::parse_discovery(ISSUER, &response) {
        Ok(metadata) => {
            let _ = IssPolicy::from_metadata(&metadata);
            let _ = IdTokenVerifier::new(
                ISSUER,
                &client(),
                &metadata.id_token_signing_alg_values_supported,
            );
        }
        Err(e) => check_message(&e),
    }
}

/// `parse_jwks` of the answer built from `data`.
pub fn jwks(data: &[u8]) {
    match parse_jwks(&response(data)) {
        Ok(set) => {
            for key in set.keys() {
                if let Some(kid) = key.kid() {
                    assert!(set.contains_kid(kid), "a parsed key's kid is not found");
                }
            }
            let _ = set.skipped();
        }
        Err(e) => check_message(&e),
    }
}

/// `parse_token_response` of the answer built from `data`, then the token set a session would store from it.
pub fn token_response(data: &[u8]) {
    match parse_token_response(&response(data)) {
        Ok(parsed) => {
            let requested = Scopes::parse("openid profile offline_access");
            let granted = granted_scopes(&requested, &parsed);
            let grant = Grant::new(parsed, None, granted, NOW);
            let set = TokenSet::from_grant(grant, Some(Duration::from_secs(30 * 24 * 3600)));
            let _ = set.is_valid_at(NOW);
            let _ = set.authorization_header();
        }
        Err(e) => check_message(&e),
    }
}

/// The Net Health `/api/Clients/Register` answer built from `data`, parsed leniently.
pub fn registration_nethealth(data: &[u8]) {
    if let Err(e) = NetHealthRegistration::default().parse_response(&response(data)) {
        check_message(&e);
    }
}

/// The RFC 7591 registration answer (and the RFC 7592 delete answer) built from `data`.
pub fn registration_rfc7591(data: &[u8]) {
    let response = response(data);
    if let Err(e) = parse_registration_response(&response) {
        check_message(&e);
    }
    if let Err(e) = parse_delete_response(&response) {
        check_message(&e);
    }
}

/// The pending login every [`callback`] input is checked against: made with a generator seeded with
/// [`RNG_SEED`] at [`NOW`], so its `state` is the same on every run (the seeds hold it).
pub fn pending_login() -> PendingLogin {
    let request = AuthorizationRequest::new(
        Url::parse(&format!("{ISSUER}/connect/authorize")).expect("a fixed URL parses"),
        ISSUER,
        CLIENT_ID,
        Url::parse(REDIRECT_URI).expect("a fixed URL parses"),
    )
    .expect("a fixed request is valid");
    let mut rng = rand::rngs::StdRng::seed_from_u64(RNG_SEED);
    request.build(&mut rng, NOW).1
}

/// `parse_callback` of a callback URL made from `data`.
///
/// The first byte chooses: bit 0 the `iss` policy (required or if present); bit 1 whether the rest is the whole
/// URL, or the query appended to [`REDIRECT_URI`] (so that most inputs get past the redirect check).
pub fn callback(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let policy = if mode & 1 == 0 {
        IssPolicy::IfPresent
    } else {
        IssPolicy::Required
    };
    let text = String::from_utf8_lossy(rest);
    let url = if mode & 2 == 0 {
        Url::parse(&format!("{REDIRECT_URI}?{text}"))
    } else {
        Url::parse(&text)
    };
    let Ok(url) = url else {
        return;
    };
    static PENDING: OnceLock<PendingLogin> = OnceLock::new();
    let pending = PENDING.get_or_init(pending_login);
    if let Err(e) = parse_callback(pending, &url, policy) {
        check_message(&e);
    }
}

fn fixed_keys() -> &'static JwkSet {
    static KEYS: OnceLock<JwkSet> = OnceLock::new();
    KEYS.get_or_init(|| JwkSet::from_json(JWKS.as_bytes()).expect("the fixed JWKS parses"))
}

/// ID-token verification of a token made from `data`, with the fixed keys ([`JWKS`] and the HS256 secret
/// [`CLIENT_SECRET`]), nonce [`NONCE`] and clock [`NOW`].
///
/// The first byte chooses: bit 0 clear, the rest is the token, as is; bit 0 set, the rest is a JOSE header and a
/// claims set separated by a newline, which are encoded and signed with HS256 and the client secret, so that the
/// claim checks after the signature are reached too. Bit 1 adds an access token (`at_hash` check), bit 2 a
/// `max_age` (`auth_time` check).
pub fn id_token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
        };
        hs256(header, claims)
    };
    let verifier = IdTokenVerifier::new(
        ISSUER,
        &client(),
        &["RS256".to_owned(), "ES256".to_owned(), "HS256".to_owned()],
    );
    let nonce = Nonce::new(NONCE);
    let access_token = AccessToken::new("fuzz-access-token");
    let mut expect = Expectations::new().with_nonce(&nonce);
    if mode & 2 != 0 {
        expect = expect.with_access_token(&access_token);
    }
    if mode & 4 != 0 {
        expect.max_age = Some(Duration::from_secs(3600));
    }
    if let Err(e) = verifier.verify(&IdToken::new(token), fixed_keys(), &expect, NOW) {
        check_message(&e);
    }
}

/// A compact JWS of `header` and `claims` (any bytes), signed with HS256 and [`CLIENT_SECRET`].
pub fn hs256(header: &[u8], claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = jsonwebtoken::EncodingKey::from_secret(CLIENT_SECRET.as_bytes())
        .expect("an HMAC key from a fixed secret is valid");
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("HMAC signing with a fixed key cannot fail");
    format!("{message}.{signature}")
}

/// `parse_userinfo` of the answer built from `data`, expecting `sub` [`SUB`].
pub fn userinfo(data: &[u8]) {
    if let Err(e) = nethealth_oidc_core::userinfo::parse_userinfo(&response(data), SUB) {
        check_message(&e);
    }
}

/// `parse_introspection` of the answer built from `data`.
pub fn introspection(data: &[u8]) {
    if let Err(e) = nethealth_oidc_core::introspection::parse_introspection(&response(data)) {
        check_message(&e);
    }
}

/// `parse_www_authenticate_bearer` of `data` as a header value (inputs that are no valid header value are left
/// out, since no HTTP client hands them over).
pub fn www_authenticate(data: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let _ = nethealth_oidc_core::userinfo::parse_www_authenticate_bearer(&value);
    }
}

/// The file store's envelope decoding of `data` as the bytes of a token file.
pub fn store_envelope(data: &[u8]) {
    if let Err(e) = nethealth_oidc_store::decode_token_file(data, Path::new("/fuzz/tokens.json")) {
        check_message(&e);
    }
}
