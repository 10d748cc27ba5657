//! The OpenID Provider's endpoints, as IdentityServer3 answers them.

// Handlers return their HTTP answer as the `Err` of early checks; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::sync::MutexGuard;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::keys::{self, SigningKey};
use crate::model::{ClientSpec, Endpoint, PromptNone, RefreshTokenUsage, SCOPES, User};
use crate::pages::{self, ConsentPage};
use crate::server::{Params, Reply, Req, html, json, method_not_allowed, oauth_error, redirect};
use crate::state::{
    CodeGrant, Config, PendingLogin, RefreshGrant, Shared, State, random_handle, token_digest,
};

/// How long a login page stays valid, in seconds.
const LOGIN_PAGE_LIFETIME: u64 = 600;

// ---------------------------------------------------------------------------------------------------------------
// Discovery and JWKS

pub(crate) fn discovery(shared: &Shared, req: &Req) -> Reply {
    if req.method != Method::GET {
        return method_not_allowed("GET");
    }
    let cfg = &shared.config;
    let issuer = shared
        .lock()
        .discovery_issuer
        .clone()
        .unwrap_or_else(|| cfg.issuer.clone());
    let mut doc = json!({
        "issuer": issuer,
        "jwks_uri": cfg.url(Endpoint::Jwks),
        "authorization_endpoint": cfg.url(Endpoint::Authorize),
        "token_endpoint": cfg.url(Endpoint::Token),
        "userinfo_endpoint": cfg.url(Endpoint::Userinfo),
        "end_session_endpoint": cfg.url(Endpoint::EndSession),
        "revocation_endpoint": cfg.url(Endpoint::Revocation),
        "introspection_endpoint": cfg.url(Endpoint::Introspection),
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
        "scopes_supported": SCOPES,
        "claims_supported": [
            "sub", "name", "given_name", "family_name", "preferred_username", "email", "email_verified"
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code", "client_credentials", "refresh_token", crate::device::DEVICE_CODE_GRANT
        ],
        "device_authorization_endpoint": cfg.url(Endpoint::DeviceAuthorization),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_post", "client_secret_basic", "private_key_jwt", "client_secret_jwt", "none"
        ],
        "token_endpoint_auth_signing_alg_values_supported": cfg.assertion_algs,
        "pushed_authorization_request_endpoint": cfg.url(Endpoint::Par),
        "require_pushed_authorization_requests": shared.lock().par_dpop.require_par,
        "dpop_signing_alg_values_supported": ["ES256"],
    });
    if let Some(obj) = doc.as_object_mut() {
        if cfg.dynamic_registration {
            obj.insert(
                "registration_endpoint".into(),
                cfg.url(Endpoint::DynamicRegistration).into(),
            );
        }
        if cfg.iss_parameter {
            obj.insert(
                "authorization_response_iss_parameter_supported".into(),
                true.into(),
            );
        }
    }
    json(StatusCode::OK, &doc)
}

/// SMART App Launch's `/.well-known/smart-configuration`, with the Backend Services capabilities.
pub(crate) fn smart_configuration(shared: &Shared, req: &Req) -> Reply {
    if req.method != Method::GET {
        return method_not_allowed("GET");
    }
    let cfg = &shared.config;
    json(
        StatusCode::OK,
        &json!({
            "issuer": cfg.issuer,
            "jwks_uri": cfg.url(Endpoint::Jwks),
            "authorization_endpoint": cfg.url(Endpoint::Authorize),
            "token_endpoint": cfg.url(Endpoint::Token),
            "revocation_endpoint": cfg.url(Endpoint::Revocation),
            "introspection_endpoint": cfg.url(Endpoint::Introspection),
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": cfg.assertion_algs,
            "scopes_supported": ["openid", "fhirUser", "launch/patient", "offline_access", "system/*.rs",
                                 "patient/*.rs", "system/Patient.rs"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-standalone", "client-public", "client-confidential-symmetric",
                             "client-confidential-asymmetric", "context-standalone-patient", "permission-v2",
                             "sso-openid-connect"],
        }),
    )
}

pub(crate) fn jwks(shared: &Shared, req: &Req) -> Reply {
    if req.method != Method::GET {
        return method_not_allowed("GET");
    }
    let doc = shared.lock().keys.jwks(shared.config.identity_server3);
    json(StatusCode::OK, &doc)
}

// ---------------------------------------------------------------------------------------------------------------
// Authorize and the login/consent form

/// The client's callback URL with `params`, `state` and (if enabled or forced) `iss` appended.
fn callback_url(
    cfg: &Config,
    state: &State,
    redirect_uri: &str,
    params: &[(&str, &str)],
    client_state: Option<&str>,
) -> Result<String, Reply> {
    let mut url = url::Url::parse(redirect_uri).map_err(|_| {
        html(
            StatusCode::BAD_REQUEST,
            pages::error_page("The redirect_uri registered for this client is not a valid URL"),
        )
    })?;
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(s) = client_state {
            query.append_pair("state", s);
        }
        match (&state.callback_iss, cfg.iss_parameter) {
            (Some(forced), _) => {
                query.append_pair("iss", forced);
            }
            (None, true) => {
                query.append_pair("iss", &cfg.issuer);
            }
            (None, false) => {}
        }
    }
    Ok(url.to_string())
}

pub(crate) fn error_page(message: &str) -> Reply {
    html(StatusCode::BAD_REQUEST, pages::error_page(message))
}

