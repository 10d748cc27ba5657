//! The oidc-provider test peer (`peers/oidc-provider`): installs its npm packages when missing, and starts one
//! instance per [`PEERS`] row on a free loopback port, each owned by a [`Service`] guard.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::service::{self, Service};

/// One peer instance the tests need: the environment variable that names its issuer to `cargo test`, and the
/// settings (`peers/oidc-provider/README.md`) it starts with. Add a row for tests that need other settings.
pub(crate) struct PeerInstance {
    /// The variable `cargo test` finds the issuer in.
    pub(crate) issuer_var: &'static str,
    /// Settings for `server.mjs`, as environment variables.
    pub(crate) settings: &'static [(&'static str, &'static str)],
}

/// Every peer instance `cargo xtask ci` starts.
pub(crate) const PEERS: &[PeerInstance] = &[
    PeerInstance {
        issuer_var: "NETHEALTH_TEST_ISSUER",
        // The offline_access test proves that the client sends prompt=consent itself.
        settings: &[("OFFLINE_ACCESS_ADDS_CONSENT_PROMPT", "0")],
    },
    // FAPI-style: every login pushed (RFC 9126), DPoP proofs must carry a server nonce (RFC 9449);
    // `crates/nethealth-oidc/tests/par_dpop_peer.rs`.
    PeerInstance {
        issuer_var: "NETHEALTH_TEST_ISSUER_PAR",
        settings: &[("PAR_REQUIRED", "1"), ("DPOP_REQUIRE_NONCE", "1")],
    },
];

/// The oldest Node.js major version the peer (oidc-provider 9) runs on.
const MIN_NODE_MAJOR: u32 = 20;

const INSTALL_NODE: &str = "install Node.js 20 or later with npm (e.g. `apt-get install nodejs npm`, or from \
                            https://nodejs.org), then run `cargo xtask ci` again";

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("peers").join("oidc-provider"))
        .unwrap_or_else(|| PathBuf::from("peers/oidc-provider"))
}

/// Checks that `node` (20 or later) and `npm` can run, with an error that says how to install them.
pub(crate) fn check_node() -> Result<(), String> {
    let version = output("node", &["--version"])
        .map_err(|e| format!("the oidc-provider peer needs node, which {e}: {INSTALL_NODE}"))?;
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| {
            format!("`node --version` said {version:?}, not a version: {INSTALL_NODE}")
        })?;
    if major < MIN_NODE_MAJOR {
        return Err(format!(
            "node {} is too old for the oidc-provider peer: {INSTALL_NODE}",
            version.trim()
        ));
    }
    output("npm", &["--version"])
        .map_err(|e| format!("the oidc-provider peer needs npm, which {e}: {INSTALL_NODE}"))?;
    Ok(())
}

/// Runs `npm ci` in the peer's folder when its packages are not installed (the folder is ignored by git).
pub(crate) fn install() -> Result<(), String> {
    let dir = peer_dir();
    if dir.join("node_modules").join("oidc-provider").is_dir() {
        return Ok(());
    }
    eprintln!(
        "xtask: installing the oidc-provider peer's npm packages (npm ci in {})",
        dir.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("could not run npm ci: {e}: {INSTALL_NODE}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`npm ci` in {} failed with {status}; it needs the npm registry",
            dir.display()
        ))
    }
}

/// Starts one instance on a free loopback port with `start.sh`; returns its issuer and the guard that stops it.
pub(crate) fn start(instance: &PeerInstance) -> Result<(String, Service), String> {
    let dir = peer_dir();
    let port = service::free_port()?.to_string();
    let pid_file = dir.join("run").join(format!("oidc-provider-{port}.pid"));
    let started = Command::new(dir.join("start.sh"))
        .env("PORT", &port)
        .env("PID_FILE", &pid_file)
        .envs(instance.settings.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run peers/oidc-provider/start.sh: {e}"))?;
    if !started.status.success() {
        // start.sh removes its pid file and stops the server when discovery never answered.
        return Err(format!(
            "the oidc-provider peer did not start on port {port} ({}); see its messages above",
            started.status
        ));
    }
    let issuer = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let pid = service::read_pid_file(&pid_file)?;
    let guard = Service::adopt(
        &format!("oidc-provider peer at {issuer}"),
        pid,
        "server.mjs",
        Some(pid_file),
    )?;
    Ok((issuer, guard))
}

/// Runs `program args` and returns its stdout; the error says "is not installed" or how it failed.
fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "is not installed (not on PATH)".to_owned(),
            _ => format!("could not be started ({e})"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "failed (`{program} {}`: {})",
            args.join(" "),
            out.status
        ))
    }
}
