//! The site's configuration values: clients, users, endpoints and faults.

use std::time::Duration;

/// The scopes the site knows, in the order the consent page shows them.
pub const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    "patients.read",
    "patients.write",
];

/// Scopes about the user (identity scopes): never granted to `client_credentials`.
pub(crate) const IDENTITY_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The name and description the consent page shows for a scope (IdentityServer3's wording for the standard ones).
pub(crate) fn scope_display(scope: &str) -> (&'static str, &'static str) {
    match scope {
        "openid" => ("Your user identifier", ""),
        "profile" => (
            "User profile",
            "Your user profile information (first name, last name, etc.)",
        ),
        "email" => ("Your email address", ""),
        "offline_access" => (
            "Offline access",
            "Access to your applications and resources, even when you are offline",
        ),
        "patients.read" => ("Read patient records", "View the patients you care for"),
        "patients.write" => (
            "Create and update patient records",
            "Add patients and change their records",
        ),
        _ => ("", ""),
    }
}

/// What happens to a refresh token when it is used (IdentityServer3's `RefreshTokenUsage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RefreshTokenUsage {
    /// Rotation: every use returns a new refresh token and the used one stops working (IdentityServer3's default).
    #[default]
    OneTimeOnly,
    /// The same refresh token is returned and stays valid until its absolute lifetime ends.
    ReUse,
}

impl RefreshTokenUsage {
    /// IdentityServer3's name for it (`OneTimeOnly`, `ReUse`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshTokenUsage::OneTimeOnly => "OneTimeOnly",
            RefreshTokenUsage::ReUse => "ReUse",
        }
    }
}

/// A client known to the site, added with [`TestKitBuilder::client`](crate::TestKitBuilder::client) or
/// [`TestKit::add_client`](crate::TestKit::add_client).
///
/// ```
/// use nethealth_oidc_testkit::{ClientSpec, RefreshTokenUsage};
///
/// let web = ClientSpec::confidential("web-app", "s3cret")
///     .redirect_uri("http://127.0.0.1:8080/callback")
///     .require_pkce(false)
///     .refresh_token_usage(RefreshTokenUsage::ReUse);
/// let cli = ClientSpec::public("cli").redirect_uri("http://127.0.0.1/cb");
/// # let _ = (web, cli);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSpec {
    pub(crate) client_id: String,
    pub(crate) secret: Option<String>,
    pub(crate) name: String,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) post_logout_redirect_uris: Vec<String>,
    pub(crate) allowed_scopes: Vec<String>,
    pub(crate) require_pkce: bool,
    pub(crate) refresh_token_usage: RefreshTokenUsage,
    pub(crate) client_credentials: bool,
    /// The public JWK Set `private_key_jwt` assertions are checked against.
    pub(crate) jwks: Option<serde_json::Value>,
}

