//! The provider's signing keys: the `jwks_uri` request, its parser, and the refetch limiter for key rotation.
//!
//! [`parse_jwks`] is lenient per key and strict per set. A key this client cannot use (an unknown `kty`, `alg` or
//! `crv`, a `use` other than `sig`, `key_ops` without `verify`, a symmetric `oct` key, or a key that does not parse)
//! is *skipped* and recorded in [`JwkSet::skipped`]; it never fails the whole set. A body that is not a JWK Set at
//! all is an error. An empty usable set is reported by the verifier, when it needs a key, as
//! [`IdTokenError::NoUsableKeys`](crate::id_token::IdTokenError::NoUsableKeys), which names the skipped keys.
//!
//! **Encodings.** `n`, `e`, `x` and `y` are accepted in base64url (as RFC 7518 asks) and in standard base64, with
//! or without padding, because older IdentityServer builds send standard base64.
//!
//! **Speed.** Each key is validated with aws-lc-rs and its [`jsonwebtoken::DecodingKey`] is built once, here (an
//! RSA key in its PKCS#1 DER form, which aws-lc-rs verifies with fastest), so verifying a token never re-decodes or
//! re-encodes a key.
//!
//! **Duplicate `kid`s** are kept, not rejected: some providers publish one `kid` for keys of different types. The
//! verifier narrows the keys with the token's `kid` first and then by what fits the token's `alg`; if more than
//! one key still fits, verification fails with
//! [`IdTokenError::AmbiguousKey`](crate::id_token::IdTokenError::AmbiguousKey) rather than guessing.
//!
//! **Key rotation.** A driver keeps its keys in a [`KeyCache`]. When a check with the cached keys fails because
//! the token names a `kid` the set does not know (or no key fits), [`KeyCache::handle_check_failure`] says what to
//! do: check again with keys another caller fetched meanwhile, fetch them again (OpenID Connect Core §10.1.1), or
//! give up. Refetches caused this way are limited by a [`JwksRefreshLimiter`], so that a flood of tokens with
//! random `kid`s cannot make the driver hammer the provider; the first, ordinary fetch is not one of them.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use http::{Request, Response};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use url::Url;

use crate::error::{Endpoint, ResponseError, truncate};
use crate::outcome::Error;
use crate::time::UnixTime;
use crate::wire;

/// The most keys a JWK Set may hold; a larger set is refused as a misconfiguration or an attack.
pub const MAX_KEYS: usize = 100;

/// A JWS signing algorithm this client knows (RFC 7518 §3, RFC 8037).
///
/// `none` is deliberately not a variant: an unsigned ID token is never accepted.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (IdentityServer3's only algorithm).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA (Ed25519 only).
    EdDSA,
    /// HMAC with SHA-256, keyed with the client secret.
    HS256,
    /// HMAC with SHA-384, keyed with the client secret.
    HS384,
    /// HMAC with SHA-512, keyed with the client secret.
    HS512,
}

impl SigningAlgorithm {
    /// Every known algorithm.
    pub const ALL: [SigningAlgorithm; 12] = [
        SigningAlgorithm::RS256,
        SigningAlgorithm::RS384,
        SigningAlgorithm::RS512,
        SigningAlgorithm::PS256,
        SigningAlgorithm::PS384,
        SigningAlgorithm::PS512,
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::HS256,
        SigningAlgorithm::HS384,
        SigningAlgorithm::HS512,
    ];

