//! [`Traced`]: a session's store with every call in a `nethealth_oidc.store` span.

use std::sync::Arc;

use nethealth_oidc_core::lifecycle::TokenSet;
use nethealth_oidc_core::store::{StoreError, StoreGuard, TokenStore};
use tracing::field::Empty;

/// Every call of a session's store in a `nethealth_oidc.store` span: the operation, whether it succeeded, whether
/// a load found a set, and how long it took. Never a token, never the key (a keyed store's entry is one key's).
#[derive(Debug)]
pub(crate) struct Traced(pub(crate) Arc<dyn TokenStore>);

fn traced<T>(
    op: &'static str,
    call: impl FnOnce() -> Result<T, StoreError>,
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
    let result = span.in_scope(call);
    span.record("ok", result.is_ok());
    if let Some(found) = result.as_ref().ok().and_then(found) {
        span.record("found", found);
    }
    span.record("elapsed_us", started.elapsed().as_micros() as u64);
    result
}

impl TokenStore for Traced {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        traced("load", || self.0.load(), |set| Some(set.is_some()))
    }

    fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        traced("save", || self.0.save(set), |_| None)
    }

    fn clear(&self) -> Result<(), StoreError> {
        traced("clear", || self.0.clear(), |_| None)
    }

    fn lock(&self) -> Result<StoreGuard, StoreError> {
        traced("lock", || self.0.lock(), |_| None)
    }

    fn may_block(&self) -> bool {
        self.0.may_block()
    }
}
