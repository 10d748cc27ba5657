//! `RedisStore` against a real redis-server on loopback: round trips, encryption at rest, the lease and its fencing,
//! and every bad path as a typed error. `cargo xtask ci` starts redis-server and sets `NETHEALTH_TEST_REDIS`.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::secret::AccessToken;
use nethealth_oidc_core::token;
use nethealth_oidc_core::{GrantedScopes, ScopeSource, Scopes, UnixTime};
use nethealth_oidc_store::{
    EncryptionKey, RedisOptions, RedisStore, StoreError, TokenSet, TokenStore,
};
use nethealth_oidc_test_support::{OwnedRedis, shared_redis_url};

/// The shared test server's URL; a missing one fails the test and says how to start it.
fn redis_url() -> String {
    shared_redis_url()
}

/// A key of its own for each test, so that tests run in parallel against one server.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test:{name}:{}:{nanos}", std::process::id())
}

fn raw() -> redis::Connection {
    redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("the test redis-server answers")
}

fn set(token: &str, at: u64) -> TokenSet {
    let body = serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt"});
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
            UnixTime::from_secs(1_700_000_000 + at),
        ),
        None,
    )
}

fn store(name: &str, options: RedisOptions) -> RedisStore {
    RedisStore::open(&redis_url(), &unique(name), options).unwrap()
}

#[test]
fn a_set_round_trips_and_keys_are_separate() {
    let a = store("roundtrip", RedisOptions::default());
    assert!(a.load().unwrap().is_none());
    a.save(&set("token-a", 100)).unwrap();
    let b = a.for_key(&unique("roundtrip-other"));
    assert!(b.load().unwrap().is_none(), "another key sees nothing");
    b.save(&set("token-b", 100)).unwrap();
    let loaded = a.load().unwrap().unwrap();
    assert!(loaded.access_token.ct_eq(&AccessToken::new("token-a")));
    a.clear().unwrap();
    assert!(a.load().unwrap().is_none());
    assert!(b.load().unwrap().is_some());
}

#[test]
fn an_encrypted_set_exposes_no_token_and_needs_the_same_key() {
    let key = || EncryptionKey::from_bytes([7; 32]);
    let a = store("sealed", RedisOptions::default().with_encryption(key()));
    a.save(&set("secret-access-token", 100)).unwrap();
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(a.redis_key())
        .query(&mut raw())
        .unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains("secret-access-token"), "{text}");
    assert!(text.contains("\"sealed\""), "{text}");
    assert!(
        a.load()
            .unwrap()
            .unwrap()
            .access_token
            .ct_eq(&AccessToken::new("secret-access-token"))
    );

    let url = redis_url();
    let wrong = RedisStore::open(
        &url,
        a.key(),
        RedisOptions::default().with_encryption(EncryptionKey::from_bytes([8; 32])),
    )
    .unwrap();
    let err = wrong.load().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains("different encryption key"),
        "{err}"
    );
    let none = RedisStore::open(&url, a.key(), RedisOptions::default()).unwrap();
    let err = none.load().unwrap_err();
    assert!(err.to_string().contains("no encryption key"), "{err}");

    let b64 = EncryptionKey::from_base64("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap();
    assert_eq!(format!("{b64:?}"), "EncryptionKey([redacted])");
    assert!(EncryptionKey::from_base64("c2hvcnQ=").is_err());
}

#[test]
fn a_value_copied_from_another_key_is_detected_even_when_sealed() {
    for options in [
        RedisOptions::default(),
        RedisOptions::default().with_encryption(EncryptionKey::from_bytes([1; 32])),
    ] {
        let encrypted = options.encryption.is_some();
        let a = store("copied", options);
        let b = a.for_key(&unique("copied-target"));
        a.save(&set("token-a", 100)).unwrap();
        let mut conn = raw();
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(a.redis_key())
            .query(&mut conn)
            .unwrap();
        let () = redis::cmd("SET")
            .arg(b.redis_key())
            .arg(bytes)
            .query(&mut conn)
            .unwrap();
        let err = b.load().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(
            err.to_string().contains("written for key"),
            "encrypted {encrypted}: {err}"
        );
    }
}

