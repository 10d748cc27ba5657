//! ID-token validation (OpenID Connect Core §3.1.3.7 and §12.2, RFC 8725).
//!
//! [`IdTokenVerifier::verify`] checks, in this order:
//!
//! 1. **Form.** A compact JWS of three base64url parts (an encrypted five-part JWE is refused), at most
//!    [`MAX_TOKEN_LEN`] bytes, with a JSON header.
//! 2. **Algorithm.** `none` is always refused. The allow-list is the client's registered
//!    `id_token_signed_response_alg`, else the provider metadata's `id_token_signing_alg_values_supported`, else
//!    `RS256`. `HS256`/`HS384`/`HS512` are allowed only when the list names them *and* the client has a secret:
//!    they are verified with the client secret and never with a key from the JWKS, so a token "signed" with HMAC
//!    keyed by the provider's public key (algorithm confusion) fails.
//! 3. **Header.** `jku`, `x5u`, `jwk` and `x5c` are **ignored, never followed**: keys come only from the provider's
//!    JWKS, fetched from the discovered `jwks_uri`. Any `crit` is refused (this client understands no JWS
//!    extension). A `typ` other than `JWT` or `application/jwt` (any case) is refused, so that an access token
//!    (`at+jwt`) or a logout token cannot pass as an ID token (RFC 8725 §3.11).
//! 4. **Key.** By `kid` when the header has one; without a `kid`, the single key that fits the `alg` (type, curve,
//!    and the key's own `alg`). Several fitting keys are an error, never a guess. A `kid` the set does not know is
//!    [`IdTokenError::UnknownKey`]: the driver asks its [`KeyCache`](crate::jwks::KeyCache), which refetches the
//!    JWKS when its rate limit allows, and retries once.
//! 5. **Signature**, by `jsonwebtoken` with the aws-lc-rs backend, on the pre-built key. Only then are the claims
//!    read.
//! 6. **Claims.** `iss` equals the issuer exactly; `aud` (a string or an array) contains the client id; `azp` is
//!    required when there are several audiences and, when present, must be the client id; `sub`, `exp` and `iat`
//!    are required; `exp`, `nbf` and `iat` are checked against `now` with the leeway ([`DEFAULT_LEEWAY`], 60 s); an
//!    `iat` older than [`DEFAULT_MAX_IAT_AGE`] (one day, configurable) is refused as a likely replay; `nonce` must
//!    equal the one sent (compared in constant time); `at_hash` is checked when present and an access token is
//!    given; when `max_age` was sent, `auth_time` is required and must be no older than `max_age` plus the leeway.
//!    An `auth_time` in the future (beyond the leeway) is refused. Arithmetic saturates: no claim can overflow it.
//!
//! **`at_hash`** is the base64url of the left half of the access token's hash, where the hash is SHA-256 for
//! `*256`, SHA-384 for `*384`, and SHA-512 for `*512` and for `EdDSA` (Ed25519 hashes with SHA-512; this is the
//! common practice) — see [`access_token_hash`].
//!
//! **Refreshed ID tokens** (Core §12.2) are checked with [`IdTokenVerifier::verify_refreshed`], which verifies the
//! token as above (without a nonce expectation) and then calls [`check_refresh_continuity`].

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::Digest as _;

use crate::client::ClientConfig;
use crate::error::truncate;
use crate::jwks::{Jwk, JwkSet};
use crate::secret::{AccessToken, IdToken, Nonce, ct_eq_str};
use crate::time::UnixTime;
use crate::wire;

pub use crate::jwks::SigningAlgorithm;

/// The default clock-skew leeway for `exp`, `nbf`, `iat` and `auth_time`: 60 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// The default oldest acceptable `iat`: one day. ID tokens live minutes (IdentityServer3: 300 s), so an older
/// `iat` with a later `exp` means a long-lived token, which is refused as a replay risk.
pub const DEFAULT_MAX_IAT_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest ID token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The longest network-supplied text kept in an error.
const MAX_SHOWN: usize = 128;

/// The claims of a validated ID token.
///
/// Deserializing checks the shape only (`iss`, `sub`, `aud`, `exp`, `iat` present and well typed; `aud` may be a
/// string or an array); it validates nothing. Use [`IdTokenVerifier::verify`] on tokens from the network.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IdTokenClaims {
    /// `iss`.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// `aud`, always as a list.
    pub aud: Vec<String>,
    /// `exp`, Unix seconds.
    pub exp: u64,
    /// `iat`, Unix seconds.
    pub iat: u64,
    /// `nbf`, Unix seconds.
    pub nbf: Option<u64>,
    /// `auth_time`, Unix seconds.
    pub auth_time: Option<u64>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `azp`.
    pub azp: Option<String>,
    /// `at_hash`.
    pub at_hash: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl IdTokenClaims {
    /// Another claim by name (`email`, `idp`, `amr`, `sid`, ...).
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.extra.get(name)
    }

    /// When the token expires.
    pub fn expires_at(&self) -> UnixTime {
        UnixTime::from_secs(self.exp)
    }
}

