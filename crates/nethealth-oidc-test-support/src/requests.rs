//! Request values for transport tests: a JSON `GET`, a form `POST`, a bearer header. The core builds its own
//! requests inside its endpoint modules; these let a test send arbitrary ones through a transport's `HttpClient`.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request};
use url::Url;

/// A `GET` of `url` that asks for JSON.
pub fn get_json(url: &Url) -> Request<Vec<u8>> {
    Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(ACCEPT, "application/json")
        .body(Vec::new())
        .expect("a parsed URL and static headers make a valid request")
}

/// A form-urlencoded `POST` of `pairs` to `url`, with an optional `Authorization` header.
pub fn post_form<'a>(
    url: &Url,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    authorization: Option<HeaderValue>,
) -> Request<Vec<u8>> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes();
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(url.as_str())
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder
        .body(body)
        .expect("a parsed URL and valid header values make a valid request")
}

/// `Bearer <token>`, marked sensitive; fails on a token with bytes a header cannot carry.
pub fn bearer(token: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}
