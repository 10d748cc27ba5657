//! DPoP (RFC 9449): sender-constrained tokens. A [`DpopKey`] signs a proof JWT for every request to the token
//! endpoint and to resource servers; the server binds the token to the key's thumbprint (`cnf.jkt`), so a stolen
//! token is useless without the key.
//!
//! ```text
//!  DpopKey::generate(rng)                         (one key per session, ES256, held in memory)
//!  key.sign(&request, access_token, &nonces, now, rng) ─▶ the request with `DPoP: <proof>`
//!        (and `Authorization: DPoP <token>` for a resource call)
//!  the driver sends it
//!  nonces.handle_response(url, status, headers, body) ─▶ true: a `use_dpop_nonce` challenge; sign again with the
//!        nonce just remembered and send exactly once more (never a third time)
//! ```
//!
//! The proof's header is `{"typ":"dpop+jwt","alg":"ES256","jwk":{public key}}`; its claims are `jti` (random, from
//! the `rng` argument), `htm` (the method), `htu` (the URL without query and fragment), `iat` (the `now` argument),
//! `ath` (base64url SHA-256 of the access token, resource calls only) and `nonce` (when the server gave one).
//! The signature is aws-lc-rs's ECDSA P-256 over the key pair parsed once, at creation; aws-lc-rs draws the ECDSA
//! per-signature secret itself.
//!
//! **Storage.** A key is kept with the token set only when asked ([`DpopKey::stored`], set by
//! `ClientOptions::with_dpop_key_stored`); otherwise a stored set carries no key, and a session resumed from it
//! needs a new login ([`DpopError::MissingKey`]). A stored key is a versioned object
//! `{"v":1,"alg":"ES256","pkcs8":"<base64url>"}`; it is as secret as a refresh token.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use rand::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use url::Url;
use zeroize::Zeroizing;

use crate::error::{ErrorCode, OAuthError};
use crate::secret::AccessToken;
use crate::time::UnixTime;

/// The `DPoP` request header, which carries the proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header, which carries the server's nonce.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// The one proof algorithm this client signs with.
pub const ALGORITHM: &str = "ES256";
/// The longest server nonce kept, in bytes; a longer one is ignored.
const MAX_NONCE: usize = 512;
/// The version of the stored key format.
const STORED_VERSION: u32 = 1;

/// Why DPoP could not be used.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// The server lists DPoP algorithms, and ES256 is not among them.
    #[error(
        "the server accepts DPoP proofs signed with [{}] only, and this client signs with ES256: turn DPoP off for \
         this client (ClientOptions::with_dpop(false)) or enable ES256 at the server",
        .supported.join(", ")
    )]
    UnsupportedAlgorithm {
        /// The algorithms the server lists.
        supported: Vec<String>,
    },
    /// The key could not be created, loaded or used.
    #[error(
        "the DPoP key ({key}) cannot sign: {reason}; drop the stored token set and log in again, which creates a new \
         key"
    )]
    Key {
        /// Which key (its thumbprint, or where it came from).
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// The token set is DPoP-bound, but its key was not kept (it is stored only when asked).
    #[error(
        "the access token is DPoP-bound, but its DPoP key was not kept with the stored tokens: log in again, and \
         keep the key with ClientOptions::with_dpop_key_stored(true) if sessions must survive a restart"
    )]
    MissingKey,
    /// The request's URL cannot be named in a proof.
    #[error("the request URL `{0}` cannot carry a DPoP proof: it must be an absolute http(s) URL")]
    BadUrl(String),
}

/// A DPoP key pair (ECDSA P-256, ES256), parsed once and cheap to clone.
///
/// `Debug` shows the algorithm and the public thumbprint only; the private key never leaves aws-lc-rs except as the
/// stored form, built on demand in a zeroized buffer. aws-lc-rs clears the key's memory when it is freed.
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyInner>,
    stored: bool,
}

struct KeyInner {
    pair: EcdsaKeyPair,
    /// The header's prefix up to the public JWK, serialized once.
    header_b64: String,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &ALGORITHM)
            .field("jkt", &self.inner.thumbprint)
            .field("stored", &self.stored)
            .finish()
    }
}

impl DpopKey {
    /// A new key, its private scalar drawn from `rng`.
    pub fn generate(rng: &mut (impl CryptoRng + ?Sized)) -> Result<Self, DpopError> {
        // A 32-byte draw falls outside the P-256 group order with odds of about 2^-32; draw again then.
        for _ in 0..8 {
            let mut scalar = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(scalar.as_mut());
            if let Ok(key) = Self::from_scalar(&scalar) {
                return Ok(key);
            }
        }
        Err(DpopError::Key {
            key: String::from("a new key"),
            reason: "the random source gave no valid P-256 scalar in 8 draws",
        })
    }

