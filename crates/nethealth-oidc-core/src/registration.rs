//! Client registration, two ways: the Net Health Accounts site's `/api/Clients/Register` action, and standard
//! dynamic registration (RFC 7591) with its management protocol (RFC 7592).
//!
//! Both return a [`RegisteredClient`], which the application stores (it holds the client secret, so store it as a
//! secret) and turns into a [`ClientConfig`] with [`RegisteredClient::to_client_config`].
//!
//! # What is assumed about `/api/Clients/Register`
//!
//! The Net Health API's documentation names the action and says it returns a client ID and a client secret; the
//! request and response shapes are not public. The Accounts site looks like IdentityServer3 behind ASP.NET Web API,
//! so [`NetHealthRegistration`] assumes, and lets every assumption be changed:
//!
//! - **Where.** The action is routed at the *site root* of the issuer's host (`https://host/api/Clients/Register`),
//!   as ASP.NET Web API routes `api/{controller}/{action}` are, even when IdentityServer3 is mounted under a path
//!   such as `/core`. [`RegistrationBase::Issuer`] resolves it under the issuer's path instead, and
//!   [`RegistrationBase::Url`] names the URL outright. The path itself is configurable.
//! - **Request.** A JSON `POST` whose fields are RFC 7591's (`client_name`, `redirect_uris`, `grant_types`,
//!   `response_types`, `scope`, `token_endpoint_auth_method`, `post_logout_redirect_uris`), or PascalCase
//!   ([`FieldNames::pascal_case`]: `ClientName`, `RedirectUris`, ...), or any names given in [`FieldNames`]. An
//!   optional bearer token is sent when the site wants an authenticated caller.
//! - **Response.** Any 2xx with a JSON object. The client id is read from `client_id`, `ClientId` or `clientId`;
//!   the secret from `client_secret`, `ClientSecret` or `clientSecret`, or else from the first `Value` of an
//!   IdentityServer3-style `ClientSecrets` array. Every other field is kept in [`RegisteredClient::extra`].
//! - **Errors.** An OAuth error body (`{error, error_description}`), or ASP.NET's
//!   `{"Message": ..., "ModelState": {field: [messages]}}`, which becomes [`RegistrationError::Rejected`].

use std::collections::BTreeMap;

use http::{Method, Request, Response};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::client::{ClientConfig, TokenAuthMethod};
use crate::error::{Endpoint, ResponseError};
use crate::secret::{ClientSecret, RegistrationAccessToken};
use crate::wire::{self, UrlError};

/// The default path of the Net Health registration action.
pub const NET_HEALTH_REGISTER_PATH: &str = "/api/Clients/Register";

/// Why a registration failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The provider answered with an OAuth error (`invalid_redirect_uri`, `invalid_client_metadata`, ...) or an
    /// unusable response.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The site refused the request with an ASP.NET-style message.
    #[error("the registration was refused (HTTP {status}): {message}{}; fix the request as the message says", details_text(.details))]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The site's `Message`.
        message: String,
        /// The site's `ModelState` messages, as `field: message`.
        details: Vec<String>,
    },
    /// The answer had no client id under any known name.
    #[error(
        "the registration answer has no client id (looked for {looked_for}); configure the field names the site \
         uses (FieldNames)"
    )]
    MissingClientId {
        /// The names looked for.
        looked_for: String,
    },
    /// A URL is not usable (not https, not on loopback, or not a URL).
    #[error("the {what} is not usable: {error}")]
    BadUrl {
        /// Which URL.
        what: &'static str,
        /// Why.
        error: UrlError,
    },
    /// RFC 7592 management needs a `registration_client_uri` and a `registration_access_token`.
    #[error(
        "this client cannot be managed: the provider returned no registration_client_uri or \
         registration_access_token; manage it at the provider instead"
    )]
    NotManageable,
}

fn details_text(details: &[String]) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({})", details.join("; "))
    }
}

