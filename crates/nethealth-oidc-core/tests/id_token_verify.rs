//! ID-token validation, end to end, with keys generated here (OIDC Core §3.1.3.7, RFC 8725).

mod id_token_support;

use std::time::Duration;

use id_token_support::*;
use nethealth_oidc_core::id_token::{
    Expectations, IdTokenClaims, IdTokenError, IdTokenVerifier, SigningAlgorithm,
    access_token_hash, check_refresh_continuity,
};
use nethealth_oidc_core::jwks::{JwkSet, JwksRefreshPolicy, KeyAction, KeyCache};
use nethealth_oidc_core::secret::{AccessToken, ClientSecret, IdToken, Nonce};
use nethealth_oidc_core::{ClientConfig, UnixTime};
use serde_json::{Value, json};

fn client() -> ClientConfig {
    ClientConfig::new(CLIENT_ID, Some(ClientSecret::new("client-secret-123")))
}

fn verifier() -> IdTokenVerifier {
    IdTokenVerifier::new(ISSUER, &client(), &[])
}

fn rsa_set() -> JwkSet {
    jwks(&[RSA_A.jwk(Some("a"))])
}

fn verify_with(
    v: &IdTokenVerifier,
    token: &str,
    keys: &JwkSet,
    now: u64,
) -> Result<IdTokenClaims, IdTokenError> {
    let nonce = Nonce::new(NONCE);
    v.verify(
        &IdToken::new(token),
        keys,
        &Expectations::new().with_nonce(&nonce),
        UnixTime::from_secs(now),
    )
}

fn verify(token: &str, keys: &JwkSet) -> Result<IdTokenClaims, IdTokenError> {
    verify_with(&verifier(), token, keys, NOW)
}

