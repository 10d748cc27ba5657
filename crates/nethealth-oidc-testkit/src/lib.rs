//! A local stand-in for the **Net Health Accounts site** — an OpenID Provider that behaves like IdentityServer3,
//! quirks included — and a sample Net Health-style resource API, for integration tests and demos.
//!
//! It is not a production server: users, clients, codes and tokens live in memory, and every knob that makes it
//! misbehave is a method on the running [`TestKit`].
//!
//! # Starting it
//!
//! [`TestKit::builder`] configures it; [`start`](TestKitBuilder::start) runs it on the caller's tokio runtime and
//! [`start_blocking`](TestKitBuilder::start_blocking) on a runtime of its own, in a background thread, for
//! blocking tests. Either way it listens on `127.0.0.1` on a random port, [`TestKit::issuer`] says where
//! (for example `http://127.0.0.1:49152`, or `http://127.0.0.1:49152/core` with
//! [`issuer_path`](TestKitBuilder::issuer_path)), and it stops when the [`TestKit`] is dropped.
//!
//! # A test that logs in
//!
//! ```
//! use nethealth_oidc_testkit::{Browser, ClientSpec, Consent, TestKit};
//!
//! let kit = TestKit::builder()
//!     .client(ClientSpec::confidential("my-app", "my-secret").redirect_uri("http://127.0.0.1:8080/cb"))
//!     .start_blocking()
//!     .expect("the test kit starts");
//!
//! // The client under test would build this URL from discovery; PKCE is required by default.
//! let verifier = "a".repeat(43);
//! let auth_url = format!(
//!     "{}?client_id=my-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&response_type=code\
//!      &scope=openid%20offline_access%20patients.read%20patients.write&state=xyz\
//!      &code_challenge={verifier}&code_challenge_method=plain",
//!     kit.authorization_endpoint()
//! );
//!
//! // The user logs in as alice/password and unticks patients.write.
//! let callback = Browser::new()
//!     .login(&auth_url, &Consent::grant(["offline_access", "patients.read"]))
//!     .expect("the login page works");
//! assert!(callback.starts_with("http://127.0.0.1:8080/cb?code="));
//! assert!(callback.contains("state=xyz"));
//!
//! // The client under test now exchanges the code at kit.token_endpoint() ...
//! assert_eq!(kit.requests(nethealth_oidc_testkit::Endpoint::Authorize), 1);
//! assert_eq!(kit.transcript(), ["GET /connect/authorize", "POST /connect/consent"]);
//! ```
//!
//! In an async test, start it with `TestKit::builder().start().await` and log in with
//! [`Browser::login_async`], which does the blocking work off the runtime's threads.
//!
//! # What it serves
//!
//! Under the issuer: `/.well-known/openid-configuration`, `/.well-known/jwks`, `/connect/authorize` (answers the
//! login and consent page), `/connect/consent` (where that page posts), `/connect/token` (`authorization_code`,
//! `refresh_token`, `client_credentials`; client authentication `client_secret_basic` with form-urlencoded
//! credentials, `client_secret_post`, or none for public clients), `/connect/userinfo`, `/connect/revocation`
//! (RFC 7009), `/connect/introspect` (RFC 7662), `/connect/endsession`, the device flow (RFC 8628:
//! `/connect/deviceauthorization`, the `/connect/device` page, which [`Browser::approve_device`] answers, and the
//! `urn:ietf:params:oauth:grant-type:device_code` grant), and, when
//! [enabled](TestKitBuilder::dynamic_registration), RFC 7591 `/connect/register` (a `private_key_jwt` client
//! registers its public keys as `jwks`, against which its assertions are then checked; `jwks_uri` is refused).
//!
//! At the site root: Net Health's `/api/Clients/Register` (also under the issuer path), which takes RFC 7591
//! fields in snake_case or PascalCase and answers in ASP.NET style (`{"ClientId": ..., "ClientSecret": ...}`,
//! errors `{"Message": ...}` with 400), and the sample API `/api/patients`: `GET` needs `patients.read`, `POST`
//! needs `patients.write`; a missing token gets 401 with `WWW-Authenticate: Bearer realm="Net Health"`, a bad,
//! expired or revoked one 401 with `error="invalid_token"`, a missing scope 403 with
//! `error="insufficient_scope", scope="patients.write"`.
//!
//! The pre-seeded user is `alice` / `password` ([`User::alice`]). Scopes: [`SCOPES`].
//!
//! # IdentityServer3 mode
//!
//! On by default ([`identity_server3`](TestKitBuilder::identity_server3)). As IdentityServer3 does: the token
//! response has no `scope`; the JWT access token (audience `{issuer}/resources`) lists its scopes as a JSON array
//! in its `scope` claim; JWK `n` and `e` are padded standard base64; `invalid_client` is answered with 400; a
//! refresh returns no new ID token; and the `scope` parameter of a refresh is ignored. Switched off (the
//! "oidc-standard" mode): `scope` in the token response, a space-separated `scope` claim, base64url JWKs,
//! `invalid_client` with 401, an ID token on refresh, and down-scoping on refresh.
//!
//! Token policy, as IdentityServer3's defaults: access tokens 3600 s, ID tokens and codes 300 s, refresh tokens
//! 30 days absolute. Codes are single-use (a failed exchange uses them up too). A refresh token is issued only
//! if `offline_access` was granted. [`RefreshTokenUsage::OneTimeOnly`] rotates refresh tokens (the used one
//! stops working), [`RefreshTokenUsage::ReUse`] returns the same one. Every refresh failure is `invalid_grant`.
//! PKCE is per client ([`ClientSpec::require_pkce`]): required and checked (`S256` or `plain`, `plain` when no
//! method is given), or not expected, when a `code_verifier` gets `invalid_grant` "Unexpected code_verifier".
//!
//! # Fault knobs
//!
//! All are methods of the running [`TestKit`], safe to call from any thread:
//!
//! | knob | effect |
//! | --- | --- |
//! | [`rotate_keys`](TestKit::rotate_keys) | a new key signs from now on and is published; the previous stays published |
//! | [`rotate_keys_unpublished`](TestKit::rotate_keys_unpublished) | a new key signs, but the JWKS shows it only after [`publish_keys`](TestKit::publish_keys) or the next rotation |
//! | [`retire_old_keys`](TestKit::retire_old_keys) | the JWKS keeps only the signing key |
//! | [`set_access_token_lifetime`](TestKit::set_access_token_lifetime), [`set_refresh_token_lifetime`](TestKit::set_refresh_token_lifetime), [`set_id_token_lifetime`](TestKit::set_id_token_lifetime), [`set_code_lifetime`](TestKit::set_code_lifetime) | short lifetimes (for what is issued next) |
//! | [`set_device_interval`](TestKit::set_device_interval) | the device flow's polling interval |
//! | [`advance_clock`](TestKit::advance_clock) | moves the site's clock forward: what was issued expires without sleeping |
//! | [`fail_next`](TestKit::fail_next)`(endpoint, n, fault)` | the next `n` answers of `endpoint` carry a [`Fault`]: a 5xx, a 429 with `Retry-After`, a delay, a malformed, truncated or huge (streamed) body |
//! | [`fail_always`](TestKit::fail_always), [`clear_faults`](TestKit::clear_faults) | a standing fault, and back to normal |
//! | [`set_discovery_issuer`](TestKit::set_discovery_issuer) | discovery names another issuer |
//! | [`set_callback_iss`](TestKit::set_callback_iss) | the callback carries this `iss` (RFC 9207) |
//! | [`set_prompt_none`](TestKit::set_prompt_none) | how `prompt=none` is answered (`login_required`, `consent_required`) |
//! | [`set_launch_context`](TestKit::set_launch_context) | extra fields (SMART `patient`, ...) in code-exchange token responses only |
//! | [`requests`](TestKit::requests), [`transcript`](TestKit::transcript), [`clear_transcript`](TestKit::clear_transcript) | per-endpoint counters, and the ordered `"METHOD /path"` list of requests |
//!
//! ```
//! use std::time::Duration;
//! use nethealth_oidc_testkit::{Endpoint, Fault, TestKit};
//!
//! let kit = TestKit::builder().start_blocking().expect("starts");
//! kit.fail_next(Endpoint::Token, 1, Fault::TooManyRequests { retry_after_secs: 2 });
//! kit.fail_next(Endpoint::Discovery, 2, Fault::Status(503));
//! kit.fail_next(Endpoint::Jwks, 1, Fault::Huge { bytes: 100 << 20, declare_length: false });
//! kit.set_access_token_lifetime(Duration::from_secs(1));
//! let new_kid = kit.rotate_keys_unpublished();
//! assert!(!kit.published_kids().contains(&new_kid));
//! ```