/// Why an ID token was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// The token is not a well-formed signed JWT.
    #[error(
        "the ID token is not a well-formed signed JWT ({reason}): pass the `id_token` field of the token response as it came"
    )]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The token is an encrypted JWE.
    #[error(
        "the ID token is encrypted (JWE), which this client does not support: register the client without \
         id_token_encrypted_response_alg"
    )]
    Encrypted,
    /// The token is unsigned (`alg: none`).
    #[error(
        "the ID token is unsigned (alg=none), which is always refused: the provider must sign its ID tokens"
    )]
    Unsigned,
    /// The token's `alg` is not on the allow-list.
    #[error(
        "the ID token is signed with `{alg}`, which is not allowed (allowed: {}): register the client for an allowed \
         algorithm, or correct its id_token_signed_response_alg",
        .allowed.join(", ")
    )]
    AlgorithmNotAllowed {
        /// The token's `alg`, cut.
        alg: String,
        /// The allow-list.
        allowed: Vec<String>,
    },
    /// The verifier has no usable algorithm at all.
    #[error(
        "no ID-token signing algorithm is usable ({source_list}): set the client's id_token_signed_response_alg to one \
         this client supports (RS256, PS256, ES256, EdDSA, or HS256 with a client secret)"
    )]
    NoAllowedAlgorithm {
        /// Where the (unusable) list came from.
        source_list: String,
    },
    /// The header marks an extension as critical.
    #[error(
        "the ID token header marks {} as critical, an extension this client does not understand: the provider must \
         not use it for ID tokens",
        .names.join(", ")
    )]
    CriticalHeader {
        /// The `crit` entries, cut.
        names: Vec<String>,
    },
    /// The header's `typ` says this is another kind of JWT.
    #[error(
        "the JWT's typ is `{typ}`, so it is not an ID token (an access or logout token?): pass the `id_token` field"
    )]
    UnexpectedType {
        /// The `typ`, cut.
        typ: String,
    },
    /// No key of the JWKS has the token's `kid`.
    #[error(
        "no key `{kid}` in the provider's JWKS: the provider probably rotated its keys; fetch the JWKS again (if the \
         refetch limiter allows) and retry"
    )]
    UnknownKey {
        /// The token's `kid`, cut.
        kid: String,
    },
    /// The token has no `kid` and no key of the JWKS fits its `alg`.
    #[error(
        "the ID token has no kid and no key of the provider's JWKS fits {alg}: fetch the JWKS again and retry; if \
         this persists, the provider's JWKS lacks its signing key"
    )]
    NoMatchingKey {
        /// The token's algorithm.
        alg: SigningAlgorithm,
    },
    /// The key with the token's `kid` cannot verify the token's `alg`.
    #[error(
        "the JWKS key `{kid}` cannot verify an {alg} signature (wrong key type or alg): the token or the JWKS is wrong; \
         refuse the token"
    )]
    KeyMismatch {
        /// The `kid`, cut.
        kid: String,
        /// The token's algorithm.
        alg: SigningAlgorithm,
    },
    /// The JWKS holds no usable signing key.
    #[error(
        "the provider's JWKS has no usable signing key ({unusable} unusable{}{reasons}): fetch it again; if this \
         persists, the provider publishes no RSA, EC P-256/P-384 or Ed25519 signing key",
        if reasons.is_empty() { "" } else { ": " }
    )]
    NoUsableKeys {
        /// How many keys of the set cannot verify a signature.
        unusable: usize,
        /// Why (the first few), for the logs.
        reasons: String,
    },
    /// Several keys fit, and nothing tells which one to use.
    #[error(
        "{candidates} keys of the provider's JWKS fit this ID token{}: the choice is ambiguous, so the token is refused; \
         the provider must give its keys distinct kids and put the kid in its tokens",
        .kid.as_ref().map(|k| format!(" (kid `{k}`)")).unwrap_or_default()
    )]
    AmbiguousKey {
        /// The token's `kid`, if it had one.
        kid: Option<String>,
        /// How many keys fit.
        candidates: usize,
    },
    /// The signature does not verify.
    #[error(
        "the ID token's {alg} signature does not verify: the token was altered or forged; refuse it and log in again"
    )]
    BadSignature {
        /// The token's algorithm.
        alg: SigningAlgorithm,
    },
    /// A required claim is missing.
    #[error(
        "the ID token lacks the required `{claim}` claim: the provider is not OpenID Connect compliant; refuse it"
    )]
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// A claim has the wrong type or an impossible value.
    #[error("the ID token's `{claim}` claim {reason}: refuse the token")]
    InvalidClaim {
        /// The claim's name, cut.
        claim: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `iss` is not the expected issuer.
    #[error(
        "the ID token was issued by `{actual}`, not `{expected}`: it comes from another provider, or the issuer is \
         configured wrong; refuse it"
    )]
    WrongIssuer {
        /// The issuer this verifier expects.
        expected: String,
        /// The token's `iss`, cut.
        actual: String,
    },
    /// `aud` does not contain the client id.
    #[error(
        "the ID token is for {}, not for this client `{client_id}`: it was issued to another client; refuse it",
        .aud.join(", ")
    )]
    WrongAudience {
        /// This client's id.
        client_id: String,
        /// The token's audiences, cut.
        aud: Vec<String>,
    },
    /// Several audiences and no `azp`.
    #[error(
        "the ID token has several audiences and no azp, so it cannot be tied to this client `{client_id}`: refuse it"
    )]
    MissingAzp {
        /// This client's id.
        client_id: String,
    },
    /// `azp` is not the client id.
    #[error(
        "the ID token's azp is `{azp}`, not this client `{client_id}`: it was issued to another client; refuse it"
    )]
    WrongAzp {
        /// This client's id.
        client_id: String,
        /// The token's `azp`, cut.
        azp: String,
    },
    /// `exp` has passed, beyond the leeway.
    #[error(
        "the ID token expired at {exp} (now {now}, with {leeway_secs} s leeway): log in again; if this happens on \
         every login, check the system clock"
    )]
    Expired {
        /// `exp`.
        exp: u64,
        /// The `now` given.
        now: u64,
        /// The leeway, in seconds.
        leeway_secs: u64,
    },
    /// `nbf` is in the future, beyond the leeway.
    #[error(
        "the ID token is not valid before {nbf} (now {now}): check the system clock, or retry in a moment"
    )]
    NotYetValid {
        /// `nbf`.
        nbf: u64,
        /// The `now` given.
        now: u64,
    },
    /// `iat` is in the future, beyond the leeway.
    #[error("the ID token claims to be issued at {iat}, after now ({now}): check the system clock")]
    IssuedInFuture {
        /// `iat`.
        iat: u64,
        /// The `now` given.
        now: u64,
    },
    /// `iat` is further in the past than allowed.
    #[error(
        "the ID token was issued at {iat}, more than {max_age_secs} s before now ({now}): it may be replayed; log in \
         again"
    )]
    IssuedTooLongAgo {
        /// `iat`.
        iat: u64,
        /// The `now` given.
        now: u64,
        /// The allowed age, in seconds.
        max_age_secs: u64,
    },
    /// A nonce was sent, but the token has none.
    #[error(
        "the ID token carries no nonce although the login sent one: it does not belong to this login; start the login \
         again"
    )]
    MissingNonce,
    /// The token's nonce is not the one sent.
    #[error(
        "the ID token's nonce differs from the one this login sent: it belongs to another login (a replay?); start the \
         login again"
    )]
    WrongNonce,
    /// `at_hash` does not match the access token.
    #[error(
        "the ID token's at_hash does not match the access token: the tokens were mixed up or substituted; discard both \
         and log in again"
    )]
    WrongAtHash,
    /// `max_age` was sent, but the token has no `auth_time`.
    #[error(
        "the ID token lacks auth_time although the login sent max_age: the provider ignored max_age; log in again with \
         prompt=login"
    )]
    MissingAuthTime,
    /// The user's authentication is older than `max_age` allows.
    #[error(
        "the user last authenticated at {auth_time}, more than max_age ({max_age_secs} s) before now ({now}): log in \
         again with prompt=login"
    )]
    AuthTooOld {
        /// `auth_time`.
        auth_time: u64,
        /// The `now` given.
        now: u64,
        /// The `max_age` sent, in seconds.
        max_age_secs: u64,
    },
    /// A refreshed ID token changed a claim that must stay the same (Core §12.2).
    #[error(
        "the refreshed ID token's `{claim}` differs from the original ID token's: the refresh answered for another \
         user or session; discard the new tokens and log in again"
    )]
    RefreshChanged {
        /// The claim that changed.
        claim: &'static str,
    },
}

