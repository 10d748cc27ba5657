//! Pushed authorization requests (RFC 9126): the login's parameters go to the server in an authenticated back-channel
//! `POST`, and the browser gets a URL with only `client_id` and the `request_uri` the server answered.
//!
//! ```text
//!  AuthorizationRequest::build(rng, now) ─▶ (full URL, PendingLogin)
//!  pushed_authorization_request(endpoint, client, auth, &full URL, stamp) ─▶ POST, the client authenticated as at the token
//!        endpoint (token::authenticated_form_request)
//!  parse_pushed_authorization_response(&response) ─▶ PushedAuthorization { request_uri, expires_in }
//!  PushedAuthorization::browser_url(authorization_endpoint, client_id) ─▶ URL for the browser
//! ```
//!
//! `ClientContext::pushes_logins` decides whether a login is pushed (the server requires it, or the client asked);
//! `ClientContext::complete_push` turns the answer into the browser's URL and records the `request_uri`'s expiry in
//! the [`PendingLogin`](crate::authorize::PendingLogin), so that a callback for a request that expired says to start
//! the login again ([`CallbackError::RequestUriExpired`](crate::authorize::CallbackError::RequestUriExpired)).

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::authorize::AuthorizationUrl;
use crate::client::{ClientConfig, TokenAuthMethod};
use crate::client_auth::{self, ClientAuth, RequestStamp};
use crate::error::{Endpoint, ResponseError};
use crate::token::TokenRequestError;
use crate::wire;

/// The longest `request_uri` accepted, in bytes (RFC 9126 gives no limit; real ones are under 100).
const MAX_REQUEST_URI: usize = 2048;

/// The server's answer to a pushed authorization request (RFC 9126 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushedAuthorization {
    /// The reference to send the browser with.
    pub request_uri: String,
    /// How long the reference stays usable.
    pub expires_in: Duration,
}

impl PushedAuthorization {
    /// The URL to send the browser to: the authorization endpoint with only `client_id` and `request_uri`.
    pub fn browser_url(&self, authorization_endpoint: &Url, client_id: &str) -> AuthorizationUrl {
        let mut url = authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("request_uri", &self.request_uri);
        url.into()
    }
}

/// The `POST` to the PAR `endpoint` carrying the parameters of `authorization_url` (as
/// [`AuthorizationRequest::build`](crate::authorize::AuthorizationRequest::build) made it), with the client's
/// authentication by `auth`, as every token-endpoint request.
pub fn pushed_authorization_request(
    endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    authorization_url: &AuthorizationUrl,
    stamp: &RequestStamp,
) -> Result<http::Request<Vec<u8>>, TokenRequestError> {
    let pairs: Vec<(String, String)> = authorization_url
        .query_pairs()
        .filter(|(k, _)| {
            // The client's authentication adds `client_id` itself where the method carries it in the body.
            k != "client_id" || auth.method() == TokenAuthMethod::ClientSecretBasic
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let params: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    client_auth::form_request(endpoint, client, auth, &params, stamp)
}

/// Parses the PAR endpoint's answer: `201` (any 2xx) with `{request_uri, expires_in}`.
pub fn parse_pushed_authorization_response(
    response: &http::Response<Vec<u8>>,
) -> Result<PushedAuthorization, ResponseError> {
    const E: Endpoint = Endpoint::PushedAuthorization;
    #[derive(Deserialize)]
    struct Wire {
        request_uri: String,
        expires_in: serde_json::Number,
    }
    let wire: Wire = wire::parse_json(E, response)?;
    let bad = |reason: &str| wire::malformed(E, response.body(), reason);
    if wire.request_uri.is_empty() || wire.request_uri.len() > MAX_REQUEST_URI {
        return Err(bad("`request_uri` is empty or longer than 2048 bytes"));
    }
    let expires_in = wire
        .expires_in
        .as_u64()
        .or_else(|| {
            wire.expires_in
                .as_f64()
                .filter(|f| *f >= 0.0)
                .map(|f| f as u64)
        })
        .filter(|s| *s > 0)
        .ok_or_else(|| bad("`expires_in` is not a positive number of seconds"))?;
    Ok(PushedAuthorization {
        request_uri: wire.request_uri,
        expires_in: Duration::from_secs(expires_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

    fn resp(status: u16, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn pushes_the_query_with_client_auth() {
        let endpoint = Url::parse("https://op.example/par").unwrap();
        let auth_url: AuthorizationUrl =
            Url::parse("https://op.example/auth?client_id=app&scope=openid&state=s#f")
                .unwrap()
                .into();
        let client = ClientConfig::new("app", Some(ClientSecret::new("sec")));
        let stamp = RequestStamp::new_inner(crate::UnixTime::from_secs(1_800_000_000), "jti");
        let post = pushed_authorization_request(
            &endpoint,
            &client,
            &ClientAuth::new(TokenAuthMethod::ClientSecretPost),
            &auth_url,
            &stamp,
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(post.body()).unwrap(),
            "scope=openid&state=s&client_id=app&client_secret=sec"
        );
        let basic = pushed_authorization_request(
            &endpoint,
            &client,
            &ClientAuth::new(TokenAuthMethod::ClientSecretBasic),
            &auth_url,
            &stamp,
        )
        .unwrap();
        assert_eq!(basic.body(), b"client_id=app&scope=openid&state=s");
        assert!(basic.headers().contains_key(http::header::AUTHORIZATION));
    }

    #[test]
    fn parses_and_refuses() {
        let ok = parse_pushed_authorization_response(&resp(
            201,
            r#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#,
        ))
        .unwrap();
        assert_eq!(ok.expires_in, Duration::from_secs(60));
        let url = ok.browser_url(&Url::parse("https://op.example/auth").unwrap(), "app");
        assert_eq!(
            url.as_str(),
            "https://op.example/auth?client_id=app&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc"
        );
        for body in [
            r#"{"request_uri":"","expires_in":60}"#,
            r#"{"request_uri":"x","expires_in":0}"#,
            r#"{"request_uri":"x","expires_in":-5}"#,
            r#"{"expires_in":60}"#,
        ] {
            assert!(matches!(
                parse_pushed_authorization_response(&resp(201, body)),
                Err(ResponseError::Malformed { .. })
            ));
        }
        let e = parse_pushed_authorization_response(&resp(
            400,
            r#"{"error":"invalid_request","error_description":"bad"}"#,
        ))
        .unwrap_err();
        assert!(matches!(
            e,
            ResponseError::OAuth {
                endpoint: Endpoint::PushedAuthorization,
                ..
            }
        ));
    }
}
