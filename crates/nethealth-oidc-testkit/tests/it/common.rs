//! Helpers for the test kit's own tests: a plain HTTP client (ureq, redirects off) and a login driver.

#![allow(dead_code)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use nethealth_oidc_testkit::{Browser, Consent, TestKit};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:8080/cb";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn read(mut response: http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .body_mut()
        .with_config()
        .limit(20 << 20)
        .read_to_vec()
        .expect("body");
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) fn get(url: &str) -> Answer {
    read(agent().get(url).call().expect("GET"))
}

pub(crate) fn get_bearer(url: &str, token: &str) -> Answer {
    read(
        agent()
            .get(url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("GET"),
    )
}

pub(crate) fn post_json(url: &str, body: &str, bearer: Option<&str>) -> Answer {
    let mut req = agent().post(url).content_type("application/json");
    if let Some(token) = bearer {
        req = req.header("Authorization", format!("Bearer {token}"));
    }
    read(req.send(body).expect("POST"))
}

/// How the client authenticates in [`post_form`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    Public(&'a str),
    Nothing,
}

pub(crate) fn basic_header(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

pub(crate) fn post_form(url: &str, auth: Auth<'_>, fields: &[(&str, &str)]) -> Answer {
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    let mut req = agent().post(url);
    match auth {
        Auth::Basic(id, secret) => req = req.header("Authorization", basic_header(id, secret)),
        Auth::Post(id, secret) => {
            all.push(("client_id", id));
            all.push(("client_secret", secret));
        }
        Auth::Public(id) => all.push(("client_id", id)),
        Auth::Nothing => {}
    }
    read(req.send_form(all).expect("POST form"))
}

pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An authorize URL; `pkce` adds an S256 challenge for [`VERIFIER`].
pub(crate) fn auth_url(kit: &TestKit, client_id: &str, scope: &str, pkce: bool) -> String {
    let mut url = url::Url::parse(&kit.authorization_endpoint()).expect("url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("state", "st-123")
            .append_pair("nonce", "n-456");
        if pkce {
            q.append_pair("code_challenge", &s256(VERIFIER))
                .append_pair("code_challenge_method", "S256");
        }
    }
    url.to_string()
}

/// The query parameters of a callback URL.
pub(crate) fn callback_params(callback: &str) -> Vec<(String, String)> {
    url::Url::parse(callback)
        .expect("callback URL")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) fn param(callback: &str, name: &str) -> Option<String> {
    callback_params(callback)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Logs in with `consent` and returns the code.
pub(crate) fn login_code(
    kit: &TestKit,
    client_id: &str,
    scope: &str,
    pkce: bool,
    consent: &Consent,
) -> String {
    let callback = Browser::new()
        .login(&auth_url(kit, client_id, scope, pkce), consent)
        .expect("login");
    param(&callback, "code").unwrap_or_else(|| panic!("no code in {callback}"))
}

/// Exchanges a code with PKCE (S256, [`VERIFIER`]).
pub(crate) fn exchange(kit: &TestKit, auth: Auth<'_>, code: &str) -> Answer {
    post_form(
        &kit.token_endpoint(),
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
}

/// Logs in (all scopes granted) as a PKCE client and exchanges the code with basic auth; returns the token response.
pub(crate) fn tokens(kit: &TestKit, client_id: &str, secret: &str, scope: &str) -> Value {
    let code = login_code(kit, client_id, scope, true, &Consent::GrantAll);
    let answer = exchange(kit, Auth::Basic(client_id, secret), &code);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// The claims of a JWT the kit signed, verified with the JWKS.
pub(crate) fn verify_jwt(kit: &TestKit, token: &str) -> serde_json::Map<String, Value> {
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    let kid = header.kid.expect("kid");
    let jwks = get(&kit.url(nethealth_oidc_testkit::Endpoint::Jwks)).json();
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    let decode = |s: &str| {
        STANDARD
            .decode(s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s))
            .expect("base64")
    };
    let n = decode(key["n"].as_str().expect("n"));
    let e = decode(key["e"].as_str().expect("e"));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Map<String, Value>>(
        token,
        &jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e),
        &validation,
    )
    .expect("valid JWT")
    .claims
}

/// The claims of a JWT without checking the signature.
pub(crate) fn peek_jwt(token: &str) -> serde_json::Map<String, Value> {
    let payload = token.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}
