//! Building requests and classifying responses: the pieces every endpoint module shares.
//!
//! Internal: the endpoint modules' public `*_request` / `parse_*` pairs are the API. Only the endpoint URL policy
//! ([`UrlError`], [`parse_endpoint`], [`require_secure`], [`is_loopback`]) is public, re-exported at the crate root.
//!
//! Requests are plain `http::Request<Vec<u8>>` values and responses plain `http::Response<Vec<u8>>`, so that any HTTP
//! client can carry them. A 3xx is always an error here: the transports turn redirects off, and this module makes
//! sure a redirect that slips through is never mistaken for an answer.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response};
use serde::de::DeserializeOwned;
use url::Url;

pub(crate) use crate::error::json_reason;
use crate::error::{BodySnippet, Endpoint, OAuthError, ResponseError};

/// The media type of JSON requests and responses.
pub(crate) const JSON: &str = "application/json";
/// The media type of form bodies.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// Builds a `GET` that asks for JSON.
pub(crate) fn get_json(url: &Url) -> Request<Vec<u8>> {
    request(Method::GET, url)
        .header(ACCEPT, JSON)
        .body(Vec::new())
        .expect("a parsed URL and static headers always make a valid request")
}

/// Builds a `POST` with a form-urlencoded body and an optional `Authorization` header.
pub(crate) fn post_form<'a>(
    url: &Url,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    authorization: Option<HeaderValue>,
) -> Request<Vec<u8>> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes();
    let mut builder = request(Method::POST, url)
        .header(ACCEPT, JSON)
        .header(CONTENT_TYPE, FORM);
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder
        .body(body)
        .expect("a parsed URL and valid header values always make a valid request")
}

/// A compact JWS (RFC 7515 §7.1): `header_b64` (the base64url JOSE header), the base64url `payload`, and the
/// base64url signature that `sign` makes over the first two, joined by dots.
pub(crate) fn compact_jws<S: AsRef<[u8]>, E>(
    header_b64: &str,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<S, E>,
) -> Result<String, E> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // The signature is at most 512 bytes (RSA-4096), 683 in base64url.
    let mut jws = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 700);
    jws.push_str(header_b64);
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
    let signature = sign(jws.as_bytes())?;
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
    Ok(jws)
}

/// Builds a request with a JSON body and an optional `Authorization` header.
pub(crate) fn send_json(
    method: Method,
    url: &Url,
    body: &serde_json::Value,
    authorization: Option<HeaderValue>,
) -> Request<Vec<u8>> {
    let mut builder = request(method, url)
        .header(ACCEPT, JSON)
        .header(CONTENT_TYPE, JSON);
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder
        .body(body.to_string().into_bytes())
        .expect("a parsed URL and valid header values always make a valid request")
}

/// Starts a request builder for `url`.
pub(crate) fn request(method: Method, url: &Url) -> http::request::Builder {
    Request::builder().method(method).uri(url.as_str())
}

/// A `Bearer` authorization header value. Marked sensitive so that `http`'s `Debug` hides it.
///
/// Fails only when the token holds bytes that cannot go in a header (a control character), which a
/// well-behaved provider never sends.
pub(crate) fn bearer(token: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Checks the status of a response: 2xx passes, 3xx is [`ResponseError::Redirect`], an OAuth error body is
/// [`ResponseError::OAuth`] (whatever the 4xx/5xx status), and anything else is [`ResponseError::Status`].
pub(crate) fn check_status(
    endpoint: Endpoint,
    response: &Response<Vec<u8>>,
) -> Result<(), ResponseError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    if status.is_redirection() {
        return Err(ResponseError::Redirect {
            endpoint,
            status: status.as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| crate::error::truncate(l, 256)),
        });
    }
    if let Some(error) = OAuthError::from_json(response.body()) {
        return Err(ResponseError::OAuth { endpoint, error });
    }
    Err(ResponseError::Status {
        endpoint,
        status: status.as_u16(),
        body: BodySnippet::new(endpoint, response.body()),
    })
}

/// Checks the status, then parses a JSON body into `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(
    endpoint: Endpoint,
    response: &Response<Vec<u8>>,
) -> Result<T, ResponseError> {
    check_status(endpoint, response)?;
    serde_json::from_slice(response.body())
        .map_err(|e| malformed(endpoint, response.body(), json_reason(&e)))
}

/// A [`ResponseError::Malformed`] for `body`.
pub(crate) fn malformed(
    endpoint: Endpoint,
    body: &[u8],
    reason: impl Into<String>,
) -> ResponseError {
    ResponseError::Malformed {
        endpoint,
        reason: reason.into(),
        body: BodySnippet::new(endpoint, body),
    }
}

/// Whether `host` is a loopback host: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why an endpoint URL was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The text is not a URL.
    #[error("`{url}` is not a valid URL ({reason}); give an absolute https URL")]
    Invalid {
        /// The text, cut.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// The URL is not https and not on a loopback host.
    #[error(
        "`{0}` is not https: use an https URL (plain http is allowed only on loopback hosts, for tests)"
    )]
    NotHttps(String),
    /// The URL carries a fragment, user info, or no host.
    #[error("`{0}` cannot be an endpoint: it has no host, or it carries a fragment or credentials")]
    NotAnEndpoint(String),
}

