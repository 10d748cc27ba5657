//! Client authentication at the token endpoint, in one place: every request that authenticates the client (code
//! exchange, refresh, client credentials, revocation, introspection, the device flow, pushed authorization requests)
//! is built by [`form_request`].
//!
//! ```text
//!  ClientAuth::resolve(metadata, client)      once per client: the method, and for JWT methods the algorithm
//!          |                                  and the assertion's `aud`
//!          v
//!  form_request(endpoint, client, &auth, params, &RequestStamp::draw(rng, now))
//!          |     client_secret_basic: Authorization: Basic ...      client_secret_post: id and secret in the body
//!          |     none: client_id in the body
//!          |     private_key_jwt / client_secret_jwt (RFC 7523, OIDC Core §9): client_assertion_type and a fresh
//!          v     client_assertion signed by ClientKey (RS256, RS384, PS256, ES256, ES384) or HS256 with the secret
//!  http::Request<Vec<u8>>
//! ```
//!
//! **The assertion** has `iss` = `sub` = the client id, `aud` = the token endpoint (or the issuer, see
//! [`AssertionAudience`]), the `jti` and `iat` of the [`RequestStamp`], and `exp` = `iat` + [`ASSERTION_LIFETIME`].
//! A stamp is drawn per request ([`RequestStamp::draw`]), so no two requests share a `jti`; the core draws no
//! randomness and reads no clock itself.
//!
//! **The algorithm** is chosen once, by [`ClientAuth::resolve`], from the provider's
//! `token_endpoint_auth_signing_alg_values_supported`: the key's own algorithm when it names one
//! ([`ClientKey::with_algorithm`]), else the first the key can sign with (RSA: RS256, RS384, PS256; P-256: ES256;
//! P-384: ES384) that the provider lists. When none fits, [`TokenRequestError::NoSupportedSigningAlgorithm`] names
//! the ones the provider accepts.
//!
//! **The private key** ([`ClientKey`]) is loaded from PEM (PKCS#8, PKCS#1 or SEC1) or from a private JWK, and parsed
//! once, into an aws-lc-rs key pair that every assertion signs with. Its `Debug` shows the `kid` and the key type
//! only; every intermediate copy of its bytes is a `zeroize::Zeroizing` buffer, and aws-lc-rs clears the parsed key's
//! memory when it is freed; no error message carries any part of it.
//!
//! **The signature**: RS256/RS384 are RSASSA-PKCS1-v1_5, PS256 RSASSA-PSS, ES256/ES384 ECDSA with the fixed-length
//! (JWS) encoding, all from aws-lc-rs over the pre-parsed key; HS256 (`client_secret_jwt`) goes through
//! jsonwebtoken. jsonwebtoken's `encode` takes only an `EncodingKey`, and re-parses and re-checks a private key from
//! its bytes on every call (its `CryptoProvider` builds a signer per call): that cost 2.9 times the signature itself
//! for RSA-2048. The JWS compact form around the signature is three base64url parts (RFC 7515 §7.1), built as the
//! DPoP proof builds it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair as _,
};
use aws_lc_rs::signature::{
    RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;
use zeroize::Zeroizing;

use crate::client::{ClientConfig, TokenAuthMethod};
use crate::discovery::ProviderMetadata;
use crate::jwks::{KeyType, SigningAlgorithm};
use crate::secret::ClientAssertion;
use crate::time::UnixTime;
use crate::token::{TokenRequestError, basic_auth_header, choose_auth_method};
use crate::wire;

/// How long a client assertion is valid: `exp` is `iat` plus this (RFC 7523 §3 asks for a short lifetime; at most
/// five minutes here).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The per-request inputs of client authentication: the time and a fresh random `jti`.
///
/// Draw one per request with [`draw`](Self::draw); a stamp used twice makes the provider refuse the second request
/// as a replay. Proofs that need the same two values (DPoP) can take them from here too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStamp {
    now: UnixTime,
    jti: String,
}

impl RequestStamp {
    /// A stamp for a request sent at `now`, with 256 random bits from `rng` as its `jti`.
    pub fn draw(rng: &mut (impl CryptoRng + ?Sized), now: UnixTime) -> Self {
        Self::new_inner(now, crate::authorize::random_b64url(rng))
    }

    /// A stamp with a fixed `jti` (for tests).
    pub fn new_inner(now: UnixTime, jti: impl Into<String>) -> Self {
        RequestStamp {
            now,
            jti: jti.into(),
        }
    }

    /// The time of the request.
    pub fn now(&self) -> UnixTime {
        self.now
    }

    /// The `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }
}

/// The `aud` of client assertions.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertionAudience {
    /// The token endpoint URL, as OpenID Connect Core §9 asks (the default; also used at the revocation and
    /// introspection endpoints).
    #[default]
    TokenEndpoint,
    /// The issuer identifier, for servers that ask for it (RFC 7523bis, FAPI 2.0).
    Issuer,
}

