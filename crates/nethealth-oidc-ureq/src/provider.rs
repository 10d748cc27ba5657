//! [`Provider`]: a discovered OpenID Provider with its signing keys cached, and [`Client`]: one registered client
//! of it, which logs users in.

use std::sync::{Arc, Mutex};

use nethealth_oidc_core::authorize::{AuthorizationRequest, AuthorizationUrl, PendingLogin};
use nethealth_oidc_core::client_auth::RequestStamp;
use nethealth_oidc_core::context::{ClientContext, ClientOptions, Grant};
use nethealth_oidc_core::discovery::ProviderMetadata;
use nethealth_oidc_core::dpop::DpopKey;
use nethealth_oidc_core::exchange::{self, DpopSend, Flow, KeyCheck, Refetch, SharedKeys, Step};
use nethealth_oidc_core::jwks::{JwkSet, JwksRefreshPolicy, KeyCache};
use nethealth_oidc_core::registration::{ClientMetadata, NetHealthRegistration, RegisteredClient};
use nethealth_oidc_core::revocation::TokenRef;
use nethealth_oidc_core::secret::{AccessToken, RegistrationAccessToken};
use nethealth_oidc_core::userinfo::UserInfo;
use nethealth_oidc_core::{ClientConfig, Clock, Error, Scopes};
use url::Url;

use crate::HttpClient;
pub use nethealth_oidc_store::SystemClock;

/// A discovered OpenID Provider: its metadata, and its signing keys, cached. Cheap to clone; `Send + Sync`.
///
/// An ID token signed with a key the cache does not know makes the provider fetch its JWKS again, at most once
/// per [`JwksRefreshPolicy::min_interval`], so a flood of tokens with made-up key ids cannot hammer the provider.
/// The fetch at discovery does not count: a key rotated right after start is fetched at once. A failed fetch keeps
/// the last good keys.
#[derive(Debug, Clone)]
pub struct Provider {
    inner: Arc<ProviderInner>,
}

#[derive(Debug)]
struct ProviderInner {
    http: HttpClient,
    metadata: ProviderMetadata,
    keys: SharedKeys,
    refetch: Mutex<()>,
    clock: Arc<dyn Clock>,
}

impl Provider {
    /// Discovers `issuer` (its `/.well-known/openid-configuration`) and fetches its keys.
    pub fn discover(http: HttpClient, issuer: &str) -> Result<Provider, Error> {
        Provider::discover_with_clock(http, issuer, Arc::new(SystemClock))
    }

    /// [`discover`](Self::discover) with another clock (tests drive expiry with a
    /// [`ManualClock`](nethealth_oidc_core::ManualClock)).
    #[tracing::instrument(name = "nethealth_oidc.discovery", skip_all, fields(issuer = issuer))]
    pub fn discover_with_clock(
        http: HttpClient,
        issuer: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Provider, Error> {
        let flow = exchange::discover(issuer)?;
        let (metadata, keys) = drive(&http, clock.as_ref(), None, flow)?;
        Provider::from_parts(http, metadata, keys, clock)
    }

    /// A provider from metadata and keys already at hand (cached by the application, or made by a test or a
    /// bench): nothing is fetched. The endpoints are checked as discovery checks them.
    pub fn from_parts(
        http: HttpClient,
        metadata: ProviderMetadata,
        keys: JwkSet,
        clock: Arc<dyn Clock>,
    ) -> Result<Provider, Error> {
        metadata.check_endpoints()?;
        let policy = JwksRefreshPolicy::default();
        let keys = KeyCache::new(keys, metadata.jwks_uri.clone(), policy);
        Ok(Provider {
            inner: Arc::new(ProviderInner {
                http,
                metadata,
                keys: SharedKeys::new(keys),
                refetch: Mutex::new(()),
                clock,
            }),
        })
    }

    /// The provider's metadata.
    pub fn metadata(&self) -> &ProviderMetadata {
        &self.inner.metadata
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.metadata.issuer
    }

    /// Reads SMART on FHIR's `{fhir_base}/.well-known/smart-configuration` (a FHIR server's base URL; often the
    /// issuer).
    pub fn smart_configuration(
        &self,
        fhir_base: &Url,
    ) -> Result<nethealth_oidc_core::smart::SmartConfiguration, Error> {
        self.drive(exchange::smart_configuration(fhir_base))
    }

    /// The HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The signing keys as cached now.
    pub fn keys(&self) -> Arc<JwkSet> {
        self.inner.keys.keys()
    }

    /// Fetches the JWKS again if the rate limit allows; returns whether the keys changed. Concurrent callers
    /// share one fetch.
    pub fn refresh_keys(&self) -> Result<bool, Error> {
        let (_, generation) = self.inner.keys.snapshot();
        self.drive(Refetch::asked(&self.inner.keys, generation))
    }

    /// Runs `check` with the cached keys; if it failed for want of a key (an unknown key id), fetches them
    /// (rate-limited, one fetch for concurrent callers) and runs it once more.
    pub(crate) fn with_keys<T>(
        &self,
        check: impl Fn(&JwkSet) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.drive(KeyCheck::new(&self.inner.keys, check))
    }

    /// Runs `flow` over this provider's HTTP client, clock and key-refetch lock.
    pub(crate) fn drive<F: Flow>(&self, flow: F) -> Result<F::Output, Error> {
        let inner = &*self.inner;
        let refetch = Some((&inner.refetch, self.issuer()));
        drive(&inner.http, inner.clock.as_ref(), refetch, flow)
    }

    /// Registers a client by RFC 7591 dynamic registration, with an optional initial access token.
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "register"))]
    pub fn register(
        &self,
        metadata: &ClientMetadata,
        initial_access_token: Option<&RegistrationAccessToken>,
    ) -> Result<RegisteredClient, Error> {
        let endpoint = self.inner.metadata.registration_endpoint.as_ref();
        self.drive(exchange::register::dynamic(
            endpoint,
            metadata,
            initial_access_token,
        ))
    }

    /// Registers a client at the Net Health Accounts site's `/api/Clients/Register` action.
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "register_net_health"))]
    pub fn register_net_health(
        &self,
        registration: &NetHealthRegistration,
        metadata: &ClientMetadata,
        bearer: Option<&RegistrationAccessToken>,
    ) -> Result<RegisteredClient, Error> {
        let issuer = self.issuer();
        self.drive(exchange::register::net_health(
            registration,
            issuer,
            metadata,
            bearer,
        ))
    }

    /// A client of this provider.
    pub fn client(&self, config: ClientConfig, options: ClientOptions) -> Result<Client, Error> {
        let context = ClientContext::new(self.inner.metadata.clone(), config, options)?;
        Ok(Client {
            provider: self.clone(),
            context: Arc::new(context),
        })
    }
}

