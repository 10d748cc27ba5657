//! [`Session`]: a logged-in user's tokens, always valid when asked for.

use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::lifecycle::{GrantKind, Lifecycle, TokenSet};
use nethealth_oidc_core::revocation::TokenRef;
use nethealth_oidc_core::secret::{AccessToken, State};
use nethealth_oidc_core::store::{AsyncTokenStore, SessionOptions};
use nethealth_oidc_core::token;
use nethealth_oidc_core::userinfo::UserInfo;
use nethealth_oidc_core::{Error, GrantedScopes, LoginRequiredReason, UnixTime, UsageError};
use tokio::sync::watch;
use tracing::Instrument;
use url::Url;

use crate::Client;

/// What the hot path reads: the token and until when it may be handed out without asking the lifecycle.
struct Cached {
    token: Arc<AccessToken>,
    header: HeaderValue,
    use_until: u64,
}

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
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    lifecycle: Mutex<Lifecycle>,
    cache: ArcSwap<Cached>,
    inflight: Mutex<Option<watch::Receiver<Shared>>>,
    /// A renewed set whose storing failed: stored again before anything is handed out.
    unsaved: Mutex<Option<TokenSet>>,
    options: SessionOptions,
    /// Where the set is kept: `options.async_store`, else `options.store` on the blocking pool.
    store: Arc<dyn AsyncTokenStore>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("lifecycle", &*lock(&self.inner.lifecycle))
            .field("options", &self.inner.options)
            .finish()
    }
}

/// A weak reference to a [`Session`]: [`upgrade`](Self::upgrade) gives the session back while someone holds it.
#[derive(Clone)]
pub struct WeakSession(std::sync::Weak<Inner>);

impl WeakSession {
    /// The session, if it is still alive.
    pub fn upgrade(&self) -> Option<Session> {
        self.0.upgrade().map(|inner| Session { inner })
    }
}

impl fmt::Debug for WeakSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakSession")
            .field("alive", &(self.0.strong_count() > 0))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Client {
    /// A session for a finished login; the token set is stored first.
    pub async fn session(&self, grant: Grant, options: SessionOptions) -> Result<Session, Error> {
        let set = TokenSet::from_grant(grant, options.lifecycle.refresh_token_lifetime);
        Session::start(
            self.clone(),
            set,
            GrantKind::AuthorizationCode,
            options,
            true,
        )
        .await
    }

    /// The session kept in `options.store` by an earlier run, if any.
    pub async fn resume(&self, options: SessionOptions) -> Result<Option<Session>, Error> {
        let Some(set) = crate::store::async_store(&options).load().await? else {
            return Ok(None);
        };
        if set
            .id_claims
            .as_ref()
            .is_some_and(|c| c.iss != self.provider().issuer())
        {
            return Err(Error::login_required(
                LoginRequiredReason::OtherProvider,
                None,
            ));
        }
        Session::start(
            self.clone(),
            set,
            GrantKind::AuthorizationCode,
            options,
            false,
        )
        .await
        .map(Some)
    }

    /// SMART Backend Services in one call: a client-credentials session (for `system/*.rs`-style scopes)
    /// authenticated with `private_key_jwt`, which asks for a new token ahead of expiry (there is no refresh token).
    /// Fails before sending anything when the client does not authenticate with `private_key_jwt`.
    pub async fn backend_services_session(
        &self,
        scopes: &nethealth_oidc_core::Scopes,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        use nethealth_oidc_core::TokenAuthMethod;
        let method = self.context().auth_method();
        if method != TokenAuthMethod::PrivateKeyJwt {
            return Err(Error::TokenRequest(
                nethealth_oidc_core::token::TokenRequestError::MissingSigningKey {
                    method: TokenAuthMethod::PrivateKeyJwt,
                },
            ));
        }
        self.client_credentials_session(scopes, options).await
    }

    /// A session of client-credentials tokens for `scopes`, requested again ahead of expiry.
    pub async fn client_credentials_session(
        &self,
        scopes: &nethealth_oidc_core::Scopes,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        let grant = self.client_credentials(scopes).await?;
        let set = TokenSet::from_grant(grant, None);
        let kind = GrantKind::ClientCredentials {
            scope: scopes.clone(),
        };
        Session::start(self.clone(), set, kind, options, true).await
    }
}

impl Session {
    /// A reference to this session that does not keep it alive (what [`Sessions`](crate::Sessions) keeps of a
    /// session it evicted from its cache).
    pub fn downgrade(&self) -> WeakSession {
        WeakSession(Arc::downgrade(&self.inner))
    }