#[test]
fn a_corrupt_value_is_a_typed_error() {
    let a = store("corrupt", RedisOptions::default());
    let mut conn = raw();
    for garbage in [
        "not json",
        r#"{"format":"something-else","version":1,"key":"k"}"#,
        r#"{"format":"nethealth-oidc/redis-token-set","version":1}"#,
    ] {
        let () = redis::cmd("SET")
            .arg(a.redis_key())
            .arg(garbage)
            .query(&mut conn)
            .unwrap();
        let err = a.load().unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { .. }),
            "{garbage}: {err:?}"
        );
        assert!(err.to_string().contains(&a.redis_key()), "{err}");
    }
    let future = format!(
        r#"{{"format":"nethealth-oidc/redis-token-set","version":9,"key":"{}","data":{{}}}}"#,
        a.key()
    );
    let () = redis::cmd("SET")
        .arg(a.redis_key())
        .arg(future)
        .query(&mut conn)
        .unwrap();
    assert!(matches!(
        a.load().unwrap_err(),
        StoreError::UnsupportedVersion { found: 9, .. }
    ));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_refused_connection_is_unavailable_and_says_what_to_do() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let store = RedisStore::open(&url, "user-1", RedisOptions::default()).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("check that it is running"),
        "{err}"
    );
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(matches!(
        store.save(&set("t", 1)).unwrap_err(),
        StoreError::Unavailable { .. }
    ));
    assert!(matches!(
        store.lock().unwrap_err(),
        StoreError::Unavailable { .. }
    ));
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let options = RedisOptions::default()
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(300));
    let store = RedisStore::open(&url, "user-1", options).unwrap();
    let started = Instant::now();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

#[test]
fn bad_credentials_are_unauthorized_and_never_echo_the_password() {
    let server = OwnedRedis::start_with_password("s3cret-pass");
    let port = server.port();
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("redis://:wrong-pass@127.0.0.1:{port}"),
    ] {
        let store = RedisStore::open(&url, "user-1", RedisOptions::default()).unwrap();
        let err = store.load().unwrap_err();
        assert!(
            matches!(err, StoreError::Unauthorized { .. }),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains("check the password"), "{err}");
        assert!(!err.to_string().contains("wrong-pass"), "{err}");
        assert!(!format!("{store:?}").contains("wrong-pass"));
    }
    let good = RedisStore::open(
        &format!("redis://:s3cret-pass@127.0.0.1:{port}"),
        "user-1",
        RedisOptions::default(),
    )
    .unwrap();
    good.save(&set("t", 1)).unwrap();
    assert!(good.load().unwrap().is_some());
    assert!(!format!("{good:?}").contains("s3cret-pass"));

    // An ACL user (`redis://user:password@...`) with the wrong password.
    let mut admin = redis::Client::open(server.url().as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let () = redis::cmd("ACL")
        .arg(&["SETUSER", "fleet", "on", ">fleet-pass", "~*", "+@all"])
        .query(&mut admin)
        .unwrap();
    let wrong = RedisStore::open(
        &format!("redis://fleet:not-fleet-pass@127.0.0.1:{port}"),
        "user-1",
        RedisOptions::default(),
    )
    .unwrap();
    let err = wrong.lock().unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("not-fleet-pass"), "{err}");
    let user = RedisStore::open(
        &format!("redis://fleet:fleet-pass@127.0.0.1:{port}"),
        "user-1",
        RedisOptions::default(),
    )
    .unwrap();
    assert!(user.load().unwrap().is_some(), "the ACL user reads the set");
}

