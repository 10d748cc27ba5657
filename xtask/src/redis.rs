//! A redis-server for the tests that need one (`RedisStore`, the fleet test): installed with apt where it is
//! missing, started on a free loopback port with no persistence in a folder of its own, daemonized with a pid file,
//! and owned by a [`Service`] guard that stops it by that pid (also on failure and Ctrl-C). The tests find it
//! through `NETHEALTH_TEST_REDIS`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::service::{self, Service};

/// The variable the tests read the server's URL from.
pub(crate) const ENV: &str = "NETHEALTH_TEST_REDIS";

/// A running redis-server; stopped (by its pid) and its folder removed on drop.
pub(crate) struct RedisServer {
    service: Option<Service>,
    dir: PathBuf,
    url: String,
}

impl RedisServer {
    /// Installs redis-server if it is missing, starts it on a free loopback port and waits until it answers `PING`.
    pub(crate) fn start() -> Result<RedisServer, String> {
        install_if_missing()?;
        let port = service::free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "nethealth-oidc-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        let log = dir.join("redis.log");
        let pid_file = dir.join("redis.pid");
        let status = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
            .arg("--pidfile")
            .arg(&pid_file)
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("could not start redis-server: {e}"))?;
        if !status.success() {
            return Err(format!(
                "redis-server did not start ({status}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(answers_ping(port) && pid_file.exists()) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "redis-server did not answer on 127.0.0.1:{port} within 10 s; its log:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid = service::read_pid_file(&pid_file)?;
        let url = format!("redis://127.0.0.1:{port}");
        let guard = Service::adopt(
            &format!("redis-server at {url}"),
            pid,
            "redis-server",
            Some(pid_file),
        )?;
        eprintln!("xtask: redis-server (pid {pid}) is up; {ENV}={url}");
        Ok(RedisServer {
            service: Some(guard),
            dir,
            url,
        })
    }

    /// `redis://127.0.0.1:PORT`, the value for [`ENV`].
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Stop it first (the guard signals by pid and waits), then remove its folder.
        drop(self.service.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

fn install_if_missing() -> Result<(), String> {
    let present = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!(
        "xtask: redis-server is missing; installing the Debian package redis-server with apt-get"
    );
    crate::run("apt-get", &["update"], &[])?;
    crate::run("apt-get", &["install", "-y", "redis-server"], &[]).map_err(|e| {
        format!("{e}; install redis-server yourself (apt-get install -y redis-server)")
    })
}
