//! Crash safety of `FileStore`, as a test: a child process saves token sets in a loop and is killed with `SIGKILL`
//! at random moments, 100 times. After each kill the file must hold the old or the new complete set, with mode
//! 0600, and the temp files of killed writers must not pile up.
//!
//! The delays come from a seeded RNG; the seed is printed, and `NETHEALTH_OIDC_KILL_SEED=<seed>` replays a run.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::token;
use nethealth_oidc_core::{GrantedScopes, ScopeSource, Scopes, UnixTime};
use nethealth_oidc_store::{FileStore, TokenSet, TokenStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD: &str = "NETHEALTH_OIDC_TEST_KILL_CHILD";
const SEED: &str = "NETHEALTH_OIDC_KILL_SEED";
const KILLS: usize = 100;
const TEST: &str = "a_writer_killed_at_random_moments_leaves_a_complete_set";
/// Padding that makes each set span several writes' worth of bytes, so that a torn write would show.
const PADDING: usize = 16 * 1024;

/// Token set number `seq`: the number is in the access token, the refresh token, an extra field and at the end of
/// the padding, so that a set made of parts of two sets is caught.
fn set(seq: u64) -> TokenSet {
    let body = serde_json::json!({
        "access_token": format!("at-{seq}"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": format!("rt-{seq}"),
        "seq": seq,
        "padding": format!("{}{seq}", "p".repeat(PADDING)),
    });
    let response = http::Response::builder()
        .status(200)
        .body(body.to_string().into_bytes())
        .expect("a response with a status and a body builds");
    let scopes = Scopes::parse("openid patients.read");
    TokenSet::from_grant(
        Grant::new(
            token::parse_token_response(&response).expect("the body is a token response"),
            None,
            GrantedScopes::new(scopes.clone(), scopes, ScopeSource::TokenResponse),
            UnixTime::from_secs(1_700_000_000),
        ),
        None,
    )
}

/// The number of a stored set, after checking that all its parts carry the same one.
fn seq_of(set: &TokenSet) -> u64 {
    let seq = set.extra["seq"]
        .as_u64()
        .expect("the set carries its number");
    assert_eq!(set.access_token.expose_secret(), format!("at-{seq}"));
    let refresh = set
        .refresh_token
        .as_ref()
        .expect("the set has a refresh token");
    assert_eq!(refresh.expose_secret(), format!("rt-{seq}"));
    let padding = set.extra["padding"]
        .as_str()
        .expect("the set carries its padding");
    assert_eq!(padding.len(), PADDING + seq.to_string().len(), "set {seq}");
    assert!(padding.ends_with(&seq.to_string()), "set {seq}");
    seq
}

/// The child: saves set after set under the lock, announcing each on stdout before and after, until it is killed.
fn child(path: &Path) {
    let store = FileStore::new(path);
    let mut seq = store
        .load()
        .expect("the file is readable and complete")
        .map_or(0, |s| seq_of(&s));
    let mut out = std::io::stdout();
    loop {
        seq += 1;
        let guard = store.lock().expect("the lock is taken");
        // One short write each: a pipe write under PIPE_BUF bytes is never split.
        out.write_all(format!("saving {seq}\n").as_bytes())
            .and_then(|()| out.flush())
            .expect("stdout is writable");
        store.save(&set(seq)).expect("the set is saved");
        out.write_all(format!("saved {seq}\n").as_bytes())
            .and_then(|()| out.flush())
            .expect("stdout is writable");
        drop(guard);
    }
}

/// The files in `dir` other than the token file and its lock file.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("the folder is readable")
        .map(|e| {
            e.expect("the entry is readable")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "tokens.json" && name != "tokens.json.lock")
        .collect()
}

#[test]
fn a_writer_killed_at_random_moments_leaves_a_complete_set() {
    if let Ok(path) = std::env::var(CHILD) {
        return child(Path::new(&path));
    }
    let seed = std::env::var(SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    std::io::stderr()
        .write_all(format!("kill test seed: {seed} (replay with {SEED}={seed})\n").as_bytes())
        .expect("stderr is writable");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("a temp folder can be made");
    let path = dir.path().join("tokens.json");
    let exe = std::env::current_exe().expect("a test binary knows its own path");
    let started = Instant::now();
    let (mut mid_save, mut between_saves, mut max_leftovers) = (0, 0, 0);
    let mut stored: Option<u64> = None;
    for kill in 0..KILLS {
        let mut writer = Command::new(&exe)
            .args(["--exact", TEST, "--test-threads", "1", "--nocapture"])
            .env(CHILD, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the test binary can be run again as a child");
        let stdout = writer.stdout.take().expect("stdout is piped");
        let (lines, progress) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("saving ") || line.starts_with("saved ") {
                    // The receiver hangs up only when the test already failed.
                    let _ = lines.send(line);
                }
            }
        });
        // Wait until the child is in its loop, then kill it at a random moment within the next few saves.
        let first = progress
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = writer.kill();
                panic!("kill {kill} (seed {seed}): the child never started saving")
            });
        std::thread::sleep(Duration::from_micros(rng.random_range(0..15_000)));
        writer.kill().expect("the child can be killed");
        let status = writer.wait().expect("the child is reaped");
        reader
            .join()
            .expect("the reader thread ends at the pipe's end");
        let last = progress.try_iter().last().unwrap_or(first);
        assert!(
            status.code().is_none(),
            "kill {kill} (seed {seed}): the child ended on its own ({status}) after `{last}`"
        );

        // What the child said last tells which sets the file may hold.
        let (state, n) = last
            .split_once(' ')
            .and_then(|(state, n)| Some((state, n.parse::<u64>().ok()?)))
            .expect("progress lines are `saving N` or `saved N`");
        let allowed = if state == "saved" {
            between_saves += 1;
            vec![Some(n)]
        } else {
            mid_save += 1;
            vec![n.checked_sub(1).filter(|&old| old > 0), Some(n)]
        };
        let found = FileStore::new(&path)
            .load()
            .unwrap_or_else(|e| panic!("kill {kill} (seed {seed}) after `{last}`: {e}"))
            .map(|s| seq_of(&s));
        assert!(
            allowed.contains(&found),
            "kill {kill} (seed {seed}) after `{last}`: the file holds set {found:?}, not one of {allowed:?}"
        );
        assert!(
            found >= stored,
            "kill {kill} (seed {seed}): the file went back from {stored:?} to {found:?}"
        );
        stored = found;
        if found.is_some() {
            let mode = std::fs::metadata(&path)
                .expect("the file exists")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "kill {kill} (seed {seed})");
        }
        // Each child sweeps its predecessors' leftovers when it takes the lock: at most the last one's remains.
        let left = leftovers(dir.path());
        assert!(
            left.len() <= 1,
            "kill {kill} (seed {seed}): temp files pile up: {left:?}"
        );
        max_leftovers = max_leftovers.max(left.len());
    }
    // The next locker removes what the last kill left.
    drop(FileStore::new(&path).lock().expect("the lock is free"));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    assert!(mid_save > 0, "seed {seed}: no kill landed during a save");
    std::io::stderr()
        .write_all(
            format!(
                "{KILLS} kills in {:?}: {mid_save} during a save, {between_saves} between saves; last set {stored:?}; \
                 at most {max_leftovers} temp file left at a time\n",
                started.elapsed()
            )
            .as_bytes(),
        )
        .expect("stderr is writable");
}
