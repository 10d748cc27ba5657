//! Where a session keeps its token set: the [`TokenStore`] trait and an in-memory store; for many users, the keyed
//! and async stores and the session cache (see [`SessionKey`]).
//!
//! The trait lives in the core so that every driver and every store agree on it; the file store, which touches the
//! disk, lives in `nethealth-oidc-store`. A store holds a [`TokenSet`]: the tokens, their expiry and the granted
//! scopes — never the client secret. Drivers persist a rotated refresh token **before** they hand out the new access
//! token; if [`TokenStore::save`] fails, the caller gets the error and the stored set is still the old one.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::lifecycle::TokenSet;

mod keyed;

pub use keyed::{
    AsyncKeyedTokenStore, AsyncTokenStore, CacheSlot, KeyedEntry, KeyedTokenStore, LiveHandle,
    MemoryKeyedStore, SessionCache, SessionKey,
};

/// Why the store could not do what was asked.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused a file operation.
    #[error("could not {action} {path}: {reason}; check the path and its permissions")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The file (or Redis value) exists but does not hold a token set (truncated, edited, copied from another key, or
    /// not ours). It is left as it is.
    #[error(
        "the stored token set at {path} is corrupt ({reason}); it was left untouched: move it away or delete it (a file, or a Redis key), then log in again"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The file was written by a newer version of this library.
    #[error(
        "the stored token set at {path} has format version {found}, which this version cannot read; upgrade nethealth-oidc, or log in again with another file or key"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The token set could not be serialized.
    #[error("the token set could not be serialized ({0}); this is a bug: please report it")]
    Serialize(String),
    /// A networked store (Redis) could not be reached or did not answer in time; nothing was changed.
    #[error(
        "the token store {store} is unavailable ({reason}); check that it is running and reachable (a still-valid token is served meanwhile)"
    )]
    Unavailable {
        /// The store, without credentials (`redis://host:port/db key`).
        store: String,
        /// What failed.
        reason: String,
    },
    /// A networked store refused the credentials.
    #[error(
        "the token store {store} refused the credentials ({reason}); check the password (or ACL user) in its URL"
    )]
    Unauthorized {
        /// The store, without credentials.
        store: String,
        /// What the store said.
        reason: String,
    },
    /// The lease on the store's lock expired or was taken by another process before the save, so the set was not
    /// stored: a stale holder never overwrites a newer token.
    #[error(
        "the lease on {store} was lost before the save (it expired or another process took it); nothing was overwritten: the session stores its set again under a new lease"
    )]
    LeaseLost {
        /// The store, without credentials.
        store: String,
    },
    /// The store's lock stayed held by another process for longer than the caller waits.
    #[error(
        "waited {waited_ms} ms for the lock on {store}, held by another process; retry later, or raise the lock wait"
    )]
    LockTimeout {
        /// The store, without credentials.
        store: String,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// Another store-specific failure (for stores outside this crate).
    #[error("the token store failed: {0}")]
    Other(String),
}

impl StoreError {
    /// An [`StoreError::Io`] for `path`.
    pub fn io(action: &'static str, path: &Path, e: &std::io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// A held store lock; the lock is released when this is dropped.
pub struct StoreGuard {
    _held: Option<Box<dyn Any + Send>>,
}

impl StoreGuard {
    /// A guard that holds nothing (for stores with no cross-process lock).
    pub fn none() -> Self {
        StoreGuard { _held: None }
    }

    /// A guard that keeps `held` alive (a locked file, a mutex guard ...) until dropped.
    pub fn holding(held: impl Any + Send) -> Self {
        StoreGuard {
            _held: Some(Box::new(held)),
        }
    }
}

impl fmt::Debug for StoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreGuard")
            .field("held", &self._held.is_some())
            .finish()
    }
}

/// Where a session keeps its token set.
///
/// Implementations must make [`save`](TokenStore::save) atomic: after an error, [`load`](TokenStore::load) returns
/// the old set.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored set, or `None` when nothing is stored.
    fn load(&self) -> Result<Option<TokenSet>, StoreError>;
    /// Replaces the stored set.
    fn save(&self, set: &TokenSet) -> Result<(), StoreError>;
    /// Forgets the stored set: on logout or revocation, and when the session finds the set dead (its refresh token
    /// rejected or expired), so that a later start does not try it again.
    fn clear(&self) -> Result<(), StoreError>;
    /// Takes the store's exclusive lock across processes, waiting for it. A session holds it around a refresh, and
    /// re-reads the store under it: another process may have refreshed already. The default holds nothing.
    fn lock(&self) -> Result<StoreGuard, StoreError> {
        Ok(StoreGuard::none())
    }
    /// Whether a call may wait: on a disk, a network or another process's lock. The async session runs the calls of
    /// a store that may block on tokio's blocking pool, and calls one that never does (an in-memory store) right on
    /// the runtime's thread, which spares each call two thread hops. The default, `true`, is always safe; say `false`
    /// only for a store whose every call returns at once.
    fn may_block(&self) -> bool {
        true
    }
}

/// Keeps the token set in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    set: Mutex<Option<TokenSet>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        Ok(self.set.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        *self.set.lock().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        *self.set.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Never: every call takes an uncontended in-process lock and returns.
    fn may_block(&self) -> bool {
        false
    }
}

/// A callback run each time a new token set has been stored.
pub type TokenHook = Arc<dyn Fn(&TokenSet) + Send + Sync>;

/// How a session stores and renews its tokens.
#[derive(Clone)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Where the token set is kept. Default: in memory.
    pub store: Arc<dyn TokenStore>,
    /// An async store the async session uses instead of `store` (the blocking session ignores it). Default: none.
    pub async_store: Option<Arc<dyn AsyncTokenStore>>,
    /// Renewal timing.
    pub lifecycle: crate::lifecycle::LifecycleConfig,
    /// Run after each new token set is stored.
    pub hooks: Vec<TokenHook>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            store: Arc::new(MemoryStore::new()),
            async_store: None,
            lifecycle: crate::lifecycle::LifecycleConfig::default(),
            hooks: Vec::new(),
        }
    }
}

impl fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOptions")
            .field("store", &self.store)
            .field("async_store", &self.async_store)
            .field("lifecycle", &self.lifecycle)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl SessionOptions {
    /// Keeps the tokens in `store`.
    pub fn with_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = store;
        self
    }

    /// Keeps the tokens in `store`, awaited by the async session (a database-backed store, say). The blocking
    /// session does not use it.
    pub fn with_async_store(mut self, store: Arc<dyn AsyncTokenStore>) -> Self {
        self.async_store = Some(store);
        self
    }

    /// Sets the renewal timing.
    pub fn with_lifecycle(mut self, config: crate::lifecycle::LifecycleConfig) -> Self {
        self.lifecycle = config;
        self
    }

    /// Runs `hook` after each new token set is stored.
    pub fn on_tokens(mut self, hook: impl Fn(&TokenSet) + Send + Sync + 'static) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }
}