/// Parses an endpoint URL and checks [`require_secure`].
pub fn parse_endpoint(text: &str) -> Result<Url, UrlError> {
    let url = Url::parse(text).map_err(|e| UrlError::Invalid {
        url: crate::error::truncate(text, 200),
        reason: e.to_string(),
    })?;
    require_secure(&url)?;
    Ok(url)
}

/// An endpoint must be `https`, except on loopback hosts, and must have a host and no fragment or credentials.
pub fn require_secure(url: &Url) -> Result<(), UrlError> {
    let shown = || crate::error::truncate(url.as_str(), 200);
    if url.host().is_none()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(UrlError::NotAnEndpoint(shown()));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(UrlError::NotHttps(shown())),
    }
}

/// A request as `Debug` shows it: the method and the URL without its query, and the body's length; never a header
/// or the body, which carry secrets (a refresh token, a code, a client assertion, basic credentials).
pub(crate) struct RequestSummary<'a>(pub(crate) &'a http::Request<Vec<u8>>);

impl std::fmt::Debug for RequestSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uri = self.0.uri();
        write!(
            f,
            "{} {}://{}{} ({} bytes)",
            self.0.method(),
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("?", |a| a.as_str()),
            uri.path(),
            self.0.body().len()
        )
    }
}

/// A response as `Debug` shows it: the status and the body's length, never the body (it may carry tokens).
pub(crate) struct ResponseSummary<'a>(pub(crate) &'a http::Response<Vec<u8>>);

impl std::fmt::Debug for ResponseSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.0.status(), self.0.body().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn resp(status: u16, body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn redirects_are_errors() {
        let r = Response::builder()
            .status(302)
            .header(LOCATION, "https://evil.example/")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            check_status(Endpoint::Token, &r),
            Err(ResponseError::Redirect {
                endpoint: Endpoint::Token,
                status: 302,
                location: Some("https://evil.example/".into())
            })
        );
    }

    #[test]
    fn oauth_error_on_400_and_401() {
        for status in [400, 401] {
            let e = check_status(
                Endpoint::Token,
                &resp(status, r#"{"error":"invalid_client"}"#),
            )
            .unwrap_err();
            assert_eq!(e.oauth_error().unwrap().code, ErrorCode::InvalidClient);
        }
        let e = check_status(Endpoint::Token, &resp(503, "<html>down</html>")).unwrap_err();
        assert!(matches!(e, ResponseError::Status { status: 503, .. }));
        assert!(e.is_transient());
    }

    #[test]
    fn malformed_json_is_typed() {
        let e =
            parse_json::<serde_json::Value>(Endpoint::Discovery, &resp(200, r#"{"issuer": "x"#))
                .unwrap_err();
        match e {
            ResponseError::Malformed { reason, .. } => {
                assert!(reason.contains("truncated"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn json_reasons_name_fields_never_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let e = serde_json::from_str::<T>(r#"{"a":"SECRET5"}"#).unwrap_err();
        assert!(!json_reason(&e).contains("SECRET5"), "{}", json_reason(&e));
        let e = serde_json::from_str::<T>(r#"{}"#).unwrap_err();
        assert!(json_reason(&e).contains("field `a`"), "{}", json_reason(&e));
    }

    #[test]
    fn deep_nesting_and_huge_numbers_are_named() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = serde_json::from_str::<serde_json::Value>(&deep).unwrap_err();
        assert!(
            json_reason(&e).contains("nested more than 128"),
            "{}",
            json_reason(&e)
        );
        let e = serde_json::from_str::<serde_json::Value>(r#"{"expires_in":1e400}"#).unwrap_err();
        assert!(
            json_reason(&e).contains("number too large"),
            "{}",
            json_reason(&e)
        );
        let e = serde_json::from_str::<serde_json::Value>("{x").unwrap_err();
        assert!(
            json_reason(&e).starts_with("the body is not JSON"),
            "{}",
            json_reason(&e)
        );
    }

    #[test]
    fn endpoint_policy() {
        assert!(parse_endpoint("https://accounts.example.com/connect/token").is_ok());
        assert!(parse_endpoint("http://127.0.0.1:8080/x").is_ok());
        assert!(parse_endpoint("http://127.9.9.9/x").is_ok());
        assert!(parse_endpoint("http://[::1]:9/x").is_ok());
        assert!(parse_endpoint("http://localhost:9/x").is_ok());
        assert!(matches!(
            parse_endpoint("http://accounts.example.com/"),
            Err(UrlError::NotHttps(_))
        ));
        assert!(matches!(
            parse_endpoint("http://10.0.0.1/"),
            Err(UrlError::NotHttps(_))
        ));
        assert!(matches!(
            parse_endpoint("https://a.example/#frag"),
            Err(UrlError::NotAnEndpoint(_))
        ));
        assert!(matches!(
            parse_endpoint("https://u:p@a.example/"),
            Err(UrlError::NotAnEndpoint(_))
        ));
        assert!(matches!(
            parse_endpoint("not a url"),
            Err(UrlError::Invalid { .. })
        ));
    }

    #[test]
    fn form_encoding() {
        let url = Url::parse("https://a.example/token").unwrap();
        let r = post_form(&url, [("a", "b c"), ("d", "&=")], None);
        assert_eq!(r.body(), b"a=b+c&d=%26%3D");
        assert_eq!(r.headers()[CONTENT_TYPE], FORM);
    }
}
