//! [`RedisStore`]: one token set shared by a fleet of replicas, with exactly one refresh across them.
//!
//! ```text
//!  replica A                         Redis                                 replica B
//!  lock():  SET k:lease a NX PX ttl ─▶ OK                                  SET k:lease b NX PX ttl ─▶ nil (waits)
//!  (a thread renews: PEXPIRE if the owner is still a, every ttl/3)
//!  load(), refresh at the provider
//!  save():  EVAL fenced-set ─────────▶ GET k:lease == a ? SET k value : refused
//!  drop(guard): EVAL compare-and-delete ─▶ DEL k:lease if it is still a
//!                                                                          SET k:lease b NX PX ttl ─▶ OK
//!                                                                          load(): A's set, adopted; no refresh
//! ```
//!
//! If A dies while it holds the lease, the lease expires after `ttl` and B takes over. If A was only slow (its lease
//! expired or was taken), its save is refused with [`StoreError::LeaseLost`], so a stale replica never overwrites a
//! newer rotated token.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use crate::{StoreError, StoreGuard, TokenSet, TokenStore};

/// The `format` field of every value this store writes.
const FORMAT: &str = "nethealth-oidc/redis-token-set";
/// The envelope version this store writes and reads.
const VERSION: u32 = 1;

/// Sets the value only while the caller still owns the lease: the fencing check, done atomically in Redis.
const FENCED_SET: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0";

/// Extends the lease only while the caller still owns it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Deletes the lease only while the caller still owns it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A 256-bit key for AES-256-GCM encryption at rest. Debug prints it redacted; it is zeroized on drop.
pub struct EncryptionKey(SecretBox<[u8; 32]>);

impl EncryptionKey {
    /// A key from 32 bytes (for example from your secrets manager).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EncryptionKey(SecretBox::new(Box::new(bytes)))
    }

    /// A key from standard base64 of 32 bytes (`openssl rand -base64 32`).
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bad = || {
            StoreError::Other(
                "the encryption key is not standard base64 of 32 bytes; make one with `openssl rand -base64 32`"
                    .into(),
            )
        };
        let bytes = zeroize::Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| bad())?);
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(EncryptionKey::from_bytes(array))
    }

    fn aead(&self) -> aws_lc_rs::aead::RandomizedNonceKey {
        aws_lc_rs::aead::RandomizedNonceKey::new(
            &aws_lc_rs::aead::AES_256_GCM,
            self.0.expose_secret(),
        )
        .expect("AES-256-GCM accepts any 32-byte key")
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([redacted])")
    }
}

/// How a [`RedisStore`] connects, leases and encrypts.
#[derive(Debug)]
#[non_exhaustive]
pub struct RedisOptions {
    /// How long to wait for a connection (and its `AUTH`). Default 2 s.
    pub connect_timeout: Duration,
    /// How long to wait for one command's answer. Default 2 s.
    pub command_timeout: Duration,
    /// How long a lease lives unless renewed; it is renewed every third of this while held, so a replica that dies
    /// blocks the others for at most this long. Default 10 s.
    pub lease: Duration,
    /// How long [`lock`](TokenStore::lock) waits for a lease held by another replica. Default 30 s.
    pub lock_wait: Duration,
    /// Prepended to every Redis key this store uses. Default `nethealth-oidc:`.
    pub prefix: String,
    /// Encrypts the stored set with AES-256-GCM when set. Default: none.
    pub encryption: Option<EncryptionKey>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(10),
            lock_wait: Duration::from_secs(30),
            prefix: "nethealth-oidc:".to_owned(),
            encryption: None,
        }
    }
}

impl RedisOptions {
    /// Sets the connect and command timeouts.
    pub fn with_timeouts(mut self, connect: Duration, command: Duration) -> Self {
        self.connect_timeout = connect;
        self.command_timeout = command;
        self
    }

    /// Sets the lease's lifetime (at least 30 ms).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// Sets how long `lock` waits for another replica's lease.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Encrypts the stored set with `key`.
    pub fn with_encryption(mut self, key: EncryptionKey) -> Self {
        self.encryption = Some(key);
        self
    }
}

/// What every store of one connection shares: the client, idle connections, the options.
struct Shared {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    options: RedisOptions,
    /// `redis://host:port/db`, never with credentials.
    server: String,
}

/// The lease this store holds, if any; shared with its renewal thread.
struct Lease {
    owner: String,
    lost: AtomicBool,
}

