//! The client's own identity: id, secret, and how it authenticates at the token endpoint.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::client_auth::{AssertionAudience, ClientKey};
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
    /// A JWT assertion signed with the client's private key (RFC 7523, OpenID Connect Core §9); see
    /// [`client_auth`](crate::client_auth).
    PrivateKeyJwt,
    /// A JWT assertion signed with HS256, keyed with the client secret (OpenID Connect Core §9).
    ClientSecretJwt,
}

impl TokenAuthMethod {
    /// The registered name (`client_secret_basic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::None => "none",
            TokenAuthMethod::PrivateKeyJwt => "private_key_jwt",
            TokenAuthMethod::ClientSecretJwt => "client_secret_jwt",
        }
    }

    /// Parses a registered name; unknown names (`tls_client_auth`, ...) give `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(TokenAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuthMethod::ClientSecretPost),
            "none" => Some(TokenAuthMethod::None),
            "private_key_jwt" => Some(TokenAuthMethod::PrivateKeyJwt),
            "client_secret_jwt" => Some(TokenAuthMethod::ClientSecretJwt),
            _ => None,
        }
    }
}

/// A registered client, as the application stores it.
///
/// `Debug` never shows the secret (it is a [`ClientSecret`]) nor the private key (a [`ClientKey`]).
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
    /// The private key for `private_key_jwt`. Never serialized: load it from where you keep secrets and set it
    /// with [`with_signing_key`](Self::with_signing_key) after loading the rest.
    #[serde(skip)]
    pub signing_key: Option<ClientKey>,
    /// The `aud` of client assertions (default: the token endpoint).
    #[serde(default)]
    pub assertion_audience: AssertionAudience,
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
            signing_key: None,
            assertion_audience: AssertionAudience::TokenEndpoint,
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

    /// Sets the private key for `private_key_jwt` (chosen automatically when the provider offers it, unless another
    /// method is registered).
    pub fn with_signing_key(mut self, key: ClientKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// Sets the `aud` of client assertions.
    pub fn with_assertion_audience(mut self, audience: AssertionAudience) -> Self {
        self.assertion_audience = audience;
        self
    }

    /// Sets the registered ID-token signing algorithm.
    pub fn with_id_token_alg(mut self, alg: impl Into<String>) -> Self {
        self.id_token_signed_response_alg = Some(alg.into());
        self
    }
}