impl IdTokenError {
    /// Whether fetching the JWKS again may help: an unknown `kid`, no fitting key for a token without `kid`, or an
    /// empty usable set. Drivers ask [`KeyCache::handle_check_failure`](crate::jwks::KeyCache::handle_check_failure),
    /// which asks this.
    pub(crate) fn needs_jwks_refresh(&self) -> bool {
        matches!(
            self,
            IdTokenError::UnknownKey { .. }
                | IdTokenError::NoMatchingKey { .. }
                | IdTokenError::NoUsableKeys { .. }
        )
    }
}

/// What the login expects of the ID token.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default)]
pub struct Expectations<'a> {
    /// The `nonce` sent in the authorization request. `None` means none was sent (a refresh): then a `nonce` in
    /// the token is not checked here (see [`check_refresh_continuity`]).
    pub nonce: Option<&'a Nonce>,
    /// The access token that came with the ID token; its `at_hash` is checked when the token has one.
    pub access_token: Option<&'a AccessToken>,
    /// The `max_age` sent in the authorization request; then `auth_time` is required and checked.
    pub max_age: Option<Duration>,
}

impl<'a> Expectations<'a> {
    /// Expects nothing beyond the always-checked claims.
    pub fn new() -> Self {
        Expectations::default()
    }

    /// Expects this `nonce`.
    pub fn with_nonce(mut self, nonce: &'a Nonce) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Checks `at_hash` against this access token.
    pub fn with_access_token(mut self, access_token: &'a AccessToken) -> Self {
        self.access_token = Some(access_token);
        self
    }

    /// Expects `auth_time` no older than `max_age`.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }
}

/// Verifies ID tokens for one client of one provider. Build it once and share it: it is `Clone + Send + Sync`.
///
/// ```
/// use nethealth_oidc_core::ClientConfig;
/// use nethealth_oidc_core::id_token::{IdTokenVerifier, SigningAlgorithm};
///
/// let client = ClientConfig::new("my-client", None);
/// let verifier = IdTokenVerifier::new("https://accounts.example.com", &client, &[]);
/// assert_eq!(verifier.allowed_algorithms(), &[SigningAlgorithm::RS256]);
/// ```
#[derive(Debug, Clone)]
pub struct IdTokenVerifier {
    issuer: String,
    client_id: String,
    allowed: Vec<SigningAlgorithm>,
    alg_source: String,
    hmac_key: Option<DecodingKey>,
    leeway: Duration,
    max_iat_age: Option<Duration>,
}

impl IdTokenVerifier {
    /// A verifier for tokens from `issuer` to `client`.
    ///
    /// `metadata_algs` is the provider's `id_token_signing_alg_values_supported`, used when the client has no
    /// registered `id_token_signed_response_alg`. Unknown names and `none` are dropped; HMAC algorithms are dropped
    /// when the client has no secret. If nothing is left, every [`verify`](Self::verify) fails with
    /// [`IdTokenError::NoAllowedAlgorithm`].
    pub fn new(issuer: impl Into<String>, client: &ClientConfig, metadata_algs: &[String]) -> Self {
        let secret = client
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().as_bytes())
            .filter(|s| !s.is_empty());
        let (names, alg_source): (Vec<&str>, String) =
            match client.id_token_signed_response_alg.as_deref() {
                Some(registered) => (
                    vec![registered],
                    format!(
                        "the registered id_token_signed_response_alg `{}`",
                        truncate(registered, MAX_SHOWN)
                    ),
                ),
                None if !metadata_algs.is_empty() => (
                    metadata_algs.iter().map(String::as_str).collect(),
                    format!(
                        "the provider's id_token_signing_alg_values_supported [{}]",
                        truncate(&metadata_algs.join(", "), MAX_SHOWN)
                    ),
                ),
                None => (vec!["RS256"], "the default RS256".to_owned()),
            };
        let mut allowed: Vec<SigningAlgorithm> = Vec::new();
        for alg in names.into_iter().filter_map(SigningAlgorithm::parse) {
            if (!alg.is_symmetric() || secret.is_some()) && !allowed.contains(&alg) {
                allowed.push(alg);
            }
        }
        let hmac_key = secret
            .filter(|_| allowed.iter().any(|a| a.is_symmetric()))
            .and_then(|s| DecodingKey::from_secret(s).ok());
        IdTokenVerifier {
            issuer: issuer.into(),
            client_id: client.client_id.clone(),
            allowed,
            alg_source,
            hmac_key,
            leeway: DEFAULT_LEEWAY,
            max_iat_age: Some(DEFAULT_MAX_IAT_AGE),
        }
    }