    /// The key with the private scalar `scalar` (big-endian): for tests with fixed keys.
    pub fn from_scalar(scalar: &[u8; 32]) -> Result<Self, DpopError> {
        let bad = |reason| DpopError::Key {
            key: String::from("a new key"),
            reason,
        };
        let private = aws_lc_rs::agreement::PrivateKey::from_private_key(
            &aws_lc_rs::agreement::ECDH_P256,
            scalar,
        )
        .map_err(|_| bad("the scalar is not a valid P-256 private key"))?;
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = private
            .as_der()
            .map_err(|_| bad("the key could not be encoded as PKCS#8"))?;
        Self::from_pkcs8(der.as_ref())
    }

    /// Loads a key from PKCS#8 DER (an EC P-256 private key).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, DpopError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|_| {
                DpopError::Key {
                    key: String::from("the PKCS#8 key given"),
                    reason: "it is not an EC P-256 private key in PKCS#8 DER",
                }
            })?;
        let point = pair.public_key().as_ref();
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        if point.len() != 65 || point[0] != 4 {
            return Err(DpopError::Key {
                key: String::from("the PKCS#8 key given"),
                reason: "its public key is not an uncompressed P-256 point",
            });
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{canonical}}}"#);
        Ok(DpopKey {
            inner: Arc::new(KeyInner {
                pair,
                header_b64: URL_SAFE_NO_PAD.encode(header),
                thumbprint,
            }),
            stored: false,
        })
    }

    /// The key's JWK SHA-256 thumbprint (RFC 7638), base64url: the `jkt` a bound token's `cnf` names.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// Whether the key is kept with the token set when the set is stored.
    pub fn is_stored(&self) -> bool {
        self.stored
    }

    /// The key, kept with the token set when the set is stored (`true`) or not (`false`, the default).
    pub fn stored(mut self, stored: bool) -> Self {
        self.stored = stored;
        self
    }

    /// A proof for a `method` request to `url` (its query and fragment are left out of `htu`), with `ath` for
    /// `access_token` and the server's `nonce`, issued at `now`; the `jti` is drawn from `rng`.
    pub fn proof(
        &self,
        method: &http::Method,
        url: &Url,
        access_token: Option<&AccessToken>,
        nonce: Option<&str>,
        now: UnixTime,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<String, DpopError> {
        let mut jti = [0u8; 16];
        rng.fill_bytes(&mut jti);
        self.proof_inner(
            method,
            url,
            access_token,
            nonce,
            now,
            &URL_SAFE_NO_PAD.encode(jti),
        )
    }

    /// [`proof`](Self::proof) with a fixed `jti`.
    pub(crate) fn proof_inner(
        &self,
        method: &http::Method,
        url: &Url,
        access_token: Option<&AccessToken>,
        nonce: Option<&str>,
        now: UnixTime,
        jti: &str,
    ) -> Result<String, DpopError> {
        let mut claims = serde_json::Map::new();
        claims.insert("jti".into(), jti.into());
        claims.insert("htm".into(), method.as_str().into());
        claims.insert("htu".into(), htu(url)?.into());
        claims.insert("iat".into(), now.as_secs().into());
        if let Some(token) = access_token {
            claims.insert("ath".into(), access_token_hash(token).into());
        }
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        let payload = serde_json::Value::Object(claims).to_string();
        crate::wire::compact_jws(&self.inner.header_b64, payload.as_bytes(), |message| {
            self.inner
                .pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
        })
        .map_err(|_| DpopError::Key {
            key: self.inner.thumbprint.clone(),
            reason: "aws-lc-rs refused to sign with it",
        })
    }

    /// A copy of `request` carrying a proof (with the nonce `nonces` holds for its server) and, for a resource
    /// call with `access_token`, `Authorization: DPoP <token>`.
    pub fn sign(
        &self,
        request: &Request<Vec<u8>>,
        access_token: Option<&AccessToken>,
        nonces: &DpopNonces,
        now: UnixTime,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Request<Vec<u8>>, DpopError> {
        let url = request_url(request.uri())?;
        let nonce = nonces.get(&url);
        let proof = self.proof(
            request.method(),
            &url,
            access_token,
            nonce.as_deref(),
            now,
            rng,
        )?;
        let mut signed = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(request.body().clone())
            .expect("the parts come from a valid request");
        *signed.headers_mut() = request.headers().clone();
        let proof = HeaderValue::from_str(&proof).expect("a compact JWS is printable ASCII");
        signed.headers_mut().insert(DPOP, proof);
        if let Some(token) = access_token {
            signed
                .headers_mut()
                .insert(AUTHORIZATION, authorization_header(token));
        }
        Ok(signed)
    }

    fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, DpopError> {
        self.inner
            .pair
            .to_pkcs8v1()
            .map(|doc| Zeroizing::new(doc.as_ref().to_vec()))
            .map_err(|_| DpopError::Key {
                key: self.inner.thumbprint.clone(),
                reason: "it could not be encoded as PKCS#8 for storage",
            })
    }
}

/// `Authorization: DPoP <token>`, marked sensitive.
pub fn authorization_header(token: &AccessToken) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("DPoP {}", token.expose_secret()))
        .unwrap_or_else(|_| HeaderValue::from_static("DPoP invalid-token"));
    value.set_sensitive(true);
    value
}

