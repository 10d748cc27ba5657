//! End-to-end tests of the real `nethealth` binary against the local Accounts site (`nethealth-oidc-testkit`) on
//! loopback. The test plays the browser: it reads the URL the binary prints, logs in with the testkit's scripted
//! `Browser`, and follows the site's redirect to the binary's loopback listener.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nethealth_oidc_testkit::{Browser, Consent, Endpoint, Fault, TestKit};

struct Env {
    kit: TestKit,
    dir: tempfile::TempDir,
}

fn env() -> Env {
    Env {
        kit: TestKit::builder()
            .start_blocking()
            .expect("the test kit starts"),
        dir: tempfile::tempdir().expect("a temp dir"),
    }
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nethealth"));
        cmd.args(args)
            .env("NETHEALTH_CONFIG_DIR", self.dir.path())
            .env_remove("NETHEALTH_PROFILE")
            .env_remove("NETHEALTH_NO_KEYRING")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("the binary runs")
    }

    fn register(&self) -> Output {
        let out = self.run(&[
            "register",
            "--issuer",
            self.kit.issuer(),
            "--name",
            "Clinic CLI",
            "--store",
            "file",
        ]);
        assert_ok(&out);
        out
    }

    /// Starts `nethealth login --no-browser ...` and returns the child and the URL it prints.
    fn start_login(&self, extra: &[&str]) -> (Child, String, mpsc::Receiver<String>) {
        let mut args = vec!["login", "--no-browser"];
        args.extend_from_slice(extra);
        let mut child = self
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (url, rest) = read_until_url(&mut child, "  http");
        (child, url, rest)
    }

    /// Logs in through the loopback redirect, answering consent as `consent` says.
    fn login(&self, consent: Consent, extra: &[&str]) -> (Output, String) {
        let (child, url, rest) = self.start_login(extra);
        let callback = Browser::new()
            .login(&url, &consent)
            .expect("the login page works");
        assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
        let page = ureq::get(&callback)
            .call()
            .expect("the CLI's loopback listener answers")
            .into_body()
            .read_to_string()
            .unwrap();
        assert!(page.contains("close this tab"), "{page}");
        finish(child, rest)
    }
}

/// Reads the child's stderr on a thread until a line starting with `prefix`; the rest goes to the receiver.
fn read_until_url(child: &mut Child, prefix: &str) -> (String, mpsc::Receiver<String>) {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix(prefix) {
                    return (format!("http{}", url.trim_end()), rx);
                }
                seen.push(line);
            }
            Err(_) => panic!(
                "the binary printed no URL starting with {prefix:?}; stderr so far: {seen:?}"
            ),
        }
    }
}

fn finish(mut child: Child, rest: mpsc::Receiver<String>) -> (Output, String) {
    let status = child.wait().expect("the binary ends");
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_end(&mut out, &mut stdout).unwrap();
    }
    let stderr: Vec<String> = rest.try_iter().collect();
    // The reader thread may still be draining; give it a moment.
    std::thread::sleep(Duration::from_millis(100));
    let mut stderr = stderr;
    stderr.extend(rest.try_iter());
    (
        Output {
            status,
            stdout,
            stderr: Vec::new(),
        },
        stderr.join("\n"),
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

#[track_caller]
fn assert_exit(out: &Output, code: i32, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "wanted {needle:?} in: {}",
        stderr(out)
    );
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("the file exists")
        .permissions()
        .mode()
        & 0o777
}

fn tokens_file(env: &Env) -> PathBuf {
    env.dir.path().join("default.tokens.json")
}