/// Why a client key could not be loaded. No variant carries any part of the key.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not a PEM private key.
    #[error(
        "the client key is not a PEM private key ({reason}): give an unencrypted `BEGIN PRIVATE KEY` (PKCS#8), \
         `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block"
    )]
    Pem {
        /// What the PEM parser said.
        reason: String,
    },
    /// The key parsed, but aws-lc-rs refused it.
    #[error(
        "the client key was refused as {kind} private key ({reason}): use an RSA key of 2048 to 8192 bits, or an EC \
         key on P-256 or P-384"
    )]
    Rejected {
        /// What the key looked like (`an RSA`, `an EC`, `a PKCS#8`).
        kind: &'static str,
        /// aws-lc-rs' reason.
        reason: &'static str,
    },
    /// A private JWK lacks a member, or it is not base64url.
    #[error(
        "the client JWK has no usable `{0}`: give the private JWK (RSA: n, e, d, p, q, dp, dq, qi; EC: crv, x, y, \
         d), each base64url"
    )]
    JwkMember(&'static str),
    /// A JWK of a type this client cannot sign with.
    #[error("the client JWK is of type `{0}`: use an RSA key or an EC key on P-256 or P-384")]
    UnsupportedKeyType(String),
    /// The algorithm does not fit the key.
    #[error("{alg} cannot sign with this {key_type:?} key: use one of [{}]", .fits.join(", "))]
    AlgorithmMismatch {
        /// The algorithm asked for.
        alg: SigningAlgorithm,
        /// The key's type.
        key_type: KeyType,
        /// The algorithms the key can sign with.
        fits: Vec<String>,
    },
}

/// The client's private key for `private_key_jwt`: RSA (RS256, RS384, PS256) or EC (ES256 on P-256, ES384 on
/// P-384), with a `kid`.
///
/// Cheap to clone (shared). `Debug` shows the `kid` and the key type, never the key; the key bytes are zeroized on
/// drop. It has no `PartialEq` and no `Serialize`: keep the PEM where you keep other secrets.
#[derive(Clone)]
pub struct ClientKey(Arc<KeyInner>);

struct KeyInner {
    key_type: KeyType,
    /// The key pair, parsed once; shared by the copies `with_kid` and `with_algorithm` make.
    pair: Arc<KeyPair>,
    kid: String,
    alg: Option<SigningAlgorithm>,
    /// The public members of the JWK (`n`/`e`, or `crv`/`x`/`y`).
    public: Value,
}

/// An aws-lc-rs key pair. aws-lc clears its memory when it is freed.
enum KeyPair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// The JOSE header of an assertion (the members jsonwebtoken's `Header::new` writes, and the `kid`).
#[derive(Serialize)]
struct AssertionHeader<'a> {
    typ: &'static str,
    alg: &'static str,
    kid: &'a str,
}