    async fn start(
        client: Client,
        set: TokenSet,
        kind: GrantKind,
        options: SessionOptions,
        save: bool,
    ) -> Result<Session, Error> {
        let store = crate::store::async_store(&options);
        if save {
            store.save(&set).await?;
        }
        let now = client.provider().clock().now();
        let lifecycle = Lifecycle::new(set, kind, options.lifecycle, now);
        let cache = ArcSwap::from_pointee(cached(&lifecycle));
        let session = Session {
            inner: Arc::new(Inner {
                client,
                lifecycle: Mutex::new(lifecycle),
                cache,
                inflight: Mutex::new(None),
                unsaved: Mutex::new(None),
                options,
                store,
            }),
        };
        if save {
            session.fire_hooks(lock(&session.inner.lifecycle).token_set());
        }
        Ok(session)
    }

    /// A valid access token: the cached one while it is valid and not due, else a renewed one (one renewal for
    /// all concurrent callers). Fails with [`Error::LoginRequired`] when the user must log in again.
    pub async fn access_token(&self) -> Result<Arc<AccessToken>, Error> {
        let now = self.inner.client.provider().clock().now().as_secs();
        let cached = self.inner.cache.load();
        if now < cached.use_until {
            return Ok(Arc::clone(&cached.token));
        }
        drop(cached);
        self.renew().await
    }

    /// `Authorization: Bearer ...` for a valid access token (marked sensitive).
    pub async fn authorization_header(&self) -> Result<HeaderValue, Error> {
        Ok(self.credentials().await?.1)
    }

    /// A valid access token and its header, read together once: the header is always the token's.
    pub(crate) async fn credentials(&self) -> Result<(Arc<AccessToken>, HeaderValue), Error> {
        let now = self.inner.client.provider().clock().now().as_secs();
        let cached = self.inner.cache.load();
        if now < cached.use_until {
            return Ok((Arc::clone(&cached.token), cached.header.clone()));
        }
        drop(cached);
        let token = self.renew().await?;
        let cached = self.inner.cache.load();
        if cached.token.ct_eq(&token) {
            return Ok((token, cached.header.clone()));
        }
        let header = token.authorization_header();
        Ok((token, header))
    }

    /// The DPoP key the session's tokens are bound to (`None` for bearer tokens); fails when the tokens are
    /// DPoP-bound and the key was not kept.
    pub(crate) fn dpop_key(&self) -> Result<Option<nethealth_oidc_core::dpop::DpopKey>, Error> {
        lock(&self.inner.lifecycle).token_set().dpop_key()
    }

    /// What the user granted.
    pub fn granted_scopes(&self) -> GrantedScopes {
        lock(&self.inner.lifecycle).granted_scopes().clone()
    }

    /// Whether `scope` was granted: check it before a call that needs it.
    pub fn allows(&self, scope: &str) -> bool {
        lock(&self.inner.lifecycle).allows(scope)
    }

    /// The current token set (for display or export; it holds secrets).
    pub fn token_set(&self) -> TokenSet {
        lock(&self.inner.lifecycle).token_set().clone()
    }

    /// The client this session belongs to.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Asks the userinfo endpoint about the logged-in user.
    pub async fn userinfo(&self) -> Result<UserInfo, Error> {
        let sub = lock(&self.inner.lifecycle)
            .id_claims()
            .map(|c| c.sub.clone())
            .ok_or(Error::Usage(UsageError::NoUser))?;
        let token = self.access_token().await?;
        let key = self.dpop_key()?;
        self.inner
            .client
            .userinfo_with(&token, &sub, key.as_ref())
            .await
    }

    /// Revokes the session's tokens at the provider (the refresh token, which ends the grant, else the access
    /// token) and clears the store. The session then requires a new login.
    pub async fn revoke(&self) -> Result<(), Error> {
        let set = self.token_set();
        match &set.refresh_token {
            Some(rt) => self.inner.client.revoke(TokenRef::Refresh(rt)).await?,
            None => {
                self.inner
                    .client
                    .revoke(TokenRef::Access(&set.access_token))
                    .await?
            }
        }
        self.inner.store.clear().await?;
        *lock(&self.inner.unsaved) = None;
        let mut lc = lock(&self.inner.lifecycle);
        lc.end(LoginRequiredReason::Ended);
        // An ended lifecycle hands nothing out: every caller now goes to the slow path and hears why.
        self.inner.cache.store(Arc::new(cached(&lc)));
        Ok(())
    }

    /// The URL to send the browser to for RP-initiated logout.
    pub fn logout_url(
        &self,
        post_logout_redirect_uri: Option<&Url>,
        state: Option<&State>,
    ) -> Result<Url, Error> {
        let set = self.token_set();
        self.inner.client.context().logout_url(
            set.id_token.as_ref(),
            post_logout_redirect_uri,
            state,
        )
    }