    /// Sets the clock-skew leeway (default [`DEFAULT_LEEWAY`], 60 s).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets the oldest acceptable `iat` (default [`DEFAULT_MAX_IAT_AGE`], one day); `None` turns the check off.
    pub fn with_max_iat_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_iat_age = max_age;
        self
    }

    /// The issuer this verifier expects.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client id this verifier expects in `aud`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The algorithm allow-list.
    pub fn allowed_algorithms(&self) -> &[SigningAlgorithm] {
        &self.allowed
    }

    /// The leeway in force.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Verifies `token` with `keys` at `now` and returns its claims. See the [module docs](self) for every check.
    ///
    /// On an error, ask [`KeyCache::handle_check_failure`](crate::jwks::KeyCache::handle_check_failure) whether
    /// to fetch the JWKS again and call this once more with the new set.
    pub fn verify(
        &self,
        token: &IdToken,
        keys: &JwkSet,
        expect: &Expectations<'_>,
        now: UnixTime,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let token = token.expose_secret();
        let parts = split(token)?;
        let header_bytes = decode_part(parts.header, "header")?;
        let header = parse_header(&header_bytes)?;
        let alg = self.check_header(&header)?;

        let key = if alg.is_symmetric() {
            self.hmac_key
                .as_ref()
                .ok_or_else(|| self.not_allowed(alg.as_str()))?
        } else {
            select_key(keys, header.kid.as_deref(), alg)?.decoding_key()
        };
        match jsonwebtoken::crypto::verify(
            parts.signature,
            parts.message.as_bytes(),
            key,
            alg.to_jwt(),
        ) {
            Ok(true) => {}
            Ok(false) => return Err(IdTokenError::BadSignature { alg }),
            Err(e) => {
                return Err(match e.kind() {
                    jsonwebtoken::errors::ErrorKind::Base64(_) => IdTokenError::Malformed {
                        reason: "the signature is not base64url".into(),
                    },
                    _ => IdTokenError::BadSignature { alg },
                });
            }
        }

        let payload = decode_part(parts.payload, "payload")?;
        let raw: RawClaims =
            serde_json::from_slice(&payload).map_err(|e| IdTokenError::Malformed {
                reason: format!(
                    "the payload is not a JSON object: {}",
                    wire::json_reason(&e)
                ),
            })?;
        let claims = raw.into_claims()?;
        self.check_claims(&claims, alg, expect, now)?;
        Ok(claims)
    }

    /// Verifies an ID token that came from a refresh (Core §12.2): [`verify`](Self::verify) without a nonce
    /// expectation, then [`check_refresh_continuity`] against the `original` claims.
    pub fn verify_refreshed(
        &self,
        token: &IdToken,
        keys: &JwkSet,
        original: &IdTokenClaims,
        access_token: Option<&AccessToken>,
        now: UnixTime,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let expect = Expectations {
            nonce: None,
            access_token,
            max_age: None,
        };
        let refreshed = self.verify(token, keys, &expect, now)?;
        check_refresh_continuity(original, &refreshed)?;
        Ok(refreshed)
    }

    fn not_allowed(&self, alg: &str) -> IdTokenError {
        if self.allowed.is_empty() {
            return IdTokenError::NoAllowedAlgorithm {
                source_list: self.alg_source.clone(),
            };
        }
        IdTokenError::AlgorithmNotAllowed {
            alg: truncate(alg, MAX_SHOWN),
            allowed: self.allowed.iter().map(|a| a.as_str().to_owned()).collect(),
        }
    }

    fn check_header(&self, header: &RawHeader<'_>) -> Result<SigningAlgorithm, IdTokenError> {
        let name = header
            .alg
            .as_deref()
            .ok_or_else(|| malformed("the header has no `alg`"))?;
        if name.eq_ignore_ascii_case("none") {
            return Err(IdTokenError::Unsigned);
        }
        let alg = SigningAlgorithm::parse(name)
            .filter(|a| self.allowed.contains(a))
            .ok_or_else(|| self.not_allowed(name))?;
        if let Some(crit) = &header.crit {
            return Err(IdTokenError::CriticalHeader {
                names: crit
                    .iter()
                    .take(8)
                    .map(|c| truncate(c, MAX_SHOWN))
                    .collect(),
            });
        }
        if let Some(typ) = header.typ.as_deref() {
            let bare = typ
                .get(..12)
                .filter(|p| p.eq_ignore_ascii_case("application/"))
                .map_or(typ, |_| &typ[12..]);
            if !bare.eq_ignore_ascii_case("jwt") {
                return Err(IdTokenError::UnexpectedType {
                    typ: truncate(typ, MAX_SHOWN),
                });
            }
        }
        Ok(alg)
    }

    fn check_claims(
        &self,
        claims: &IdTokenClaims,
        alg: SigningAlgorithm,
        expect: &Expectations<'_>,
        now: UnixTime,
    ) -> Result<(), IdTokenError> {
        if claims.iss != self.issuer {
            return Err(IdTokenError::WrongIssuer {
                expected: self.issuer.clone(),
                actual: truncate(&claims.iss, MAX_SHOWN),
            });
        }
        if !claims.aud.contains(&self.client_id) {
            return Err(IdTokenError::WrongAudience {
                client_id: self.client_id.clone(),
                aud: claims
                    .aud
                    .iter()
                    .take(8)
                    .map(|a| truncate(a, MAX_SHOWN))
                    .collect(),
            });
        }
        match &claims.azp {
            Some(azp) if *azp != self.client_id => {
                return Err(IdTokenError::WrongAzp {
                    client_id: self.client_id.clone(),
                    azp: truncate(azp, MAX_SHOWN),
                });
            }
            None if claims.aud.len() > 1 => {
                return Err(IdTokenError::MissingAzp {
                    client_id: self.client_id.clone(),
                });
            }
            _ => {}
        }

        let now_s = now.as_secs();
        let leeway = self.leeway.as_secs();
        if now_s >= claims.exp.saturating_add(leeway) {
            return Err(IdTokenError::Expired {
                exp: claims.exp,
                now: now_s,
                leeway_secs: leeway,
            });
        }
        if let Some(nbf) = claims.nbf
            && nbf > now_s.saturating_add(leeway)
        {
            return Err(IdTokenError::NotYetValid { nbf, now: now_s });
        }
        if claims.iat > now_s.saturating_add(leeway) {
            return Err(IdTokenError::IssuedInFuture {
                iat: claims.iat,
                now: now_s,
            });
        }
        if let Some(max) = self.max_iat_age
            && now_s
                > claims
                    .iat
                    .saturating_add(max.as_secs())
                    .saturating_add(leeway)
        {
            return Err(IdTokenError::IssuedTooLongAgo {
                iat: claims.iat,
                now: now_s,
                max_age_secs: max.as_secs(),
            });
        }

        if let Some(sent) = expect.nonce {
            let got = claims.nonce.as_deref().ok_or(IdTokenError::MissingNonce)?;
            if !ct_eq_str(sent.expose_secret(), got) {
                return Err(IdTokenError::WrongNonce);
            }
        }

        if let (Some(at_hash), Some(access_token)) = (&claims.at_hash, expect.access_token) {
            let expected = access_token_hash(alg, access_token.expose_secret());
            if !ct_eq_str(&expected, at_hash) {
                return Err(IdTokenError::WrongAtHash);
            }
        }

        if let Some(auth_time) = claims.auth_time
            && auth_time > now_s.saturating_add(leeway)
        {
            return Err(IdTokenError::InvalidClaim {
                claim: "auth_time".into(),
                reason: format!(
                    "is in the future ({auth_time}, now {now_s}); check the system clock"
                ),
            });
        }
        if let Some(max_age) = expect.max_age {
            let auth_time = claims.auth_time.ok_or(IdTokenError::MissingAuthTime)?;
            if now_s
                > auth_time
                    .saturating_add(max_age.as_secs())
                    .saturating_add(leeway)
            {
                return Err(IdTokenError::AuthTooOld {
                    auth_time,
                    now: now_s,
                    max_age_secs: max_age.as_secs(),
                });
            }
        }
        Ok(())
    }
}

