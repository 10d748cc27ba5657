//! The HTTP side: routing, request counters and transcript, fault injection, and the serve loop.

// Handlers return their HTTP answer as the `Err` of early checks; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body::Frame;

use crate::model::{Endpoint, Fault};
use crate::state::Shared;
use crate::{api, provider, registration};

/// The most of a request body the site reads.
const MAX_REQUEST_BODY: usize = 1 << 20;

/// A handler's answer, before any fault is applied.
pub(crate) type Reply = http::Response<Vec<u8>>;

/// A request as the handlers see it.
#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    /// The query's parameters.
    pub(crate) fn query_params(&self) -> Params {
        Params::parse(self.query.as_bytes())
    }

    /// The body's parameters, if it is a form.
    pub(crate) fn form_params(&self) -> Result<Params, Reply> {
        let is_form = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
            .unwrap_or(false);
        if !is_form {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request must be application/x-www-form-urlencoded",
            ));
        }
        Ok(Params::parse(&self.body))
    }

    /// The bearer token of the `Authorization` header.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let value = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}

/// Form or query parameters, decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(input: &[u8]) -> Params {
        Params(
            url::form_urlencoded::parse(input)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The one value of `name`; `Err` if it is repeated (RFC 6749 §3.1). Empty values count as absent.
    pub(crate) fn single(&self, name: &str) -> Result<Option<&str>, String> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(format!("The {name} parameter is repeated"));
        }
        Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut reply = Reply::new(body);
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    reply.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, max-age=0"),
    );
    reply
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    reply
}

/// An OAuth error answer `{error, error_description}`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json(
        status,
        &serde_json::json!({"error": error, "error_description": description}),
    )
}

/// An HTML answer.
pub(crate) fn html(status: StatusCode, page: String) -> Reply {
    let mut reply = Reply::new(page.into_bytes());
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    reply
}

/// A 302 to `location`.
pub(crate) fn redirect(location: &str) -> Reply {
    let mut reply = Reply::new(Vec::new());
    *reply.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::from_str(location) {
        reply.headers_mut().insert(header::LOCATION, value);
    } else {
        *reply.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    reply
}

/// 405 with `Allow`.
pub(crate) fn method_not_allowed(allow: &'static str) -> Reply {
    let mut reply = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({"Message": "The requested resource does not support this HTTP method."}),
    );
    reply
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    reply
}

/// Finds the endpoint for a path, matching case-insensitively as IIS does. Returns the transcript's path.
fn route(shared: &Shared, path: &str) -> (Option<Endpoint>, String) {
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let prefix = shared.config.issuer_path.as_str();
    let under_issuer = if prefix.is_empty() {
        Some(trimmed)
    } else if trimmed.len() >= prefix.len()
        && trimmed.is_char_boundary(prefix.len())
        && trimmed[..prefix.len()].eq_ignore_ascii_case(prefix)
        && (trimmed.len() == prefix.len() || trimmed.as_bytes()[prefix.len()] == b'/')
    {
        Some(&trimmed[prefix.len()..])
    } else {
        None
    };
    for endpoint in Endpoint::ALL {
        let candidate = if endpoint.under_issuer() {
            under_issuer
        } else {
            Some(trimmed)
        };
        if candidate.is_some_and(|p| p.eq_ignore_ascii_case(endpoint.path())) {
            return (Some(endpoint), endpoint.path().to_owned());
        }
    }
    // Net Health's registration action is also reachable under the issuer path.
    if let Some(p) = under_issuer
        && p.eq_ignore_ascii_case(Endpoint::Register.path())
    {
        return (
            Some(Endpoint::Register),
            Endpoint::Register.path().to_owned(),
        );
    }
    (None, path.to_owned())
}

/// The whole site as one handler: count, record, fault, dispatch.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: axum::extract::Request,
) -> http::Response<Body> {
    let (parts, body) = request.into_parts();
    let (endpoint, transcript_path) = route(&shared, parts.uri.path());
    let fault = {
        let mut state = shared.lock();
        state
            .transcript
            .push(format!("{} {}", parts.method, transcript_path));
        match endpoint {
            Some(e) => {
                *state.counts.entry(e).or_insert(0) += 1;
                state.take_fault(e)
            }
            None => None,
        }
    };
    let Some(endpoint) = endpoint else {
        return html(
            StatusCode::NOT_FOUND,
            "<!DOCTYPE html><html><body><h1>404 - File or directory not found.</h1></body></html>"
                .into(),
        )
        .map(Body::from);
    };
    match &fault {
        Some(Fault::Status(code)) => return status_page(*code).map(Body::from),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut reply = html(
                StatusCode::TOO_MANY_REQUESTS,
                "<!DOCTYPE html><html><body><h1>429 Too Many Requests</h1></body></html>".into(),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                reply.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return reply.map(Body::from);
        }
        Some(Fault::Malformed) => {
            let mut reply = json(StatusCode::OK, &serde_json::Value::Null);
            *reply.body_mut() = b"<html><body>Object moved</body></html> {\"oops\"".to_vec();
            return reply.map(Body::from);
        }
        Some(Fault::Huge {
            bytes,
            declare_length,
        }) => return huge(*bytes, *declare_length),
        Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"Message": "The request body is too large."}),
            )
            .map(Body::from);
        }
    };
    let req = Req {
        method: parts.method,
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body,
    };
    let reply = dispatch(&shared, endpoint, &req);
    match fault {
        Some(Fault::TruncatedJson) => {
            let (mut parts, mut body) = reply.into_parts();
            body.truncate(body.len() / 2);
            parts.headers.remove(header::CONTENT_LENGTH);
            http::Response::from_parts(parts, Body::from(body))
        }
        Some(Fault::Truncated) => {
            let (mut parts, body) = reply.into_parts();
            let full = body.len().max(2);
            let half = body.len() / 2;
            if let Ok(v) = HeaderValue::from_str(&full.to_string()) {
                parts.headers.insert(header::CONTENT_LENGTH, v);
            }
            let mut prefix = body;
            prefix.truncate(half);
            let stream = FillBody {
                prefix: Some(Bytes::from(prefix)),
                remaining: 0,
                then_fail: true,
                exact: None,
                pause: None,
            };
            http::Response::from_parts(parts, Body::new(stream))
        }
        _ => reply.map(Body::from),
    }
}