/// The claims of an assertion (RFC 7523 §3).
#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: &'a str,
    iat: u64,
    exp: u64,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("kid", &self.0.kid)
            .field("key_type", &self.0.key_type)
            .field("alg", &self.0.alg)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl ClientKey {
    /// Loads an unencrypted PEM private key: `BEGIN PRIVATE KEY` (PKCS#8, RSA or EC), `BEGIN RSA PRIVATE KEY`
    /// (PKCS#1) or `BEGIN EC PRIVATE KEY` (SEC1). The `kid` is the RFC 7638 thumbprint; set another with
    /// [`with_kid`](Self::with_kid).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_block(pem)?;
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "RSA PRIVATE KEY" => Self::from_rsa_pkcs1(&der),
            "EC PRIVATE KEY" => Self::from_ec_der(&der),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Pem {
                reason: "the key is encrypted; decrypt it first (openssl pkcs8 -topk8 -nocrypt)"
                    .into(),
            }),
            other => Err(KeyError::Pem {
                reason: format!(
                    "a `{}` block is not a private key",
                    crate::error::truncate(other, 32)
                ),
            }),
        }
    }

    /// Loads a PKCS#8 (RFC 5208) DER private key, RSA or EC.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(pair) = aws_lc_rs::rsa::KeyPair::from_pkcs8(der) {
            return Self::from_rsa_pair(pair);
        }
        Self::from_ec_der(der)
    }

    /// Loads a private JWK (RFC 7517): `kty` RSA with all CRT members, or `kty` EC on P-256/P-384 with `d`. Its
    /// `kid` and `alg`, when present, are kept.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let member = |name: &'static str| -> Result<Zeroizing<Vec<u8>>, KeyError> {
            jwk.get(name)
                .and_then(Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                .map(Zeroizing::new)
                .ok_or(KeyError::JwkMember(name))
        };
        let key = match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                let (n, e) = (member("n")?, member("e")?);
                let components = aws_lc_rs::rsa::KeyPairComponents {
                    public_key: aws_lc_rs::rsa::PublicKeyComponents {
                        n: significant(&n),
                        e: significant(&e),
                    },
                    d: member("d")?,
                    p: member("p")?,
                    q: member("q")?,
                    dP: member("dp")?,
                    dQ: member("dq")?,
                    qInv: member("qi")?,
                };
                let pair = aws_lc_rs::rsa::KeyPair::from_components(&components)
                    .map_err(|e| rejected("an RSA", &e))?;
                Self::from_rsa_pair(pair)?
            }
            Some("EC") => {
                let alg: &'static EcdsaSigningAlgorithm =
                    match jwk.get("crv").and_then(Value::as_str) {
                        Some("P-256") => &ECDSA_P256_SHA256_FIXED_SIGNING,
                        Some("P-384") => &ECDSA_P384_SHA384_FIXED_SIGNING,
                        Some(other) => {
                            return Err(KeyError::UnsupportedKeyType(format!(
                                "EC {}",
                                crate::error::truncate(other, 16)
                            )));
                        }
                        None => return Err(KeyError::JwkMember("crv")),
                    };
                let mut point = Zeroizing::new(vec![0x04]);
                point.extend_from_slice(&member("x")?);
                point.extend_from_slice(&member("y")?);
                let pair =
                    EcdsaKeyPair::from_private_key_and_public_key(alg, &member("d")?, &point)
                        .map_err(|e| rejected("an EC", &e))?;
                Self::from_ec_pair(pair)?
            }
            Some(other) => {
                return Err(KeyError::UnsupportedKeyType(crate::error::truncate(
                    other, 16,
                )));
            }
            None => return Err(KeyError::JwkMember("kty")),
        };
        let key = match jwk.get("kid").and_then(Value::as_str) {
            Some(kid) => key.with_kid(kid),
            None => key,
        };
        match jwk
            .get("alg")
            .and_then(Value::as_str)
            .and_then(SigningAlgorithm::parse)
        {
            Some(alg) => key.with_algorithm(alg),
            None => Ok(key),
        }
    }

    /// Sets the `kid` sent in the assertion header and published in the JWK.
    pub fn with_kid(self, kid: impl Into<String>) -> Self {
        let mut inner = self.into_inner();
        inner.kid = kid.into();
        ClientKey(Arc::new(inner))
    }

    /// Pins the algorithm (SMART Backend Services asks for RS384 or ES384). It must fit the key; the provider must
    /// list it, or [`ClientAuth::resolve`] fails.
    pub fn with_algorithm(self, alg: SigningAlgorithm) -> Result<Self, KeyError> {
        if !self.algorithms().contains(&alg) {
            return Err(KeyError::AlgorithmMismatch {
                alg,
                key_type: self.0.key_type,
                fits: self.algorithms().iter().map(|a| a.to_string()).collect(),
            });
        }
        let mut inner = self.into_inner();
        inner.alg = Some(alg);
        Ok(ClientKey(Arc::new(inner)))
    }

    /// The `kid`.
    pub fn kid(&self) -> &str {
        &self.0.kid
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.0.key_type
    }

    /// The pinned algorithm, if any.
    pub fn algorithm(&self) -> Option<SigningAlgorithm> {
        self.0.alg
    }

    /// The algorithms this key can sign with, in the order they are preferred.
    pub fn algorithms(&self) -> &'static [SigningAlgorithm] {
        match self.0.key_type {
            KeyType::Rsa => &[
                SigningAlgorithm::RS256,
                SigningAlgorithm::RS384,
                SigningAlgorithm::PS256,
            ],
            KeyType::EcP256 => &[SigningAlgorithm::ES256],
            KeyType::EcP384 => &[SigningAlgorithm::ES384],
            _ => &[],
        }
    }

    /// The public JWK to register (`use: sig`, with `kid`, and `alg` when pinned).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.0.public.clone();
        jwk["use"] = "sig".into();
        jwk["kid"] = self.0.kid.clone().into();
        if let Some(alg) = self.0.alg {
            jwk["alg"] = alg.as_str().into();
        }
        jwk
    }

    /// The public JWK Set `{"keys": [...]}` to register as `jwks` (RFC 7591 §2) or to serve at a `jwks_uri`.
    pub fn public_jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// Signs `claims` as a JWT with `alg` and this key's `kid`.
    pub fn sign(&self, alg: SigningAlgorithm, claims: &Value) -> Result<String, TokenRequestError> {
        self.sign_claims(alg, claims)
    }

    /// The compact JWS of `claims`, signed with `alg` by the pre-parsed key pair.
    fn sign_claims(
        &self,
        alg: SigningAlgorithm,
        claims: &impl Serialize,
    ) -> Result<String, TokenRequestError> {
        let failed = |reason: String| TokenRequestError::Signing {
            kid: crate::error::truncate(&self.0.kid, 64),
            reason,
        };
        let rsa = |pair: &RsaKeyPair, encoding: &'static dyn RsaEncoding, message: &[u8]| {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(
                encoding,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map(|()| signature)
        };
        let sign = |message: &[u8]| match (self.0.pair.as_ref(), alg) {
            (KeyPair::Rsa(pair), SigningAlgorithm::RS256) => rsa(pair, &RSA_PKCS1_SHA256, message),
            (KeyPair::Rsa(pair), SigningAlgorithm::RS384) => rsa(pair, &RSA_PKCS1_SHA384, message),
            (KeyPair::Rsa(pair), SigningAlgorithm::PS256) => rsa(pair, &RSA_PSS_SHA256, message),
            // An EC pair signs with its own curve's algorithm: `algorithms()` allows ES256 for P-256 and ES384
            // for P-384 only.
            (KeyPair::Ec(pair), SigningAlgorithm::ES256 | SigningAlgorithm::ES384) => pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|signature| signature.as_ref().to_vec()),
            _ => Err(aws_lc_rs::error::Unspecified),
        };
        if !self.algorithms().contains(&alg) {
            return Err(failed(format!(
                "{alg} does not fit a {:?} key",
                self.0.key_type
            )));
        }
        let header = serde_json::to_vec(&AssertionHeader {
            typ: "JWT",
            alg: alg.as_str(),
            kid: &self.0.kid,
        })
        .map_err(|e| failed(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| failed(e.to_string()))?;
        wire::compact_jws(&URL_SAFE_NO_PAD.encode(header), &payload, sign)
            .map_err(|_| failed("aws-lc-rs refused to sign with it".into()))
    }

    fn into_inner(self) -> KeyInner {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| KeyInner {
            key_type: shared.key_type,
            pair: Arc::clone(&shared.pair),
            kid: shared.kid.clone(),
            alg: shared.alg,
            public: shared.public.clone(),
        })
    }

    fn from_rsa_pkcs1(der: &[u8]) -> Result<Self, KeyError> {
        let pair = aws_lc_rs::rsa::KeyPair::from_der(der).map_err(|e| rejected("an RSA", &e))?;
        Self::from_rsa_pair(pair)
    }

    fn from_rsa_pair(pair: RsaKeyPair) -> Result<Self, KeyError> {
        if pair.public_modulus_len() < 256 {
            return Err(KeyError::Rejected {
                kind: "an RSA",
                reason: "shorter than 2048 bits",
            });
        }
        let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let public = json!({
            "kty": "RSA",
            "e": URL_SAFE_NO_PAD.encode(&public.e),
            "n": URL_SAFE_NO_PAD.encode(&public.n),
        });
        Ok(Self::assemble(KeyType::Rsa, KeyPair::Rsa(pair), public))
    }

    /// An EC key from PKCS#8 or SEC1 DER, on P-256 or P-384.
    fn from_ec_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .or_else(|_| EcdsaKeyPair::from_private_key_der(&ECDSA_P384_SHA384_FIXED_SIGNING, der))
            .map_err(|e| rejected("an EC or RSA", &e))?;
        Self::from_ec_pair(pair)
    }

    fn from_ec_pair(pair: EcdsaKeyPair) -> Result<Self, KeyError> {
        let (key_type, crv, size) =
            if std::ptr::eq(pair.algorithm(), &ECDSA_P256_SHA256_FIXED_SIGNING) {
                (KeyType::EcP256, "P-256", 32)
            } else {
                (KeyType::EcP384, "P-384", 48)
            };
        let point = pair.public_key().as_ref();
        if point.len() != 1 + 2 * size {
            return Err(KeyError::Rejected {
                kind: "an EC",
                reason: "its public point is not uncompressed",
            });
        }
        let public = json!({
            "kty": "EC",
            "crv": crv,
            "x": URL_SAFE_NO_PAD.encode(&point[1..=size]),
            "y": URL_SAFE_NO_PAD.encode(&point[1 + size..]),
        });
        Ok(Self::assemble(key_type, KeyPair::Ec(pair), public))
    }

    fn assemble(key_type: KeyType, pair: KeyPair, public: Value) -> Self {
        ClientKey(Arc::new(KeyInner {
            key_type,
            pair: Arc::new(pair),
            kid: thumbprint(&public),
            alg: None,
            public,
        }))
    }
}

