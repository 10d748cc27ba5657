//! Measurements that need a process of their own: a test re-runs its own binary as a child, which does one thing
//! and reports, so that nothing else in the test binary disturbs the numbers.

use std::io;
use std::process::{Command, Output, Stdio};

/// Re-runs the current test binary for the one test `test` (`--exact`, one thread, no capture) with the environment
/// variable `var` set to `value`, waits for it, and returns its output. Panics, showing the child's stderr, when it
/// cannot be started or fails.
///
/// The test checks `var` first: when it is set, it is the child and does the child's part.
pub fn rerun_self(test: &str, var: &str, value: &str) -> Output {
    let exe = std::env::current_exe().expect("a test binary knows its own path");
    let output = Command::new(exe)
        .args(["--exact", test, "--test-threads", "1", "--nocapture"])
        .env(var, value)
        .stdin(Stdio::null())
        .output()
        .expect("the test binary can be run again as a child");
    assert!(
        output.status.success(),
        "the child run of `{test}` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `f` and returns its result with how many bytes the process's peak resident set grew while it ran: the
/// kernel's high-water mark (`VmHWM`) is reset to the current resident set through `/proc/self/clear_refs`, and
/// read again afterwards. Linux only; process-wide, so run it in a child that does nothing else ([`rerun_self`]).
///
/// Memory that `f` allocates and frees again still counts (that is the point: the peak), while pages that were
/// already resident before `f` do not.
pub fn peak_rss_growth<T>(f: impl FnOnce() -> T) -> io::Result<(T, u64)> {
    std::fs::write("/proc/self/clear_refs", b"5")?;
    let before = status_kib("VmRSS:")?;
    let out = f();
    let peak = status_kib("VmHWM:")?;
    Ok((out, peak.saturating_sub(before) * 1024))
}

/// A `kB` line of `/proc/self/status`.
fn status_kib(key: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/self/status has no `{key}` line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_allocation_shows_in_the_peak() {
        let ((), grown) = peak_rss_growth(|| {
            let big = vec![1u8; 64 << 20];
            // Touch every page so that it is resident, then free it: the peak keeps it.
            assert_eq!(big.iter().map(|&b| u64::from(b)).sum::<u64>(), 64 << 20);
        })
        .expect("/proc/self is readable on Linux");
        assert!(grown >= 60 << 20, "{grown}");
    }
}