/// Checks that a refreshed ID token continues the original (OpenID Connect Core §12.2): the same `iss`, `sub` and
/// `aud` (as sets); an `auth_time`, when the refreshed token has one, equal to the original's; a `nonce` absent or
/// equal to the original's.
///
/// Both sets of claims must already be verified. A refreshed token with an `auth_time` or a `nonce` the original
/// lacked is refused: nothing ties it to the original login.
pub fn check_refresh_continuity(
    original: &IdTokenClaims,
    refreshed: &IdTokenClaims,
) -> Result<(), IdTokenError> {
    let changed = |claim| Err(IdTokenError::RefreshChanged { claim });
    if original.iss != refreshed.iss {
        return changed("iss");
    }
    if !ct_eq_str(&original.sub, &refreshed.sub) {
        return changed("sub");
    }
    let same_aud = original.aud.len() == refreshed.aud.len()
        && original.aud.iter().all(|a| refreshed.aud.contains(a))
        && refreshed.aud.iter().all(|a| original.aud.contains(a));
    if !same_aud {
        return changed("aud");
    }
    if refreshed.auth_time.is_some() && refreshed.auth_time != original.auth_time {
        return changed("auth_time");
    }
    if let Some(new_nonce) = &refreshed.nonce {
        match &original.nonce {
            Some(old) if ct_eq_str(old, new_nonce) => {}
            _ => return changed("nonce"),
        }
    }
    Ok(())
}

