//! Errors shared by every endpoint parser.
//!
//! Three things are kept apart, as the style guide asks: the provider said no ([`ResponseError::OAuth`], carrying
//! the typed [`OAuthError`]), the provider answered something unexpected ([`ResponseError::Redirect`],
//! [`ResponseError::Status`]), and the body did not parse ([`ResponseError::Malformed`], carrying a redacted,
//! truncated [`BodySnippet`]). Transport failures belong to the transport crates.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which endpoint a response came from; named in every error message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// The `jwks_uri`.
    Jwks,
    /// Client registration (`/api/Clients/Register` or RFC 7591/7592).
    Registration,
    /// The authorization endpoint (its redirect back to the client).
    Authorization,
    /// The token endpoint.
    Token,
    /// The userinfo endpoint.
    Userinfo,
    /// The RFC 7009 revocation endpoint.
    Revocation,
    /// The RFC 7662 introspection endpoint.
    Introspection,
    /// A resource server (an API called with the access token).
    Resource,
    /// The RFC 9126 pushed authorization request endpoint.
    PushedAuthorization,
}

impl Endpoint {
    /// Whether bodies from this endpoint may carry secrets (tokens, client secrets).
    pub fn carries_secrets(self) -> bool {
        matches!(
            self,
            Endpoint::Token | Endpoint::Registration | Endpoint::Introspection | Endpoint::Userinfo
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Discovery => "the discovery endpoint",
            Endpoint::Jwks => "the JWKS endpoint",
            Endpoint::Registration => "the registration endpoint",
            Endpoint::Authorization => "the authorization endpoint",
            Endpoint::Token => "the token endpoint",
            Endpoint::Userinfo => "the userinfo endpoint",
            Endpoint::Revocation => "the revocation endpoint",
            Endpoint::Introspection => "the introspection endpoint",
            Endpoint::PushedAuthorization => "the pushed authorization request endpoint",
            Endpoint::Resource => "the resource server",
        })
    }
}

/// An OAuth 2.0 / OpenID Connect error code.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client`.
    InvalidClient,
    /// `invalid_grant`: the code or refresh token is invalid, expired, revoked or already used.
    InvalidGrant,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// `access_denied`: the user (or the provider) refused.
    AccessDenied,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// `interaction_required`.
    InteractionRequired,
    /// `login_required`.
    LoginRequired,
    /// `account_selection_required`.
    AccountSelectionRequired,
    /// `consent_required`.
    ConsentRequired,
    /// `invalid_request_uri`.
    InvalidRequestUri,
    /// `invalid_request_object`.
    InvalidRequestObject,
    /// `request_not_supported`.
    RequestNotSupported,
    /// `request_uri_not_supported`.
    RequestUriNotSupported,
    /// `registration_not_supported`.
    RegistrationNotSupported,
    /// `invalid_redirect_uri` (RFC 7591).
    InvalidRedirectUri,
    /// `invalid_client_metadata` (RFC 7591).
    InvalidClientMetadata,
    /// `invalid_token` (RFC 6750).
    InvalidToken,
    /// `insufficient_scope` (RFC 6750).
    InsufficientScope,
    /// `unsupported_token_type` (RFC 7009).
    UnsupportedTokenType,
    /// `use_dpop_nonce` (RFC 9449 §8): the server wants a DPoP proof carrying the nonce it sent.
    UseDpopNonce,
    /// `invalid_dpop_proof` (RFC 9449 §7.1): the server refused the DPoP proof.
    InvalidDpopProof,
    /// Any other code, kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// Parses a code; unknown codes become [`ErrorCode::Other`].
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_grant" => ErrorCode::InvalidGrant,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            "access_denied" => ErrorCode::AccessDenied,
            "unsupported_response_type" => ErrorCode::UnsupportedResponseType,
            "server_error" => ErrorCode::ServerError,
            "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
            "interaction_required" => ErrorCode::InteractionRequired,
            "login_required" => ErrorCode::LoginRequired,
            "account_selection_required" => ErrorCode::AccountSelectionRequired,
            "consent_required" => ErrorCode::ConsentRequired,
            "invalid_request_uri" => ErrorCode::InvalidRequestUri,
            "invalid_request_object" => ErrorCode::InvalidRequestObject,
            "request_not_supported" => ErrorCode::RequestNotSupported,
            "request_uri_not_supported" => ErrorCode::RequestUriNotSupported,
            "registration_not_supported" => ErrorCode::RegistrationNotSupported,
            "invalid_redirect_uri" => ErrorCode::InvalidRedirectUri,
            "invalid_client_metadata" => ErrorCode::InvalidClientMetadata,
            "invalid_token" => ErrorCode::InvalidToken,
            "insufficient_scope" => ErrorCode::InsufficientScope,
            "unsupported_token_type" => ErrorCode::UnsupportedTokenType,
            "use_dpop_nonce" => ErrorCode::UseDpopNonce,
            "invalid_dpop_proof" => ErrorCode::InvalidDpopProof,
            other => ErrorCode::Other(other.to_owned()),
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::AccountSelectionRequired => "account_selection_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::InvalidRequestObject => "invalid_request_object",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::RegistrationNotSupported => "registration_not_supported",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest `error_description` / `error_uri` kept from the network, in bytes.
const MAX_ERROR_TEXT: usize = 512;

