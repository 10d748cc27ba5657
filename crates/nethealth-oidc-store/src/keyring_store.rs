//! [`KeyringStore`]: the token set in the operating system's credential store.

use std::path::PathBuf;

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
}