/// The label and the DER content of the first PEM block of `text` (RFC 7468).
fn pem_block(text: &str) -> Result<(&str, Zeroizing<Vec<u8>>), KeyError> {
    let missing = |what: &str| KeyError::Pem {
        reason: format!("no {what} line"),
    };
    let (_, rest) = text
        .split_once("-----BEGIN ")
        .ok_or_else(|| missing("`-----BEGIN ...-----`"))?;
    let (label, rest) = rest
        .split_once("-----")
        .ok_or_else(|| missing("complete BEGIN"))?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest
        .split_once(end.as_str())
        .ok_or_else(|| missing("matching END"))?;
    let b64: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| KeyError::Pem {
            reason: "the body is not base64".into(),
        })?;
    Ok((label, Zeroizing::new(der)))
}

fn rejected(kind: &'static str, e: &aws_lc_rs::error::KeyRejected) -> KeyError {
    KeyError::Rejected {
        kind,
        reason: e.description_(),
    }
}

/// Strips leading zero bytes (aws-lc-rs wants the public RSA members without them).
fn significant(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url) of the public members.
fn thumbprint(public: &Value) -> String {
    let members: &[&str] = match public["kty"].as_str() {
        Some("RSA") => &["e", "kty", "n"],
        _ => &["crv", "kty", "x", "y"],
    };
    // serde_json's map is ordered by key, and `members` is a subset: this is the canonical form.
    let canonical: serde_json::Map<String, Value> = members
        .iter()
        .map(|m| ((*m).to_owned(), public[*m].clone()))
        .collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(Value::Object(canonical).to_string()))
}