pub(crate) fn authorize(shared: &Shared, req: &Req) -> Reply {
    let params = match req.method {
        Method::GET => req.query_params(),
        Method::POST => match req.form_params() {
            Ok(p) => p,
            Err(_) => return error_page("The authorize request must be a form post"),
        },
        _ => return method_not_allowed("GET, POST"),
    };
    let cfg = &shared.config;
    let mut state = shared.lock();
    let params = match crate::par_dpop::authorize_params(&mut state, params) {
        Ok(p) => p,
        Err(crate::par_dpop::PushError::Page(message)) => return error_page(message),
        Err(crate::par_dpop::PushError::Expired(pushed)) => {
            return expired_request_uri(cfg, &state, &pushed);
        }
    };
    // Until the client and its redirect URI are known, errors are shown on a page, never redirected.
    let client_id = match params.single("client_id") {
        Ok(Some(id)) => id,
        Ok(None) => return error_page("The client_id parameter is missing"),
        Err(e) => return error_page(&e),
    };
    let Some(client) = state.clients.get(client_id).cloned() else {
        return error_page(
            "The client application is not known or is not authorized (unknown client_id)",
        );
    };
    let redirect_uri = match params.single("redirect_uri") {
        Ok(Some(uri)) => uri.to_owned(),
        Ok(None) => return error_page("The redirect_uri parameter is missing"),
        Err(e) => return error_page(&e),
    };
    if !redirect_uri_registered(&client, &redirect_uri) {
        return error_page(
            "The redirect_uri is not registered for this client (it must match exactly; a loopback IP URI \
             registered without a port matches any port)",
        );
    }
    let client_state = params.single("state").ok().flatten().map(str::to_owned);
    let fail = |state: &State, code: &str, description: &str| -> Reply {
        match callback_url(
            cfg,
            state,
            &redirect_uri,
            &[("error", code), ("error_description", description)],
            client_state.as_deref(),
        ) {
            Ok(url) => redirect(&url),
            Err(page) => page,
        }
    };
    for name in [
        "state",
        "response_type",
        "response_mode",
        "scope",
        "nonce",
        "prompt",
        "code_challenge",
        "code_challenge_method",
    ] {
        if let Err(e) = params.single(name) {
            return fail(&state, "invalid_request", &e);
        }
    }
    let one = |name: &str| params.single(name).ok().flatten();
    match one("response_type") {
        None => {
            return fail(
                &state,
                "invalid_request",
                "The response_type parameter is missing",
            );
        }
        Some("code") => {}
        Some(_) => {
            return fail(
                &state,
                "unsupported_response_type",
                "Only the code response type is supported",
            );
        }
    }
    if one("response_mode").is_some_and(|m| m != "query") {
        return fail(
            &state,
            "invalid_request",
            "Only response_mode=query is supported",
        );
    }
    let Some(scope) = one("scope") else {
        return fail(&state, "invalid_request", "The scope parameter is missing");
    };
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split_ascii_whitespace() {
        if !SCOPES.contains(&s) {
            return fail(&state, "invalid_scope", &format!("Unknown scope: {s}"));
        }
        if !client.allowed_scopes.iter().any(|a| a == s) {
            return fail(
                &state,
                "invalid_scope",
                &format!("The client is not allowed the scope {s}"),
            );
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    if scopes.is_empty() {
        return fail(&state, "invalid_scope", "The scope parameter is empty");
    }
    let nonce = one("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 300) {
        return fail(&state, "invalid_request", "The nonce is too long");
    }
    let code_challenge = if client.require_pkce {
        let Some(challenge) = one("code_challenge") else {
            return fail(
                &state,
                "invalid_request",
                "code challenge required (the client is registered for AuthorizationCodeWithProofKey)",
            );
        };
        if !(43..=128).contains(&challenge.len()) {
            return fail(&state, "invalid_request", "Invalid code_challenge length");
        }
        let method = one("code_challenge_method").unwrap_or("plain");
        if method != "plain" && method != "S256" {
            return fail(
                &state,
                "invalid_request",
                "Transform algorithm not supported",
            );
        }
        Some((challenge.to_owned(), method.to_owned()))
    } else {
        // IdentityServer3 ignores PKCE parameters for plain AuthorizationCode clients.
        None
    };
    let now = state.now();
    if one("prompt").is_some_and(|p| p.split_ascii_whitespace().any(|v| v == "none")) {
        let user = match state.prompt_none {
            PromptNone::LoginRequired => None,
            PromptNone::ConsentRequired => {
                return fail(&state, "consent_required", "The user must consent");
            }
            PromptNone::Natural => state.session.clone(),
        };
        let Some(username) = user else {
            return fail(&state, "login_required", "The user is not logged in");
        };
        let remembered = state
            .remembered
            .get(&(username.clone(), client.client_id.clone()))
            .is_some_and(|r| scopes.iter().all(|s| r.contains(s)));
        let Some(sub) = state.user_by_name(&username).map(|u| u.sub.clone()) else {
            return fail(&state, "login_required", "The user is not logged in");
        };
        if !remembered {
            return fail(&state, "consent_required", "The user must consent");
        }
        let code = issue_code(
            &mut state,
            CodeGrant {
                client_id: client.client_id.clone(),
                redirect_uri: redirect_uri.clone(),
                scopes,
                nonce,
                code_challenge,
                sub,
                auth_time: now,
                created: now,
                lifetime: 0,
            },
        );
        return match callback_url(
            cfg,
            &state,
            &redirect_uri,
            &[("code", &code)],
            client_state.as_deref(),
        ) {
            Ok(url) => redirect(&url),
            Err(page) => page,
        };
    }
    state
        .pending
        .retain(|_, p| p.created.saturating_add(LOGIN_PAGE_LIFETIME) > now);
    let signin = random_handle();
    let xsrf = random_handle();
    let page = ConsentPage {
        action: &cfg.url(Endpoint::Consent),
        signin: &signin,
        xsrf: &xsrf,
        client_name: &client.name,
        scopes: &scopes,
        username: "",
        error: None,
    }
    .render();
    state.pending.insert(
        signin,
        PendingLogin {
            client_id: client.client_id.clone(),
            redirect_uri,
            scopes,
            state: client_state,
            nonce,
            code_challenge,
            xsrf,
            created: now,
        },
    );
    html(StatusCode::OK, page)
}

/// Whether `uri` is one of the client's redirect URIs: exactly, or (RFC 8252 §7.3, for native apps) on any port
/// when the client registered an `http://127.0.0.1` or `http://[::1]` URI without a port. A registered URI with
/// a port still matches only exactly.
/// An expired pushed request: back to the (registered) redirect URI it named, with `invalid_request_uri`.
fn expired_request_uri(cfg: &Config, state: &State, pushed: &Params) -> Reply {
    let one = |name: &str| pushed.single(name).ok().flatten();
    let (Some(client_id), Some(redirect_uri)) = (one("client_id"), one("redirect_uri")) else {
        return error_page("The request_uri expired");
    };
    let registered = state
        .clients
        .get(client_id)
        .is_some_and(|c| redirect_uri_registered(c, redirect_uri));
    if !registered {
        return error_page("The request_uri expired");
    }
    match callback_url(
        cfg,
        state,
        redirect_uri,
        &[
            ("error", "invalid_request_uri"),
            ("error_description", "The request_uri expired"),
        ],
        one("state"),
    ) {
        Ok(url) => redirect(&url),
        Err(page) => page,
    }
}

fn redirect_uri_registered(client: &ClientSpec, uri: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == uri) {
        return true;
    }
    let loopback_ip = |url: &url::Url| {
        url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            }
    };
    let Ok(mut asked) = url::Url::parse(uri) else {
        return false;
    };
    if !loopback_ip(&asked) || asked.set_port(None).is_err() {
        return false;
    }
    client.redirect_uris.iter().any(|r| {
        url::Url::parse(r).is_ok_and(|r| loopback_ip(&r) && r.port().is_none() && r == asked)
    })
}

