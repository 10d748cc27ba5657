//! [`KeyringStore`]: the token set in the operating system's credential store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nethealth_oidc_core::store::{KeyedTokenStore, SessionKey};

use crate::{StoreError, TokenSet, TokenStore, file};

/// Keeps the token set in the OS credential store, through the `keyring` crate: the macOS Keychain, the Windows
/// Credential Manager, or the Linux kernel's keyutils (which keeps it until logout or reboot, not across them).
///
/// The entry holds the same versioned envelope as [`FileStore`](crate::FileStore)'s file, so a corrupt entry is
/// reported as [`StoreError::Corrupt`] and never overwritten. It has no cross-process lock: two processes sharing
/// one entry may both refresh (each re-reads the entry first, so a lost race shows as `invalid_grant`, then as a
/// re-read of the winner's tokens).
pub struct KeyringStore {
    entry: keyring::Entry,
    name: PathBuf,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("entry", &self.name)
            .finish()
    }
}

impl KeyringStore {
    /// The entry for `service` (for example your application's name) and `user` (for example the account).
    pub fn new(service: &str, user: &str) -> Result<Self, StoreError> {
        let name = PathBuf::from(format!("keyring:{service}/{user}"));
        let entry = keyring::Entry::new(service, user).map_err(|e| error("open", &name, &e))?;
        Ok(KeyringStore { entry, name })
    }

    /// A store over an entry made by the caller (for another keyring target, or a mock in tests).
    pub fn with_entry(entry: keyring::Entry, name: &str) -> Self {
        KeyringStore {
            entry,
            name: PathBuf::from(format!("keyring:{name}")),
        }
    }

    fn read(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entry.get_secret() {
            Ok(bytes) => Ok(Some(bytes)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(error("read", &self.name, &e)),
        }
    }
}

fn error(action: &'static str, name: &std::path::Path, e: &keyring::Error) -> StoreError {
    StoreError::Io {
        action,
        path: name.to_owned(),
        reason: e.to_string(),
    }
}

impl TokenStore for KeyringStore {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.read()?
            .map(|bytes| file::decode(&bytes, &self.name))
            .transpose()
    }

    fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        // Like the file store: a corrupt entry is reported, never silently replaced.
        if let Some(bytes) = self.read()? {
            file::decode::<TokenSet>(&bytes, &self.name)?;
        }
        let bytes = file::encode(set)?;
        self.entry
            .set_secret(&bytes)
            .map_err(|e| error("write", &self.name, &e))
    }

    fn clear(&self) -> Result<(), StoreError> {
        match self.entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(error("delete", &self.name, &e)),
        }
    }
}

/// Makes the keyring entry for a service and a user (the default is `keyring::Entry::new`).
type EntryFactory = dyn Fn(&str, &str) -> Result<keyring::Entry, keyring::Error> + Send + Sync;

/// Many users' token sets in the OS credential store: one entry per [`SessionKey`], under one `service`, whose user
/// name is the key's hex SHA-256 (the key itself, a session id perhaps, is never written). Each entry behaves as a
/// [`KeyringStore`]; like it, there is no cross-process lock.
pub struct KeyringKeyedStore {
    service: String,
    make: Box<EntryFactory>,
    entries: Mutex<HashMap<String, Arc<KeyringStore>>>,
}

impl std::fmt::Debug for KeyringKeyedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringKeyedStore")
            .field("service", &self.service)
            .field("open_entries", &self.entries().len())
            .finish()
    }
}

impl KeyringKeyedStore {
    /// The entries of `service` (for example your application's name).
    pub fn new(service: impl Into<String>) -> Self {
        KeyringKeyedStore::with_entries(service, keyring::Entry::new)
    }

