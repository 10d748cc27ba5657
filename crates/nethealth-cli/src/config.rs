//! Profiles in `config.json` in the platform's config folder, and where each profile keeps its secrets: the OS
//! keyring, or 0600 files beside the config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nethealth_oidc::{ClientSecret, FileStore, KeyringStore, TokenStore};
use serde::{Deserialize, Serialize};

use crate::fail::Failure;

/// The keyring service every entry is filed under.
const SERVICE: &str = "nethealth";

/// Where a profile keeps its tokens and client secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// The OS credential store (falls back to files, with a warning, where there is none).
    Keyring,
    /// Files with mode 0600 in the config folder.
    File,
}

/// One registered client of one provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Profile {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) redirect_uris: Vec<String>,
    #[serde(default)]
    pub(crate) auth_method: Option<String>,
    #[serde(default)]
    pub(crate) has_secret: bool,
    /// The scopes `login` asks for when none are given.
    #[serde(default)]
    pub(crate) scopes: Option<String>,
    /// What relative `call` paths are joined to; default: the issuer's origin.
    #[serde(default)]
    pub(crate) api: Option<String>,
    pub(crate) store: StoreKind,
}

/// The config file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, Profile>,
}

/// The folder holding the config and the file stores.
pub(crate) fn config_dir() -> Result<PathBuf, Failure> {
    if let Some(dir) = std::env::var_os("NETHEALTH_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("com", "Net Health", "nethealth")
        .map(|d| d.config_dir().to_owned())
        .ok_or_else(|| {
            Failure::Usage(
                "cannot find a home folder for the configuration: set NETHEALTH_CONFIG_DIR".into(),
            )
        })
}

fn config_path(dir: &Path) -> PathBuf {
    dir.join("config.json")
}

impl Config {
    /// Reads the config; a missing file is an empty config, a corrupt one an error that names the file.
    pub(crate) fn load(dir: &Path) -> Result<Config, Failure> {
        let path = config_path(dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => {
                return Err(Failure::Other(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        serde_json::from_slice(&text).map_err(|e| {
            Failure::Usage(format!(
                "the configuration {} is corrupt ({}): fix it, or remove it and run `nethealth register` again",
                path.display(),
                nethealth_oidc::core::json_reason(&e)
            ))
        })
    }

    /// Writes the config atomically (temp file, then rename).
    pub(crate) fn save(&self, dir: &Path) -> Result<(), Failure> {
        let io =
            |e: std::io::Error| Failure::Other(format!("cannot write to {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| Failure::Other(e.to_string()))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        std::io::Write::write_all(&mut file, &json).map_err(io)?;
        file.persist(config_path(dir)).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// The profile named `name`, or an error listing those there are.
    pub(crate) fn profile(&self, name: &str) -> Result<&Profile, Failure> {
        self.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            Failure::Usage(if known.is_empty() {
                format!(
                    "unknown profile `{name}`: no profile is registered yet; run `nethealth register --issuer URL --name NAME`"
                )
            } else {
                format!(
                    "unknown profile `{name}`: the profiles are {}; pick one with --profile or NETHEALTH_PROFILE",
                    known.join(", ")
                )
            })
        })
    }
}

/// Where one profile's secrets live, once the keyring has been tried.
#[derive(Debug, Clone)]
pub(crate) struct Vault {
    dir: PathBuf,
    profile: String,
    keyring: bool,
}

impl Vault {
    /// The vault of `profile` for `kind`. When the keyring is asked for but not usable, warns and uses files.
    pub(crate) fn open(dir: &Path, profile: &str, kind: StoreKind) -> Vault {
        let keyring = kind == StoreKind::Keyring
            && match keyring_usable(profile) {
                Ok(()) => true,
                Err(why) => {
                    crate::warn(&format!(
                        "no keyring is available ({why}); keeping the secrets of profile `{profile}` in 0600 files \
                         in {} instead (use --store file to choose this and silence the warning)",
                        dir.display()
                    ));
                    false
                }
            };
        Vault {
            dir: dir.to_owned(),
            profile: profile.to_owned(),
            keyring,
        }
    }

    fn entry(&self, what: &str) -> Result<keyring::Entry, Failure> {
        keyring::Entry::new(SERVICE, &format!("{}:{what}", self.profile))
            .map_err(|e| Failure::Other(format!("the keyring failed: {e}")))
    }

    fn secret_path(&self) -> PathBuf {
        self.dir.join(format!("{}.secret", self.profile))
    }

    /// The token store.
    pub(crate) fn tokens(&self) -> Result<Arc<dyn TokenStore>, Failure> {
        if self.keyring {
            let store = KeyringStore::new(SERVICE, &format!("{}:tokens", self.profile))?;
            return Ok(Arc::new(store));
        }
        Ok(Arc::new(FileStore::new(self.token_path())))
    }

    fn token_path(&self) -> PathBuf {
        self.dir.join(format!("{}.tokens.json", self.profile))
    }

    /// Where the tokens are, for `status`.
    pub(crate) fn describe(&self) -> String {
        if self.keyring {
            format!(
                "the OS keyring (service `{SERVICE}`, entry `{}:tokens`)",
                self.profile
            )
        } else {
            self.token_path().display().to_string()
        }
    }

    /// Stores the client secret.
    pub(crate) fn save_secret(&self, secret: &ClientSecret) -> Result<(), Failure> {
        if self.keyring {
            return self
                .entry("client-secret")?
                .set_password(secret.expose_secret())
                .map_err(|e| {
                    Failure::Other(format!("the keyring refused the client secret: {e}"))
                });
        }
        write_private(&self.secret_path(), secret.expose_secret().as_bytes())
    }

    /// The client secret.
    pub(crate) fn load_secret(&self) -> Result<ClientSecret, Failure> {
        let missing = || {
            Failure::Usage(format!(
                "the client secret of profile `{}` is missing: run `nethealth register` again",
                self.profile
            ))
        };
        if self.keyring {
            return self
                .entry("client-secret")?
                .get_password()
                .map(ClientSecret::new)
                .map_err(|_| missing());
        }
        let text = std::fs::read_to_string(self.secret_path()).map_err(|_| missing())?;
        Ok(ClientSecret::new(text.trim_end().to_owned()))
    }

    /// Forgets the client secret (when a profile is registered anew).
    pub(crate) fn forget_secret(&self) {
        if self.keyring {
            if let Ok(entry) = self.entry("client-secret") {
                let _ = entry.delete_credential();
            }
        } else {
            let _ = std::fs::remove_file(self.secret_path());
        }
    }
}

/// Whether the keyring works here: `NETHEALTH_NO_KEYRING` says there is none; otherwise a probe entry is read.
fn keyring_usable(profile: &str) -> Result<(), String> {
    if std::env::var_os("NETHEALTH_NO_KEYRING").is_some_and(|v| !v.is_empty()) {
        return Err("NETHEALTH_NO_KEYRING is set".into());
    }
    let entry =
        keyring::Entry::new(SERVICE, &format!("{profile}:tokens")).map_err(|e| e.to_string())?;
    match entry.get_secret() {
        Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Other(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // tempfile creates the file with mode 0600 on Unix.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut file, bytes).map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