fn issue_code(state: &mut State, mut grant: CodeGrant) -> String {
    let now = state.now();
    state
        .codes
        .retain(|_, c| c.created.saturating_add(c.lifetime) > now);
    grant.lifetime = state.lifetimes.code.as_secs();
    let code = random_handle();
    state.codes.insert(code.clone(), grant);
    code
}

pub(crate) fn consent(shared: &Shared, req: &Req) -> Reply {
    if req.method != Method::POST {
        return method_not_allowed("POST");
    }
    let Ok(form) = req.form_params() else {
        return error_page("The login form must be posted as application/x-www-form-urlencoded");
    };
    let cfg = &shared.config;
    let mut state = shared.lock();
    let now = state.now();
    let Some(signin) = form.single("signin").ok().flatten() else {
        return error_page("The login request is missing: start the login again");
    };
    let Some(pending) = state.pending.get(signin).cloned() else {
        return error_page(
            "The login request is unknown or was already used: start the login again",
        );
    };
    if pending.created.saturating_add(LOGIN_PAGE_LIFETIME) <= now {
        state.pending.remove(signin);
        return error_page("The login request expired: start the login again");
    }
    if form.single("idsrv.xsrf").ok().flatten() != Some(pending.xsrf.as_str()) {
        return error_page("The anti-forgery token is invalid: start the login again");
    }
    let Some(client) = state.clients.get(&pending.client_id).cloned() else {
        return error_page("The client application is not known or is not authorized");
    };
    let username = form.single("username").ok().flatten().unwrap_or("");
    let password = form.single("password").ok().flatten().unwrap_or("");
    let again = |message: &str| -> Reply {
        html(
            StatusCode::OK,
            ConsentPage {
                action: &cfg.url(Endpoint::Consent),
                signin,
                xsrf: &pending.xsrf,
                client_name: &client.name,
                scopes: &pending.scopes,
                username,
                error: Some(message),
            }
            .render(),
        )
    };
    let Some(user) = state
        .user_by_name(username)
        .filter(|u| u.password == password)
        .cloned()
    else {
        return again("Invalid username or password");
    };
    let respond = |state: &State, params: &[(&str, &str)]| -> Reply {
        match callback_url(
            cfg,
            state,
            &pending.redirect_uri,
            params,
            pending.state.as_deref(),
        ) {
            Ok(url) => redirect(&url),
            Err(page) => page,
        }
    };
    match form.single("button").ok().flatten() {
        Some("no") => {
            state.pending.remove(signin);
            state.session = Some(user.username.clone());
            respond(
                &state,
                &[
                    ("error", "access_denied"),
                    ("error_description", "The user denied the request"),
                ],
            )
        }
        Some("yes") => {
            let ticked = form.all("scopes");
            let granted: Vec<String> = pending
                .scopes
                .iter()
                .filter(|s| *s == "openid" || ticked.contains(&s.as_str()))
                .cloned()
                .collect();
            if granted.is_empty() {
                return again("Must select at least one permission.");
            }
            if form.single("RememberConsent").ok().flatten() == Some("true") {
                state.remembered.insert(
                    (user.username.clone(), client.client_id.clone()),
                    granted.clone(),
                );
            }
            state.pending.remove(signin);
            state.session = Some(user.username.clone());
            let code = issue_code(
                &mut state,
                CodeGrant {
                    client_id: client.client_id.clone(),
                    redirect_uri: pending.redirect_uri.clone(),
                    scopes: granted,
                    nonce: pending.nonce.clone(),
                    code_challenge: pending.code_challenge.clone(),
                    sub: user.sub.clone(),
                    auth_time: now,
                    created: now,
                    lifetime: 0,
                },
            );
            respond(&state, &[("code", &code)])
        }
        _ => again("Choose \"Yes, Allow\" or \"No, Do Not Allow\"."),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Client authentication

fn invalid_client(cfg: &Config, description: &str) -> Reply {
    if cfg.identity_server3 {
        // IdentityServer3 answers 400 for every token endpoint error, invalid_client included.
        oauth_error(StatusCode::BAD_REQUEST, "invalid_client", description)
    } else {
        let mut reply = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
        reply.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Net Health Accounts\""),
        );
        reply
    }
}