/// An error body `{error, error_description, error_uri}` from the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// `error_description`, cut to a sane length.
    pub description: Option<String>,
    /// `error_uri`.
    pub uri: Option<String>,
}

impl OAuthError {
    /// Builds an error from its wire fields, cutting over-long texts.
    pub fn new(code: &str, description: Option<&str>, uri: Option<&str>) -> Self {
        OAuthError {
            code: ErrorCode::parse(code),
            description: description.map(|d| truncate(d, MAX_ERROR_TEXT)),
            uri: uri.map(|u| truncate(u, MAX_ERROR_TEXT)),
        }
    }

    /// Parses a JSON error body; `None` when the body is not one.
    pub fn from_json(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wire {
            error: String,
            error_description: Option<serde_json::Value>,
            error_uri: Option<serde_json::Value>,
        }
        let w: Wire = serde_json::from_slice(body).ok()?;
        if w.error.is_empty() {
            return None;
        }
        let text = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let d = text(w.error_description);
        let u = text(w.error_uri);
        Some(OAuthError::new(&w.error, d.as_deref(), u.as_deref()))
    }

    /// What the caller should do next, given where the error came from.
    pub fn hint(&self, endpoint: Endpoint) -> &'static str {
        let desc = self
            .description
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        match (&self.code, endpoint) {
            (ErrorCode::InvalidGrant, Endpoint::Token) if desc.contains("code_verifier") => {
                "the provider does not expect PKCE for this client (IdentityServer3 answers \"Unexpected code_verifier\" \
                 to clients not registered for AuthorizationCodeWithProofKey): turn PKCE off for this client, or \
                 register it for PKCE"
            }
            (ErrorCode::InvalidGrant, _) => {
                "the code or refresh token was rejected (expired, revoked or already used): the user must log in again"
            }
            (ErrorCode::InvalidClient, _) | (ErrorCode::UnauthorizedClient, _) => {
                "check the client id and secret (or, for private_key_jwt, that the client's key is the one registered \
                 in its jwks), and the token endpoint auth method the client is registered for"
            }
            (ErrorCode::AccessDenied, _) => {
                "the user (or the provider) refused: ask again, or go on without this access"
            }
            (ErrorCode::LoginRequired, _)
            | (ErrorCode::ConsentRequired, _)
            | (ErrorCode::InteractionRequired, _)
            | (ErrorCode::AccountSelectionRequired, _) => {
                "the user must interact: start the login again without prompt=none"
            }
            (ErrorCode::InvalidScope, _) => "ask only for scopes the client is registered for",
            (ErrorCode::InvalidRedirectUri, _) => "register the exact redirect URI the login uses",
            (ErrorCode::InvalidClientMetadata, _) => {
                "fix the registration request as the description says"
            }
            (ErrorCode::ServerError, _) | (ErrorCode::TemporarilyUnavailable, _) => {
                "the provider is having trouble: try again later"
            }
            (ErrorCode::InvalidToken, _) => {
                "the access token is invalid or expired: refresh it or log in again"
            }
            (ErrorCode::InsufficientScope, _) => {
                "the token lacks a scope this call needs: log in again asking for it (the user may refuse it)"
            }
            (ErrorCode::UnsupportedGrantType, _) | (ErrorCode::UnsupportedResponseType, _) => {
                "the client is not registered for this flow at the provider"
            }
            (ErrorCode::UseDpopNonce, _) => {
                "the server asked for a new DPoP nonce again right after the one retry with its nonce: the server \
                 rotates nonces on every request or lost the one it gave; check the server's DPoP nonce settings"
            }
            (ErrorCode::InvalidDpopProof, _) => {
                "the server refused the DPoP proof (wrong URL or method, clock skew, replayed jti or wrong key): \
                 check that the request goes to the URL the server expects and that the clock is right"
            }
            (ErrorCode::InvalidRequestUri, _) => {
                "the pushed authorization request expired or was already used: start the login again"
            }
            _ => "see the provider's error description",
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(d) = &self.description {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// The most of a body that an error keeps, in bytes.
pub const MAX_SNIPPET: usize = 256;

/// Names of JSON fields whose values are secrets; redacted in every [`BodySnippet`].
const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "ClientSecret",
    "clientSecret",
    "registration_access_token",
    "code",
    "code_verifier",
    "token",
    "password",
];

/// A body kept for an error message: cut to [`MAX_SNIPPET`] bytes, with secrets redacted.
///
/// For a JSON object, the values of secret-bearing fields (`access_token`, `client_secret`, ...) are replaced by
/// `"[redacted]"`. A non-JSON body from an endpoint that may carry secrets is replaced by its length only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySnippet {
    text: String,
    len: usize,
}

impl BodySnippet {
    /// Makes a snippet of `body` as it came from `endpoint`.
    pub fn new(endpoint: Endpoint, body: &[u8]) -> Self {
        let len = body.len();
        let text = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(mut v) => {
                redact(&mut v);
                truncate(&v.to_string(), MAX_SNIPPET)
            }
            Err(_) if endpoint.carries_secrets() || looks_secret(body) => {
                String::from("[not shown: it may carry secrets]")
            }
            Err(_) => truncate(&String::from_utf8_lossy(body), MAX_SNIPPET),
        };
        BodySnippet { text, len }
    }