/// How this client authenticates, resolved once for a provider: the method and, for the JWT methods, the
/// algorithm and the assertion's `aud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    method: TokenAuthMethod,
    alg: Option<SigningAlgorithm>,
    audience: Option<String>,
}

impl ClientAuth {
    /// Authentication by `method`. For the JWT methods the algorithm is then the key's first (HS256 for
    /// `client_secret_jwt`) and the `aud` the URL each request goes to; [`resolve`](Self::resolve) chooses both
    /// from the provider's metadata instead.
    pub fn new(method: TokenAuthMethod) -> Self {
        ClientAuth {
            method,
            alg: None,
            audience: None,
        }
    }

    /// Chooses the method ([`choose_auth_method`]) and, for the JWT methods, the algorithm from
    /// `token_endpoint_auth_signing_alg_values_supported` and the `aud` (see [`AssertionAudience`]).
    pub fn resolve(
        metadata: &ProviderMetadata,
        client: &ClientConfig,
    ) -> Result<Self, TokenRequestError> {
        let method = choose_auth_method(metadata, client)?;
        let supported = &metadata.token_endpoint_auth_signing_alg_values_supported;
        let offered = |alg: &SigningAlgorithm| {
            supported.is_empty() || supported.iter().any(|s| s == alg.as_str())
        };
        let alg = match method {
            TokenAuthMethod::PrivateKeyJwt => {
                let key = client
                    .signing_key
                    .as_ref()
                    .ok_or(TokenRequestError::MissingSigningKey { method })?;
                let candidates = match key.algorithm() {
                    Some(alg) => vec![alg],
                    None => key.algorithms().to_vec(),
                };
                Some(candidates.iter().copied().find(offered).ok_or_else(|| {
                    TokenRequestError::NoSupportedSigningAlgorithm {
                        key: format!(
                            "{:?} key `{}`",
                            key.key_type(),
                            crate::error::truncate(key.kid(), 64)
                        ),
                        can_sign: candidates.iter().map(|a| a.to_string()).collect(),
                        supported: truncated(supported),
                    }
                })?)
            }
            TokenAuthMethod::ClientSecretJwt => {
                if !offered(&SigningAlgorithm::HS256) {
                    return Err(TokenRequestError::NoSupportedSigningAlgorithm {
                        key: "client secret (HMAC)".into(),
                        can_sign: vec!["HS256".into()],
                        supported: truncated(supported),
                    });
                }
                Some(SigningAlgorithm::HS256)
            }
            _ => None,
        };
        let audience = alg.map(|_| match client.assertion_audience {
            AssertionAudience::Issuer => metadata.issuer.clone(),
            AssertionAudience::TokenEndpoint => metadata
                .token_endpoint
                .as_ref()
                .map_or_else(|| metadata.issuer.clone(), |u| u.as_str().to_owned()),
        });
        Ok(ClientAuth {
            method,
            alg,
            audience,
        })
    }

    /// The method.
    pub fn method(&self) -> TokenAuthMethod {
        self.method
    }

    /// The assertion algorithm, for the JWT methods.
    pub fn algorithm(&self) -> Option<SigningAlgorithm> {
        self.alg
    }

    /// The assertion's `aud`, when fixed by [`resolve`](Self::resolve).
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
}

impl From<TokenAuthMethod> for ClientAuth {
    fn from(method: TokenAuthMethod) -> Self {
        ClientAuth::new(method)
    }
}

fn truncated(list: &[String]) -> Vec<String> {
    list.iter().map(|s| crate::error::truncate(s, 64)).collect()
}