/// Decodes one half of HTTP Basic credentials: form-urlencoded per RFC 6749 §2.3.1.
fn form_decode(part: &str) -> Option<String> {
    let spaced = part.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// How long ahead of its `iat` a client assertion may expire, in seconds (RFC 7523 §3: a short lifetime).
const MAX_ASSERTION_LIFETIME: u64 = 300;

/// Checks a `private_key_jwt` or `client_secret_jwt` assertion (RFC 7523 §3): the signature against the client's
/// registered JWK Set (or its secret, for HS256), `iss` = `sub` = the client, `aud` = the token endpoint or the
/// issuer, `exp` at most five minutes ahead, and a `jti` never seen before.
fn authenticate_assertion(
    cfg: &Config,
    state: &mut State,
    form: &Params,
) -> Result<ClientSpec, Reply> {
    let bad_request = |e: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e);
    let assertion_type = form.single("client_assertion_type").map_err(bad_request)?;
    if assertion_type != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return Err(invalid_client(cfg, "Unsupported client_assertion_type"));
    }
    let Some(assertion) = form.single("client_assertion").map_err(bad_request)? else {
        return Err(invalid_client(cfg, "The client_assertion is missing"));
    };
    if form.single("client_secret").map_err(bad_request)?.is_some() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Use only one client authentication method",
        ));
    }
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return Err(invalid_client(cfg, "The client_assertion is not a JWT"));
    };
    let alg_name = format!("{:?}", header.alg);
    if !cfg.assertion_algs.contains(&alg_name) {
        return Err(invalid_client(
            cfg,
            &format!("The client_assertion algorithm {alg_name} is not supported"),
        ));
    }
    // The client named in the body, else the assertion's `sub` (read before the signature is checked only to
    // find whose key to check it with).
    let claimed = match form.single("client_id").map_err(bad_request)? {
        Some(id) => id.to_owned(),
        None => {
            match jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
                .ok()
                .and_then(|d| {
                    d.claims
                        .get("sub")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }) {
                Some(sub) => sub,
                None => return Err(invalid_client(cfg, "No client credentials found")),
            }
        }
    };
    let Some(client) = state.clients.get(&claimed).cloned() else {
        return Err(invalid_client(cfg, "Unknown client"));
    };
    let key = match (header.alg, &client.secret, &client.jwks) {
        (Algorithm::HS256, Some(secret), _) => {
            match jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()) {
                Ok(key) => key,
                Err(_) => {
                    return Err(invalid_client(
                        cfg,
                        "The client secret is unusable as an HMAC key",
                    ));
                }
            }
        }
        (Algorithm::HS256, None, _) => {
            return Err(invalid_client(
                cfg,
                "The client has no secret for client_secret_jwt",
            ));
        }
        (_, _, None) => {
            return Err(invalid_client(
                cfg,
                "The client has no registered jwks for private_key_jwt",
            ));
        }
        (_, _, Some(jwks)) => {
            let Ok(set) = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone()) else {
                return Err(invalid_client(
                    cfg,
                    "The client's registered jwks is unusable",
                ));
            };
            let found = match &header.kid {
                Some(kid) => set.find(kid),
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            };
            let Some(jwk) = found else {
                return Err(invalid_client(
                    cfg,
                    "No registered key matches the client_assertion kid",
                ));
            };
            match jsonwebtoken::DecodingKey::from_jwk(jwk) {
                Ok(key) => key,
                Err(_) => {
                    return Err(invalid_client(
                        cfg,
                        "The client's registered key is unusable",
                    ));
                }
            }
        }
    };
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.set_audience(&[cfg.url(Endpoint::Token), cfg.issuer.clone()]);
    validation.set_issuer(&[&client.client_id]);
    validation.sub = Some(client.client_id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.validate_exp = false;
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(invalid_client(
                cfg,
                &format!("The client_assertion is invalid ({:?})", e.kind()),
            ));
        }
    };
    let now = state.now();
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    if exp <= now {
        return Err(invalid_client(cfg, "The client_assertion has expired"));
    }
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME) {
        return Err(invalid_client(
            cfg,
            "The client_assertion expires more than five minutes ahead",
        ));
    }
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return Err(invalid_client(cfg, "The client_assertion has no jti"));
    };
    state.used_assertions.retain(|_, seen_exp| *seen_exp > now);
    if state
        .used_assertions
        .insert((client.client_id.clone(), jti.to_owned()), exp)
        .is_some()
    {
        return Err(invalid_client(
            cfg,
            "The client_assertion jti was already used (replay)",
        ));
    }
    Ok(client)
}

/// What every client-authenticated endpoint (token, PAR, device authorization, revocation, introspection) begins
/// with: checks the method, reads the form, locks the state and authenticates the client, or says why not.
pub(crate) fn authenticated_post<'a>(
    shared: &'a Shared,
    req: &Req,
) -> Result<(Params, MutexGuard<'a, State>, ClientSpec), Reply> {
    if req.method != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    let form = req.form_params()?;
    let mut state = shared.lock();
    let client = authenticate_client(&shared.config, &mut state, req, &form)?;
    Ok((form, state, client))
}

