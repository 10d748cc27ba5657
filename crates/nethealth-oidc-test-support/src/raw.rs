//! A loopback TCP server that answers every connection with the same bytes, in the same rhythm: for faults that an
//! HTTP server library will not produce (headers sent one byte at a time, a reset in the middle of a body, a body that
//! never ends).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest request head the server reads before it answers anyway.
const MAX_HEAD: usize = 64 * 1024;
/// How long a blocked write waits before the server checks whether it is being stopped.
const WRITE_POLL: Duration = Duration::from_millis(100);

/// One step of the answer [`RawServer`] plays on each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStep {
    /// Writes these bytes at once.
    Send(Vec<u8>),
    /// Writes these bytes one at a time, waiting `every` before each one.
    Drip {
        /// The bytes.
        bytes: Vec<u8>,
        /// The wait before each byte.
        every: Duration,
    },
    /// Writes chunks of `Transfer-Encoding: chunked` body, `size` bytes of `x` each, one every `every`, and never the
    /// last chunk: until the client goes away or the server is dropped.
    EndlessChunks {
        /// The size of each chunk.
        size: usize,
        /// The wait before each chunk.
        every: Duration,
    },
    /// Waits.
    Pause(Duration),
    /// Resets the connection (a TCP RST, through `SO_LINGER` 0) and ends the answer.
    Reset,
}

impl RawStep {
    /// `text` written at once.
    pub fn text(text: &str) -> RawStep {
        RawStep::Send(text.as_bytes().to_vec())
    }

    /// `text` written one byte at a time, `every` apart.
    pub fn drip(text: &str, every: Duration) -> RawStep {
        RawStep::Drip {
            bytes: text.as_bytes().to_vec(),
            every,
        }
    }
}

struct RawShared {
    steps: Vec<RawStep>,
    stop: AtomicBool,
    connections: AtomicUsize,
    written: AtomicU64,
    handlers: Mutex<Vec<JoinHandle<()>>>,
}