/// The one driver of every [`Flow`]: sends what the flow asks for, holds the key-refetch lock (and its
/// `nethealth_oidc.jwks` span) while the flow asks for it, and returns the flow's result. A transport error ends
/// the flow.
fn drive<F: Flow>(
    http: &HttpClient,
    clock: &dyn Clock,
    refetch: Option<(&Mutex<()>, &str)>,
    mut flow: F,
) -> Result<F::Output, Error> {
    let mut held = None;
    loop {
        match flow.poll(clock.now(), &mut rand::rng())? {
            Step::Send(exchange) => {
                tracing::debug!(endpoint = %exchange.endpoint, why = exchange.why, "sending");
                let _entered = held
                    .as_ref()
                    .map(|(_, span): &(_, tracing::Span)| span.enter());
                let response = http.send(exchange.endpoint, exchange.kind, exchange.request)?;
                flow.handle_response(response);
            }
            Step::LockKeys { generation } => {
                let (lock, issuer) = refetch.ok_or(Error::Unsupported("JWKS refetch"))?;
                let span = tracing::info_span!("nethealth_oidc.jwks", issuer = %issuer, generation);
                let guard = span.in_scope(|| lock.lock().unwrap_or_else(|p| p.into_inner()));
                held = Some((guard, span));
            }
            Step::UnlockKeys => held = None,
            Step::Done(output) => return Ok(output),
        }
    }
}

/// One registered client of a [`Provider`]: starts and finishes logins, and gets client-credentials tokens.
/// Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Client {
    provider: Provider,
    context: Arc<ClientContext>,
}

impl Client {
    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The sans-IO context (requests and checks).
    pub fn context(&self) -> &Arc<ClientContext> {
        &self.context
    }

    /// A fresh [`RequestStamp`] (the time and a random `jti`) for one request that authenticates the client.
    pub fn stamp(&self) -> RequestStamp {
        RequestStamp::draw(&mut rand::rng(), self.provider.clock().now())
    }

    /// An authorization request for `scopes`, to customise (prompt, login_hint, max_age, ...) and then pass to
    /// [`begin_login_with`](Self::begin_login_with).
    pub fn login_request(&self, scopes: &Scopes) -> Result<AuthorizationRequest, Error> {
        self.context.authorization_request(scopes)
    }