/// The `at_hash` of an access token for a token signed with `alg`: the base64url (no padding) of the left half of
/// its hash — SHA-256 for `*256`, SHA-384 for `*384`, SHA-512 for `*512` and `EdDSA`.
pub fn access_token_hash(alg: SigningAlgorithm, access_token: &str) -> String {
    use SigningAlgorithm as A;
    let input = access_token.as_bytes();
    match alg {
        A::RS256 | A::PS256 | A::ES256 | A::HS256 => {
            let d = sha2::Sha256::digest(input);
            URL_SAFE_NO_PAD.encode(&d[..d.len() / 2])
        }
        A::RS384 | A::PS384 | A::ES384 | A::HS384 => {
            let d = sha2::Sha384::digest(input);
            URL_SAFE_NO_PAD.encode(&d[..d.len() / 2])
        }
        A::RS512 | A::PS512 | A::HS512 | A::EdDSA => {
            let d = sha2::Sha512::digest(input);
            URL_SAFE_NO_PAD.encode(&d[..d.len() / 2])
        }
    }
}

fn malformed(reason: &str) -> IdTokenError {
    IdTokenError::Malformed {
        reason: reason.to_owned(),
    }
}

/// The three parts of a compact JWS, and the signed message (`header.payload`).
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    message: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, IdTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("it is longer than 64 KiB"));
    }
    let mut dots = token.match_indices('.').map(|(i, _)| i);
    let (first, second) = match (dots.next(), dots.next(), dots.next()) {
        (Some(a), Some(b), None) => (a, b),
        (Some(_), Some(_), Some(_)) if token.split('.').count() == 5 => {
            return Err(IdTokenError::Encrypted);
        }
        _ => return Err(malformed("it does not have three dot-separated parts")),
    };
    Ok(Parts {
        header: &token[..first],
        payload: &token[first + 1..second],
        signature: &token[second + 1..],
        message: &token[..second],
    })
}

/// The header members this client reads; `jku`, `x5u`, `jwk` and `x5c` are deliberately not read.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

fn decode_part(encoded: &str, what: &str) -> Result<Vec<u8>, IdTokenError> {
    URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| malformed(&format!("the {what} is not base64url")))
}

fn parse_header(bytes: &[u8]) -> Result<RawHeader<'_>, IdTokenError> {
    serde_json::from_slice(bytes).map_err(|e| IdTokenError::Malformed {
        reason: format!("the header is not a JSON object: {}", wire::json_reason(&e)),
    })
}

fn select_key<'k>(
    keys: &'k JwkSet,
    kid: Option<&str>,
    alg: SigningAlgorithm,
) -> Result<&'k Jwk, IdTokenError> {
    if keys.is_empty() {
        let reasons = keys
            .skipped()
            .iter()
            .take(4)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(IdTokenError::NoUsableKeys {
            unusable: keys.skipped().len(),
            reasons,
        });
    }
    let mut chosen = None;
    let mut candidates = 0usize;
    let mut with_kid = 0usize;
    for key in keys.keys() {
        if let Some(kid) = kid {
            if key.kid() != Some(kid) {
                continue;
            }
            with_kid += 1;
        }
        if key.fits(alg) {
            candidates += 1;
            chosen.get_or_insert(key);
        }
    }
    match (kid, chosen) {
        (_, Some(key)) if candidates == 1 => Ok(key),
        (kid, Some(_)) => Err(IdTokenError::AmbiguousKey {
            kid: kid.map(|k| truncate(k, MAX_SHOWN)),
            candidates,
        }),
        (Some(kid), None) if with_kid == 0 => Err(IdTokenError::UnknownKey {
            kid: truncate(kid, MAX_SHOWN),
        }),
        (Some(kid), None) => Err(IdTokenError::KeyMismatch {
            kid: truncate(kid, MAX_SHOWN),
            alg,
        }),
        (None, None) => Err(IdTokenError::NoMatchingKey { alg }),
    }
}

