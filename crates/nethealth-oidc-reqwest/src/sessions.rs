//! [`Sessions`]: many users' sessions of one [`Client`], each under its [`SessionKey`].

use std::fmt;
use std::sync::Arc;

use nethealth_oidc_core::Error;
use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::store::{
    AsyncKeyedTokenStore, KeyedEntry, KeyedTokenStore, LiveHandle, SessionCache, SessionKey,
    SessionOptions,
};

use crate::{BlockingStore, Client, Session};

/// Every user's session of one [`Client`], each under a caller-chosen [`SessionKey`] (a random session id kept in
/// a cookie, a user id, a tenant id), all stored in one keyed store. `Clone + Send + Sync`: keep one in your
/// application state. The provider's discovery and keys are shared; nothing is fetched per user.
///
/// [`get`](Self::get) answers from a cache of live sessions (a read lock and a hash lookup), else loads the key's
/// stored set, once, however many tasks ask for it at the same time. Each cached [`Session`] renews on its own,
/// single-flight: a thousand tasks on a hundred users' expired tokens make a hundred token requests. The cache holds
/// at most [`capacity`](Self::capacity) sessions (default 10,000); past that, the sessions not used since the
/// previous sweep are dropped from it (their tokens stay in the store and are loaded again when asked for).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    store: Arc<dyn AsyncKeyedTokenStore>,
    options: SessionOptions,
    cache: SessionCache<Session, tokio::sync::Mutex<()>>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.inner.store)
            .field("cache", &self.inner.cache)
            .finish()
    }
}

impl Client {
    /// Every user's session, kept in `store` (a sync store, run on tokio's blocking pool). `options` applies to
    /// each session; its `store` and `async_store` are replaced by the key's entry of `store`.
    pub fn sessions(&self, store: Arc<dyn KeyedTokenStore>, options: SessionOptions) -> Sessions {
        self.sessions_async(Arc::new(BlockingStore::new(store)), options)
    }

    /// Every user's session, kept in an async `store` (a database, say), awaited on the runtime.
    pub fn sessions_async(
        &self,
        store: Arc<dyn AsyncKeyedTokenStore>,
        options: SessionOptions,
    ) -> Sessions {
        Sessions::build(
            self.clone(),
            store,
            options,
            SessionCache::<Session, ()>::DEFAULT_CAPACITY,
        )
    }
}

impl Sessions {
    fn build(
        client: Client,
        store: Arc<dyn AsyncKeyedTokenStore>,
        options: SessionOptions,
        capacity: usize,
    ) -> Sessions {
        Sessions {
            inner: Arc::new(Inner {
                client,
                store,
                options,
                cache: SessionCache::new(capacity),
            }),
        }
    }

    /// The same sessions with a cache of at most `capacity` live sessions (an empty one: call this before use).
    pub fn with_capacity(self, capacity: usize) -> Sessions {
        let inner = &self.inner;
        Sessions::build(
            inner.client.clone(),
            Arc::clone(&inner.store),
            inner.options.clone(),
            capacity,
        )
    }

    /// The most live sessions cached.
    pub fn capacity(&self) -> usize {
        self.inner.cache.capacity()
    }

    /// How many sessions are cached now.
    pub fn cached(&self) -> usize {
        self.inner.cache.len()
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The session of `key`: the cached one, else the one stored under `key` (loaded once for all concurrent
    /// callers), else `None`: that user must log in. A session whose refresh token was refused stays cached and
    /// answers [`Error::LoginRequired`]: [`remove`](Self::remove) it, then send the user to log in.
    pub async fn get(&self, key: &SessionKey) -> Result<Option<Session>, Error> {
        if let Some(session) = self.inner.cache.get(key) {
            return Ok(Some(session));
        }
        self.load(key).await
    }

    /// The slow path of [`get`](Self::get): the key's session is not cached.
    #[tracing::instrument(name = "nethealth_oidc.sessions", skip_all, fields(op = "load", session = %key.fingerprint()))]
    async fn load(&self, key: &SessionKey) -> Result<Option<Session>, Error> {
        let slot = self.inner.cache.slot(key);
        let _loading = slot.loading().lock().await;
        if let Some(session) = slot.value() {
            return Ok(Some(session.clone()));
        }
        match self.inner.client.resume(self.options_for(key)).await {
            Ok(Some(session)) => Ok(Some(slot.set(session).clone())),
            other => {
                self.inner.cache.remove_empty(key, &slot);
                other
            }
        }
    }

    /// Starts the session of `key` from a finished login (replacing any session of `key`); the set is stored
    /// first.
    #[tracing::instrument(name = "nethealth_oidc.sessions", skip_all, fields(op = "insert", session = %key.fingerprint()))]
    pub async fn insert(&self, key: &SessionKey, grant: Grant) -> Result<Session, Error> {
        let session = self
            .inner
            .client
            .session(grant, self.options_for(key))
            .await?;
        self.inner.cache.insert(key, session.clone());
        Ok(session)
    }

    /// Forgets the session of `key`: out of the cache, and its stored set cleared. It does not revoke the tokens
    /// (call [`Session::revoke`] first for that).
    #[tracing::instrument(name = "nethealth_oidc.sessions", skip_all, fields(op = "remove", session = %key.fingerprint()))]
    pub async fn remove(&self, key: &SessionKey) -> Result<(), Error> {
        self.inner.cache.remove(key);
        Ok(self.inner.store.clear(key).await?)
    }

    /// Drops the session of `key` from the cache only; its tokens stay stored. While someone still holds that
    /// session, [`get`](Self::get) returns it again (one key, one live session), else it loads the key anew.
    #[tracing::instrument(name = "nethealth_oidc.sessions", skip_all, fields(op = "evict", session = %key.fingerprint()))]
    pub fn evict(&self, key: &SessionKey) {
        self.inner.cache.evict(key);
    }

    fn options_for(&self, key: &SessionKey) -> SessionOptions {
        let entry = KeyedEntry::new(Arc::clone(&self.inner.store), key.clone());
        self.inner.options.clone().with_async_store(Arc::new(entry))
    }
}

/// A weak reference to a [`Session`]: [`upgrade`](Self::upgrade) gives the session back while someone holds it.
#[derive(Clone, Debug)]
pub struct WeakSession(std::sync::Weak<crate::session::Inner>);

impl WeakSession {
    /// The session, if it is still alive.
    pub fn upgrade(&self) -> Option<Session> {
        self.0.upgrade().map(|inner| Session { inner })
    }
}

impl Session {
    /// A reference to this session that does not keep it alive (what [`Sessions`] keeps of a session it evicted
    /// from its cache).
    pub fn downgrade(&self) -> WeakSession {
        WeakSession(Arc::downgrade(&self.inner))
    }
}

/// The cache keeps a weak reference to an evicted session, so that a session still held is found again.
impl LiveHandle for Session {
    type Weak = WeakSession;

    fn downgrade(&self) -> WeakSession {
        Session::downgrade(self)
    }

    fn upgrade(weak: &WeakSession) -> Option<Self> {
        weak.upgrade()
    }
}
