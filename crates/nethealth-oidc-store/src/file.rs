//! The file mechanics behind [`FileStore`](crate::FileStore): atomic replace, mode 0600, an advisory lock, and a
//! versioned envelope so that a corrupt file is recognised and never silently replaced.
//!
//! A writer killed between creating its temp file and renaming it (`SIGKILL`, power loss) leaves the temp file
//! behind: nothing runs to remove it. Temp files are named after the file they replace
//! (`.<name>.<6 random letters or digits>.tmp`), so whoever next takes the lock on `<name>` removes the ones it finds:
//! every writer that follows the protocol writes under the lock, so a temp file seen while holding it is a leftover.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The `format` field of every file this crate writes.
pub(crate) const FORMAT: &str = "nethealth-oidc/token-set";
/// The envelope version this crate writes and reads.
pub(crate) const VERSION: u32 = 1;

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    format: &'a str,
    version: u32,
    data: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    format: String,
    version: u32,
    data: serde_json::Value,
}

/// Reads and checks the envelope at `path`; `Ok(None)` when there is no file.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path, &e)),
    };
    decode(&bytes, path).map(Some)
}

/// Decodes and checks an envelope read from `path` (a file, or a name standing for a keyring entry).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let envelope: EnvelopeIn = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(match e.classify() {
            serde_json::error::Category::Eof => "the file is truncated".to_owned(),
            serde_json::error::Category::Syntax => "the file is not JSON".to_owned(),
            _ => format!(
                "the file is not a nethealth-oidc token file (line {} column {})",
                e.line(),
                e.column()
            ),
        })
    })?;
    if envelope.format != FORMAT {
        return Err(corrupt(format!("the file's format is not `{FORMAT}`")));
    }
    if envelope.version != VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_owned(),
            found: envelope.version,
        });
    }
    T::deserialize(envelope.data)
        .map_err(|e| corrupt(format!("the file does not hold a token set ({e})")))
}

/// Encodes `data` in the versioned envelope.
pub(crate) fn encode<T: Serialize>(data: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&EnvelopeOut {
        format: FORMAT,
        version: VERSION,
        data,
    })
    .map_err(|e| StoreError::Serialize(e.to_string()))
}

/// Replaces the file at `path` atomically: a temp file in the same folder (mode 0600), written, fsynced, renamed
/// over the old one, and the folder fsynced. A crash at any point leaves either the old file or the new one.
pub(crate) fn write<T: Serialize>(path: &Path, data: &T) -> Result<(), StoreError> {
    let dir = parent(path);
    fs::create_dir_all(&dir).map_err(|e| StoreError::io("create the folder for", path, &e))?;
    let json = encode(data)?;
    // tempfile creates the file with mode 0600 on Unix; it is removed if anything below fails.
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .rand_bytes(TEMP_RANDOM)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(&dir)
        .map_err(|e| StoreError::io("create a temp file beside", path, &e))?;
    tmp.write_all(&json)
        .map_err(|e| StoreError::io("write a temp file beside", path, &e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| StoreError::io("fsync a temp file beside", path, &e))?;
    tmp.persist(path)
        .map_err(|e| StoreError::io("rename a temp file onto", path, &e.error))?;
    sync_dir(&dir).map_err(|e| StoreError::io("fsync the folder of", path, &e))?;
    Ok(())
}

/// Removes the file; no file is fine.
pub(crate) fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path, &e)),
    }
}

/// Takes the exclusive advisory lock on `<path>.lock`, waiting for it; released when the file is dropped.
pub(crate) fn lock(path: &Path) -> Result<File, StoreError> {
    let lock_path = lock_path(path);
    fs::create_dir_all(parent(path))
        .map_err(|e| StoreError::io("create the folder for", path, &e))?;
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&lock_path)
        .map_err(|e| StoreError::io("open the lock file", &lock_path, &e))?;
    file.lock()
        .map_err(|e| StoreError::io("lock", &lock_path, &e))?;
    sweep_stale_temps(path);
    Ok(file)
}

/// How many random characters tempfile puts in a temp file's name.
const TEMP_RANDOM: usize = 6;
/// The end of a temp file's name.
const TEMP_SUFFIX: &str = ".tmp";

/// The start of the names of the temp files that replace `path`: `.<name>.`.
fn temp_prefix(path: &Path) -> std::ffi::OsString {
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    prefix
}

/// Whether `name` is the name of a temp file that replaces the file whose temp names start with `prefix`.
fn is_temp_of(name: &std::ffi::OsStr, prefix: &std::ffi::OsStr) -> bool {
    let (Some(name), Some(prefix)) = (name.to_str(), prefix.to_str()) else {
        return false;
    };
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|random| {
            random.len() == TEMP_RANDOM && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes the temp files a killed writer of `path` left behind. Called with the lock held, so none of them is being
/// written. Best effort: a temp file that cannot be removed now is tried again at the next lock.
fn sweep_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(parent(path)) else {
        return;
    };
    for entry in entries.flatten() {
        if is_temp_of(&entry.file_name(), &prefix) {
            // Another locker may have removed it first, or the folder may be read-only: both are fine here.
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The lock file beside `path`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn temp_names_belong_to_one_file_only() {
        let prefix = temp_prefix(Path::new("/x/tokens.json"));
        assert_eq!(prefix, OsStr::new(".tokens.json."));
        assert!(is_temp_of(OsStr::new(".tokens.json.aB3xY9.tmp"), &prefix));
        for other in [
            "tokens.json",
            "tokens.json.lock",
            ".tokens.json.aB3xY.tmp",
            ".tokens.json.aB3xY9Z.tmp",
            ".tokens.json.a-3xY9.tmp",
            ".tokens.json.x.aB3xY9.tmp",
            ".tokens.json.other.aB3xY9.tmp",
            ".nethealth-oidc-aB3xY9.tmp",
        ] {
            assert!(!is_temp_of(OsStr::new(other), &prefix), "{other}");
        }
    }

    #[test]
    fn taking_the_lock_sweeps_this_files_leftovers_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let mine = dir.path().join(".tokens.json.aB3xY9.tmp");
        let theirs = dir.path().join(".other.json.aB3xY9.tmp");
        fs::write(&mine, b"half a set").unwrap();
        fs::write(&theirs, b"another store's write in flight").unwrap();
        let guard = lock(&path).unwrap();
        assert!(!mine.exists(), "a leftover of this file is removed");
        assert!(theirs.exists(), "another file's temp file is left alone");
        drop(guard);
    }
}