    /// Starts a login for `scopes`: the URL to send the browser to, and the [`PendingLogin`] to keep in the user's
    /// session until the callback.
    ///
    /// With `offline_access` among `scopes`, the request carries `prompt=consent`: OpenID Connect Core §11 lets a
    /// provider ignore `offline_access` otherwise, and then no refresh token comes back and the grant reads as
    /// partial. To send another prompt, build the request with [`login_request`](Self::login_request), set it with
    /// `.prompt(...)`, and pass it to [`begin_login_with`](Self::begin_login_with).
    ///
    /// A client whose logins are pushed (the provider requires PAR, or [`ClientOptions::with_par`]) gets
    /// [`AuthorizeRequestError::MustPush`](nethealth_oidc_core::authorize::AuthorizeRequestError::MustPush): use
    /// [`start_login`](Self::start_login), which works with every provider.
    #[tracing::instrument(name = "nethealth_oidc.login.begin", skip_all, fields(issuer = %self.provider.issuer()))]
    pub fn begin_login(&self, scopes: &Scopes) -> Result<(AuthorizationUrl, PendingLogin), Error> {
        let now = self.provider.clock().now();
        self.context.begin_login(scopes, &mut rand::rng(), now)
    }

    /// Starts a login from a customised request, as a plain authorization URL (never pushed).
    #[tracing::instrument(name = "nethealth_oidc.login.begin", skip_all, fields(issuer = %self.provider.issuer()))]
    pub fn begin_login_with(
        &self,
        request: AuthorizationRequest,
    ) -> (AuthorizationUrl, PendingLogin) {
        request.build(&mut rand::rng(), self.provider.clock().now())
    }

    /// Starts a login for `scopes`, pushing it first (RFC 9126) when the provider requires it or the client asked
    /// for it: then the browser's URL carries only `client_id` and `request_uri`. Otherwise as
    /// [`begin_login`](Self::begin_login).
    pub fn start_login(&self, scopes: &Scopes) -> Result<(AuthorizationUrl, PendingLogin), Error> {
        self.provider.drive(self.context.start_login_for(scopes)?)
    }

    /// [`start_login`](Self::start_login) from a customised request.
    pub fn start_login_with(
        &self,
        request: AuthorizationRequest,
    ) -> Result<(AuthorizationUrl, PendingLogin), Error> {
        self.provider.drive(self.context.start_login(request))
    }

    /// Sends a token-endpoint request, with a DPoP proof when `key` is given, answering one `use_dpop_nonce`
    /// challenge with exactly one more request.
    pub(crate) fn send_token_request(
        &self,
        request: http::Request<Vec<u8>>,
        key: Option<&DpopKey>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        let flow = DpopSend::token(&self.context, request, key.cloned());
        self.provider.drive(flow)
    }

    /// Finishes a login: checks the callback URL the browser came back to, exchanges the code, verifies the ID
    /// token, and returns the grant with its granted scopes. The user's refusal is an error for which
    /// [`Error::is_consent_denied`] is true; a partial grant is a success for which [`Grant::is_partial`] is true.
    #[tracing::instrument(name = "nethealth_oidc.login.finish", skip_all, fields(issuer = %self.provider.issuer(), grant_type = "authorization_code"))]
    pub fn finish_login(&self, pending: &PendingLogin, callback_url: &Url) -> Result<Grant, Error> {
        let keys = &self.provider.inner.keys;
        let flow = self.context.finish_login(keys, pending, callback_url);
        self.provider.drive(flow)
    }

    /// Gets a token for the client itself (machine to machine).
    #[tracing::instrument(name = "nethealth_oidc.token", skip_all, fields(issuer = %self.provider.issuer(), grant_type = "client_credentials"))]
    pub fn client_credentials(&self, scopes: &Scopes) -> Result<Grant, Error> {
        let keys = &self.provider.inner.keys;
        let flow = self.context.client_credentials(keys, scopes);
        self.provider.drive(flow)
    }

    /// Asks the userinfo endpoint about the user `sub` (the ID token's), with `access_token`.
    pub fn userinfo(&self, access_token: &AccessToken, sub: &str) -> Result<UserInfo, Error> {
        self.userinfo_with(access_token, sub, None)
    }

    /// [`userinfo`](Self::userinfo), with a DPoP proof when the token is bound to `key`.
    #[tracing::instrument(name = "nethealth_oidc.userinfo", skip_all, fields(issuer = %self.provider.issuer(), dpop = key.is_some()))]
    pub(crate) fn userinfo_with(
        &self,
        access_token: &AccessToken,
        sub: &str,
        key: Option<&DpopKey>,
    ) -> Result<UserInfo, Error> {
        let flow = self.context.userinfo(access_token, sub, key)?;
        self.provider.drive(flow)
    }

    /// Revokes a token (RFC 7009).
    #[tracing::instrument(name = "nethealth_oidc.revocation", skip_all, fields(issuer = %self.provider.issuer(), token_type = token.hint()))]
    pub fn revoke(&self, token: TokenRef<'_>) -> Result<(), Error> {
        self.provider.drive(self.context.revoke(token))
    }

    /// The provider's keys, for the flows that check an ID token.
    pub(crate) fn keys(&self) -> &SharedKeys {
        &self.provider.inner.keys
    }
}
