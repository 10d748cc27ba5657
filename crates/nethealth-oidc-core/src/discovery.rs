//! Discovery: `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0).

use serde::{Deserialize, Serialize};
use url::Url;

/// The provider's metadata. Optional fields may be missing; unknown fields are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// `issuer`: equals the issuer that was asked for, exactly.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: Url,
    /// `token_endpoint` (absent only for implicit-only providers, which this client cannot use).
    pub token_endpoint: Option<Url>,
    /// `jwks_uri`.
    pub jwks_uri: Option<Url>,
    /// `userinfo_endpoint`.
    pub userinfo_endpoint: Option<Url>,
    /// `registration_endpoint` (RFC 7591).
    pub registration_endpoint: Option<Url>,
    /// `revocation_endpoint` (RFC 7009).
    pub revocation_endpoint: Option<Url>,
    /// `introspection_endpoint` (RFC 7662).
    pub introspection_endpoint: Option<Url>,
    /// `end_session_endpoint` (RP-initiated logout).
    pub end_session_endpoint: Option<Url>,
    /// `scopes_supported`.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// `response_types_supported`.
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// `grant_types_supported`; when absent the spec's default is `authorization_code` and `implicit`.
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported`; when absent the default is `client_secret_basic`.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `id_token_signing_alg_values_supported`.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `code_challenge_methods_supported` (RFC 8414).
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// `claims_supported`.
    #[serde(default)]
    pub claims_supported: Vec<String>,
    /// Every other field, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}
