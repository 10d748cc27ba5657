//! Where the async session calls a blocking store: a store that may block (the default) on tokio's blocking pool,
//! one that says it never blocks (`TokenStore::may_block` = false, as `MemoryStore` does) on the runtime's own
//! thread. On a current-thread runtime the difference is visible as the thread each call ran on.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use nethealth_oidc_core::context::ClientOptions;
use nethealth_oidc_core::discovery::ProviderMetadata;
use nethealth_oidc_core::jwks::JwkSet;
use nethealth_oidc_core::lifecycle::TokenSet;
use nethealth_oidc_core::secret::ClientSecret;
use nethealth_oidc_core::store::{MemoryStore, StoreError, StoreGuard, TokenStore};
use nethealth_oidc_core::{ClientConfig, ManualClock, Scopes, UnixTime};
use nethealth_oidc_reqwest::{HttpClient, Provider, SessionOptions};
use nethealth_oidc_test_support::{Scripted, ScriptedServer};

/// A memory store that records the thread of every call and says whether it may block.
#[derive(Debug)]
struct Recording {
    may_block: bool,
    inner: MemoryStore,
    threads: Mutex<Vec<(&'static str, ThreadId)>>,
}

impl Recording {
    fn record(&self, op: &'static str) {
        let id = std::thread::current().id();
        self.threads.lock().expect("not poisoned").push((op, id));
    }
}

impl TokenStore for Recording {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.record("load");
        self.inner.load()
    }
    fn save(&self, set: &TokenSet) -> Result<(), StoreError> {
        self.record("save");
        self.inner.save(set)
    }
    fn clear(&self) -> Result<(), StoreError> {
        self.record("clear");
        self.inner.clear()
    }
    fn lock(&self) -> Result<StoreGuard, StoreError> {
        self.record("lock");
        self.inner.lock()
    }
    fn may_block(&self) -> bool {
        self.may_block
    }
}

/// Runs a client-credentials session through one renewal on a current-thread runtime, and returns the store's
/// calls with whether each ran on the runtime's thread.
fn calls_of_one_renewal(may_block: bool) -> Vec<(&'static str, bool)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let server = ScriptedServer::start();
    server.set_default(Scripted::json(
        200,
        r#"{"access_token":"at","token_type":"Bearer","expires_in":3600}"#,
    ));
    let metadata: ProviderMetadata = serde_json::from_value(serde_json::json!({
        "issuer": server.url(""),
        "authorization_endpoint": server.url("/authorize"),
        "token_endpoint": server.url("/token"),
    }))
    .expect("valid metadata");
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(1_800_000_000)));
    let store = Arc::new(Recording {
        may_block,
        inner: MemoryStore::new(),
        threads: Mutex::new(Vec::new()),
    });
    let runtime_thread = std::thread::current().id();
    rt.block_on(async {
        let provider = Provider::from_parts(
            HttpClient::new(Default::default()).expect("an HTTP client"),
            metadata,
            JwkSet::default(),
            clock.clone(),
        )
        .expect("a provider");
        let client = provider
            .client(
                ClientConfig::new("app", Some(ClientSecret::new("secret"))),
                ClientOptions::default(),
            )
            .expect("a client");
        let options = SessionOptions::default().with_store(store.clone());
        let session = client
            .client_credentials_session(&Scopes::parse("api"), options)
            .await
            .expect("a session");
        store.threads.lock().expect("not poisoned").clear();
        clock.advance(Duration::from_secs(2 * 3600));
        session.access_token().await.expect("a renewed token");
    });
    assert_eq!(
        server.count("/token"),
        2,
        "one token at the start, one renewal"
    );
    let calls = store.threads.lock().expect("not poisoned").clone();
    calls
        .into_iter()
        .map(|(op, thread)| (op, thread == runtime_thread))
        .collect()
}

#[test]
fn a_store_that_never_blocks_is_called_on_the_runtime_thread() {
    let calls = calls_of_one_renewal(false);
    let ops: Vec<&str> = calls.iter().map(|(op, _)| *op).collect();
    assert!(ops.contains(&"lock") && ops.contains(&"save"), "{ops:?}");
    assert!(calls.iter().all(|(_, here)| *here), "{calls:?}");
}

#[test]
fn a_store_that_may_block_is_called_on_the_blocking_pool() {
    let calls = calls_of_one_renewal(true);
    let ops: Vec<&str> = calls.iter().map(|(op, _)| *op).collect();
    assert!(ops.contains(&"lock") && ops.contains(&"save"), "{ops:?}");
    assert!(calls.iter().all(|(_, here)| !*here), "{calls:?}");
}