impl std::fmt::Debug for ClientSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSpec")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uris", &self.redirect_uris)
            .field("allowed_scopes", &self.allowed_scopes)
            .field("require_pkce", &self.require_pkce)
            .field("refresh_token_usage", &self.refresh_token_usage)
            .field("client_credentials", &self.client_credentials)
            .field("jwks", &self.jwks.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientSpec {
    /// A confidential client with a secret (`client_secret_basic` or `client_secret_post`), registered for PKCE
    /// (`AuthorizationCodeWithProofKey`), allowed every scope, with OneTimeOnly refresh tokens.
    pub fn confidential(client_id: impl Into<String>, secret: impl Into<String>) -> ClientSpec {
        let client_id = client_id.into();
        ClientSpec {
            name: client_id.clone(),
            client_id,
            secret: Some(secret.into()),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            allowed_scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            require_pkce: true,
            refresh_token_usage: RefreshTokenUsage::OneTimeOnly,
            client_credentials: false,
            jwks: None,
        }
    }

    /// A confidential client without a secret that authenticates with `private_key_jwt` (RFC 7523): its assertions
    /// are checked against the public keys of `jwks` (`{"keys": [...]}`), by `kid`.
    pub fn private_key_jwt(client_id: impl Into<String>, jwks: serde_json::Value) -> ClientSpec {
        let mut spec = ClientSpec::confidential(client_id, "");
        spec.secret = None;
        spec.jwks = Some(jwks);
        spec
    }

    /// A public client (token endpoint auth method `none`): no secret, PKCE required.
    pub fn public(client_id: impl Into<String>) -> ClientSpec {
        let mut spec = ClientSpec::confidential(client_id, "");
        spec.secret = None;
        spec
    }

    /// The name shown on the consent page.
    pub fn name(mut self, name: impl Into<String>) -> ClientSpec {
        self.name = name.into();
        self
    }

    /// Adds a redirect URI; the authorize request's `redirect_uri` must equal one exactly.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> ClientSpec {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds a `post_logout_redirect_uri` for the end-session endpoint.
    pub fn post_logout_redirect_uri(mut self, uri: impl Into<String>) -> ClientSpec {
        self.post_logout_redirect_uris.push(uri.into());
        self
    }

    /// The scopes this client may ask for (default: every scope in [`SCOPES`]).
    pub fn allowed_scopes<I, S>(mut self, scopes: I) -> ClientSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `true` (default): the client's flow is `AuthorizationCodeWithProofKey`, so `code_challenge` and
    /// `code_verifier` are required and checked. `false`: plain `AuthorizationCode`, and a token request that sends
    /// a `code_verifier` gets `invalid_grant` "Unexpected code_verifier", as IdentityServer3 answers.
    pub fn require_pkce(mut self, require: bool) -> ClientSpec {
        self.require_pkce = require;
        self
    }

    /// How refresh tokens behave on use (default OneTimeOnly, i.e. rotation).
    pub fn refresh_token_usage(mut self, usage: RefreshTokenUsage) -> ClientSpec {
        self.refresh_token_usage = usage;
        self
    }

    /// Allows the `client_credentials` grant (confidential clients only).
    pub fn allow_client_credentials(mut self, allow: bool) -> ClientSpec {
        self.client_credentials = allow;
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the client has no secret.
    pub fn is_public(&self) -> bool {
        self.secret.is_none() && self.jwks.is_none()
    }
}

/// A user who can log in. The site starts with [`User::alice`].
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) sub: String,
    pub(crate) given_name: String,
    pub(crate) family_name: String,
    pub(crate) email: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("sub", &self.sub)
            .finish_non_exhaustive()
    }
}

impl User {
    /// The username of the pre-seeded user.
    pub const ALICE: &'static str = "alice";
    /// The password of the pre-seeded user.
    pub const ALICE_PASSWORD: &'static str = "password";
    /// The `sub` of the pre-seeded user.
    pub const ALICE_SUB: &'static str = "818727";

    /// The pre-seeded user: `alice` / `password`, sub `818727`, Alice Smith, `alice@example.com`.
    pub fn alice() -> User {
        User::new(User::ALICE, User::ALICE_PASSWORD, User::ALICE_SUB).names("Alice", "Smith")
    }

    /// A user with a username, a password and a subject identifier; email `{username}@example.com`.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        sub: impl Into<String>,
    ) -> User {
        let username = username.into();
        User {
            email: format!("{username}@example.com"),
            given_name: username.clone(),
            family_name: String::new(),
            username,
            password: password.into(),
            sub: sub.into(),
        }
    }

    /// Sets the given and family names (the `profile` scope's claims).
    pub fn names(mut self, given: impl Into<String>, family: impl Into<String>) -> User {
        self.given_name = given.into();
        self.family_name = family.into();
        self
    }

    /// Sets the email address (the `email` scope's claim).
    pub fn email(mut self, email: impl Into<String>) -> User {
        self.email = email.into();
        self
    }

    /// The claims the user has for the granted scopes.
    pub(crate) fn claims(&self, scopes: &[String]) -> serde_json::Map<String, serde_json::Value> {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), self.sub.clone().into());
        if scopes.iter().any(|s| s == "profile") {
            let name = format!("{} {}", self.given_name, self.family_name);
            claims.insert("name".into(), name.trim().to_owned().into());
            claims.insert("given_name".into(), self.given_name.clone().into());
            if !self.family_name.is_empty() {
                claims.insert("family_name".into(), self.family_name.clone().into());
            }
            claims.insert("preferred_username".into(), self.username.clone().into());
        }
        if scopes.iter().any(|s| s == "email") {
            claims.insert("email".into(), self.email.clone().into());
            claims.insert("email_verified".into(), true.into());
        }
        claims
    }
}

