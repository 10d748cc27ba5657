//! The web service itself: an axum router over one shared [`Client`] and its [`Sessions`]. `main.rs` runs it; the
//! end-to-end tests include this file (`#[path = "../examples/web/app.rs"] mod app;`) and drive it over HTTP.
//!
//! - `GET /login` gives the browser a random session id in a cookie (`HttpOnly`, `SameSite=Lax`, `Secure` when
//!   served over https), keeps the [`PendingLogin`] server-side as JSON under its `state`, bound to that session id,
//!   and redirects to the provider.
//! - `GET /callback` takes the pending login its `state` names out of the store (single-use; it must belong to the
//!   caller's session id), finishes the login from the request URI (no public URL needed behind a proxy), stores the
//!   user's tokens under a **new** session id (no session fixation) and redirects to `/me`.
//! - `GET /me` calls the protected API with the user's token; a due token is refreshed on the way, transparently.
//! - `POST /logout` revokes the tokens, ends the session, clears the cookie and redirects to the provider's
//!   end-session endpoint (RP-initiated logout). It is a `POST`: `SameSite=Lax` keeps a cross-site form from
//!   logging the user out.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use nethealth_oidc::core::Url;
use nethealth_oidc::{Client, Error, PendingLogin, Prompt, Scopes, SessionKey, Sessions};

/// The cookie that holds the browser's session id.
pub const COOKIE: &str = "nh_session";

/// What the service is configured with, besides its client.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The scopes each login asks for.
    pub scopes: Scopes,
    /// The protected API `/me` calls.
    pub api_url: String,
    /// A `prompt` for each login (some providers issue a refresh token only with `prompt=consent`).
    pub prompt: Option<Prompt>,
    /// Where the provider sends the browser after logout (must be registered with the client).
    pub post_logout_redirect_uri: Option<Url>,
    /// Whether the cookie gets `Secure` (serve over https in production).
    pub secure_cookies: bool,
}

/// The service's shared state: `Clone + Send + Sync`, as axum wants it.
#[derive(Clone)]
pub struct AppState {
    client: Client,
    sessions: Sessions,
    api: reqwest::Client,
    config: Arc<WebConfig>,
    /// Pending logins by `state`: (the session id that started it, the serialized [`PendingLogin`]).
    pending: Arc<Mutex<HashMap<String, (String, String)>>>,
}

impl AppState {
    /// The state for `sessions` (of `sessions.client()`).
    pub fn new(sessions: Sessions, api: reqwest::Client, config: WebConfig) -> Self {
        AppState {
            client: sessions.client().clone(),
            sessions,
            api,
            config: Arc::new(config),
            pending: Arc::default(),
        }
    }

    /// The users' sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// How many logins are pending.
    pub fn pending_logins(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .with_state(state)
}

/// A refusal with a message that says what to do next (library errors say it already, and carry no secret).
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

fn error_response(error: &Error) -> Response {
    let status = if error.is_login_required() {
        StatusCode::UNAUTHORIZED
    } else if matches!(error, Error::Callback(_)) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::BAD_GATEWAY
    };
    refuse(status, error.to_string())
}

/// 32 random bytes, base64url: a session id nobody can guess.
fn new_session_id() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

fn cookie(state: &AppState, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax");
    if state.config.secure_cookies {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&cookie)
        .expect("a session id is base64url, so the cookie is a valid header")
}

fn redirect(to: &str, set_cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(to) {
        Ok(location) => response.headers_mut().insert(header::LOCATION, location),
        Err(_) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the redirect is not a valid URL",
            );
        }
    };
    if let Some(c) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

async fn login(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let sid = session_id(&headers).unwrap_or_else(new_session_id);
    let request = match state.client.login_request(&state.config.scopes) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let request = match state.config.prompt {
        Some(prompt) => request.prompt(prompt),
        None => request,
    };
    // Pushed first (RFC 9126) when the provider requires it: then the URL carries only client_id and request_uri.
    let (auth_url, pending) = match state.client.start_login_with(request).await {
        Ok(started) => started,
        Err(e) => return error_response(&e),
    };
    let json = match serde_json::to_string(&pending) {
        Ok(json) => json,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")),
    };
    let now = state.client.provider().clock().now();
    let lifetime = state.client.context().options().login_lifetime;
    let mut logins = state.pending.lock().unwrap_or_else(|p| p.into_inner());
    // Stale attempts go, so that bots hitting /login cannot fill the memory.
    logins.retain(|_, (_, json)| {
        serde_json::from_str::<PendingLogin>(json)
            .is_ok_and(|p| p.check_not_expired(now, lifetime).is_ok())
    });
    logins.insert(
        pending.state().expose_secret().to_owned(),
        (sid.clone(), json),
    );
    drop(logins);
    redirect(auth_url.as_str(), Some(cookie(&state, &sid, None)))
}

async fn callback(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(sid) = session_id(&headers) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "this browser has no session: cookies must be on; start the login again at /login",
        );
    };
    let query = uri.query().unwrap_or("");
    let callback_state = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    // Single-use: out of the store whatever happens next.
    let taken = state
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&callback_state);
    let pending = match taken {
        Some((owner, json)) if owner == sid => serde_json::from_str::<PendingLogin>(&json).ok(),
        _ => None,
    };
    let Some(pending) = pending else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no login of this browser is pending for this callback (expired, used, or not started here): \
             start the login again at /login",
        );
    };
    let grant = match state.client.finish_login_uri(&pending, &uri).await {
        Ok(grant) => grant,
        Err(e) => return error_response(&e),
    };
    // A new session id once logged in: an id planted before the login is worth nothing after it.
    let new_sid = new_session_id();
    if let Err(e) = state
        .sessions
        .insert(&SessionKey::new(new_sid.clone()), grant)
        .await
    {
        return error_response(&e);
    }
    redirect("/me", Some(cookie(&state, &new_sid, None)))
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(key) = session_id(&headers).map(SessionKey::new) else {
        return refuse(StatusCode::UNAUTHORIZED, "not logged in: log in at /login");
    };
    let session = match state.sessions.get(&key).await {
        Ok(Some(session)) => session,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "not logged in: log in at /login"),
        Err(e) => return error_response(&e),
    };
    let api = session.authorized(state.api.clone());
    let response = match api.send(api.get(&state.config.api_url)).await {
        Ok(r) => r,
        Err(e) if e.is_login_required() => {
            // The refresh token is dead: forget the session; the user logs in again.
            let _ = state.sessions.remove(&key).await;
            return error_response(&e);
        }
        Err(e) => return error_response(&e),
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let sub = session
        .token_set()
        .id_claims
        .map(|c| c.sub)
        .unwrap_or_default();
    let answer = serde_json::json!({ "sub": sub, "api_status": status, "api": body });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let clear = cookie(&state, "", Some(0));
    let Some(key) = session_id(&headers).map(SessionKey::new) else {
        return redirect("/", Some(clear));
    };
    let session = match state.sessions.get(&key).await {
        Ok(Some(session)) => session,
        _ => return redirect("/", Some(clear)),
    };
    // The logout URL carries the ID token as a hint: build it before the tokens are gone.
    let logout_url = session.logout_url(state.config.post_logout_redirect_uri.as_ref(), None);
    let revoked = session.revoke().await;
    let removed = state.sessions.remove(&key).await;
    if let Err(e) = revoked.and(removed) {
        return error_response(&e);
    }
    match logout_url {
        Ok(url) => redirect(url.as_str(), Some(clear)),
        // No end-session endpoint: the local session is over all the same.
        Err(_) => redirect("/", Some(clear)),
    }
}