    /// Parses a registered `alg` name (case-sensitive, as JOSE requires); unknown names and `none` give `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => SigningAlgorithm::RS256,
            "RS384" => SigningAlgorithm::RS384,
            "RS512" => SigningAlgorithm::RS512,
            "PS256" => SigningAlgorithm::PS256,
            "PS384" => SigningAlgorithm::PS384,
            "PS512" => SigningAlgorithm::PS512,
            "ES256" => SigningAlgorithm::ES256,
            "ES384" => SigningAlgorithm::ES384,
            "EdDSA" => SigningAlgorithm::EdDSA,
            "HS256" => SigningAlgorithm::HS256,
            "HS384" => SigningAlgorithm::HS384,
            "HS512" => SigningAlgorithm::HS512,
            _ => return None,
        })
    }

    /// The registered name (`RS256`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::RS384 => "RS384",
            SigningAlgorithm::RS512 => "RS512",
            SigningAlgorithm::PS256 => "PS256",
            SigningAlgorithm::PS384 => "PS384",
            SigningAlgorithm::PS512 => "PS512",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::ES384 => "ES384",
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::HS256 => "HS256",
            SigningAlgorithm::HS384 => "HS384",
            SigningAlgorithm::HS512 => "HS512",
        }
    }

    /// Whether this is an HMAC algorithm, keyed with the client secret rather than a public key.
    pub fn is_symmetric(self) -> bool {
        matches!(
            self,
            SigningAlgorithm::HS256 | SigningAlgorithm::HS384 | SigningAlgorithm::HS512
        )
    }

    /// The type of public key this algorithm verifies with; `None` for HMAC.
    pub fn key_type(self) -> Option<KeyType> {
        Some(match self {
            SigningAlgorithm::RS256
            | SigningAlgorithm::RS384
            | SigningAlgorithm::RS512
            | SigningAlgorithm::PS256
            | SigningAlgorithm::PS384
            | SigningAlgorithm::PS512 => KeyType::Rsa,
            SigningAlgorithm::ES256 => KeyType::EcP256,
            SigningAlgorithm::ES384 => KeyType::EcP384,
            SigningAlgorithm::EdDSA => KeyType::Ed25519,
            SigningAlgorithm::HS256 | SigningAlgorithm::HS384 | SigningAlgorithm::HS512 => {
                return None;
            }
        })
    }

    /// The same algorithm as `jsonwebtoken` names it.
    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            SigningAlgorithm::RS256 => A::RS256,
            SigningAlgorithm::RS384 => A::RS384,
            SigningAlgorithm::RS512 => A::RS512,
            SigningAlgorithm::PS256 => A::PS256,
            SigningAlgorithm::PS384 => A::PS384,
            SigningAlgorithm::PS512 => A::PS512,
            SigningAlgorithm::ES256 => A::ES256,
            SigningAlgorithm::ES384 => A::ES384,
            SigningAlgorithm::EdDSA => A::EdDSA,
            SigningAlgorithm::HS256 => A::HS256,
            SigningAlgorithm::HS384 => A::HS384,
            SigningAlgorithm::HS512 => A::HS512,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a usable public key.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `kty: RSA` (at least 2048 bits).
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    EcP256,
    /// `kty: EC`, `crv: P-384`.
    EcP384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

/// One usable signing key from the provider's JWK Set, with its verification key built in advance.
#[derive(Clone)]
pub struct Jwk {
    kid: Option<String>,
    key_type: KeyType,
    alg: Option<SigningAlgorithm>,
    key: DecodingKey,
}

impl Jwk {
    /// The key id (`kid`), if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's type and curve.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key's `alg`, when it names one.
    pub fn alg(&self) -> Option<SigningAlgorithm> {
        self.alg
    }

    /// Whether a token signed with `alg` may be verified with this key: the key type must match, and so must the
    /// key's own `alg` when it has one.
    pub fn fits(&self, alg: SigningAlgorithm) -> bool {
        alg.key_type() == Some(self.key_type) && self.alg.is_none_or(|own| own == alg)
    }

    /// The pre-built verification key.
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a key of the set was skipped.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The `kty` is not `RSA`, `EC` or `OKP` (symmetric `oct` keys are never taken from a JWK Set).
    UnsupportedKeyType(String),
    /// The `crv` is not `P-256`, `P-384` or `Ed25519`.
    UnsupportedCurve(String),
    /// The `alg` is unknown, `none`, or does not fit the key type.
    UnsupportedAlgorithm(String),
    /// The key is for encryption (`use` other than `sig`, or `key_ops` without `verify`).
    NotForSigning(String),
    /// The key's members are missing, mis-typed, mis-encoded or of the wrong size.
    Invalid(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::UnsupportedKeyType(k) => write!(f, "unsupported kty `{k}`"),
            SkipReason::UnsupportedCurve(c) => write!(f, "unsupported crv `{c}`"),
            SkipReason::UnsupportedAlgorithm(a) => write!(f, "unsupported alg `{a}`"),
            SkipReason::NotForSigning(u) => write!(f, "not a signing key ({u})"),
            SkipReason::Invalid(r) => write!(f, "invalid key: {r}"),
        }
    }
}

