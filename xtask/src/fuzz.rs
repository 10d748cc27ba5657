//! `cargo xtask fuzz [SECONDS]`: runs every cargo-fuzz target in `fuzz/` in turn for SECONDS (default 60) and fails
//! on the first crash, naming the input that caused it.
//!
//! The targets need the nightly toolchain and cargo-fuzz; cargo-fuzz is installed when it is missing. Each run
//! starts from the checked-in seeds (`fuzz/seeds/<target>/`) and grows the git-ignored working corpus
//! (`fuzz/corpus/<target>/`); crash inputs land in `fuzz/artifacts/<target>/`. Memory, input length and the time
//! per input are bounded, so a run that allocates without bound or hangs fails as a crash too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Seconds per target when none are given.
pub(crate) const DEFAULT_SECONDS: u64 = 60;
/// Seconds per target in `cargo xtask ci`.
pub(crate) const CI_SECONDS: u64 = 20;
/// libFuzzer's memory limit per target process, in MiB (AddressSanitizer included).
const RSS_LIMIT_MB: u32 = 2048;
/// libFuzzer's limit on one input's run, in seconds: a slower input is reported as a hang.
const TIMEOUT_SECS: u32 = 10;
/// The longest input: 1 MiB, a generous HTTP body.
const MAX_LEN: usize = 1 << 20;

/// `cargo xtask fuzz [SECONDS]`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let seconds = match args.first() {
        None => DEFAULT_SECONDS,
        Some(s) => s.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
            format!("usage: cargo xtask fuzz [SECONDS]; `{s}` is not a positive number of seconds")
        })?,
    };
    run_all(seconds)
}

/// The fuzz targets, built and ready to run: what [`prepare`] returns.
pub(crate) struct Prepared {
    dir: PathBuf,
    targets: Vec<String>,
}

/// Installs cargo-fuzz when missing and builds every target (the slow part: minutes on a cold machine).
/// `cargo xtask ci` runs this on a thread of its own while clippy and the tests run.
pub(crate) fn prepare() -> Result<Prepared, String> {
    let dir = fuzz_dir();
    ensure_cargo_fuzz()?;
    let targets = list_targets(&dir)?;
    cargo_fuzz(&dir, &["build", "--debug-assertions"])?;
    Ok(Prepared { dir, targets })
}

/// The call for `cargo xtask ci`: every prepared target for [`CI_SECONDS`].
pub(crate) fn ci(prepared: &Prepared) -> Result<(), String> {
    run_prepared(prepared, CI_SECONDS)
}

/// What one target's run showed.
struct Summary {
    target: String,
    executions: Option<u64>,
    coverage: Option<u64>,
}

/// Builds the targets once, then runs each for `seconds`. Fails on the first crash, naming its artifact.
pub(crate) fn run_all(seconds: u64) -> Result<(), String> {
    run_prepared(&prepare()?, seconds)
}

/// Runs each prepared target for `seconds`, then prints what each did.
fn run_prepared(prepared: &Prepared, seconds: u64) -> Result<(), String> {
    let mut summaries = Vec::new();
    for target in &prepared.targets {
        summaries.push(run_target(&prepared.dir, target, seconds)?);
    }
    eprintln!("xtask: fuzzing done, {seconds} s a target, no crash");
    eprintln!("xtask: {:<24} {:>14} {:>8}", "target", "executions", "cov");
    for s in &summaries {
        let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
        eprintln!(
            "xtask: {:<24} {:>14} {:>8}",
            s.target,
            show(s.executions),
            show(s.coverage)
        );
    }
    Ok(())
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Checks for nightly and cargo-fuzz; installs cargo-fuzz when it is missing.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !nightly.is_ok_and(|s| s.success()) {
        return Err(
            "fuzzing needs the nightly toolchain: install it with `rustup toolchain install nightly`".into(),
        );
    }
    let present = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if present.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    eprintln!(
        "xtask: cargo-fuzz is missing; installing it with `cargo +nightly install cargo-fuzz --locked`"
    );
    crate::run(
        "cargo",
        &["+nightly", "install", "cargo-fuzz", "--locked"],
        &[],
    )
}