mod api;
mod browser;
mod device;
mod keys;
mod model;
mod pages;
mod par_dpop;
mod provider;
mod registration;
mod server;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::browser::{Browser, Consent, LoginError};
pub use crate::keys::KeyError;
pub use crate::model::{ClientSpec, Endpoint, Fault, PromptNone, RefreshTokenUsage, SCOPES, User};
pub use crate::par_dpop::DpopNonce;

use crate::keys::SigningKey;
use crate::model::Lifetimes;
use crate::state::{Config, Shared};

/// Why the test kit did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The issuer path is not of the form `/segment[/segment...]`.
    #[error(
        "invalid issuer path {0:?}: use a path such as \"/core\" (leading slash, no trailing slash, no query)"
    )]
    IssuerPath(String),
    /// The listening socket could not be opened.
    #[error(
        "could not listen on 127.0.0.1:{port} ({reason}): pick another port, or 0 for a random one"
    )]
    Bind {
        /// The port asked for.
        port: u16,
        /// The system's reason.
        reason: String,
    },
    /// The background runtime could not be started.
    #[error(
        "could not start the test kit's tokio runtime ({0}): check the process's thread and file limits"
    )]
    Runtime(String),
    /// The signing key could not be generated.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Configures a [`TestKit`]. Made by [`TestKit::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TestKitBuilder {
    port: u16,
    issuer_path: String,
    identity_server3: bool,
    iss_parameter: bool,
    dynamic_registration: bool,
    registration_token: Option<String>,
    registered_require_pkce: bool,
    registered_refresh_usage: RefreshTokenUsage,
    assertion_algs: Vec<String>,
    lifetimes: Lifetimes,
    users: Vec<User>,
    clients: Vec<ClientSpec>,
}