/// A key of the set that this client cannot use, kept for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its `kid`, if it had a readable one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key `{kid}`: {}", self.reason),
            None => write!(f, "key without kid: {}", self.reason),
        }
    }
}

/// The provider's usable signing keys, plus a record of the keys that were skipped.
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    keys: Vec<Jwk>,
    passed_over: Vec<SkippedKey>,
}

impl JwkSet {
    /// Parses a JWK Set document (`{"keys": [...]}`); unusable keys are skipped, see the [module docs](self).
    pub fn from_json(body: &[u8]) -> Result<JwkSet, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = serde_json::from_slice(body).map_err(|e| wire::json_reason(&e))?;
        if doc.keys.len() > MAX_KEYS {
            return Err(format!(
                "the set holds {} keys, more than the {MAX_KEYS} this client accepts",
                doc.keys.len()
            ));
        }
        let mut set = JwkSet::default();
        for value in doc.keys {
            match parse_key(value) {
                Ok(key) => set.keys.push(key),
                Err(skipped) => set.passed_over.push(skipped),
            }
        }
        Ok(set)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The keys that were skipped, and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.passed_over
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a usable key has this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }
}

/// Builds the `GET` of the provider's `jwks_uri`.
pub fn jwks_request(jwks_uri: &Url) -> Request<Vec<u8>> {
    wire::get_json(jwks_uri)
}

/// Parses the `jwks_uri` response. Unusable keys are skipped (see [`JwkSet::skipped`]); a body that is not a JWK
/// Set is [`ResponseError::Malformed`].
pub fn parse_jwks(response: &Response<Vec<u8>>) -> Result<JwkSet, ResponseError> {
    wire::check_status(Endpoint::Jwks, response)?;
    JwkSet::from_json(response.body())
        .map_err(|reason| wire::malformed(Endpoint::Jwks, response.body(), reason))
}

/// The JSON members of one key, read leniently: a mistyped member skips the key.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

const MAX_SHOWN: usize = 64;