/// The signed client assertion (RFC 7523 §3) for a request to `endpoint`, for the JWT methods.
pub fn client_assertion(
    endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    stamp: &RequestStamp,
) -> Result<ClientAssertion, TokenRequestError> {
    let iat = stamp.now.as_secs();
    let claims = AssertionClaims {
        iss: &client.client_id,
        sub: &client.client_id,
        aud: auth.audience.as_deref().unwrap_or(endpoint.as_str()),
        jti: &stamp.jti,
        iat,
        exp: iat.saturating_add(ASSERTION_LIFETIME.as_secs()),
    };
    let jwt = match auth.method {
        TokenAuthMethod::PrivateKeyJwt => {
            let key = client
                .signing_key
                .as_ref()
                .ok_or(TokenRequestError::MissingSigningKey {
                    method: auth.method,
                })?;
            let alg = auth.alg.or(key.algorithm()).unwrap_or(key.algorithms()[0]);
            key.sign_claims(alg, &claims)?
        }
        TokenAuthMethod::ClientSecretJwt => {
            let secret = client
                .client_secret
                .as_ref()
                .ok_or(TokenRequestError::MissingSecret {
                    method: auth.method,
                })?;
            let failed = |e: jsonwebtoken::errors::Error| TokenRequestError::Signing {
                kid: "client secret".into(),
                reason: format!("{:?}", e.kind()),
            };
            let key =
                EncodingKey::from_secret(secret.expose_secret().as_bytes()).map_err(failed)?;
            jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key)
                .map_err(failed)?
        }
        _ => {
            return Err(TokenRequestError::Signing {
                kid: "none".into(),
                reason: format!("auth method `{}` sends no assertion", auth.method.as_str()),
            });
        }
    };
    Ok(ClientAssertion::new(jwt))
}

