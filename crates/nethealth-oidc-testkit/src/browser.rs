//! A scripted user agent that logs in and answers the consent page, without a real browser.

use std::time::Duration;

use crate::model::User;
use crate::pages::unescape;

/// What the user answers on the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Consent {
    /// Leaves every scope ticked and presses "Yes, Allow".
    GrantAll,
    /// Presses "No, Do Not Allow": the client gets `error=access_denied`.
    Deny,
    /// Ticks only these scopes (the others are unticked) and presses "Yes, Allow". `openid` is required by the
    /// site and is granted whenever it was requested.
    Grant(Vec<String>),
}

impl Consent {
    /// [`Consent::Grant`] from anything that lists scope names.
    pub fn grant<I, S>(scopes: I) -> Consent
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Consent::Grant(scopes.into_iter().map(Into::into).collect())
    }
}

/// Why [`Browser::login`] did not reach a redirect to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The site could not be reached, or the connection failed.
    #[error("could not reach the Accounts site ({0}): check that the test kit is still running")]
    Transport(String),
    /// The site showed its error page instead of the login page (unknown client, unregistered redirect URI, ...).
    #[error(
        "the Accounts site showed an error page (HTTP {status}): {message}; fix the authorize request"
    )]
    ErrorPage {
        /// The HTTP status.
        status: u16,
        /// The message on the page.
        message: String,
    },
    /// The form came back with a message (wrong password, no permission ticked, ...).
    #[error("the login form was refused: {0}; check the user's credentials and the chosen scopes")]
    Refused(String),
    /// [`Consent::Grant`] named a scope that the page does not offer.
    #[error(
        "the consent page does not offer the scope {0}: grant only scopes the authorize request asked for"
    )]
    ScopeNotOffered(String),
    /// The site answered something the browser cannot act on.
    #[error("unexpected answer from the Accounts site (HTTP {status}): {detail}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
}

/// A scripted browser for the login and consent page (blocking, over ureq, redirects off).
///
/// [`login`](Self::login) opens the authorization URL, fills in the username and password, ticks the scopes as
/// [`Consent`] says and submits, then returns the URL the site redirects the browser to: the client's
/// `redirect_uri` with `code` or `error`, `state` and, when enabled, `iss`. It never fetches that URL.
///
/// In an async test use [`login_async`](Self::login_async), which runs the blocking work on tokio's blocking pool.
#[derive(Clone)]
pub struct Browser {
    agent: ureq::Agent,
    username: String,
    password: String,
    remember: bool,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("username", &self.username)
            .field("remember", &self.remember)
            .finish_non_exhaustive()
    }
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    /// A browser that logs in as the pre-seeded `alice` / `password`.
    pub fn new() -> Browser {
        Browser::as_user(User::ALICE, User::ALICE_PASSWORD)
    }

    /// A browser that logs in with these credentials.
    pub fn as_user(username: impl Into<String>, password: impl Into<String>) -> Browser {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Browser {
            agent: config.into(),
            username: username.into(),
            password: password.into(),
            remember: false,
        }
    }

    /// Whether to tick "Remember my decision" (then `prompt=none` can succeed later).
    pub fn remember_decision(mut self, remember: bool) -> Browser {
        self.remember = remember;
        self
    }

    /// Opens `auth_url`, logs in, answers the consent page, and returns the redirect to the client.
    ///
    /// If the site redirects at once (an error such as `invalid_scope`, or a `prompt=none` answer), that redirect
    /// is returned.
    pub fn login(&self, auth_url: &str, consent: &Consent) -> Result<String, LoginError> {
        let transport = |e: ureq::Error| LoginError::Transport(e.to_string());
        let mut response = self.agent.get(auth_url).call().map_err(transport)?;
        let status = response.status().as_u16();
        if let Some(location) = location(&response) {
            return Ok(location);
        }
        let page = response.body_mut().read_to_string().map_err(transport)?;
        if status != 200 {
            return Err(LoginError::ErrorPage {
                status,
                message: page_error(&page).unwrap_or_else(|| snippet(&page)),
            });
        }
        let (action, fields) = self.fill(auth_url, status, &page, consent)?;
        let mut response = self
            .agent
            .post(action.as_str())
            .send_form(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(transport)?;
        let status = response.status().as_u16();
        if let Some(location) = location(&response) {
            return Ok(location);
        }
        let page = response.body_mut().read_to_string().map_err(transport)?;
        match (status, page_error(&page)) {
            (200, Some(message)) => Err(LoginError::Refused(message)),
            (_, Some(message)) => Err(LoginError::ErrorPage { status, message }),
            (_, None) => Err(LoginError::Unexpected {
                status,
                detail: snippet(&page),
            }),
        }
    }

    /// Fills in the login and consent form of `page` (fetched from `page_url`) as `consent` says: the URL to post
    /// to and the fields.
    fn fill(
        &self,
        page_url: &str,
        status: u16,
        page: &str,
        consent: &Consent,
    ) -> Result<(url::Url, Vec<(String, String)>), LoginError> {
        let form = Form::parse(page).ok_or_else(|| LoginError::Unexpected {
            status,
            detail: "the page has no login form".into(),
        })?;
        let mut fields: Vec<(String, String)> = form.hidden.clone();
        fields.push(("username".into(), self.username.clone()));
        fields.push(("password".into(), self.password.clone()));
        let button = match consent {
            Consent::Deny => "no",
            Consent::GrantAll => {
                for scope in &form.checkboxes {
                    fields.push(("scopes".into(), scope.clone()));
                }
                "yes"
            }
            Consent::Grant(chosen) => {
                for scope in chosen {
                    let offered = form.checkboxes.contains(scope)
                        || form.hidden.iter().any(|(k, v)| k == "scopes" && v == scope);
                    if !offered {
                        return Err(LoginError::ScopeNotOffered(scope.clone()));
                    }
                    if form.checkboxes.contains(scope) {
                        fields.push(("scopes".into(), scope.clone()));
                    }
                }
                "yes"
            }
        };
        if self.remember {
            fields.push(("RememberConsent".into(), "true".into()));
        }
        fields.push(("button".into(), button.into()));
        let action = url::Url::parse(page_url)
            .and_then(|base| base.join(&form.action))
            .map_err(|e| LoginError::Unexpected {
                status,
                detail: format!("the form's action is not a URL: {e}"),
            })?;
        Ok((action, fields))
    }

    /// Answers a device login (RFC 8628) as the user would on their phone: opens `verification_url` (the
    /// `verification_uri_complete` the device shows, or the `verification_uri` with `?user_code=...`), logs in and
    /// answers the consent page as `consent` says. Returns once the site says the device may go on.
    pub fn approve_device(
        &self,
        verification_url: &str,
        consent: &Consent,
    ) -> Result<(), LoginError> {
        let transport = |e: ureq::Error| LoginError::Transport(e.to_string());
        let mut response = self.agent.get(verification_url).call().map_err(transport)?;
        let status = response.status().as_u16();
        let page = response.body_mut().read_to_string().map_err(transport)?;
        if status != 200 {
            return Err(LoginError::ErrorPage {
                status,
                message: page_error(&page).unwrap_or_else(|| snippet(&page)),
            });
        }
        let (action, fields) = self.fill(verification_url, status, &page, consent)?;
        let mut response = self
            .agent
            .post(action.as_str())
            .send_form(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(transport)?;
        let status = response.status().as_u16();
        let page = response.body_mut().read_to_string().map_err(transport)?;
        match (status, page_error(&page)) {
            (200, None) if page.contains("device-done") => Ok(()),
            (200, Some(message)) => Err(LoginError::Refused(message)),
            (_, Some(message)) => Err(LoginError::ErrorPage { status, message }),
            (_, None) => Err(LoginError::Unexpected {
                status,
                detail: snippet(&page),
            }),
        }
    }

    /// [`login`](Self::login) on tokio's blocking pool, for async tests (even on a current-thread runtime).
    pub async fn login_async(
        &self,
        auth_url: &str,
        consent: &Consent,
    ) -> Result<String, LoginError> {
        let browser = self.clone();
        let url = auth_url.to_owned();
        let consent = consent.clone();
        tokio::task::spawn_blocking(move || browser.login(&url, &consent))
            .await
            .unwrap_or_else(|e| {
                Err(LoginError::Transport(format!(
                    "the browser task failed: {e}"
                )))
            })
    }
}

/// The `Location` of a 3xx.
fn location(response: &http::Response<ureq::Body>) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn snippet(page: &str) -> String {
    page.chars().take(200).collect()
}

/// The message in the page's `error-message` block.
fn page_error(page: &str) -> Option<String> {
    let marker = "class=\"error-message\"";
    let start = page.find(marker)?;
    let after = &page[start..];
    let open_end = after.find('>')? + 1;
    let rest = &after[open_end..];
    let close = rest.find("</div>")?;
    Some(unescape(&rest[..close]))
}

/// The login form as the browser sees it.
#[derive(Debug, Default)]
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
    checkboxes: Vec<String>,
}

