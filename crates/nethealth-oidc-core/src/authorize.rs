//! Starting a login (the authorization request of the code flow) and checking the callback it comes back to.
//!
//! ```text
//!   AuthorizationRequest::new / from_metadata        the application configures scopes, prompt, ...
//!              |
//!              | .build(rng, now)                      draws state, nonce and the PKCE verifier
//!              v
//!   (AuthorizationUrl, PendingLogin) ---- keep PendingLogin in the session; send the browser to the URL
//!              |
//!              |   ... the user logs in and consents at the provider ...
//!              v
//!   parse_callback(&pending, &callback_url, iss_policy) -> AuthorizationCode
//!              |
//!              | pending.code_exchange_request(...)    (see crate::token)
//!              v
//!   token response -> ID-token validation with pending.nonce() and pending.max_age()
//! ```
//!
//! **Randomness.** `state`, `nonce` and the PKCE verifier are each 32 random bytes (256 bits) from the caller's
//! [`rand::CryptoRng`], base64url-encoded without padding (43 characters). [`AuthorizationRequest::build`] draws them
//! and calls a `build_inner` that the tests call with fixed values.
//!
//! **PKCE** (RFC 7636) is on by default with `S256`. [`Pkce::Disabled`] turns it off explicitly: IdentityServer3
//! rejects a `code_verifier` from a client that is not registered for PKCE ("invalid_grant / Unexpected
//! code_verifier"). `plain` is never used. When the provider's `code_challenge_methods_supported` does not list
//! `S256`, `S256` is sent anyway, as RFC 9700 §2.1.1 advises: a provider that does not know PKCE ignores the
//! parameters, and one that knows only `plain` is answered by turning PKCE off, not by weakening it.
//!
//! **The callback** is read from the URL's query: the code flow's default response mode. A response in the fragment
//! is refused with [`CallbackError::ResponseInFragment`] (it means the request asked for another response mode or
//! flow). Checks, in order: the URL is the pending redirect URI (scheme, host, port, path), no parameter is repeated,
//! `state` is present and equal (in constant time), RFC 9207 `iss` per [`IssPolicy`], then an error response, then
//! the `code`. An error response with a wrong `state` is a state error: it does not belong to this login.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::client::ClientConfig;
use crate::client_auth::{ClientAuth, RequestStamp};
use crate::discovery::ProviderMetadata;
use crate::error::{Endpoint, ErrorCode, OAuthError, truncate};
use crate::scope::Scopes;
use crate::secret::{AuthorizationCode, CodeVerifier, Nonce, State};
use crate::time::UnixTime;
use crate::token::{TokenRequestError, code_exchange_request};
use crate::wire::{UrlError, require_secure};

/// How many random bytes `state`, `nonce` and the PKCE verifier each get (256 bits).
const RANDOM_BYTES: usize = 32;

/// Parameters that this module sets itself (or has a builder method for), or that could override them
/// (`request`, `request_uri`: OpenID Connect Core §6.1 lets a request object's values take precedence). Compared
/// ignoring ASCII case, because ASP.NET providers such as IdentityServer3 read parameters that way.
const RESERVED: &[&str] = &[
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
    "max_age",
    "acr_values",
    "resource",
    "ui_locales",
    "request",
    "request_uri",
];

fn is_reserved(name: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

pub(crate) fn random_b64url(rng: &mut (impl CryptoRng + ?Sized)) -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh `state`: 256 random bits, base64url.
pub fn new_state(rng: &mut (impl CryptoRng + ?Sized)) -> State {
    State::new(random_b64url(rng))
}

/// A fresh `nonce`: 256 random bits, base64url.
pub fn new_nonce(rng: &mut (impl CryptoRng + ?Sized)) -> Nonce {
    Nonce::new(random_b64url(rng))
}

/// A fresh PKCE code verifier: 32 random bytes, base64url without padding (43 characters), as RFC 7636 §4.1
/// recommends.
pub fn new_code_verifier(rng: &mut (impl CryptoRng + ?Sized)) -> CodeVerifier {
    let mut bytes = [0u8; RANDOM_BYTES];
    rng.fill_bytes(&mut bytes);
    code_verifier_from_bytes(&bytes)
}

/// The code verifier for 32 given random bytes (base64url without padding).
pub fn code_verifier_from_bytes(bytes: &[u8; 32]) -> CodeVerifier {
    CodeVerifier::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// The `S256` code challenge: `BASE64URL(SHA256(ASCII(verifier)))` without padding (RFC 7636 §4.2).
pub fn code_challenge_s256(verifier: &CodeVerifier) -> String {
    code_challenge_s256_into(verifier, &mut [0u8; CHALLENGE_LEN]).to_owned()
}

/// Whether the login uses PKCE.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pkce {
    /// PKCE with `S256` (the default).
    #[default]
    S256,
    /// No PKCE, for a client the provider has not registered for it (IdentityServer3 answers "invalid_grant /
    /// Unexpected code_verifier" otherwise). Only turn it off for such a client.
    Disabled,
}

/// The scope that asks for a refresh token usable while the user is away (OpenID Connect Core §11).
const OFFLINE_ACCESS: &str = "offline_access";

/// A `prompt` value (OpenID Connect Core §3.1.2.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Prompt {
    /// `none`: no user interface at all; fails with `login_required`, `consent_required`, ... if one is needed.
    None,
    /// `login`: ask the user to log in again.
    Login,
    /// `consent`: ask for consent again (for example to get back a scope the user unticked).
    Consent,
    /// `select_account`: let the user pick an account.
    SelectAccount,
}

impl Prompt {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Prompt::None => "none",
            Prompt::Login => "login",
            Prompt::Consent => "consent",
            Prompt::SelectAccount => "select_account",
        }
    }
}

/// Why an authorization request could not be built.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeRequestError {
    /// The authorization endpoint is not https (outside loopback), or carries a fragment or credentials.
    #[error("the authorization endpoint cannot be used: {0}")]
    InsecureEndpoint(UrlError),
    /// The redirect URI has a fragment, which RFC 6749 §3.1.2 forbids.
    #[error(
        "redirect URI `{0}` has a fragment, which OAuth forbids (RFC 6749 §3.1.2): remove the `#...` part"
    )]
    RedirectUriHasFragment(String),
    /// The redirect URI is not among the client's registered ones.
    #[error(
        "redirect URI `{0}` is not one of the client's registered redirect URIs: use a registered one exactly, or \
         register this one"
    )]
    UnregisteredRedirectUri(String),
    /// The client id is empty.
    #[error("the client id is empty: set it to the client_id the provider issued at registration")]
    EmptyClientId,
    /// A custom parameter names a protocol parameter.
    #[error(
        "`{0}` is a protocol parameter that this builder sets itself: use the builder's own method (scope, prompt, \
         max_age, resource, ...) instead of a custom parameter"
    )]
    ReservedParameter(String),
    /// A custom parameter has an empty name.
    #[error("a custom parameter has an empty name: give it a name")]
    EmptyParameterName,
    /// A `resource` has a fragment, which RFC 8707 forbids.
    #[error("resource `{0}` has a fragment, which RFC 8707 §2 forbids: remove the `#...` part")]
    ResourceHasFragment(String),
    /// The server requires pushed authorization requests (RFC 9126) but names no PAR endpoint.
    #[error(
        "the provider requires pushed authorization requests (require_pushed_authorization_requests) but its \
         metadata has no pushed_authorization_request_endpoint, so no login can be started: ask the provider to \
         publish its PAR endpoint"
    )]
    ParRequiredWithoutEndpoint,
    /// PAR was asked for, but the provider offers no PAR endpoint.
    #[error(
        "pushed authorization requests were turned on (ClientOptions::with_par), but the provider has no \
         pushed_authorization_request_endpoint: turn PAR off for this provider"
    )]
    ParNotOffered,
    /// This login must be pushed (the provider requires PAR, or the client turned it on), which needs a request to
    /// the server: the synchronous URL builder cannot do it.
    #[error(
        "logins with this client go through a pushed authorization request (RFC 9126), which needs a request to the \
         server: start the login with Client::start_login (or start_login_with) instead of begin_login"
    )]
    MustPush,
}

/// An authorization request for the code flow, built step by step.
///
/// **`offline_access` sends `prompt=consent`.** OpenID Connect Core §11 lets a provider ignore `offline_access`
/// unless the request has `prompt=consent`, and certified providers (oidc-provider among them) do: the scope is
/// dropped without an error, no refresh token comes back, and the grant looks partial. So when `offline_access` is
/// requested and no [`prompt`](Self::prompt) was chosen, `prompt=consent` is sent. A prompt chosen by the caller
/// (`none`, `login`, ...) is sent as it is, without `consent` added.
///
/// `openid` is always among the scopes. Query parameters already on the authorization endpoint are kept, except those
/// that name a protocol parameter (they are dropped, so that the values set here are the only ones sent).
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    authorization_endpoint: Url,
    issuer: String,
    client_id: String,
    redirect_uri: Url,
    scopes: Scopes,
    pkce: Pkce,
    prompt: Vec<Prompt>,
    login_hint: Option<String>,
    max_age: Option<u64>,
    acr_values: Vec<String>,
    resources: Vec<Url>,
    ui_locales: Vec<String>,
    custom: Vec<(String, String)>,
}