/// Keeps the token set of one caller-chosen key (for example a user id) in Redis, shared by every replica.
///
/// - [`save`](TokenStore::save) is one `SET` (or, under a lease, one fenced script) of a versioned envelope that
///   records its key, so a value copied from another key is reported as [`StoreError::Corrupt`]; with
///   [`RedisOptions::with_encryption`] the set is sealed with AES-256-GCM, its key bound as associated data.
/// - [`lock`](TokenStore::lock) takes a lease (`SET key:lease owner NX PX ttl`, the owner `pid:random`), renewed by a background thread
///   while the guard lives and released by a compare-and-delete script when it drops. While a lease is held, `save`
///   succeeds only if Redis still names this owner ([`StoreError::LeaseLost`] otherwise).
/// - Every command has a timeout; an unreachable or slow server gives [`StoreError::Unavailable`], bad credentials
///   [`StoreError::Unauthorized`].
///
/// `Clone` is cheap and shares the connections and the lease; [`for_key`](Self::for_key) gives the store of another
/// key over the same connections.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
    key: Arc<str>,
    lease: Arc<Mutex<Option<Arc<Lease>>>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.shared.server)
            .field("key", &self.key)
            .field("encrypted", &self.shared.options.encryption.is_some())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RedisStore {
    /// The store of `key` at `url` (`redis://[:password@]host:port[/db]`, or `redis://user:password@...` for an ACL
    /// user). The URL is checked now; nothing is sent until the store is used.
    pub fn open(url: &str, key: &str, options: RedisOptions) -> Result<Self, StoreError> {
        // The parse error is not shown: it could echo a password.
        let client = redis::Client::open(url).map_err(|_| {
            StoreError::Other(
                "the Redis URL is not valid; write it as redis://[:password@]host:port[/db]".into(),
            )
        })?;
        let info = client.get_connection_info();
        let server = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        Ok(RedisStore {
            shared: Arc::new(Shared {
                client,
                idle: Mutex::new(Vec::new()),
                options,
                server,
            }),
            key: key.into(),
            lease: Arc::new(Mutex::new(None)),
        })
    }

    /// The store of another key over the same connections and options (for example, per user).
    pub fn for_key(&self, key: &str) -> RedisStore {
        RedisStore {
            shared: Arc::clone(&self.shared),
            key: key.into(),
            lease: Arc::new(Mutex::new(None)),
        }
    }

    /// The caller-chosen key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The Redis key that holds the set.
    pub fn redis_key(&self) -> String {
        format!("{}{}", self.shared.options.prefix, self.key)
    }

    /// The Redis key that holds the lease.
    pub fn lease_key(&self) -> String {
        format!("{}{}:lease", self.shared.options.prefix, self.key)
    }

    /// How this store is named in errors: server and key, never credentials.
    fn name(&self) -> String {
        format!("{} key {}", self.shared.server, self.redis_key())
    }

    /// Runs `f` on an idle connection (or a new one); a connection that failed is dropped, not reused.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let idle = lock(&self.shared.idle).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        match f(&mut conn) {
            Ok(value) => {
                lock(&self.shared.idle).push(conn);
                Ok(value)
            }
            Err(e) => Err(self.error(&e)),
        }
    }

    fn connect(&self) -> Result<redis::Connection, StoreError> {
        let options = &self.shared.options;
        let conn = self
            .shared
            .client
            .get_connection_with_timeout(options.connect_timeout)
            .map_err(|e| self.error(&e))?;
        let timeout = Some(options.command_timeout.max(Duration::from_millis(1)));
        conn.set_read_timeout(timeout)
            .and_then(|()| conn.set_write_timeout(timeout))
            .map_err(|e| self.error(&e))?;
        Ok(conn)
    }

    fn error(&self, e: &redis::RedisError) -> StoreError {
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
        if auth {
            StoreError::Unauthorized {
                store: self.shared.server.clone(),
                reason: e.to_string(),
            }
        } else {
            let options = &self.shared.options;
            // A timeout's own text is the OS's ("Resource temporarily unavailable"): say what happened instead.
            let reason = if e.is_timeout() {
                format!(
                    "no answer within the command timeout ({} ms) or connect timeout ({} ms)",
                    options.command_timeout.as_millis(),
                    options.connect_timeout.as_millis()
                )
            } else if e.is_connection_refusal() {
                format!("connection refused: nothing listens there ({e})")
            } else {
                e.to_string()
            };
            StoreError::Unavailable {
                store: self.name(),
                reason,
            }
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.name().into(),
            reason: reason.into(),
        }
    }

    fn encode(&self, set: &TokenSet) -> Result<Vec<u8>, StoreError> {
        let mut envelope = Envelope {
            format: FORMAT.to_owned(),
            version: VERSION,
            key: self.key.to_string(),
            data: None,
            sealed: None,
        };
        match &self.shared.options.encryption {
            None => {
                envelope.data = Some(
                    serde_json::to_value(set).map_err(|e| StoreError::Serialize(e.to_string()))?,
                );
            }
            Some(key) => {
                let mut buf = zeroize::Zeroizing::new(
                    serde_json::to_vec(set).map_err(|e| StoreError::Serialize(e.to_string()))?,
                );
                let aad = aws_lc_rs::aead::Aad::from(self.key.as_bytes());
                let nonce = key
                    .aead()
                    .seal_in_place_append_tag(aad, &mut *buf)
                    .map_err(|_| StoreError::Serialize("AES-256-GCM sealing failed".into()))?;
                let mut sealed = nonce.as_ref().to_vec();
                sealed.extend_from_slice(&buf);
                envelope.sealed = Some(STANDARD.encode(sealed));
            }
        }
        serde_json::to_vec(&envelope).map_err(|e| StoreError::Serialize(e.to_string()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<TokenSet, StoreError> {
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|_| self.corrupt("the value is not a nethealth-oidc token envelope"))?;
        if envelope.format != FORMAT {
            return Err(self.corrupt(format!("the value's format is not `{FORMAT}`")));
        }
        if envelope.version != VERSION {
            return Err(StoreError::UnsupportedVersion {
                path: self.name().into(),
                found: envelope.version,
            });
        }
        if envelope.key != *self.key {
            return Err(self.corrupt(format!(
                "the value was written for key `{}`, not `{}` (copied between keys?)",
                envelope.key, self.key
            )));
        }
        match (&self.shared.options.encryption, envelope.data, envelope.sealed) {
            (None, Some(data), None) => TokenSet::deserialize(data)
                .map_err(|e| self.corrupt(format!("the value does not hold a token set ({e})"))),
            (Some(key), None, Some(sealed)) => {
                let sealed = STANDARD
                    .decode(sealed)
                    .map_err(|_| self.corrupt("the sealed value is not base64"))?;
                let nonce_len = aws_lc_rs::aead::NONCE_LEN;
                if sealed.len() < nonce_len {
                    return Err(self.corrupt("the sealed value is truncated"));
                }
                let (nonce, ciphertext) = sealed.split_at(nonce_len);
                let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| self.corrupt("the sealed value's nonce is invalid"))?;
                let mut buf = zeroize::Zeroizing::new(ciphertext.to_vec());
                let aad = aws_lc_rs::aead::Aad::from(self.key.as_bytes());
                let plain = key.aead().open_in_place(nonce, aad, &mut buf).map_err(|_| {
                    self.corrupt("the value cannot be decrypted: a different encryption key, or it was altered")
                })?;
                serde_json::from_slice(plain)
                    .map_err(|e| self.corrupt(format!("the value does not hold a token set ({e})")))
            }
            (None, None, Some(_)) => Err(self.corrupt(
                "the value is encrypted but this store has no encryption key; configure the same key as the writer",
            )),
            (Some(_), Some(_), None) => Err(self.corrupt(
                "the value is stored unencrypted but this store requires encryption; delete it and log in again",
            )),
            _ => Err(self.corrupt("the envelope holds neither `data` nor `sealed`")),
        }
    }

    fn held_lease(&self) -> Option<Arc<Lease>> {
        lock(&self.lease).clone()
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    /// Base64 of the 12-byte nonce followed by the AES-256-GCM ciphertext and tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
}

impl TokenStore for RedisStore {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        let key = self.redis_key();
        let value: Option<Vec<u8>> = self.with_conn(|c| redis::cmd("GET").arg(&key).query(c))?;
        value.map(|bytes| self.decode(&bytes)).transpose()
    }

    fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        let value = self.encode(set)?;
        let key = self.redis_key();
        let Some(lease) = self.held_lease() else {
            // Outside a lease (the first save of a new login): one plain, atomic SET.
            return self.with_conn(|c| redis::cmd("SET").arg(&key).arg(&value).query(c));
        };
        if lease.lost.load(Ordering::SeqCst) {
            return Err(StoreError::LeaseLost { store: self.name() });
        }
        let lease_key = self.lease_key();
        let stored: i64 = self.with_conn(|c| {
            redis::Script::new(FENCED_SET)
                .key(&key)
                .key(&lease_key)
                .arg(&value)
                .arg(&lease.owner)
                .invoke(c)
        })?;
        if stored == 1 {
            Ok(())
        } else {
            lease.lost.store(true, Ordering::SeqCst);
            Err(StoreError::LeaseLost { store: self.name() })
        }
    }

    fn clear(&self) -> Result<(), StoreError> {
        let key = self.redis_key();
        self.with_conn(|c| redis::cmd("DEL").arg(&key).query(c))
    }

    fn lock(&self) -> Result<StoreGuard, StoreError> {
        let mut owner = [0u8; 16];
        aws_lc_rs::rand::fill(&mut owner).map_err(|_| {
            StoreError::Other("the system RNG failed; the lease owner could not be drawn".into())
        })?;
        // `pid:random`: unique, and it tells an operator (or a test) which process holds the lease.
        let random: String = owner.iter().map(|b| format!("{b:02x}")).collect();
        let owner = format!("{}:{random}", std::process::id());
        let options = &self.shared.options;
        let ttl_ms = u64::try_from(options.lease.as_millis()).unwrap_or(u64::MAX);
        let lease_key = self.lease_key();
        let started = Instant::now();
        loop {
            let acquired: Option<String> = self.with_conn(|c| {
                redis::cmd("SET")
                    .arg(&lease_key)
                    .arg(&owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query(c)
            })?;
            if acquired.is_some() {
                break;
            }
            let waited = started.elapsed();
            if waited >= options.lock_wait {
                return Err(StoreError::LockTimeout {
                    store: self.name(),
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
            }
            thread::sleep(Duration::from_millis(20).min(options.lease / 4));
        }
        let lease = Arc::new(Lease {
            owner,
            lost: AtomicBool::new(false),
        });
        *lock(&self.lease) = Some(Arc::clone(&lease));
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = {
            let store = self.clone();
            let lease = Arc::clone(&lease);
            thread::Builder::new()
                .name("nethealth-oidc-redis-lease".into())
                .spawn(move || renew_while_held(&store, &lease, &stopped, ttl_ms))
                .map_err(|e| {
                    StoreError::Other(format!("could not start the lease renewal thread: {e}"))
                })?
        };
        Ok(StoreGuard::holding(LeaseGuard {
            store: self.clone(),
            lease,
            stop: Some(stop),
            renewer: Some(renewer),
        }))
    }
}

/// Renews the lease every third of its lifetime until told to stop, or until it is lost (taken by another owner,
/// or not renewed for a whole lifetime because Redis did not answer).
fn renew_while_held(store: &RedisStore, lease: &Lease, stopped: &mpsc::Receiver<()>, ttl_ms: u64) {
    let ttl = Duration::from_millis(ttl_ms);
    let mut renewed = Instant::now();
    let lease_key = store.lease_key();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3) {
        let result: Result<i64, StoreError> = store.with_conn(|c| {
            redis::Script::new(RENEW)
                .key(&lease_key)
                .arg(&lease.owner)
                .arg(ttl_ms)
                .invoke(c)
        });
        match result {
            Ok(1) => renewed = Instant::now(),
            Ok(_) => {
                tracing::warn!(store = %store.name(), "the lease was taken by another process");
                lease.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) if renewed.elapsed() >= ttl => {
                tracing::warn!(error = %e, "the lease could not be renewed before it expired");
                lease.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "lease renewal failed; retrying"),
        }
    }
}

/// Held inside the [`StoreGuard`]: stops the renewal thread, then releases the lease if it is still ours.
struct LeaseGuard {
    store: RedisStore,
    lease: Arc<Lease>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<thread::JoinHandle<()>>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        {
            let mut held = lock(&self.store.lease);
            if held.as_ref().is_some_and(|l| Arc::ptr_eq(l, &self.lease)) {
                *held = None;
            }
        }
        let lease_key = self.store.lease_key();
        let released: Result<i64, StoreError> = self.store.with_conn(|c| {
            redis::Script::new(RELEASE)
                .key(&lease_key)
                .arg(&self.lease.owner)
                .invoke(c)
        });
        if let Err(e) = released {
            tracing::warn!(error = %e, "the lease could not be released; it expires on its own");
        }
    }
}
