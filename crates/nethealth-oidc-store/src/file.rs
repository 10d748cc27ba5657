//! The file mechanics behind [`FileStore`](crate::FileStore): atomic replace, mode 0600, an advisory lock, and a
//! versioned envelope so that a corrupt file is recognised and never silently replaced.

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
        .prefix(".nethealth-oidc-")
        .suffix(".tmp")
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
    Ok(file)
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