/// The error for a server that answered the one retry with yet another nonce challenge: `use_dpop_nonce` from
/// `endpoint`, never answered a second time.
pub fn nonce_challenge_repeated(endpoint: crate::error::Endpoint) -> crate::error::ResponseError {
    crate::error::ResponseError::OAuth {
        endpoint,
        error: OAuthError::new(
            "use_dpop_nonce",
            Some("the server asked for a new DPoP nonce again after the one retry with its nonce"),
            None,
        ),
    }
}

/// `ath`: base64url(SHA-256(access token)).
pub fn access_token_hash(token: &AccessToken) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.expose_secret().as_bytes()))
}

/// `htu`: the URL without query and fragment.
pub fn htu(url: &Url) -> Result<String, DpopError> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(DpopError::BadUrl(crate::error::truncate(url.as_str(), 200)));
    }
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.into())
}

fn request_url(uri: &http::Uri) -> Result<Url, DpopError> {
    Url::parse(&uri.to_string())
        .map_err(|_| DpopError::BadUrl(crate::error::truncate(&uri.to_string(), 200)))
}

/// The latest `DPoP-Nonce` each server (scheme, host and port) gave, shared by every session of a client.
#[derive(Debug, Default)]
pub struct DpopNonces {
    by_origin: Mutex<HashMap<String, String>>,
}

impl DpopNonces {
    /// The nonce to send to `url`'s server, if it gave one.
    pub fn get(&self, url: &Url) -> Option<String> {
        self.lock()
            .get(&url.origin().ascii_serialization())
            .cloned()
    }

    /// Remembers a `DPoP-Nonce` the response to a request to `url` carries (on any status), and says whether the
    /// response is a nonce challenge to answer with one more request: a 400 `use_dpop_nonce` error body (token
    /// endpoint) or a 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` (resource server), with a nonce.
    pub fn handle_response(
        &self,
        url: &Url,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> bool {
        let nonce = headers
            .get(DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE);
        let Some(nonce) = nonce else {
            return false;
        };
        self.lock()
            .insert(url.origin().ascii_serialization(), nonce.to_owned());
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
                OAuthError::from_json(body).is_some_and(|e| e.code == ErrorCode::UseDpopNonce)
                    || headers
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .any(is_dpop_nonce_challenge)
            }
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-updated: every update is one insert.
        self.by_origin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a `WWW-Authenticate` value is a `DPoP` challenge with `error="use_dpop_nonce"`.
fn is_dpop_nonce_challenge(value: &str) -> bool {
    let value = value.trim_start();
    let Some(scheme) = value.get(..4) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("dpop")
        && value[4..]
            .split(',')
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("error")
                    && v.trim().trim_matches('"') == "use_dpop_nonce"
            })
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    v: u32,
    alg: String,
    pkcs8: String,
}

impl Serialize for DpopKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let der = self.to_pkcs8().map_err(serde::ser::Error::custom)?;
        StoredKey {
            v: STORED_VERSION,
            alg: ALGORITHM.into(),
            pkcs8: URL_SAFE_NO_PAD.encode(der.as_slice()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DpopKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let stored = StoredKey::deserialize(deserializer)?;
        let pkcs8 = Zeroizing::new(stored.pkcs8);
        if stored.v != STORED_VERSION || stored.alg != ALGORITHM {
            return Err(D::Error::custom(format!(
                "a stored DPoP key of version {} and algorithm {:?}, which this version cannot read: log in again",
                stored.v,
                crate::error::truncate(&stored.alg, 16)
            )));
        }
        let der =
            Zeroizing::new(URL_SAFE_NO_PAD.decode(pkcs8.as_bytes()).map_err(|_| {
                D::Error::custom("the stored DPoP key is not base64url: log in again")
            })?);
        DpopKey::from_pkcs8(&der)
            .map(|key| key.stored(true))
            .map_err(D::Error::custom)
    }
}