impl Default for TestKitBuilder {
    fn default() -> Self {
        TestKitBuilder {
            port: 0,
            issuer_path: String::new(),
            identity_server3: true,
            iss_parameter: false,
            dynamic_registration: false,
            registration_token: None,
            registered_require_pkce: true,
            registered_refresh_usage: RefreshTokenUsage::OneTimeOnly,
            assertion_algs: ["RS256", "RS384", "PS256", "ES256", "ES384", "HS256"]
                .map(String::from)
                .to_vec(),
            lifetimes: Lifetimes::default(),
            users: vec![User::alice()],
            clients: Vec::new(),
        }
    }
}

impl TestKitBuilder {
    /// The port to listen on (default 0: a random free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serves the provider under a path, as IdentityServer3 often is (`/core`): the issuer becomes
    /// `http://127.0.0.1:PORT/core`.
    pub fn issuer_path(mut self, path: impl Into<String>) -> Self {
        self.issuer_path = path.into();
        self
    }

    /// IdentityServer3 mode (default `true`); `false` gives the "oidc-standard" mode. See the crate docs.
    pub fn identity_server3(mut self, on: bool) -> Self {
        self.identity_server3 = on;
        self
    }

    /// RFC 9207: put `iss` on the authorization callback and advertise
    /// `authorization_response_iss_parameter_supported` (default `false`, as IdentityServer3).
    pub fn iss_parameter(mut self, on: bool) -> Self {
        self.iss_parameter = on;
        self
    }

    /// Serves RFC 7591 `/connect/register` and advertises it as `registration_endpoint` (default `false`).
    pub fn dynamic_registration(mut self, on: bool) -> Self {
        self.dynamic_registration = on;
        self
    }

    /// Requires `Authorization: Bearer {token}` on both registration endpoints (default: registration is open).
    pub fn registration_token(mut self, token: impl Into<String>) -> Self {
        self.registration_token = Some(token.into());
        self
    }

    /// Whether clients registered over HTTP require PKCE (default `true`, flow `AuthorizationCodeWithProofKey`;
    /// `false` gives `AuthorizationCode`). A registration request may override it with `"require_pkce": bool`.
    pub fn registered_clients_require_pkce(mut self, require: bool) -> Self {
        self.registered_require_pkce = require;
        self
    }

    /// The refresh-token usage of clients registered over HTTP (default OneTimeOnly).
    pub fn registered_clients_refresh_usage(mut self, usage: RefreshTokenUsage) -> Self {
        self.registered_refresh_usage = usage;
        self
    }

