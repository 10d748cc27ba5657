//! [`Provider`]: a discovered OpenID Provider with its signing keys cached, and [`Client`]: one registered client
//! of it, which logs users in.

use std::sync::{Arc, Mutex};

use nethealth_oidc_core::authorize::{AuthorizationRequest, PendingLogin};
use nethealth_oidc_core::client_auth::RequestStamp;
use nethealth_oidc_core::context::{ClientContext, ClientOptions, Grant};
use nethealth_oidc_core::discovery::{self, ProviderMetadata};
use nethealth_oidc_core::dpop::DpopKey;
use nethealth_oidc_core::jwks::{self, JwkSet, JwksRefreshPolicy, KeyAction, KeyCache};
use nethealth_oidc_core::registration::{
    self, ClientMetadata, NetHealthRegistration, RegisteredClient,
};
use nethealth_oidc_core::retry::RequestKind;
use nethealth_oidc_core::revocation::TokenRef;
use nethealth_oidc_core::secret::{AccessToken, RegistrationAccessToken};
use nethealth_oidc_core::token;
use nethealth_oidc_core::userinfo::UserInfo;
use nethealth_oidc_core::{ClientConfig, Clock, Endpoint, Error, Scopes};
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
    keys: Mutex<KeyCache>,
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
        let request = discovery::discovery_request(issuer)?;
        let response = http.send(Endpoint::Discovery, RequestKind::Idempotent, request)?;
        let metadata = discovery::parse_discovery(issuer, &response)?;
        let keys = match &metadata.jwks_uri {
            Some(uri) => {
                let response = http.send(
                    Endpoint::Jwks,
                    RequestKind::Idempotent,
                    jwks::jwks_request(uri),
                )?;
                jwks::parse_jwks(&response)?
            }
            None => JwkSet::default(),
        };
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
        let keys = KeyCache::new(
            keys,
            metadata.jwks_uri.clone(),
            JwksRefreshPolicy::default(),
        );
        Ok(Provider {
            inner: Arc::new(ProviderInner {
                http,
                metadata,
                keys: Mutex::new(keys),
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
        let request = nethealth_oidc_core::smart::smart_configuration_request(fhir_base);
        let response =
            self.inner
                .http
                .send(Endpoint::Discovery, RequestKind::Idempotent, request)?;
        Ok(nethealth_oidc_core::smart::parse_smart_configuration(
            &response,
        )?)
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
        self.key_cache().keys()
    }

    fn key_cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        self.inner.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fetches the JWKS again if the rate limit allows; returns whether the keys changed. Concurrent callers
    /// share one fetch.
    pub fn refresh_keys(&self) -> Result<bool, Error> {
        let (_, generation) = self.key_cache().snapshot();
        self.refetch(generation, |cache, now| cache.poll_refetch(generation, now))
    }

    /// Runs `check` with the cached keys; if it failed for want of a key (an unknown key id), fetches them
    /// (rate-limited, one fetch for concurrent callers) and runs it once more.
    pub(crate) fn with_keys<T>(
        &self,
        check: impl Fn(&JwkSet) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (keys, generation) = self.key_cache().snapshot();
        let error = match check(&keys) {
            Err(error) => error,
            ok => return ok,
        };
        let changed = self.refetch(generation, |cache, now| {
            cache.handle_check_failure(&error, generation, now)
        })?;
        if changed {
            check(&self.keys())
        } else {
            Err(error)
        }
    }

    /// One refetch at a time: asks `decide` (under the cache's lock) what to do, and fetches if told to. Returns
    /// whether the keys are newer than `generation`.
    #[tracing::instrument(name = "nethealth_oidc.jwks", skip_all, fields(issuer = %self.issuer(), generation = generation))]
    fn refetch(
        &self,
        generation: u64,
        decide: impl FnOnce(&mut KeyCache, nethealth_oidc_core::UnixTime) -> KeyAction,
    ) -> Result<bool, Error> {
        let _one_at_a_time = self.inner.refetch.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.inner.clock.now();
        let action = decide(&mut self.key_cache(), now);
        tracing::debug!(action = action.name(), "JWKS refetch decided");
        let request = match action {
            KeyAction::Fetch { request } => request,
            KeyAction::CheckAgain => return Ok(true),
            _ => {
                let cache = self.key_cache();
                if cache.snapshot().1 == generation {
                    tracing::debug!(
                        next_allowed = cache.limiter().next_allowed().as_secs(),
                        "JWKS refetch refused by the rate limit"
                    );
                }
                return Ok(false);
            }
        };
        let response = self
            .inner
            .http
            .send(Endpoint::Jwks, RequestKind::Idempotent, request)?;
        let keys = jwks::parse_jwks(&response)?;
        tracing::debug!(keys = keys.keys().len(), "JWKS fetched again");
        self.key_cache().install(keys);
        Ok(true)
    }

    /// Registers a client by RFC 7591 dynamic registration, with an optional initial access token.
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "register"))]
    pub fn register(
        &self,
        metadata: &ClientMetadata,
        initial_access_token: Option<&RegistrationAccessToken>,
    ) -> Result<RegisteredClient, Error> {
        let endpoint = self
            .inner
            .metadata
            .registration_endpoint
            .as_ref()
            .ok_or(Error::Unsupported("registration endpoint"))?;
        let request = registration::registration_request(endpoint, metadata, initial_access_token)?;
        let response =
            self.inner
                .http
                .send(Endpoint::Registration, RequestKind::OneShot, request)?;
        let mut registered = registration::parse_registration_response(&response)?;
        registered.fill_from_request(metadata);
        Ok(registered)
    }

    /// Registers a client at the Net Health Accounts site's `/api/Clients/Register` action.
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "register_net_health"))]
    pub fn register_net_health(
        &self,
        registration: &NetHealthRegistration,
        metadata: &ClientMetadata,
        bearer: Option<&RegistrationAccessToken>,
    ) -> Result<RegisteredClient, Error> {
        let request = registration.request(self.issuer(), metadata, bearer)?;
        let response =
            self.inner
                .http
                .send(Endpoint::Registration, RequestKind::OneShot, request)?;
        let mut registered = registration.parse_response(&response)?;
        registered.fill_from_request(metadata);
        Ok(registered)
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
    pub fn begin_login(&self, scopes: &Scopes) -> Result<(Url, PendingLogin), Error> {
        if self.context.pushes_logins()? {
            return Err(nethealth_oidc_core::authorize::AuthorizeRequestError::MustPush.into());
        }
        Ok(self.begin_login_with(self.login_request(scopes)?))
    }

    /// Starts a login from a customised request, as a plain authorization URL (never pushed).
    #[tracing::instrument(name = "nethealth_oidc.login.begin", skip_all, fields(issuer = %self.provider.issuer()))]
    pub fn begin_login_with(&self, request: AuthorizationRequest) -> (Url, PendingLogin) {
        request.build(&mut rand::rng(), self.provider.clock().now())
    }

    /// Starts a login for `scopes`, pushing it first (RFC 9126) when the provider requires it or the client asked
    /// for it: then the browser's URL carries only `client_id` and `request_uri`. Otherwise as
    /// [`begin_login`](Self::begin_login).
    pub fn start_login(&self, scopes: &Scopes) -> Result<(Url, PendingLogin), Error> {
        self.start_login_with(self.login_request(scopes)?)
    }

    /// [`start_login`](Self::start_login) from a customised request.
    pub fn start_login_with(
        &self,
        request: AuthorizationRequest,
    ) -> Result<(Url, PendingLogin), Error> {
        let push = self.context.pushes_logins()?;
        let now = self.provider.clock().now();
        let (url, pending) = request.build(&mut rand::rng(), now);
        if !push {
            return Ok((url, pending));
        }
        let request = self
            .context
            .pushed_authorization_request(&url, &self.stamp())?;
        let response = self.provider.http().send(
            Endpoint::PushedAuthorization,
            RequestKind::OneShot,
            request,
        )?;
        self.context.complete_push(pending, &response, now)
    }

    /// Sends a token-endpoint request, with a DPoP proof when `key` is given, answering one `use_dpop_nonce`
    /// challenge with exactly one more request.
    pub(crate) fn send_token_request(
        &self,
        request: http::Request<Vec<u8>>,
        key: Option<&DpopKey>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        self.send_dpop(Endpoint::Token, RequestKind::OneShot, request, key, None)
    }

    /// Sends `request` to `endpoint`, with a DPoP proof (and `Authorization: DPoP` for `access_token`) when `key`
    /// is given; a `use_dpop_nonce` challenge is answered with exactly one more request, never a second.
    pub(crate) fn send_dpop(
        &self,
        endpoint: Endpoint,
        kind: RequestKind,
        request: http::Request<Vec<u8>>,
        key: Option<&DpopKey>,
        access_token: Option<&AccessToken>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        let http = self.provider.http();
        let Some(key) = key else {
            return Ok(http.send(endpoint, kind, request)?);
        };
        let nonces = self.context.dpop_nonces();
        let url = Url::parse(&request.uri().to_string())
            .map_err(|_| nethealth_oidc_core::dpop::DpopError::BadUrl(request.uri().to_string()))?;
        let clock = self.provider.clock();
        let signed = key.sign(
            &request,
            access_token,
            nonces,
            clock.now(),
            &mut rand::rng(),
        )?;
        let response = http.send(endpoint, kind, signed)?;
        if !nonces.handle_response(&url, response.status(), response.headers(), response.body()) {
            return Ok(response);
        }
        tracing::debug!(%endpoint, "the server asked for a DPoP nonce; sending once more with it");
        let signed = key.sign(
            &request,
            access_token,
            nonces,
            clock.now(),
            &mut rand::rng(),
        )?;
        let response = http.send(endpoint, kind, signed)?;
        // A second challenge is not answered: it reaches the caller as the typed `use_dpop_nonce` error.
        nonces.handle_response(&url, response.status(), response.headers(), response.body());
        Ok(response)
    }

    /// Finishes a login: checks the callback URL the browser came back to, exchanges the code, verifies the ID
    /// token, and returns the grant with its granted scopes. The user's refusal is an error for which
    /// [`Error::is_consent_denied`] is true; a partial grant is a success for which [`Grant::is_partial`] is true.
    #[tracing::instrument(name = "nethealth_oidc.login.finish", skip_all, fields(issuer = %self.provider.issuer(), grant_type = "authorization_code"))]
    pub fn finish_login(&self, pending: &PendingLogin, callback_url: &Url) -> Result<Grant, Error> {
        let stamp = self.stamp();
        let now = stamp.now();
        let request = self
            .context
            .exchange_request(pending, callback_url, &stamp)?;
        let key = self.context.new_dpop_key(&mut rand::rng())?;
        let response = self.send_token_request(request, key.as_ref())?;
        let response = token::parse_token_response(&response)?;
        let grant = self.provider.with_keys(|keys| {
            self.context
                .complete_login(pending, response.clone(), keys, now)
        })?;
        Ok(grant.with_dpop_key(key))
    }

    /// Gets a token for the client itself (machine to machine).
    #[tracing::instrument(name = "nethealth_oidc.token", skip_all, fields(issuer = %self.provider.issuer(), grant_type = "client_credentials"))]
    pub fn client_credentials(&self, scopes: &Scopes) -> Result<Grant, Error> {
        let stamp = self.stamp();
        let now = stamp.now();
        let scope = (!scopes.is_empty()).then_some(scopes);
        let request = self.context.client_credentials_request(scope, &stamp)?;
        let key = self.context.new_dpop_key(&mut rand::rng())?;
        let response = self.send_token_request(request, key.as_ref())?;
        let response = token::parse_token_response(&response)?;
        Ok(self
            .context
            .complete_client_credentials(scopes, response, now)
            .with_dpop_key(key))
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
        let request = self.context.userinfo_request(access_token)?;
        let response = self.send_dpop(
            Endpoint::Userinfo,
            RequestKind::Idempotent,
            request,
            key,
            Some(access_token),
        )?;
        self.context.parse_userinfo(&response, sub)
    }

    /// Revokes a token (RFC 7009).
    #[tracing::instrument(name = "nethealth_oidc.revocation", skip_all, fields(issuer = %self.provider.issuer(), token_type = token.hint()))]
    pub fn revoke(&self, token: TokenRef<'_>) -> Result<(), Error> {
        let request = self.context.revocation_request(token, &self.stamp())?;
        let response = self.provider.http().send(
            Endpoint::Revocation,
            self.context.authenticated_retry(),
            request,
        )?;
        Ok(nethealth_oidc_core::revocation::parse_revocation(
            &response,
        )?)
    }
}