fn dispatch(shared: &Shared, endpoint: Endpoint, req: &Req) -> Reply {
    match endpoint {
        Endpoint::Discovery => provider::discovery(shared, req),
        Endpoint::Jwks => provider::jwks(shared, req),
        Endpoint::Authorize => provider::authorize(shared, req),
        Endpoint::Consent => provider::consent(shared, req),
        Endpoint::Token => provider::token(shared, req),
        Endpoint::Userinfo => provider::userinfo(shared, req),
        Endpoint::Revocation => provider::revocation(shared, req),
        Endpoint::Introspection => provider::introspection(shared, req),
        Endpoint::EndSession => provider::end_session(shared, req),
        Endpoint::Register => registration::net_health(shared, req),
        Endpoint::DynamicRegistration => registration::rfc7591(shared, req),
        Endpoint::Api => api::patients(shared, req),
        Endpoint::DeviceAuthorization => crate::device::authorization(shared, req),
        Endpoint::Device => crate::device::verification(shared, req),
        Endpoint::SmartConfiguration => provider::smart_configuration(shared, req),
        Endpoint::Par => crate::par_dpop::par(shared, req),
    }
}

/// An IIS-style error page for an injected status.
fn status_page(code: u16) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    html(
        status,
        format!(
            "<!DOCTYPE html><html><head><title>{} - {reason}</title></head><body><h1>Server Error</h1>\
             <h2>{} - {reason}</h2></body></html>",
            status.as_u16(),
            status.as_u16()
        ),
    )
}

/// A JSON-looking body of `bytes` bytes, streamed.
fn huge(bytes: u64, declare_length: bool) -> http::Response<Body> {
    let prefix = Bytes::from_static(b"{\"access_token\":\"");
    let prefix_len = prefix.len() as u64;
    let mut response = http::Response::new(Body::new(FillBody {
        prefix: Some(prefix.slice(..usize::try_from(bytes.min(prefix_len)).unwrap_or(0))),
        remaining: bytes.saturating_sub(prefix_len),
        then_fail: false,
        exact: declare_length.then_some(bytes),
        pause: None,
    }));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if declare_length && let Ok(v) = HeaderValue::from_str(&bytes.to_string()) {
        response.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    response
}

/// The filler of streamed bodies.
static FILL: [u8; 64 * 1024] = [b'A'; 64 * 1024];

/// A body that sends `prefix`, then `remaining` filler bytes in 64 KiB chunks, then ends or fails.
#[derive(Debug)]
struct FillBody {
    prefix: Option<Bytes>,
    remaining: u64,
    then_fail: bool,
    exact: Option<u64>,
    /// Before failing, a short pause so that what was sent is flushed to the client first.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error that cuts a truncated response's connection.
#[derive(Debug, thiserror::Error)]
#[error("the test kit cut this response short on purpose (Fault::Truncated)")]
struct CutShort;

impl http_body::Body for FillBody {
    type Data = Bytes;
    type Error = CutShort;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CutShort>>> {
        if let Some(prefix) = self.prefix.take()
            && !prefix.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if self.remaining > 0 {
            let n = self.remaining.min(FILL.len() as u64);
            self.remaining -= n;
            let n = usize::try_from(n).unwrap_or(FILL.len());
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..n])))));
        }
        if self.then_fail {
            let pause = self
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.then_fail = false;
            return Poll::Ready(Some(Err(CutShort)));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.remaining == 0 && !self.then_fail
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.exact {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

/// Serves until `shutdown` fires (its sender is dropped); then stops gracefully, or after a second at most.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Receiver<()>,
) {
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(shared, request).await) }
    });
    let mut graceful_signal = shutdown.clone();
    let mut forced_signal = shutdown;
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _closed = graceful_signal.changed().await;
    });
    let forced = async move {
        let _closed = forced_signal.changed().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    tokio::select! {
        _ = std::future::IntoFuture::into_future(server) => {}
        () = forced => {}
    }
}
