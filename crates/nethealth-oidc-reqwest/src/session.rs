//! [`Session`]: a logged-in user's tokens, always valid when asked for. The renewal's decisions are the core's
//! [`Renewal`] machine; this file runs it on tokio.

use std::fmt;
use std::sync::{Arc, Mutex};

use http::HeaderValue;
use nethealth_oidc_core::lifecycle::TokenSet;
use nethealth_oidc_core::renewal::{Event, Renewal, SessionState, Step};
use nethealth_oidc_core::secret::{AccessToken, State};
use nethealth_oidc_core::store::AsyncTokenStore;
use nethealth_oidc_core::userinfo::UserInfo;
use nethealth_oidc_core::{Error, GrantedScopes, LoginRequiredReason};
use tokio::sync::watch;
use tracing::Instrument;
use url::Url;

use crate::Client;

type Shared = Option<Result<Arc<AccessToken>, Error>>;

/// A logged-in user's (or, for client credentials, the client's own) tokens. `Clone + Send + Sync`: keep one in
/// your application state and share it.
///
/// [`access_token`](Self::access_token) hands out the cached token while it is valid and not yet due, without a
/// lock or any I/O. When it is due, exactly one renewal runs, however many callers are waiting; it runs on its own
/// task, so a caller that gives up does not cancel it. The renewed set is stored **before** the new token is
/// handed out.
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
    inflight: Mutex<Option<watch::Receiver<Shared>>>,
    /// Where the set is kept: `options.async_store`, else `options.store` on the blocking pool.
    store: Arc<dyn AsyncTokenStore>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner.state, f)
    }
}

impl Session {
    /// A session over `state`, renewed through `client`, kept in `store`.
    pub(crate) fn new(
        client: Client,
        state: SessionState,
        store: Arc<dyn AsyncTokenStore>,
    ) -> Self {
        let inflight = Mutex::new(None);
        let inner = Inner {
            client,
            state,
            inflight,
            store,
        };
        Session {
            inner: Arc::new(inner),
        }
    }

    /// A valid access token: the cached one while it is valid and not due, else a renewed one (one renewal for
    /// all concurrent callers). Fails with [`Error::LoginRequired`] when the user must log in again.
    pub async fn access_token(&self) -> Result<Arc<AccessToken>, Error> {
        let now = self.inner.client.provider().clock().now().as_secs();
        match self.inner.state.fresh_token(now) {
            Some(token) => Ok(token),
            None => self.renew().await,
        }
    }

    /// `Authorization: Bearer ...` for a valid access token (marked sensitive).
    pub async fn authorization_header(&self) -> Result<HeaderValue, Error> {
        Ok(self.credentials().await?.1)
    }

    /// A valid access token and its header, read together once: the header is always the token's.
    pub(crate) async fn credentials(&self) -> Result<(Arc<AccessToken>, HeaderValue), Error> {
        let now = self.inner.client.provider().clock().now().as_secs();
        if let Some(fresh) = self.inner.state.fresh_credentials(now) {
            return Ok(fresh);
        }
        let token = self.renew().await?;
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
    pub async fn userinfo(&self) -> Result<UserInfo, Error> {
        let sub = self.inner.state.subject()?;
        let token = self.access_token().await?;
        let key = self.inner.state.dpop_key()?;
        let client = &self.inner.client;
        client.userinfo_with(&token, &sub, key.as_ref()).await
    }

    /// Revokes the session's tokens at the provider (the refresh token, which ends the grant, else the access
    /// token) and clears the store. The session then requires a new login.
    pub async fn revoke(&self) -> Result<(), Error> {
        let set = self.token_set();
        self.inner.client.revoke(set.revocation_ref()).await?;
        self.inner.store.clear().await?;
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

    /// The slow path: join the renewal in flight, or start one on its own task (a caller that gives up does not
    /// cancel it).
    #[tracing::instrument(name = "nethealth_oidc.renewal", skip_all, fields(issuer = %self.inner.client.provider().issuer()))]
    async fn renew(&self) -> Result<Arc<AccessToken>, Error> {
        let mut rx = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(rx) = inflight.as_ref() {
                tracing::debug!(role = "waiter", "joining the renewal in flight");
                rx.clone()
            } else {
                tracing::debug!(role = "leader", "starting a renewal");
                let (tx, rx) = watch::channel(None);
                *inflight = Some(rx.clone());
                let guard = InflightGuard(self.clone());
                let task = async move {
                    let result = guard.0.run_renewal().await;
                    drop(guard);
                    let _ = tx.send(Some(result));
                };
                tokio::spawn(task.instrument(tracing::Span::current()));
                rx
            }
        };
        let outcome = rx.wait_for(Option::is_some).await;
        let outcome = outcome.map_err(|_| Error::Renewal("the renewal task stopped".into()))?;
        outcome
            .clone()
            .unwrap_or_else(|| Err(Error::Renewal("no outcome".into())))
    }

    /// Runs one renewal: does the I/O its machine asks for, holding the store's lock until it is done.
    #[tracing::instrument(name = "nethealth_oidc.refresh", skip_all, fields(issuer = %self.inner.client.provider().issuer()))]
    async fn run_renewal(&self) -> Result<Arc<AccessToken>, Error> {
        let (client, store) = (&self.inner.client, &self.inner.store);
        let mut renewal: Renewal<'_> = self.inner.state.renewal(client.context());
        let mut _store_lock = None;
        loop {
            let event = match renewal.poll(&client.stamp()) {
                Step::Lock => {
                    let locked = store.lock().await.map_err(Error::from);
                    Event::Locked(locked.map(|guard| _store_lock = Some(guard)))
                }
                Step::Load => Event::Loaded(store.load().await.map_err(Error::from)),
                Step::Save(set) => Event::Saved(store.save(&set).await.map_err(Error::from)),
                Step::Clear => Event::Cleared(store.clear().await.map_err(Error::from)),
                Step::Send { request, dpop_key } => {
                    Event::Response(client.send_token_request(request, dpop_key.as_ref()).await)
                }
                Step::VerifyIdToken => {
                    let check = |keys: &_| renewal.verify_id_token(keys);
                    Event::Verified(client.provider().with_keys(check).await)
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

/// Clears the in-flight marker even if the renewal task panics or is dropped.
struct InflightGuard(Session);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        *self
            .0
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.0.inner.state.abandon();
    }
}
