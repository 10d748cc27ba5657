//! [`KeyedFileStore`]: many users' token sets, one file per [`SessionKey`] in a folder only the owner can read.

use std::path::{Path, PathBuf};

use nethealth_oidc_core::store::{KeyedTokenStore, SessionKey};

use crate::{FileStore, StoreError, StoreGuard, TokenSet, TokenStore};

/// Keeps each key's token set in its own file in one folder (mode 0700). Each file is a [`FileStore`]: mode 0600,
/// atomic replace, its own `<file>.lock`, corruption detected.
///
/// A key is never used as a path: the file of key K is `<folder>/<hex SHA-256 of K>.json`, so a key such as
/// `../../etc/passwd` names a file inside the folder like any other, and the key (a session id, perhaps) is not
/// written to the disk.
#[derive(Debug, Clone)]
pub struct KeyedFileStore {
    dir: PathBuf,
}

impl KeyedFileStore {
    /// A store in the folder `dir`, made with mode 0700 if it does not exist. An existing folder that other users
    /// can read or enter is refused: `chmod 700` it, or choose another.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let store = KeyedFileStore { dir: dir.into() };
        store.ensure_dir()?;
        Ok(store)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `key`.
    pub fn path_of(&self, key: &SessionKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.digest_hex()))
    }

    /// The single-entry store of `key` (the same file this store reads and writes for it).
    pub fn entry(&self, key: &SessionKey) -> FileStore {
        FileStore::new(self.path_of(key))
    }

    /// Makes the folder if it is gone (mode 0700) and checks that only its owner can use it.
    fn ensure_dir(&self) -> Result<(), StoreError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&self.dir)
            .map_err(|e| StoreError::io("create the token folder", &self.dir, &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&self.dir)
                .map_err(|e| StoreError::io("inspect the token folder", &self.dir, &e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(StoreError::Io {
                    action: "use the token folder",
                    path: self.dir.clone(),
                    reason: format!(
                        "its mode is {:o}, so other users can read it; run `chmod 700` on it",
                        mode & 0o777
                    ),
                });
            }
        }
        Ok(())
    }
}

impl KeyedTokenStore for KeyedFileStore {
    fn load(&self, key: &SessionKey) -> Result<Option<TokenSet>, StoreError> {
        self.entry(key).load()
    }

    fn save(&self, key: &SessionKey, set: &TokenSet) -> Result<(), StoreError> {
        self.ensure_dir()?;
        self.entry(key).save(set)
    }

    fn clear(&self, key: &SessionKey) -> Result<(), StoreError> {
        // The empty `<file>.lock` stays: removing it while another process waits on it would let two processes
        // each lock a different file.
        self.entry(key).clear()
    }

    fn lock(&self, key: &SessionKey) -> Result<StoreGuard, StoreError> {
        self.ensure_dir()?;
        self.entry(key).lock()
    }
}