/// Authenticates the client of a token, revocation or introspection request.
pub(crate) fn authenticate_client(
    cfg: &Config,
    state: &mut State,
    req: &Req,
    form: &Params,
) -> Result<ClientSpec, Reply> {
    if form
        .single("client_assertion_type")
        .ok()
        .flatten()
        .is_some()
        || form.single("client_assertion").ok().flatten().is_some()
    {
        if req.headers.contains_key(header::AUTHORIZATION) {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Use only one client authentication method",
            ));
        }
        return authenticate_assertion(cfg, state, form);
    }
    let basic = match req.headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().unwrap_or("");
            let Some((scheme, encoded)) = value.split_once(' ') else {
                return Err(invalid_client(cfg, "Malformed Authorization header"));
            };
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(invalid_client(
                    cfg,
                    "Only Basic client authentication is supported",
                ));
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    let (id, secret) = s.split_once(':')?;
                    Some((form_decode(id)?, form_decode(secret)?))
                });
            match decoded {
                Some(pair) => Some(pair),
                None => return Err(invalid_client(cfg, "Malformed Basic credentials")),
            }
        }
    };
    let bad_request = |e: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e);
    let body_id = form.single("client_id").map_err(bad_request)?;
    let body_secret = form.single("client_secret").map_err(bad_request)?;
    let (client_id, secret) = match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Use only one client authentication method",
            ));
        }
        (Some((id, _)), Some(body), None) if body != id => {
            return Err(invalid_client(
                cfg,
                "client_id does not match the Basic credentials",
            ));
        }
        (Some((id, secret)), _, None) => (id, Some(secret)),
        (None, Some(id), secret) => (id.to_owned(), secret.map(str::to_owned)),
        (None, None, _) => return Err(invalid_client(cfg, "No client credentials found")),
    };
    let Some(client) = state.clients.get(&client_id) else {
        return Err(invalid_client(cfg, "Unknown client"));
    };
    match (&client.secret, secret) {
        (Some(expected), Some(given)) if *expected == given => Ok(client.clone()),
        (None, None) if client.jwks.is_some() => Err(invalid_client(
            cfg,
            "The client authenticates with private_key_jwt: send a client_assertion",
        )),
        (None, None) => Ok(client.clone()),
        (None, Some(_)) => Err(invalid_client(
            cfg,
            "The client is public and has no secret",
        )),
        (Some(_), None) => Err(invalid_client(cfg, "The client secret is missing")),
        (Some(_), Some(_)) => Err(invalid_client(cfg, "Invalid client secret")),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tokens

pub(crate) fn grant_error(code: &str, description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, code, description)
}

fn server_error() -> Reply {
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "The site could not sign the token",
    )
}

fn scope_claim(cfg: &Config, scopes: &[String]) -> Value {
    if cfg.identity_server3 {
        Value::from(scopes.to_vec())
    } else {
        Value::from(scopes.join(" "))
    }
}

/// Signs a JWT access token.
fn access_token(
    cfg: &Config,
    state: &State,
    client_id: &str,
    sub: Option<&str>,
    scopes: &[String],
    auth_time: Option<u64>,
) -> Option<String> {
    let now = state.now();
    let mut claims = json!({
        "iss": cfg.issuer,
        "aud": cfg.resources_audience(),
        "exp": now.saturating_add(state.lifetimes.access.as_secs()),
        "nbf": now,
        "iat": now,
        "client_id": client_id,
        "scope": scope_claim(cfg, scopes),
        "jti": random_handle(),
    });
    if let (Some(obj), Some(jkt)) = (claims.as_object_mut(), &state.par_dpop.binding) {
        obj.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    if let (Some(obj), Some(sub)) = (claims.as_object_mut(), sub) {
        obj.insert("sub".into(), sub.into());
        obj.insert("idp".into(), "idsrv".into());
        obj.insert("amr".into(), json!(["password"]));
        if let Some(t) = auth_time {
            obj.insert("auth_time".into(), t.into());
        }
    }
    state.keys.signing.sign(&claims).ok()
}

/// Signs an ID token.
fn id_token(
    cfg: &Config,
    state: &State,
    client_id: &str,
    user: &User,
    nonce: Option<&str>,
    auth_time: u64,
    access_token: &str,
) -> Option<String> {
    let now = state.now();
    let mut claims = json!({
        "iss": cfg.issuer,
        "sub": user.sub,
        "aud": client_id,
        "azp": client_id,
        "exp": now.saturating_add(state.lifetimes.id_token.as_secs()),
        "nbf": now,
        "iat": now,
        "auth_time": auth_time,
        "at_hash": keys::at_hash(access_token),
        "idp": "idsrv",
        "amr": ["password"],
    });
    if let (Some(obj), Some(nonce)) = (claims.as_object_mut(), nonce) {
        obj.insert("nonce".into(), nonce.into());
    }
    state.keys.signing.sign(&claims).ok()
}

pub(crate) fn token(shared: &Shared, req: &Req) -> Reply {
    let (form, mut state, client) = match authenticated_post(shared, req) {
        Ok(post) => post,
        Err(reply) => return reply,
    };
    let cfg = &shared.config;
    state.par_dpop.binding = match crate::par_dpop::check_token_proof(cfg, &mut state, req) {
        Ok(jkt) => jkt,
        Err(reply) => return reply,
    };
    let reply = token_grant(cfg, &mut state, &client, &form);
    state.par_dpop.binding = None;
    reply
}

fn token_grant(cfg: &Config, state: &mut State, client: &ClientSpec, form: &Params) -> Reply {
    for name in [
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "scope",
    ] {
        if let Err(e) = form.single(name) {
            return grant_error("invalid_request", &e);
        }
    }
    match form.single("grant_type").ok().flatten() {
        Some("authorization_code") => code_grant(cfg, state, client, form),
        Some("refresh_token") => refresh_grant(cfg, state, client, form),
        Some("client_credentials") => client_credentials_grant(cfg, state, client, form),
        Some(crate::device::DEVICE_CODE_GRANT) => {
            crate::device::device_code_grant(cfg, state, client, form)
        }
        Some(_) => grant_error("unsupported_grant_type", "The grant type is not supported"),
        None => grant_error("invalid_request", "The grant_type parameter is missing"),
    }
}

fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn code_grant(cfg: &Config, state: &mut State, client: &ClientSpec, form: &Params) -> Reply {
    let one = |name: &str| form.single(name).ok().flatten();
    let Some(code) = one("code") else {
        return grant_error("invalid_grant", "The code parameter is missing");
    };
    // The code is single-use: it is gone once presented, whatever happens next (IdentityServer3 removes it first).
    let Some(grant) = state.codes.remove(code) else {
        return grant_error("invalid_grant", "Invalid authorization code");
    };
    if grant.client_id != client.client_id {
        return grant_error("invalid_grant", "The code was issued to another client");
    }
    if grant.created.saturating_add(grant.lifetime) <= state.now() {
        return grant_error("invalid_grant", "The authorization code expired");
    }
    if one("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return grant_error(
            "invalid_grant",
            "Invalid redirect_uri: it must match the authorize request's",
        );
    }
    let verifier = one("code_verifier");
    if client.require_pkce {
        let Some(verifier) = verifier else {
            return grant_error("invalid_grant", "Missing code_verifier");
        };
        if !valid_verifier(verifier) {
            return grant_error("invalid_grant", "Invalid code_verifier");
        }
        let Some((challenge, method)) = &grant.code_challenge else {
            return grant_error(
                "invalid_grant",
                "No code challenge was sent at the authorize endpoint",
            );
        };
        let transformed = if method == "S256" {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        } else {
            verifier.to_owned()
        };
        if transformed != *challenge {
            return grant_error(
                "invalid_grant",
                "Transformed code verifier does not match code challenge",
            );
        }
    } else if verifier.is_some() {
        return grant_error("invalid_grant", "Unexpected code_verifier");
    }
    let Some(user) = state.user_by_sub(&grant.sub).cloned() else {
        return grant_error("invalid_grant", "The user no longer exists");
    };
    issue_tokens(
        cfg,
        state,
        client,
        &user,
        &grant.scopes,
        grant.nonce.as_deref(),
        grant.auth_time,
    )
}

