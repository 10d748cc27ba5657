//! The provider-side flows as sans-IO machines: every request a [`Provider`/`Client`] method sends, to which
//! [`Endpoint`] and as which [`RequestKind`], how its answer is read, and when to send again, decided here once so
//! that each transport is one short driver loop.
//!
//! A [`Flow`] is told what happened ([`handle_response`](Flow::handle_response)) and says what to do next
//! ([`poll`](Flow::poll)), as quinn-proto's `Connection` does. A driver runs any flow like this:
//!
//! ```text
//!   loop: match flow.poll(now, rng)?
//!     Step::Send(exchange)  ── send exchange.request to exchange.endpoint as exchange.kind ──▶ flow.handle_response
//!     Step::LockKeys { .. } ── take the provider's key-refetch lock (one refetch at a time, for every caller)
//!     Step::UnlockKeys      ── release it
//!     Step::Done(output)    ── return output (an Err from poll: return it; either way the lock is released)
//! ```
//!
//! The flows (each built by a function of this module or a [`ClientContext`] method):
//!
//! ```text
//!   discover:       discovery ──▶ JWKS (when the provider has a jwks_uri)                      ──▶ (metadata, keys)
//!   DpopSend:       sign ──▶ send ──▶ use_dpop_nonce challenge? ──▶ sign with it, send once more ──▶ the response
//!   Refetch:        LockKeys ──▶ KeyCache decides (fetch / check again / give up) ──▶ JWKS ──▶ install ──▶ UnlockKeys
//!   KeyCheck:       check with the cached keys ──▶ Err(unknown kid)? ──▶ Refetch ──▶ check once more
//!   start_login:    build the URL ──▶ (PAR pushed when the provider requires it or the client asked) ──▶ the URL
//!   finish_login:   token request (DpopSend) ──▶ parse ──▶ KeyCheck(ID token) ──▶ Grant with its DPoP key
//!   poll_device:    expired? ──▶ token request ──▶ granted? ──▶ KeyCheck(ID token) ──▶ DeviceStep
//! ```
//!
//! Time and randomness come in as `poll`'s arguments; a flow never reads a clock or draws on its own. A transport
//! error ends the flow at the driver (it returns the error), as every flow here treats it as final.
//!
//! [`Provider`/`Client`]: ClientContext

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use rand::CryptoRng;
use url::Url;

use crate::authorize::{AuthorizationRequest, AuthorizationUrl, LoginTemplate, PendingLogin};
use crate::client_auth::RequestStamp;
use crate::context::{ClientContext, Grant};
use crate::device::{DeviceFlow, DevicePoll, DeviceStep};
use crate::discovery::{self, ProviderMetadata};
use crate::dpop::{DpopError, DpopKey, DpopNonces};
use crate::error::Endpoint;
use crate::jwks::{self, JwkSet, KeyAction, KeyCache};
use crate::outcome::Error;
use crate::retry::RequestKind;
use crate::revocation::TokenRef;
use crate::scope::Scopes;
use crate::secret::AccessToken;
use crate::time::UnixTime;
use crate::token;

/// One request for the driver to send: where, how it may be retried, and why (a short label for traces). Its
/// `Debug` shows the method, the URL without query and the body's length, never a header or the body.
pub struct Exchange {
    /// The endpoint, for errors, traces and the retry policy.
    pub endpoint: Endpoint,
    /// Whether the transport may retry it.
    pub kind: RequestKind,
    /// The request.
    pub request: Request<Vec<u8>>,
    /// Why it is sent: `request`, `dpop_nonce_retry`, `jwks`, `jwks_refetch` (never a value from the request).
    pub why: &'static str,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("endpoint", &self.endpoint)
            .field("kind", &self.kind)
            .field("request", &crate::wire::RequestSummary(&self.request))
            .field("why", &self.why)
            .finish()
    }
}

/// What a [`Flow`] asks its driver to do next. Not `#[non_exhaustive]`: a new step must break every driver until
/// it handles it.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a step is moved straight to the driver and consumed; a box would only add an allocation per request"
)]
pub enum Step<T> {
    /// Send this request and hand its response to [`Flow::handle_response`]; then poll again.
    Send(Exchange),
    /// Take the provider's key-refetch lock (held until [`UnlockKeys`](Step::UnlockKeys) or the end of the flow),
    /// so that concurrent callers share one refetch; then poll again.
    LockKeys {
        /// The key generation the flow checked with (for traces).
        generation: u64,
    },
    /// Release the key-refetch lock; then poll again.
    UnlockKeys,
    /// The flow is over: its result.
    Done(T),
}

impl<T> Step<T> {
    /// A sub-flow's step as its parent's, or the sub-flow's output when it is done.
    fn forward<U>(self) -> Result<Step<U>, T> {
        match self {
            Step::Send(exchange) => Ok(Step::Send(exchange)),
            Step::LockKeys { generation } => Ok(Step::LockKeys { generation }),
            Step::UnlockKeys => Ok(Step::UnlockKeys),
            Step::Done(output) => Err(output),
        }
    }
}

/// A provider-side flow: a machine that says what to send and reads what came back. See the [module docs](self).
pub trait Flow {
    /// What the flow returns.
    type Output;

    /// What to do next, at `now`, drawing randomness (proofs, `jti`s, PKCE) from `rng`. An `Err` ends the flow.
    fn poll(&mut self, now: UnixTime, rng: &mut dyn CryptoRng)
    -> Result<Step<Self::Output>, Error>;

    /// The response to the last [`Step::Send`].
    fn handle_response(&mut self, response: Response<Vec<u8>>);
}

fn exchange(endpoint: Endpoint, kind: RequestKind, request: Request<Vec<u8>>) -> Exchange {
    Exchange {
        endpoint,
        kind,
        request,
        why: "request",
    }
}

/// The state every flow goes through around one request.
enum Leg {
    Ready,
    Sent,
    Received(Response<Vec<u8>>),
}

impl Leg {
    /// The response, if one came; a poll while the request is still out is a driver bug, and reads as a lost
    /// response (a typed error, never a panic).
    fn take(&mut self, endpoint: Endpoint) -> Result<Option<Response<Vec<u8>>>, Error> {
        match std::mem::replace(self, Leg::Ready) {
            Leg::Ready => Ok(None),
            Leg::Received(response) => Ok(Some(response)),
            Leg::Sent => Err(lost_response(endpoint)),
        }
    }
}