impl AuthorizationRequest {
    /// Starts a request to `authorization_endpoint` of the provider `issuer` (kept for the callback's `iss` check and
    /// ID-token validation).
    pub fn new(
        authorization_endpoint: Url,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        redirect_uri: Url,
    ) -> Result<Self, AuthorizeRequestError> {
        require_secure(&authorization_endpoint).map_err(AuthorizeRequestError::InsecureEndpoint)?;
        if redirect_uri.fragment().is_some() {
            return Err(AuthorizeRequestError::RedirectUriHasFragment(truncate(
                redirect_uri.as_str(),
                200,
            )));
        }
        let client_id = client_id.into();
        if client_id.is_empty() {
            return Err(AuthorizeRequestError::EmptyClientId);
        }
        let mut scopes = Scopes::new();
        scopes.insert("openid");
        Ok(AuthorizationRequest {
            authorization_endpoint,
            issuer: issuer.into(),
            client_id,
            redirect_uri,
            scopes,
            pkce: Pkce::default(),
            prompt: Vec::new(),
            login_hint: None,
            max_age: None,
            acr_values: Vec::new(),
            resources: Vec::new(),
            ui_locales: Vec::new(),
            custom: Vec::new(),
        })
    }

    /// Starts a request from discovered metadata and the client's registration. When the client lists registered
    /// redirect URIs, `redirect_uri` must be one of them exactly (the provider compares exactly too).
    pub fn from_metadata(
        metadata: &ProviderMetadata,
        client: &ClientConfig,
        redirect_uri: Url,
    ) -> Result<Self, AuthorizeRequestError> {
        if !client.redirect_uris.is_empty() && !client.redirect_uris.contains(&redirect_uri) {
            return Err(AuthorizeRequestError::UnregisteredRedirectUri(truncate(
                redirect_uri.as_str(),
                200,
            )));
        }
        Self::new(
            metadata.authorization_endpoint.clone(),
            metadata.issuer.clone(),
            client.client_id.clone(),
            redirect_uri,
        )
    }

    /// Adds scopes; `scope` may hold several, space-separated (`"profile offline_access patients.read"`).
    pub fn scope(mut self, scope: &str) -> Self {
        for s in scope.split_ascii_whitespace() {
            self.scopes.insert(s);
        }
        self
    }

    /// Adds every scope of `scopes`.
    pub fn scopes(mut self, scopes: &Scopes) -> Self {
        for s in scopes.iter() {
            self.scopes.insert(s);
        }
        self
    }

    /// Sets PKCE (on with `S256` by default).
    pub fn pkce(mut self, pkce: Pkce) -> Self {
        self.pkce = pkce;
        self
    }

    /// Adds a `prompt` value (several are sent space-separated). Choosing any prompt turns off the `prompt=consent`
    /// that is otherwise sent with `offline_access` (see the [type docs](Self)).
    pub fn prompt(mut self, prompt: Prompt) -> Self {
        if !self.prompt.contains(&prompt) {
            self.prompt.push(prompt);
        }
        self
    }

    /// Sets `login_hint` (the user's login name or email, pre-filled on the login page).
    pub fn login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// Sets `max_age`: the longest time since the user last actively logged in. The ID token's `auth_time` is then
    /// checked against it, so it is kept in the [`PendingLogin`].
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    /// Adds an `acr_values` entry (requested authentication context class, e.g. a multi-factor level).
    pub fn acr_value(mut self, acr: impl Into<String>) -> Self {
        self.acr_values.push(acr.into());
        self
    }

    /// Adds a `resource` (RFC 8707): an API the token is meant for. Repeatable.
    pub fn resource(mut self, resource: Url) -> Result<Self, AuthorizeRequestError> {
        if resource.fragment().is_some() {
            return Err(AuthorizeRequestError::ResourceHasFragment(truncate(
                resource.as_str(),
                200,
            )));
        }
        self.resources.push(resource);
        Ok(self)
    }

    /// Adds a `ui_locales` entry (BCP 47 language tag, in order of preference).
    pub fn ui_locale(mut self, locale: impl Into<String>) -> Self {
        self.ui_locales.push(locale.into());
        self
    }

    /// Adds any other parameter (`display`, `id_token_hint`, a provider's own, ...).
    ///
    /// Protocol parameters (`state`, `nonce`, `code_challenge`, `redirect_uri`, `scope`, `response_type`,
    /// `response_mode`, `request`, ..., compared ignoring case) are refused: they would override what this builder
    /// sets, or have a method of their own.
    pub fn param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, AuthorizeRequestError> {
        let name = name.into();
        if name.is_empty() {
            return Err(AuthorizeRequestError::EmptyParameterName);
        }
        if is_reserved(&name) {
            return Err(AuthorizeRequestError::ReservedParameter(truncate(
                &name, 64,
            )));
        }
        self.custom.push((name, value.into()));
        Ok(self)
    }

    /// The scopes that will be requested (always with `openid`).
    pub fn requested_scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// Draws `state`, `nonce` and (with PKCE) the code verifier from `rng`, and builds the URL to send the browser to
    /// plus the [`PendingLogin`] to keep until the callback. For many logins with the same settings,
    /// [`prepare`](Self::prepare) the request once and build each login from the [`LoginTemplate`].
    pub fn build(
        self,
        rng: &mut (impl CryptoRng + ?Sized),
        now: UnixTime,
    ) -> (AuthorizationUrl, PendingLogin) {
        self.prepare().build(rng, now)
    }

