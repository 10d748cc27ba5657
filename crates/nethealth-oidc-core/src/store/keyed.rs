//! Many users' sessions: [`SessionKey`], the keyed stores ([`KeyedTokenStore`], [`AsyncKeyedTokenStore`]), the
//! async single-entry store ([`AsyncTokenStore`]) and [`SessionCache`], the bounded cache of live sessions that
//! the transports' `Sessions` keep.
//!
//! A web service holds one token set per user (or per tenant, or per browser session). It picks a [`SessionKey`]
//! for each (a random session id kept in a cookie, a user id, a tenant id) and keeps every user's set in one keyed
//! store. [`KeyedEntry`] turns a keyed store and a key into the single-entry store a session writes through, so a
//! session of key K behaves exactly as a single-user session does, lock and all.
//!
//! A store that does I/O of its own (a database) implements the async traits, so that it does not block the
//! runtime's threads; the async transport runs the sync traits on tokio's blocking pool.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use sha2::{Digest, Sha256};

use super::{StoreError, StoreGuard, TokenStore};
use crate::lifecycle::TokenSet;

/// The caller-chosen key of one user's session: a random session id, a user id, a tenant id.
///
/// A session id taken from a cookie grants access to that user's tokens, so `Debug` never shows the key itself,
/// only [`fingerprint`](Self::fingerprint) (a short SHA-256 prefix that tells keys apart in logs). The stores of
/// `nethealth-oidc-store` name their files and keyring entries by [`digest_hex`](Self::digest_hex), so the key
/// never reaches the disk either. Cheap to clone.
///
/// A key is hashed once, when it is made, with SipHash under a key drawn once per process (as `std`'s `HashMap`
/// draws its own), so that looking it up in a [`SessionCache`] does not hash the string again, and keys chosen to
/// collide cannot slow the cache down.
#[derive(Clone, Eq)]
pub struct SessionKey {
    text: Arc<str>,
    hash: u64,
}

/// The process's SipHash key for [`SessionKey`]s (`RandomState` draws it from the OS once).
fn key_hasher() -> &'static std::collections::hash_map::RandomState {
    static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    STATE.get_or_init(Default::default)
}

impl SessionKey {
    /// A key; any string, including an empty one (give each user their own).
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        use std::hash::BuildHasher as _;
        let text: Arc<str> = key.into();
        let hash = key_hasher().hash_one(&*text);
        SessionKey { text, hash }
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The lower-case hex SHA-256 of the key: 64 characters of `[0-9a-f]`, safe as a file name on every system.
    pub fn digest_hex(&self) -> String {
        hex(&Sha256::digest(self.text.as_bytes()))
    }

    /// The first 8 hex characters of [`digest_hex`](Self::digest_hex): enough to tell keys apart in a log, useless
    /// for guessing the key.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(self.text.as_bytes())[..4])
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}

impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The hasher of [`SessionCache`]'s map: a [`SessionKey`] brings its own SipHash, so this passes it through (and
/// mixes anything else it is given, which the cache never does).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap<T> = HashMap<SessionKey, T, std::hash::BuildHasherDefault<KeyHasher>>;

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey(#{})", self.fingerprint())
    }
}

impl From<&str> for SessionKey {
    fn from(key: &str) -> Self {
        SessionKey::new(key)
    }
}

impl From<String> for SessionKey {
    fn from(key: String) -> Self {
        SessionKey::new(key)
    }
}

/// Where many sessions keep their token sets, one per [`SessionKey`].
///
/// The same contract as [`TokenStore`], per key: [`save`](Self::save) is atomic (after an error,
/// [`load`](Self::load) returns the old set), and [`lock`](Self::lock) is an exclusive lock on one key's entry.
pub trait KeyedTokenStore: Send + Sync + fmt::Debug {
    /// The set stored under `key`, or `None`.
    fn load(&self, key: &SessionKey) -> Result<Option<TokenSet>, StoreError>;
    /// Replaces the set stored under `key`.
    fn save(&self, key: &SessionKey, set: &TokenSet) -> Result<(), StoreError>;
    /// Forgets the set stored under `key` (logout, revocation); nothing stored is fine.
    fn clear(&self, key: &SessionKey) -> Result<(), StoreError>;
    /// Takes the exclusive lock on `key`'s entry, waiting for it. The default holds nothing.
    fn lock(&self, key: &SessionKey) -> Result<StoreGuard, StoreError> {
        let _ = key;
        Ok(StoreGuard::none())
    }
    /// Whether a call may wait, as [`TokenStore::may_block`](crate::store::TokenStore::may_block) (default `true`).
    fn may_block(&self) -> bool {
        true
    }
}