/// Claims as read from the payload, before the required ones are checked.
#[derive(Default)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Vec<String>>,
    exp: Option<u64>,
    iat: Option<u64>,
    nbf: Option<u64>,
    auth_time: Option<u64>,
    nonce: Option<String>,
    azp: Option<String>,
    at_hash: Option<String>,
    extra: serde_json::Map<String, serde_json::Value>,
    /// The first problem met: (claim, what is wrong).
    problem: Option<(String, &'static str)>,
}

impl RawClaims {
    fn into_claims(self) -> Result<IdTokenClaims, IdTokenError> {
        if let Some((claim, reason)) = self.problem {
            return Err(IdTokenError::InvalidClaim {
                claim: truncate(&claim, MAX_SHOWN),
                reason: reason.to_owned(),
            });
        }
        let missing = |claim| IdTokenError::MissingClaim { claim };
        Ok(IdTokenClaims {
            iss: self.iss.ok_or(missing("iss"))?,
            sub: self.sub.filter(|s| !s.is_empty()).ok_or(missing("sub"))?,
            aud: self.aud.ok_or(missing("aud"))?,
            exp: self.exp.ok_or(missing("exp"))?,
            iat: self.iat.ok_or(missing("iat"))?,
            nbf: self.nbf,
            auth_time: self.auth_time,
            nonce: self.nonce,
            azp: self.azp,
            at_hash: self.at_hash,
            extra: self.extra,
        })
    }

    fn note(&mut self, claim: &str, reason: &'static str) {
        if self.problem.is_none() {
            self.problem = Some((claim.to_owned(), reason));
        }
    }

    fn string(&mut self, claim: &'static str, value: serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Null => None,
            _ => {
                self.note(claim, "is not a string");
                None
            }
        }
    }

    fn date(&mut self, claim: &'static str, value: serde_json::Value) -> Option<u64> {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(v) = n.as_u64() {
                    return Some(v);
                }
                match n.as_f64() {
                    // A NumericDate may have a fraction (RFC 7519 §2); `as` saturates, it never wraps.
                    Some(f) if f.is_finite() && f >= 0.0 => Some(f as u64),
                    _ => {
                        self.note(claim, "is a negative or impossible time");
                        None
                    }
                }
            }
            serde_json::Value::Null => None,
            _ => {
                self.note(claim, "is not a number of seconds");
                None
            }
        }
    }

    fn audiences(&mut self, value: serde_json::Value) -> Option<Vec<String>> {
        match value {
            serde_json::Value::String(s) => Some(vec![s]),
            serde_json::Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        serde_json::Value::String(s) => out.push(s),
                        _ => {
                            self.note("aud", "holds something other than strings");
                            return None;
                        }
                    }
                }
                if out.is_empty() {
                    self.note("aud", "is an empty list");
                    return None;
                }
                Some(out)
            }
            serde_json::Value::Null => None,
            _ => {
                self.note("aud", "is neither a string nor a list of strings");
                None
            }
        }
    }
}

/// A claim name: the known ones without allocating.
enum ClaimName {
    Iss,
    Sub,
    Aud,
    Exp,
    Iat,
    Nbf,
    AuthTime,
    Nonce,
    Azp,
    AtHash,
    Other(String),
}