    /// Encodes every parameter that is the same for each login (all but `state`, `nonce` and `code_challenge`) once,
    /// into a [`LoginTemplate`] that builds logins without encoding them again.
    pub fn prepare(self) -> LoginTemplate {
        // `new` refused an endpoint with a fragment, so the query is the URL's end.
        let mut url = self.authorization_endpoint;
        let kept: Vec<(String, String)> = match url.query() {
            Some(existing) => url::form_urlencoded::parse(existing.as_bytes())
                .filter(|(k, _)| !is_reserved(k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            None => Vec::new(),
        };
        url.set_query(None);
        // Before the per-login values: what the endpoint had, and the parameters that name the client and the scopes.
        let mut head = FormQuery::new(url.query_pairs_mut());
        for (k, v) in &kept {
            head.pair(k, v);
        }
        head.pair("response_type", "code");
        head.pair("client_id", &self.client_id);
        head.pair("redirect_uri", self.redirect_uri.as_str());
        head.list("scope", self.scopes.iter());
        drop(head);
        // After them: everything else, encoded by the same form encoder into a string of its own.
        let mut tail = FormQuery::new(url::form_urlencoded::Serializer::new(String::new()));
        let pkce = self.pkce == Pkce::S256;
        if pkce {
            tail.pair("code_challenge_method", "S256");
        }
        if !self.prompt.is_empty() {
            tail.list("prompt", self.prompt.iter().map(|p| p.as_str()));
        } else if self.scopes.contains(OFFLINE_ACCESS) {
            // OpenID Connect Core §11: without prompt=consent a provider may ignore offline_access.
            tail.pair("prompt", Prompt::Consent.as_str());
        }
        if let Some(h) = &self.login_hint {
            tail.pair("login_hint", h);
        }
        if let Some(m) = self.max_age {
            tail.number("max_age", m);
        }
        if !self.acr_values.is_empty() {
            tail.list("acr_values", self.acr_values.iter().map(String::as_str));
        }
        for r in &self.resources {
            tail.pair("resource", r.as_str());
        }
        if !self.ui_locales.is_empty() {
            tail.list("ui_locales", self.ui_locales.iter().map(String::as_str));
        }
        for (k, v) in &self.custom {
            tail.pair(k, v);
        }
        let tail = tail.pairs.finish();
        LoginTemplate {
            head: url.into(),
            tail,
            pkce,
            settings: Arc::new(LoginSettings {
                redirect_uri: self.redirect_uri,
                issuer: self.issuer,
                client_id: self.client_id,
                scopes: self.scopes,
                max_age: self.max_age,
            }),
        }
    }

    /// [`build`](Self::build) with fixed values; `verifier` is dropped when PKCE is disabled.
    #[cfg(test)]
    pub(crate) fn build_inner(
        self,
        state: State,
        nonce: Nonce,
        verifier: CodeVerifier,
        now: UnixTime,
    ) -> (AuthorizationUrl, PendingLogin) {
        self.prepare().build_inner(state, nonce, verifier, now)
    }
}

/// An [`AuthorizationRequest`] encoded once, to build many logins from (a web application's "log in" button):
/// each [`build`](Self::build) draws new `state`, `nonce` and PKCE verifier and writes only them into a copy of the
/// encoded query.
///
/// The URL it builds is byte for byte the one `url`'s own form encoder writes for the same parameters, in the same
/// order: the per-login values are base64url, which form encoding leaves as they are.
#[derive(Debug, Clone)]
pub struct LoginTemplate {
    /// The endpoint and the parameters before `state`, encoded (`https://op/authorize?response_type=code&...`).
    head: String,
    /// The parameters after the code challenge, encoded, without a leading `&` (may be empty).
    tail: String,
    pkce: bool,
    /// What each login's [`PendingLogin`] shares with the others (one allocation for all of them).
    settings: Arc<LoginSettings>,
}

impl LoginTemplate {
    /// Draws `state`, `nonce` and (with PKCE) the code verifier from `rng`, and builds the URL to send the browser to
    /// plus the [`PendingLogin`] to keep until the callback.
    pub fn build(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        now: UnixTime,
    ) -> (AuthorizationUrl, PendingLogin) {
        // The three values in one draw: 32 random bytes each, base64url.
        let mut bytes = [0u8; 3 * RANDOM_BYTES];
        rng.fill_bytes(&mut bytes);
        let (state, rest) = bytes.split_at(RANDOM_BYTES);
        let (nonce, verifier) = rest.split_at(RANDOM_BYTES);
        let state = State::new(URL_SAFE_NO_PAD.encode(state));
        let nonce = Nonce::new(URL_SAFE_NO_PAD.encode(nonce));
        let verifier = CodeVerifier::new(URL_SAFE_NO_PAD.encode(verifier));
        self.assemble(state, nonce, verifier, now, Values::Base64Url)
    }

    /// The scopes each login requests (always with `openid`).
    pub fn requested_scopes(&self) -> &Scopes {
        &self.settings.scopes
    }

    /// [`build`](Self::build) with fixed values of any text (the tests' way in); `verifier` is dropped when PKCE
    /// is disabled.
    #[cfg(test)]
    pub(crate) fn build_inner(
        &self,
        state: State,
        nonce: Nonce,
        verifier: CodeVerifier,
        now: UnixTime,
    ) -> (AuthorizationUrl, PendingLogin) {
        self.assemble(state, nonce, verifier, now, Values::Any)
    }

    fn assemble(
        &self,
        state: State,
        nonce: Nonce,
        verifier: CodeVerifier,
        now: UnixTime,
        values: Values,
    ) -> (AuthorizationUrl, PendingLogin) {
        let code_verifier = self.pkce.then_some(verifier);
        // Three parameters of at most 16 + 43 bytes each.
        let mut url = String::with_capacity(self.head.len() + self.tail.len() + 200);
        url.push_str(&self.head);
        values.push(&mut url, "&state=", state.expose_secret());
        values.push(&mut url, "&nonce=", nonce.expose_secret());
        if let Some(v) = &code_verifier {
            let mut challenge = [0u8; CHALLENGE_LEN];
            let challenge = code_challenge_s256_into(v, &mut challenge);
            Values::Base64Url.push(&mut url, "&code_challenge=", challenge);
        }
        if !self.tail.is_empty() {
            url.push('&');
            url.push_str(&self.tail);
        }
        let pending = PendingLogin {
            state,
            nonce,
            code_verifier,
            settings: Arc::clone(&self.settings),
            created_at: now,
            request_uri_expires_at: None,
        };
        (AuthorizationUrl(url), pending)
    }
}

/// What the per-login values of a URL being assembled are.
#[derive(Clone, Copy)]
enum Values {
    /// base64url, as drawn by [`LoginTemplate::build`]: form encoding leaves them as they are, so they are copied.
    Base64Url,
    /// Any text (the tests' fixed values): form-encoded by `url`'s encoder.
    #[cfg(test)]
    Any,
}

impl Values {
    /// Appends `key` (`&name=`) and `value`, form-encoded.
    fn push(self, query: &mut String, key: &str, value: &str) {
        query.push_str(key);
        match self {
            Values::Base64Url => {
                debug_assert!(
                    value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "not base64url: {value}"
                );
                query.push_str(value);
            }
            #[cfg(test)]
            Values::Any => query.extend(url::form_urlencoded::byte_serialize(value.as_bytes())),
        }
    }
}

/// The URL to send the browser to for a login: the authorization endpoint with the request's parameters.
///
/// It is kept as the string it was built as (no parse on the login path): [`as_str`](Self::as_str) is what goes
/// into a `Location` header or a link, [`to_url`](Self::to_url) parses it into a [`Url`]. It holds the login's
/// `state` and `nonce`, so `Debug` shows only where it points, and there is no `Display`: print it on purpose with
/// `as_str`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AuthorizationUrl(String);

impl AuthorizationUrl {
    /// The URL, as it is sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The URL, parsed.
    pub fn to_url(&self) -> Url {
        // Built from a parsed URL's serialization plus form-encoded pairs: it always parses.
        Url::parse(&self.0).expect("an authorization URL is a serialized URL")
    }

    /// The query's `(name, value)` pairs, decoded.
    pub fn query_pairs(&self) -> url::form_urlencoded::Parse<'_> {
        let after = self.0.split_once('?').map_or("", |(_, q)| q);
        let query = after.split_once('#').map_or(after, |(q, _)| q);
        url::form_urlencoded::parse(query.as_bytes())
    }
}

impl From<Url> for AuthorizationUrl {
    fn from(url: Url) -> Self {
        AuthorizationUrl(url.into())
    }
}

impl From<AuthorizationUrl> for Url {
    fn from(url: AuthorizationUrl) -> Self {
        url.to_url()
    }
}

impl From<AuthorizationUrl> for String {
    fn from(url: AuthorizationUrl) -> Self {
        url.0
    }
}

impl AsRef<str> for AuthorizationUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<Url> for AuthorizationUrl {
    fn eq(&self, other: &Url) -> bool {
        self.0 == other.as_str()
    }
}

impl std::fmt::Debug for AuthorizationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoint = self.0.split(['?', '#']).next().unwrap_or("");
        f.debug_struct("AuthorizationUrl")
            .field("endpoint", &endpoint)
            .field(
                "query",
                &format_args!("[{} bytes]", self.0.len() - endpoint.len()),
            )
            .finish()
    }
}

/// The length of an `S256` code challenge: 32 bytes of SHA-256, base64url without padding.
const CHALLENGE_LEN: usize = 43;

/// The `S256` code challenge of `verifier`, written into `out` (no allocation on the login path).
fn code_challenge_s256_into<'a>(
    verifier: &CodeVerifier,
    out: &'a mut [u8; CHALLENGE_LEN],
) -> &'a str {
    let digest = Sha256::digest(verifier.expose_secret().as_bytes());
    // 32 bytes are always 43 base64url characters, so neither can fail: `out` is exactly that long, and base64
    // output is ASCII.
    let n = URL_SAFE_NO_PAD
        .encode_slice(digest, out)
        .expect("32 bytes encode to 43 base64url characters");
    std::str::from_utf8(&out[..n]).expect("base64url output is ASCII")
}

/// A query being written through `url`'s own form encoder (into a URL or a string), with one scratch buffer for
/// the space-separated lists.
struct FormQuery<'a, T: url::form_urlencoded::Target> {
    pairs: url::form_urlencoded::Serializer<'a, T>,
    scratch: String,
}

impl<'a, T: url::form_urlencoded::Target> FormQuery<'a, T> {
    fn new(pairs: url::form_urlencoded::Serializer<'a, T>) -> Self {
        FormQuery {
            pairs,
            scratch: String::with_capacity(128),
        }
    }

    /// Appends `name=value`.
    fn pair(&mut self, name: &str, value: &str) {
        self.pairs.append_pair(name, value);
    }

    /// Appends `name=n` in decimal.
    fn number(&mut self, name: &str, n: u64) {
        use std::fmt::Write as _;
        self.scratch.clear();
        // Writing into a String cannot fail.
        let _ = write!(self.scratch, "{n}");
        self.pairs.append_pair(name, &self.scratch);
    }

    /// Appends `name=` with `values` joined by spaces (the wire form of `scope`, `prompt`, `acr_values`, ...).
    fn list<'v>(&mut self, name: &str, values: impl IntoIterator<Item = &'v str>) {
        self.scratch.clear();
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.scratch.push(' ');
            }
            self.scratch.push_str(value);
        }
        self.pairs.append_pair(name, &self.scratch);
    }
}

