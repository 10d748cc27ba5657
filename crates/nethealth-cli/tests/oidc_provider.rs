//! `nethealth register`, `login` and `token` against the independent oidc-provider peer (`peers/oidc-provider/`),
//! named by `NETHEALTH_TEST_ISSUER`, and against its PAR-requiring instance, `NETHEALTH_TEST_ISSUER_PAR`.
//! `cargo xtask ci` (or `cargo xtask with-peers ...`) starts both and sets the variables; by hand:
//! `PORT=4561 peers/oidc-provider/start.sh`, then `NETHEALTH_TEST_ISSUER=http://127.0.0.1:4561` (and
//! `PAR_REQUIRED=1 DPOP_REQUIRE_NONCE=1 PORT=4562 peers/oidc-provider/start.sh` for the other).

#[path = "../../../peers/oidc-provider/browser.rs"]
mod browser;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn issuer(var: &str) -> String {
    match std::env::var(var) {
        Ok(issuer) if !issuer.is_empty() => issuer,
        _ => panic!(
            "{var} is not set: `cargo xtask ci` or `cargo xtask with-peers cargo test -p nethealth-cli --test \
             oidc_provider` starts the oidc-provider peers and sets it; by hand, run `PORT=4561 \
             peers/oidc-provider/start.sh` (with PAR_REQUIRED=1 DPOP_REQUIRE_NONCE=1 for the _PAR one) and set \
             {var}=http://127.0.0.1:4561"
        ),
    }
}

fn cmd(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nethealth"));
    cmd.args(args)
        .env("NETHEALTH_CONFIG_DIR", dir)
        .env_remove("NETHEALTH_PROFILE")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn register_login_and_token_at_the_oidc_provider_peer() {
    register_login_and_token(&issuer("NETHEALTH_TEST_ISSUER"), "cli-user");
}

#[test]
fn a_pushed_login_at_the_peer_that_requires_par() {
    let auth_url = register_login_and_token(&issuer("NETHEALTH_TEST_ISSUER_PAR"), "cli-par-user");
    let names: Vec<_> = auth_url
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"], "pushed: {auth_url}");
}

/// Registers at `issuer`, logs in as a new user and checks the token; returns the URL the browser was sent to.
fn register_login_and_token(issuer: &str, user: &str) -> url::Url {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(
        dir.path(),
        &[
            "register",
            "--issuer",
            issuer,
            "--name",
            "nethealth CLI test",
            "--scope",
            "openid offline_access patients.read patients.write",
            "--store",
            "file",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = cmd(dir.path(), &["login", "--no-browser", "--timeout", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let auth_url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the binary prints the login URL");
        if let Some(rest) = line.strip_prefix("  http") {
            break format!("http{}", rest.trim_end());
        }
    };
    let auth_url = url::Url::parse(&auth_url).unwrap();
    let user = format!("{user}-{}", std::process::id());
    let callback = browser::login(&auth_url, &user, browser::Consent::All)
        .expect("the peer's interaction works");
    assert!(
        callback.as_str().starts_with("http://127.0.0.1:"),
        "{callback}"
    );
    let page = ureq::get(callback.as_str())
        .call()
        .expect("the CLI's listener answers")
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(page.contains("close this tab"), "{page}");
    let status = child.wait().unwrap();
    let err: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "{err:?}");

    let out = cmd(dir.path(), &["token"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(!token.trim().is_empty() && !token.trim().contains(' '));
    let out = cmd(dir.path(), &["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["logged_in"], true);
    assert_eq!(status["has_refresh_token"], true);
    auth_url
}