/// Whether a token set's key is to be left out of the stored set (serde's `skip_serializing_if`).
pub(crate) fn not_stored(key: &Option<DpopKey>) -> bool {
    key.as_ref().is_none_or(|k| !k.stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    fn key() -> DpopKey {
        DpopKey::from_scalar(&[7u8; 32]).unwrap()
    }

    fn decode(proof: &str) -> (serde_json::Value, serde_json::Value) {
        let header = jsonwebtoken::decode_header(proof).unwrap();
        let jwk = header.jwk.clone().unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(proof, &decoding, &validation).unwrap();
        let raw_header = URL_SAFE_NO_PAD
            .decode(proof.split('.').next().unwrap())
            .unwrap();
        (serde_json::from_slice(&raw_header).unwrap(), data.claims)
    }

    #[test]
    fn proof_verifies_with_its_jwk_and_names_the_request() {
        let url = Url::parse("https://rs.example/api/patients?id=7#x").unwrap();
        let token = AccessToken::new("tok");
        let proof = key()
            .proof_inner(
                &http::Method::GET,
                &url,
                Some(&token),
                Some("n-1"),
                UnixTime::from_secs(1000),
                "jti-1",
            )
            .unwrap();
        let (header, claims) = decode(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(
            header["jwk"].get("d").is_none(),
            "no private part: {header}"
        );
        assert_eq!(
            claims,
            serde_json::json!({
                "jti": "jti-1", "htm": "GET", "htu": "https://rs.example/api/patients", "iat": 1000,
                "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok")), "nonce": "n-1",
            })
        );
    }

    #[test]
    fn thumbprint_matches_jsonwebtoken() {
        let k = key();
        let proof = k
            .proof_inner(
                &http::Method::POST,
                &Url::parse("https://a.example/t").unwrap(),
                None,
                None,
                UnixTime::from_secs(1),
                "j",
            )
            .unwrap();
        let jwk = jsonwebtoken::decode_header(&proof).unwrap().jwk.unwrap();
        assert_eq!(
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            k.thumbprint()
        );
    }

    #[test]
    fn stored_form_round_trips_and_debug_is_redacted() {
        let k = key().stored(true);
        let json = serde_json::to_string(&k).unwrap();
        assert!(json.contains(r#""v":1"#), "{json}");
        let back: DpopKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back.thumbprint(), k.thumbprint());
        assert!(back.is_stored());
        let debug = format!("{k:?}");
        assert!(!debug.contains(&json[20..40]), "{debug}");
        let bad = json.replace(r#""v":1"#, r#""v":9"#);
        let err = serde_json::from_str::<DpopKey>(&bad).unwrap_err();
        assert!(err.to_string().contains("log in again"), "{err}");
    }

    #[test]
    fn nonce_challenges() {
        let nonces = DpopNonces::default();
        let url = Url::parse("https://a.example/token").unwrap();
        let mut headers = HeaderMap::new();
        let body = br#"{"error":"use_dpop_nonce"}"#;
        assert!(!nonces.handle_response(&url, StatusCode::BAD_REQUEST, &headers, body));
        headers.insert(DPOP_NONCE, HeaderValue::from_static("n1"));
        assert!(nonces.handle_response(&url, StatusCode::BAD_REQUEST, &headers, body));
        assert_eq!(
            nonces
                .get(&Url::parse("https://a.example/other?q").unwrap())
                .as_deref(),
            Some("n1")
        );
        assert_eq!(nonces.get(&Url::parse("https://b.example/").unwrap()), None);
        assert!(!nonces.handle_response(&url, StatusCode::OK, &headers, b"{}"));
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP algs="ES256", error="use_dpop_nonce""#),
        );
        assert!(nonces.handle_response(&url, StatusCode::UNAUTHORIZED, &headers, b""));
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP error="invalid_token""#),
        );
        assert!(!nonces.handle_response(&url, StatusCode::UNAUTHORIZED, &headers, b""));
    }

    #[test]
    fn generate_uses_the_rng() {
        use rand::SeedableRng as _;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = DpopKey::generate(&mut rng).unwrap();
        let b = DpopKey::generate(&mut rng).unwrap();
        assert_ne!(a.thumbprint(), b.thumbprint());
        let c = DpopKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(a.thumbprint(), c.thumbprint());
    }
}