fn parse_key(value: serde_json::Value) -> Result<Jwk, SkippedKey> {
    let kid = value
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .map(|k| truncate(k, MAX_SHOWN));
    let skip = |reason| SkippedKey {
        kid: kid.clone(),
        reason,
    };
    let raw: RawJwk = serde_json::from_value(value)
        .map_err(|e| skip(SkipReason::Invalid(wire::json_reason(&e))))?;

    if let Some(u) = raw.use_.as_deref().filter(|u| *u != "sig") {
        return Err(skip(SkipReason::NotForSigning(format!(
            "use `{}`",
            truncate(u, MAX_SHOWN)
        ))));
    }
    if let Some(ops) = &raw.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err(skip(SkipReason::NotForSigning(
            "key_ops without `verify`".into(),
        )));
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => Some(
            SigningAlgorithm::parse(name)
                .filter(|a| !a.is_symmetric())
                .ok_or_else(|| skip(SkipReason::UnsupportedAlgorithm(truncate(name, MAX_SHOWN))))?,
        ),
    };
    let field = |name: &'static str, v: &Option<String>| -> Result<Vec<u8>, SkippedKey> {
        let text = v
            .as_deref()
            .ok_or_else(|| skip(SkipReason::Invalid(format!("`{name}` is missing"))))?;
        decode_lenient(text).ok_or_else(|| {
            skip(SkipReason::Invalid(format!(
                "`{name}` is neither base64url nor base64"
            )))
        })
    };
    let (key_type, key) = match raw.kty.as_str() {
        "RSA" => {
            let n = field("n", &raw.n)?;
            let e = field("e", &raw.e)?;
            let n_bits = significant_bytes(&n).len() * 8;
            if !(2048..=8192).contains(&n_bits) {
                return Err(skip(SkipReason::Invalid(format!(
                    "an RSA modulus of about {n_bits} bits is outside 2048..=8192"
                ))));
            }
            let e_len = significant_bytes(&e).len();
            if e_len == 0 || e_len > 8 {
                return Err(skip(SkipReason::Invalid(
                    "the RSA exponent is empty or too large".into(),
                )));
            }
            // Validate once and keep the PKCS#1 DER form, which verifies fastest (no per-call key building).
            let spki = RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .as_der()
            .map_err(|_| skip(SkipReason::Invalid("not a valid RSA public key".into())))?;
            let key = aws_lc_rs::rsa::PublicKey::from_der(spki.as_ref())
                .map_err(|_| skip(SkipReason::Invalid("not a valid RSA public key".into())))?;
            (KeyType::Rsa, DecodingKey::from_rsa_der(key.as_ref()))
        }
        "EC" => {
            let (key_type, size) = match raw.crv.as_deref() {
                Some("P-256") => (KeyType::EcP256, 32),
                Some("P-384") => (KeyType::EcP384, 48),
                Some(other) => {
                    return Err(skip(SkipReason::UnsupportedCurve(truncate(
                        other, MAX_SHOWN,
                    ))));
                }
                None => return Err(skip(SkipReason::Invalid("`crv` is missing".into()))),
            };
            let x = field("x", &raw.x)?;
            let y = field("y", &raw.y)?;
            if x.len() != size || y.len() != size {
                return Err(skip(SkipReason::Invalid(format!(
                    "`x` and `y` must be {size} bytes each for this curve"
                ))));
            }
            // The uncompressed SEC1 point: 0x04 || x || y.
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let alg = if key_type == KeyType::EcP256 {
                &signature::ECDSA_P256_SHA256_FIXED
            } else {
                &signature::ECDSA_P384_SHA384_FIXED
            };
            signature::ParsedPublicKey::new(alg, &point)
                .map_err(|_| skip(SkipReason::Invalid("the point is not on the curve".into())))?;
            (key_type, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            match raw.crv.as_deref() {
                Some("Ed25519") => {}
                Some(other) => {
                    return Err(skip(SkipReason::UnsupportedCurve(truncate(
                        other, MAX_SHOWN,
                    ))));
                }
                None => return Err(skip(SkipReason::Invalid("`crv` is missing".into()))),
            }
            let x = field("x", &raw.x)?;
            if x.len() != 32 {
                return Err(skip(SkipReason::Invalid(
                    "`x` must be 32 bytes for Ed25519".into(),
                )));
            }
            signature::ParsedPublicKey::new(&signature::ED25519, &x)
                .map_err(|_| skip(SkipReason::Invalid("not a valid Ed25519 public key".into())))?;
            (KeyType::Ed25519, DecodingKey::from_ed_der(&x))
        }
        other => {
            return Err(skip(SkipReason::UnsupportedKeyType(truncate(
                other, MAX_SHOWN,
            ))));
        }
    };
    if let Some(a) = alg
        && a.key_type() != Some(key_type)
    {
        return Err(skip(SkipReason::UnsupportedAlgorithm(format!(
            "{a} does not fit a {key_type:?} key"
        ))));
    }
    Ok(Jwk {
        kid: raw.kid,
        key_type,
        alg,
        key,
    })
}

/// Decodes base64url or standard base64, with or without padding. Mixed alphabets are refused.
pub(crate) fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let standard = text.contains(['+', '/']);
    let url_safe = text.contains(['-', '_']);
    match (standard, url_safe) {
        (true, true) => None,
        (true, false) => STANDARD_PAD_INDIFFERENT.decode(text).ok(),
        (false, _) => URL_SAFE_PAD_INDIFFERENT.decode(text).ok(),
    }
}

fn significant_bytes(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// How often an unknown `kid` may trigger a JWKS refetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksRefreshPolicy {
    /// The least time between two refetches. Default: 60 s.
    pub min_interval: Duration,
}

impl Default for JwksRefreshPolicy {
    fn default() -> Self {
        JwksRefreshPolicy {
            min_interval: Duration::from_secs(60),
        }
    }
}

/// Rate-limits JWKS refetches caused by unknown `kid`s: at most one per [`JwksRefreshPolicy::min_interval`].
///
/// Only refetches count: the first, ordinary fetch (at discovery) is not recorded, so a provider that rotates its
/// key right after a client started is followed at once.
///
/// A pure value: it is told `now` and never reads a clock. A `now` earlier than the last fetch (the clock went
/// backwards) is treated as "just fetched": the refetch is refused and the window restarts at `now`, so a clock
/// that jumps back never blocks refetches for longer than one interval, and never lets a flood through.
///
/// ```
/// use std::time::Duration;
/// use nethealth_oidc_core::UnixTime;
/// use nethealth_oidc_core::jwks::{JwksRefreshLimiter, JwksRefreshPolicy};
///
/// let mut limiter = JwksRefreshLimiter::new(JwksRefreshPolicy { min_interval: Duration::from_secs(60) });
/// assert!(limiter.try_acquire(UnixTime::from_secs(1000)));
/// assert!(!limiter.try_acquire(UnixTime::from_secs(1030)));
/// assert!(limiter.try_acquire(UnixTime::from_secs(1060)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct JwksRefreshLimiter {
    policy: JwksRefreshPolicy,
    last_fetch: Option<UnixTime>,
}