fn lost_response(endpoint: Endpoint) -> Error {
    Error::Transport(crate::error::TransportError::Io {
        endpoint,
        reason: "the driver polled again without handing back the response: report this bug".into(),
    })
}

/// One request and its parser: the flow of every endpoint that is asked once (registration, revocation,
/// introspection, SMART configuration, device authorization). Made by [`call`].
pub struct Call<B, P> {
    endpoint: Endpoint,
    kind: RequestKind,
    build: Option<B>,
    parse: Option<P>,
    leg: Leg,
}

/// A [`Call`]: `build` makes the request from a fresh [`RequestStamp`] (the time and a random `jti`, for client
/// authentication), `parse` reads the response at the time it came.
pub fn call<B, P, T>(endpoint: Endpoint, kind: RequestKind, build: B, parse: P) -> Call<B, P>
where
    B: FnOnce(&RequestStamp) -> Result<Request<Vec<u8>>, Error>,
    P: FnOnce(&Response<Vec<u8>>, UnixTime) -> Result<T, Error>,
{
    Call {
        endpoint,
        kind,
        build: Some(build),
        parse: Some(parse),
        leg: Leg::Ready,
    }
}

impl<B, P, T> Flow for Call<B, P>
where
    B: FnOnce(&RequestStamp) -> Result<Request<Vec<u8>>, Error>,
    P: FnOnce(&Response<Vec<u8>>, UnixTime) -> Result<T, Error>,
{
    type Output = T;

    fn poll(&mut self, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Step<T>, Error> {
        if let Some(response) = self.leg.take(self.endpoint)? {
            let parse = self
                .parse
                .take()
                .ok_or_else(|| lost_response(self.endpoint))?;
            return parse(&response, now).map(Step::Done);
        }
        let build = self
            .build
            .take()
            .ok_or_else(|| lost_response(self.endpoint))?;
        let request = build(&RequestStamp::draw(rng, now))?;
        self.leg = Leg::Sent;
        Ok(Step::Send(exchange(self.endpoint, self.kind, request)))
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        self.leg = Leg::Received(response);
    }
}

/// Sends one request, with a DPoP proof when a key is given (and `Authorization: DPoP` for an access token); a
/// `use_dpop_nonce` challenge is answered with exactly one more request, never a second: a second challenge
/// reaches the caller as the response, which parses as the typed `use_dpop_nonce` error.
pub struct DpopSend<'a> {
    endpoint: Endpoint,
    kind: RequestKind,
    request: Request<Vec<u8>>,
    key: Option<DpopKey>,
    access_token: Option<&'a AccessToken>,
    nonces: &'a DpopNonces,
    sent: u8,
    leg: Leg,
}

impl<'a> DpopSend<'a> {
    /// `request` to `endpoint`, signed with `key` (plain when `None`), the nonces kept in `nonces`.
    pub fn new(
        endpoint: Endpoint,
        kind: RequestKind,
        request: Request<Vec<u8>>,
        key: Option<DpopKey>,
        access_token: Option<&'a AccessToken>,
        nonces: &'a DpopNonces,
    ) -> Self {
        DpopSend {
            endpoint,
            kind,
            request,
            key,
            access_token,
            nonces,
            sent: 0,
            leg: Leg::Ready,
        }
    }

    /// A token-endpoint request of `context`'s client (never retried by the transport).
    pub fn token(
        context: &'a ClientContext,
        request: Request<Vec<u8>>,
        key: Option<DpopKey>,
    ) -> Self {
        DpopSend::new(
            Endpoint::Token,
            RequestKind::OneShot,
            request,
            key,
            None,
            context.dpop_nonces(),
        )
    }

    /// How many requests were sent so far (0, 1 or 2).
    pub fn sent(&self) -> u8 {
        self.sent
    }

    /// The DPoP key, back from the flow.
    pub fn into_key(self) -> Option<DpopKey> {
        self.key
    }
}

impl Flow for DpopSend<'_> {
    type Output = Response<Vec<u8>>;

    fn poll(
        &mut self,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Step<Response<Vec<u8>>>, Error> {
        if let Some(response) = self.leg.take(self.endpoint)? {
            if self.key.is_none() {
                return Ok(Step::Done(response));
            }
            let url = request_url(&self.request)?;
            let challenged = self.nonces.handle_response(
                &url,
                response.status(),
                response.headers(),
                response.body(),
            );
            if !challenged || self.sent >= 2 {
                return Ok(Step::Done(response));
            }
        }
        let request = match &self.key {
            Some(key) => key.sign(&self.request, self.access_token, self.nonces, now, rng)?,
            None => self.request.clone(),
        };
        self.sent += 1;
        self.leg = Leg::Sent;
        let mut exchange = exchange(self.endpoint, self.kind, request);
        if self.sent == 2 {
            exchange.why = "dpop_nonce_retry";
        }
        Ok(Step::Send(exchange))
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        self.leg = Leg::Received(response);
    }
}

fn request_url(request: &Request<Vec<u8>>) -> Result<Url, Error> {
    let uri = request.uri().to_string();
    Url::parse(&uri).map_err(|_| DpopError::BadUrl(crate::error::truncate(&uri, 200)).into())
}

/// A provider's signing keys as its driver shares them between callers: a [`KeyCache`] behind a lock held only
/// for a decision or an install, never across I/O (the refetch itself is serialised by the driver's own lock,
/// [`Step::LockKeys`]).
#[derive(Debug)]
pub struct SharedKeys {
    cache: Mutex<KeyCache>,
}

impl SharedKeys {
    /// Shares `cache`.
    pub fn new(cache: KeyCache) -> Self {
        SharedKeys {
            cache: Mutex::new(cache),
        }
    }

    /// The cached keys.
    pub fn keys(&self) -> std::sync::Arc<JwkSet> {
        self.lock().keys()
    }

    /// The cached keys and their generation.
    pub fn snapshot(&self) -> (std::sync::Arc<JwkSet>, u64) {
        self.lock().snapshot()
    }

    /// The earliest time an unknown-`kid` refetch is allowed.
    pub fn next_refetch_allowed(&self) -> UnixTime {
        self.lock().limiter().next_allowed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        // Every update of the cache is one install: a panic elsewhere cannot leave it half-made.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Fetches the JWKS again if the cache and its rate limit allow, under the driver's refetch lock; returns whether
/// the keys are newer than the generation the caller saw. A failed fetch installs nothing (the last good keys
/// stay) and is the flow's error.
pub struct Refetch<'a> {
    keys: &'a SharedKeys,
    generation: u64,
    reason: Option<Error>,
    state: RefetchState,
}

enum RefetchState {
    Lock,
    Decide,
    Fetching(Leg),
    Done(bool),
}

impl<'a> Refetch<'a> {
    /// A refetch the caller asked for ([`KeyCache::poll_refetch`]), by a caller that last saw `generation`.
    pub fn asked(keys: &'a SharedKeys, generation: u64) -> Self {
        Refetch::new(keys, generation, None)
    }

