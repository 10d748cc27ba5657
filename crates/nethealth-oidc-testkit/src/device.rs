//! The device authorization grant (RFC 8628): `/connect/deviceauthorization` hands out a device code and a user
//! code, `/connect/device` is the page where the user enters the code, logs in and approves or denies, and the
//! token endpoint answers the device's polls.
//!
//! As the RFC says: `authorization_pending` until the user answers, `slow_down` (and 5 s more) to a device that
//! polls sooner than the interval, `access_denied` after a denial, `expired_token` once the codes have expired.
//! The codes live 300 s; the interval is 5 s unless a test sets it with
//! [`set_device_interval`](crate::TestKit::set_device_interval).

use http::{Method, StatusCode};
use rand::Rng as _;
use serde_json::json;

use crate::model::{ClientSpec, Endpoint, SCOPES};
use crate::pages::ConsentPage;
use crate::provider::{authenticated_post, error_page, grant_error, issue_tokens};
use crate::server::{Params, Reply, Req, html, json, method_not_allowed};
use crate::state::{Config, Shared, State, random_handle};

/// The `grant_type` of a device's poll.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long device and user codes are valid, in seconds.
const DEVICE_CODE_LIFETIME: u64 = 300;

/// What the user did with a user code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceAnswer {
    Pending,
    Approved {
        sub: String,
        scopes: Vec<String>,
        auth_time: u64,
    },
    Denied,
}

/// An issued device code.
#[derive(Debug, Clone)]
pub(crate) struct DeviceGrant {
    pub(crate) client_id: String,
    pub(crate) user_code: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) xsrf: String,
    pub(crate) created: u64,
    pub(crate) interval: u64,
    pub(crate) last_poll: Option<u64>,
    pub(crate) answer: DeviceAnswer,
}

/// `XXXX-XXXX` from letters that cannot be misread (RFC 8628 §6.1).
fn user_code() -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::rng();
    let mut code: String = (0..8)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect();
    code.insert(4, '-');
    code
}

/// `POST /connect/deviceauthorization`.
pub(crate) fn authorization(shared: &Shared, req: &Req) -> Reply {
    let (form, mut state, client) = match authenticated_post(shared, req) {
        Ok(post) => post,
        Err(reply) => return reply,
    };
    let cfg = &shared.config;
    let scope = match form.single("scope") {
        Ok(s) => s.unwrap_or("openid"),
        Err(e) => return grant_error("invalid_request", &e),
    };
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split_ascii_whitespace() {
        if !SCOPES.contains(&s) || !client.allowed_scopes.iter().any(|a| a == s) {
            return grant_error(
                "invalid_scope",
                &format!("The client is not allowed the scope {s}"),
            );
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    let now = state.now();
    state
        .device_codes
        .retain(|_, d| d.created.saturating_add(DEVICE_CODE_LIFETIME) > now);
    let device_code = random_handle();
    let code = user_code();
    let interval = state.device_interval;
    state.device_codes.insert(
        device_code.clone(),
        DeviceGrant {
            client_id: client.client_id.clone(),
            user_code: code.clone(),
            scopes,
            xsrf: random_handle(),
            created: now,
            interval,
            last_poll: None,
            answer: DeviceAnswer::Pending,
        },
    );
    let page = cfg.url(Endpoint::Device);
    json(
        StatusCode::OK,
        &json!({
            "device_code": device_code,
            "user_code": code,
            "verification_uri": page,
            "verification_uri_complete": format!("{page}?user_code={code}"),
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": interval,
        }),
    )
}

fn by_user_code<'a>(state: &'a mut State, code: &str) -> Option<&'a mut DeviceGrant> {
    let now = state.now();
    state.device_codes.values_mut().find(|d| {
        d.user_code.eq_ignore_ascii_case(code.trim())
            && d.answer == DeviceAnswer::Pending
            && d.created.saturating_add(DEVICE_CODE_LIFETIME) > now
    })
}

fn consent_page(
    cfg: &Config,
    grant: &DeviceGrant,
    client: &ClientSpec,
    error: Option<&str>,
) -> Reply {
    html(
        StatusCode::OK,
        ConsentPage {
            action: &cfg.url(Endpoint::Device),
            signin: &grant.user_code,
            xsrf: &grant.xsrf,
            client_name: &client.name,
            scopes: &grant.scopes,
            username: "",
            error,
        }
        .render(),
    )
}

