//! # nethealth-oidc-test-support
//!
//! Dev-only helpers for the transport tests of nethealth-oidc. Not published.
//!
//! - [`ScriptedServer`]: a real HTTP/1.1 server on `127.0.0.1`, on its own thread and tokio runtime, so that both
//!   blocking tests (no runtime) and `#[tokio::test]` tests can use it. Tests queue canned [`Scripted`] responses
//!   per path and then read back the [`RecordedRequest`]s that arrived. It stops when dropped.
//! - [`RawServer`]: a TCP server that plays the same bytes, in the same rhythm, on every connection ([`RawStep`]):
//!   for faults at the byte level (headers dripped one byte a second, a reset mid-body, a body that never ends).
//! - [`refused_url`]: a URL on a loopback port where nothing listens.
//! - [`capture_logs`]: records everything that `tracing` (on this thread) and `log` emit at DEBUG and above, so
//!   that a test can assert that no secret reaches the logs.
//! - [`get_json`], [`post_form`], [`bearer`]: request values to send through a transport's `HttpClient`.
//! - [`rerun_self`] and [`peak_rss_growth`]: a test re-runs its binary as a child that measures the peak memory of
//!   one operation (Linux).
//! - [`shared_redis_url`] (the redis-server `cargo xtask ci` starts) and [`OwnedRedis`], a redis-server a test
//!   starts itself: with a password, or to stall it (`SIGSTOP`) and let it go on.
//!
//! ```
//! use nethealth_oidc_test_support::{Scripted, ScriptedServer};
//!
//! let server = ScriptedServer::start();
//! server.enqueue("/token", Scripted::status(503));
//! server.enqueue("/token", Scripted::json(200, r#"{"ok":true}"#));
//! // ... send requests to server.url("/token") ...
//! assert_eq!(server.count("/token"), 0);
//! ```

mod capture;
mod process;
mod raw;
mod redis;
mod requests;
mod server;

pub use capture::{LogCapture, capture_logs};
pub use process::{peak_rss_growth, rerun_self};
pub use raw::{RawServer, RawStep};
pub use redis::{OwnedRedis, shared_redis_url};
pub use requests::{bearer, get_json, post_form};
pub use server::{RecordedRequest, Scripted, ScriptedServer, refused_url};