    /// A refetch after a check with the keys of `generation` failed with `error`
    /// ([`KeyCache::handle_check_failure`]).
    pub fn after_failure(keys: &'a SharedKeys, generation: u64, error: Error) -> Self {
        Refetch::new(keys, generation, Some(error))
    }

    fn new(keys: &'a SharedKeys, generation: u64, reason: Option<Error>) -> Self {
        Refetch {
            keys,
            generation,
            reason,
            state: RefetchState::Lock,
        }
    }
}

impl Flow for Refetch<'_> {
    type Output = bool;

    fn poll(&mut self, now: UnixTime, _rng: &mut dyn CryptoRng) -> Result<Step<bool>, Error> {
        match std::mem::replace(&mut self.state, RefetchState::Done(false)) {
            RefetchState::Lock => {
                self.state = RefetchState::Decide;
                Ok(Step::LockKeys {
                    generation: self.generation,
                })
            }
            RefetchState::Decide => {
                let action = {
                    let mut cache = self.keys.lock();
                    match &self.reason {
                        Some(error) => cache.handle_check_failure(error, self.generation, now),
                        None => cache.poll_refetch(self.generation, now),
                    }
                };
                match action {
                    KeyAction::Fetch { request } => {
                        self.state = RefetchState::Fetching(Leg::Sent);
                        let mut exchange =
                            exchange(Endpoint::Jwks, RequestKind::Idempotent, request);
                        exchange.why = "jwks_refetch";
                        Ok(Step::Send(exchange))
                    }
                    KeyAction::CheckAgain => {
                        self.state = RefetchState::Done(true);
                        Ok(Step::UnlockKeys)
                    }
                    _ => Ok(Step::UnlockKeys),
                }
            }
            RefetchState::Fetching(mut leg) => {
                let response = leg
                    .take(Endpoint::Jwks)?
                    .ok_or_else(|| lost_response(Endpoint::Jwks))?;
                let keys = jwks::parse_jwks(&response)?;
                self.keys.lock().install(keys);
                self.state = RefetchState::Done(true);
                Ok(Step::UnlockKeys)
            }
            RefetchState::Done(changed) => Ok(Step::Done(changed)),
        }
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        if let RefetchState::Fetching(leg) = &mut self.state {
            *leg = Leg::Received(response);
        }
    }
}

/// Runs `check` with the cached keys; if it failed for want of a key (an unknown `kid`), refetches them
/// ([`Refetch`]: rate-limited, one fetch for concurrent callers) and runs it once more.
pub struct KeyCheck<'a, C> {
    keys: &'a SharedKeys,
    check: C,
    refetch: Option<Refetch<'a>>,
}

impl<'a, C, T> KeyCheck<'a, C>
where
    C: Fn(&JwkSet) -> Result<T, Error>,
{
    /// `check` over `keys`.
    pub fn new(keys: &'a SharedKeys, check: C) -> Self {
        KeyCheck {
            keys,
            check,
            refetch: None,
        }
    }
}

impl<C, T> Flow for KeyCheck<'_, C>
where
    C: Fn(&JwkSet) -> Result<T, Error>,
{
    type Output = T;

    fn poll(&mut self, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Step<T>, Error> {
        let Some(refetch) = &mut self.refetch else {
            let (keys, generation) = self.keys.snapshot();
            return match (self.check)(&keys) {
                Err(error) if error.needs_jwks_refresh() => {
                    let mut refetch = Refetch::after_failure(self.keys, generation, error);
                    let step = refetch.poll(now, rng)?;
                    self.refetch = Some(refetch);
                    Ok(step.forward().unwrap_or(Step::UnlockKeys))
                }
                result => result.map(Step::Done),
            };
        };
        match refetch.poll(now, rng)?.forward() {
            Ok(step) => Ok(step),
            Err(true) => (self.check)(&self.keys.keys()).map(Step::Done),
            Err(false) => Err(refetch
                .reason
                .take()
                .unwrap_or_else(|| lost_response(Endpoint::Jwks))),
        }
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        if let Some(refetch) = &mut self.refetch {
            refetch.handle_response(response);
        }
    }
}

/// Discovery (`issuer`'s `/.well-known/openid-configuration`, exact issuer match), then its JWKS when it has a
/// `jwks_uri`: the metadata and the keys.
pub fn discover(issuer: &str) -> Result<Discover, Error> {
    Ok(Discover {
        issuer: issuer.to_owned(),
        request: Some(discovery::discovery_request(issuer)?),
        metadata: None,
        leg: Leg::Ready,
    })
}

/// The flow of [`discover`].
pub struct Discover {
    issuer: String,
    request: Option<Request<Vec<u8>>>,
    metadata: Option<ProviderMetadata>,
    leg: Leg,
}

impl Flow for Discover {
    type Output = (ProviderMetadata, JwkSet);

    fn poll(
        &mut self,
        _now: UnixTime,
        _rng: &mut dyn CryptoRng,
    ) -> Result<Step<Self::Output>, Error> {
        let endpoint = match self.metadata {
            None => Endpoint::Discovery,
            Some(_) => Endpoint::Jwks,
        };
        let Some(response) = self.leg.take(endpoint)? else {
            let request = self.request.take().ok_or_else(|| lost_response(endpoint))?;
            self.leg = Leg::Sent;
            return Ok(Step::Send(exchange(
                endpoint,
                RequestKind::Idempotent,
                request,
            )));
        };
        match self.metadata.take() {
            Some(metadata) => Ok(Step::Done((metadata, jwks::parse_jwks(&response)?))),
            None => {
                let metadata = discovery::parse_discovery(&self.issuer, &response)?;
                let Some(uri) = &metadata.jwks_uri else {
                    return Ok(Step::Done((metadata, JwkSet::default())));
                };
                let request = jwks::jwks_request(uri);
                self.metadata = Some(metadata);
                self.leg = Leg::Sent;
                let mut exchange = exchange(Endpoint::Jwks, RequestKind::Idempotent, request);
                exchange.why = "jwks";
                Ok(Step::Send(exchange))
            }
        }
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        self.leg = Leg::Received(response);
    }
}

/// Starts a login: the authorization URL and its [`PendingLogin`]; pushed first (RFC 9126) when the provider
/// requires PAR or the client asked for it, so that the browser's URL carries only `client_id` and `request_uri`.
/// Made by [`ClientContext::start_login`].
pub struct StartLogin<'a> {
    context: &'a ClientContext,
    request: Option<Arc<LoginTemplate>>,
    pending: Option<(PendingLogin, UnixTime)>,
    leg: Leg,
}

