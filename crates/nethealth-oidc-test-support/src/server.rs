//! The scripted loopback HTTP server.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

/// A canned response: status, headers, body, and an optional delay before the headers go out.
///
/// Builders panic on invalid input (a bad status or header): that is a bug in the test, not in the code under test.
#[derive(Debug, Clone)]
pub struct Scripted {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: ScriptedBody,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum ScriptedBody {
    /// A body held in memory, sent with `Content-Length`.
    Bytes(Bytes),
    /// `len` bytes of `x`, produced chunk by chunk (never held in memory).
    Huge { len: u64, content_length: bool },
    /// One byte, then nothing more, ever (the connection stays open).
    Stalled,
}

impl Scripted {
    /// An empty response with this status.
    pub fn status(status: u16) -> Scripted {
        Scripted {
            status: StatusCode::from_u16(status).expect("the test gave a valid HTTP status"),
            headers: Vec::new(),
            body: ScriptedBody::Bytes(Bytes::new()),
            delay: Duration::ZERO,
        }
    }

    /// A response with this status and a JSON body (`Content-Type: application/json`).
    pub fn json(status: u16, body: &str) -> Scripted {
        Scripted::status(status)
            .header(CONTENT_TYPE.as_str(), "application/json")
            .body(body)
    }

    /// A redirect (`status` is 301, 302, 303, 307 or 308) to `location`.
    pub fn redirect(status: u16, location: &str) -> Scripted {
        Scripted::status(status).header(LOCATION.as_str(), location)
    }

    /// Adds a header (repeated names are all sent).
    pub fn header(mut self, name: &str, value: &str) -> Scripted {
        let name =
            HeaderName::from_bytes(name.as_bytes()).expect("the test gave a valid header name");
        let value = HeaderValue::from_str(value).expect("the test gave a valid header value");
        self.headers.push((name, value));
        self
    }

    /// Sets the body, sent with `Content-Length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Scripted {
        self.body = ScriptedBody::Bytes(Bytes::from(body.into()));
        self
    }

    /// Waits this long after the request has been read, before sending the headers.
    pub fn delay(mut self, delay: Duration) -> Scripted {
        self.delay = delay;
        self
    }

    /// A body of `len` bytes, streamed in 64 KiB chunks that are never all held in memory: with a
    /// `Content-Length` header when `content_length`, else with `Transfer-Encoding: chunked`.
    /// [`ScriptedServer::bytes_streamed`] tells how much of it went out.
    pub fn huge_body(mut self, len: u64, content_length: bool) -> Scripted {
        self.body = ScriptedBody::Huge {
            len,
            content_length,
        };
        self
    }

    /// A chunked body that sends one byte and then stalls forever, to test timeouts that cover the body.
    pub fn stalled_body(mut self) -> Scripted {
        self.body = ScriptedBody::Stalled;
        self
    }

    fn into_response(self, streamed: &Arc<AtomicU64>) -> Response {
        let body = match self.body {
            ScriptedBody::Bytes(bytes) => Body::from(bytes),
            ScriptedBody::Huge {
                len,
                content_length,
            } => Body::new(HugeBody {
                remaining: len,
                content_length,
                streamed: Arc::clone(streamed),
            }),
            ScriptedBody::Stalled => Body::new(StalledBody { sent: false }),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query, without the `?`, when there was one.
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as received.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The value of header `name` when present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Script {
    queues: HashMap<String, VecDeque<Scripted>>,
    default: Scripted,
    received: Vec<RecordedRequest>,
}

struct Shared {
    script: Mutex<Script>,
    streamed: Arc<AtomicU64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        // A test that panicked while holding the lock leaves the script usable: it is plain data.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A real HTTP/1.1 server on `127.0.0.1` (a free port) that answers from a script.
///
/// Each request is recorded, then answered with the next response queued for its path ([`enqueue`]), or with the
/// default response when that queue is empty (404 with an empty body until [`set_default`] changes it). The server
/// runs on its own thread with its own tokio runtime, and stops (closing all its connections) when dropped.
///
/// [`enqueue`]: ScriptedServer::enqueue
/// [`set_default`]: ScriptedServer::set_default
pub struct ScriptedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Starts a server on `127.0.0.1:0`. Panics when the loopback interface or a thread is not available.
    pub fn start() -> ScriptedServer {
        ScriptedServer::start_on(0)
    }

    /// Starts a server on `127.0.0.1:port` (`0` for any free port), for example on the port of a server just
    /// dropped, to test what clients do with pooled connections that the server closed. Panics when the port is
    /// taken.
    pub fn start_on(port: u16) -> ScriptedServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the loopback port is free");
        listener
            .set_nonblocking(true)
            .expect("a fresh listener can be made non-blocking");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queues: HashMap::new(),
                default: Scripted::status(404),
                received: Vec::new(),
            }),
            streamed: Arc::new(AtomicU64::new(0)),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("scripted-server-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime can be built");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("a non-blocking std listener converts to tokio");
                    tokio::select! {
                        result = axum::serve(listener, app).into_future() => {
                            result.expect("the scripted server runs until it is dropped");
                        }
                        _ = stop => {}
                    }
                });
                // Dropping the runtime here cancels the connection tasks still running (stalled or delayed ones).
            })
            .expect("a thread can be spawned");
        ScriptedServer {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
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

    /// Queues `response` for the next request to `path` (the path only, without the query).
    pub fn enqueue(&self, path: &str, response: Scripted) {
        self.shared
            .lock()
            .queues
            .entry(path.to_owned())
            .or_default()
            .push_back(response);
    }

    /// Sets the response to requests whose path has nothing queued.
    pub fn set_default(&self, response: Scripted) {
        self.shared.lock().default = response;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().received.clone()
    }

    /// The requests received so far for `path`, in order.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests arrived for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// How many bytes of [`Scripted::huge_body`] bodies the server has produced so far, all responses together.
    /// A client that stops reading early makes the server stop soon after (once the socket buffers are full).
    pub fn bytes_streamed(&self) -> u64 {
        self.shared.streamed.load(Ordering::Relaxed)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server thread may already be gone (it panicked): nothing to stop then.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
            && !std::thread::panicking()
        {
            panic!("the scripted server thread panicked");
        }
    }
}

