//! [`Session`]: a logged-in user's tokens, always valid when asked for. The renewal's decisions are the core's
//! [`Renewal`] machine; this file runs it on the caller's thread.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

use http::HeaderValue;
use nethealth_oidc_core::lifecycle::TokenSet;
use nethealth_oidc_core::renewal::{Event, Renewal, SessionState, Step};
use nethealth_oidc_core::secret::{AccessToken, State};
use nethealth_oidc_core::store::TokenStore;
use nethealth_oidc_core::userinfo::UserInfo;
use nethealth_oidc_core::{Error, GrantedScopes, LoginRequiredReason};
use url::Url;

use crate::Client;

/// The single renewal in flight: whether one runs, its generation, and the last outcome.
#[derive(Default)]
struct Flight {
    running: bool,
    generation: u64,
    last: Option<Result<Arc<AccessToken>, Error>>,
}

/// A logged-in user's (or, for client credentials, the client's own) tokens. `Clone + Send + Sync`: keep one in
/// your application state and share it.
///
/// [`access_token`](Self::access_token) hands out the cached token while it is valid and not yet due, without a
/// lock or any I/O. When it is due, exactly one renewal runs, on the first caller's thread, however many threads
/// are waiting. The renewed set is stored **before** the new token is handed out.
///
/// When the session can no longer get tokens (the refresh token was rejected or has expired), it removes the dead
/// set from the store, under the store's lock and only if the store still holds that very set (another process may
/// have stored a good one): a later [`Client::resume`] then finds nothing and the user logs in again.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: Client,
    state: SessionState,
    inflight: Mutex<Flight>,
    landed: Condvar,
    /// Where the set is kept (`options.store`, traced).
    store: Arc<dyn TokenStore>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner.state, f)
    }
}

impl Session {
    /// A session over `state`, renewed through `client`, kept in `store`.
    pub(crate) fn new(client: Client, state: SessionState, store: Arc<dyn TokenStore>) -> Self {
        let (inflight, landed) = (Mutex::default(), Condvar::new());
        let inner = Inner {
            client,
            state,
            inflight,
            landed,
            store,
        };
        Session {
            inner: Arc::new(inner),
        }
    }

    /// A valid access token: the cached one while it is valid and not due, else a renewed one (one renewal for
    /// all concurrent callers). Fails with [`Error::LoginRequired`] when the user must log in again.
    pub fn access_token(&self) -> Result<Arc<AccessToken>, Error> {
        let now = self.inner.client.provider().clock().now().as_secs();
        match self.inner.state.fresh_token(now) {
            Some(token) => Ok(token),
            None => self.renew(),
        }
    }

    /// `Authorization: Bearer ...` for a valid access token (marked sensitive).
    pub fn authorization_header(&self) -> Result<HeaderValue, Error> {
        Ok(self.credentials()?.1)
    }

    /// A valid access token and its header, read together once: the header is always the token's.
    pub(crate) fn credentials(&self) -> Result<(Arc<AccessToken>, HeaderValue), Error> {
        let now = self.inner.client.provider().clock().now().as_secs();
        if let Some(fresh) = self.inner.state.fresh_credentials(now) {
            return Ok(fresh);
        }
        let token = self.renew()?;
        let header = self.inner.state.header_for(&token);
        Ok((token, header))
    }

    /// The session's shared state (the DPoP key, the granted scopes, ...).
    pub(crate) fn state(&self) -> &SessionState {
        &self.inner.state
    }

    /// What the user granted.
    pub fn granted_scopes(&self) -> GrantedScopes {
        self.inner.state.granted_scopes()
    }

    /// Whether `scope` was granted: check it before a call that needs it.
    pub fn allows(&self, scope: &str) -> bool {
        self.inner.state.allows(scope)
    }

    /// The current token set (for display or export; it holds secrets).
    pub fn token_set(&self) -> TokenSet {
        self.inner.state.token_set()
    }

    /// The client this session belongs to.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Asks the userinfo endpoint about the logged-in user.
    pub fn userinfo(&self) -> Result<UserInfo, Error> {
        let sub = self.inner.state.subject()?;
        let token = self.access_token()?;
        let key = self.inner.state.dpop_key()?;
        let client = &self.inner.client;
        client.userinfo_with(&token, &sub, key.as_ref())
    }