#[test]
fn an_altered_or_truncated_sealed_value_is_corrupt() {
    let a = store(
        "altered",
        RedisOptions::default().with_encryption(EncryptionKey::from_bytes([3; 32])),
    );
    a.save(&set("token-a", 100)).unwrap();
    let mut conn = raw();
    let stored: String = redis::cmd("GET")
        .arg(a.redis_key())
        .query(&mut conn)
        .unwrap();
    let mut envelope: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let sealed = envelope["sealed"].as_str().unwrap().to_owned();
    // One character of the ciphertext changed; then the value cut short; then not base64 at all.
    let flipped = {
        let mut chars: Vec<char> = sealed.chars().collect();
        chars[20] = if chars[20] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    for (sealed, says) in [
        (flipped, "altered"),
        ("AAAA".to_owned(), "truncated"),
        ("%%%".to_owned(), "not base64"),
    ] {
        envelope["sealed"] = serde_json::Value::String(sealed);
        let () = redis::cmd("SET")
            .arg(a.redis_key())
            .arg(envelope.to_string())
            .query(&mut conn)
            .unwrap();
        let err = a.load().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("delete it"), "{err}");
    }
}

#[test]
fn the_lease_excludes_others_is_renewed_while_slow_and_released_on_drop() {
    let options = || {
        RedisOptions::default()
            .with_lease(Duration::from_millis(300))
            .with_lock_wait(Duration::from_millis(150))
    };
    let a = store("lease", options());
    let b = RedisStore::open(&redis_url(), a.key(), options()).unwrap();
    let guard = a.lock().unwrap();
    let err = b.lock().unwrap_err();
    assert!(matches!(err, StoreError::LockTimeout { .. }), "{err:?}");
    // A slow refresh: three lease lifetimes later, the lease is still ours and the save goes through.
    std::thread::sleep(Duration::from_millis(900));
    assert!(matches!(
        b.lock().unwrap_err(),
        StoreError::LockTimeout { .. }
    ));
    a.save(&set("renewed", 5)).unwrap();
    drop(guard);
    let exists: bool = redis::cmd("EXISTS")
        .arg(a.lease_key())
        .query(&mut raw())
        .unwrap();
    assert!(!exists, "the lease was released on drop");
    let _b = b.lock().expect("the lease is free once released");
    assert!(
        b.load()
            .unwrap()
            .unwrap()
            .access_token
            .ct_eq(&AccessToken::new("renewed"))
    );
}

#[test]
fn a_save_after_the_lease_was_lost_is_refused_and_overwrites_nothing() {
    let a = store(
        "fenced",
        RedisOptions::default().with_lease(Duration::from_millis(300)),
    );
    a.save(&set("first", 1)).unwrap();
    let guard = a.lock().unwrap();
    // Another replica takes the lease (as after an expiry) and stores a newer set.
    let mut conn = raw();
    let () = redis::cmd("SET")
        .arg(a.lease_key())
        .arg("someone-else")
        .query(&mut conn)
        .unwrap();
    let b = RedisStore::open(&redis_url(), a.key(), RedisOptions::default()).unwrap();
    b.save(&set("newer", 2)).unwrap();
    let err = a.save(&set("stale", 1)).unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was overwritten"), "{err}");
    assert!(
        a.load()
            .unwrap()
            .unwrap()
            .access_token
            .ct_eq(&AccessToken::new("newer"))
    );
    drop(guard);
    let owner: String = redis::cmd("GET")
        .arg(a.lease_key())
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        owner, "someone-else",
        "a lost lease is not released over its new owner"
    );
}

#[test]
fn a_lease_that_vanished_is_lost_and_the_save_refused() {
    let a = store(
        "expired",
        RedisOptions::default().with_lease(Duration::from_millis(200)),
    );
    let guard = a.lock().unwrap();
    // The lease disappears (as when Redis restarts without persistence): the renewal finds it gone.
    let () = redis::cmd("DEL")
        .arg(a.lease_key())
        .query(&mut raw())
        .unwrap();
    std::thread::sleep(Duration::from_millis(250));
    assert!(matches!(
        a.save(&set("late", 1)).unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
    assert!(a.load().unwrap().is_none());
    drop(guard);
}

#[test]
fn debug_shows_neither_the_password_nor_the_key() {
    let store = RedisStore::open(
        "redis://:hunter2@127.0.0.1:1/3",
        "user-9",
        RedisOptions::default().with_encryption(EncryptionKey::from_bytes([9; 32])),
    )
    .unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("127.0.0.1:1/3") && debug.contains("user-9"),
        "{debug}"
    );
    let err = RedisStore::open("redis://:hunter2@[bad", "k", RedisOptions::default()).unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
}