/// An endpoint of the site, for fault injection and request counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// `/.well-known/jwks`.
    Jwks,
    /// `GET /connect/authorize` (answers the login and consent page, or redirects with an error).
    Authorize,
    /// `POST /connect/consent`: the login and consent form (answers the redirect to the client).
    Consent,
    /// `/connect/token`.
    Token,
    /// `/connect/userinfo`.
    Userinfo,
    /// `/connect/revocation`.
    Revocation,
    /// `/connect/introspect`.
    Introspection,
    /// `/connect/endsession`.
    EndSession,
    /// Net Health's `/api/Clients/Register`.
    Register,
    /// RFC 7591 `/connect/register`.
    DynamicRegistration,
    /// The sample resource API, `/api/patients`.
    Api,
    /// RFC 8628 `/connect/deviceauthorization`: a device asks for a user code.
    DeviceAuthorization,
    /// `/connect/device`: the page where the user enters the code, logs in and approves (or denies).
    Device,
    /// SMART App Launch `/.well-known/smart-configuration`.
    SmartConfiguration,
    /// RFC 9126 `/connect/par`: pushed authorization requests.
    Par,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 16] = [
        Endpoint::Discovery,
        Endpoint::Jwks,
        Endpoint::Authorize,
        Endpoint::Consent,
        Endpoint::Token,
        Endpoint::Userinfo,
        Endpoint::Revocation,
        Endpoint::Introspection,
        Endpoint::EndSession,
        Endpoint::Register,
        Endpoint::DynamicRegistration,
        Endpoint::Api,
        Endpoint::DeviceAuthorization,
        Endpoint::Device,
        Endpoint::SmartConfiguration,
        Endpoint::Par,
    ];

    /// The path as the transcript shows it: relative to the issuer for the provider's endpoints, from the site root
    /// for `/api/...`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Discovery => "/.well-known/openid-configuration",
            Endpoint::Jwks => "/.well-known/jwks",
            Endpoint::Authorize => "/connect/authorize",
            Endpoint::Consent => "/connect/consent",
            Endpoint::Token => "/connect/token",
            Endpoint::Userinfo => "/connect/userinfo",
            Endpoint::Revocation => "/connect/revocation",
            Endpoint::Introspection => "/connect/introspect",
            Endpoint::EndSession => "/connect/endsession",
            Endpoint::Register => "/api/Clients/Register",
            Endpoint::DynamicRegistration => "/connect/register",
            Endpoint::Api => "/api/patients",
            Endpoint::DeviceAuthorization => "/connect/deviceauthorization",
            Endpoint::Device => "/connect/device",
            Endpoint::SmartConfiguration => "/.well-known/smart-configuration",
            Endpoint::Par => "/connect/par",
        }
    }

    /// Whether the endpoint lives under the issuer (the provider) rather than at the site root.
    pub(crate) fn under_issuer(self) -> bool {
        !matches!(self, Endpoint::Register | Endpoint::Api)
    }
}

/// A fault an endpoint answers with instead of (or on top of) its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answers this status (for example 500 or 503) with an IIS-style HTML body; the request is not processed.
    Status(u16),
    /// Answers 429 with `Retry-After: {retry_after_secs}`; the request is not processed.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Waits this long, then answers normally.
    Delay(std::time::Duration),
    /// Answers 200 with `Content-Type: application/json` and a body that is not JSON; the request is not processed.
    Malformed,
    /// Processes the request, then sends the status, headers and the first half of the body as a well-framed
    /// response: the JSON is cut short.
    TruncatedJson,
    /// Processes the request, then announces the full `Content-Length` but closes the connection after half of
    /// the body.
    Truncated,
    /// Answers 200 with a JSON-looking body of `bytes` bytes, streamed in small chunks (never held in memory);
    /// with `declare_length` it sends `Content-Length`, otherwise chunked encoding. The request is not processed.
    Huge {
        /// The body's length.
        bytes: u64,
        /// Whether `Content-Length` is sent.
        declare_length: bool,
    },
}

/// How `prompt=none` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PromptNone {
    /// As the site would: `login_required` when nobody has logged in since start (or since the last end-session),
    /// `consent_required` when the consent for these scopes was not remembered, otherwise a code is issued.
    #[default]
    Natural,
    /// Always `login_required`.
    LoginRequired,
    /// Always `consent_required`.
    ConsentRequired,
}

/// Lifetimes of what the site issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    pub(crate) access: Duration,
    pub(crate) refresh: Duration,
    pub(crate) id_token: Duration,
    pub(crate) code: Duration,
}

impl Default for Lifetimes {
    /// IdentityServer3's defaults.
    fn default() -> Self {
        Lifetimes {
            access: Duration::from_secs(3600),
            refresh: Duration::from_secs(2_592_000),
            id_token: Duration::from_secs(300),
            code: Duration::from_secs(300),
        }
    }
}