/// A TCP server on `127.0.0.1` (a free port) that, on every connection, reads the request head (and a body as long
/// as its `Content-Length`), then plays its [`RawStep`]s and closes the connection (a FIN, unless the last step is
/// [`RawStep::Reset`]).
///
/// It counts connections and the bytes it wrote. Dropping it stops it: handlers notice between bytes and chunks (a
/// write blocked on a full socket buffer gives up within 100 ms), and the drop waits for them.
pub struct RawServer {
    addr: SocketAddr,
    shared: Arc<RawShared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RawServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RawServer {
    /// Starts a server that answers every connection with `steps`. Panics when the loopback interface or a thread
    /// is not available.
    pub fn start(steps: Vec<RawStep>) -> RawServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("the loopback port is free");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(RawShared {
            steps,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            handlers: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("raw-server-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &accept_shared))
            .expect("a thread can be spawned");
        RawServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many bytes the server wrote so far, all connections together.
    pub fn bytes_written(&self) -> u64 {
        self.shared.written.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept; an error means the listener is gone already.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let handlers = std::mem::take(
            &mut *self
                .shared
                .handlers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for handler in handlers {
            let _ = handler.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<RawShared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = Arc::clone(shared);
        let handler = std::thread::Builder::new()
            .name("raw-server-connection".into())
            .spawn(move || {
                // The client going away mid-answer is what several tests cause on purpose: not an error here.
                let _ = answer(stream, &conn_shared);
            })
            .expect("a thread can be spawned");
        shared
            .handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handler);
    }
}

fn answer(mut stream: TcpStream, shared: &RawShared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(WRITE_POLL))?;
    stream.set_nodelay(true)?;
    read_request(&mut stream)?;
    for step in &shared.steps {
        match step {
            RawStep::Send(bytes) => write(&mut stream, shared, bytes)?,
            RawStep::Drip { bytes, every } => {
                for byte in bytes {
                    pause(shared, *every)?;
                    write(&mut stream, shared, std::slice::from_ref(byte))?;
                }
            }
            RawStep::EndlessChunks { size, every } => {
                let mut chunk = format!("{size:x}\r\n").into_bytes();
                chunk.resize(chunk.len() + size, b'x');
                chunk.extend_from_slice(b"\r\n");
                loop {
                    pause(shared, *every)?;
                    write(&mut stream, shared, &chunk)?;
                }
            }
            RawStep::Pause(duration) => pause(shared, *duration)?,
            RawStep::Reset => {
                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
                return Ok(()); // Dropping the stream with linger 0 sends the RST.
            }
        }
    }
    stream.shutdown(Shutdown::Write)?;
    // Let the client read to the FIN before the socket goes (closing with unread input would send an RST instead).
    stream.set_read_timeout(Some(WRITE_POLL))?;
    let mut rest = [0u8; 1024];
    while !shared.stop.load(Ordering::SeqCst) {
        match stream.read(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// Reads the request head and as much body as its `Content-Length` says.
fn read_request(stream: &mut TcpStream) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > MAX_HEAD {
            return Ok(());
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut remaining = length.saturating_sub(head.len() - end);
    while remaining > 0 {
        let n = stream.read(&mut buf[..remaining.min(4096)])?;
        if n == 0 {
            break;
        }
        remaining -= n;
    }
    Ok(())
}

fn write(stream: &mut TcpStream, shared: &RawShared, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        if shared.stop.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                shared.written.fetch_add(n as u64, Ordering::SeqCst);
                bytes = &bytes[n..];
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sleeps `duration` in short steps, giving up when the server is being stopped.
fn pause(shared: &RawShared, duration: Duration) -> io::Result<()> {
    let step = Duration::from_millis(20);
    let mut left = duration;
    while !left.is_zero() {
        if shared.stop.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let now = left.min(step);
        std::thread::sleep(now);
        left -= now;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn exchange(server: &RawServer) -> (io::Result<Vec<u8>>, Duration) {
        let mut stream = TcpStream::connect(server.addr()).expect("the server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a timeout can be set");
        stream
            .write_all(b"POST /t HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\na=b")
            .expect("the request goes out");
        let started = Instant::now();
        let mut got = Vec::new();
        let result = stream.read_to_end(&mut got).map(|_| got);
        (result, started.elapsed())
    }

    #[test]
    fn steps_are_played_in_order_then_the_connection_closes() {
        let server = RawServer::start(vec![
            RawStep::text("HTTP/1.1 200 OK\r\n"),
            RawStep::drip("a: b\r\n", Duration::from_millis(20)),
            RawStep::Pause(Duration::from_millis(50)),
            RawStep::text("\r\n"),
        ]);
        let (got, elapsed) = exchange(&server);
        assert_eq!(
            got.expect("a clean close"),
            b"HTTP/1.1 200 OK\r\na: b\r\n\r\n"
        );
        assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
        assert_eq!(server.connections(), 1);
        assert_eq!(server.bytes_written(), 25);
    }

    #[test]
    fn a_reset_resets() {
        let server = RawServer::start(vec![RawStep::text("HTTP/1.1 200 OK\r\n"), RawStep::Reset]);
        let (got, _) = exchange(&server);
        let err = got.expect_err("the connection was reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    }

    #[test]
    fn endless_chunks_go_on_until_the_client_leaves_and_the_drop_stops_them() {
        let server = RawServer::start(vec![
            RawStep::text("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            RawStep::EndlessChunks {
                size: 1000,
                every: Duration::ZERO,
            },
        ]);
        let mut stream = TcpStream::connect(server.addr()).expect("the server accepts");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .expect("the request goes out");
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0;
        while read < 4 << 20 {
            read += stream.read(&mut buf).expect("the body keeps coming");
        }
        // The server counts a chunk once its write returns, which can be just after the client has read it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while server.bytes_written() < read as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            server.bytes_written() >= 4 << 20,
            "{}",
            server.bytes_written()
        );
        let started = Instant::now();
        drop(server); // The client still holds the connection, not reading: the drop must not hang.
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