/// A `http://127.0.0.1:PORT` URL followed by `path` where nothing listens: the port was bound, then released.
pub fn refused_url(path: &str) -> String {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .expect("the loopback interface accepts a bind to port 0");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    drop(listener);
    format!("http://{addr}{path}")
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // A body that breaks off is recorded as empty: the client under test will see the error on its side.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let scripted = {
        let mut script = shared.lock();
        script.received.push(RecordedRequest {
            method: parts.method,
            path: path.clone(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
        });
        match script.queues.get_mut(&path).and_then(VecDeque::pop_front) {
            Some(next) => next,
            None => script.default.clone(),
        }
    };
    if !scripted.delay.is_zero() {
        tokio::time::sleep(scripted.delay).await;
    }
    scripted.into_response(&shared.streamed)
}

/// 64 KiB of `x`, shared by every chunk of every huge body.
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

struct HugeBody {
    remaining: u64,
    content_length: bool,
    streamed: Arc<AtomicU64>,
}

impl http_body::Body for HugeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK.len() as u64);
        self.remaining -= n;
        self.streamed.fetch_add(n, Ordering::Relaxed);
        // `n` is at most CHUNK.len(), so it fits in usize.
        let chunk = Bytes::from_static(&CHUNK).slice(..n as usize);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.content_length {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

struct StalledBody {
    sent: bool,
}

impl http_body::Body for StalledBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            // Never woken again: the connection task waits until the client gives up or the server is dropped.
            return Poll::Pending;
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{")))))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    /// Sends `request` on a fresh connection and returns the response head (up to the blank line) in lower case.
    fn head(server: &ScriptedServer, request: &str) -> String {
        let mut stream = TcpStream::connect(server.addr()).expect("the server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a timeout can be set");
        stream
            .write_all(request.as_bytes())
            .expect("the request goes out");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("the head arrives");
            head.push(byte[0]);
        }
        String::from_utf8(head)
            .expect("the head is text")
            .to_ascii_lowercase()
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n")
    }

    #[test]
    fn queued_responses_go_out_in_order_then_the_default() {
        let server = ScriptedServer::start();
        server.enqueue("/a", Scripted::status(503).header("retry-after", "1"));
        server.enqueue("/a", Scripted::json(200, "{}"));
        assert!(head(&server, &get("/a?x=1")).starts_with("http/1.1 503"));
        let second = head(&server, &get("/a"));
        assert!(second.starts_with("http/1.1 200"), "{second}");
        assert!(second.contains("content-type: application/json"));
        assert!(second.contains("content-length: 2"));
        assert!(head(&server, &get("/a")).starts_with("http/1.1 404"));
        server.set_default(Scripted::redirect(302, "/elsewhere"));
        let redirect = head(&server, &get("/b"));
        assert!(redirect.starts_with("http/1.1 302"), "{redirect}");
        assert!(redirect.contains("location: /elsewhere"));
        assert_eq!(server.count("/a"), 3);
        assert_eq!(server.count("/b"), 1);
        assert_eq!(server.requests_to("/a")[0].query.as_deref(), Some("x=1"));
        assert_eq!(server.requests_to("/a")[1].query, None);
    }

    #[test]
    fn requests_are_recorded_whole() {
        let server = ScriptedServer::start();
        head(
            &server,
            "POST /token HTTP/1.1\r\nhost: test\r\nauthorization: Basic abc\r\ncontent-length: 5\r\n\r\na=b&c",
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, Method::POST);
        assert_eq!(requests[0].path, "/token");
        assert_eq!(requests[0].header("authorization"), Some("Basic abc"));
        assert_eq!(requests[0].body_text(), "a=b&c");
    }

    #[test]
    fn huge_bodies_are_sized_or_chunked_as_asked() {
        let server = ScriptedServer::start();
        server.enqueue("/sized", Scripted::status(200).huge_body(1 << 30, true));
        server.enqueue("/chunked", Scripted::status(200).huge_body(1 << 30, false));
        server.enqueue("/stalled", Scripted::status(200).stalled_body());
        let sized = head(&server, &get("/sized"));
        assert!(sized.contains("content-length: 1073741824"), "{sized}");
        assert!(!sized.contains("transfer-encoding"), "{sized}");
        for path in ["/chunked", "/stalled"] {
            let chunked = head(&server, &get(path));
            assert!(chunked.contains("transfer-encoding: chunked"), "{chunked}");
            assert!(!chunked.contains("content-length"), "{chunked}");
        }
        // Nobody read the bodies: the server stopped at what the socket buffers hold.
        assert!(server.bytes_streamed() < 1 << 28);
    }

    #[test]
    fn a_delay_holds_the_headers_back() {
        let server = ScriptedServer::start();
        server.enqueue(
            "/slow",
            Scripted::status(204).delay(Duration::from_millis(200)),
        );
        let started = std::time::Instant::now();
        assert!(head(&server, &get("/slow")).starts_with("http/1.1 204"));
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn a_refused_url_refuses() {
        let url = refused_url("/x");
        let addr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/x"))
            .expect("the URL has the expected shape");
        assert!(TcpStream::connect(addr).is_err());
    }
}
