//! Test support for the ID-token tests: keys generated with aws-lc-rs, JWKs, and token signing.
#![allow(dead_code, unreachable_pub)]

use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use nethealth_oidc_core::jwks::JwkSet;
use serde_json::{Value, json};

pub const ISSUER: &str = "https://accounts.example.com";
pub const CLIENT_ID: &str = "nethealth-app";
pub const NOW: u64 = 1_800_000_000;
pub const NONCE: &str = "n-0S6_WzA2Mj";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key that can sign tokens and describe its public JWK.
pub enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

// RSA generation is slow: one or two keys per test binary.
pub static RSA_A: LazyLock<Key> =
    LazyLock::new(|| Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()));
pub static RSA_B: LazyLock<Key> =
    LazyLock::new(|| Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()));
pub static EC: LazyLock<Key> = LazyLock::new(|| {
    Key::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
});
pub static ED: LazyLock<Key> = LazyLock::new(|| Key::Ed(Ed25519KeyPair::generate().unwrap()));

impl Key {
    /// The public JWK, base64url-encoded, with `kid` when given.
    pub fn jwk(&self, kid: Option<&str>) -> Value {
        let mut v = match self {
            Key::Rsa(k) => {
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Key::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Key::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
        };
        if let Some(kid) = kid {
            v["kid"] = json!(kid);
        }
        v
    }

    /// The RSA public key as standard base64 with padding (older IdentityServer builds).
    pub fn jwk_standard_base64(&self, kid: &str) -> Value {
        let Key::Rsa(k) = self else {
            panic!("RSA only")
        };
        let c = RsaPublicKeyComponents::<Vec<u8>>::from(k.public_key());
        json!({"kty": "RSA", "kid": kid, "use": "sig", "n": STANDARD.encode(&c.n), "e": STANDARD.encode(&c.e)})
    }

    /// The RSA public key as PKCS#1 DER (what `UnparsedPublicKey` takes).
    pub fn rsa_public_der(&self) -> Vec<u8> {
        let Key::Rsa(k) = self else {
            panic!("RSA only")
        };
        k.public_key().as_ref().to_vec()
    }

    /// Signs `header.payload` with the algorithm `alg` names and returns the signature bytes.
    pub fn sign_bytes(&self, alg: &str, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Rsa(k) => {
                let enc: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(enc, &rng, message, &mut sig).unwrap();
                sig
            }
            Key::Ec(k) => k.sign(&rng, message).unwrap().as_ref().to_vec(),
            Key::Ed(k) => k.sign(message).as_ref().to_vec(),
        }
    }

    /// A compact JWS of `header` and `claims`, signed with this key.
    pub fn token(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().unwrap_or("RS256").to_owned();
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign_bytes(&alg, message.as_bytes());
        format!("{message}.{}", b64(&sig))
    }
}

/// A token signed with HMAC-SHA-256 keyed with `secret`.
pub fn hs256_token(secret: &[u8], header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
    format!("{message}.{}", b64(tag.as_ref()))
}

/// Claims that pass every check for [`ISSUER`], [`CLIENT_ID`], [`NONCE`] at [`NOW`].
pub fn good_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "818727",
        "exp": NOW + 300,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "auth_time": NOW - 20,
        "nonce": NONCE,
        "idp": "idsrv",
        "amr": ["password"],
    })
}

pub fn header(alg: &str, kid: Option<&str>) -> Value {
    let mut h = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        h["kid"] = json!(kid);
    }
    h
}

pub fn jwks(keys: &[Value]) -> JwkSet {
    let body = json!({ "keys": keys }).to_string();
    JwkSet::from_json(body.as_bytes()).unwrap()
}