    /// Revokes the session's tokens at the provider (the refresh token, which ends the grant, else the access
    /// token) and clears the store. The session then requires a new login.
    pub fn revoke(&self) -> Result<(), Error> {
        let set = self.token_set();
        self.inner.client.revoke(set.revocation_ref())?;
        self.inner.store.clear()?;
        self.inner.state.end(LoginRequiredReason::Ended);
        Ok(())
    }

    /// The URL to send the browser to for RP-initiated logout.
    pub fn logout_url(
        &self,
        post_logout: Option<&Url>,
        state: Option<&State>,
    ) -> Result<Url, Error> {
        let id_token = self.token_set().id_token;
        let context = self.inner.client.context();
        context.logout_url(id_token.as_ref(), post_logout, state)
    }

    /// Tells the session a resource server refused `token` as invalid; the next call renews it. Used by
    /// [`AuthorizedClient`](crate::AuthorizedClient) on `401 invalid_token`.
    pub fn token_rejected(&self, token: &AccessToken) {
        let now = self.inner.client.provider().clock().now();
        self.inner.state.token_rejected(now, token);
    }

    /// The slow path: wait for the renewal in flight, or run one on this thread.
    #[tracing::instrument(name = "nethealth_oidc.renewal", skip_all, fields(issuer = %self.inner.client.provider().issuer()))]
    fn renew(&self) -> Result<Arc<AccessToken>, Error> {
        let mut flight = self.flight();
        if flight.running {
            tracing::debug!(role = "waiter", "joining the renewal in flight");
            let generation = flight.generation;
            while flight.running && flight.generation == generation {
                flight = self
                    .inner
                    .landed
                    .wait(flight)
                    .unwrap_or_else(|p| p.into_inner());
            }
            let last = flight.last.clone();
            return last.unwrap_or_else(|| Err(Error::Renewal("the renewal stopped".into())));
        }
        flight.running = true;
        drop(flight);
        tracing::debug!(role = "leader", "starting a renewal");
        let guard = InflightGuard(self.clone());
        let result = self.run_renewal();
        self.flight().last = Some(result.clone());
        drop(guard);
        result
    }

    fn flight(&self) -> std::sync::MutexGuard<'_, Flight> {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one renewal: does the I/O its machine asks for, holding the store's lock until it is done.
    #[tracing::instrument(name = "nethealth_oidc.refresh", skip_all, fields(issuer = %self.inner.client.provider().issuer()))]
    fn run_renewal(&self) -> Result<Arc<AccessToken>, Error> {
        let (client, store) = (&self.inner.client, &self.inner.store);
        let mut renewal: Renewal<'_> = self.inner.state.renewal(client.context());
        let mut _store_lock = None;
        loop {
            let event = match renewal.poll(&client.stamp()) {
                Step::Lock => {
                    let locked = store.lock().map_err(Error::from);
                    Event::Locked(locked.map(|guard| _store_lock = Some(guard)))
                }
                Step::Load => Event::Loaded(store.load().map_err(Error::from)),
                Step::Save(set) => Event::Saved(store.save(&set).map_err(Error::from)),
                Step::Clear => Event::Cleared(store.clear().map_err(Error::from)),
                Step::Send { request, dpop_key } => {
                    Event::Response(client.send_token_request(request, dpop_key.as_ref()))
                }
                Step::VerifyIdToken => {
                    let check = |keys: &_| renewal.verify_id_token(keys);
                    Event::Verified(client.provider().with_keys(check))
                }
                Step::Unlock => {
                    _store_lock = None;
                    Event::Unlocked
                }
                Step::Done(result) => return result,
                _ => {
                    return Err(Error::Renewal(
                        "a renewal step this driver does not know".into(),
                    ));
                }
            };
            renewal.handle(event);
        }
    }
}

/// Ends the flight (waking the waiters) even if the renewal panics.
struct InflightGuard(Session);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inner.state.abandon();
        let mut flight = self.0.flight();
        flight.running = false;
        flight.generation = flight.generation.wrapping_add(1);
        if std::thread::panicking() {
            flight.last = Some(Err(Error::Renewal(
                "the renewal stopped unexpectedly".into(),
            )));
        }
        drop(flight);
        self.0.inner.landed.notify_all();
    }
}