    /// Tells the session a resource server refused `token` as invalid; the next call renews it. Used by
    /// [`AuthorizedClient`](crate::AuthorizedClient) on `401 invalid_token`.
    pub fn token_rejected(&self, token: &AccessToken) {
        let now = self.inner.client.provider().clock().now();
        let mut lc = lock(&self.inner.lifecycle);
        lc.handle_token_rejected(now, token);
        self.inner.cache.store(Arc::new(cached(&lc)));
    }

    fn fire_hooks(&self, set: &TokenSet) {
        for hook in &self.inner.options.hooks {
            hook(set);
        }
    }

    /// The slow path: join the renewal in flight, or start one.
    #[tracing::instrument(name = "nethealth_oidc.renewal", skip_all, fields(issuer = %self.inner.client.provider().issuer()))]
    async fn renew(&self) -> Result<Arc<AccessToken>, Error> {
        let mut rx = {
            let mut inflight = lock(&self.inner.inflight);
            match inflight.as_ref() {
                Some(rx) => {
                    tracing::debug!(role = "waiter", "joining the renewal in flight");
                    rx.clone()
                }
                None => {
                    tracing::debug!(role = "leader", "starting a renewal");
                    let (tx, rx) = watch::channel(None);
                    *inflight = Some(rx.clone());
                    let session = self.clone();
                    // The renewal runs on its own task: a caller that gives up does not cancel it.
                    tokio::spawn(
                        async move {
                            let guard = InflightGuard(session.clone());
                            let result = session.renew_now().await;
                            drop(guard);
                            let _ = tx.send(Some(result));
                        }
                        .instrument(tracing::Span::current()),
                    );
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Renewal("the renewal task stopped unexpectedly".into()))?;
        outcome
            .clone()
            .expect("wait_for returned a value that is Some")
    }

    /// One renewal, run by exactly one task at a time.
    #[tracing::instrument(name = "nethealth_oidc.refresh", skip_all, fields(issuer = %self.inner.client.provider().issuer()))]
    async fn renew_now(&self) -> Result<Arc<AccessToken>, Error> {
        // Across processes: hold the store's lock and re-read it; another process may have renewed already. A
        // store that fails here (down, slow, lock held too long) leaves callers the current token while it is valid.
        let locked = match self.inner.store.lock().await {
            Ok(guard) => self.adopt_stored().await.map(|_| guard),
            Err(e) => Err(e.into()),
        };
        let _store_lock = match locked {
            Ok(guard) => guard,
            Err(error) => return self.serve_through_store_error(error),
        };
        let result = self.renew_locked().await;
        if matches!(result, Err(Error::LoginRequired { .. })) {
            // Still under the store's lock: a dead set leaves the store, so a later start does not try it again.
            if let Err(e) = self.forget_dead_set().await {
                tracing::warn!(error = %e, "the dead token set could not be removed from the store");
            }
        }
        result
    }

    /// The renewal proper, under the store's lock, after the re-read.
    async fn renew_locked(&self) -> Result<Arc<AccessToken>, Error> {
        // A set renewed earlier whose storing failed is stored next, under the lock, unless the store holds a newer
        // one (a lease-fenced store refused it because another process renewed meanwhile).
        let unsaved = lock(&self.inner.unsaved).take();
        if let Some(set) = unsaved {
            let stale = lock(&self.inner.lifecycle).token_set().received_at > set.received_at;
            if !stale && let Err(error) = self.persist_and_install(set).await {
                return self.serve_through_store_error(error);
            }
        }
        for attempt in 0..2 {
            let stamp = self.inner.client.stamp();
            let now = stamp.now();
            let renewal =
                lock(&self.inner.lifecycle).poll_renewal(&stamp, self.inner.client.context())?;
            let Some(renewal) = renewal else {
                return Ok(self.refresh_cache());
            };
            let (request, refresh) = (renewal.request, renewal.is_refresh);
            let grant_type = if refresh {
                "refresh_token"
            } else {
                "client_credentials"
            };
            tracing::debug!(
                grant_type,
                attempt = attempt + 1,
                "renewing the access token"
            );
            let error = match self.exchange(request, refresh, now).await {
                Ok(set) => {
                    if let Err(error) = self.persist_and_install(set).await {
                        return self.serve_through_store_error(error);
                    }
                    return Ok(self.refresh_cache());
                }
                Err(error) => error,
            };
            // Before declaring "log in again", re-read the store: another process may have rotated the refresh
            // token already.
            if error.is_invalid_grant() && attempt == 0 && self.adopt_stored().await? {
                lock(&self.inner.lifecycle).abandon();
                continue;
            }
            let outcome = lock(&self.inner.lifecycle).handle_renewal_error(self.now(), error);
            let token = self.refresh_cache();
            return outcome.map(|()| {
                tracing::debug!("renewal failed; the current token is still valid");
                token
            });
        }
        Err(Error::login_required(
            LoginRequiredReason::RefreshTokenRejected,
            None,
        ))
    }

    /// Sends a renewal request and computes the new set (nothing installed yet).
    async fn exchange(
        &self,
        request: http::Request<Vec<u8>>,
        refresh: bool,
        now: UnixTime,
    ) -> Result<TokenSet, Error> {
        let client = &self.inner.client;
        let key = lock(&self.inner.lifecycle).token_set().dpop_key()?;
        let response = client.send_token_request(request, key.as_ref()).await?;
        let response = token::parse_token_response(&response)?;
        let original = lock(&self.inner.lifecycle).id_claims().cloned();
        let new_claims = match (&response.id_token, &original, refresh) {
            (Some(id_token), Some(original), true) => Some(
                client
                    .provider()
                    .with_keys(|keys| {
                        client.context().verify_refreshed(
                            id_token,
                            original,
                            Some(&response.access_token),
                            keys,
                            now,
                        )
                    })
                    .await?,
            ),
            _ => None,
        };
        lock(&self.inner.lifecycle).prepare_refresh(now, response, new_claims)
    }

    /// Stores `set`, then installs it: a rotated refresh token is never handed out before it is stored. If
    /// storing fails, the set is kept aside (and stored before anything else next time) and the error returned.
    async fn persist_and_install(&self, set: TokenSet) -> Result<(), Error> {
        match self.inner.store.save(&set).await {
            Ok(()) => {
                lock(&self.inner.lifecycle).install(self.now(), set.clone());
                self.fire_hooks(&set);
                Ok(())
            }
            Err(e) => {
                lock(&self.inner.lifecycle).abandon();
                *lock(&self.inner.unsaved) = Some(set);
                Err(e.into())
            }
        }
    }

    /// Clears the store if it still holds the set that failed (re-read first: another process may have stored a
    /// good one). Returns whether it cleared.
    async fn forget_dead_set(&self) -> Result<bool, Error> {
        let Some(stored) = self.load_stored().await? else {
            return Ok(false);
        };
        if !lock(&self.inner.lifecycle).is_dead_set(&stored) {
            return Ok(false);
        }
        self.inner.store.clear().await?;
        tracing::debug!("removed the dead token set from the store");
        Ok(true)
    }

    async fn load_stored(&self) -> Result<Option<TokenSet>, Error> {
        Ok(self.inner.store.load().await?)
    }

    /// Adopts the stored set if another process renewed it; returns whether it did.
    async fn adopt_stored(&self) -> Result<bool, Error> {
        let Some(stored) = self.load_stored().await? else {
            return Ok(false);
        };
        let adopted = lock(&self.inner.lifecycle).handle_stored(stored);
        if adopted {
            tracing::debug!("adopted tokens renewed by another process");
        }
        Ok(adopted)
    }

    /// A store failure during a renewal (the new set, if any, is kept aside): callers keep the current token while
    /// it is valid, the error is logged and the renewal retried after a backoff; once the token has expired, callers
    /// get the error.
    fn serve_through_store_error(&self, error: Error) -> Result<Arc<AccessToken>, Error> {
        tracing::warn!(%error, "the token store failed during a renewal");
        let outcome = lock(&self.inner.lifecycle).handle_renewal_error(self.now(), error);
        let token = self.refresh_cache();
        outcome.map(|()| token)
    }

    fn now(&self) -> UnixTime {
        self.inner.client.provider().clock().now()
    }

    /// Republishes the lifecycle's current token to the hot path and returns it.
    fn refresh_cache(&self) -> Arc<AccessToken> {
        let lc = lock(&self.inner.lifecycle);
        let fresh = cached(&lc);
        let token = Arc::clone(&fresh.token);
        self.inner.cache.store(Arc::new(fresh));
        token
    }
}

fn cached(lc: &Lifecycle) -> Cached {
    let set = lc.token_set();
    Cached {
        token: Arc::new(set.access_token.clone()),
        header: set.authorization_header(),
        use_until: lc.hand_out_until(),
    }
}

/// Clears the in-flight marker even if the renewal task panics or is dropped.
struct InflightGuard(Session);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        *lock(&self.0.inner.inflight) = None;
        lock(&self.0.inner.lifecycle).abandon();
    }
}