/// [`TokenStore`] for a store that does I/O of its own (a database, a remote cache): the async session awaits it
/// instead of blocking a runtime thread. Same contract as [`TokenStore`].
#[async_trait::async_trait]
pub trait AsyncTokenStore: Send + Sync + fmt::Debug {
    /// The stored set, or `None`.
    async fn load(&self) -> Result<Option<TokenSet>, StoreError>;
    /// Replaces the stored set, atomically.
    async fn save(&self, set: &TokenSet) -> Result<(), StoreError>;
    /// Forgets the stored set.
    async fn clear(&self) -> Result<(), StoreError>;
    /// Takes the store's exclusive lock. The default holds nothing.
    async fn lock(&self) -> Result<StoreGuard, StoreError> {
        Ok(StoreGuard::none())
    }
}

/// [`KeyedTokenStore`] for a store that does I/O of its own (a database table keyed by session): the async
/// `Sessions` await it. Same contract as [`KeyedTokenStore`].
#[async_trait::async_trait]
pub trait AsyncKeyedTokenStore: Send + Sync + fmt::Debug {
    /// The set stored under `key`, or `None`.
    async fn load(&self, key: &SessionKey) -> Result<Option<TokenSet>, StoreError>;
    /// Replaces the set stored under `key`, atomically.
    async fn save(&self, key: &SessionKey, set: &TokenSet) -> Result<(), StoreError>;
    /// Forgets the set stored under `key`.
    async fn clear(&self, key: &SessionKey) -> Result<(), StoreError>;
    /// Takes the exclusive lock on `key`'s entry. The default holds nothing.
    async fn lock(&self, key: &SessionKey) -> Result<StoreGuard, StoreError> {
        let _ = key;
        Ok(StoreGuard::none())
    }
}

/// One key's entry of a keyed store, as the single-entry store a session writes through: a [`TokenStore`] over a
/// [`KeyedTokenStore`], or an [`AsyncTokenStore`] over an [`AsyncKeyedTokenStore`].
#[derive(Debug, Clone)]
pub struct KeyedEntry<S: ?Sized> {
    store: Arc<S>,
    key: SessionKey,
}

impl<S: ?Sized> KeyedEntry<S> {
    /// The entry of `key` in `store`.
    pub fn new(store: Arc<S>, key: SessionKey) -> Self {
        KeyedEntry { store, key }
    }

    /// The key.
    pub fn key(&self) -> &SessionKey {
        &self.key
    }
}

impl<S: KeyedTokenStore + ?Sized> TokenStore for KeyedEntry<S> {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.store.load(&self.key)
    }

    fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        self.store.save(&self.key, set)
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.store.clear(&self.key)
    }

    fn lock(&self) -> Result<StoreGuard, StoreError> {
        self.store.lock(&self.key)
    }

    fn may_block(&self) -> bool {
        self.store.may_block()
    }
}

#[async_trait::async_trait]
impl<S: AsyncKeyedTokenStore + ?Sized> AsyncTokenStore for KeyedEntry<S> {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.store.load(&self.key).await
    }

    async fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        self.store.save(&self.key, set).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.store.clear(&self.key).await
    }

    async fn lock(&self) -> Result<StoreGuard, StoreError> {
        self.store.lock(&self.key).await
    }
}

/// Keeps every key's token set in memory. A cleared key takes no memory.
#[derive(Debug, Default)]
pub struct MemoryKeyedStore {
    sets: Mutex<HashMap<SessionKey, TokenSet>>,
}

impl MemoryKeyedStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryKeyedStore::default()
    }

    /// How many keys hold a set.
    pub fn len(&self) -> usize {
        self.sets().len()
    }

    /// Whether no key holds a set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sets(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, TokenSet>> {
        self.sets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyedTokenStore for MemoryKeyedStore {
    fn load(&self, key: &SessionKey) -> Result<Option<TokenSet>, StoreError> {
        Ok(self.sets().get(key).cloned())
    }

    fn save(&self, key: &SessionKey, set: &TokenSet) -> Result<(), StoreError> {
        self.sets().insert(key.clone(), set.clone());
        Ok(())
    }

    fn clear(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.sets().remove(key);
        Ok(())
    }

    /// Never: every call takes an uncontended in-process lock and returns.
    fn may_block(&self) -> bool {
        false
    }
}