impl Flow for StartLogin<'_> {
    type Output = (AuthorizationUrl, PendingLogin);

    fn poll(
        &mut self,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<Step<Self::Output>, Error> {
        let endpoint = Endpoint::PushedAuthorization;
        if let Some(response) = self.leg.take(endpoint)? {
            let (pending, built_at) = self.pending.take().ok_or_else(|| lost_response(endpoint))?;
            return self
                .context
                .complete_push(pending, &response, built_at)
                .map(Step::Done);
        }
        let request = self.request.take().ok_or_else(|| lost_response(endpoint))?;
        let push = self.context.pushes_logins()?;
        let (url, pending) = request.build(rng, now);
        if !push {
            return Ok(Step::Done((url, pending)));
        }
        let stamp = RequestStamp::draw(rng, now);
        let request = self.context.pushed_authorization_request(&url, &stamp)?;
        self.pending = Some((pending, now));
        self.leg = Leg::Sent;
        Ok(Step::Send(exchange(
            endpoint,
            RequestKind::OneShot,
            request,
        )))
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        self.leg = Leg::Received(response);
    }
}

/// The check of a token response with the provider's keys, as a [`KeyCheck`] holds it.
type GrantCheck<'a> = Box<dyn Fn(&JwkSet) -> Result<Grant, Error> + Send + Sync + 'a>;

/// What a token flow does once the token response parsed.
#[derive(Clone, Copy)]
enum Finish<'a> {
    /// A login: the ID token verified (with the keys) against the pending login.
    Login(&'a PendingLogin),
    /// Client credentials: no ID token; the granted scopes against those asked for.
    ClientCredentials(&'a Scopes),
}

/// A token request (with a new DPoP key when the client uses DPoP), its answer parsed and, for a login, the ID
/// token verified with the provider's keys: the [`Grant`], carrying the DPoP key. Made by
/// [`ClientContext::finish_login`] and [`ClientContext::client_credentials`].
pub struct TokenGrant<'a> {
    context: &'a ClientContext,
    keys: &'a SharedKeys,
    finish: Finish<'a>,
    state: TokenState<'a>,
}

type BuildRequest<'a> =
    Box<dyn FnOnce(&RequestStamp) -> Result<Request<Vec<u8>>, Error> + Send + Sync + 'a>;

enum TokenState<'a> {
    Start(Option<BuildRequest<'a>>),
    Sending(DpopSend<'a>, UnixTime),
    Verifying(KeyCheck<'a, GrantCheck<'a>>, Option<DpopKey>),
}

impl<'a> Flow for TokenGrant<'a> {
    type Output = Grant;

    fn poll(&mut self, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Step<Grant>, Error> {
        loop {
            match &mut self.state {
                TokenState::Start(build) => {
                    let build = build.take().ok_or_else(|| lost_response(Endpoint::Token))?;
                    let request = build(&RequestStamp::draw(rng, now))?;
                    let key = self.context.new_dpop_key(rng)?;
                    let send = DpopSend::token(self.context, request, key);
                    self.state = TokenState::Sending(send, now);
                }
                TokenState::Sending(send, at) => {
                    let response = match send.poll(now, rng)?.forward() {
                        Ok(step) => return Ok(step),
                        Err(response) => token::parse_token_response(&response)?,
                    };
                    let at = *at;
                    let key = send.key.take();
                    let context = self.context;
                    let pending = match self.finish {
                        Finish::ClientCredentials(scopes) => {
                            let grant = context.complete_client_credentials(scopes, response, at);
                            return Ok(Step::Done(grant.with_dpop_key(key)));
                        }
                        Finish::Login(pending) => pending,
                    };
                    let check: GrantCheck<'a> = Box::new(move |keys| {
                        context.complete_login(pending, response.clone(), keys, at)
                    });
                    self.state = TokenState::Verifying(KeyCheck::new(self.keys, check), key);
                }
                TokenState::Verifying(check, key) => {
                    return match check.poll(now, rng)?.forward() {
                        Ok(step) => Ok(step),
                        Err(grant) => Ok(Step::Done(grant.with_dpop_key(key.take()))),
                    };
                }
            }
        }
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        match &mut self.state {
            TokenState::Start(_) => {}
            TokenState::Sending(send, _) => send.handle_response(response),
            TokenState::Verifying(check, _) => check.handle_response(response),
        }
    }
}

/// One poll of a device login: nothing sent when the flow has expired; otherwise the token request, and on a
/// grant the ID token verified with the provider's keys. Made by [`ClientContext::poll_device_login`].
pub struct DevicePollFlow<'a> {
    context: &'a ClientContext,
    keys: &'a SharedKeys,
    flow: &'a mut DeviceFlow,
    state: DeviceState<'a>,
}

enum DeviceState<'a> {
    Start,
    Sent(Leg, UnixTime),
    Verifying(KeyCheck<'a, GrantCheck<'a>>),
}

impl<'a> Flow for DevicePollFlow<'a> {
    type Output = DeviceStep;