    /// Entries made by `make(service, user)` (for another keyring target, or mock credentials in tests).
    pub fn with_entries(
        service: impl Into<String>,
        make: impl Fn(&str, &str) -> Result<keyring::Entry, keyring::Error> + Send + Sync + 'static,
    ) -> Self {
        KeyringKeyedStore {
            service: service.into(),
            make: Box::new(make),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<KeyringStore>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `key`, opened once and kept until the key is cleared.
    fn entry(&self, key: &SessionKey) -> Result<Arc<KeyringStore>, StoreError> {
        let user = key.digest_hex();
        let mut entries = self.entries();
        if let Some(entry) = entries.get(&user) {
            return Ok(Arc::clone(entry));
        }
        let name = format!("{}/{user}", self.service);
        let entry = (self.make)(&self.service, &user)
            .map_err(|e| error("open", &PathBuf::from(format!("keyring:{name}")), &e))?;
        let store = Arc::new(KeyringStore::with_entry(entry, &name));
        entries.insert(user, Arc::clone(&store));
        Ok(store)
    }
}

impl KeyedTokenStore for KeyringKeyedStore {
    fn load(&self, key: &SessionKey) -> Result<Option<TokenSet>, StoreError> {
        self.entry(key)?.load()
    }

    fn save(&self, key: &SessionKey, set: &TokenSet) -> Result<(), StoreError> {
        self.entry(key)?.save(set)
    }

    fn clear(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.entry(key)?.clear()?;
        self.entries().remove(&key.digest_hex());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyringStore {
        let entry =
            keyring::Entry::new_with_credential(Box::new(keyring::mock::MockCredential::default()));
        KeyringStore::with_entry(entry, "test/alice")
    }

    fn set(access: &str) -> TokenSet {
        let body = serde_json::json!({"access_token": access, "token_type": "Bearer", "expires_in": 60, "refresh_token": "r"});
        let response = http::Response::builder()
            .status(200)
            .body(body.to_string().into_bytes())
            .expect("a response");
        let scopes = nethealth_oidc_core::Scopes::parse("openid");
        TokenSet::from_grant(
            nethealth_oidc_core::context::Grant::new(
                nethealth_oidc_core::token::parse_token_response(&response).expect("parses"),
                None,
                nethealth_oidc_core::GrantedScopes::new(
                    scopes.clone(),
                    scopes,
                    nethealth_oidc_core::ScopeSource::TokenResponse,
                ),
                nethealth_oidc_core::UnixTime::from_secs(1_700_000_000),
            ),
            None,
        )
    }

    #[test]
    fn round_trip_clear_and_corruption() {
        let store = store();
        assert!(store.load().unwrap().is_none());
        store.save(&set("a1")).unwrap();
        assert_eq!(
            store.load().unwrap().unwrap().access_token.expose_secret(),
            "a1"
        );
        store.save(&set("a2")).unwrap();
        assert_eq!(
            store.load().unwrap().unwrap().access_token.expose_secret(),
            "a2"
        );
        store.clear().unwrap();
        assert!(store.load().unwrap().is_none());
        store.clear().unwrap();
        store
            .entry
            .set_secret(br#"{"format":"nethealth-oidc/tok"#)
            .unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        assert!(matches!(
            store.save(&set("a3")),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(!format!("{store:?}").contains("a1"));
    }

    #[test]
    fn keyed_entries_are_apart_and_named_by_digest() {
        let names = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&names);
        let store = KeyringKeyedStore::with_entries("nethealth-test", move |service, user| {
            seen.lock().unwrap().push(format!("{service}/{user}"));
            Ok(keyring::Entry::new_with_credential(Box::new(
                keyring::mock::MockCredential::default(),
            )))
        });
        let (a, b) = (SessionKey::new("../../etc/passwd"), SessionKey::new("bob"));
        store.save(&a, &set("token-a")).unwrap();
        store.save(&b, &set("token-b")).unwrap();
        let load = |k| {
            store
                .load(k)
                .unwrap()
                .unwrap()
                .access_token
                .expose_secret()
                .to_owned()
        };
        assert_eq!(load(&a), "token-a");
        assert_eq!(load(&b), "token-b");
        store.clear(&a).unwrap();
        assert!(store.load(&a).unwrap().is_none());
        assert_eq!(load(&b), "token-b");
        let names = names.lock().unwrap();
        assert!(
            names.contains(&format!("nethealth-test/{}", a.digest_hex())),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .all(|n| !n.contains("passwd") && !n.contains("bob"))
        );
        assert!(!format!("{store:?}").contains("token"));
    }
}