/// The metadata a client registers with (RFC 7591 §2). Unknown fields are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// `client_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// `redirect_uris`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<Url>,
    /// `post_logout_redirect_uris` (RP-initiated logout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<Url>,
    /// `grant_types`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    /// `response_types`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    /// `scope`, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `token_endpoint_auth_method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<TokenAuthMethod>,
    /// `id_token_signed_response_alg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ClientMetadata {
    /// A confidential web client for the code flow with refresh tokens, authenticating with `client_secret_basic`.
    pub fn new(client_name: impl Into<String>, redirect_uris: Vec<Url>) -> Self {
        ClientMetadata {
            client_name: Some(client_name.into()),
            redirect_uris,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: Some(TokenAuthMethod::ClientSecretBasic),
            ..ClientMetadata::default()
        }
    }

    /// Sets the scopes to register for.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets the token endpoint auth method (`None` for a public client).
    pub fn with_auth_method(mut self, method: TokenAuthMethod) -> Self {
        self.token_endpoint_auth_method = Some(method);
        self
    }

    /// Sets the grant types.
    pub fn with_grant_types<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        grant_types: I,
    ) -> Self {
        self.grant_types = grant_types.into_iter().map(Into::into).collect();
        self
    }

    /// Registers for `private_key_jwt` with `key`'s public half published as `jwks` (RFC 7591 §2), and its pinned
    /// algorithm, if any, as `token_endpoint_auth_signing_alg`. The private key is never sent.
    pub fn with_signing_key(mut self, key: &crate::client_auth::ClientKey) -> Self {
        self.token_endpoint_auth_method = Some(TokenAuthMethod::PrivateKeyJwt);
        self.extra.remove("jwks_uri");
        self.extra.insert("jwks".into(), key.public_jwks());
        if let Some(alg) = key.algorithm() {
            self.extra.insert(
                "token_endpoint_auth_signing_alg".into(),
                alg.as_str().into(),
            );
        }
        self
    }

    /// Registers for `private_key_jwt` with the public keys served at `jwks_uri` (the caller serves them).
    pub fn with_jwks_uri(mut self, jwks_uri: &Url) -> Self {
        self.token_endpoint_auth_method = Some(TokenAuthMethod::PrivateKeyJwt);
        self.extra.remove("jwks");
        self.extra
            .insert("jwks_uri".into(), jwks_uri.as_str().into());
        self
    }

    /// Sets the post-logout redirect URIs.
    pub fn with_post_logout_redirect_uris(mut self, uris: Vec<Url>) -> Self {
        self.post_logout_redirect_uris = uris;
        self
    }
}

/// A registered client: what the provider returned. Its `Debug` redacts the secret and the registration token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegisteredClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`; `None` for a public client.
    pub client_secret: Option<ClientSecret>,
    /// `client_id_issued_at`, Unix seconds.
    pub client_id_issued_at: Option<u64>,
    /// `client_secret_expires_at`, Unix seconds; `0` means never.
    pub client_secret_expires_at: Option<u64>,
    /// `registration_access_token` (RFC 7592).
    pub registration_access_token: Option<RegistrationAccessToken>,
    /// `registration_client_uri` (RFC 7592).
    pub registration_client_uri: Option<Url>,
    /// The metadata as the provider echoed it (it may differ from what was asked).
    pub metadata: ClientMetadata,
    /// Every other field of the answer.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RegisteredClient {
    /// Fills what the answer did not echo (redirect URIs, auth method, grant types, ...) from the request that was
    /// sent, so that [`to_client_config`](Self::to_client_config) knows them.
    pub fn fill_from_request(&mut self, requested: &ClientMetadata) {
        let m = &mut self.metadata;
        if m.redirect_uris.is_empty() {
            m.redirect_uris = requested.redirect_uris.clone();
        }
        if m.post_logout_redirect_uris.is_empty() {
            m.post_logout_redirect_uris = requested.post_logout_redirect_uris.clone();
        }
        if m.grant_types.is_empty() {
            m.grant_types = requested.grant_types.clone();
        }
        if m.response_types.is_empty() {
            m.response_types = requested.response_types.clone();
        }
        if m.scope.is_none() {
            m.scope = requested.scope.clone();
        }
        if m.client_name.is_none() {
            m.client_name = requested.client_name.clone();
        }
        if m.token_endpoint_auth_method.is_none() && self.client_secret.is_some() {
            m.token_endpoint_auth_method = requested.token_endpoint_auth_method;
        }
    }

    /// The client as the token, authorize and ID-token code needs it.
    pub fn to_client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.client_id.clone(), self.client_secret.clone())
            .with_redirect_uris(self.metadata.redirect_uris.clone());
        config.token_endpoint_auth_method =
            self.metadata
                .token_endpoint_auth_method
                .or(match &self.client_secret {
                    None => Some(TokenAuthMethod::None),
                    Some(_) => None,
                });
        config.id_token_signed_response_alg = self.metadata.id_token_signed_response_alg.clone();
        config
    }
}