    fn poll(&mut self, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Step<DeviceStep>, Error> {
        match &mut self.state {
            DeviceState::Start => {
                if self.flow.is_expired(now) {
                    return Ok(Step::Done(DeviceStep::Expired));
                }
                let stamp = RequestStamp::draw(rng, now);
                let request = self.context.device_token_request(self.flow, &stamp)?;
                self.state = DeviceState::Sent(Leg::Sent, now);
                Ok(Step::Send(exchange(
                    Endpoint::Token,
                    RequestKind::OneShot,
                    request,
                )))
            }
            DeviceState::Sent(leg, at) => {
                let at = *at;
                let response = leg
                    .take(Endpoint::Token)?
                    .ok_or_else(|| lost_response(Endpoint::Token))?;
                let tokens = match self.flow.handle_poll(at, &response)? {
                    DevicePoll::Granted(tokens) => tokens,
                    DevicePoll::Denied(_) => return Ok(Step::Done(DeviceStep::Denied)),
                    DevicePoll::Expired => return Ok(Step::Done(DeviceStep::Expired)),
                    _ => return Ok(Step::Done(DeviceStep::Waiting)),
                };
                let context = self.context;
                let flow = self.flow.clone();
                let check: GrantCheck<'a> = Box::new(move |keys| {
                    context.complete_device_login(&flow, tokens.clone(), keys, at)
                });
                self.state = DeviceState::Verifying(KeyCheck::new(self.keys, check));
                self.poll(now, rng)
            }
            DeviceState::Verifying(check) => match check.poll(now, rng)?.forward() {
                Ok(step) => Ok(step),
                Err(grant) => Ok(Step::Done(DeviceStep::Granted(Box::new(grant)))),
            },
        }
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        match &mut self.state {
            DeviceState::Start => {}
            DeviceState::Sent(leg, _) => *leg = Leg::Received(response),
            DeviceState::Verifying(check) => check.handle_response(response),
        }
    }
}

/// The flows of one client, built from its context: each public method of a transport's `Client` runs one of them.
impl ClientContext {
    /// A login for `scopes` as a plain authorization URL, never pushed: refused with
    /// [`AuthorizeRequestError::MustPush`](crate::authorize::AuthorizeRequestError::MustPush) when this client's
    /// logins are pushed (use [`start_login`](Self::start_login) then).
    pub fn begin_login(
        &self,
        scopes: &Scopes,
        rng: &mut (impl CryptoRng + ?Sized),
        now: UnixTime,
    ) -> Result<(AuthorizationUrl, PendingLogin), Error> {
        if self.pushes_logins()? {
            return Err(crate::authorize::AuthorizeRequestError::MustPush.into());
        }
        Ok(self.login_template(scopes)?.build(rng, now))
    }

    /// [`StartLogin`] for `request`.
    pub fn start_login(&self, request: AuthorizationRequest) -> StartLogin<'_> {
        self.start(Arc::new(request.prepare()))
    }

    /// [`StartLogin`] for `scopes`, from the kept [`login_template`](Self::login_template).
    pub fn start_login_for(&self, scopes: &Scopes) -> Result<StartLogin<'_>, Error> {
        Ok(self.start(self.login_template(scopes)?))
    }

    fn start(&self, template: Arc<LoginTemplate>) -> StartLogin<'_> {
        StartLogin {
            context: self,
            request: Some(template),
            pending: None,
            leg: Leg::Ready,
        }
    }

    /// The code exchange of the login `pending`, whose browser came back to `callback_url` (the callback is
    /// checked first), then the ID token checked with `keys`: a [`TokenGrant`].
    pub fn finish_login<'a>(
        &'a self,
        keys: &'a SharedKeys,
        pending: &'a PendingLogin,
        callback_url: &'a Url,
    ) -> TokenGrant<'a> {
        TokenGrant {
            context: self,
            keys,
            finish: Finish::Login(pending),
            state: TokenState::Start(Some(Box::new(move |stamp| {
                self.exchange_request(pending, callback_url, stamp)
            }))),
        }
    }

    /// A client-credentials token for `scopes` (none sent when empty): a [`TokenGrant`].
    pub fn client_credentials<'a>(
        &'a self,
        keys: &'a SharedKeys,
        scopes: &'a Scopes,
    ) -> TokenGrant<'a> {
        TokenGrant {
            context: self,
            keys,
            finish: Finish::ClientCredentials(scopes),
            state: TokenState::Start(Some(Box::new(move |stamp| {
                let scope = (!scopes.is_empty()).then_some(scopes);
                self.client_credentials_request(scope, stamp)
            }))),
        }
    }

    /// The userinfo of the user `sub`, asked with `access_token` (a DPoP proof when it is bound to `key`).
    pub fn userinfo<'a>(
        &'a self,
        access_token: &'a AccessToken,
        sub: &'a str,
        key: Option<&DpopKey>,
    ) -> Result<impl Flow<Output = crate::userinfo::UserInfo> + Send + 'a, Error> {
        let request = self.userinfo_request(access_token)?;
        let send = DpopSend::new(
            Endpoint::Userinfo,
            RequestKind::Idempotent,
            request,
            key.cloned(),
            Some(access_token),
            self.dpop_nonces(),
        );
        Ok(Then {
            flow: send,
            then: Some(move |response: Response<Vec<u8>>| self.parse_userinfo(&response, sub)),
        })
    }

    /// Revokes `token` (RFC 7009); a client assertion is never resent.
    pub fn revoke<'a>(&'a self, token: TokenRef<'a>) -> impl Flow<Output = ()> + Send + 'a {
        call(
            Endpoint::Revocation,
            self.authenticated_retry(),
            move |stamp| self.revocation_request(token, stamp),
            |response, _| Ok(crate::revocation::parse_revocation(response)?),
        )
    }

    /// Introspects `token` (RFC 7662), authenticated as at the token endpoint.
    pub fn introspect<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> impl Flow<Output = crate::introspection::Introspection> + Send + 'a {
        call(
            Endpoint::Introspection,
            self.authenticated_retry(),
            move |stamp| self.introspection_request(token, stamp),
            |response, _| self.parse_introspection(response),
        )
    }

    /// Starts a device login for `scopes` (`openid` added): the [`DeviceFlow`] to show and poll.
    pub fn begin_device_login<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> impl Flow<Output = DeviceFlow> + Send + 'a {
        call(
            Endpoint::Token,
            RequestKind::OneShot,
            move |stamp| self.device_authorization_request(scopes, stamp),
            move |response, now| {
                let authorization = crate::device::parse_device_authorization(response)?;
                Ok(DeviceFlow::new(
                    authorization,
                    self.device_scopes(scopes),
                    now,
                ))
            },
        )
    }

    /// One poll of `flow`: a [`DevicePollFlow`].
    pub fn poll_device_login<'a>(
        &'a self,
        keys: &'a SharedKeys,
        flow: &'a mut DeviceFlow,
    ) -> DevicePollFlow<'a> {
        DevicePollFlow {
            context: self,
            keys,
            flow,
            state: DeviceState::Start,
        }
    }
}

/// A flow whose output is then turned into another by `then`.
struct Then<F, G> {
    flow: F,
    then: Option<G>,
}

impl<F: Flow, G: FnOnce(F::Output) -> Result<T, Error>, T> Flow for Then<F, G> {
    type Output = T;

