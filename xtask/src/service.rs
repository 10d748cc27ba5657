//! Background services the tests need (the oidc-provider peer; later others, such as redis-server), owned by a
//! [`Service`] guard that stops them by pid: when the guard drops (success, error or panic), and on Ctrl-C or
//! SIGTERM, when [`install_signal_handler`] has run.
//!
//! A service is known by its pid only, never by its name: [`Service::adopt`] takes the pid of a service that
//! daemonized itself (a start script, `redis-server --daemonize yes --pidfile ...`), read from the pid file it wrote
//! with [`read_pid_file`]. Before signalling, the guard checks that the pid still runs the expected program
//! (`/proc/<pid>/cmdline` contains the marker), so that a reused pid is never killed.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a service gets to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A started service, registered so that the signal handler can stop it too.
#[derive(Debug)]
struct Running {
    name: String,
    pid: u32,
    /// A string the process's command line must contain for the pid to still be this service.
    marker: String,
    /// The pid file to remove once stopped.
    pid_file: Option<PathBuf>,
}

/// Every service started and not yet stopped, by id.
static RUNNING: Mutex<BTreeMap<u64, Running>> = Mutex::new(BTreeMap::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);

/// Owns one started service and stops it (by pid) when dropped.
#[derive(Debug)]
#[must_use = "the service is stopped when this guard drops"]
pub(crate) struct Service {
    id: u64,
    name: String,
}

impl Service {
    /// Takes ownership of a running service by `pid`, e.g. one a start script daemonized. `marker` must appear in
    /// its command line (`/proc/<pid>/cmdline`); `pid_file` is removed once it is stopped.
    pub(crate) fn adopt(
        name: &str,
        pid: u32,
        marker: &str,
        pid_file: Option<PathBuf>,
    ) -> Result<Service, String> {
        if !runs(pid, marker) {
            return Err(format!(
                "{name}: pid {pid} is not running `{marker}`; it exited during start-up?"
            ));
        }
        Ok(Service::register(Running {
            name: name.to_owned(),
            pid,
            marker: marker.to_owned(),
            pid_file,
        }))
    }

    fn register(running: Running) -> Service {
        let id = {
            let mut next = NEXT_ID.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let name = running.name.clone();
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, running);
        Service { id, name }
    }

    /// The service's name, as given at the start.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(service) = running.remove(&self.id) {
            stop(service);
        }
    }
}

/// Makes Ctrl-C (SIGINT) and SIGTERM stop every registered service, then exit with status 130. Without it, a
/// Ctrl-C would kill xtask and leave the services running. Children in the same process group (cargo) get the
/// Ctrl-C from the terminal themselves.
pub(crate) fn install_signal_handler() -> Result<(), String> {
    ctrlc::set_handler(|| {
        eprintln!("xtask: interrupted; stopping the services it started");
        stop_all();
        std::process::exit(130);
    })
    .map_err(|e| format!("could not install the Ctrl-C/SIGTERM handler: {e}"))
}

/// Stops every registered service. The lock is held until all are stopped, so that a guard dropping meanwhile on
/// the main thread (whose return would end the process) waits for this to finish.
fn stop_all() {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    for service in std::mem::take(&mut *running).into_values() {
        stop(service);
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; only while the pid still runs the service.
fn stop(running: Running) {
    let Running {
        name,
        pid,
        marker,
        pid_file,
    } = running;
    let target = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    if runs(pid, &marker) {
        eprintln!("xtask: stopping {name} (pid {pid})");
        let _ = kill(target, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while runs(pid, &marker) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if runs(pid, &marker) {
            eprintln!("xtask: {name} (pid {pid}) ignored SIGTERM; sending SIGKILL");
            let _ = kill(target, Signal::SIGKILL);
        }
    }
    if let Some(pid_file) = &pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
}

/// Whether `pid` is alive and its command line contains `marker` (a zombie has an empty command line).
fn runs(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            let text = String::from_utf8_lossy(&cmdline);
            text.contains(marker)
        })
        .unwrap_or(false)
}

/// Reads the pid a service wrote to `path`.
pub(crate) fn read_pid_file(path: &Path) -> Result<u32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the pid file {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("the pid file {} holds no pid: {text:?}", path.display()))
}

/// A loopback port that is free now (the OS picks it; there is a short window in which another process could take
/// it, which a service start then reports as a failure to listen).
pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}
