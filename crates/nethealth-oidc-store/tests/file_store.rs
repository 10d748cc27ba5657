//! The file store against a real file system.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::token;
use nethealth_oidc_core::{GrantedScopes, ScopeSource, Scopes, UnixTime};
use nethealth_oidc_store::{FileStore, MemoryStore, StoreError, TokenSet, TokenStore};

fn set(access: &str, refresh: &str) -> TokenSet {
    let body = serde_json::json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh});
    let response = http::Response::builder()
        .status(200)
        .body(body.to_string().into_bytes())
        .unwrap();
    let scopes = Scopes::parse("openid patients.read");
    TokenSet::from_grant(
        Grant::new(
            token::parse_token_response(&response).unwrap(),
            None,
            GrantedScopes::new(scopes.clone(), scopes, ScopeSource::TokenResponse),
            UnixTime::from_secs(1_700_000_000),
        ),
        None,
    )
}

fn refresh_of(store: &dyn TokenStore) -> String {
    store
        .load()
        .unwrap()
        .unwrap()
        .refresh_token
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[test]
fn save_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("sub/tokens.json"));
    assert!(store.load().unwrap().is_none(), "no file yet");
    store.save(&set("at-1", "rt-1")).unwrap();
    assert_eq!(refresh_of(&store), "rt-1");
    store.save(&set("at-2", "rt-2")).unwrap();
    assert_eq!(refresh_of(&store), "rt-2");
    store.clear().unwrap();
    assert!(store.load().unwrap().is_none());
    store.clear().unwrap();
}

#[cfg(unix)]
#[test]
fn the_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    FileStore::new(&path).save(&set("a", "r")).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("nethealth-oidc/token-set"));
    assert!(!text.contains("client_secret"));
}

#[test]
fn a_crash_before_the_rename_leaves_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    store.save(&set("at-1", "rt-1")).unwrap();
    // What a crash between writing the temp file and renaming it leaves behind: a half-written temp file.
    std::fs::write(
        dir.path().join(".nethealth-oidc-crash.tmp"),
        b"{\"format\":\"nethealth-oidc/tok",
    )
    .unwrap();
    assert_eq!(refresh_of(&store), "rt-1");
    store.save(&set("at-2", "rt-2")).unwrap();
    assert_eq!(refresh_of(&store), "rt-2");
}

#[test]
fn corrupt_or_truncated_files_are_reported_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = FileStore::new(&path);
    store.save(&set("at-1", "rt-1")).unwrap();
    let good = std::fs::read(&path).unwrap();
    for (bad, expect) in [
        (good[..good.len() / 2].to_vec(), "truncated"),
        (b"not json at all".to_vec(), "not JSON"),
        (
            br#"{"format":"something-else","version":1,"data":{}}"#.to_vec(),
            "format",
        ),
        (
            br#"{"format":"nethealth-oidc/token-set","version":1,"data":{"x":1}}"#.to_vec(),
            "does not hold",
        ),
    ] {
        std::fs::write(&path, &bad).unwrap();
        match store.load() {
            Err(StoreError::Corrupt { reason, .. }) => assert!(reason.contains(expect), "{reason}"),
            other => panic!("{other:?}"),
        }
        let err = store.save(&set("at-2", "rt-2")).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert!(err.to_string().contains("left untouched"));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "never silently replaced"
        );
    }
    std::fs::write(
        &path,
        br#"{"format":"nethealth-oidc/token-set","version":99,"data":{}}"#,
    )
    .unwrap();
    assert!(matches!(
        store.load(),
        Err(StoreError::UnsupportedVersion { found: 99, .. })
    ));
}

#[test]
fn the_lock_serialises_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let a = FileStore::new(&path);
    let b = FileStore::new(&path);
    let guard = a.lock().unwrap();
    let acquired = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(2));
    let t = {
        let acquired = acquired.clone();
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            barrier.wait();
            let _g = b.lock().unwrap();
            acquired.store(true, Ordering::SeqCst);
        })
    };
    barrier.wait();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!acquired.load(Ordering::SeqCst), "the second locker waits");
    drop(guard);
    t.join().unwrap();
    assert!(acquired.load(Ordering::SeqCst));
}

#[test]
fn unwritable_paths_give_a_clear_error_and_keep_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let store = FileStore::new(blocker.join("tokens.json"));
    let err = store.save(&set("a", "r")).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("check the path"));
}

#[test]
fn memory_store_round_trips() {
    let store = MemoryStore::new();
    assert!(store.load().unwrap().is_none());
    store.save(&set("a", "r1")).unwrap();
    assert_eq!(refresh_of(&store), "r1");
    store.clear().unwrap();
    assert!(store.load().unwrap().is_none());
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_keyed_file_store_keeps_one_private_file_per_key_named_by_digest() {
    use nethealth_oidc_store::{KeyedFileStore, KeyedTokenStore, SessionKey};
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("sessions");
    let store = KeyedFileStore::open(&dir).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&dir), 0o700);

    let evil = SessionKey::new("../../escape");
    let bob = SessionKey::new("bob");
    store.save(&evil, &set("a-evil", "r-evil")).unwrap();
    store.save(&bob, &set("a-bob", "r-bob")).unwrap();
    assert_eq!(
        store
            .load(&evil)
            .unwrap()
            .unwrap()
            .access_token
            .expose_secret(),
        "a-evil"
    );
    assert_eq!(refresh_of(&store.entry(&bob)), "r-bob");
    assert!(
        !parent.path().join("escape").exists(),
        "a key is never a path"
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&format!("{}.json", evil.digest_hex())),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| !n.contains("bob") && !n.contains("escape"))
    );
    #[cfg(unix)]
    assert_eq!(mode(&store.path_of(&bob)), 0o600);

    let guard = store.lock(&bob).unwrap();
    drop(guard);
    store.clear(&evil).unwrap();
    assert!(store.load(&evil).unwrap().is_none());
    store.clear(&evil).unwrap();
    assert_eq!(refresh_of(&store.entry(&bob)), "r-bob");

    // A corrupt file of one key is reported for that key only, and never overwritten.
    std::fs::write(store.path_of(&bob), b"{\"format\":").unwrap();
    assert!(matches!(store.load(&bob), Err(StoreError::Corrupt { .. })));
    assert!(matches!(
        store.save(&bob, &set("a2", "r2")),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(store.load(&evil).unwrap().is_none());
}

#[cfg(unix)]
#[test]
fn the_keyed_file_store_refuses_a_folder_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let error = nethealth_oidc_store::KeyedFileStore::open(&dir).unwrap_err();
    assert!(error.to_string().contains("chmod 700"), "{error}");
}