impl JwksRefreshLimiter {
    /// A limiter that has not fetched yet.
    pub fn new(policy: JwksRefreshPolicy) -> Self {
        JwksRefreshLimiter {
            policy,
            last_fetch: None,
        }
    }

    /// Whether a refetch is allowed at `now`; if so, it is recorded as done at `now`.
    pub fn try_acquire(&mut self, now: UnixTime) -> bool {
        if self.is_allowed(now) {
            self.last_fetch = Some(now);
            return true;
        }
        if let Some(last) = self.last_fetch
            && now < last
        {
            // The clock went backwards: restart the window at `now`.
            self.last_fetch = Some(now);
        }
        false
    }

    /// Whether a refetch would be allowed at `now`, without recording anything.
    pub fn is_allowed(&self, now: UnixTime) -> bool {
        match self.last_fetch {
            None => true,
            Some(last) => {
                now >= last && now.saturating_duration_since(last) >= self.policy.min_interval
            }
        }
    }

    /// The earliest time a refetch is allowed: the last fetch plus the interval (the epoch if none was made yet).
    pub fn next_allowed(&self) -> UnixTime {
        match self.last_fetch {
            None => UnixTime::EPOCH,
            Some(last) => last.saturating_add(self.policy.min_interval),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> JwksRefreshPolicy {
        self.policy
    }
}

/// What a driver does after a check with the cached keys failed: see [`KeyCache::handle_check_failure`].
#[derive(Debug)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per failed check and moved straight to the driver; a box would only add an allocation"
)]
pub enum KeyAction {
    /// Nothing new can help: return the check's error.
    GiveUp,
    /// Another caller installed new keys since this check read them: check once more with
    /// [`KeyCache::keys`].
    CheckAgain,
    /// Send this JWKS request, [`install`](KeyCache::install) the parsed set, and check once more.
    Fetch {
        /// The JWKS request.
        request: Request<Vec<u8>>,
    },
}

impl KeyAction {
    /// A short label for logs and traces: `give_up`, `check_again` or `fetch` (never the request).
    pub fn name(&self) -> &'static str {
        match self {
            KeyAction::GiveUp => "give_up",
            KeyAction::CheckAgain => "check_again",
            KeyAction::Fetch { .. } => "fetch",
        }
    }
}

/// The keys a driver caches for one provider, and when it may fetch them again. A pure value: `now` is an argument.
///
/// Each installed set gets a new generation number. A driver reads `(keys, generation)` with
/// [`snapshot`](Self::snapshot), checks a token with the keys, and on failure asks
/// [`handle_check_failure`](Self::handle_check_failure) what to do, passing the generation it checked with: so
/// concurrent callers that all hit the same unknown `kid` share one refetch (the later ones are told to check
/// again), and refetches are rate-limited by a [`JwksRefreshLimiter`]. A failed fetch installs nothing: the last good
/// keys stay.
///
/// ```
/// use nethealth_oidc_core::UnixTime;
/// use nethealth_oidc_core::jwks::{JwkSet, JwksRefreshPolicy, KeyAction, KeyCache};
///
/// let uri = "https://accounts.example.com/.well-known/jwks".parse().unwrap();
/// let mut cache = KeyCache::new(JwkSet::default(), Some(uri), JwksRefreshPolicy::default());
/// let (_, generation) = cache.snapshot();
/// // The first refetch is allowed at once, even right after the first fetch ...
/// assert!(matches!(cache.poll_refetch(generation, UnixTime::from_secs(10)), KeyAction::Fetch { .. }));
/// // ... the next one only a minute later.
/// assert!(matches!(cache.poll_refetch(generation, UnixTime::from_secs(20)), KeyAction::GiveUp));
/// ```
#[derive(Debug, Clone)]
pub struct KeyCache {
    keys: std::sync::Arc<JwkSet>,
    generation: u64,
    jwks_uri: Option<Url>,
    limiter: JwksRefreshLimiter,
}

