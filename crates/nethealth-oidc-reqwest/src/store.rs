//! [`BlockingStore`]: a sync store ([`TokenStore`], [`KeyedTokenStore`]) run on tokio's blocking pool, so that the
//! async session and [`Sessions`](crate::Sessions) await every store the same way.

use std::sync::Arc;

use tracing::Instrument;
use tracing::field::Empty;

use nethealth_oidc_core::lifecycle::TokenSet;
use nethealth_oidc_core::store::{
    AsyncKeyedTokenStore, AsyncTokenStore, KeyedTokenStore, SessionKey, SessionOptions, StoreError,
    StoreGuard, TokenStore,
};

/// A sync store as an async one: each call runs on tokio's blocking pool, off the runtime's threads. The async
/// session wraps [`SessionOptions::store`] in one unless [`SessionOptions::async_store`] is set.
#[derive(Debug)]
pub struct BlockingStore<S: ?Sized>(Arc<S>);

impl<S: ?Sized> BlockingStore<S> {
    /// Runs `store` on the blocking pool.
    pub fn new(store: Arc<S>) -> Self {
        BlockingStore(store)
    }
}

/// The store the async session uses for `options`, traced.
pub(crate) fn async_store(options: &SessionOptions) -> Arc<dyn AsyncTokenStore> {
    let store: Arc<dyn AsyncTokenStore> = match &options.async_store {
        Some(store) => Arc::clone(store),
        None => Arc::new(BlockingStore::new(Arc::clone(&options.store))),
    };
    Arc::new(Traced(store))
}

/// Every call of a session's store in a `nethealth_oidc.store` span: the operation, whether it succeeded, whether
/// a load found a set, and how long it took. Never a token, never the key (a keyed store's entry is one key's).
#[derive(Debug)]
struct Traced(Arc<dyn AsyncTokenStore>);

async fn traced<T>(
    op: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
    found: impl FnOnce(&T) -> Option<bool>,
) -> Result<T, StoreError> {
    let span = tracing::debug_span!(
        "nethealth_oidc.store",
        op,
        ok = Empty,
        found = Empty,
        elapsed_us = Empty
    );
    let started = std::time::Instant::now();
    let result = call.instrument(span.clone()).await;
    span.record("ok", result.is_ok());
    if let Some(found) = result.as_ref().ok().and_then(found) {
        span.record("found", found);
    }
    span.record("elapsed_us", started.elapsed().as_micros() as u64);
    result
}

#[async_trait::async_trait]
impl AsyncTokenStore for Traced {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        traced("load", self.0.load(), |set| Some(set.is_some())).await
    }

    async fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        traced("save", self.0.save(set), |_| None).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        traced("clear", self.0.clear(), |_| None).await
    }

    async fn lock(&self) -> Result<StoreGuard, StoreError> {
        traced("lock", self.0.lock(), |_| None).await
    }
}

/// Runs store I/O off the async threads; a task that fails is a store error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other(format!("the store task failed: {e}")))?
}

impl<S: ?Sized + Send + Sync + 'static> BlockingStore<S> {
    /// Runs `f` on the store: on the blocking pool, or right here when the store says it never blocks (`inline`),
    /// which spares a renewal two thread hops per store call.
    async fn call<T: Send + 'static>(
        &self,
        inline: bool,
        f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if inline {
            return f(&self.0);
        }
        let store = Arc::clone(&self.0);
        blocking(move || f(&store)).await
    }
}

#[async_trait::async_trait]
impl<S: TokenStore + ?Sized + 'static> AsyncTokenStore for BlockingStore<S> {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.call(!self.0.may_block(), |s| s.load()).await
    }

    async fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        let set = set.clone();
        self.call(!self.0.may_block(), move |s| s.save(&set)).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.call(!self.0.may_block(), |s| s.clear()).await
    }

    async fn lock(&self) -> Result<StoreGuard, StoreError> {
        self.call(!self.0.may_block(), |s| s.lock()).await
    }
}

#[async_trait::async_trait]
impl<S: KeyedTokenStore + ?Sized + 'static> AsyncKeyedTokenStore for BlockingStore<S> {
    async fn load(&self, key: &SessionKey) -> Result<Option<TokenSet>, StoreError> {
        let key = key.clone();
        self.call(!self.0.may_block(), move |s| s.load(&key)).await
    }

    async fn save(&self, key: &SessionKey, set: &TokenSet) -> Result<(), StoreError> {
        let (key, set) = (key.clone(), set.clone());
        self.call(!self.0.may_block(), move |s| s.save(&key, &set))
            .await
    }

    async fn clear(&self, key: &SessionKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.call(!self.0.may_block(), move |s| s.clear(&key)).await
    }

    async fn lock(&self, key: &SessionKey) -> Result<StoreGuard, StoreError> {
        let key = key.clone();
        self.call(!self.0.may_block(), move |s| s.lock(&key)).await
    }
}
