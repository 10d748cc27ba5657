//! # nethealth-oidc-test-support
//!
//! Dev-only helpers for the transport tests of nethealth-oidc. Not published.
//!
//! - [`ScriptedServer`]: a real HTTP/1.1 server on `127.0.0.1`, on its own thread and tokio runtime, so that both
//!   blocking tests (no runtime) and `#[tokio::test]` tests can use it. Tests queue canned [`Scripted`] responses
//!   per path and then read back the [`RecordedRequest`]s that arrived. It stops when dropped.
//! - [`refused_url`]: a URL on a loopback port where nothing listens.
//! - [`capture_logs`]: records everything that `tracing` (on this thread) and `log` emit at DEBUG and above, so
//!   that a test can assert that no secret reaches the logs.
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
mod server;

pub use capture::{LogCapture, capture_logs};
pub use server::{RecordedRequest, Scripted, ScriptedServer, refused_url};
