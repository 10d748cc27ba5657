//! # nethealth-oidc-store
//!
//! Where a session keeps its tokens between runs. Refresh tokens outlive access tokens and grant new ones, so they
//! are stored with care:
//!
//! - [`TokenStore`] (from the core, re-exported) is the trait a session writes through. It stores a [`TokenSet`]:
//!   the tokens, their expiry and the granted scopes — never the client secret. [`MemoryStore`] keeps it in memory.
//! - [`FileStore`] keeps it in a file: mode 0600; replaced atomically (temp file, fsync, rename, fsync of the folder),
//!   so a crash leaves the old set or the new one, never half of each; an advisory lock on `<file>.lock` so that two
//!   processes sharing the file refresh once; a versioned envelope, so a corrupt or truncated file gives
//!   [`StoreError::Corrupt`] and is never silently replaced.
//!
//! - `KeyringStore` (feature `keyring`) keeps it in the OS credential store.
//! - `RedisStore` (feature `redis`) keeps it in Redis for a fleet of replicas: a fenced lease so that exactly one
//!   replica refreshes, optional AES-256-GCM encryption at rest.
//!
//! For a service with many users, the keyed stores keep one set per [`SessionKey`]: [`MemoryKeyedStore`],
//! [`KeyedFileStore`] (one file per key in a 0700 folder, named by the key's SHA-256, never by the key) and
//! `KeyringKeyedStore` (feature `keyring`).
//!
//! The sessions in `nethealth-oidc-reqwest` and `nethealth-oidc-ureq` persist a rotated refresh token **before**
//! they hand out the new access token; if [`TokenStore::save`] fails, the caller gets the error and the stored set
//! is still the old one.

use std::path::{Path, PathBuf};

pub use nethealth_oidc_core::lifecycle::TokenSet;
pub use nethealth_oidc_core::store::{MemoryStore, StoreError, StoreGuard, TokenStore};

mod file;
mod keyed;
#[cfg(feature = "keyring")]
mod keyring_store;
#[cfg(feature = "redis")]
mod redis_store;

pub use keyed::KeyedFileStore;
#[cfg(feature = "keyring")]
pub use keyring_store::{KeyringKeyedStore, KeyringStore};
pub use nethealth_oidc_core::store::{KeyedTokenStore, MemoryKeyedStore, SessionKey};
#[cfg(feature = "redis")]
pub use redis_store::{EncryptionKey, RedisOptions, RedisStore};

/// The system clock, as the transports read it: Unix seconds from [`std::time::SystemTime`]. (The core never reads
/// a clock; this crate holds what touches the operating system.)
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl nethealth_oidc_core::Clock for SystemClock {
    fn now(&self) -> nethealth_oidc_core::UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        nethealth_oidc_core::UnixTime::from_secs(secs)
    }
}

/// Keeps the token set in a file: mode 0600, atomic replace, a lock on `<file>.lock`, corruption detected.
///
/// Crash safety: a writer killed at any moment leaves the old complete set or the new one (tested by killing a
/// writing process with `SIGKILL` 100 times). It may also leave its temp file (`.<file>.<random>.tmp`) behind; the
/// next [`lock`](TokenStore::lock) removes such leftovers, so they never pile up. Write under the lock, as the
/// sessions do: a [`save`](TokenStore::save) made without it while another process holds the lock may have its temp
/// file swept, and then fails with an error (the file still holds a complete set).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path`. Nothing is read or written until it is used.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Decodes the bytes of a token file as [`FileStore`] reads them: checks the versioned envelope and returns the
/// token set it holds. `path` only names the file in errors.
///
/// A file that is truncated, not JSON, or not a nethealth-oidc token file gives [`StoreError::Corrupt`]; one
/// written by a newer version of this crate gives [`StoreError::UnsupportedVersion`]. Useful to inspect a file
/// without taking the store's lock; the fuzz target `store_envelope` drives it with arbitrary bytes.
pub fn decode_token_file(bytes: &[u8], path: &Path) -> Result<TokenSet, StoreError> {
    file::decode(bytes, path)
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        file::read(&self.path)
    }

    fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        // A corrupt file is never silently replaced: it may be the only copy of a refresh token someone wants back.
        file::read::<TokenSet>(&self.path)?;
        file::write(&self.path, set)
    }

    fn clear(&self) -> Result<(), StoreError> {
        file::remove(&self.path)
    }

    fn lock(&self) -> Result<StoreGuard, StoreError> {
        file::lock(&self.path).map(StoreGuard::holding)
    }
}