    fn poll(&mut self, now: UnixTime, rng: &mut dyn CryptoRng) -> Result<Step<T>, Error> {
        match self.flow.poll(now, rng)?.forward() {
            Ok(step) => Ok(step),
            Err(output) => {
                let then = self
                    .then
                    .take()
                    .ok_or_else(|| lost_response(Endpoint::Userinfo))?;
                then(output).map(Step::Done)
            }
        }
    }

    fn handle_response(&mut self, response: Response<Vec<u8>>) {
        self.flow.handle_response(response);
    }
}

/// A SMART on FHIR configuration read (`{fhir_base}/.well-known/smart-configuration`).
pub fn smart_configuration(
    fhir_base: &Url,
) -> impl Flow<Output = crate::smart::SmartConfiguration> + Send + '_ {
    call(
        Endpoint::Discovery,
        RequestKind::Idempotent,
        move |_| Ok(crate::smart::smart_configuration_request(fhir_base)),
        |response, _| Ok(crate::smart::parse_smart_configuration(response)?),
    )
}

/// The registration flows of a provider (RFC 7591, RFC 7592, Net Health's own).
pub mod register {
    use super::{Endpoint, Error, Flow, RequestKind, call};
    use crate::registration::{self, ClientMetadata, NetHealthRegistration, RegisteredClient};
    use crate::secret::RegistrationAccessToken;