/// The tokens of a user's grant (a code exchange or an approved device code): an access token, an ID token when
/// `openid` was granted, and a refresh token when `offline_access` was.
pub(crate) fn issue_tokens(
    cfg: &Config,
    state: &mut State,
    client: &ClientSpec,
    user: &User,
    scopes: &[String],
    nonce: Option<&str>,
    auth_time: u64,
) -> Reply {
    let refresh = scopes.iter().any(|s| s == "offline_access").then(|| {
        let handle = random_handle();
        let now = state.now();
        state.refresh_tokens.insert(
            handle.clone(),
            RefreshGrant {
                client_id: client.client_id.clone(),
                sub: user.sub.clone(),
                scopes: scopes.to_vec(),
                auth_time,
                created: now,
                lifetime: state.lifetimes.refresh.as_secs(),
            },
        );
        handle
    });
    let Some(at) = access_token(
        cfg,
        state,
        &client.client_id,
        Some(&user.sub),
        scopes,
        Some(auth_time),
    ) else {
        return server_error();
    };
    let id = if scopes.iter().any(|s| s == "openid") {
        match id_token(cfg, state, &client.client_id, user, nonce, auth_time, &at) {
            Some(t) => Some(t),
            None => return server_error(),
        }
    } else {
        None
    };
    let mut reply = token_response(cfg, state, at, id, refresh, scopes);
    if !state.launch_context.is_empty() {
        reply = with_fields(reply, &state.launch_context);
    }
    reply
}

/// Adds `fields` to a JSON token response (a SMART launch context), keeping what it has.
fn with_fields(reply: Reply, fields: &Map<String, Value>) -> Reply {
    let (parts, body) = reply.into_parts();
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&body) else {
        return Reply::from_parts(parts, body);
    };
    for (k, v) in fields {
        map.entry(k.clone()).or_insert_with(|| v.clone());
    }
    json(parts.status, &Value::Object(map))
}

fn token_response(
    cfg: &Config,
    state: &State,
    access_token: String,
    id_token: Option<String>,
    refresh_token: Option<String>,
    scopes: &[String],
) -> Reply {
    let mut body = Map::new();
    if let Some(id) = id_token {
        body.insert("id_token".into(), id.into());
    }
    body.insert("access_token".into(), access_token.into());
    body.insert("expires_in".into(), state.lifetimes.access.as_secs().into());
    let token_type = if state.par_dpop.binding.is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    body.insert("token_type".into(), token_type.into());
    if let Some(rt) = refresh_token {
        body.insert("refresh_token".into(), rt.into());
    }
    if !cfg.identity_server3 {
        body.insert("scope".into(), scopes.join(" ").into());
    }
    json(StatusCode::OK, &Value::Object(body))
}