// ---------------------------------------------------------------------------------------------------------------
// RFC 7591 and RFC 7592

/// The RFC 7591 registration request: a JSON `POST` of `metadata` to the `registration_endpoint`, with the initial
/// access token as a bearer token when the provider wants one.
pub fn registration_request(
    endpoint: &Url,
    metadata: &ClientMetadata,
    initial_access_token: Option<&RegistrationAccessToken>,
) -> Result<Request<Vec<u8>>, RegistrationError> {
    wire::require_secure(endpoint).map_err(|error| RegistrationError::BadUrl {
        what: "registration endpoint",
        error,
    })?;
    let body = serde_json::to_value(metadata).expect("client metadata always serializes to JSON");
    Ok(wire::send_json(
        Method::POST,
        endpoint,
        &body,
        bearer(initial_access_token)?,
    ))
}

/// Parses an RFC 7591 (or RFC 7592 read/update) answer: 201 or 200 with the client's information.
pub fn parse_registration_response(
    response: &Response<Vec<u8>>,
) -> Result<RegisteredClient, RegistrationError> {
    let object = parse_object(response)?;
    registered_from_object(object, &FieldNames::rfc7591())
}

/// The RFC 7592 read request (`GET` of the `registration_client_uri` with the registration access token).
pub fn read_request(client: &RegisteredClient) -> Result<Request<Vec<u8>>, RegistrationError> {
    let (uri, token) = management(client)?;
    let mut request = wire::get_json(uri);
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, token);
    Ok(request)
}

/// The RFC 7592 update request: a `PUT` of the full new `metadata`, with `client_id` (and the secret, when the
/// client has one, as RFC 7592 §2.2 allows).
pub fn update_request(
    client: &RegisteredClient,
    metadata: &ClientMetadata,
) -> Result<Request<Vec<u8>>, RegistrationError> {
    let (uri, token) = management(client)?;
    let mut body =
        serde_json::to_value(metadata).expect("client metadata always serializes to JSON");
    if let Some(object) = body.as_object_mut() {
        object.insert("client_id".into(), client.client_id.clone().into());
        if let Some(secret) = &client.client_secret {
            object.insert("client_secret".into(), secret.expose_secret().into());
        }
    }
    Ok(wire::send_json(Method::PUT, uri, &body, Some(token)))
}

/// The RFC 7592 delete request.
pub fn delete_request(client: &RegisteredClient) -> Result<Request<Vec<u8>>, RegistrationError> {
    let (uri, token) = management(client)?;
    Ok(wire::request(Method::DELETE, uri)
        .header(http::header::AUTHORIZATION, token)
        .body(Vec::new())
        .expect("a parsed URL and a valid header always make a valid request"))
}

/// Parses an RFC 7592 read or update answer. The registration URI and token of `previous` are kept when the answer
/// does not repeat them.
pub fn parse_management_response(
    previous: &RegisteredClient,
    response: &Response<Vec<u8>>,
) -> Result<RegisteredClient, RegistrationError> {
    let mut client = parse_registration_response(response)?;
    if client.registration_access_token.is_none() {
        client.registration_access_token = previous.registration_access_token.clone();
    }
    if client.registration_client_uri.is_none() {
        client.registration_client_uri = previous.registration_client_uri.clone();
    }
    if client.client_secret.is_none() {
        client.client_secret = previous.client_secret.clone();
    }
    Ok(client)
}

