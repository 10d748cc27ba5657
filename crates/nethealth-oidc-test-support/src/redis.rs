//! Redis for the tests: the shared server `cargo xtask ci` starts ([`shared_redis_url`]), and a server a test owns
//! ([`OwnedRedis`]) for what must not disturb the others: a password, or a server that stalls.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The URL of the shared test redis-server, from `NETHEALTH_TEST_REDIS`. Panics, saying how to start one, when the
/// variable is unset: a test that needs Redis never passes without it.
pub fn shared_redis_url() -> String {
    std::env::var("NETHEALTH_TEST_REDIS").unwrap_or_else(|_| {
        panic!(
            "NETHEALTH_TEST_REDIS is not set: run `cargo xtask ci` or `cargo xtask with-peers cargo test ...`, which \
             start redis-server, or start one with `redis-server --port 6390 --save ''` and set \
             NETHEALTH_TEST_REDIS=redis://127.0.0.1:6390"
        )
    })
}

/// A redis-server this test started on a free loopback port, with no persistence; killed (by its pid) on drop.
///
/// [`stall`](Self::stall) stops the process (`SIGSTOP`): connections are still accepted by the kernel, but no command
/// is answered, as with a server that hangs; [`resume`](Self::resume) lets it go on (`SIGCONT`).
pub struct OwnedRedis {
    child: Child,
    port: u16,
    password: Option<String>,
    /// Its working folder (redis-server writes nothing there with `--save ''`), removed on drop.
    _dir: tempfile::TempDir,
}

impl OwnedRedis {
    /// Starts a redis-server without a password and waits until it accepts connections.
    pub fn start() -> OwnedRedis {
        OwnedRedis::spawn(None)
    }

    /// Starts a redis-server that requires `password` (`--requirepass`).
    pub fn start_with_password(password: &str) -> OwnedRedis {
        OwnedRedis::spawn(Some(password))
    }

    fn spawn(password: Option<&str>) -> OwnedRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = tempfile::tempdir().expect("a folder for the test redis-server");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "could not start redis-server ({e}): install it with `apt-get install -y redis-server` \
                 (`cargo xtask ci` installs it)"
            )
        });
        let server = OwnedRedis {
            child,
            port,
            password: password.map(str::to_owned),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on 127.0.0.1:{port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Its port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Stops the server's process (`SIGSTOP`): nothing is answered until [`resume`](Self::resume).
    pub fn stall(&self) {
        self.signal("-STOP");
    }

    /// Lets a stalled server go on (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "kill {signal} {} failed", self.child.id());
    }
}

impl Drop for OwnedRedis {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too; wait so that no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