fn refresh_grant(cfg: &Config, state: &mut State, client: &ClientSpec, form: &Params) -> Reply {
    // Every refresh failure is invalid_grant, as at IdentityServer3.
    let Some(handle) = form.single("refresh_token").ok().flatten() else {
        return grant_error("invalid_grant", "The refresh_token parameter is missing");
    };
    let Some(grant) = state.refresh_tokens.get(handle).cloned() else {
        return grant_error("invalid_grant", "Invalid refresh token");
    };
    if grant.client_id != client.client_id {
        return grant_error(
            "invalid_grant",
            "The refresh token was issued to another client",
        );
    }
    if grant.expires_at() <= state.now() {
        state.refresh_tokens.remove(handle);
        return grant_error("invalid_grant", "The refresh token expired");
    }
    let Some(user) = state.user_by_sub(&grant.sub).cloned() else {
        return grant_error("invalid_grant", "The user no longer exists");
    };
    let mut scopes = grant.scopes.clone();
    if !cfg.identity_server3
        && let Some(asked) = form.single("scope").ok().flatten()
    {
        let asked: Vec<String> = asked.split_ascii_whitespace().map(str::to_owned).collect();
        if let Some(extra) = asked.iter().find(|s| !grant.scopes.contains(s)) {
            return grant_error(
                "invalid_scope",
                &format!("The scope {extra} was not granted to the refresh token"),
            );
        }
        scopes = asked;
    }
    let new_handle = match client.refresh_token_usage {
        RefreshTokenUsage::ReUse => handle.to_owned(),
        RefreshTokenUsage::OneTimeOnly => {
            state.refresh_tokens.remove(handle);
            let new_handle = random_handle();
            state
                .refresh_tokens
                .insert(new_handle.clone(), grant.clone());
            new_handle
        }
    };
    let Some(at) = access_token(
        cfg,
        state,
        &client.client_id,
        Some(&user.sub),
        &scopes,
        Some(grant.auth_time),
    ) else {
        return server_error();
    };
    // IdentityServer3 sends no new ID token on refresh; the standard mode sends one (without a nonce).
    let id = if !cfg.identity_server3 && scopes.iter().any(|s| s == "openid") {
        match id_token(
            cfg,
            state,
            &client.client_id,
            &user,
            None,
            grant.auth_time,
            &at,
        ) {
            Some(t) => Some(t),
            None => return server_error(),
        }
    } else {
        None
    };
    token_response(cfg, state, at, id, Some(new_handle), &scopes)
}

fn client_credentials_grant(
    cfg: &Config,
    state: &State,
    client: &ClientSpec,
    form: &Params,
) -> Reply {
    if client.is_public() || !client.client_credentials {
        return grant_error(
            "unauthorized_client",
            "The client is not allowed the client_credentials grant",
        );
    }
    let allowed: Vec<String> = client
        .allowed_scopes
        .iter()
        .filter(|s| !crate::model::IDENTITY_SCOPES.contains(&s.as_str()))
        .cloned()
        .collect();
    let scopes: Vec<String> = match form.single("scope").ok().flatten() {
        None => allowed,
        Some(asked) => {
            let asked: Vec<String> = asked.split_ascii_whitespace().map(str::to_owned).collect();
            if let Some(bad) = asked.iter().find(|s| !allowed.contains(s)) {
                return grant_error(
                    "invalid_scope",
                    &format!("The scope {bad} is not allowed for client_credentials"),
                );
            }
            asked
        }
    };
    if scopes.is_empty() {
        return grant_error(
            "invalid_scope",
            "No scope is allowed for client_credentials",
        );
    }
    let Some(at) = access_token(cfg, state, &client.client_id, None, &scopes, None) else {
        return server_error();
    };
    token_response(cfg, state, at, None, None, &scopes)
}

// ---------------------------------------------------------------------------------------------------------------
// Access token checks (shared with the resource API)

/// The scopes of a validated access token (a JSON array or a space-separated string).
pub(crate) fn token_scopes(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("scope") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn find_key<'a>(state: &'a State, kid: &str, include_unpublished: bool) -> Option<&'a SigningKey> {
    state.keys.find_published(kid).or_else(|| {
        (include_unpublished && state.keys.signing.kid == kid).then_some(&state.keys.signing)
    })
}

/// Checks an access token: signature by a known key, issuer, audience, expiry, revocation. `include_unpublished`:
/// whether the signing key counts while it is not in the JWKS (the site itself knows it; an API does not).
pub(crate) fn check_access_token(
    cfg: &Config,
    state: &State,
    token: &str,
    include_unpublished: bool,
) -> Result<Map<String, Value>, &'static str> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "The access token is not a JWT")?;
    let kid = header.kid.ok_or("The access token has no kid")?;
    let key = find_key(state, &kid, include_unpublished)
        .ok_or("The access token is signed with an unknown key")?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[cfg.issuer.as_str()]);
    validation.set_audience(&[cfg.resources_audience()]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), &validation)
        .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidIssuer => "The access token has the wrong issuer",
        jsonwebtoken::errors::ErrorKind::InvalidAudience => {
            "The access token has the wrong audience"
        }
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            "The access token signature is invalid"
        }
        _ => "The access token is malformed",
    })?;
    let exp = data
        .claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or("The access token has no exp")?;
    if exp <= state.now() {
        return Err("The access token expired");
    }
    if state.is_revoked(token) {
        return Err("The access token was revoked");
    }
    Ok(data.claims)
}

/// A 401 or 403 with a `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
pub(crate) fn bearer_challenge(
    status: StatusCode,
    error: Option<&str>,
    description: Option<&str>,
    scope: Option<&str>,
    body: &Value,
) -> Reply {
    let mut challenge = String::from("Bearer realm=\"Net Health\"");
    for (name, value) in [
        ("error", error),
        ("error_description", description),
        ("scope", scope),
    ] {
        if let Some(v) = value {
            challenge.push_str(&format!(", {name}=\"{}\"", v.replace(['"', '\\'], "'")));
        }
    }
    let mut reply = json(status, body);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        reply.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    reply
}

