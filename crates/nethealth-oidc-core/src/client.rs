//! The client's own identity: id, secret, and how it authenticates at the token endpoint.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::secret::ClientSecret;

/// How the client authenticates at the token endpoint (and the revocation and introspection endpoints).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic with the id and secret form-urlencoded first (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: `client_id` in the body, no secret.
    None,
}

impl TokenAuthMethod {
    /// The registered name (`client_secret_basic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::None => "none",
        }
    }

    /// Parses a registered name; unknown names (`private_key_jwt`, ...) give `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(TokenAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuthMethod::ClientSecretPost),
            "none" => Some(TokenAuthMethod::None),
            _ => None,
        }
    }
}

/// A registered client, as the application stores it.
///
/// `Debug` never shows the secret (it is a [`ClientSecret`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`; `None` for a public client.
    pub client_secret: Option<ClientSecret>,
    /// The registered redirect URIs; the first is the default.
    #[serde(default)]
    pub redirect_uris: Vec<Url>,
    /// The auth method the client was registered with, when known; otherwise it is chosen from the metadata.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<TokenAuthMethod>,
    /// The registered `id_token_signed_response_alg`, when known.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
}

impl ClientConfig {
    /// A confidential client with a secret.
    pub fn new(client_id: impl Into<String>, client_secret: Option<ClientSecret>) -> Self {
        ClientConfig {
            client_id: client_id.into(),
            client_secret,
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: None,
            id_token_signed_response_alg: None,
        }
    }

    /// Sets the redirect URIs.
    pub fn with_redirect_uris(mut self, uris: Vec<Url>) -> Self {
        self.redirect_uris = uris;
        self
    }

    /// Sets the registered token endpoint auth method.
    pub fn with_auth_method(mut self, method: TokenAuthMethod) -> Self {
        self.token_endpoint_auth_method = Some(method);
        self
    }

    /// Sets the registered ID-token signing algorithm.
    pub fn with_id_token_alg(mut self, alg: impl Into<String>) -> Self {
        self.id_token_signed_response_alg = Some(alg.into());
        self
    }
}