    /// The redacted, truncated text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The length of the original body, in bytes.
    pub fn original_len(&self) -> usize {
        self.len
    }
}

impl fmt::Display for BodySnippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            f.write_str("an empty body")
        } else {
            write!(f, "{} bytes: {}", self.len, self.text)
        }
    }
}

fn looks_secret(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    SECRET_FIELDS.iter().any(|f| text.contains(f))
}

fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// An error in a response from the provider.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The provider answered with an OAuth error body (`{error, error_description, error_uri}`).
    #[error("{endpoint} refused: {error}; {}", error.hint(*endpoint))]
    OAuth {
        /// Where the error came from.
        endpoint: Endpoint,
        /// The provider's error.
        error: OAuthError,
    },
    /// The provider answered with a redirect, which this client never follows.
    #[error(
        "{endpoint} answered with redirect {status}{}: redirects are never followed (they can point a client at an \
         attacker's server); configure the final URL if you trust it",
        location.as_ref().map(|l| format!(" to {l}")).unwrap_or_default()
    )]
    Redirect {
        /// Where the redirect came from.
        endpoint: Endpoint,
        /// The HTTP status (3xx).
        status: u16,
        /// The `Location` header, if any.
        location: Option<String>,
    },
    /// The provider answered with an unexpected status and no OAuth error body.
    #[error(
        "{endpoint} answered HTTP {status} with {body}; {}",
        if *status >= 500 { "the provider is having trouble: try again later" } else { "check the endpoint URL and the client's configuration" }
    )]
    Status {
        /// Where the answer came from.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// The body, redacted and cut.
        body: BodySnippet,
    },
    /// The body did not parse, or it broke the protocol.
    #[error(
        "{endpoint} sent a response this client cannot accept: {reason} (body: {body}); the provider is misconfigured or not an OpenID provider"
    )]
    Malformed {
        /// Where the answer came from.
        endpoint: Endpoint,
        /// What was wrong with it.
        reason: String,
        /// The body, redacted and cut.
        body: BodySnippet,
    },
}