/// Everything the callback and the code exchange need, kept between the redirect and the callback.
///
/// It is one `Serialize + Deserialize` value so that a web application can keep it in its own session store. `Debug`
/// redacts the secrets. How to keep it:
///
/// - **Bind it to the browser session** that started the login: that binding is the CSRF defence. Keep it
///   server-side under the browser's session id, or in a cookie that is encrypted *and* signed (it holds the PKCE
///   verifier and the nonce in clear once serialized), `HttpOnly`, `Secure`, `SameSite=Lax` (the callback is a
///   top-level cross-site navigation, so `Strict` would drop it).
/// - **One per login attempt, keyed by [`state`](Self::state):** a user with two tabs has two logins pending; find the
///   one the callback's `state` names. Take it out of the store when the callback arrives, whatever the outcome: it
///   is single-use.
/// - **Lifetime:** it carries its creation time ([`created_at`](Self::created_at)). The client refuses one older than
///   its `login_lifetime` (`ClientOptions::with_login_lifetime`, default [`DEFAULT_LIFETIME`](Self::DEFAULT_LIFETIME))
///   with [`CallbackError::Expired`], whose message tells the user to start the login again; give the stored value
///   the same expiry so stale ones do not pile up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "PendingLoginWire", into = "PendingLoginWire")]
pub struct PendingLogin {
    state: State,
    nonce: Nonce,
    code_verifier: Option<CodeVerifier>,
    settings: Arc<LoginSettings>,
    created_at: UnixTime,
    request_uri_expires_at: Option<UnixTime>,
}

/// What the logins of one [`LoginTemplate`] have in common, shared by their [`PendingLogin`]s.
#[derive(Debug)]
struct LoginSettings {
    redirect_uri: Url,
    issuer: String,
    client_id: String,
    scopes: Scopes,
    max_age: Option<u64>,
}

/// [`PendingLogin`] as it is serialized: one flat object (the form kept in applications' session stores).
#[derive(Clone, Serialize, Deserialize)]
struct PendingLoginWire {
    state: State,
    nonce: Nonce,
    code_verifier: Option<CodeVerifier>,
    redirect_uri: Url,
    issuer: String,
    client_id: String,
    scopes: Scopes,
    max_age: Option<u64>,
    created_at: UnixTime,
    /// When the pushed request's `request_uri` expires (RFC 9126); `None` for a login that was not pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_uri_expires_at: Option<UnixTime>,
}

impl From<PendingLoginWire> for PendingLogin {
    fn from(w: PendingLoginWire) -> Self {
        PendingLogin {
            state: w.state,
            nonce: w.nonce,
            code_verifier: w.code_verifier,
            settings: Arc::new(LoginSettings {
                redirect_uri: w.redirect_uri,
                issuer: w.issuer,
                client_id: w.client_id,
                scopes: w.scopes,
                max_age: w.max_age,
            }),
            created_at: w.created_at,
            request_uri_expires_at: w.request_uri_expires_at,
        }
    }
}

impl From<PendingLogin> for PendingLoginWire {
    fn from(p: PendingLogin) -> Self {
        let settings = &*p.settings;
        PendingLoginWire {
            state: p.state,
            nonce: p.nonce,
            code_verifier: p.code_verifier,
            redirect_uri: settings.redirect_uri.clone(),
            issuer: settings.issuer.clone(),
            client_id: settings.client_id.clone(),
            scopes: settings.scopes.clone(),
            max_age: settings.max_age,
            created_at: p.created_at,
            request_uri_expires_at: p.request_uri_expires_at,
        }
    }
}

impl PendingLogin {
    /// A suggested limit for how long a login may stay pending: long enough for a slow login with a second factor,
    /// short enough that a stale session value stops working.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);

    /// The `state` sent.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The `nonce` sent; the ID token's `nonce` claim must equal it.
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// The PKCE verifier; `None` when PKCE was disabled.
    pub fn code_verifier(&self) -> Option<&CodeVerifier> {
        self.code_verifier.as_ref()
    }

    /// The redirect URI sent; the code exchange sends it again.
    pub fn redirect_uri(&self) -> &Url {
        &self.settings.redirect_uri
    }

    /// The issuer the login went to.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The client that started the login.
    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// The scopes requested (for [`granted_scopes`](crate::token::granted_scopes)).
    pub fn requested_scopes(&self) -> &Scopes {
        &self.settings.scopes
    }

    /// The `max_age` sent, if any; the ID token's `auth_time` is checked against it.
    pub fn max_age(&self) -> Option<Duration> {
        self.settings.max_age.map(Duration::from_secs)
    }

    /// When the login started.
    pub fn created_at(&self) -> UnixTime {
        self.created_at
    }

    /// When the `request_uri` of a pushed login (RFC 9126) expires; `None` when the login was not pushed.
    pub fn request_uri_expires_at(&self) -> Option<UnixTime> {
        self.request_uri_expires_at
    }

    /// Records when the pushed request's `request_uri` expires.
    pub fn with_request_uri_expiry(mut self, expires_at: UnixTime) -> Self {
        self.request_uri_expires_at = Some(expires_at);
        self
    }