/// `GET /connect/device?user_code=...` shows the login and consent page; the form posts back here.
pub(crate) fn verification(shared: &Shared, req: &Req) -> Reply {
    let cfg = &shared.config;
    let params: Params = match req.method {
        Method::GET => req.query_params(),
        Method::POST => match req.form_params() {
            Ok(p) => p,
            Err(reply) => return reply,
        },
        _ => return method_not_allowed("GET, POST"),
    };
    let field = if req.method == Method::GET {
        "user_code"
    } else {
        "signin"
    };
    let Some(code) = params.single(field).ok().flatten().map(str::to_owned) else {
        return error_page("Enter the code your device shows (the user_code parameter is missing)");
    };
    let mut state = shared.lock();
    let now = state.now();
    let Some(grant) = by_user_code(&mut state, &code).map(|g| g.clone()) else {
        return error_page(
            "The code is unknown, expired or already used: start again on your device",
        );
    };
    let Some(client) = state.clients.get(&grant.client_id).cloned() else {
        return error_page("The client application is not known or is not authorized");
    };
    if req.method == Method::GET {
        return consent_page(cfg, &grant, &client, None);
    }
    if params.single("idsrv.xsrf").ok().flatten() != Some(grant.xsrf.as_str()) {
        return error_page("The anti-forgery token is invalid: start again");
    }
    let username = params.single("username").ok().flatten().unwrap_or("");
    let password = params.single("password").ok().flatten().unwrap_or("");
    let Some(user) = state
        .user_by_name(username)
        .filter(|u| u.password == password)
        .cloned()
    else {
        return consent_page(cfg, &grant, &client, Some("Invalid username or password"));
    };
    let answer = match params.single("button").ok().flatten() {
        Some("no") => DeviceAnswer::Denied,
        Some("yes") => {
            let ticked = params.all("scopes");
            let scopes: Vec<String> = grant
                .scopes
                .iter()
                .filter(|s| *s == "openid" || ticked.contains(&s.as_str()))
                .cloned()
                .collect();
            if scopes.is_empty() {
                return consent_page(
                    cfg,
                    &grant,
                    &client,
                    Some("Must select at least one permission."),
                );
            }
            DeviceAnswer::Approved {
                sub: user.sub.clone(),
                scopes,
                auth_time: now,
            }
        }
        _ => {
            return consent_page(
                cfg,
                &grant,
                &client,
                Some("Choose \"Yes, Allow\" or \"No, Do Not Allow\"."),
            );
        }
    };
    let done = if answer == DeviceAnswer::Denied {
        "You denied the request. You can close this page."
    } else {
        "Your device is now signed in. You can close this page and return to it."
    };
    if let Some(g) = by_user_code(&mut state, &code) {
        g.answer = answer;
    }
    html(
        StatusCode::OK,
        format!(
            "<!DOCTYPE html><html><body><h1>Net Health Accounts</h1><p class=\"device-done\">{done}</p></body></html>"
        ),
    )
}

/// The token endpoint's answer to a device's poll.
pub(crate) fn device_code_grant(
    cfg: &Config,
    state: &mut State,
    client: &ClientSpec,
    form: &Params,
) -> Reply {
    let Some(device_code) = form.single("device_code").ok().flatten() else {
        return grant_error("invalid_request", "The device_code parameter is missing");
    };
    let now = state.now();
    let Some(grant) = state.device_codes.get_mut(device_code) else {
        return grant_error("invalid_grant", "Invalid device code");
    };
    if grant.client_id != client.client_id {
        return grant_error(
            "invalid_grant",
            "The device code was issued to another client",
        );
    }
    if grant.created.saturating_add(DEVICE_CODE_LIFETIME) <= now {
        state.device_codes.remove(device_code);
        return grant_error("expired_token", "The device code expired");
    }
    let too_soon = grant
        .last_poll
        .is_some_and(|last| now < last.saturating_add(grant.interval));
    grant.last_poll = Some(now);
    match grant.answer.clone() {
        DeviceAnswer::Pending if too_soon => {
            grant.interval = grant.interval.saturating_add(5);
            grant_error("slow_down", "Polled too often: wait longer between polls")
        }
        DeviceAnswer::Pending => {
            grant_error("authorization_pending", "The user has not answered yet")
        }
        DeviceAnswer::Denied => {
            state.device_codes.remove(device_code);
            grant_error("access_denied", "The user denied the request")
        }
        DeviceAnswer::Approved {
            sub,
            scopes,
            auth_time,
        } => {
            // Single-use, as codes are.
            state.device_codes.remove(device_code);
            let Some(user) = state.user_by_sub(&sub).cloned() else {
                return grant_error("invalid_grant", "The user no longer exists");
            };
            issue_tokens(cfg, state, client, &user, &scopes, None, auth_time)
        }
    }
}
