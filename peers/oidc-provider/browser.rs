//! A headless stand-in for the End-User's browser, for integration tests against the oidc-provider
//! test peer in `peers/oidc-provider/` (see its README for the interaction protocol it drives).
//!
//! Include it from an integration test with
//! `#[path = "../../../peers/oidc-provider/browser.rs"] mod browser;` (adjust the path). It needs only
//! the dev-dependencies `ureq = "3"` (no extra feature: it keeps its own cookie jar) and `url = "2"`.
//!
//! [`login`] starts at an authorization URL, follows the provider's redirects one by one, logs in,
//! consents as told, and returns the redirect that the provider sends to the client's `redirect_uri`
//! (the callback URL, with `code` or `error`, `state` and `iss`) without fetching it.

// Each integration test is its own crate and may use only part of this module.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use url::Url;

/// How the test user answers the consent prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// Grant every requested scope.
    All,
    /// Grant only these scopes; the other requested ones are unticked (`openid` is always granted
    /// when requested, like a required scope). Each must have been requested.
    Only(Vec<String>),
    /// Refuse: the provider redirects back with `error=access_denied`.
    Deny,
}

impl Consent {
    /// Grants only the given scopes (see [`Consent::Only`]).
    pub fn only<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Consent::Only(scopes.into_iter().map(Into::into).collect())
    }
}

/// Logs `user` in with a fresh browser (no cookies), answers consent with `consent`, and returns the
/// URL that the provider redirects to at the end: the client's `redirect_uri` with the authorization
/// response in its query. That URL is not fetched.
pub fn login(auth_url: &impl AsRef<str>, user: &str, consent: Consent) -> Result<Url, String> {
    Browser::new().authorize(auth_url, user, &consent)
}

/// The most redirects and form posts one authorization may take before we call it a loop.
const MAX_STEPS: usize = 20;

/// A headless browser that keeps its cookies (and so its provider session) across authorizations.
///
/// A second [`Browser::authorize`] for the same client may come back without any prompt (single
/// sign-on), unless the request asks for `prompt=login` or `prompt=consent`.
pub struct Browser {
    agent: ureq::Agent,
    jar: Vec<Cookie>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookies, that never follows redirects on its own and reads 4xx and 5xx
    /// responses like any other.
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build();
        Browser {
            agent: config.into(),
            jar: Vec::new(),
        }
    }

    /// Runs one authorization from `auth_url` to the redirect back to the client (see [`login`]).
    ///
    /// Every redirect that stays on the provider's origin is followed; the first one that leaves it
    /// is returned. A login prompt is answered with `user`, a consent prompt with `consent`.
    pub fn authorize(
        &mut self,
        auth_url: &impl AsRef<str>,
        user: &str,
        consent: &Consent,
    ) -> Result<Url, String> {
        let mut url = Url::parse(auth_url.as_ref())
            .map_err(|e| format!("the authorization URL does not parse ({e})"))?;
        let origin = url.origin();
        let mut form: Option<Vec<(&str, String)>> = None;
        let mut trail: Vec<String> = Vec::new();

        for _ in 0..MAX_STEPS {
            trail.push(format!(
                "{} {}",
                if form.is_some() { "POST" } else { "GET" },
                url.path()
            ));
            let (status, location, prompt, body) = self.send(&url, form.take())?;

            if (300..400).contains(&status) {
                let location = location.ok_or_else(|| {
                    format!("{status} without Location at {url} (steps: {trail:?})")
                })?;
                let next = url
                    .join(&location)
                    .map_err(|e| format!("bad Location {location:?} at {url}: {e}"))?;
                if next.origin() != origin {
                    return Ok(next);
                }
                url = next;
                continue;
            }

            if status != 200 {
                return Err(format!("HTTP {status} at {url} (steps: {trail:?}): {body}"));
            }
            let prompt = prompt.ok_or_else(|| {
                format!("HTTP 200 at {url} is not an interaction (steps: {trail:?}): {body}")
            })?;
            let base = url.clone();
            let (action, fields) = match prompt.as_str() {
                "login" => ("login", vec![("login", user.to_owned())]),
                "consent" => match consent {
                    Consent::All => ("confirm", Vec::new()),
                    Consent::Only(scopes) => ("confirm", vec![("scope", scopes.join(" "))]),
                    Consent::Deny => ("abort", Vec::new()),
                },
                other => {
                    return Err(format!(
                        "unknown interaction prompt {other:?} at {url}: {body}"
                    ));
                }
            };
            url = base
                .join(&format!("{}/{action}", base.path()))
                .map_err(|e| format!("cannot build the {action} URL from {base}: {e}"))?;
            form = Some(fields);
        }
        Err(format!(
            "no redirect to the client after {MAX_STEPS} steps: {trail:?}"
        ))
    }

    /// Sends one GET (or form POST) with our cookies, stores the cookies it sets, and returns the
    /// status, the Location header, the interaction prompt header and the body.
    fn send(
        &mut self,
        url: &Url,
        form: Option<Vec<(&str, String)>>,
    ) -> Result<(u16, Option<String>, Option<String>, String), String> {
        let cookie = self.cookie_header(url);
        let result = match &form {
            None => {
                let mut request = self.agent.get(url.as_str());
                if let Some(cookie) = &cookie {
                    request = request.header("Cookie", cookie);
                }
                request.call()
            }
            Some(fields) => {
                let mut request = self.agent.post(url.as_str());
                if let Some(cookie) = &cookie {
                    request = request.header("Cookie", cookie);
                }
                request.send_form(fields.iter().map(|(k, v)| (*k, v.as_str())))
            }
        };
        let mut response = result.map_err(|e| format!("request to {url} failed: {e}"))?;

        for value in response.headers().get_all("set-cookie") {
            if let Ok(value) = value.to_str() {
                self.store_cookie(value);
            }
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let prompt = header("x-interaction-prompt");
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_else(|e| format!("<unreadable body: {e}>"));
        Ok((status, location, prompt, body))
    }

    /// The Cookie header for `url`: every stored cookie whose path matches (RFC 6265 5.1.4). The
    /// browser only ever talks to the provider, so domains are not tracked.
    fn cookie_header(&self, url: &Url) -> Option<String> {
        let path = url.path();
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|c| path_matches(path, &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        if pairs.is_empty() {
            None
        } else {
            Some(pairs.join("; "))
        }
    }

    /// Stores (or, when it is being cleared, removes) the cookie of one Set-Cookie header.
    fn store_cookie(&mut self, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        let mut path = "/".to_owned();
        let mut cleared = value.is_empty();
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            let (key, val) = (key.trim().to_ascii_lowercase(), val.trim());
            match key.as_str() {
                "path" if val.starts_with('/') => path = val.to_owned(),
                "max-age" => cleared |= val.parse::<i64>().is_ok_and(|age| age <= 0),
                // Cookies are cleared with an expiry at the epoch; live ones expire in the future.
                "expires" => cleared |= val.contains("1970"),
                _ => {}
            }
        }
        self.jar.retain(|c| !(c.name == name && c.path == path));
        if !cleared {
            self.jar.push(Cookie { name, value, path });
        }
    }
}

/// One stored cookie.
struct Cookie {
    name: String,
    value: String,
    path: String,
}

/// RFC 6265 path-match: the cookie path is the request path, or a prefix of it that ends at a `/`.
fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request.as_bytes().get(cookie.len()) == Some(&b'/')))
}