/// Parses the RFC 7592 delete answer: 204 (or any 2xx) is success.
pub fn parse_delete_response(response: &Response<Vec<u8>>) -> Result<(), RegistrationError> {
    Ok(wire::check_status(Endpoint::Registration, response)?)
}

fn management(client: &RegisteredClient) -> Result<(&Url, http::HeaderValue), RegistrationError> {
    let (Some(uri), Some(token)) = (
        &client.registration_client_uri,
        &client.registration_access_token,
    ) else {
        return Err(RegistrationError::NotManageable);
    };
    wire::require_secure(uri).map_err(|error| RegistrationError::BadUrl {
        what: "registration_client_uri",
        error,
    })?;
    Ok((uri, bearer(Some(token))?.expect("a token was given")))
}

fn bearer(
    token: Option<&RegistrationAccessToken>,
) -> Result<Option<http::HeaderValue>, RegistrationError> {
    token
        .map(|t| {
            wire::bearer(t.expose_secret()).map_err(|_| RegistrationError::BadUrl {
                what: "registration access token",
                error: UrlError::NotAnEndpoint(
                    "the token holds characters a header cannot carry".into(),
                ),
            })
        })
        .transpose()
}

// ---------------------------------------------------------------------------------------------------------------
// Net Health

/// Where the Net Health registration action is, relative to the issuer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationBase {
    /// The issuer's site root: `scheme://host:port` + path (the default).
    SiteRoot,
    /// Under the issuer's own path: issuer + path.
    Issuer,
    /// This URL, as it is (the path is not used).
    Url(Url),
}

/// The JSON field names of the Net Health registration request and answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FieldNames {
    /// Request field names, keyed by their RFC 7591 name (`client_name` → `ClientName`, ...). A field whose RFC
    /// 7591 name is missing here is sent under that name.
    pub request: BTreeMap<String, String>,
    /// Names the client id may come back under, tried in order.
    pub client_id: Vec<String>,
    /// Names the client secret may come back under, tried in order.
    pub client_secret: Vec<String>,
}

impl Default for FieldNames {
    fn default() -> Self {
        FieldNames::rfc7591()
    }
}

const RFC7591_FIELDS: [(&str, &str); 8] = [
    ("client_name", "ClientName"),
    ("redirect_uris", "RedirectUris"),
    ("post_logout_redirect_uris", "PostLogoutRedirectUris"),
    ("grant_types", "GrantTypes"),
    ("response_types", "ResponseTypes"),
    ("scope", "Scope"),
    ("token_endpoint_auth_method", "TokenEndpointAuthMethod"),
    ("id_token_signed_response_alg", "IdTokenSignedResponseAlg"),
];

impl FieldNames {
    /// RFC 7591 names in the request; lenient names in the answer.
    pub fn rfc7591() -> Self {
        FieldNames {
            request: BTreeMap::new(),
            client_id: vec!["client_id".into(), "ClientId".into(), "clientId".into()],
            client_secret: vec![
                "client_secret".into(),
                "ClientSecret".into(),
                "clientSecret".into(),
            ],
        }
    }

    /// PascalCase names in the request (`ClientName`, `RedirectUris`, ...), as ASP.NET models are usually written;
    /// lenient names in the answer.
    pub fn pascal_case() -> Self {
        FieldNames {
            request: RFC7591_FIELDS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..FieldNames::rfc7591()
        }
    }

    /// Renames one request field.
    pub fn rename(mut self, rfc7591_name: &str, name: &str) -> Self {
        self.request
            .insert(rfc7591_name.to_owned(), name.to_owned());
        self
    }
}

/// The Net Health Accounts site's `/api/Clients/Register` action (see the [module docs](self) for what is assumed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NetHealthRegistration {
    /// The action's path. Default [`NET_HEALTH_REGISTER_PATH`].
    pub path: String,
    /// What the path is resolved against.
    pub base: RegistrationBase,
    /// The JSON field names.
    pub fields: FieldNames,
}