pub(crate) fn userinfo(shared: &Shared, req: &Req) -> Reply {
    let form_token;
    let token = match req.method {
        Method::GET => req.bearer(),
        Method::POST => {
            form_token = req
                .form_params()
                .ok()
                .and_then(|f| f.single("access_token").ok().flatten().map(str::to_owned));
            req.bearer().or(form_token.as_deref())
        }
        _ => return method_not_allowed("GET, POST"),
    };
    let Some(token) = token else {
        return bearer_challenge(StatusCode::UNAUTHORIZED, None, None, None, &json!({}));
    };
    let cfg = &shared.config;
    let state = shared.lock();
    let invalid = |d: &str| {
        bearer_challenge(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            Some(d),
            None,
            &json!({"error": "invalid_token", "error_description": d}),
        )
    };
    let claims = match check_access_token(cfg, &state, token, true) {
        Ok(c) => c,
        Err(d) => return invalid(d),
    };
    let scopes = token_scopes(&claims);
    if !scopes.iter().any(|s| s == "openid") {
        return bearer_challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            Some("The access token lacks the openid scope"),
            Some("openid"),
            &json!({"error": "insufficient_scope"}),
        );
    }
    let Some(user) = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|sub| state.user_by_sub(sub))
    else {
        return invalid("The access token has no known subject");
    };
    json(StatusCode::OK, &Value::Object(user.claims(&scopes)))
}

pub(crate) fn revocation(shared: &Shared, req: &Req) -> Reply {
    let (form, mut state, client) = match authenticated_post(shared, req) {
        Ok(post) => post,
        Err(reply) => return reply,
    };
    let cfg = &shared.config;
    let token = match form.single("token") {
        Ok(Some(t)) => t,
        Ok(None) => return grant_error("invalid_request", "The token parameter is missing"),
        Err(e) => return grant_error("invalid_request", &e),
    };
    match form.single("token_type_hint").ok().flatten() {
        None | Some("access_token") | Some("refresh_token") => {}
        Some(_) => {
            return grant_error(
                "unsupported_token_type",
                "token_type_hint must be access_token or refresh_token",
            );
        }
    }
    if let Some(grant) = state.refresh_tokens.get(token) {
        if grant.client_id == client.client_id {
            state.refresh_tokens.remove(token);
        }
    } else if let Ok(claims) = verify_any(cfg, &state, token, false)
        && claims.get("client_id").and_then(Value::as_str) == Some(client.client_id.as_str())
    {
        state.revoked_access.insert(token_digest(token));
    }
    let mut reply = Reply::new(Vec::new());
    *reply.status_mut() = StatusCode::OK;
    reply
}

/// Verifies a JWT the site signed (any known key, issuer; not expiry), whatever its audience.
fn verify_any(
    cfg: &Config,
    state: &State,
    token: &str,
    id_token: bool,
) -> Result<Map<String, Value>, ()> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| ())?;
    let kid = header.kid.ok_or(())?;
    let key = find_key(state, &kid, true).ok_or(())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[cfg.issuer.as_str()]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), &validation)
        .map_err(|_| ())?
        .claims;
    // ID tokens carry the client as audience; access tokens carry `client_id`.
    if id_token != claims.contains_key("client_id") {
        Ok(claims)
    } else {
        Err(())
    }
}

pub(crate) fn introspection(shared: &Shared, req: &Req) -> Reply {
    let (form, state, _) = match authenticated_post(shared, req) {
        Ok(post) => post,
        Err(reply) => return reply,
    };
    let cfg = &shared.config;
    let token = match form.single("token") {
        Ok(Some(t)) => t,
        Ok(None) => return grant_error("invalid_request", "The token parameter is missing"),
        Err(e) => return grant_error("invalid_request", &e),
    };
    let now = state.now();
    if let Some(grant) = state.refresh_tokens.get(token)
        && grant.expires_at() > now
    {
        return json(
            StatusCode::OK,
            &json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": grant.client_id,
                "sub": grant.sub,
                "scope": grant.scopes.join(" "),
                "iat": grant.created,
                "exp": grant.expires_at(),
                "iss": cfg.issuer,
            }),
        );
    }
    match check_access_token(cfg, &state, token, true) {
        Ok(claims) => {
            let mut out = Map::new();
            out.insert("active".into(), true.into());
            out.insert("token_type".into(), "access_token".into());
            out.insert("scope".into(), token_scopes(&claims).join(" ").into());
            for name in ["client_id", "sub", "exp", "iat", "nbf", "iss", "aud", "jti"] {
                if let Some(v) = claims.get(name) {
                    out.insert(name.into(), v.clone());
                }
            }
            json(StatusCode::OK, &Value::Object(out))
        }
        Err(_) => json(StatusCode::OK, &json!({"active": false})),
    }
}

pub(crate) fn end_session(shared: &Shared, req: &Req) -> Reply {
    let params = match req.method {
        Method::GET => req.query_params(),
        Method::POST => match req.form_params() {
            Ok(p) => p,
            Err(reply) => return reply,
        },
        _ => return method_not_allowed("GET, POST"),
    };
    let cfg = &shared.config;
    let mut state = shared.lock();
    state.session = None;
    let one = |name: &str| params.single(name).ok().flatten();
    // As IdentityServer3: a redirect only with a valid id_token_hint and a registered post_logout_redirect_uri;
    // otherwise the logged-out page.
    if let (Some(hint), Some(target)) = (one("id_token_hint"), one("post_logout_redirect_uri"))
        && let Ok(claims) = verify_any(cfg, &state, hint, true)
    {
        let audience = match claims.get("aud") {
            Some(Value::String(a)) => Some(a.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        let registered = audience
            .and_then(|a| state.clients.get(&a))
            .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == target));
        if registered && let Ok(mut url) = url::Url::parse(target) {
            if let Some(s) = one("state") {
                url.query_pairs_mut().append_pair("state", s);
            }
            return redirect(url.as_str());
        }
    }
    html(StatusCode::OK, pages::logged_out_page())
}