    /// Refuses a pushed login whose `request_uri` expired before the browser was sent with it: check it before
    /// redirecting a browser late (a redirect right after the push needs no check).
    pub fn check_request_uri(&self, now: UnixTime) -> Result<(), CallbackError> {
        match self.request_uri_expires_at {
            Some(at) if now >= at => Err(CallbackError::RequestUriExpired {
                expired_secs_ago: now.saturating_duration_since(at).as_secs(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a login that has been pending longer than `lifetime` (see [`DEFAULT_LIFETIME`](Self::DEFAULT_LIFETIME)).
    /// A `now` before the start (a clock that went back) counts as no time passed.
    pub fn check_not_expired(
        &self,
        now: UnixTime,
        lifetime: Duration,
    ) -> Result<(), CallbackError> {
        let age = now.saturating_duration_since(self.created_at);
        if age > lifetime {
            return Err(CallbackError::Expired {
                age_secs: age.as_secs(),
                lifetime_secs: lifetime.as_secs(),
            });
        }
        Ok(())
    }

    /// The token request that exchanges `code` (from [`parse_callback`]) for tokens, with this login's redirect URI
    /// and PKCE verifier.
    pub fn code_exchange_request(
        &self,
        token_endpoint: &Url,
        client: &ClientConfig,
        auth: &ClientAuth,
        code: &AuthorizationCode,
        stamp: &RequestStamp,
    ) -> Result<http::Request<Vec<u8>>, TokenRequestError> {
        code_exchange_request(
            token_endpoint,
            client,
            auth,
            code,
            &self.settings.redirect_uri,
            self.code_verifier.as_ref(),
            stamp,
        )
    }
}

/// Callbacks behind a proxy: a handler behind a TLS-terminating proxy sees `GET /callback?code=...&state=...`,
/// not the public URL. These rebuild the URL [`parse_callback`] checks from the pending login's redirect URI
/// (scheme, host and port as the browser saw them) and what the handler has; every check stays the same.
impl PendingLogin {
    /// The callback URL for a callback whose query string is `query` (with or without its leading `?`): the
    /// pending redirect URI with that query.
    pub fn callback_url_from_query(&self, query: &str) -> Url {
        let mut url = self.settings.redirect_uri.clone();
        url.set_fragment(None);
        url.set_query(Some(query.strip_prefix('?').unwrap_or(query)));
        url
    }

    /// The callback URL for a request to `uri` (as an HTTP server sees it: `/callback?code=...`): the pending
    /// redirect URI's scheme, host and port with `uri`'s path and query. A scheme and host in `uri` are ignored:
    /// behind a proxy they are the proxy's view, not the browser's. A path that differs from the redirect URI's (a
    /// proxy that rewrites paths) is refused by [`parse_callback`] as [`CallbackError::WrongRedirect`].
    pub fn callback_url_from_uri(&self, uri: &http::Uri) -> Url {
        let mut url = self.settings.redirect_uri.clone();
        url.set_fragment(None);
        if !uri.path().is_empty() {
            url.set_path(uri.path());
        }
        url.set_query(Some(uri.query().unwrap_or("")));
        url
    }
}

/// How the RFC 9207 `iss` parameter of the callback is checked.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IssPolicy {
    /// `iss` must be present and equal the issuer (the provider advertises
    /// `authorization_response_iss_parameter_supported`).
    Required,
    /// `iss` is checked when present; its absence is fine (IdentityServer3 never sends it).
    #[default]
    IfPresent,
}

impl IssPolicy {
    /// [`Required`](Self::Required) if the metadata advertises `authorization_response_iss_parameter_supported`,
    /// else [`IfPresent`](Self::IfPresent).
    pub fn from_metadata(metadata: &ProviderMetadata) -> Self {
        if metadata.authorization_response_iss_parameter_supported {
            IssPolicy::Required
        } else {
            IssPolicy::IfPresent
        }
    }
}

/// Why a login callback was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A callback arrived but the session holds no pending login.
    #[error(
        "a login callback arrived but no login is pending in this session (it expired, was already used, or the \
         callback is forged or replayed): start the login again"
    )]
    NoPendingLogin,
    /// The pending login was started by another client or at another provider than the one finishing it.
    #[error(
        "this pending login was started by client {client_id} at {issuer}, not by the client finishing it: finish \
         it with the client (and provider) that began it"
    )]
    OtherClient {
        /// The issuer the login was started at.
        issuer: String,
        /// The client that started it.
        client_id: String,
    },
    /// The login was pending for too long.
    #[error(
        "this login was started {age_secs} s ago, longer than the {lifetime_secs} s allowed: start the login again"
    )]
    Expired {
        /// How long the login was pending, in seconds.
        age_secs: u64,
        /// The allowed lifetime, in seconds.
        lifetime_secs: u64,
    },
    /// The callback URL is not the redirect URI of the pending login.
    #[error(
        "the callback arrived at `{got}`, but the login expects `{expected}`: route the callback to the redirect \
         URI the login was started with"
    )]
    WrongRedirect {
        /// The pending redirect URI (scheme, host, port, path).
        expected: String,
        /// Where the callback arrived (scheme, host, port, path).
        got: String,
    },
    /// The response came in the URL fragment, not the query.
    #[error(
        "the provider answered in the URL fragment, but the code flow answers in the query: do not set \
         response_mode or response_type by hand, and start the login again"
    )]
    ResponseInFragment,
    /// A parameter appears more than once.
    #[error(
        "the callback repeats the parameter `{0}`, which OAuth forbids (RFC 6749 §3.1): the callback may have been \
         tampered with; start the login again"
    )]
    RepeatedParameter(String),
    /// The callback has no `state`.
    #[error(
        "the callback has no state: it cannot be tied to this login (it may be forged); start the login again"
    )]
    MissingState,
    /// The callback's `state` differs from the pending login's.
    #[error("state mismatch: this callback does not belong to this login; start the login again")]
    StateMismatch,
    /// `iss` is required (RFC 9207) but absent.
    #[error(
        "the callback has no iss parameter, but the provider `{expected}` promises one (RFC 9207): the response may \
         come from another provider (mix-up attack); start the login again"
    )]
    MissingIss {
        /// The issuer the login went to.
        expected: String,
    },
    /// `iss` differs from the issuer the login went to.
    #[error(
        "the callback comes from issuer `{got}`, but the login went to `{expected}` (RFC 9207 mix-up defence): \
         start the login again, and check which provider the application is configured for"
    )]
    IssMismatch {
        /// The issuer the login went to.
        expected: String,
        /// The `iss` in the callback, cut.
        got: String,
    },
    /// The user (or the provider) refused: `error=access_denied`.
    #[error(
        "the user refused consent (access_denied{}): ask again, or carry on without this access",
        .description.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    AccessDenied {
        /// `error_description`, cut.
        description: Option<String>,
    },
    /// The provider needs the user to interact: `login_required`, `consent_required`, `interaction_required` or
    /// `account_selection_required` (typically after `prompt=none`).
    #[error("the provider needs the user to interact ({}): {}", .0, .0.hint(Endpoint::Authorization))]
    InteractionRequired(OAuthError),
    /// Any other error response from the authorization endpoint.
    #[error("the authorization endpoint refused: {}; {}", .0, .0.hint(Endpoint::Authorization))]
    Provider(OAuthError),
    /// The pushed authorization request (RFC 9126) expired before the browser used it, or the server no longer
    /// knows its `request_uri` (`invalid_request_uri`).
    #[error(
        "the pushed authorization request expired{} before the browser used it: start the login again (and send \
         the browser right after starting it)",
        if *.expired_secs_ago > 0 { format!(" {} s ago", .expired_secs_ago) } else { String::new() }
    )]
    RequestUriExpired {
        /// How long ago it expired, in seconds, when known (0 when the server said so).
        expired_secs_ago: u64,
    },
    /// The callback has neither a `code` nor an `error`.
    #[error(
        "the callback carries no authorization code: make sure the whole callback URL, query included, is passed in, \
         and start the login again"
    )]
    MissingCode,
}

/// The callback's scheme, host, port and path, for comparison and messages.
fn endpoint_of(url: &Url) -> (String, Option<String>, Option<u16>, String) {
    (
        url.scheme().to_owned(),
        url.host_str().map(str::to_owned),
        url.port_or_known_default(),
        url.path().to_owned(),
    )
}

fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    truncate(u.as_str(), 200)
}