#[test]
fn register_login_partial_consent_token_call_status_logout() {
    let env = env();
    let out = env.register();
    let client_id = stdout(&out);
    assert!(!client_id.is_empty());
    assert!(
        !stdout(&out).contains("secret"),
        "the secret is never printed"
    );
    assert_eq!(file_mode(&env.dir.path().join("default.secret")), 0o600);

    // The user unticks patients.write.
    let (out, err) = env.login(
        Consent::grant(["profile", "offline_access", "patients.read"]),
        &[],
    );
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Waiting for the browser"), "{err}");
    assert!(err.contains("did not grant patients.write"), "{err}");
    assert_eq!(file_mode(&tokens_file(&env)), 0o600);

    // `token` prints the token and nothing else.
    let out = env.run(&["token"]);
    assert_ok(&out);
    let token = stdout(&out);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(!token.contains(' ') && !token.contains('\n'));
    let out = env.run(&["token", "--header"]);
    assert_eq!(stdout(&out), format!("Authorization: Bearer {token}"));

    // A granted scope works; the refused one reads plainly, with exit 4.
    let out = env.run(&["call", "/api/patients"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("Jane Doe"), "{}", stdout(&out));
    let out = env.run(&[
        "call",
        "-X",
        "POST",
        "/api/patients",
        "-d",
        r#"{"Name":"New Patient"}"#,
    ]);
    assert_exit(
        &out,
        4,
        "this needs scope patients.write, which the user did not grant",
    );

    // status --json, for scripts.
    let out = env.run(&["status", "--json"]);
    assert_ok(&out);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(status["logged_in"], true);
    assert_eq!(status["client_id"], client_id.as_str());
    assert_eq!(status["refused"], serde_json::json!(["patients.write"]));
    assert!(
        status["granted"]
            .as_array()
            .unwrap()
            .contains(&"patients.read".into())
    );
    assert_eq!(status["has_refresh_token"], true);
    assert!(status["access_token_expires_at"].as_u64().is_some());
    assert!(!stdout(&out).contains(&token), "status never shows a token");
    let out = env.run(&["status"]);
    assert!(
        stdout(&out).contains("refused:  patients.write"),
        "{}",
        stdout(&out)
    );

    // logout revokes and forgets; then the token is gone (exit 3).
    let out = env.run(&["logout"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("Logged out"), "{}", stderr(&out));
    assert_eq!(
        env.kit.live_refresh_tokens(),
        0,
        "the refresh token was revoked"
    );
    let out = env.run(&["token"]);
    assert_exit(&out, 3, "not logged in: run `nethealth login`");
    let out = env.run(&["call", "/api/patients"]);
    assert_exit(&out, 3, "nethealth login");
}

#[test]
fn an_expired_token_is_refreshed_by_the_next_run() {
    let env = env();
    env.register();
    env.kit.set_access_token_lifetime(Duration::from_secs(2));
    let (out, err) = env.login(Consent::GrantAll, &[]);
    assert!(out.status.success(), "{err}");
    let first = stdout(&env.run(&["token"]));
    std::thread::sleep(Duration::from_millis(2500));
    let out = env.run(&["token"]);
    assert_ok(&out);
    let second = stdout(&out);
    assert_ne!(first, second, "the second run refreshed the expired token");
    let out = env.run(&["call", "/api/patients"]);
    assert_ok(&out);
}

#[test]
fn a_server_that_requires_par_gets_a_pushed_login() {
    let env = env();
    env.register();
    env.kit.set_require_par(true);

    // The push fails: the login stops before printing any URL, and says which endpoint failed.
    env.kit.fail_always(Endpoint::Par, Fault::Status(503));
    let out = env.run(&["login", "--no-browser", "--timeout", "5"]);
    assert_exit(&out, 4, "503");
    assert!(!stderr(&out).contains("Open this URL"), "{}", stderr(&out));
    env.kit.clear_faults();

    let (child, url, rest) = env.start_login(&[]);
    let printed = url::Url::parse(&url).expect("the printed URL parses");
    let names: Vec<_> = printed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(names, ["client_id", "request_uri"], "pushed: {url}");
    let callback = Browser::new()
        .login(&url, &Consent::GrantAll)
        .expect("the login page takes the pushed request");
    ureq::get(&callback)
        .call()
        .expect("the CLI's loopback listener answers");
    let (out, err) = finish(child, rest);
    assert!(out.status.success(), "{err}");
    let out = env.run(&["call", "/api/patients"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("Jane Doe"), "{}", stdout(&out));
}

#[test]
fn consent_denied_exits_4() {
    let env = env();
    env.register();
    let (out, err) = env.login(Consent::Deny, &[]);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("access_denied") || err.contains("refused"),
        "{err}"
    );
}

#[test]
fn device_flow_approved_and_denied() {
    let env = env();
    env.register();
    env.kit.set_device_interval(Duration::from_secs(1));

    let mut child = env
        .cmd(&["login", "--device"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (complete, rest) = read_until_url(&mut child, "(or open http");
    let complete = complete
        .trim_end_matches(" , which has the code filled in)")
        .to_owned();
    assert!(complete.contains("user_code="), "{complete}");
    Browser::new()
        .approve_device(
            &complete,
            &Consent::grant(["offline_access", "patients.read"]),
        )
        .expect("the device page works");
    let (out, err) = finish(child, rest);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Waiting for the code to be approved"), "{err}");
    assert!(err.contains("did not grant"), "{err}");
    let out = env.run(&["call", "/api/patients"]);
    assert_ok(&out);

    let mut child = env
        .cmd(&["login", "--device"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (complete, rest) = read_until_url(&mut child, "(or open http");
    let complete = complete
        .trim_end_matches(" , which has the code filled in)")
        .to_owned();
    Browser::new()
        .approve_device(&complete, &Consent::Deny)
        .unwrap();
    let (out, err) = finish(child, rest);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("denied"), "{err}");
}

#[test]
fn an_unknown_profile_and_a_corrupt_config_are_usage_errors() {
    let env = env();
    let out = env.run(&["token"]);
    assert_exit(&out, 2, "unknown profile `default`");
    env.register();
    let out = env.run(&["--profile", "nope", "token"]);
    assert_exit(&out, 2, "unknown profile `nope`: the profiles are default");
    let out = env
        .cmd(&["status"])
        .env("NETHEALTH_PROFILE", "other")
        .output()
        .unwrap();
    assert_exit(&out, 2, "unknown profile `other`");

    std::fs::write(
        env.dir.path().join("config.json"),
        b"{\"profiles\": {\"default\": 7",
    )
    .unwrap();
    let out = env.run(&["token"]);
    assert_exit(&out, 2, "is corrupt");

    let out = env.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_port_that_cannot_be_bound_exits_5() {
    let env = env();
    env.register();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = env.run(&["login", "--no-browser", "--port", &port]);
    assert_exit(&out, 5, &format!("cannot listen on 127.0.0.1:{port}"));
}

#[test]
fn a_browser_that_never_comes_back_times_out() {
    let env = env();
    env.register();
    let out = env.run(&["login", "--no-browser", "--timeout", "1"]);
    assert_exit(&out, 5, "timed out after 1 s waiting for the browser");
}

#[test]
fn an_unavailable_keyring_falls_back_to_files_with_a_warning() {
    let env = env();
    let out = env
        .cmd(&[
            "register",
            "--issuer",
            env.kit.issuer(),
            "--name",
            "Clinic CLI",
        ])
        .env("NETHEALTH_NO_KEYRING", "1")
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        stderr(&out).contains("warning: no keyring is available"),
        "{}",
        stderr(&out)
    );
    assert_eq!(file_mode(&env.dir.path().join("default.secret")), 0o600);
    let out = env
        .cmd(&["status"])
        .env("NETHEALTH_NO_KEYRING", "1")
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        stdout(&out).contains("default.tokens.json"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_provider_that_cannot_be_reached_exits_5() {
    let env = env();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = env.run(&[
        "register", "--issuer", &issuer, "--name", "x", "--store", "file",
    ]);
    assert_exit(&out, 5, "");
}

#[test]
fn help_documents_the_exit_codes() {
    let env = env();
    let out = env.run(&["--help"]);
    assert_ok(&out);
    for line in [
        "0    ok",
        "2    usage",
        "3    login required",
        "4    the server said no",
        "5    network",
    ] {
        assert!(stdout(&out).contains(line), "{line}");
    }
}

#[test]
fn ctrl_c_stops_a_waiting_login_cleanly() {
    let env = env();
    env.register();
    let (child, _url, rest) = env.start_login(&[]);
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let (out, err) = finish(child, rest);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("stopped (Ctrl-C)"), "{err}");
    assert!(!tokens_file(&env).exists(), "nothing was stored");
}