impl Form {
    fn parse(page: &str) -> Option<Form> {
        let form_start = page.find("<form")?;
        let form_tag_end = page[form_start..].find('>')? + form_start;
        let action = attribute(&page[form_start..form_tag_end], "action")?;
        let mut form = Form {
            action,
            ..Form::default()
        };
        let mut rest = &page[form_tag_end..];
        while let Some(i) = rest.find("<input") {
            let tag_end = rest[i..].find('>').map(|e| e + i)?;
            let tag = &rest[i..tag_end];
            let kind = attribute(tag, "type").unwrap_or_default();
            let name = attribute(tag, "name");
            let value = attribute(tag, "value").unwrap_or_default();
            match (kind.as_str(), name) {
                ("hidden", Some(name)) => form.hidden.push((name, value)),
                ("checkbox", Some(name)) if name == "scopes" && !tag.contains(" disabled") => {
                    form.checkboxes.push(value);
                }
                _ => {}
            }
            rest = &rest[tag_end..];
        }
        Some(form)
    }
}

/// The value of `name="..."` in a tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_consent_page() {
        let scopes = vec![
            "openid".to_owned(),
            "profile".to_owned(),
            "patients.read".to_owned(),
        ];
        let page = crate::pages::ConsentPage {
            action: "http://127.0.0.1:1/connect/consent?x=1&amp;y",
            signin: "abc",
            xsrf: "x&y",
            client_name: "App",
            scopes: &scopes,
            username: "",
            error: Some("Invalid <username>"),
        }
        .render();
        let form = Form::parse(&page).expect("form");
        assert_eq!(form.action, "http://127.0.0.1:1/connect/consent?x=1&amp;y");
        assert!(form.hidden.contains(&("signin".into(), "abc".into())));
        assert!(form.hidden.contains(&("idsrv.xsrf".into(), "x&y".into())));
        assert!(form.hidden.contains(&("scopes".into(), "openid".into())));
        assert_eq!(form.checkboxes, vec!["profile", "patients.read"]);
        assert_eq!(page_error(&page).as_deref(), Some("Invalid <username>"));
    }

    #[test]
    fn no_form_no_error() {
        assert!(Form::parse("<html></html>").is_none());
        assert!(Form::parse("<form method=\"post\">").is_none());
        assert_eq!(page_error("<div>hi</div>"), None);
        assert_eq!(attribute("<input name=\"a", "name"), None);
    }
}