/// A handle to shared state (a transport's `Session` is an `Arc` inside) that a [`SessionCache`] can keep a weak
/// reference to once it evicts it, so that a session still held by a caller is found again, not loaded twice.
pub trait LiveHandle: Clone {
    /// A reference that does not keep the value alive.
    type Weak: Send + Sync;
    /// The weak reference to this value.
    fn downgrade(&self) -> Self::Weak;
    /// The value, if someone still holds it.
    fn upgrade(weak: &Self::Weak) -> Option<Self>;
}

impl<T: Send + Sync> LiveHandle for Arc<T> {
    type Weak = std::sync::Weak<T>;

    fn downgrade(&self) -> Self::Weak {
        Arc::downgrade(self)
    }

    fn upgrade(weak: &Self::Weak) -> Option<Self> {
        weak.upgrade()
    }
}

/// The bounded cache of live sessions behind the transports' `Sessions`: key to value (a `Session`), with a
/// per-key load lock `L` so that one key's session is loaded once however many callers ask at the same time.
///
/// [`get`](Self::get) takes a read lock and sets an atomic flag, nothing else. When a new key would exceed the
/// capacity, the cache sweeps: it drops the entries not used since the previous sweep (second chance), and if that
/// is not enough, others, until it is at nine tenths of its capacity. A dropped entry's session lives on in the
/// hands of whoever holds it; its tokens stay in the store. The cache keeps a weak reference to it
/// ([`LiveHandle`]): while anyone still holds it, the next [`slot`](Self::slot) of its key gets that same session
/// back, so one key never has two live sessions (two refreshes); once nobody does, the next `get` loads the key
/// again. Weak references to dropped sessions are pruned at each sweep.
pub struct SessionCache<V: LiveHandle, L> {
    map: RwLock<KeyMap<Arc<CacheSlot<V, L>>>>,
    /// Sessions evicted while someone may still hold them.
    evicted: Mutex<KeyMap<V::Weak>>,
    capacity: usize,
}

/// One key's place in a [`SessionCache`]: the value once loaded, and the lock its loaders take.
pub struct CacheSlot<V, L> {
    value: OnceLock<V>,
    used: AtomicBool,
    loading: L,
}

impl<V, L> CacheSlot<V, L> {
    /// The value, once loaded.
    pub fn value(&self) -> Option<&V> {
        self.value.get()
    }

    /// Sets the value if none is set yet; returns the value in the slot.
    pub fn set(&self, value: V) -> &V {
        self.value.get_or_init(|| value)
    }

    /// The lock a loader holds while it loads (a `tokio::sync::Mutex<()>` or a `std::sync::Mutex<()>`).
    pub fn loading(&self) -> &L {
        &self.loading
    }
}