/// An RS256 token from key "a" with `claims`.
fn rs256(claims: &Value) -> String {
    RSA_A.token(&header("RS256", Some("a")), claims)
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn algs(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn backend_really_verifies() {
    // A feature mistake (both or neither jsonwebtoken backends) panics or fails here.
    let token = rs256(&good_claims());
    let (message, sig) = token.rsplit_once('.').unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_der(&RSA_A.rsa_public_der());
    assert!(
        jsonwebtoken::crypto::verify(
            sig,
            message.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::RS256
        )
        .unwrap()
    );
    let tampered = message.replacen("e", "f", 1);
    assert!(
        !jsonwebtoken::crypto::verify(
            sig,
            tampered.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::RS256
        )
        .unwrap()
    );
    assert!(verify(&token, &rsa_set()).is_ok());
}

#[test]
fn accepts_rs256() {
    let claims = verify(&rs256(&good_claims()), &rsa_set()).unwrap();
    assert_eq!(claims.sub, "818727");
    assert_eq!(claims.aud, vec![CLIENT_ID.to_owned()]);
    assert_eq!(claims.nonce.as_deref(), Some(NONCE));
    assert_eq!(claims.claim("idp"), Some(&json!("idsrv")));
    assert_eq!(claims.expires_at(), UnixTime::from_secs(NOW + 300));
}

#[test]
fn accepts_ps256_es256_eddsa_rs512() {
    let meta = algs(&["RS256", "PS256", "ES256", "EdDSA", "RS512"]);
    let v = IdTokenVerifier::new(ISSUER, &client(), &meta);
    let keys = jwks(&[
        RSA_A.jwk(Some("rsa")),
        EC.jwk(Some("ec")),
        ED.jwk(Some("ed")),
    ]);
    for (alg, key, kid) in [
        ("PS256", &*RSA_A, "rsa"),
        ("RS512", &*RSA_A, "rsa"),
        ("ES256", &*EC, "ec"),
        ("EdDSA", &*ED, "ed"),
    ] {
        let token = key.token(&header(alg, Some(kid)), &good_claims());
        verify_with(&v, &token, &keys, NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[test]
fn registered_alg_wins_over_metadata() {
    let v = IdTokenVerifier::new(
        ISSUER,
        &client().with_id_token_alg("ES256"),
        &algs(&["RS256"]),
    );
    assert_eq!(v.allowed_algorithms(), &[SigningAlgorithm::ES256]);
    let e = verify_with(&v, &rs256(&good_claims()), &rsa_set(), NOW).unwrap_err();
    assert!(
        matches!(e, IdTokenError::AlgorithmNotAllowed { ref alg, .. } if alg == "RS256"),
        "{e}"
    );
    let token = EC.token(&header("ES256", Some("ec")), &good_claims());
    assert!(verify_with(&v, &token, &jwks(&[EC.jwk(Some("ec"))]), NOW).is_ok());
}

#[test]
fn metadata_algs_are_filtered() {
    let v = IdTokenVerifier::new(
        ISSUER,
        &client(),
        &algs(&["none", "RS256", "ES512", "RS256"]),
    );
    assert_eq!(v.allowed_algorithms(), &[SigningAlgorithm::RS256]);
    let public = ClientConfig::new(CLIENT_ID, None);
    let v = IdTokenVerifier::new(ISSUER, &public, &algs(&["HS256", "RS256"]));
    assert_eq!(v.allowed_algorithms(), &[SigningAlgorithm::RS256]);
    // Nothing usable at all: every verification says so.
    let v = IdTokenVerifier::new(ISSUER, &client().with_id_token_alg("none"), &[]);
    assert!(v.allowed_algorithms().is_empty());
    let e = verify_with(&v, &rs256(&good_claims()), &rsa_set(), NOW).unwrap_err();
    assert!(matches!(e, IdTokenError::NoAllowedAlgorithm { .. }), "{e}");
    assert!(e.to_string().contains("id_token_signed_response_alg"));
}

#[test]
fn rejects_bad_signatures() {
    let token = rs256(&good_claims());
    let (head, sig) = token.rsplit_once('.').unwrap();
    // Another key's signature.
    let other = RSA_B.token(&header("RS256", Some("a")), &good_claims());
    assert_eq!(
        verify(&other, &rsa_set()).unwrap_err(),
        IdTokenError::BadSignature {
            alg: SigningAlgorithm::RS256
        }
    );
    // Altered claims, same signature.
    let forged_claims = with(good_claims(), "sub", json!("admin"));
    let forged = format!(
        "{}.{}.{sig}",
        head.split('.').next().unwrap(),
        b64(forged_claims.to_string().as_bytes())
    );
    assert_eq!(
        verify(&forged, &rsa_set()).unwrap_err(),
        IdTokenError::BadSignature {
            alg: SigningAlgorithm::RS256
        }
    );
    // Truncated and empty signatures.
    let sig_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    let short = format!("{head}.{}", b64(&sig_bytes[..sig_bytes.len() - 1]));
    assert!(matches!(
        verify(&short, &rsa_set()).unwrap_err(),
        IdTokenError::BadSignature { .. }
    ));
    assert!(matches!(
        verify(&format!("{head}."), &rsa_set()).unwrap_err(),
        IdTokenError::BadSignature { .. }
    ));
    // A signature that is not base64url.
    assert!(matches!(
        verify(&format!("{head}.***"), &rsa_set()).unwrap_err(),
        IdTokenError::Malformed { .. }
    ));
}

#[test]
fn rejects_alg_none() {
    for alg in ["none", "None", "NONE"] {
        let h = json!({"alg": alg, "typ": "JWT"});
        let unsigned = format!(
            "{}.{}.",
            b64(h.to_string().as_bytes()),
            b64(good_claims().to_string().as_bytes())
        );
        assert_eq!(
            verify(&unsigned, &rsa_set()).unwrap_err(),
            IdTokenError::Unsigned,
            "{alg}"
        );
    }
    // Even when the client registered `none`.
    let v = IdTokenVerifier::new(
        ISSUER,
        &client().with_id_token_alg("none"),
        &algs(&["none"]),
    );
    let h = json!({"alg": "none"});
    let unsigned = format!(
        "{}.{}.",
        b64(h.to_string().as_bytes()),
        b64(good_claims().to_string().as_bytes())
    );
    assert_eq!(
        verify_with(&v, &unsigned, &rsa_set(), NOW).unwrap_err(),
        IdTokenError::Unsigned
    );
}

#[test]
fn rejects_hs256_keyed_with_the_public_key() {
    // Algorithm confusion: HMAC keyed with the RSA public key (as DER, as PEM-ish text, and as n).
    let Value::String(n) = RSA_A.jwk(None)["n"].clone() else {
        panic!()
    };
    let der = RSA_A.rsa_public_der();
    let pem = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        b64(&der)
    );
    let allow_hs = IdTokenVerifier::new(ISSUER, &client(), &algs(&["RS256", "HS256"]));
    for secret in [der.clone(), pem.into_bytes(), n.into_bytes()] {
        let token = hs256_token(&secret, &header("HS256", Some("a")), &good_claims());
        // RS256-only (the default): HS256 is not even allowed.
        assert!(matches!(
            verify(&token, &rsa_set()).unwrap_err(),
            IdTokenError::AlgorithmNotAllowed { .. }
        ));
        // HS256 allowed: verified with the client secret only, so the forgery fails.
        assert_eq!(
            verify_with(&allow_hs, &token, &rsa_set(), NOW).unwrap_err(),
            IdTokenError::BadSignature {
                alg: SigningAlgorithm::HS256
            }
        );
    }
    // A genuine HS256 token keyed with the client secret passes when allowed.
    let token = hs256_token(b"client-secret-123", &header("HS256", None), &good_claims());
    assert!(verify_with(&allow_hs, &token, &JwkSet::default(), NOW).is_ok());
    // A public client can never accept HS256.
    let public = IdTokenVerifier::new(
        ISSUER,
        &ClientConfig::new(CLIENT_ID, None),
        &algs(&["HS256"]),
    );
    assert!(matches!(
        verify_with(&public, &token, &rsa_set(), NOW).unwrap_err(),
        IdTokenError::NoAllowedAlgorithm { .. }
    ));
}

#[test]
fn rejects_wrong_iss_aud_azp_nonce() {
    let keys = rsa_set();
    let e = verify(
        &rs256(&with(
            good_claims(),
            "iss",
            json!("https://evil.example.com"),
        )),
        &keys,
    )
    .unwrap_err();
    assert!(
        matches!(e, IdTokenError::WrongIssuer { ref actual, .. } if actual == "https://evil.example.com")
    );
    // Exact match: a trailing slash is another issuer.
    let e = verify(
        &rs256(&with(good_claims(), "iss", json!(format!("{ISSUER}/")))),
        &keys,
    )
    .unwrap_err();
    assert!(matches!(e, IdTokenError::WrongIssuer { .. }));

    let e = verify(
        &rs256(&with(good_claims(), "aud", json!("other-client"))),
        &keys,
    )
    .unwrap_err();
    assert!(matches!(e, IdTokenError::WrongAudience { .. }), "{e}");
    let e = verify(
        &rs256(&with(good_claims(), "aud", json!(["x", "y"]))),
        &keys,
    )
    .unwrap_err();
    assert!(matches!(e, IdTokenError::WrongAudience { .. }));

    // Several audiences: azp required, and must be this client.
    let multi = with(good_claims(), "aud", json!([CLIENT_ID, "api"]));
    assert_eq!(
        verify(&rs256(&multi), &keys).unwrap_err(),
        IdTokenError::MissingAzp {
            client_id: CLIENT_ID.into()
        }
    );
    assert!(verify(&rs256(&with(multi.clone(), "azp", json!(CLIENT_ID))), &keys).is_ok());
    let e = verify(&rs256(&with(multi, "azp", json!("api"))), &keys).unwrap_err();
    assert!(matches!(e, IdTokenError::WrongAzp { ref azp, .. } if azp == "api"));
    // A single audience with a wrong azp is refused too.
    let e = verify(&rs256(&with(good_claims(), "azp", json!("api"))), &keys).unwrap_err();
    assert!(matches!(e, IdTokenError::WrongAzp { .. }));

    assert_eq!(
        verify(
            &rs256(&with(good_claims(), "nonce", json!("n-other"))),
            &keys
        )
        .unwrap_err(),
        IdTokenError::WrongNonce
    );
    assert_eq!(
        verify(&rs256(&without(good_claims(), "nonce")), &keys).unwrap_err(),
        IdTokenError::MissingNonce
    );
    // Without an expected nonce (a refresh), the nonce is not checked here.
    let v = verifier();
    let no_expect = v.verify(
        &IdToken::new(rs256(&with(good_claims(), "nonce", json!("whatever")))),
        &keys,
        &Expectations::new(),
        UnixTime::from_secs(NOW),
    );
    assert!(no_expect.is_ok());
}

#[test]
fn rejects_missing_required_claims() {
    for claim in ["sub", "iat", "exp", "iss", "aud"] {
        let e = verify(&rs256(&without(good_claims(), claim)), &rsa_set()).unwrap_err();
        assert!(
            matches!(e, IdTokenError::MissingClaim { claim: c } if c == claim),
            "{claim}: {e}"
        );
    }
    let e = verify(
        &rs256(&with(good_claims(), "exp", json!("tomorrow"))),
        &rsa_set(),
    )
    .unwrap_err();
    assert!(
        matches!(e, IdTokenError::InvalidClaim { ref claim, .. } if claim == "exp"),
        "{e}"
    );
}

#[test]
fn time_checks_with_leeway() {
    let keys = rsa_set();
    let v = verifier();
    let exp = NOW + 300;
    // Within the 60 s leeway after exp: accepted. At and beyond: refused.
    assert!(verify_with(&v, &rs256(&good_claims()), &keys, exp + 59).is_ok());
    assert_eq!(
        verify_with(&v, &rs256(&good_claims()), &keys, exp + 60).unwrap_err(),
        IdTokenError::Expired {
            exp,
            now: exp + 60,
            leeway_secs: 60
        }
    );
    // A stricter leeway.
    let strict = verifier().with_leeway(Duration::ZERO);
    assert!(matches!(
        verify_with(&strict, &rs256(&good_claims()), &keys, exp).unwrap_err(),
        IdTokenError::Expired { .. }
    ));

    // nbf in the future: within leeway accepted, beyond refused.
    assert!(verify(&rs256(&with(good_claims(), "nbf", json!(NOW + 60))), &keys).is_ok());
    assert_eq!(
        verify(&rs256(&with(good_claims(), "nbf", json!(NOW + 61))), &keys).unwrap_err(),
        IdTokenError::NotYetValid {
            nbf: NOW + 61,
            now: NOW
        }
    );
    // iat in the future.
    assert_eq!(
        verify(&rs256(&with(good_claims(), "iat", json!(NOW + 120))), &keys).unwrap_err(),
        IdTokenError::IssuedInFuture {
            iat: NOW + 120,
            now: NOW
        }
    );
    // iat far in the past, with a far exp.
    let old = with(
        with(good_claims(), "iat", json!(NOW - 2 * 86_400)),
        "exp",
        json!(NOW + 600),
    );
    assert!(matches!(
        verify(&rs256(&old), &keys).unwrap_err(),
        IdTokenError::IssuedTooLongAgo { .. }
    ));
    let lax = verifier().with_max_iat_age(None);
    assert!(verify_with(&lax, &rs256(&old), &keys, NOW).is_ok());
}

#[test]
fn extreme_times_never_overflow() {
    let keys = rsa_set();
    let far = with(good_claims(), "exp", json!(u64::MAX));
    let v = verifier()
        .with_leeway(Duration::MAX)
        .with_max_iat_age(Some(Duration::MAX));
    assert!(verify_with(&v, &rs256(&far), &keys, NOW).is_ok());
    assert!(verify_with(&v, &rs256(&far), &keys, u64::MAX).is_err());
    assert!(matches!(
        verify_with(&verifier(), &rs256(&far), &keys, 0).unwrap_err(),
        IdTokenError::NotYetValid { .. }
    ));
    let far_no_nbf = without(far.clone(), "nbf");
    assert!(matches!(
        verify_with(&verifier(), &rs256(&far_no_nbf), &keys, 0).unwrap_err(),
        IdTokenError::IssuedInFuture { .. }
    ));
    let floaty = with(good_claims(), "exp", json!(1e300));
    assert!(verify(&rs256(&floaty), &keys).is_ok());
    let e = verify(&rs256(&with(good_claims(), "exp", json!(-5))), &keys).unwrap_err();
    assert!(matches!(e, IdTokenError::InvalidClaim { .. }));
}

#[test]
fn at_hash_is_checked() {
    let keys = rsa_set();
    let at = AccessToken::new("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y");
    let nonce = Nonce::new(NONCE);
    let v = verifier();
    let check = |claims: &Value| {
        v.verify(
            &IdToken::new(rs256(claims)),
            &keys,
            &Expectations::new()
                .with_nonce(&nonce)
                .with_access_token(&at),
            UnixTime::from_secs(NOW),
        )
    };
    let good = with(
        good_claims(),
        "at_hash",
        json!(access_token_hash(
            SigningAlgorithm::RS256,
            at.expose_secret()
        )),
    );
    assert!(check(&good).is_ok());
    assert_eq!(
        check(&with(
            good_claims(),
            "at_hash",
            json!("77QmUPtjPfzWtF2AnpK9RR")
        ))
        .unwrap_err(),
        IdTokenError::WrongAtHash
    );
    // The SHA-384 hash is wrong for an RS256 token.
    let wrong_size = with(
        good_claims(),
        "at_hash",
        json!(access_token_hash(
            SigningAlgorithm::RS384,
            at.expose_secret()
        )),
    );
    assert_eq!(check(&wrong_size).unwrap_err(), IdTokenError::WrongAtHash);
    // Absent at_hash is fine (code flow).
    assert!(check(&good_claims()).is_ok());
}

#[test]
fn max_age_requires_recent_auth_time() {
    let keys = rsa_set();
    let nonce = Nonce::new(NONCE);
    let v = verifier();
    let check = |claims: &Value, max_age: u64| {
        v.verify(
            &IdToken::new(rs256(claims)),
            &keys,
            &Expectations::new()
                .with_nonce(&nonce)
                .with_max_age(Duration::from_secs(max_age)),
            UnixTime::from_secs(NOW),
        )
    };
    assert!(check(&good_claims(), 600).is_ok());
    assert_eq!(
        check(&without(good_claims(), "auth_time"), 600).unwrap_err(),
        IdTokenError::MissingAuthTime
    );
    let old = with(good_claims(), "auth_time", json!(NOW - 1000));
    assert_eq!(
        check(&old, 600).unwrap_err(),
        IdTokenError::AuthTooOld {
            auth_time: NOW - 1000,
            now: NOW,
            max_age_secs: 600
        }
    );
    // Within max_age + leeway.
    assert!(check(&with(good_claims(), "auth_time", json!(NOW - 650)), 600).is_ok());
    // An auth_time in the future is refused even without max_age.
    let future = with(good_claims(), "auth_time", json!(NOW + 3600));
    assert!(matches!(
        verify(&rs256(&future), &keys).unwrap_err(),
        IdTokenError::InvalidClaim { .. }
    ));
}

#[test]
fn header_rules() {
    let keys = rsa_set();
    // crit is refused.
    let mut h = header("RS256", Some("a"));
    h["crit"] = json!(["exp"]);
    h["exp"] = json!(1);
    let e = verify(&RSA_A.token(&h, &good_claims()), &keys).unwrap_err();
    assert_eq!(
        e,
        IdTokenError::CriticalHeader {
            names: vec!["exp".into()]
        }
    );
    // An access token typ is refused; JWT in any case and application/jwt pass; no typ passes.
    for (typ, ok) in [
        ("at+jwt", false),
        ("application/at+jwt", false),
        ("logout+jwt", false),
        ("jwt", true),
        ("application/JWT", true),
    ] {
        let mut h = header("RS256", Some("a"));
        h["typ"] = json!(typ);
        assert_eq!(
            verify(&RSA_A.token(&h, &good_claims()), &keys).is_ok(),
            ok,
            "{typ}"
        );
    }
    let h = json!({"alg": "RS256", "kid": "a"});
    assert!(verify(&RSA_A.token(&h, &good_claims()), &keys).is_ok());
    // jwk / jku / x5u / x5c are never followed: an attacker's embedded key does not verify anything.
    let mut h = header("RS256", None);
    h["jwk"] = RSA_B.jwk(Some("evil"));
    h["jku"] = json!("https://evil.example/jwks");
    h["x5u"] = json!("https://evil.example/cert");
    h["x5c"] = json!(["MIIB"]);
    let e = verify(&RSA_B.token(&h, &good_claims()), &keys).unwrap_err();
    assert_eq!(
        e,
        IdTokenError::BadSignature {
            alg: SigningAlgorithm::RS256
        }
    );
    // The same headers on an honest token are ignored.
    let mut h = header("RS256", Some("a"));
    h["jku"] = json!("https://evil.example/jwks");
    assert!(verify(&RSA_A.token(&h, &good_claims()), &keys).is_ok());
}

#[test]
fn malformed_tokens() {
    let keys = rsa_set();
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        "e30.e30",
        &"a".repeat(70_000),
    ] {
        assert!(
            matches!(
                verify(bad, &keys).unwrap_err(),
                IdTokenError::Malformed { .. }
            ),
            "{bad:.20}"
        );
    }
    assert_eq!(
        verify("a.b.c.d.e", &keys).unwrap_err(),
        IdTokenError::Encrypted
    );
    // Header without alg, header not JSON, payload not JSON.
    let no_alg = format!("{}.{}.sig", b64(b"{\"kid\":\"a\"}"), b64(b"{}"));
    assert!(matches!(
        verify(&no_alg, &keys).unwrap_err(),
        IdTokenError::Malformed { .. }
    ));
    let not_json = format!("{}.{}.sig", b64(b"nope"), b64(b"{}"));
    assert!(matches!(
        verify(&not_json, &keys).unwrap_err(),
        IdTokenError::Malformed { .. }
    ));
    let h = header("RS256", Some("a"));
    let message = format!("{}.{}", b64(h.to_string().as_bytes()), b64(b"[1,2]"));
    let sig = RSA_A.sign_bytes("RS256", message.as_bytes());
    let e = verify(&format!("{message}.{}", b64(&sig)), &keys).unwrap_err();
    assert!(
        matches!(e, IdTokenError::Malformed { ref reason } if reason.contains("payload")),
        "{e}"
    );
    // Errors never echo the token.
    let token = rs256(&with(good_claims(), "iss", json!("x")));
    let e = verify(&token, &keys).unwrap_err();
    assert!(!e.to_string().contains(&token[..20]));
}

#[test]
fn key_choice_by_kid_and_without() {
    // Missing kid, one key: used.
    let one = jwks(&[RSA_A.jwk(None)]);
    assert!(verify(&RSA_A.token(&header("RS256", None), &good_claims()), &one).is_ok());
    // Missing kid, one fitting key among others of other types: used.
    let mixed = jwks(&[RSA_A.jwk(Some("a")), EC.jwk(Some("ec"))]);
    assert!(verify(&RSA_A.token(&header("RS256", None), &good_claims()), &mixed).is_ok());
    // Missing kid, several fitting keys: refused, no refetch.
    let two = jwks(&[RSA_A.jwk(Some("a")), RSA_B.jwk(Some("b"))]);
    let e = verify(&RSA_A.token(&header("RS256", None), &good_claims()), &two).unwrap_err();
    assert_eq!(
        e,
        IdTokenError::AmbiguousKey {
            kid: None,
            candidates: 2
        }
    );
    assert!(!asks_for_keys(&e));
    // With a kid, the right one of several.
    assert!(
        verify(
            &RSA_B.token(&header("RS256", Some("b")), &good_claims()),
            &two
        )
        .is_ok()
    );
    // Missing kid and nothing fits: refetch may help.
    let ec_only = jwks(&[EC.jwk(Some("ec"))]);
    let e = verify(
        &RSA_A.token(&header("RS256", None), &good_claims()),
        &ec_only,
    )
    .unwrap_err();
    assert_eq!(
        e,
        IdTokenError::NoMatchingKey {
            alg: SigningAlgorithm::RS256
        }
    );
    assert!(asks_for_keys(&e));
    // The kid names a key of the wrong type: refused, no refetch.
    let e = verify(
        &RSA_A.token(&header("RS256", Some("ec")), &good_claims()),
        &ec_only,
    )
    .unwrap_err();
    assert!(matches!(e, IdTokenError::KeyMismatch { .. }));
    assert!(!asks_for_keys(&e));
    // A key whose own alg differs does not fit.
    let mut pinned = RSA_A.jwk(Some("a"));
    pinned["alg"] = json!("PS256");
    let v = IdTokenVerifier::new(ISSUER, &client(), &algs(&["RS256", "PS256"]));
    let e = verify_with(&v, &rs256(&good_claims()), &jwks(&[pinned]), NOW).unwrap_err();
    assert!(matches!(e, IdTokenError::KeyMismatch { .. }));
}

#[test]
fn duplicate_kids_are_narrowed_by_alg() {
    let v = IdTokenVerifier::new(ISSUER, &client(), &algs(&["RS256", "ES256"]));
    let same_kid = jwks(&[RSA_A.jwk(Some("k1")), EC.jwk(Some("k1"))]);
    assert!(
        verify_with(
            &v,
            &RSA_A.token(&header("RS256", Some("k1")), &good_claims()),
            &same_kid,
            NOW
        )
        .is_ok()
    );
    assert!(
        verify_with(
            &v,
            &EC.token(&header("ES256", Some("k1")), &good_claims()),
            &same_kid,
            NOW
        )
        .is_ok()
    );
    let two_rsa = jwks(&[RSA_A.jwk(Some("k1")), RSA_B.jwk(Some("k1"))]);
    let e = verify_with(
        &v,
        &RSA_A.token(&header("RS256", Some("k1")), &good_claims()),
        &two_rsa,
        NOW,
    )
    .unwrap_err();
    assert_eq!(
        e,
        IdTokenError::AmbiguousKey {
            kid: Some("k1".into()),
            candidates: 2
        }
    );
}

#[test]
fn unknown_kid_asks_for_a_rate_limited_refetch() {
    let old_set = jwks(&[RSA_A.jwk(Some("old"))]);
    let new_set = jwks(&[RSA_A.jwk(Some("old")), RSA_B.jwk(Some("new"))]);
    let token = RSA_B.token(&header("RS256", Some("new")), &good_claims());
    let e = verify(&token, &old_set).unwrap_err();
    assert_eq!(e, IdTokenError::UnknownKey { kid: "new".into() });
    assert!(asks_for_keys(&e));
    assert!(e.to_string().contains("fetch the JWKS again"));

    // The driver's loop: ask the key cache, fetch when it says so, then check once more.
    let jwks_uri = "https://accounts.example.com/jwks".parse().unwrap();
    let mut cache = KeyCache::new(
        old_set.clone(),
        Some(jwks_uri),
        JwksRefreshPolicy {
            min_interval: Duration::from_secs(60),
        },
    );
    let mut fetches = 0;
    let mut drive = |token: &str, now: u64, fetches: &mut u32| {
        let (keys, generation) = cache.snapshot();
        let e = match verify_with(&verifier(), token, &keys, now) {
            Err(e) => e,
            ok => return ok,
        };
        let error = nethealth_oidc_core::Error::IdToken(e.clone());
        match cache.handle_check_failure(&error, generation, UnixTime::from_secs(now)) {
            KeyAction::Fetch { .. } => {
                *fetches += 1;
                cache.install(new_set.clone());
                verify_with(&verifier(), token, &cache.keys(), now)
            }
            _ => Err(e),
        }
    };
    assert!(drive(&token, NOW, &mut fetches).is_ok());
    assert_eq!(fetches, 1, "the first refetch is allowed at once");
    // A flood of random kids: at most one refetch per minute.
    for i in 0..1_000u64 {
        let kid = format!("random-{i}");
        let forged = RSA_B.token(&header("RS256", Some(&kid)), &good_claims());
        let now = NOW + i / 10; // 100 seconds of flood
        let e = drive(&forged, now, &mut fetches).unwrap_err();
        assert!(matches!(e, IdTokenError::UnknownKey { .. }));
    }
    assert_eq!(fetches, 2, "the rotation at the start, one more after 60 s");
}

#[test]
fn empty_usable_set_is_reported_clearly() {
    let set = JwkSet::from_json(
        br#"{"keys":[{"kty":"oct","kid":"s","k":"AA"},{"kty":"RSA","kid":"enc","use":"enc","n":"AA","e":"AQAB"}]}"#,
    )
    .unwrap();
    let e = verify(&rs256(&good_claims()), &set).unwrap_err();
    match &e {
        IdTokenError::NoUsableKeys {
            unusable: 2,
            reasons,
        } => {
            assert!(
                reasons.contains("oct") && reasons.contains("enc"),
                "{reasons}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(asks_for_keys(&e));
    assert!(e.to_string().contains("no usable signing key"));
}

#[test]
fn standard_base64_jwk_verifies() {
    let set = jwks(&[RSA_A.jwk_standard_base64("a")]);
    assert_eq!(set.keys().len(), 1, "{:?}", set.skipped());
    assert!(verify(&rs256(&good_claims()), &set).is_ok());
}

#[test]
fn refresh_continuity() {
    let keys = rsa_set();
    let original = verify(&rs256(&good_claims()), &keys).unwrap();
    let v = verifier();
    let refresh = |claims: Value| {
        v.verify_refreshed(
            &IdToken::new(rs256(&claims)),
            &keys,
            &original,
            None,
            UnixTime::from_secs(NOW),
        )
    };
    // Same user, no nonce: fine. Same nonce: fine.
    assert!(refresh(without(good_claims(), "nonce")).is_ok());
    assert!(refresh(good_claims()).is_ok());
    assert_eq!(
        refresh(with(good_claims(), "sub", json!("someone-else"))).unwrap_err(),
        IdTokenError::RefreshChanged { claim: "sub" }
    );
    assert_eq!(
        refresh(with(good_claims(), "nonce", json!("other"))).unwrap_err(),
        IdTokenError::RefreshChanged { claim: "nonce" }
    );
    assert_eq!(
        refresh(with(good_claims(), "auth_time", json!(NOW - 5))).unwrap_err(),
        IdTokenError::RefreshChanged { claim: "auth_time" }
    );
    assert!(refresh(without(good_claims(), "auth_time")).is_ok());
    let multi = with(
        with(good_claims(), "aud", json!([CLIENT_ID, "api"])),
        "azp",
        json!(CLIENT_ID),
    );
    assert_eq!(
        refresh(multi).unwrap_err(),
        IdTokenError::RefreshChanged { claim: "aud" }
    );
    // iss, directly on claims (a verifier would refuse another issuer first).
    let mut moved = original.clone();
    moved.iss = "https://other.example.com".into();
    assert_eq!(
        check_refresh_continuity(&original, &moved).unwrap_err(),
        IdTokenError::RefreshChanged { claim: "iss" }
    );
    // aud compared as a set.
    let mut a = original.clone();
    a.aud = vec!["x".into(), "y".into()];
    let mut b = original.clone();
    b.aud = vec!["y".into(), "x".into()];
    assert!(check_refresh_continuity(&a, &b).is_ok());
    // A nonce appearing where the original had none is refused.
    let mut no_nonce = original.clone();
    no_nonce.nonce = None;
    assert!(check_refresh_continuity(&no_nonce, &original).is_err());
    // A refreshed token is still fully verified (expired here).
    let e = v
        .verify_refreshed(
            &IdToken::new(rs256(&good_claims())),
            &keys,
            &original,
            None,
            UnixTime::from_secs(NOW + 3600),
        )
        .unwrap_err();
    assert!(matches!(e, IdTokenError::Expired { .. }));
}

#[test]
fn verifier_is_shareable() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<IdTokenVerifier>();
    assert_send_sync_clone::<JwkSet>();
    assert_send_sync_clone::<IdTokenError>();
    // Debug never shows the client secret.
    let v = IdTokenVerifier::new(ISSUER, &client(), &algs(&["HS256"]));
    assert!(!format!("{v:?}").contains("client-secret-123"));
}

/// Whether a key cache would fetch the keys again after this error (it never does for errors new keys cannot fix).
fn asks_for_keys(e: &IdTokenError) -> bool {
    let jwks_uri = "https://accounts.example.com/jwks".parse().unwrap();
    let mut cache = KeyCache::new(
        JwkSet::default(),
        Some(jwks_uri),
        JwksRefreshPolicy::default(),
    );
    let error = nethealth_oidc_core::Error::IdToken(e.clone());
    matches!(
        cache.handle_check_failure(&error, 0, UnixTime::from_secs(NOW)),
        KeyAction::Fetch { .. }
    )
}