impl Default for NetHealthRegistration {
    fn default() -> Self {
        NetHealthRegistration {
            path: NET_HEALTH_REGISTER_PATH.to_owned(),
            base: RegistrationBase::SiteRoot,
            fields: FieldNames::rfc7591(),
        }
    }
}

impl NetHealthRegistration {
    /// Sets the path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets what the path is resolved against.
    pub fn with_base(mut self, base: RegistrationBase) -> Self {
        self.base = base;
        self
    }

    /// Sets the field names.
    pub fn with_fields(mut self, fields: FieldNames) -> Self {
        self.fields = fields;
        self
    }

    /// The action's URL for `issuer`.
    pub fn url(&self, issuer: &str) -> Result<Url, RegistrationError> {
        let bad = |error| RegistrationError::BadUrl {
            what: "registration URL",
            error,
        };
        let url = match &self.base {
            RegistrationBase::Url(url) => url.clone(),
            RegistrationBase::SiteRoot | RegistrationBase::Issuer => {
                let issuer_url = wire::parse_endpoint(issuer).map_err(bad)?;
                let prefix = match self.base {
                    RegistrationBase::Issuer => issuer_url.path().trim_end_matches('/').to_owned(),
                    _ => String::new(),
                };
                let path = format!("{prefix}/{}", self.path.trim_start_matches('/'));
                let mut url = issuer_url;
                url.set_path(&path);
                url.set_query(None);
                url
            }
        };
        wire::require_secure(&url).map_err(bad)?;
        Ok(url)
    }

    /// The registration request: a JSON `POST` of `metadata` under the configured names, with an optional bearer
    /// token.
    pub fn request(
        &self,
        issuer: &str,
        metadata: &ClientMetadata,
        bearer_token: Option<&RegistrationAccessToken>,
    ) -> Result<Request<Vec<u8>>, RegistrationError> {
        let url = self.url(issuer)?;
        let value =
            serde_json::to_value(metadata).expect("client metadata always serializes to JSON");
        let renamed: serde_json::Map<String, serde_json::Value> = value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    self.fields
                        .request
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| k.clone()),
                    v.clone(),
                )
            })
            .collect();
        Ok(wire::send_json(
            Method::POST,
            &url,
            &serde_json::Value::Object(renamed),
            bearer(bearer_token)?,
        ))
    }

    /// Parses the answer leniently (see the [module docs](self)).
    pub fn parse_response(
        &self,
        response: &Response<Vec<u8>>,
    ) -> Result<RegisteredClient, RegistrationError> {
        let object = parse_object(response)?;
        registered_from_object(object, &self.fields)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared parsing

fn parse_object(
    response: &Response<Vec<u8>>,
) -> Result<serde_json::Map<String, serde_json::Value>, RegistrationError> {
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && let Some(rejected) = aspnet_error(status.as_u16(), response.body())
    {
        return Err(rejected);
    }
    let value: serde_json::Value = wire::parse_json(Endpoint::Registration, response)?;
    match value {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err(wire::malformed(
            Endpoint::Registration,
            response.body(),
            "the answer is not a JSON object",
        )
        .into()),
    }
}

/// An ASP.NET Web API error: `{"Message": ..., "ModelState": {field: [messages]}}` (or `message`).
fn aspnet_error(status: u16, body: &[u8]) -> Option<RegistrationError> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    if object.contains_key("error") {
        return None; // An OAuth error body: `wire::check_status` types it.
    }
    let message = object
        .get("Message")
        .or_else(|| object.get("message"))
        .and_then(|m| m.as_str())?;
    let mut details = Vec::new();
    if let Some(state) = object.get("ModelState").and_then(|m| m.as_object()) {
        for (field, messages) in state {
            for m in messages
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str())
            {
                details.push(crate::error::truncate(&format!("{field}: {m}"), 200));
            }
        }
    }
    details.truncate(10);
    Some(RegistrationError::Rejected {
        status,
        message: crate::error::truncate(message, 300),
        details,
    })
}