    /// Registers a client (RFC 7591) at `endpoint`, with an optional initial access token.
    pub fn dynamic<'a>(
        endpoint: Option<&'a url::Url>,
        metadata: &'a ClientMetadata,
        initial_access_token: Option<&'a RegistrationAccessToken>,
    ) -> impl Flow<Output = RegisteredClient> + Send + 'a {
        call(
            Endpoint::Registration,
            RequestKind::OneShot,
            move |_| {
                let endpoint = endpoint.ok_or(Error::Unsupported("registration endpoint"))?;
                Ok(registration::registration_request(
                    endpoint,
                    metadata,
                    initial_access_token,
                )?)
            },
            move |response, _| {
                let mut registered = registration::parse_registration_response(response)?;
                registered.fill_from_request(metadata);
                Ok(registered)
            },
        )
    }

    /// Registers a client at the Net Health Accounts site of `issuer`.
    pub fn net_health<'a>(
        registration: &'a NetHealthRegistration,
        issuer: &'a str,
        metadata: &'a ClientMetadata,
        bearer: Option<&'a RegistrationAccessToken>,
    ) -> impl Flow<Output = RegisteredClient> + Send + 'a {
        call(
            Endpoint::Registration,
            RequestKind::OneShot,
            move |_| Ok(registration.request(issuer, metadata, bearer)?),
            move |response, _| {
                let mut registered = registration.parse_response(response)?;
                registered.fill_from_request(metadata);
                Ok(registered)
            },
        )
    }

    /// Reads a registration back (RFC 7592 §2.1).
    pub fn read(client: &RegisteredClient) -> impl Flow<Output = RegisteredClient> + Send + '_ {
        call(
            Endpoint::Registration,
            RequestKind::Idempotent,
            move |_| Ok(registration::read_request(client)?),
            move |response, _| Ok(registration::parse_management_response(client, response)?),
        )
    }

    /// Replaces a registration's metadata (RFC 7592 §2.2); sent once, never retried (the provider may rotate the
    /// registration access token).
    pub fn update<'a>(
        client: &'a RegisteredClient,
        metadata: &'a ClientMetadata,
    ) -> impl Flow<Output = RegisteredClient> + Send + 'a {
        call(
            Endpoint::Registration,
            RequestKind::OneShot,
            move |_| Ok(registration::update_request(client, metadata)?),
            move |response, _| {
                let mut updated = registration::parse_management_response(client, response)?;
                updated.fill_from_request(metadata);
                Ok(updated)
            },
        )
    }

    /// Deletes a registration (RFC 7592 §2.3).
    pub fn delete(client: &RegisteredClient) -> impl Flow<Output = ()> + Send + '_ {
        call(
            Endpoint::Registration,
            RequestKind::OneShot,
            move |_| Ok(registration::delete_request(client)?),
            |response, _| Ok(registration::parse_delete_response(response)?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use crate::context::ClientOptions;
    use crate::id_token::IdTokenError;
    use crate::jwks::JwksRefreshPolicy;
    use crate::secret::ClientSecret;
    use http::StatusCode;
    use rand::SeedableRng;

    fn seeded() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(12)
    }

    const ISSUER: &str = "https://op.example";
    /// RFC 8037 §A.2's Ed25519 public key, as the key the provider rotated to.
    const NEW_KEYS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"new","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn metadata(extra: serde_json::Value) -> ProviderMetadata {
        let mut json = serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://op.example/authorize",
            "token_endpoint": "https://op.example/token",
            "jwks_uri": "https://op.example/jwks",
            "userinfo_endpoint": "https://op.example/me",
        });
        json.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json).unwrap()
    }

    fn context(extra: serde_json::Value, options: ClientOptions) -> ClientContext {
        let config = ClientConfig::new("app", Some(ClientSecret::new("s3cret-value")))
            .with_redirect_uris(vec!["https://app.example/cb".parse().unwrap()]);
        ClientContext::new(metadata(extra), config, options).unwrap()
    }

    fn keys() -> SharedKeys {
        let uri = "https://op.example/jwks".parse().unwrap();
        let policy = JwksRefreshPolicy::default();
        SharedKeys::new(KeyCache::new(JwkSet::default(), Some(uri), policy))
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Vec<u8>> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body.as_bytes().to_vec()).unwrap()
    }

    /// A check that needs the key `new`: an unknown-key error until the cache has it.
    fn needs_new(keys: &JwkSet) -> Result<&'static str, Error> {
        if keys.contains_kid("new") {
            Ok("verified")
        } else {
            Err(IdTokenError::UnknownKey { kid: "new".into() }.into())
        }
    }

    /// What a driver saw: one label per step, the request's path for a send.
    fn label<T>(step: &Step<T>) -> String {
        match step {
            Step::Send(e) => format!(
                "send {:?} {} ({})",
                e.endpoint,
                e.request.uri().path(),
                e.why
            ),
            Step::LockKeys { generation } => format!("lock {generation}"),
            Step::UnlockKeys => "unlock".into(),
            Step::Done(_) => "done".into(),
        }
    }

    /// Drives `flow` to its end, answering each request with `answer`; returns the transcript and the result.
    fn run<F: Flow>(
        mut flow: F,
        mut answer: impl FnMut(&Exchange) -> Response<Vec<u8>>,
    ) -> (Vec<String>, Result<F::Output, Error>) {
        let mut transcript = Vec::new();
        let mut rng = seeded();
        loop {
            let step = match flow.poll(UnixTime::from_secs(1_000), &mut rng) {
                Ok(step) => step,
                Err(error) => return (transcript, Err(error)),
            };
            transcript.push(label(&step));
            match step {
                Step::Send(exchange) => flow.handle_response(answer(&exchange)),
                Step::Done(output) => return (transcript, Ok(output)),
                Step::LockKeys { .. } | Step::UnlockKeys => {}
            }
        }
    }

    fn nonce_challenge() -> Response<Vec<u8>> {
        response(
            400,
            &[("DPoP-Nonce", "n-1")],
            r#"{"error":"use_dpop_nonce"}"#,
        )
    }

    #[test]
    fn a_dpop_nonce_challenge_is_answered_once_and_not_twice() {
        let context = context(serde_json::json!({}), ClientOptions::default());
        let key = DpopKey::generate(&mut seeded()).unwrap();
        let request = context
            .client_credentials_request(None, &RequestStamp::new_inner(UnixTime::from_secs(1), "j"))
            .unwrap();
        let mut proofs = Vec::new();
        let flow = DpopSend::token(&context, request, Some(key));
        let (transcript, result) = run(flow, |exchange| {
            proofs.push(exchange.request.headers()["DPoP"].clone());
            nonce_challenge()
        });
        assert_eq!(
            transcript,
            [
                "send Token /token (request)",
                "send Token /token (dpop_nonce_retry)",
                "done"
            ]
        );
        assert_eq!(
            result.unwrap().status(),
            StatusCode::BAD_REQUEST,
            "the second challenge reaches the caller"
        );
        assert_ne!(
            proofs[0], proofs[1],
            "the retry carries a new proof, with the nonce"
        );
    }

    #[test]
    fn a_dpop_nonce_challenge_answered_by_success_ends_with_it() {
        let context = context(serde_json::json!({}), ClientOptions::default());
        let key = DpopKey::generate(&mut seeded()).unwrap();
        let request = context
            .userinfo_request(&AccessToken::new("at-value"))
            .unwrap();
        let mut answers = vec![response(200, &[], "{}"), nonce_challenge()];
        let flow = DpopSend::token(&context, request, Some(key));
        let (transcript, result) = run(flow, |_| answers.pop().unwrap());
        assert_eq!(transcript.len(), 3, "{transcript:?}");
        assert_eq!(result.unwrap().status(), StatusCode::OK);
        let url: Url = "https://op.example/token".parse().unwrap();
        assert_eq!(context.dpop_nonces().get(&url).as_deref(), Some("n-1"));
    }

    #[test]
    fn without_a_key_a_challenge_is_not_answered() {
        let context = context(serde_json::json!({}), ClientOptions::default());
        let request = context
            .userinfo_request(&AccessToken::new("at-value"))
            .unwrap();
        let flow = DpopSend::token(&context, request, None);
        let (transcript, result) = run(flow, |_| nonce_challenge());
        assert_eq!(transcript, ["send Token /me (request)", "done"]);
        assert_eq!(result.unwrap().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_unknown_kid_refetches_the_keys_and_checks_once_more() {
        let keys = keys();
        let (transcript, result) = run(KeyCheck::new(&keys, needs_new), |_| {
            response(200, &[], NEW_KEYS)
        });
        assert_eq!(
            transcript,
            ["lock 0", "send Jwks /jwks (jwks_refetch)", "unlock", "done"]
        );
        assert_eq!(result.unwrap(), "verified");
        assert_eq!(keys.snapshot().1, 1);
    }

    #[test]
    fn a_second_refetch_within_the_interval_is_refused_by_the_rate_limit() {
        let keys = keys();
        let (_, first) = run(KeyCheck::new(&keys, needs_new), |_| {
            response(200, &[], r#"{"keys":[]}"#)
        });
        assert!(
            first.unwrap_err().needs_jwks_refresh(),
            "the new set still lacks the key"
        );
        let (transcript, second) = run(KeyCheck::new(&keys, needs_new), |_| {
            panic!("the rate limit must refuse the second refetch")
        });
        assert_eq!(transcript, ["lock 1", "unlock"]);
        assert!(matches!(
            second,
            Err(Error::IdToken(IdTokenError::UnknownKey { .. }))
        ));
        assert_eq!(
            keys.next_refetch_allowed(),
            UnixTime::from_secs(1_060),
            "the next refetch a minute after the first"
        );
    }

    #[test]
    fn concurrent_callers_share_one_refetch_generation() {
        let keys = keys();
        let mut rng = seeded();
        let now = UnixTime::from_secs(1_000);
        let mut first = KeyCheck::new(&keys, needs_new);
        let mut second = KeyCheck::new(&keys, needs_new);
        // Both check with generation 0 and fail; both ask for the refetch lock.
        assert!(matches!(
            first.poll(now, &mut rng),
            Ok(Step::LockKeys { generation: 0 })
        ));
        assert!(matches!(
            second.poll(now, &mut rng),
            Ok(Step::LockKeys { generation: 0 })
        ));
        // The first holds the lock and fetches; the second waits for it.
        assert!(matches!(first.poll(now, &mut rng), Ok(Step::Send(_))));
        first.handle_response(response(200, &[], NEW_KEYS));
        assert!(matches!(first.poll(now, &mut rng), Ok(Step::UnlockKeys)));
        assert!(matches!(
            first.poll(now, &mut rng),
            Ok(Step::Done("verified"))
        ));
        // The second gets the lock next: the keys are newer than what it checked with, so it checks again.
        assert!(matches!(second.poll(now, &mut rng), Ok(Step::UnlockKeys)));
        assert!(matches!(
            second.poll(now, &mut rng),
            Ok(Step::Done("verified"))
        ));
        assert_eq!(keys.snapshot().1, 1, "one fetch installed one generation");
    }

    #[test]
    fn a_check_failing_for_another_reason_fetches_nothing() {
        let keys = keys();
        let check = |_: &JwkSet| -> Result<(), Error> { Err(Error::Unsupported("test")) };
        let (transcript, result) = run(KeyCheck::new(&keys, check), |_| panic!("no fetch"));
        assert!(transcript.is_empty(), "{transcript:?}");
        assert_eq!(result.unwrap_err(), Error::Unsupported("test"));
    }

    #[test]
    fn a_failed_refetch_keeps_the_last_good_keys() {
        let keys = keys();
        let (transcript, result) = run(KeyCheck::new(&keys, needs_new), |_| {
            response(200, &[], "not json")
        });
        assert_eq!(transcript, ["lock 0", "send Jwks /jwks (jwks_refetch)"]);
        assert!(matches!(result, Err(Error::Response(_))), "{result:?}");
        assert_eq!(keys.snapshot().1, 0, "nothing installed");
    }

    #[test]
    fn an_asked_refetch_says_whether_the_keys_changed() {
        let keys = keys();
        let (_, changed) = run(Refetch::asked(&keys, 0), |_| response(200, &[], NEW_KEYS));
        assert!(changed.unwrap());
        let (transcript, changed) = run(Refetch::asked(&keys, 1), |_| panic!("rate-limited"));
        assert_eq!(transcript, ["lock 1", "unlock", "done"]);
        assert!(!changed.unwrap());
    }

    #[test]
    fn discovery_then_jwks() {
        let body = serde_json::to_string(&serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://op.example/authorize",
            "token_endpoint": "https://op.example/token",
            "jwks_uri": "https://op.example/jwks",
        }))
        .unwrap();
        let (transcript, result) = run(discover(ISSUER).unwrap(), |exchange| {
            match exchange.endpoint {
                Endpoint::Discovery => response(200, &[], &body),
                _ => response(200, &[], NEW_KEYS),
            }
        });
        assert_eq!(
            transcript,
            [
                "send Discovery /.well-known/openid-configuration (request)",
                "send Jwks /jwks (jwks)",
                "done"
            ]
        );
        let (metadata, keys) = result.unwrap();
        assert_eq!(metadata.issuer, ISSUER);
        assert!(keys.contains_kid("new"));
    }

    #[test]
    fn discovery_without_a_jwks_uri_fetches_no_keys_and_a_wrong_issuer_is_refused() {
        let body = r#"{"issuer":"https://op.example","authorization_endpoint":"https://op.example/a","token_endpoint":"https://op.example/t"}"#;
        let (transcript, result) = run(discover(ISSUER).unwrap(), |_| response(200, &[], body));
        assert_eq!(transcript.len(), 2, "{transcript:?}");
        assert!(result.unwrap().1.is_empty());
        let (_, result) = run(discover("https://other.example").unwrap(), |_| {
            response(200, &[], body)
        });
        assert!(result.is_err());
    }

    fn start(
        context: &ClientContext,
    ) -> (Vec<String>, Result<(AuthorizationUrl, PendingLogin), Error>) {
        let request = context
            .authorization_request(&Scopes::parse("openid profile"))
            .unwrap();
        run(context.start_login(request), |_| {
            response(
                201,
                &[],
                r#"{"request_uri":"urn:example:abc","expires_in":60}"#,
            )
        })
    }

    #[test]
    fn a_login_is_pushed_when_the_provider_requires_it() {
        let par = serde_json::json!({
            "pushed_authorization_request_endpoint": "https://op.example/par",
            "require_pushed_authorization_requests": true,
        });
        let (transcript, result) = start(&context(par, ClientOptions::default()));
        assert_eq!(
            transcript,
            ["send PushedAuthorization /par (request)", "done"]
        );
        let (url, _) = result.unwrap();
        let query: Vec<_> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(query, ["client_id", "request_uri"]);
    }

    #[test]
    fn a_login_is_pushed_when_the_client_opts_in_and_not_when_par_is_absent() {
        let offered = serde_json::json!({
            "pushed_authorization_request_endpoint": "https://op.example/par",
        });
        let (transcript, _) = start(&context(
            offered.clone(),
            ClientOptions::default().with_par(true),
        ));
        assert_eq!(transcript.len(), 2, "opt-in pushes: {transcript:?}");
        let (transcript, result) = start(&context(offered, ClientOptions::default()));
        assert_eq!(
            transcript,
            ["done"],
            "offered but neither required nor asked for"
        );
        assert!(
            result
                .unwrap()
                .0
                .query_pairs()
                .any(|(k, _)| k == "code_challenge")
        );
        let (transcript, result) = start(&context(
            serde_json::json!({}),
            ClientOptions::default().with_par(true),
        ));
        assert!(transcript.is_empty());
        assert!(
            result.is_err(),
            "asked for PAR without an endpoint: no plain URL handed out"
        );
    }

    #[test]
    fn begin_login_hands_out_no_plain_url_when_logins_are_pushed() {
        let scopes = Scopes::parse("openid");
        let now = UnixTime::from_secs(1_000);
        let required = context(
            serde_json::json!({
                "pushed_authorization_request_endpoint": "https://op.example/par",
                "require_pushed_authorization_requests": true,
            }),
            ClientOptions::default(),
        );
        let refused = required.begin_login(&scopes, &mut seeded(), now);
        assert_eq!(
            refused.unwrap_err(),
            crate::authorize::AuthorizeRequestError::MustPush.into()
        );
        let plain = context(serde_json::json!({}), ClientOptions::default());
        let (url, _) = plain.begin_login(&scopes, &mut seeded(), now).unwrap();
        assert!(url.query_pairs().any(|(k, _)| k == "state"));
    }

    /// The plain login's template is kept for the scopes it was made for (with or without `openid` named), and
    /// made anew for other scopes: a login never carries another login's scopes.
    #[test]
    fn the_login_template_is_kept_per_scopes() {
        let context = context(serde_json::json!({}), ClientOptions::default());
        let a = context
            .login_template(&Scopes::parse("profile patients.read"))
            .unwrap();
        let same = context
            .login_template(&Scopes::parse("openid patients.read profile"))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &same));
        let other = context.login_template(&Scopes::parse("profile")).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(other.requested_scopes(), &Scopes::parse("openid profile"));
        let (url, pending) = context
            .begin_login(
                &Scopes::parse("patients.read"),
                &mut seeded(),
                UnixTime::EPOCH,
            )
            .unwrap();
        let scope: Vec<_> = url
            .query_pairs()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(scope, ["openid patients.read"]);
        assert_eq!(
            pending.requested_scopes(),
            &Scopes::parse("openid patients.read")
        );
        // A superset is not the same scopes.
        let superset = context
            .login_template(&Scopes::parse("patients.read profile"))
            .unwrap();
        assert_eq!(
            superset.requested_scopes(),
            &Scopes::parse("openid patients.read profile")
        );
    }
}