/// Checks the URL the browser came back to and returns the authorization code.
///
/// See the [module documentation](self) for the order of the checks. `pending` is the value saved when the login
/// started; a web application that finds none in the session answers [`CallbackError::NoPendingLogin`] itself.
/// Optionally call [`PendingLogin::check_not_expired`] first.
pub fn parse_callback(
    pending: &PendingLogin,
    callback_url: &Url,
    iss_policy: IssPolicy,
) -> Result<AuthorizationCode, CallbackError> {
    if endpoint_of(callback_url) != endpoint_of(&pending.settings.redirect_uri) {
        return Err(CallbackError::WrongRedirect {
            expected: shown(&pending.settings.redirect_uri),
            got: shown(callback_url),
        });
    }

    let mut params: Vec<(String, String)> = Vec::new();
    for (k, v) in callback_url.query_pairs() {
        if params.iter().any(|(seen, _)| *seen == k) {
            return Err(CallbackError::RepeatedParameter(truncate(&k, 64)));
        }
        params.push((k.into_owned(), v.into_owned()));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };

    if get("code").is_none() && get("error").is_none() && get("state").is_none() {
        let in_fragment = callback_url.fragment().is_some_and(|f| {
            url::form_urlencoded::parse(f.as_bytes()).any(|(k, _)| {
                matches!(
                    &*k,
                    "code" | "state" | "error" | "id_token" | "access_token"
                )
            })
        });
        if in_fragment {
            return Err(CallbackError::ResponseInFragment);
        }
    }

    match get("state") {
        None => return Err(CallbackError::MissingState),
        Some(s) if !State::new(s).ct_eq(&pending.state) => {
            return Err(CallbackError::StateMismatch);
        }
        Some(_) => {}
    }

    match (get("iss"), iss_policy) {
        (Some(iss), _) if iss != pending.settings.issuer => {
            return Err(CallbackError::IssMismatch {
                expected: pending.settings.issuer.clone(),
                got: truncate(iss, 200),
            });
        }
        (None, IssPolicy::Required) => {
            return Err(CallbackError::MissingIss {
                expected: pending.settings.issuer.clone(),
            });
        }
        _ => {}
    }

    if let Some(code) = get("error") {
        let error = OAuthError::new(code, get("error_description"), get("error_uri"));
        return Err(match error.code {
            ErrorCode::AccessDenied => CallbackError::AccessDenied {
                description: error.description,
            },
            ErrorCode::LoginRequired
            | ErrorCode::ConsentRequired
            | ErrorCode::InteractionRequired
            | ErrorCode::AccountSelectionRequired => CallbackError::InteractionRequired(error),
            ErrorCode::InvalidRequestUri if pending.request_uri_expires_at.is_some() => {
                CallbackError::RequestUriExpired {
                    expired_secs_ago: 0,
                }
            }
            _ => CallbackError::Provider(error),
        });
    }

    get("code")
        .map(AuthorizationCode::new)
        .ok_or(CallbackError::MissingCode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const ISSUER: &str = "https://accounts.example.com";
    // RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn request() -> AuthorizationRequest {
        AuthorizationRequest::new(
            url("https://accounts.example.com/connect/authorize"),
            ISSUER,
            "nethealth-app",
            url("https://app.example/callback"),
        )
        .unwrap()
    }

    fn pending() -> PendingLogin {
        request()
            .build_inner(
                State::new("state-123"),
                Nonce::new("nonce-456"),
                CodeVerifier::new(RFC_VERIFIER),
                UnixTime::from_secs(1_000),
            )
            .1
    }

    #[test]
    fn callback_urls_are_rebuilt_from_the_redirect_uri_and_checked_as_full_ones() {
        let p = pending();
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        for (built, expected) in [
            (
                p.callback_url_from_query("code=c&state=state-123"),
                "https://app.example/callback?code=c&state=state-123",
            ),
            (
                p.callback_url_from_query("?code=c&state=state-123"),
                "https://app.example/callback?code=c&state=state-123",
            ),
            (
                p.callback_url_from_uri(&uri("/callback?code=c&state=state-123")),
                "https://app.example/callback?code=c&state=state-123",
            ),
            (
                // The proxy's scheme and host are not the browser's: only the path and query count.
                p.callback_url_from_uri(&uri(
                    "http://10.0.0.5:8080/callback?code=c&state=state-123",
                )),
                "https://app.example/callback?code=c&state=state-123",
            ),
            (
                p.callback_url_from_uri(&uri("/elsewhere?code=c")),
                "https://app.example/elsewhere?code=c",
            ),
            (
                p.callback_url_from_uri(&uri("/callback")),
                "https://app.example/callback?",
            ),
        ] {
            assert_eq!(built.as_str(), expected);
        }
        let check = |u: Url| parse_callback(&p, &u, IssPolicy::IfPresent);
        assert!(check(p.callback_url_from_query("code=c&state=state-123")).is_ok());
        assert_eq!(
            check(p.callback_url_from_query("code=c&state=other")).unwrap_err(),
            CallbackError::StateMismatch
        );
        assert!(matches!(
            check(p.callback_url_from_uri(&uri("/elsewhere?code=c&state=state-123"))),
            Err(CallbackError::WrongRedirect { .. })
        ));
        assert_eq!(
            check(p.callback_url_from_uri(&uri("/callback"))).unwrap_err(),
            CallbackError::MissingState
        );
    }

    fn pairs(u: &AuthorizationUrl) -> Vec<(String, String)> {
        u.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Tricky text in every place a caller can put text: the URL decodes (with `url`'s own `query_pairs`) to exactly
    /// the parameters given, in order, and its bytes are what `url`'s `query_pairs_mut` writes for them.
    #[test]
    fn tricky_values_decode_back_to_exactly_the_parameters_given() {
        let tricky = "a b&c=d+e%f%20g\u{e9}\u{20ac}\u{1f600}*-._~/?#[]@!$'(),;:";
        let endpoint = url(
            "https://accounts.example.com/connect/authorize?tenant=a+b%26c%3D%25&x=%C3%A9&scope=evil",
        );
        let redirect = url("http://127.0.0.1:8080/cb/%C3%A9?next=/a%20b&x=%2F+\u{e9}");
        let resource = url("https://api.example.com/fhir?x=1&y=a%26b");
        let request =
            AuthorizationRequest::new(endpoint, ISSUER, "nh app&x=1+%\u{e9}", redirect.clone())
                .unwrap()
                .scope("patients.read fhir:Patient/*.read a&b=c+d%e \u{e9}t\u{e9} offline_access")
                .login_hint(tricky)
                .max_age(Duration::from_secs(u64::MAX))
                .acr_value("urn:mace:incommon:iap:silver")
                .acr_value("a b")
                .resource(resource.clone())
                .unwrap()
                .ui_locale("de-CH")
                .ui_locale("fr+FR")
                .param("weird name=&+%\u{e9}", tricky)
                .unwrap()
                .param("empty", "")
                .unwrap();
        let scopes = request.requested_scopes().to_string();
        let (u, p) = request.build_inner(
            State::new("state-123"),
            Nonce::new("nonce-456"),
            CodeVerifier::new(RFC_VERIFIER),
            UnixTime::EPOCH,
        );
        let expected: Vec<(&str, &str)> = vec![
            ("tenant", "a b&c=%"),
            ("x", "\u{e9}"),
            ("response_type", "code"),
            ("client_id", "nh app&x=1+%\u{e9}"),
            ("redirect_uri", redirect.as_str()),
            ("scope", &scopes),
            ("state", "state-123"),
            ("nonce", "nonce-456"),
            ("code_challenge", RFC_CHALLENGE),
            ("code_challenge_method", "S256"),
            ("prompt", "consent"),
            ("login_hint", tricky),
            ("max_age", "18446744073709551615"),
            ("acr_values", "urn:mace:incommon:iap:silver a b"),
            ("resource", resource.as_str()),
            ("ui_locales", "de-CH fr+FR"),
            ("weird name=&+%\u{e9}", tricky),
            ("empty", ""),
        ];
        assert_eq!(
            scopes,
            "a&b=c+d%e fhir:Patient/*.read offline_access openid patients.read \u{e9}t\u{e9}"
        );
        let got = pairs(&u);
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);

        let mut reference = url("https://accounts.example.com/connect/authorize");
        reference.query_pairs_mut().extend_pairs(&expected);
        assert_eq!(u.as_str(), reference.as_str());
        assert_eq!(u.to_url().as_str(), u.as_str());
        assert_eq!(u.query_pairs().count(), expected.len());
        // Debug shows where it points, never the state or the nonce.
        let debug = format!("{u:?}");
        assert!(
            debug.contains("https://accounts.example.com/connect/authorize"),
            "{debug}"
        );
        assert!(
            !debug.contains("state-123") && !debug.contains("nonce-456"),
            "{debug}"
        );
        assert_eq!(p.redirect_uri(), &redirect);
        assert_eq!(p.client_id(), "nh app&x=1+%\u{e9}");
        assert_eq!(p.max_age(), Some(Duration::from_secs(u64::MAX)));
    }

    /// A template builds every login byte for byte as `url` writes it, and each login gets values of its own.
    #[test]
    fn a_template_builds_what_url_writes_for_each_login() {
        let endpoint = url("https://accounts.example.com/connect/authorize?tenant=a%20b");
        let template = AuthorizationRequest::new(
            endpoint.clone(),
            ISSUER,
            "nethealth-app",
            url("https://app.example/cb?x=1"),
        )
        .unwrap()
        .scope("offline_access patients.read")
        .login_hint("jo+1@example.com")
        .prepare();
        let fixed = |t: &LoginTemplate, state: &str| {
            t.build_inner(
                State::new(state),
                Nonce::new("n-1"),
                CodeVerifier::new(RFC_VERIFIER),
                UnixTime::EPOCH,
            )
        };
        let (a, pa) = fixed(&template, "s-1");
        let mut reference = endpoint.clone();
        reference.set_query(None);
        reference.query_pairs_mut().extend_pairs([
            ("tenant", "a b"),
            ("response_type", "code"),
            ("client_id", "nethealth-app"),
            ("redirect_uri", "https://app.example/cb?x=1"),
            ("scope", "offline_access openid patients.read"),
            ("state", "s-1"),
            ("nonce", "n-1"),
            ("code_challenge", RFC_CHALLENGE),
            ("code_challenge_method", "S256"),
            ("prompt", "consent"),
            ("login_hint", "jo+1@example.com"),
        ]);
        assert_eq!(a.as_str(), reference.as_str());
        assert_eq!(a, reference);
        assert_eq!(pa.requested_scopes(), template.requested_scopes());
        // A state that is not base64url is still form-encoded.
        let (b, _) = fixed(&template, "s 2&x");
        assert!(b.query_pairs().any(|(k, v)| k == "state" && v == "s 2&x"));
        assert!(b.as_str().contains("state=s+2%26x"), "{}", b.as_str());
        // Random logins from one template differ in their values only.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (c, pc) = template.build(&mut rng, UnixTime::EPOCH);
        let (d, pd) = template.build(&mut rng, UnixTime::EPOCH);
        assert_ne!(c, d);
        assert!(!pc.state().ct_eq(pd.state()));
        let names = |u: &AuthorizationUrl| {
            u.query_pairs()
                .map(|(k, _)| k.into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&c), names(&a));
        assert_eq!(names(&d), names(&a));
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let v = code_verifier_from_bytes(&octets);
        assert_eq!(v.expose_secret(), RFC_VERIFIER);
        assert_eq!(code_challenge_s256(&v), RFC_CHALLENGE);
    }

    #[test]
    fn random_values_are_long_and_distinct() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (u, p) = request().build(&mut rng, UnixTime::from_secs(5));
        let s = p.state().expose_secret();
        let n = p.nonce().expose_secret();
        let v = p.code_verifier().unwrap().expose_secret();
        for x in [s, n, v] {
            assert_eq!(x.len(), 43, "{x}");
            assert!(
                x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert!(s != n && n != v && s != v);
        let q = pairs(&u);
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("state").as_deref(), Some(s));
        assert_eq!(get("nonce").as_deref(), Some(n));
        assert_eq!(
            get("code_challenge"),
            Some(code_challenge_s256(p.code_verifier().unwrap()))
        );
        // A second login draws new values.
        let (_, p2) = request().build(&mut rng, UnixTime::from_secs(5));
        assert!(!p2.state().ct_eq(p.state()));
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let endpoint =
            url("https://accounts.example.com/connect/authorize?tenant=nh&state=evil&Nonce=x");
        let (u, p) = AuthorizationRequest::new(
            endpoint,
            ISSUER,
            "nethealth-app",
            url("http://127.0.0.1:8080/cb"),
        )
        .unwrap()
        .scope("profile offline_access")
        .scope("patients.read")
        .prompt(Prompt::Login)
        .prompt(Prompt::Consent)
        .prompt(Prompt::Login)
        .login_hint("jo@example.com")
        .max_age(Duration::from_secs(600))
        .acr_value("mfa")
        .acr_value("pwd")
        .resource(url("https://api.example.com/fhir"))
        .unwrap()
        .resource(url("https://api.example.com/other"))
        .unwrap()
        .ui_locale("en-GB")
        .ui_locale("de")
        .param("display", "popup")
        .unwrap()
        .build_inner(
            State::new("state-123"),
            Nonce::new("nonce-456"),
            CodeVerifier::new(RFC_VERIFIER),
            UnixTime::from_secs(1_000),
        );
        let parsed = u.to_url();
        assert_eq!(parsed.scheme(), "https");
        assert_eq!(parsed.host_str(), Some("accounts.example.com"));
        assert_eq!(parsed.path(), "/connect/authorize");
        let want: Vec<(String, String)> = [
            ("tenant", "nh"),
            ("response_type", "code"),
            ("client_id", "nethealth-app"),
            ("redirect_uri", "http://127.0.0.1:8080/cb"),
            ("scope", "offline_access openid patients.read profile"),
            ("state", "state-123"),
            ("nonce", "nonce-456"),
            ("code_challenge", RFC_CHALLENGE),
            ("code_challenge_method", "S256"),
            ("prompt", "login consent"),
            ("login_hint", "jo@example.com"),
            ("max_age", "600"),
            ("acr_values", "mfa pwd"),
            ("resource", "https://api.example.com/fhir"),
            ("resource", "https://api.example.com/other"),
            ("ui_locales", "en-GB de"),
            ("display", "popup"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs(&u), want);
        assert_eq!(p.max_age(), Some(Duration::from_secs(600)));
        assert_eq!(
            p.requested_scopes(),
            &Scopes::parse("openid profile offline_access patients.read")
        );
        assert_eq!(p.issuer(), ISSUER);
        assert_eq!(p.client_id(), "nethealth-app");
        assert_eq!(p.created_at(), UnixTime::from_secs(1_000));
    }

    #[test]
    fn openid_is_always_requested_and_pkce_can_be_disabled() {
        let (u, p) = request().pkce(Pkce::Disabled).build_inner(
            State::new("s"),
            Nonce::new("n"),
            CodeVerifier::new(RFC_VERIFIER),
            UnixTime::EPOCH,
        );
        let q = pairs(&u);
        assert!(q.contains(&("scope".into(), "openid".into())));
        assert!(!q.iter().any(|(k, _)| k.starts_with("code_challenge")));
        assert!(p.code_verifier().is_none());
        assert!(request().requested_scopes().contains("openid"));
        assert_eq!(Pkce::default(), Pkce::S256);
    }

    #[test]
    fn offline_access_sends_prompt_consent_unless_a_prompt_was_chosen() {
        let prompt_of = |r: AuthorizationRequest| {
            let (u, _) = r.build_inner(
                State::new("s"),
                Nonce::new("n"),
                CodeVerifier::new(RFC_VERIFIER),
                UnixTime::EPOCH,
            );
            let q = pairs(&u);
            let prompts: Vec<String> = q
                .into_iter()
                .filter(|(k, _)| k == "prompt")
                .map(|(_, v)| v)
                .collect();
            prompts
        };
        let cases: [(AuthorizationRequest, &[&str]); 5] = [
            (request().scope("offline_access"), &["consent"]),
            (request().scope("profile offline_access"), &["consent"]),
            (request().scope("profile"), &[]),
            (
                request().scope("offline_access").prompt(Prompt::None),
                &["none"],
            ),
            (
                request().scope("offline_access").prompt(Prompt::Login),
                &["login"],
            ),
        ];
        for (i, (r, want)) in cases.into_iter().enumerate() {
            assert_eq!(prompt_of(r), want, "case {i}");
        }
    }

    #[test]
    fn builder_refusals() {
        for name in [
            "state",
            "STATE",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "client_id",
            "scope",
            "response_type",
            "response_mode",
            "request",
            "request_uri",
            "prompt",
            "max_age",
            "resource",
        ] {
            assert_eq!(
                request().param(name, "x").unwrap_err(),
                AuthorizeRequestError::ReservedParameter(name.into()),
                "{name}"
            );
        }
        assert_eq!(
            request().param("", "x").unwrap_err(),
            AuthorizeRequestError::EmptyParameterName
        );
        assert!(matches!(
            request().resource(url("https://api.example/#x")),
            Err(AuthorizeRequestError::ResourceHasFragment(_))
        ));
        let redirect = url("https://app.example/cb");
        assert!(matches!(
            AuthorizationRequest::new(
                url("http://accounts.example.com/authorize"),
                ISSUER,
                "c",
                redirect.clone()
            ),
            Err(AuthorizeRequestError::InsecureEndpoint(UrlError::NotHttps(
                _
            )))
        ));
        assert!(
            AuthorizationRequest::new(
                url("http://localhost:5000/authorize"),
                ISSUER,
                "c",
                redirect.clone()
            )
            .is_ok()
        );
        assert_eq!(
            AuthorizationRequest::new(
                url("https://a.example/authorize"),
                ISSUER,
                "",
                redirect.clone()
            )
            .unwrap_err(),
            AuthorizeRequestError::EmptyClientId
        );
        assert!(matches!(
            AuthorizationRequest::new(
                url("https://a.example/authorize"),
                ISSUER,
                "c",
                url("https://app.example/cb#f")
            ),
            Err(AuthorizeRequestError::RedirectUriHasFragment(_))
        ));
        let msg = request().param("State", "x").unwrap_err().to_string();
        assert!(msg.contains("builder's own method"), "{msg}");
    }

    #[test]
    fn from_metadata_checks_registered_redirects() {
        let md: ProviderMetadata = serde_json::from_value(serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://accounts.example.com/connect/authorize",
            "authorization_response_iss_parameter_supported": true,
        }))
        .unwrap();
        let client =
            ClientConfig::new("c", None).with_redirect_uris(vec![url("https://app.example/cb")]);
        assert!(
            AuthorizationRequest::from_metadata(&md, &client, url("https://app.example/cb"))
                .is_ok()
        );
        assert!(matches!(
            AuthorizationRequest::from_metadata(&md, &client, url("https://app.example/cb2")),
            Err(AuthorizeRequestError::UnregisteredRedirectUri(_))
        ));
        let unregistered = ClientConfig::new("c", None);
        let (_, p) =
            AuthorizationRequest::from_metadata(&md, &unregistered, url("https://app.example/any"))
                .unwrap()
                .build_inner(
                    State::new("s"),
                    Nonce::new("n"),
                    CodeVerifier::new("v"),
                    UnixTime::EPOCH,
                );
        assert_eq!(p.issuer(), ISSUER);
        assert_eq!(IssPolicy::from_metadata(&md), IssPolicy::Required);
        let mut md2 = md.clone();
        md2.authorization_response_iss_parameter_supported = false;
        assert_eq!(IssPolicy::from_metadata(&md2), IssPolicy::IfPresent);
    }

    #[test]
    fn pending_login_round_trips_and_redacts() {
        let p = pending();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("state-123") && !dbg.contains("nonce-456") && !dbg.contains(RFC_VERIFIER),
            "{dbg}"
        );
        let json = serde_json::to_string(&p).unwrap();
        let back: PendingLogin = serde_json::from_str(&json).unwrap();
        assert!(back.state().ct_eq(p.state()));
        assert!(back.nonce().ct_eq(p.nonce()));
        assert!(
            back.code_verifier()
                .unwrap()
                .ct_eq(p.code_verifier().unwrap())
        );
        assert_eq!(back.redirect_uri(), p.redirect_uri());
        assert_eq!(back.requested_scopes(), p.requested_scopes());
        assert_eq!(back.created_at(), p.created_at());
        // The stored form is one flat object, as it always was: a login stored by an earlier version still loads.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let want = [
            "client_id",
            "code_verifier",
            "created_at",
            "issuer",
            "max_age",
            "nonce",
            "redirect_uri",
            "scopes",
            "state",
        ];
        assert_eq!(keys, want);
        let earlier = serde_json::json!({
            "state": "s", "nonce": "n", "code_verifier": null, "redirect_uri": "https://app.example/cb",
            "issuer": ISSUER, "client_id": "app", "scopes": ["openid", "profile"], "max_age": 60, "created_at": 7,
            "request_uri_expires_at": 9,
        });
        let old: PendingLogin = serde_json::from_value(earlier.clone()).unwrap();
        assert_eq!(old.client_id(), "app");
        assert_eq!(old.max_age(), Some(Duration::from_secs(60)));
        assert_eq!(old.request_uri_expires_at(), Some(UnixTime::from_secs(9)));
        assert_eq!(serde_json::to_value(&old).unwrap(), earlier);
    }

    #[test]
    fn pending_login_expiry() {
        let p = pending(); // created at 1000
        let life = Duration::from_secs(600);
        assert_eq!(
            p.check_not_expired(UnixTime::from_secs(1_600), life),
            Ok(())
        );
        assert_eq!(p.check_not_expired(UnixTime::from_secs(10), life), Ok(()));
        assert_eq!(
            p.check_not_expired(UnixTime::from_secs(1_601), life),
            Err(CallbackError::Expired {
                age_secs: 601,
                lifetime_secs: 600
            })
        );
    }

    #[test]
    fn exchange_request_uses_pending_values() {
        let client = ClientConfig::new("nethealth-app", None);
        let r = pending()
            .code_exchange_request(
                &url("https://accounts.example.com/connect/token"),
                &client,
                &ClientAuth::new(crate::client::TokenAuthMethod::None),
                &AuthorizationCode::new("abc"),
                &RequestStamp::new_inner(UnixTime::from_secs(0), "jti"),
            )
            .unwrap();
        assert_eq!(
            std::str::from_utf8(r.body()).unwrap(),
            format!(
                "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback\
                 &code_verifier={RFC_VERIFIER}&client_id=nethealth-app"
            )
        );
    }

    // --- the callback ----------------------------------------------------------------------------------------

    fn cb(query: &str) -> Result<AuthorizationCode, CallbackError> {
        parse_callback(
            &pending(),
            &url(&format!("https://app.example/callback{query}")),
            IssPolicy::IfPresent,
        )
    }

    #[test]
    fn good_callbacks() {
        let code = cb("?code=abc%2Fdef&state=state-123&session_state=xyz").unwrap();
        assert_eq!(code.expose_secret(), "abc/def");
        let code = cb(&format!(
            "?code=c&state=state-123&iss={}",
            "https%3A%2F%2Faccounts.example.com"
        ))
        .unwrap();
        assert_eq!(code.expose_secret(), "c");
        let code = parse_callback(
            &pending(),
            &url("https://app.example/callback?iss=https://accounts.example.com&code=c&state=state-123"),
            IssPolicy::Required,
        )
        .unwrap();
        assert_eq!(code.expose_secret(), "c");
        // The default port written out is the same endpoint; a browser-added fragment is ignored.
        let code = parse_callback(
            &pending(),
            &url("https://APP.example:443/callback?code=c&state=state-123#_=_"),
            IssPolicy::IfPresent,
        )
        .unwrap();
        assert_eq!(code.expose_secret(), "c");
    }

    #[test]
    fn bad_callbacks() {
        let wrong_iss = CallbackError::IssMismatch {
            expected: ISSUER.into(),
            got: "https://evil.example".into(),
        };
        let cases: &[(&str, CallbackError)] = &[
            ("?code=c", CallbackError::MissingState),
            ("?code=c&state=", CallbackError::MissingState),
            ("?code=c&state=state-124", CallbackError::StateMismatch),
            ("?code=c&state=state-1234", CallbackError::StateMismatch),
            ("?code=c&state=STATE-123", CallbackError::StateMismatch),
            (
                "?code=c&state=state-123&state=state-123",
                CallbackError::RepeatedParameter("state".into()),
            ),
            (
                "?code=c&code=d&state=state-123",
                CallbackError::RepeatedParameter("code".into()),
            ),
            ("?state=state-123", CallbackError::MissingCode),
            ("?state=state-123&code=", CallbackError::MissingCode),
            (
                "?code=c&state=state-123&iss=https%3A%2F%2Fevil.example",
                wrong_iss.clone(),
            ),
            // An issuer differing only by a trailing slash is a different issuer.
            (
                "?code=c&state=state-123&iss=https%3A%2F%2Faccounts.example.com%2F",
                CallbackError::IssMismatch {
                    expected: ISSUER.into(),
                    got: "https://accounts.example.com/".into(),
                },
            ),
            // Error responses: their state is checked first.
            (
                "?error=access_denied&state=other",
                CallbackError::StateMismatch,
            ),
            ("?error=access_denied", CallbackError::MissingState),
            (
                "?error=access_denied&state=state-123&iss=https%3A%2F%2Fevil.example",
                wrong_iss,
            ),
            (
                "?error=access_denied&error_description=The+user+denied+access&state=state-123",
                CallbackError::AccessDenied {
                    description: Some("The user denied access".into()),
                },
            ),
            (
                "?error=access_denied&state=state-123",
                CallbackError::AccessDenied { description: None },
            ),
            // An error wins over a code sent alongside it.
            (
                "?error=access_denied&code=c&state=state-123",
                CallbackError::AccessDenied { description: None },
            ),
            (
                "?error=consent_required&state=state-123",
                CallbackError::InteractionRequired(OAuthError::new("consent_required", None, None)),
            ),
            (
                "?error=login_required&state=state-123",
                CallbackError::InteractionRequired(OAuthError::new("login_required", None, None)),
            ),
            (
                "?error=interaction_required&state=state-123",
                CallbackError::InteractionRequired(OAuthError::new(
                    "interaction_required",
                    None,
                    None,
                )),
            ),
            (
                "?error=account_selection_required&state=state-123",
                CallbackError::InteractionRequired(OAuthError::new(
                    "account_selection_required",
                    None,
                    None,
                )),
            ),
            (
                "?error=invalid_scope&error_description=bad&error_uri=https%3A%2F%2Fd.example&state=state-123",
                CallbackError::Provider(OAuthError::new(
                    "invalid_scope",
                    Some("bad"),
                    Some("https://d.example"),
                )),
            ),
            (
                "?error=made_up&state=state-123",
                CallbackError::Provider(OAuthError::new("made_up", None, None)),
            ),
            ("#code=c&state=state-123", CallbackError::ResponseInFragment),
            (
                "#error=access_denied&state=state-123",
                CallbackError::ResponseInFragment,
            ),
            ("", CallbackError::MissingState),
        ];
        for (query, want) in cases {
            assert_eq!(&cb(query).unwrap_err(), want, "callback {query}");
        }
    }

    #[test]
    fn iss_policy() {
        let good = url("https://app.example/callback?code=c&state=state-123");
        assert_eq!(
            parse_callback(&pending(), &good, IssPolicy::Required).unwrap_err(),
            CallbackError::MissingIss {
                expected: ISSUER.into()
            }
        );
        assert!(parse_callback(&pending(), &good, IssPolicy::IfPresent).is_ok());
        // Even an error response needs iss when the provider promises it.
        let err = url("https://app.example/callback?error=access_denied&state=state-123");
        assert!(matches!(
            parse_callback(&pending(), &err, IssPolicy::Required),
            Err(CallbackError::MissingIss { .. })
        ));
    }

    #[test]
    fn wrong_redirect() {
        for other in [
            "https://app.example/callback2?code=c&state=state-123",
            "https://app.example/?code=c&state=state-123",
            "http://app.example/callback?code=c&state=state-123",
            "https://app.example:8443/callback?code=c&state=state-123",
            "https://evil.example/callback?code=c&state=state-123",
        ] {
            match parse_callback(&pending(), &url(other), IssPolicy::IfPresent) {
                Err(CallbackError::WrongRedirect { expected, got }) => {
                    assert_eq!(expected, "https://app.example/callback");
                    assert!(
                        !got.contains("state-123") && !got.contains("code="),
                        "{got}"
                    );
                }
                res => panic!("{other}: unexpected {res:?}"),
            }
        }
    }

    #[test]
    fn callback_error_messages_say_what_to_do() {
        let msg = CallbackError::StateMismatch.to_string();
        assert_eq!(
            msg,
            "state mismatch: this callback does not belong to this login; start the login again"
        );
        let msg = CallbackError::AccessDenied {
            description: Some("no".into()),
        }
        .to_string();
        assert!(
            msg.contains("access_denied: no") && msg.contains("ask again"),
            "{msg}"
        );
        let msg = CallbackError::InteractionRequired(OAuthError::new("login_required", None, None))
            .to_string();
        assert!(msg.contains("without prompt=none"), "{msg}");
        // Long attacker-supplied values are cut.
        let long = "x".repeat(5_000);
        match cb(&format!(
            "?state=state-123&error=access_denied&error_description={long}"
        )) {
            Err(CallbackError::AccessDenied {
                description: Some(d),
            }) => assert!(d.len() < 600),
            other => panic!("unexpected {other:?}"),
        }
        match cb(&format!("?{long}=1&{long}=2")) {
            Err(CallbackError::RepeatedParameter(p)) => assert!(p.len() < 100),
            other => panic!("unexpected {other:?}"),
        }
    }
}