impl ClaimName {
    fn known(name: &str) -> Option<ClaimName> {
        Some(match name {
            "iss" => ClaimName::Iss,
            "sub" => ClaimName::Sub,
            "aud" => ClaimName::Aud,
            "exp" => ClaimName::Exp,
            "iat" => ClaimName::Iat,
            "nbf" => ClaimName::Nbf,
            "auth_time" => ClaimName::AuthTime,
            "nonce" => ClaimName::Nonce,
            "azp" => ClaimName::Azp,
            "at_hash" => ClaimName::AtHash,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for ClaimName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = ClaimName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClaimName, E> {
                Ok(ClaimName::known(v).unwrap_or_else(|| ClaimName::Other(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ClaimName, E> {
                Ok(ClaimName::known(&v).unwrap_or(ClaimName::Other(v)))
            }
        }
        deserializer.deserialize_identifier(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for RawClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;
        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = RawClaims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
                let mut raw = RawClaims::default();
                while let Some(name) = map.next_key::<ClaimName>()? {
                    let value: serde_json::Value = map.next_value()?;
                    macro_rules! set {
                        ($field:ident, $claim:literal, $conv:expr) => {{
                            if raw.$field.is_some() {
                                raw.note($claim, "appears twice");
                            } else {
                                raw.$field = $conv;
                            }
                        }};
                    }
                    match name {
                        ClaimName::Iss => set!(iss, "iss", raw.string("iss", value)),
                        ClaimName::Sub => set!(sub, "sub", raw.string("sub", value)),
                        ClaimName::Aud => set!(aud, "aud", raw.audiences(value)),
                        ClaimName::Exp => set!(exp, "exp", raw.date("exp", value)),
                        ClaimName::Iat => set!(iat, "iat", raw.date("iat", value)),
                        ClaimName::Nbf => set!(nbf, "nbf", raw.date("nbf", value)),
                        ClaimName::AuthTime => {
                            set!(auth_time, "auth_time", raw.date("auth_time", value))
                        }
                        ClaimName::Nonce => set!(nonce, "nonce", raw.string("nonce", value)),
                        ClaimName::Azp => set!(azp, "azp", raw.string("azp", value)),
                        ClaimName::AtHash => set!(at_hash, "at_hash", raw.string("at_hash", value)),
                        ClaimName::Other(name) => {
                            if raw.extra.contains_key(&name) {
                                raw.note(&name, "appears twice");
                            } else {
                                raw.extra.insert(name, value);
                            }
                        }
                    }
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

impl<'de> Deserialize<'de> for IdTokenClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawClaims::deserialize(deserializer)?
            .into_claims()
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_known_vector() {
        // OpenID Connect Core, Appendix A.3 / A.4: the access token and its at_hash for RS256.
        assert_eq!(
            access_token_hash(
                SigningAlgorithm::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(access_token_hash(SigningAlgorithm::ES384, "x").len(), 32);
        assert_eq!(access_token_hash(SigningAlgorithm::EdDSA, "x").len(), 43);
    }

    #[test]
    fn split_counts_parts() {
        assert!(split("a.b.c").is_ok());
        assert_eq!(split("a.b.c.d.e").err(), Some(IdTokenError::Encrypted));
        assert!(matches!(split("a.b"), Err(IdTokenError::Malformed { .. })));
        assert!(matches!(
            split("a.b.c.d"),
            Err(IdTokenError::Malformed { .. })
        ));
        let p = split("hh.pp.ss").unwrap();
        assert_eq!(
            (p.header, p.payload, p.signature, p.message),
            ("hh", "pp", "ss", "hh.pp")
        );
    }

    #[test]
    fn claims_deserialize_leniently_and_round_trip() {
        let c: IdTokenClaims = serde_json::from_str(
            r#"{"iss":"i","sub":"s","aud":"a","exp":10.5,"iat":1,"nbf":null,"idp":"idsrv","amr":["pwd"]}"#,
        )
        .unwrap();
        assert_eq!(c.aud, vec!["a".to_owned()]);
        assert_eq!(c.exp, 10);
        assert_eq!(c.nbf, None);
        assert_eq!(c.claim("idp"), Some(&serde_json::json!("idsrv")));
        let back: IdTokenClaims =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn raw_claims_problems_are_typed() {
        let parse = |s: &str| serde_json::from_str::<RawClaims>(s).unwrap().into_claims();
        let base = r#""iss":"i","aud":"a","exp":10,"iat":1"#;
        assert_eq!(
            parse(&format!("{{{base}}}")).unwrap_err(),
            IdTokenError::MissingClaim { claim: "sub" }
        );
        assert_eq!(
            parse(&format!(r#"{{{base},"sub":""}}"#)).unwrap_err(),
            IdTokenError::MissingClaim { claim: "sub" }
        );
        assert!(matches!(
            parse(&format!(r#"{{{base},"sub":5}}"#)).unwrap_err(),
            IdTokenError::InvalidClaim { claim, .. } if claim == "sub"
        ));
        assert!(matches!(
            parse(r#"{"iss":"i","aud":"a","exp":-1,"iat":1,"sub":"s"}"#).unwrap_err(),
            IdTokenError::InvalidClaim { claim, .. } if claim == "exp"
        ));
        assert!(matches!(
            parse(r#"{"iss":"i","aud":[],"exp":1,"iat":1,"sub":"s"}"#).unwrap_err(),
            IdTokenError::InvalidClaim { claim, .. } if claim == "aud"
        ));
        assert!(matches!(
            parse(r#"{"iss":"i","aud":["a",1],"exp":1,"iat":1,"sub":"s"}"#).unwrap_err(),
            IdTokenError::InvalidClaim { claim, .. } if claim == "aud"
        ));
        assert!(matches!(
            parse(r#"{"iss":"i","aud":"a","exp":1,"iat":1,"sub":"s","sub":"t"}"#).unwrap_err(),
            IdTokenError::InvalidClaim { claim, reason } if claim == "sub" && reason.contains("twice")
        ));
        assert!(matches!(
            parse(r#"{"iss":"i","aud":"a","exp":1,"iat":1,"sub":"s","x":1,"x":2}"#).unwrap_err(),
            IdTokenError::InvalidClaim { claim, .. } if claim == "x"
        ));
        let huge = parse(r#"{"iss":"i","aud":"a","exp":1e300,"iat":1,"sub":"s"}"#).unwrap();
        assert_eq!(huge.exp, u64::MAX);
    }

    #[test]
    fn backend_is_installed() {
        // Exactly one jsonwebtoken crypto backend: with both or neither, there is no default provider and
        // jsonwebtoken would panic on first use.
        assert!(jsonwebtoken::crypto::CryptoProvider::try_get_default().is_some());
    }
}
