//! Signing keys: RSA-2048 generated with aws-lc-rs, JWTs signed and checked with jsonwebtoken (RS256).

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use sha2::{Digest, Sha256};

/// Why a signing key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// aws-lc-rs failed to generate or export an RSA key.
    #[error(
        "RSA key generation failed in aws-lc-rs: check that the crypto library built correctly"
    )]
    Generate,
}

/// One RSA-2048 signing key with its `kid`.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key pair.
    pub(crate) fn generate() -> Result<SigningKey, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(|_| KeyError::Generate)?;
        // jsonwebtoken's aws-lc-rs backend wants the PKCS#1 `RSAPrivateKey`, which PKCS#8 wraps.
        let pkcs1 = pkcs8_inner_key(pkcs8.as_ref()).ok_or(KeyError::Generate)?;
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let digest = Sha256::digest(&components.n);
        let kid = digest[..10].iter().map(|b| format!("{b:02X}")).collect();
        Ok(SigningKey {
            kid,
            encoding: Arc::new(EncodingKey::from_rsa_der(pkcs1)),
            decoding: Arc::new(DecodingKey::from_rsa_raw_components(
                &components.n,
                &components.e,
            )),
            n: components.n,
            e: components.e,
        })
    }

    /// Signs `claims` as an RS256 JWT whose header carries this key's `kid`.
    pub(crate) fn sign(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| KeyError::Generate)
    }

    /// The key for checking signatures.
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public JWK. `standard_base64` writes `n` and `e` in padded standard base64, as older IdentityServer3
    /// builds did; otherwise base64url without padding (RFC 7518).
    pub(crate) fn jwk(&self, standard_base64: bool) -> serde_json::Value {
        let enc = |bytes: &[u8]| {
            if standard_base64 {
                STANDARD.encode(bytes)
            } else {
                URL_SAFE_NO_PAD.encode(bytes)
            }
        };
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "e": enc(&self.e),
            "n": enc(&self.n),
        })
    }
}

/// The private key inside a PKCS#8 v1 `PrivateKeyInfo` (RFC 5208): the content of its third element, an OCTET
/// STRING. Only ever given aws-lc-rs' own output; `None` if the layout is not the expected one.
fn pkcs8_inner_key(der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    let (tag, body, _) = der_element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, _version, rest) = der_element(body)?;
    if tag != INTEGER {
        return None;
    }
    let (tag, _algorithm, rest) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, key, _) = der_element(rest)?;
    (tag == OCTET_STRING).then_some(key)
}

/// Splits one DER element off `input`: `(tag, content, rest)`.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// `at_hash`: base64url of the left half of SHA-256 of the access token (OpenID Connect Core §3.1.3.6).
pub(crate) fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The key ring: keys published in the JWKS, the key that signs, and its publication state.
#[derive(Debug, Clone)]
pub(crate) struct KeyRing {
    /// Keys in the JWKS, oldest first.
    pub(crate) published: Vec<SigningKey>,
    /// The key new tokens are signed with; it may be missing from `published`.
    pub(crate) signing: SigningKey,
}

impl KeyRing {
    pub(crate) fn new(key: SigningKey) -> KeyRing {
        KeyRing {
            published: vec![key.clone()],
            signing: key,
        }
    }

    /// Publishes `key` and signs with it; the previous signing key stays published, older keys are dropped.
    pub(crate) fn rotate(&mut self, key: SigningKey) {
        self.publish();
        let previous = self.signing.kid.clone();
        self.published.retain(|k| k.kid == previous);
        self.published.push(key.clone());
        self.signing = key;
    }

    /// Signs with `key` without publishing it.
    pub(crate) fn rotate_unpublished(&mut self, key: SigningKey) {
        self.publish();
        self.signing = key;
    }

    /// Publishes the signing key if it is not yet.
    pub(crate) fn publish(&mut self) {
        if !self.published.iter().any(|k| k.kid == self.signing.kid) {
            self.published.push(self.signing.clone());
        }
    }

    /// Drops every published key but the signing key.
    pub(crate) fn retire_old(&mut self) {
        let current = self.signing.kid.clone();
        self.published.retain(|k| k.kid == current);
    }

    /// The published key with this `kid`.
    pub(crate) fn find_published(&self, kid: &str) -> Option<&SigningKey> {
        self.published.iter().find(|k| k.kid == kid)
    }

    pub(crate) fn jwks(&self, standard_base64: bool) -> serde_json::Value {
        let keys: Vec<_> = self
            .published
            .iter()
            .map(|k| k.jwk(standard_base64))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_verifies() {
        let key = SigningKey::generate().expect("key");
        let token = key
            .sign(&serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}))
            .expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, key.decoding_key(), &validation)
                .expect("verify");
        assert_eq!(data.claims["sub"], "x");
        let other = SigningKey::generate().expect("key");
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&token, other.decoding_key(), &validation)
                .is_err()
        );
    }

    #[test]
    fn jwk_encodings() {
        let key = SigningKey::generate().expect("key");
        let std = key.jwk(true);
        let url = key.jwk(false);
        let n_std = std["n"].as_str().expect("n");
        let n_url = url["n"].as_str().expect("n");
        assert_eq!(STANDARD.decode(n_std).expect("std"), key.n);
        assert_eq!(URL_SAFE_NO_PAD.decode(n_url).expect("url"), key.n);
        assert!(n_std.ends_with('='), "2048-bit n pads in standard base64");
        assert!(!n_url.contains(['=', '+', '/']));
        assert_eq!(std["e"], "AQAB");
    }

    #[test]
    fn der_walker_rejects_bad_input() {
        assert_eq!(pkcs8_inner_key(&[]), None);
        assert_eq!(pkcs8_inner_key(&[0x30, 0x05, 0x02]), None);
        assert_eq!(pkcs8_inner_key(&[0x31, 0x00]), None);
        assert_eq!(pkcs8_inner_key(&[0x30, 0x80]), None);
        // SEQUENCE { INTEGER 0, SEQUENCE {}, OCTET STRING "ab" }
        let ok = [
            0x30, 0x09, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x02, b'a', b'b',
        ];
        assert_eq!(pkcs8_inner_key(&ok), Some(&b"ab"[..]));
    }

    #[test]
    fn ring_rotation() {
        let a = SigningKey::generate().expect("key");
        let b = SigningKey::generate().expect("key");
        let c = SigningKey::generate().expect("key");
        let mut ring = KeyRing::new(a.clone());
        ring.rotate_unpublished(b.clone());
        assert!(ring.find_published(&b.kid).is_none());
        assert_eq!(ring.signing.kid, b.kid);
        ring.rotate(c.clone());
        let kids: Vec<_> = ring.published.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, vec![b.kid.clone(), c.kid.clone()]);
        ring.retire_old();
        assert_eq!(ring.published.len(), 1);
        assert_eq!(at_hash("abc").len(), 22);
    }
}