/// Builds a form `POST` to `endpoint` carrying `params` plus the client's authentication: the one place where the
/// token, revocation, introspection, device and PAR requests authenticate the client.
pub fn form_request(
    endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    params: &[(&str, &str)],
    stamp: &RequestStamp,
) -> Result<http::Request<Vec<u8>>, TokenRequestError> {
    if client.client_id.is_empty() {
        return Err(TokenRequestError::EmptyClientId);
    }
    let method = auth.method;
    let secret = || {
        client
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .ok_or(TokenRequestError::MissingSecret { method })
    };
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    let mut authorization = None;
    let assertion;
    match method {
        TokenAuthMethod::ClientSecretBasic => {
            authorization = Some(basic_auth_header(&client.client_id, secret()?));
        }
        TokenAuthMethod::ClientSecretPost => {
            pairs.push(("client_id", &client.client_id));
            pairs.push(("client_secret", secret()?));
        }
        TokenAuthMethod::PrivateKeyJwt | TokenAuthMethod::ClientSecretJwt => {
            assertion = client_assertion(endpoint, client, auth, stamp)?;
            pairs.push(("client_id", &client.client_id));
            pairs.push(("client_assertion_type", JWT_BEARER_ASSERTION));
            pairs.push(("client_assertion", assertion.expose_secret()));
        }
        TokenAuthMethod::None => pairs.push(("client_id", &client.client_id)),
    }
    Ok(wire::post_form(endpoint, pairs, authorization))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;
    use aws_lc_rs::encoding::AsDer as _;

    fn endpoint() -> Url {
        Url::parse("https://accounts.example.com/connect/token").unwrap()
    }

    fn metadata(algs: &[&str]) -> ProviderMetadata {
        serde_json::from_value(json!({
            "issuer": "https://accounts.example.com",
            "authorization_endpoint": "https://accounts.example.com/connect/authorize",
            "token_endpoint": "https://accounts.example.com/connect/token",
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": algs,
        }))
        .unwrap()
    }

    fn ec_key(alg: &'static EcdsaSigningAlgorithm) -> ClientKey {
        let pkcs8 = EcdsaKeyPair::generate(alg).unwrap().to_pkcs8v1().unwrap();
        ClientKey::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    fn rsa_key() -> ClientKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        ClientKey::from_pkcs8_der(pair.as_der().unwrap().as_ref()).unwrap()
    }

    fn body_of(request: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
        url::form_urlencoded::parse(request.body())
            .into_owned()
            .collect()
    }

    fn claims_of(jwt: &str) -> (Value, Value) {
        let mut parts = jwt.split('.');
        let mut decode = || -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
        };
        (decode(), decode())
    }

    #[test]
    fn private_key_jwt_request_carries_a_fresh_assertion() {
        let key = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING).with_kid("k1");
        let client = ClientConfig::new("app", None).with_signing_key(key);
        let auth = ClientAuth::resolve(&metadata(&["RS256", "ES256"]), &client).unwrap();
        assert_eq!(auth.method(), TokenAuthMethod::PrivateKeyJwt);
        assert_eq!(auth.algorithm(), Some(SigningAlgorithm::ES256));
        let stamp = RequestStamp::new_inner(UnixTime::from_secs(1000), "jti-1");
        let request = form_request(
            &endpoint(),
            &client,
            &auth,
            &[("grant_type", "client_credentials")],
            &stamp,
        )
        .unwrap();
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
        let body = body_of(&request);
        assert_eq!(body[0], ("grant_type".into(), "client_credentials".into()));
        assert_eq!(body[1], ("client_id".into(), "app".into()));
        assert_eq!(
            body[2],
            ("client_assertion_type".into(), JWT_BEARER_ASSERTION.into())
        );
        let (header, claims) = claims_of(&body[3].1);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        assert_eq!(
            claims,
            json!({"iss": "app", "sub": "app", "aud": "https://accounts.example.com/connect/token",
                   "jti": "jti-1", "iat": 1000, "exp": 1060})
        );
    }

    #[test]
    fn the_signature_verifies_with_the_published_key() {
        for key in [rsa_key(), ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING)] {
            let client = ClientConfig::new("app", None).with_signing_key(key.clone());
            let auth = ClientAuth::resolve(&metadata(&["RS384", "ES384"]), &client).unwrap();
            let stamp = RequestStamp::new_inner(UnixTime::from_secs(5), "j");
            let jwt = client_assertion(&endpoint(), &client, &auth, &stamp).unwrap();
            let set =
                crate::jwks::JwkSet::from_json(key.public_jwks().to_string().as_bytes()).unwrap();
            let jwk = &set.keys()[0];
            assert_eq!(jwk.kid(), Some(key.kid()));
            let alg = auth.algorithm().unwrap();
            assert!(matches!(
                alg,
                SigningAlgorithm::RS384 | SigningAlgorithm::ES384
            ));
            let mut validation = jsonwebtoken::Validation::new(alg.to_jwt());
            validation.set_audience(&["https://accounts.example.com/connect/token"]);
            validation.validate_exp = false;
            jsonwebtoken::decode::<Value>(jwt.expose_secret(), jwk.decoding_key(), &validation)
                .unwrap();
        }
    }

    /// Every algorithm the pre-parsed keys sign with (and HS256 with the secret) gives an assertion that
    /// jsonwebtoken's `decode` accepts with the published key, with the header and claims the server reads.
    #[test]
    fn every_algorithm_verifies_with_jsonwebtoken_decode() {
        let rsa = rsa_key().with_kid("rsa-1");
        let cases = [
            (rsa.clone(), SigningAlgorithm::RS256),
            (rsa.clone(), SigningAlgorithm::RS384),
            (rsa, SigningAlgorithm::PS256),
            (
                ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING),
                SigningAlgorithm::ES256,
            ),
            (
                ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING),
                SigningAlgorithm::ES384,
            ),
        ];
        let stamp = RequestStamp::new_inner(UnixTime::from_secs(1_000), "jti-every");
        let verify = |jwt: &str, alg: SigningAlgorithm, key: &jsonwebtoken::DecodingKey| {
            let mut validation = jsonwebtoken::Validation::new(alg.to_jwt());
            validation.set_audience(&["https://accounts.example.com/connect/token"]);
            validation.set_issuer(&["app"]);
            validation.validate_exp = false;
            let data = jsonwebtoken::decode::<Value>(jwt, key, &validation)
                .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
            assert_eq!(data.header.alg, alg.to_jwt());
            assert_eq!(data.header.typ.as_deref(), Some("JWT"));
            assert_eq!(
                data.claims,
                json!({"iss": "app", "sub": "app", "aud": "https://accounts.example.com/connect/token",
                       "jti": "jti-every", "iat": 1000, "exp": 1060}),
                "{alg}"
            );
            data.header.kid
        };
        for (key, alg) in cases {
            let client = ClientConfig::new("app", None)
                .with_signing_key(key.clone().with_algorithm(alg).unwrap());
            let auth = ClientAuth::resolve(&metadata(&[alg.as_str()]), &client).unwrap();
            assert_eq!(auth.algorithm(), Some(alg));
            let jwt = client_assertion(&endpoint(), &client, &auth, &stamp).unwrap();
            let set =
                crate::jwks::JwkSet::from_json(key.public_jwks().to_string().as_bytes()).unwrap();
            let kid = verify(jwt.expose_secret(), alg, set.keys()[0].decoding_key());
            assert_eq!(kid.as_deref(), Some(key.kid()), "{alg}");

            // Another key of the same type does not verify it.
            let other = match alg {
                SigningAlgorithm::ES256 => ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING),
                SigningAlgorithm::ES384 => ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING),
                _ => rsa_key(),
            };
            let other =
                crate::jwks::JwkSet::from_json(other.public_jwks().to_string().as_bytes()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg.to_jwt());
            validation.validate_aud = false;
            validation.validate_exp = false;
            assert!(
                jsonwebtoken::decode::<Value>(
                    jwt.expose_secret(),
                    other.keys()[0].decoding_key(),
                    &validation
                )
                .is_err(),
                "{alg} verified with another key"
            );
        }

        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret";
        let client = ClientConfig::new("app", Some(ClientSecret::new(secret)))
            .with_auth_method(TokenAuthMethod::ClientSecretJwt);
        let auth = ClientAuth::resolve(&metadata(&["HS256"]), &client).unwrap();
        let jwt = client_assertion(&endpoint(), &client, &auth, &stamp).unwrap();
        let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()).unwrap();
        assert_eq!(
            verify(jwt.expose_secret(), SigningAlgorithm::HS256, &key),
            None
        );
    }

    #[test]
    fn a_key_refuses_an_algorithm_that_does_not_fit_it() {
        let err = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .with_kid("ec-1")
            .sign(SigningAlgorithm::ES384, &json!({"sub": "app"}))
            .unwrap_err();
        assert!(
            matches!(&err, TokenRequestError::Signing { kid, .. } if kid == "ec-1"),
            "{err:?}"
        );
        assert!(err.to_string().contains("ES384 does not fit"), "{err}");
    }

    #[test]
    fn no_fitting_algorithm_names_the_accepted_ones() {
        let client = ClientConfig::new("app", None)
            .with_signing_key(ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING));
        let err = ClientAuth::resolve(&metadata(&["RS384", "ES384"]), &client).unwrap_err();
        assert!(
            matches!(err, TokenRequestError::NoSupportedSigningAlgorithm { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("[RS384, ES384]") && msg.contains("ES256"),
            "{msg}"
        );
    }

    #[test]
    fn pinned_algorithm_must_fit_the_key() {
        let err = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .with_algorithm(SigningAlgorithm::RS256)
            .unwrap_err();
        assert!(err.to_string().contains("use one of [ES256]"), "{err}");
        let key = rsa_key().with_algorithm(SigningAlgorithm::PS256).unwrap();
        let client = ClientConfig::new("app", None).with_signing_key(key);
        let auth = ClientAuth::resolve(&metadata(&["RS256", "PS256"]), &client).unwrap();
        assert_eq!(auth.algorithm(), Some(SigningAlgorithm::PS256));
    }

    #[test]
    fn client_secret_jwt_is_hs256_and_issuer_audience_is_honoured() {
        let mut client = ClientConfig::new(
            "app",
            Some(ClientSecret::new("s3cret-s3cret-s3cret-s3cret-s3cret")),
        )
        .with_auth_method(TokenAuthMethod::ClientSecretJwt);
        client.assertion_audience = AssertionAudience::Issuer;
        let auth = ClientAuth::resolve(&metadata(&["HS256"]), &client).unwrap();
        let stamp = RequestStamp::new_inner(UnixTime::from_secs(7), "j");
        let jwt = client_assertion(&endpoint(), &client, &auth, &stamp).unwrap();
        let (header, claims) = claims_of(jwt.expose_secret());
        assert_eq!(header["alg"], "HS256");
        assert_eq!(claims["aud"], "https://accounts.example.com");
        let err = ClientAuth::resolve(&metadata(&["RS256"]), &client).unwrap_err();
        assert!(err.to_string().contains("[RS256]"), "{err}");
    }

    #[test]
    fn keys_load_from_pem_and_jwk_and_never_show() {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let from_pem = ClientKey::from_pem(&pem).unwrap();
        let from_der = ClientKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
        assert_eq!(from_pem.kid(), from_der.kid());
        assert_eq!(from_pem.public_jwk(), from_der.public_jwk());
        let debug = format!("{from_pem:?}");
        assert!(
            debug.contains("[redacted]") && !debug.contains(&pem[40..60]),
            "{debug}"
        );

        // A private JWK of the same key gives the same public key and thumbprint.
        use aws_lc_rs::encoding::AsBigEndian as _;
        let private = pair.private_key().as_be_bytes().unwrap();
        let mut jwk = from_pem.public_jwk();
        jwk["d"] = URL_SAFE_NO_PAD.encode(private.as_ref()).into();
        jwk.as_object_mut().unwrap().remove("kid");
        let from_jwk = ClientKey::from_jwk(&jwk).unwrap();
        assert_eq!(from_jwk.kid(), from_pem.kid());

        assert!(matches!(
            ClientKey::from_pem("not a key"),
            Err(KeyError::Pem { .. })
        ));
        assert_eq!(
            ClientKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519"})).unwrap_err(),
            KeyError::UnsupportedKeyType("OKP".into())
        );
        jwk.as_object_mut().unwrap().remove("d");
        assert_eq!(
            ClientKey::from_jwk(&jwk).unwrap_err(),
            KeyError::JwkMember("d")
        );
    }

    #[test]
    fn missing_key_is_a_typed_error() {
        let client =
            ClientConfig::new("app", None).with_auth_method(TokenAuthMethod::PrivateKeyJwt);
        let err = ClientAuth::resolve(&metadata(&[]), &client).unwrap_err();
        assert_eq!(
            err,
            TokenRequestError::MissingSigningKey {
                method: TokenAuthMethod::PrivateKeyJwt
            }
        );
        assert!(err.to_string().contains("with_signing_key"), "{err}");
    }
}