impl KeyCache {
    /// A cache holding `keys` (as fetched at discovery), refetched from `jwks_uri` under `policy`.
    pub fn new(keys: JwkSet, jwks_uri: Option<Url>, policy: JwksRefreshPolicy) -> Self {
        KeyCache {
            keys: std::sync::Arc::new(keys),
            generation: 0,
            jwks_uri,
            limiter: JwksRefreshLimiter::new(policy),
        }
    }

    /// The cached keys.
    pub fn keys(&self) -> std::sync::Arc<JwkSet> {
        std::sync::Arc::clone(&self.keys)
    }

    /// The cached keys and their generation, to pass back to [`handle_check_failure`](Self::handle_check_failure).
    pub fn snapshot(&self) -> (std::sync::Arc<JwkSet>, u64) {
        (self.keys(), self.generation)
    }

    /// After a check with the keys of `generation` failed with `error`: give up (the error is not about a missing
    /// key, or the rate limit refuses), check again (newer keys are installed), or fetch.
    pub fn handle_check_failure(
        &mut self,
        error: &Error,
        generation: u64,
        now: UnixTime,
    ) -> KeyAction {
        if !error.needs_jwks_refresh() {
            return KeyAction::GiveUp;
        }
        self.poll_refetch(generation, now)
    }

    /// Whether to fetch the keys again, asked for any reason by a caller that last saw `generation`: check again
    /// when newer keys are installed, fetch when the rate limit allows (the refetch is then counted), else give up.
    pub fn poll_refetch(&mut self, generation: u64, now: UnixTime) -> KeyAction {
        if generation != self.generation {
            return KeyAction::CheckAgain;
        }
        let Some(uri) = &self.jwks_uri else {
            return KeyAction::GiveUp;
        };
        if !self.limiter.try_acquire(now) {
            return KeyAction::GiveUp;
        }
        KeyAction::Fetch {
            request: jwks_request(uri),
        }
    }

    /// Installs a freshly fetched set; it gets a new generation.
    pub fn install(&mut self, keys: JwkSet) {
        self.keys = std::sync::Arc::new(keys);
        self.generation = self.generation.wrapping_add(1);
    }