/// Runs `cargo +nightly fuzz ARGS` in `dir`.
fn cargo_fuzz(dir: &Path, args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: running cargo +nightly fuzz {}", args.join(" "));
    let status = Command::new("cargo")
        .arg("+nightly")
        .arg("fuzz")
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("could not start cargo +nightly fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo +nightly fuzz {}` failed with {status}",
            args.join(" ")
        ))
    }
}

fn list_targets(dir: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("cargo")
        .args(["+nightly", "fuzz", "list"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("could not start cargo +nightly fuzz list: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo +nightly fuzz list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        return Err(format!("no fuzz targets in {}", dir.display()));
    }
    Ok(targets)
}

/// Runs one target for `seconds`, streaming libFuzzer's output and reading its statistics from it.
fn run_target(dir: &Path, target: &str, seconds: u64) -> Result<Summary, String> {
    let corpus = format!("corpus/{target}");
    let seeds = format!("seeds/{target}");
    std::fs::create_dir_all(dir.join(&corpus))
        .map_err(|e| format!("could not create fuzz/{corpus}: {e}"))?;
    let max_time = format!("-max_total_time={seconds}");
    let rss = format!("-rss_limit_mb={RSS_LIMIT_MB}");
    let timeout = format!("-timeout={TIMEOUT_SECS}");
    let max_len = format!("-max_len={MAX_LEN}");
    let args = [
        "+nightly",
        "fuzz",
        "run",
        "--debug-assertions",
        target,
        &corpus,
        &seeds,
        "--",
        &max_time,
        &rss,
        &timeout,
        &max_len,
        "-print_final_stats=1",
    ];
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let mut child = Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start cargo +nightly fuzz run {target}: {e}"))?;
    let mut summary = Summary {
        target: target.to_owned(),
        executions: None,
        coverage: None,
    };
    let mut artifact = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(n) = stat(&line, "stat::number_of_executed_units:") {
                summary.executions = Some(n);
            }
            if let Some(n) = cov(&line) {
                summary.coverage = Some(n);
            }
            if let Some(rest) = line.split("Test unit written to ").nth(1) {
                artifact = Some(rest.trim().to_owned());
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cargo +nightly fuzz run {target}: {e}"))?;
    if status.success() {
        return Ok(summary);
    }
    Err(match artifact {
        Some(path) => format!(
            "fuzz target {target} crashed ({status}) on fuzz/{path}: fix the parser, then keep the input as a \
             regression with `cp fuzz/{path} fuzz/regressions/{target}/` and rerun \
             `cargo test -p nethealth-oidc-fuzz`"
        ),
        None => format!(
            "fuzz target {target} failed with {status} and wrote no artifact; see the output above"
        ),
    })
}

/// The number after `key` on a line like `stat::number_of_executed_units: 123`.
fn stat(line: &str, key: &str) -> Option<u64> {
    line.strip_prefix(key)?.trim().parse().ok()
}

/// The coverage on a libFuzzer status line like `#1234 NEW cov: 567 ft: ...`.
fn cov(line: &str) -> Option<u64> {
    if !line.starts_with('#') {
        return None;
    }
    line.split_whitespace()
        .skip_while(|w| *w != "cov:")
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_statistics() {
        assert_eq!(
            stat(
                "stat::number_of_executed_units: 4242",
                "stat::number_of_executed_units:"
            ),
            Some(4242)
        );
        assert_eq!(
            cov("#2097152\tpulse  cov: 1234 ft: 5678 corp: 90/12Kb exec/s: 1000 rss: 80Mb"),
            Some(1234)
        );
        assert_eq!(cov("INFO: Seed: 1"), None);
    }
}
