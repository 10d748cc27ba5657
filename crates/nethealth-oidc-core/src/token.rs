//! The token endpoint: requests for the `authorization_code`, `refresh_token` and `client_credentials` grants,
//! client authentication, and the response parser.

use std::time::Duration;

use crate::secret::{AccessToken, IdToken, RefreshToken};

/// A successful token response (RFC 6749 §5.1), parsed leniently.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// `token_type`, lower-cased (`bearer`).
    pub token_type: String,
    /// `expires_in`; `None` when absent. A value too large to represent saturates.
    pub expires_in: Option<Duration>,
    /// `refresh_token`, when one was issued (only if `offline_access` was granted at IdentityServer3).
    pub refresh_token: Option<RefreshToken>,
    /// `id_token`, when one was issued.
    pub id_token: Option<IdToken>,
    /// The `scope` field as sent; IdentityServer3 sends none.
    pub scope: Option<crate::scope::Scopes>,
    /// Every other field, kept (SMART on FHIR sends `patient`, `encounter`, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
}
