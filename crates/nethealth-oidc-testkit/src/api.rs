//! The sample Net Health-style resource API: `/api/patients`.
//!
//! It checks the bearer token as a separate API would, knowing only the keys the site publishes in its JWKS:
//! signature, issuer, audience (`{issuer}/resources`), expiry and revocation.

use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::provider::{bearer_challenge, check_access_token, token_scopes};
use crate::server::{Reply, Req, json, method_not_allowed};
use crate::state::Shared;

const DENIED: &str = "Authorization has been denied for this request.";

/// `GET /api/patients` (needs `patients.read`) and `POST /api/patients` (needs `patients.write`).
pub(crate) fn patients(shared: &Shared, req: &Req) -> Reply {
    let needed = match req.method {
        Method::GET => "patients.read",
        Method::POST => "patients.write",
        _ => return method_not_allowed("GET, POST"),
    };
    let dpop_token = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("dpop"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = req.bearer().or(dpop_token) else {
        // RFC 6750 §3.1: no error code when the request carried no token at all.
        return bearer_challenge(
            StatusCode::UNAUTHORIZED,
            None,
            None,
            None,
            &json!({ "Message": DENIED }),
        );
    };
    let mut state = shared.lock();
    let claims = match check_access_token(&shared.config, &state, token, false) {
        Ok(c) => c,
        Err(description) => {
            return bearer_challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                Some(description),
                None,
                &json!({ "Message": DENIED }),
            );
        }
    };
    if let Err(reply) = crate::par_dpop::check_resource_proof(
        &shared.config,
        &mut state,
        req,
        token,
        dpop_token.is_some(),
        &claims,
    ) {
        return reply;
    }
    if !token_scopes(&claims).iter().any(|s| s == needed) {
        return bearer_challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            Some(&format!("The access token lacks the {needed} scope")),
            Some(needed),
            &json!({ "Message": DENIED }),
        );
    }
    if req.method == Method::GET {
        return json(StatusCode::OK, &Value::Array(state.patients.clone()));
    }
    let Ok(Value::Object(mut patient)) = serde_json::from_slice::<Value>(&req.body) else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"Message": "The request is invalid: send a JSON object such as {\"Name\": \"...\"}."}),
        );
    };
    let Some(name) = patient
        .get("Name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .map(str::to_owned)
    else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"Message": "The request is invalid: Name is required."}),
        );
    };
    let id = state
        .patients
        .iter()
        .filter_map(|p| p.get("Id").and_then(Value::as_u64))
        .max()
        .unwrap_or(1000)
        .saturating_add(1);
    patient.insert("Id".into(), id.into());
    patient.insert("Name".into(), name.into());
    let patient = Value::Object(patient);
    state.patients.push(patient.clone());
    let mut reply = json(StatusCode::CREATED, &patient);
    if let Ok(v) = HeaderValue::from_str(&format!("{}/api/patients/{id}", shared.config.origin)) {
        reply.headers_mut().insert(header::LOCATION, v);
    }
    reply
}