    /// The rate limiter, to see when the next refetch may be made.
    pub fn limiter(&self) -> &JwksRefreshLimiter {
        &self.limiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N_B64URL: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    const E: &str = "AQAB";

    fn rsa_key(kid: &str, n: &str, extra: &str) -> String {
        format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{n}","e":"{E}"{extra}}}"#)
    }

    #[test]
    fn lenient_base64() {
        assert_eq!(decode_lenient("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(decode_lenient("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_lenient("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_lenient("+/8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_lenient("-_8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_lenient("+_8"), None);
        assert_eq!(decode_lenient("!!"), None);
    }

    #[test]
    fn standard_base64_modulus_is_accepted() {
        let std_n = {
            let bytes = URL_SAFE_PAD_INDIFFERENT.decode(N_B64URL).unwrap();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        assert!(std_n.contains('+') || std_n.contains('/'));
        assert!(std_n.ends_with('='));
        let body = format!(
            r#"{{"keys":[{},{}]}}"#,
            rsa_key("url", N_B64URL, r#","use":"sig","alg":"RS256""#),
            rsa_key("std", &std_n, "")
        );
        let set = JwkSet::from_json(body.as_bytes()).unwrap();
        assert_eq!(set.keys().len(), 2, "{:?}", set.skipped());
        assert!(set.contains_kid("std"));
        assert!(set.keys()[0].fits(SigningAlgorithm::RS256));
        assert!(!set.keys()[0].fits(SigningAlgorithm::PS256));
        assert!(set.keys()[1].fits(SigningAlgorithm::PS256));
        assert!(!set.keys()[1].fits(SigningAlgorithm::ES256));
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let body = format!(
            r#"{{"keys":[
                {good},
                {{"kty":"oct","kid":"sym","k":"c2VjcmV0"}},
                {{"kty":"EC","kid":"p521","crv":"P-521","x":"AA","y":"AA"}},
                {{"kty":"OKP","kid":"x448","crv":"Ed448","x":"AA"}},
                {enc},
                {ops},
                {weird_alg},
                {mismatch},
                {{"kty":"RSA","kid":"noe","n":"{n}"}},
                {{"kty":"RSA","kid":"bad64","n":"***","e":"AQAB"}},
                {{"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"}},
                {{"kty":"EC","kid":"short","crv":"P-256","x":"AQAB","y":"AQAB"}},
                {{"kty":"EC","kid":"offcurve","crv":"P-256","x":"{ones}","y":"{ones}"}},
                {{"kty":"OKP","kid":"edshort","crv":"Ed25519","x":"AQAB"}},
                {{"kty":7}},
                "not an object"
            ]}}"#,
            good = rsa_key("good", N_B64URL, ""),
            enc = rsa_key("enc", N_B64URL, r#","use":"enc""#),
            ops = rsa_key("ops", N_B64URL, r#","key_ops":["encrypt"]"#),
            weird_alg = rsa_key("weird", N_B64URL, r#","alg":"RSA-OAEP""#),
            mismatch = rsa_key("mismatch", N_B64URL, r#","alg":"ES256""#),
            n = N_B64URL,
            ones = URL_SAFE_PAD_INDIFFERENT.encode([1u8; 32]),
        );
        let set = JwkSet::from_json(body.as_bytes()).unwrap();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.keys()[0].kid(), Some("good"));
        let reasons: Vec<(Option<&str>, &SkipReason)> = set
            .skipped()
            .iter()
            .map(|s| (s.kid.as_deref(), &s.reason))
            .collect();
        assert_eq!(reasons.len(), 15);
        assert!(
            matches!(reasons[0], (Some("sym"), SkipReason::UnsupportedKeyType(k)) if k == "oct")
        );
        assert!(matches!(
            reasons[1],
            (Some("p521"), SkipReason::UnsupportedCurve(_))
        ));
        assert!(matches!(
            reasons[2],
            (Some("x448"), SkipReason::UnsupportedCurve(_))
        ));
        assert!(matches!(
            reasons[3],
            (Some("enc"), SkipReason::NotForSigning(_))
        ));
        assert!(matches!(
            reasons[4],
            (Some("ops"), SkipReason::NotForSigning(_))
        ));
        assert!(matches!(
            reasons[5],
            (Some("weird"), SkipReason::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            reasons[6],
            (Some("mismatch"), SkipReason::UnsupportedAlgorithm(_))
        ));
        for r in &reasons[7..] {
            assert!(matches!(r.1, SkipReason::Invalid(_)), "{r:?}");
        }
        assert!(set.skipped()[0].to_string().contains("sym"));
    }

    #[test]
    fn not_a_jwk_set_is_malformed() {
        for body in [
            &b"[]"[..],
            b"{}",
            b"{\"keys\":{}}",
            b"<html>",
            b"{\"keys\":[",
        ] {
            let r = Response::builder().status(200).body(body.to_vec()).unwrap();
            assert!(
                matches!(
                    parse_jwks(&r),
                    Err(ResponseError::Malformed {
                        endpoint: Endpoint::Jwks,
                        ..
                    })
                ),
                "{body:?}"
            );
        }
        let r = Response::builder()
            .status(200)
            .body(br#"{"keys":[]}"#.to_vec())
            .unwrap();
        assert!(parse_jwks(&r).unwrap().is_empty());
        let r = Response::builder()
            .status(500)
            .body(b"oops".to_vec())
            .unwrap();
        assert!(matches!(
            parse_jwks(&r),
            Err(ResponseError::Status { status: 500, .. })
        ));
        let many = format!(r#"{{"keys":[{}]}}"#, vec!["{}"; MAX_KEYS + 1].join(","));
        assert!(
            JwkSet::from_json(many.as_bytes())
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn request_is_a_json_get() {
        let url = Url::parse("https://accounts.example.com/.well-known/jwks").unwrap();
        let r = jwks_request(&url);
        assert_eq!(r.method(), http::Method::GET);
        assert_eq!(r.uri(), "https://accounts.example.com/.well-known/jwks");
        assert_eq!(r.headers()[http::header::ACCEPT], "application/json");
    }

    #[test]
    fn limiter_rate_limits() {
        let t = UnixTime::from_secs;
        let mut l = JwksRefreshLimiter::default();
        assert!(l.try_acquire(t(1000)));
        for s in 1000..1060 {
            assert!(!l.try_acquire(t(s)), "at {s}");
        }
        assert_eq!(l.next_allowed(), t(1060));
        assert!(l.try_acquire(t(1060)));
        assert!(!l.try_acquire(t(1061)));
    }

    #[test]
    fn limiter_survives_clock_going_backwards() {
        let t = UnixTime::from_secs;
        let mut l = JwksRefreshLimiter::new(JwksRefreshPolicy {
            min_interval: Duration::from_secs(10),
        });
        assert!(l.try_acquire(t(10_000)));
        // The clock jumps back an hour: refused, and the window restarts there.
        assert!(!l.try_acquire(t(6_400)));
        assert!(!l.try_acquire(t(6_405)));
        assert!(l.try_acquire(t(6_410)));
        // Extremes do not overflow.
        let mut l = JwksRefreshLimiter::new(JwksRefreshPolicy {
            min_interval: Duration::MAX,
        });
        assert!(l.try_acquire(UnixTime::MAX));
        assert!(!l.try_acquire(UnixTime::MAX));
        assert!(!l.try_acquire(UnixTime::EPOCH));
        assert!(!l.is_allowed(UnixTime::MAX));
        assert_eq!(l.next_allowed(), UnixTime::MAX);
    }

    fn unknown_kid() -> Error {
        Error::IdToken(crate::id_token::IdTokenError::UnknownKey { kid: "k2".into() })
    }

    #[test]
    fn the_first_fetch_is_not_a_refetch() {
        // Keys fetched at discovery at t=1000; the provider rotates at once: the unknown kid is refetched.
        let t = UnixTime::from_secs;
        let uri = Url::parse("https://accounts.example.com/jwks").unwrap();
        let mut cache = KeyCache::new(JwkSet::default(), Some(uri), JwksRefreshPolicy::default());
        let (_, g0) = cache.snapshot();
        let KeyAction::Fetch { request } = cache.handle_check_failure(&unknown_kid(), g0, t(1001))
        else {
            panic!("an unknown kid right after start is refetched");
        };
        assert_eq!(request.uri(), "https://accounts.example.com/jwks");
        cache.install(JwkSet::default());
        // A caller that checked with the old keys checks again with the new ones, without a fetch.
        assert!(matches!(
            cache.handle_check_failure(&unknown_kid(), g0, t(1002)),
            KeyAction::CheckAgain
        ));
    }

    #[test]
    fn a_flood_of_unknown_kids_refetches_once_per_interval() {
        let uri = Url::parse("https://accounts.example.com/jwks").unwrap();
        let mut cache = KeyCache::new(JwkSet::default(), Some(uri), JwksRefreshPolicy::default());
        let mut fetches = 0;
        for now in 1000..1300 {
            let (_, generation) = cache.snapshot();
            if let KeyAction::Fetch { .. } =
                cache.handle_check_failure(&unknown_kid(), generation, UnixTime::from_secs(now))
            {
                fetches += 1;
                cache.install(JwkSet::default());
            }
        }
        assert_eq!(fetches, 5, "at 1000, 1060, 1120, 1180 and 1240");
    }

    #[test]
    fn other_errors_and_a_missing_uri_give_up() {
        let t = UnixTime::from_secs;
        let mut cache = KeyCache::new(JwkSet::default(), None, JwksRefreshPolicy::default());
        assert!(matches!(
            cache.handle_check_failure(&unknown_kid(), 0, t(1)),
            KeyAction::GiveUp
        ));
        let uri = Url::parse("https://accounts.example.com/jwks").unwrap();
        let mut cache = KeyCache::new(JwkSet::default(), Some(uri), JwksRefreshPolicy::default());
        let expired = Error::IdToken(crate::id_token::IdTokenError::Expired {
            exp: 1,
            now: 2,
            leeway_secs: 0,
        });
        assert!(matches!(
            cache.handle_check_failure(&expired, 0, t(1)),
            KeyAction::GiveUp
        ));
        // Giving up on another error used no refetch.
        assert!(matches!(
            cache.handle_check_failure(&unknown_kid(), 0, t(2)),
            KeyAction::Fetch { .. }
        ));
    }
}