fn take_str(
    object: &mut serde_json::Map<String, serde_json::Value>,
    names: &[String],
) -> Option<String> {
    names.iter().find_map(|name| match object.remove(name) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn take_u64(object: &mut serde_json::Map<String, serde_json::Value>, name: &str) -> Option<u64> {
    match object.remove(name)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn registered_from_object(
    mut object: serde_json::Map<String, serde_json::Value>,
    names: &FieldNames,
) -> Result<RegisteredClient, RegistrationError> {
    let Some(client_id) = take_str(&mut object, &names.client_id) else {
        return Err(RegistrationError::MissingClientId {
            looked_for: names.client_id.join(", "),
        });
    };
    let client_secret = take_str(&mut object, &names.client_secret)
        .or_else(|| {
            // IdentityServer3's Client model: "ClientSecrets": [{"Value": "...", "Type": "SharedSecret"}].
            let secrets = object.remove("ClientSecrets")?;
            secrets
                .as_array()?
                .first()?
                .get("Value")?
                .as_str()
                .map(str::to_owned)
        })
        .map(ClientSecret::new);
    let registration_access_token =
        take_str(&mut object, &["registration_access_token".to_owned()])
            .map(RegistrationAccessToken::new);
    let registration_client_uri =
        match take_str(&mut object, &["registration_client_uri".to_owned()]) {
            Some(text) => {
                Some(
                    wire::parse_endpoint(&text).map_err(|error| RegistrationError::BadUrl {
                        what: "registration_client_uri",
                        error,
                    })?,
                )
            }
            None => None,
        };
    // Answers in PascalCase or camelCase (ASP.NET): map the known fields back to their RFC 7591 names.
    for (snake, pascal) in RFC7591_FIELDS {
        if object.contains_key(snake) {
            continue;
        }
        let found = object
            .keys()
            .find(|k| k.eq_ignore_ascii_case(pascal))
            .cloned();
        if let Some(key) = found
            && let Some(value) = object.remove(&key)
        {
            object.insert(snake.to_owned(), value);
        }
    }
    let client_id_issued_at = take_u64(&mut object, "client_id_issued_at");
    let client_secret_expires_at = take_u64(&mut object, "client_secret_expires_at");
    // What is left is metadata (under RFC 7591 names, or kept in `extra` under the site's own).
    let metadata: ClientMetadata =
        serde_json::from_value(serde_json::Value::Object(object.clone())).unwrap_or_else(|_| {
            // A site that echoes metadata in unexpected shapes: keep everything as extra fields.
            ClientMetadata {
                extra: object.clone(),
                ..ClientMetadata::default()
            }
        });
    let extra = metadata.extra.clone();
    Ok(RegisteredClient {
        client_id,
        client_secret,
        client_id_issued_at,
        client_secret_expires_at,
        registration_access_token,
        registration_client_uri,
        metadata,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn resp(status: u16, body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    fn metadata() -> ClientMetadata {
        ClientMetadata::new(
            "Clinic app",
            vec![Url::parse("http://127.0.0.1:8080/callback").unwrap()],
        )
        .with_scope("openid offline_access patients.read")
    }

    #[test]
    fn rfc7591_round_trip() {
        let endpoint = Url::parse("https://op.example/reg").unwrap();
        let iat = RegistrationAccessToken::new("initial-SECRET");
        let r = registration_request(&endpoint, &metadata(), Some(&iat)).unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["authorization"], "Bearer initial-SECRET");
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["client_name"], "Clinic app");
        assert_eq!(body["redirect_uris"][0], "http://127.0.0.1:8080/callback");
        assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
        assert_eq!(
            body["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );

        let answer = r#"{"client_id":"c1","client_secret":"s3cr3t-VALUE","client_id_issued_at":1700000000,
            "client_secret_expires_at":0,"registration_access_token":"rat-VALUE",
            "registration_client_uri":"https://op.example/reg/c1","client_name":"Clinic app",
            "redirect_uris":["http://127.0.0.1:8080/callback"],"token_endpoint_auth_method":"client_secret_post",
            "vendor_field":7}"#;
        let client = parse_registration_response(&resp(201, answer)).unwrap();
        assert_eq!(client.client_id, "c1");
        assert_eq!(
            client.client_secret.as_ref().unwrap().expose_secret(),
            "s3cr3t-VALUE"
        );
        assert_eq!(client.client_secret_expires_at, Some(0));
        assert_eq!(client.extra["vendor_field"], 7);
        let config = client.to_client_config();
        assert_eq!(
            config.token_endpoint_auth_method,
            Some(TokenAuthMethod::ClientSecretPost)
        );
        assert_eq!(config.redirect_uris.len(), 1);
        let debug = format!("{client:?}");
        assert!(
            !debug.contains("s3cr3t-VALUE") && !debug.contains("rat-VALUE"),
            "{debug}"
        );

        // Stored and read back.
        let json = serde_json::to_string(&client).unwrap();
        let back: RegisteredClient = serde_json::from_str(&json).unwrap();
        assert!(
            back.client_secret
                .unwrap()
                .ct_eq(&ClientSecret::new("s3cr3t-VALUE"))
        );

        // RFC 7592 management.
        let read = read_request(&client).unwrap();
        assert_eq!(
            (read.method(), read.uri().to_string()),
            (&Method::GET, "https://op.example/reg/c1".into())
        );
        assert_eq!(read.headers()["authorization"], "Bearer rat-VALUE");
        let update = update_request(&client, &metadata()).unwrap();
        assert_eq!(update.method(), Method::PUT);
        let body: serde_json::Value = serde_json::from_slice(update.body()).unwrap();
        assert_eq!(body["client_id"], "c1");
        let delete = delete_request(&client).unwrap();
        assert_eq!(delete.method(), Method::DELETE);
        assert!(parse_delete_response(&resp(204, "")).is_ok());
        let updated = parse_management_response(
            &client,
            &resp(200, r#"{"client_id":"c1","client_name":"New"}"#),
        )
        .unwrap();
        assert_eq!(updated.metadata.client_name.as_deref(), Some("New"));
        assert!(
            updated.registration_access_token.is_some(),
            "kept from before"
        );
    }

    #[test]
    fn public_clients_and_unmanageable_clients() {
        let client = parse_registration_response(&resp(201, r#"{"client_id":"pub"}"#)).unwrap();
        assert!(client.client_secret.is_none());
        assert_eq!(
            client.to_client_config().token_endpoint_auth_method,
            Some(TokenAuthMethod::None)
        );
        assert_eq!(
            read_request(&client).unwrap_err(),
            RegistrationError::NotManageable
        );
    }

    #[test]
    fn rfc7591_errors_are_typed() {
        let e = parse_registration_response(&resp(
            400,
            r#"{"error":"invalid_redirect_uri","error_description":"not https"}"#,
        ))
        .unwrap_err();
        match e {
            RegistrationError::Response(ResponseError::OAuth { error, .. }) => {
                assert_eq!(error.code, ErrorCode::InvalidRedirectUri)
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_registration_response(&resp(201, r#"{"client_secret":"x"}"#)),
            Err(RegistrationError::MissingClientId { .. })
        ));
        assert!(matches!(
            parse_registration_response(&resp(201, r#"["c1"]"#)),
            Err(RegistrationError::Response(ResponseError::Malformed { .. }))
        ));
        assert!(matches!(
            parse_registration_response(&resp(201, r#"{"client_id":"c1","client_secret":"SECRET"#)),
            Err(RegistrationError::Response(ResponseError::Malformed { .. }))
        ));
        let e = parse_registration_response(&resp(
            201,
            r#"{"client_id":"c","registration_client_uri":"http://op.example/reg/c"}"#,
        ))
        .unwrap_err();
        assert!(matches!(
            e,
            RegistrationError::BadUrl {
                what: "registration_client_uri",
                ..
            }
        ));
        assert!(matches!(
            registration_request(
                &Url::parse("http://op.example/reg").unwrap(),
                &metadata(),
                None
            ),
            Err(RegistrationError::BadUrl { .. })
        ));
    }

    #[test]
    fn net_health_url_resolution() {
        let reg = NetHealthRegistration::default();
        assert_eq!(
            reg.url("https://accounts.nethealth.example/core")
                .unwrap()
                .as_str(),
            "https://accounts.nethealth.example/api/Clients/Register"
        );
        let reg = reg.with_base(RegistrationBase::Issuer);
        assert_eq!(
            reg.url("https://accounts.nethealth.example/core/")
                .unwrap()
                .as_str(),
            "https://accounts.nethealth.example/core/api/Clients/Register"
        );
        let fixed = Url::parse("https://other.example/register").unwrap();
        let reg = reg.with_base(RegistrationBase::Url(fixed.clone()));
        assert_eq!(
            reg.url("https://accounts.nethealth.example").unwrap(),
            fixed
        );
        let reg = NetHealthRegistration::default().with_path("api/v2/Clients");
        assert_eq!(
            reg.url("http://127.0.0.1:9000").unwrap().as_str(),
            "http://127.0.0.1:9000/api/v2/Clients"
        );
        assert!(
            NetHealthRegistration::default()
                .url("http://accounts.nethealth.example")
                .is_err()
        );
    }

    #[test]
    fn net_health_pascal_case_request_and_response() {
        let reg = NetHealthRegistration::default().with_fields(FieldNames::pascal_case());
        let r = reg
            .request("http://127.0.0.1:9000", &metadata(), None)
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["ClientName"], "Clinic app");
        assert_eq!(body["RedirectUris"][0], "http://127.0.0.1:8080/callback");
        assert_eq!(body["Scope"], "openid offline_access patients.read");
        assert!(body.get("client_name").is_none());
        assert!(r.headers().get("authorization").is_none());

        for answer in [
            r#"{"ClientId":"nh-1","ClientSecret":"nh-SECRET","ClientName":"Clinic app"}"#,
            r#"{"clientId":"nh-1","clientSecret":"nh-SECRET"}"#,
            r#"{"ClientId":"nh-1","ClientSecrets":[{"Value":"nh-SECRET","Type":"SharedSecret"}]}"#,
        ] {
            let client = reg.parse_response(&resp(200, answer)).unwrap();
            assert_eq!(client.client_id, "nh-1", "{answer}");
            assert_eq!(
                client.client_secret.as_ref().unwrap().expose_secret(),
                "nh-SECRET",
                "{answer}"
            );
        }
        let client = reg
            .parse_response(&resp(
                200,
                r#"{"ClientId":"nh-1","ClientSecret":"s","Enabled":true}"#,
            ))
            .unwrap();
        assert_eq!(client.extra["Enabled"], true);
    }

    #[test]
    fn net_health_errors_are_typed() {
        let reg = NetHealthRegistration::default();
        let e = reg
            .parse_response(&resp(
                400,
                r#"{"Message":"The request is invalid.","ModelState":{"model.RedirectUris":["The RedirectUris field is required."]}}"#,
            ))
            .unwrap_err();
        assert_eq!(
            e,
            RegistrationError::Rejected {
                status: 400,
                message: "The request is invalid.".into(),
                details: vec!["model.RedirectUris: The RedirectUris field is required.".into()],
            }
        );
        assert!(e.to_string().contains("RedirectUris field is required"));
        let e = reg
            .parse_response(&resp(
                401,
                r#"{"Message":"Authorization has been denied for this request."}"#,
            ))
            .unwrap_err();
        assert!(matches!(e, RegistrationError::Rejected { status: 401, .. }));
        let e = reg
            .parse_response(&resp(400, r#"{"error":"invalid_client_metadata"}"#))
            .unwrap_err();
        assert!(matches!(
            e,
            RegistrationError::Response(ResponseError::OAuth { .. })
        ));
        let e = reg
            .parse_response(&resp(500, "<html>boom</html>"))
            .unwrap_err();
        assert!(matches!(
            e,
            RegistrationError::Response(ResponseError::Status { status: 500, .. })
        ));
    }
}