impl ResponseError {
    /// The OAuth error, when the provider sent one.
    pub fn oauth_error(&self) -> Option<&OAuthError> {
        match self {
            ResponseError::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed (5xx, 429, `temporarily_unavailable`).
    pub fn is_transient(&self) -> bool {
        match self {
            ResponseError::Status { status, .. } => *status >= 500 || *status == 429,
            ResponseError::OAuth { error, .. } => {
                matches!(
                    error.code,
                    ErrorCode::TemporarilyUnavailable | ErrorCode::ServerError
                )
            }
            _ => false,
        }
    }
}

/// Describes a JSON error without echoing values (serde's messages can quote the input).
///
/// JSON nested deeper than 128 arrays or objects is refused by serde_json's recursion limit, so hostile nesting
/// can neither overflow the stack nor cost more than a linear scan; it is named as such here.
pub fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = e.to_string();
    let what = match e.classify() {
        Category::Eof => "the JSON is truncated",
        Category::Syntax if msg.starts_with("recursion limit exceeded") => {
            "the JSON is nested more than 128 levels deep, which no provider's answer needs"
        }
        Category::Syntax if msg.starts_with("number out of range") => {
            "the JSON holds a number too large for a 64-bit float"
        }
        Category::Syntax => "the body is not JSON",
        Category::Data => "the JSON does not have the expected shape",
        Category::Io => "the body could not be read",
    };
    // Only "missing field `x`", "unknown field `x`" and "duplicate field `x`" name a field between backticks; in
    // other data errors ("invalid type: string `abc`") the backticks hold a value, which may be a secret.
    let field = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| msg.split_once(prefix))
        .and_then(|(_, rest)| rest.split('`').next())
        .filter(|f| f.len() < 64 && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    match field {
        Some(f) => format!(
            "{what} (field `{f}`, line {} column {})",
            e.line(),
            e.column()
        ),
        None => format!("{what} (line {} column {})", e.line(), e.column()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_error_parses_and_hints() {
        let e = OAuthError::from_json(
            br#"{"error":"invalid_grant","error_description":"Unexpected code_verifier"}"#,
        )
        .unwrap();
        assert_eq!(e.code, ErrorCode::InvalidGrant);
        assert!(e.hint(Endpoint::Token).contains("turn PKCE off"));
        let e = OAuthError::from_json(br#"{"error":"invalid_grant"}"#).unwrap();
        assert!(e.hint(Endpoint::Token).contains("log in again"));
        assert!(OAuthError::from_json(b"not json").is_none());
        assert!(OAuthError::from_json(br#"{"error":""}"#).is_none());
    }

    #[test]
    fn snippet_redacts_secrets() {
        let s = BodySnippet::new(
            Endpoint::Token,
            br#"{"access_token":"SECRET","token_type":7}"#,
        );
        assert!(!s.as_str().contains("SECRET"), "{s}");
        assert!(s.as_str().contains("token_type"));
        let s = BodySnippet::new(Endpoint::Token, b"access_token=SECRET&x");
        assert!(!s.to_string().contains("SECRET"));
        let s = BodySnippet::new(Endpoint::Discovery, &[b'a'; 10_000]);
        assert!(s.as_str().len() <= MAX_SNIPPET + 3);
        assert_eq!(s.original_len(), 10_000);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 3), "é…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}

/// A request that could not be carried: reported by a transport crate, in terms that name no HTTP client.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made; the request never reached the server.
    #[error(
        "could not connect to {endpoint} ({reason}); check the URL, DNS and proxy settings, and that the provider is up"
    )]
    Connect {
        /// Where the request was going.
        endpoint: Endpoint,
        /// What the HTTP client said.
        reason: String,
    },
    /// No complete answer came in time.
    #[error("{endpoint} did not answer within {}s; the provider is slow or down: try again later", timeout.as_secs_f32())]
    Timeout {
        /// Where the request was going.
        endpoint: Endpoint,
        /// The timeout that ran out.
        timeout: std::time::Duration,
    },
    /// The body was larger than the limit; it was not read to the end.
    #[error(
        "{endpoint} sent a body larger than the {limit}-byte limit; the provider is misbehaving (raise the limit only if you trust it)"
    )]
    BodyTooLarge {
        /// Where the response came from.
        endpoint: Endpoint,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request could not be built or sent for another reason (TLS, a reset connection, a bad header).
    #[error(
        "the request to {endpoint} failed ({reason}); try again later, or check the TLS and proxy settings"
    )]
    Io {
        /// Where the request was going.
        endpoint: Endpoint,
        /// What the HTTP client said.
        reason: String,
    },
}

impl TransportError {
    /// Whether the request surely never reached the server (so even a one-shot request may be sent again).
    pub fn never_sent(&self) -> bool {
        matches!(self, TransportError::Connect { .. })
    }
}