    /// The algorithms `private_key_jwt` and `client_secret_jwt` assertions may be signed with, advertised as
    /// `token_endpoint_auth_signing_alg_values_supported` (default RS256, RS384, PS256, ES256, ES384, HS256).
    pub fn assertion_algorithms<I, S>(mut self, algs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.assertion_algs = algs.into_iter().map(Into::into).collect();
        self
    }

    /// Access-token lifetime (default 3600 s).
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.access = lifetime;
        self
    }

    /// Absolute refresh-token lifetime (default 2592000 s, 30 days).
    pub fn refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.refresh = lifetime;
        self
    }

    /// ID-token lifetime (default 300 s).
    pub fn id_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.id_token = lifetime;
        self
    }

    /// Authorization-code lifetime (default 300 s).
    pub fn code_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.code = lifetime;
        self
    }

    /// Adds a user (alice is always there unless replaced by a user with the same username).
    pub fn user(mut self, user: User) -> Self {
        self.users.retain(|u| u.username != user.username);
        self.users.push(user);
        self
    }

    /// Adds a client.
    pub fn client(mut self, client: ClientSpec) -> Self {
        self.clients.push(client);
        self
    }

    fn check_issuer_path(&self) -> Result<(), StartError> {
        let p = &self.issuer_path;
        let ok = p.is_empty()
            || (p.starts_with('/')
                && !p.ends_with('/')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c))
                && !p.contains("//"));
        if ok {
            Ok(())
        } else {
            Err(StartError::IssuerPath(p.clone()))
        }
    }

    fn shared(self, addr: SocketAddr, key: SigningKey) -> Arc<Shared> {
        let origin = format!("http://{addr}");
        let config = Config {
            issuer: format!("{origin}{}", self.issuer_path),
            origin,
            issuer_path: self.issuer_path,
            identity_server3: self.identity_server3,
            iss_parameter: self.iss_parameter,
            dynamic_registration: self.dynamic_registration,
            registration_token: self.registration_token,
            registered_require_pkce: self.registered_require_pkce,
            registered_refresh_usage: self.registered_refresh_usage,
            assertion_algs: self.assertion_algs,
        };
        Arc::new(Shared::new(
            config,
            key,
            self.lifetimes,
            self.users,
            self.clients,
        ))
    }

    /// Starts the site on the current tokio runtime. It stops when the [`TestKit`] is dropped.
    pub async fn start(self) -> Result<TestKit, StartError> {
        self.check_issuer_path()?;
        let port = self.port;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| StartError::Bind {
                port,
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| StartError::Bind {
            port,
            reason: e.to_string(),
        })?;
        let key = SigningKey::generate()?;
        let shared = self.shared(addr, key);
        let (shutdown, signal) = tokio::sync::watch::channel(());
        tokio::spawn(server::serve(listener, Arc::clone(&shared), signal));
        Ok(TestKit {
            shared,
            addr,
            shutdown: Some(shutdown),
            thread: None,
        })
    }

    /// Starts the site on its own single-threaded tokio runtime in a background thread; for tests without a
    /// runtime. Dropping the [`TestKit`] stops the server and joins the thread.
    pub fn start_blocking(self) -> Result<TestKit, StartError> {
        self.check_issuer_path()?;
        let port = self.port;
        let bind_error = |e: std::io::Error| StartError::Bind {
            port,
            reason: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let key = SigningKey::generate()?;
        let shared = self.shared(addr, key);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        let (shutdown, signal) = tokio::sync::watch::channel(());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let server_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("nethealth-accounts-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let _ = ready_tx.send(Ok(()));
                            server::serve(listener, server_shared, signal).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        let mut kit = TestKit {
            shared,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(kit),
            Ok(Err(reason)) => Err(StartError::Bind { port, reason }),
            Err(_) => {
                kit.stop();
                Err(StartError::Runtime("the server thread ended early".into()))
            }
        }
    }
}

/// A running local Accounts site. Dropping it stops the server.
///
/// Every method takes `&self` and is safe to call from any thread while requests are being served.
#[derive(Debug)]
pub struct TestKit {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::watch::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestKit {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestKit {
    /// Starts configuring a test kit.
    pub fn builder() -> TestKitBuilder {
        TestKitBuilder::default()
    }

    fn stop(&mut self) {
        // Dropping the sender is the shutdown signal.
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    // --- Where things are -------------------------------------------------------------------------------------

    /// The issuer, e.g. `http://127.0.0.1:49152` or `http://127.0.0.1:49152/core`.
    pub fn issuer(&self) -> &str {
        &self.shared.config.issuer
    }

    /// The socket address the site listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site root, `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> &str {
        &self.shared.config.origin
    }

    /// The absolute URL of an endpoint.
    pub fn url(&self, endpoint: Endpoint) -> String {
        self.shared.config.url(endpoint)
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        self.url(Endpoint::Discovery)
    }

    /// `{issuer}/connect/authorize`.
    pub fn authorization_endpoint(&self) -> String {
        self.url(Endpoint::Authorize)
    }

    /// `{issuer}/connect/token`.
    pub fn token_endpoint(&self) -> String {
        self.url(Endpoint::Token)
    }

    /// Net Health's registration action, `{origin}/api/Clients/Register`.
    pub fn register_url(&self) -> String {
        self.url(Endpoint::Register)
    }

    /// The sample API, `{origin}/api/patients`.
    pub fn api_url(&self) -> String {
        self.url(Endpoint::Api)
    }

    /// The access tokens' audience, `{issuer}/resources`.
    pub fn resources_audience(&self) -> String {
        self.shared.config.resources_audience()
    }

    // --- Clients and users ------------------------------------------------------------------------------------

    /// Adds (or replaces) a client.
    pub fn add_client(&self, client: ClientSpec) {
        self.shared
            .lock()
            .clients
            .insert(client.client_id.clone(), client);
    }

    /// The client with this id, as registered (over HTTP or directly).
    pub fn client(&self, client_id: &str) -> Option<ClientSpec> {
        self.shared.lock().clients.get(client_id).cloned()
    }

    /// Adds (or replaces, by username) a user.
    pub fn add_user(&self, user: User) {
        let mut state = self.shared.lock();
        state.users.retain(|u| u.username != user.username);
        state.users.push(user);
    }

    // --- Keys -------------------------------------------------------------------------------------------------

    /// A new key signs from now on and is published; the previous signing key stays published, older ones go.
    /// Returns the new `kid`.
    pub fn rotate_keys(&self) -> String {
        let key = self.new_key();
        let kid = key.kid.clone();
        self.shared.lock().keys.rotate(key);
        kid
    }

    /// A new key signs from now on but is not in the JWKS until [`publish_keys`](Self::publish_keys) or the
    /// next rotation. Tokens then carry a `kid` the client cannot find. Returns the new `kid`.
    pub fn rotate_keys_unpublished(&self) -> String {
        let key = self.new_key();
        let kid = key.kid.clone();
        self.shared.lock().keys.rotate_unpublished(key);
        kid
    }

    /// Publishes the signing key, if it is not yet.
    pub fn publish_keys(&self) {
        self.shared.lock().keys.publish();
    }

    /// Removes every key but the signing key from the JWKS (tokens signed before stop validating at the API).
    pub fn retire_old_keys(&self) {
        self.shared.lock().keys.retire_old();
    }

    /// The `kid` new tokens are signed with.
    pub fn signing_kid(&self) -> String {
        self.shared.lock().keys.signing.kid.clone()
    }

    /// The `kid`s in the JWKS, oldest first.
    pub fn published_kids(&self) -> Vec<String> {
        self.shared
            .lock()
            .keys
            .published
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    fn new_key(&self) -> SigningKey {
        // Generation only fails if aws-lc-rs is broken, and start() already generated one key successfully.
        SigningKey::generate()
            .expect("aws-lc-rs generated a key at start, so it can generate another")
    }

    // --- Time -------------------------------------------------------------------------------------------------

    /// Lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().lifetimes.access = lifetime;
    }

    /// Absolute lifetime of refresh tokens issued from now on (a rotated token keeps its line's lifetime).
    pub fn set_refresh_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().lifetimes.refresh = lifetime;
    }

    /// Lifetime of ID tokens issued from now on.
    pub fn set_id_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().lifetimes.id_token = lifetime;
    }

    /// Lifetime of authorization codes issued from now on.
    pub fn set_code_lifetime(&self, lifetime: Duration) {
        self.shared.lock().lifetimes.code = lifetime;
    }

    /// The polling interval handed to devices from now on (RFC 8628; default 5 s, whole seconds, at least 1).
    pub fn set_device_interval(&self, interval: Duration) {
        self.shared.lock().device_interval = interval.as_secs().max(1);
    }

    /// Requires pushed authorization requests (RFC 9126): discovery says so, and `/connect/authorize` without a
    /// `request_uri` shows an error page.
    pub fn set_require_par(&self, require: bool) {
        self.shared.lock().par_dpop.require_par = require;
    }

    /// How long a pushed request's `request_uri` stays usable from now on (default 60 s, whole seconds, at least 1).
    pub fn set_par_lifetime(&self, lifetime: Duration) {
        self.shared.lock().par_dpop.par_lifetime = lifetime.as_secs().max(1);
    }

    /// When DPoP proofs must carry a server nonce (RFC 9449 §8, §9), at the token endpoint and the API.
    pub fn set_dpop_nonce(&self, mode: DpopNonce) {
        self.shared.lock().par_dpop.nonce_mode = mode;
    }

    /// Makes the site expect DPoP proofs to name `origin` (e.g. `https://accounts.example.com`) instead of its own
    /// loopback origin, as a site behind a proxy does; `None` restores its own.
    pub fn set_dpop_public_origin(&self, origin: Option<&str>) {
        self.shared.lock().par_dpop.public_origin = origin.map(str::to_owned);
    }

    /// Moves the site's clock forward: tokens and codes expire as if `by` had passed. Tokens issued afterwards
    /// carry the shifted time in `iat`/`exp`.
    pub fn advance_clock(&self, by: Duration) {
        let mut state = self.shared.lock();
        state.clock_offset = state.clock_offset.saturating_add(by);
    }

    /// The site's clock, Unix seconds.
    pub fn now(&self) -> u64 {
        self.shared.lock().now()
    }

    // --- Faults -----------------------------------------------------------------------------------------------

    /// The next `n` answers of `endpoint` carry `fault` (queued after faults already queued).
    pub fn fail_next(&self, endpoint: Endpoint, n: usize, fault: Fault) {
        let mut state = self.shared.lock();
        let queue = state.faults.entry(endpoint).or_default();
        queue.extend(std::iter::repeat_n(fault, n));
    }

    /// Every answer of `endpoint` carries `fault` (after queued faults) until [`clear_faults`](Self::clear_faults).
    pub fn fail_always(&self, endpoint: Endpoint, fault: Fault) {
        self.shared.lock().standing_faults.insert(endpoint, fault);
    }

    /// Removes every queued and standing fault.
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.faults.clear();
        state.standing_faults.clear();
    }

    /// Makes discovery name this issuer instead of the real one (`None` restores it).
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        self.shared.lock().discovery_issuer = issuer.map(str::to_owned);
    }

    /// Puts this `iss` on authorization callbacks, even when the `iss` parameter is off (`None` restores it).
    pub fn set_callback_iss(&self, iss: Option<&str>) {
        self.shared.lock().callback_iss = iss.map(str::to_owned);
    }

    /// How `prompt=none` is answered.
    pub fn set_prompt_none(&self, answer: PromptNone) {
        self.shared.lock().prompt_none = answer;
    }

    /// Adds these fields (a SMART launch context: `patient`, `encounter`, `fhirContext`, ...) to the token
    /// responses of code exchanges; refresh responses do not carry them, as at SMART servers. Empty: none.
    pub fn set_launch_context(&self, fields: serde_json::Map<String, serde_json::Value>) {
        self.shared.lock().launch_context = fields;
    }

    // --- Observing --------------------------------------------------------------------------------------------

    /// How many requests reached `endpoint` (faulted ones included) since start or
    /// [`clear_transcript`](Self::clear_transcript).
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        self.shared
            .lock()
            .counts
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Every request so far, in order, as `"METHOD /path"`: provider paths relative to the issuer
    /// (`"POST /connect/token"`), other paths from the site root (`"GET /api/patients"`), no query strings.
    pub fn transcript(&self) -> Vec<String> {
        self.shared.lock().transcript.clone()
    }

    /// Clears the transcript and the counters.
    pub fn clear_transcript(&self) {
        let mut state = self.shared.lock();
        state.transcript.clear();
        state.counts.clear();
    }

    /// How many refresh tokens are live (not used up under OneTimeOnly, revoked or expired).
    pub fn live_refresh_tokens(&self) -> usize {
        let state = self.shared.lock();
        let now = state.now();
        state
            .refresh_tokens
            .values()
            .filter(|g| g.expires_at() > now)
            .count()
    }
}