impl<V: LiveHandle, L> fmt::Debug for SessionCache<V, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field(
                "len",
                &self.map.read().unwrap_or_else(|p| p.into_inner()).len(),
            )
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<V: LiveHandle, L: Default> SessionCache<V, L> {
    /// The default capacity: 10,000 live sessions.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A cache of at most `capacity` sessions (at least one).
    pub fn new(capacity: usize) -> Self {
        SessionCache {
            map: RwLock::new(KeyMap::default()),
            evicted: Mutex::new(KeyMap::default()),
            capacity: capacity.max(1),
        }
    }

    /// The most sessions kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many keys have a slot (loaded or loading).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The loaded value of `key`, if cached: the hot path.
    pub fn get(&self, key: &SessionKey) -> Option<V> {
        let map = self.read();
        let slot = map.get(key)?;
        let value = slot.value.get()?.clone();
        if !slot.used.load(Ordering::Relaxed) {
            slot.used.store(true, Ordering::Relaxed);
        }
        Some(value)
    }

    /// The slot of `key`, made if there is none (sweeping first if the cache is full). A made slot holds the key's
    /// evicted session if someone still holds it, else nothing (the caller loads it).
    pub fn slot(&self, key: &SessionKey) -> Arc<CacheSlot<V, L>> {
        if let Some(slot) = self.read().get(key) {
            return Arc::clone(slot);
        }
        let mut map = self.write();
        if let Some(slot) = map.get(key) {
            return Arc::clone(slot);
        }
        if map.len() >= self.capacity {
            self.sweep(&mut map);
        }
        let live = self
            .evicted()
            .remove(key)
            .and_then(|weak| V::upgrade(&weak));
        let slot = Arc::new(CacheSlot {
            value: live.map_or_else(OnceLock::new, OnceLock::from),
            used: AtomicBool::new(true),
            loading: L::default(),
        });
        map.insert(key.clone(), Arc::clone(&slot));
        slot
    }

    /// Puts `value` in a fresh slot for `key`, replacing any cached one; returns the replaced value.
    pub fn insert(&self, key: &SessionKey, value: V) -> Option<V> {
        let slot = Arc::new(CacheSlot {
            value: OnceLock::from(value),
            used: AtomicBool::new(true),
            loading: L::default(),
        });
        let mut map = self.write();
        if map.len() >= self.capacity && !map.contains_key(key) {
            self.sweep(&mut map);
        }
        self.evicted().remove(key);
        map.insert(key.clone(), slot)
            .and_then(|old| old.value.get().cloned())
    }

    /// Forgets `key`'s session (logout): its slot, and any evicted session of `key`; returns the slot's value, if
    /// it was loaded. A later `get` loads the key again.
    pub fn remove(&self, key: &SessionKey) -> Option<V> {
        let mut map = self.write();
        self.evicted().remove(key);
        map.remove(key).and_then(|old| old.value.get().cloned())
    }

    /// Drops `key`'s slot as a sweep would: while someone holds its session, the next `slot` of `key` gets it back.
    pub fn evict(&self, key: &SessionKey) -> Option<V> {
        let mut map = self.write();
        let value = map.remove(key).and_then(|old| old.value.get().cloned());
        if let Some(value) = &value {
            self.evicted().insert(key.clone(), value.downgrade());
        }
        value
    }

    /// Drops `key`'s slot if it is still `slot` and holds no value (a load that found nothing stored).
    pub fn remove_empty(&self, key: &SessionKey, slot: &Arc<CacheSlot<V, L>>) {
        let mut map = self.write();
        if map
            .get(key)
            .is_some_and(|s| Arc::ptr_eq(s, slot) && s.value.get().is_none())
        {
            map.remove(key);
        }
    }

    fn sweep(&self, map: &mut KeyMap<Arc<CacheSlot<V, L>>>) {
        let target = self.capacity - self.capacity / 10 - 1;
        let mut evicted = self.evicted();
        evicted.retain(|_, weak| V::upgrade(weak).is_some());
        let mut keep_weak = |key: &SessionKey, slot: &CacheSlot<V, L>| {
            if let Some(value) = slot.value.get() {
                evicted.insert(key.clone(), value.downgrade());
            }
        };
        // Second chance: what was not used since the last sweep goes first; the rest start over as unused.
        map.retain(|key, slot| {
            let used = slot.used.swap(false, Ordering::Relaxed);
            if !used {
                keep_weak(key, slot);
            }
            used
        });
        if map.len() > target {
            let excess = map.len() - target;
            let victims: Vec<SessionKey> = map.keys().take(excess).cloned().collect();
            for key in victims {
                if let Some(slot) = map.remove(&key) {
                    keep_weak(&key, &slot);
                }
            }
        }
    }

    fn evicted(&self) -> std::sync::MutexGuard<'_, KeyMap<V::Weak>> {
        self.evicted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyMap<Arc<CacheSlot<V, L>>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyMap<Arc<CacheSlot<V, L>>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cache = SessionCache<Arc<u32>, ()>;

    fn v(i: u32) -> Arc<u32> {
        Arc::new(i)
    }

    #[test]
    fn debug_shows_a_fingerprint_never_the_key() {
        let key = SessionKey::new("s3cr3t-session-id");
        let debug = format!("{key:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert_eq!(debug, format!("SessionKey(#{})", key.fingerprint()));
        assert_eq!(key.digest_hex().len(), 64);
        assert!(key.digest_hex().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            SessionKey::new("a").digest_hex(),
            SessionKey::new("b").digest_hex()
        );
    }

    #[test]
    fn slots_load_once_and_the_cache_stays_bounded() {
        let cache = Cache::new(100);
        for i in 0..1_000u32 {
            let key = SessionKey::new(i.to_string());
            let slot = cache.slot(&key);
            assert_eq!(**slot.set(v(i)), i);
            assert_eq!(**slot.set(v(i + 1)), i, "the first value stays");
            assert!(cache.len() <= 100, "{} entries", cache.len());
        }
        let key = SessionKey::new("999");
        assert_eq!(cache.get(&key), Some(v(999)), "the newest entry is kept");
        assert_eq!(cache.remove(&key), Some(v(999)));
        assert_eq!(cache.get(&key), None);
    }

    #[test]
    fn a_sweep_drops_what_was_not_used_since_the_last_one() {
        let cache = Cache::new(10);
        for i in 0..10u32 {
            cache.insert(&SessionKey::new(i.to_string()), v(i));
        }
        // The first sweep finds everything used: it marks all as unused and drops two to make room.
        cache.insert(&SessionKey::new("x"), v(100));
        assert_eq!(cache.len(), 9);
        let survivors: Vec<u32> = (0..10u32)
            .filter(|i| cache.get(&SessionKey::new(i.to_string())).is_some())
            .collect();
        assert_eq!(survivors.len(), 8);
        // Only three of the survivors are used again before the next sweep.
        let unused = SessionKey::new(survivors[4].to_string());
        for i in &survivors[..3] {
            cache.get(&SessionKey::new(i.to_string()));
        }
        let map = cache.write();
        for i in &survivors[3..] {
            map[&SessionKey::new(i.to_string())]
                .used
                .store(false, Ordering::Relaxed);
        }
        drop(map);
        cache.insert(&SessionKey::new("y"), v(101));
        cache.insert(&SessionKey::new("z"), v(102));
        for i in &survivors[..3] {
            assert_eq!(cache.get(&SessionKey::new(i.to_string())), Some(v(*i)));
        }
        assert_eq!(cache.get(&unused), None, "not used since the last sweep");
        assert_eq!(cache.get(&SessionKey::new("x")), Some(v(100)));
        assert_eq!(cache.get(&SessionKey::new("z")), Some(v(102)));
        assert_eq!(cache.len(), 6);
    }

    #[test]
    fn an_evicted_session_still_held_is_found_again_not_loaded_twice() {
        let cache = Cache::new(1);
        let (a, b) = (SessionKey::new("a"), SessionKey::new("b"));
        let held = cache.slot(&a).set(v(1)).clone();
        cache.insert(&b, v(2));
        assert_eq!(cache.get(&a), None, "a was swept out");
        let slot = cache.slot(&a);
        let again = slot.value().expect("the live session is put back");
        assert!(Arc::ptr_eq(again, &held), "the very session a caller holds");
        // Explicit eviction too; once nobody holds it, the key is loaded again.
        assert!(cache.evict(&a).is_some());
        assert!(Arc::ptr_eq(cache.slot(&a).value().unwrap(), &held));
        cache.evict(&a);
        drop((held, slot));
        assert!(cache.slot(&a).value().is_none(), "nothing live: load it");
        // Logout forgets an evicted session as well.
        let held = cache
            .slot(&b)
            .value()
            .cloned()
            .unwrap_or_else(|| cache.slot(&b).set(v(3)).clone());
        cache.evict(&b);
        cache.remove(&b);
        assert!(cache.slot(&b).value().is_none(), "removed means removed");
        drop(held);
    }

    #[test]
    fn an_empty_slot_is_dropped_only_while_empty() {
        let cache = Cache::new(10);
        let key = SessionKey::new("k");
        let slot = cache.slot(&key);
        cache.remove_empty(&key, &slot);
        assert!(cache.is_empty());
        let slot = cache.slot(&key);
        slot.set(v(1));
        cache.remove_empty(&key, &slot);
        assert_eq!(cache.get(&key), Some(v(1)));
    }

    #[test]
    fn the_memory_store_keeps_keys_apart() {
        use crate::context::Grant;
        use crate::secret::AccessToken;
        use crate::token::TokenResponse;
        use crate::{GrantedScopes, ScopeSource, Scopes, UnixTime};
        let set = |token: &str| {
            let scopes = Scopes::parse("openid");
            let granted = GrantedScopes::new(scopes.clone(), scopes, ScopeSource::TokenResponse);
            let response = TokenResponse::new(AccessToken::new(token));
            TokenSet::from_grant(
                Grant::new(response, None, granted, UnixTime::from_secs(1)),
                None,
            )
        };
        let store = Arc::new(MemoryKeyedStore::new());
        let (a, b) = (SessionKey::new("a"), SessionKey::new("b"));
        let entry = KeyedEntry::new(Arc::clone(&store), a.clone());
        assert!(TokenStore::load(&entry).unwrap().is_none());
        TokenStore::save(&entry, &set("token-a")).unwrap();
        store.save(&b, &set("token-b")).unwrap();
        let loaded = TokenStore::load(&entry).unwrap().unwrap();
        assert_eq!(loaded.access_token.expose_secret(), "token-a");
        let loaded = KeyedTokenStore::load(&*store, &b).unwrap().unwrap();
        assert_eq!(loaded.access_token.expose_secret(), "token-b");
        TokenStore::clear(&entry).unwrap();
        assert_eq!(store.len(), 1, "a cleared key takes no memory");
        assert!(TokenStore::load(&entry).unwrap().is_none());
    }
}
