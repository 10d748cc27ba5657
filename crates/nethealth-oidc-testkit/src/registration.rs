//! Client registration: Net Health's `/api/Clients/Register` (an ASP.NET Web API action: PascalCase answer,
//! `{"Message": ...}` errors) and RFC 7591 `/connect/register` (snake_case, 201).

use http::header;
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::model::{ClientSpec, SCOPES};
use crate::server::{Reply, Req, json, method_not_allowed};
use crate::state::{Shared, random_client_id, random_handle};

/// A validated registration request.
#[derive(Debug)]
struct Request {
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    auth_method: String,
    /// The public keys of a `private_key_jwt` client (RFC 7591 §2 `jwks`).
    jwks: Option<Value>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    require_pkce: Option<bool>,
}

/// A registration request's problem: the field (PascalCase, as ASP.NET's ModelState names it) and what is wrong.
#[derive(Debug)]
struct Invalid {
    field: &'static str,
    rfc7591_error: &'static str,
    message: String,
}

impl Invalid {
    fn metadata(field: &'static str, message: impl Into<String>) -> Invalid {
        Invalid {
            field,
            rfc7591_error: "invalid_client_metadata",
            message: message.into(),
        }
    }
}

/// ASP.NET binds JSON case-insensitively; this also accepts RFC 7591's snake_case: `redirect_uris`,
/// `RedirectUris` and `redirectUris` are one field.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn strings(value: &Value, field: &'static str) -> Result<Vec<String>, Invalid> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Invalid::metadata(field, "must be a list of strings"))
            })
            .collect(),
        Value::String(s) => Ok(s.split_ascii_whitespace().map(str::to_owned).collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err(Invalid::metadata(field, "must be a list of strings")),
    }
}

fn valid_redirect(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| format!("{uri} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri} must not have a fragment"));
    }
    if url.scheme() == "http" {
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !loopback {
            return Err(format!(
                "{uri} must use https (http is only allowed for loopback)"
            ));
        }
    }
    Ok(())
}

fn parse(body: &[u8]) -> Result<Request, Invalid> {
    let value: Value = serde_json::from_slice(body).map_err(|_| Invalid {
        field: "request",
        rfc7591_error: "invalid_client_metadata",
        message: "The request body is not valid JSON".into(),
    })?;
    let Value::Object(object) = value else {
        return Err(Invalid::metadata(
            "request",
            "The request body must be a JSON object",
        ));
    };
    let fields: Map<String, Value> = object
        .into_iter()
        .map(|(k, v)| (normalize(&k), v))
        .collect();
    let get = |name: &str| fields.get(name).cloned().unwrap_or(Value::Null);
    let redirect_uris = strings(&get("redirecturis"), "RedirectUris")?;
    if redirect_uris.is_empty() {
        return Err(Invalid {
            field: "RedirectUris",
            rfc7591_error: "invalid_redirect_uri",
            message: "At least one redirect URI is required".into(),
        });
    }
    for uri in &redirect_uris {
        valid_redirect(uri).map_err(|message| Invalid {
            field: "RedirectUris",
            rfc7591_error: "invalid_redirect_uri",
            message,
        })?;
    }
    let post_logout_redirect_uris =
        strings(&get("postlogoutredirecturis"), "PostLogoutRedirectUris")?;
    let auth_method = match get("tokenendpointauthmethod") {
        Value::Null => "client_secret_basic".to_owned(),
        Value::String(m)
            if [
                "client_secret_basic",
                "client_secret_post",
                "none",
                "private_key_jwt",
            ]
            .contains(&m.as_str()) =>
        {
            m
        }
        other => {
            return Err(Invalid::metadata(
                "TokenEndpointAuthMethod",
                format!(
                    "{other} is not supported: use client_secret_basic, client_secret_post, none or \
                     private_key_jwt"
                ),
            ));
        }
    };
    let jwks = parse_jwks(get("jwks"), &get("jwksuri"), &auth_method)?;
    let mut grant_types = strings(&get("granttypes"), "GrantTypes")?;
    if grant_types.is_empty() {
        grant_types = vec!["authorization_code".into(), "refresh_token".into()];
    }
    if let Some(bad) = grant_types.iter().find(|g| {
        !["authorization_code", "refresh_token", "client_credentials"].contains(&g.as_str())
    }) {
        return Err(Invalid::metadata(
            "GrantTypes",
            format!("{bad} is not supported"),
        ));
    }
    if auth_method == "none" && grant_types.iter().any(|g| g == "client_credentials") {
        return Err(Invalid::metadata(
            "GrantTypes",
            "client_credentials needs a confidential client",
        ));
    }
    let response_types = strings(&get("responsetypes"), "ResponseTypes")?;
    if let Some(bad) = response_types.iter().find(|r| *r != "code") {
        return Err(Invalid::metadata(
            "ResponseTypes",
            format!("{bad} is not supported: use code"),
        ));
    }
    let scope_value = match get("scope") {
        Value::Null => get("allowedscopes"),
        v => v,
    };
    let mut scopes = strings(&scope_value, "AllowedScopes")?;
    if scopes.is_empty() {
        scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(Invalid::metadata(
            "AllowedScopes",
            format!("Unknown scope: {bad}"),
        ));
    }
    let client_name = match get("clientname") {
        Value::String(s) => Some(s),
        Value::Null => None,
        _ => return Err(Invalid::metadata("ClientName", "must be a string")),
    };
    let require_pkce = match get("requirepkce") {
        Value::Bool(b) => Some(b),
        Value::Null => None,
        _ => return Err(Invalid::metadata("RequirePkce", "must be true or false")),
    };
    Ok(Request {
        client_name,
        redirect_uris,
        post_logout_redirect_uris,
        auth_method,
        jwks,
        grant_types,
        scopes,
        require_pkce,
    })
}

/// The `jwks` of a registration: required for `private_key_jwt` (a `jwks_uri` is not fetched), refused otherwise;
/// each key must be a public JWK that jsonwebtoken can read, so that the client's assertions can be checked.
fn parse_jwks(jwks: Value, jwks_uri: &Value, auth_method: &str) -> Result<Option<Value>, Invalid> {
    let invalid = |message: &str| Invalid::metadata("Jwks", message);
    if !jwks_uri.is_null() {
        return Err(invalid(
            "jwks_uri is not supported here: send the public keys as jwks",
        ));
    }
    match (auth_method, jwks) {
        ("private_key_jwt", Value::Null) => Err(invalid(
            "private_key_jwt needs the client's public keys as jwks ({\"keys\": [...]})",
        )),
        ("private_key_jwt", jwks) => {
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_value(jwks.clone()).map_err(|_| {
                    invalid("jwks must be a JWK Set ({\"keys\": [...]}) of public keys")
                })?;
            if set.keys.is_empty() {
                return Err(invalid("jwks has no keys: add the client's public key"));
            }
            if set.keys.iter().any(|k| k.common.key_id.is_none()) {
                return Err(invalid(
                    "every key in jwks needs a kid: assertions name their key by kid",
                ));
            }
            Ok(Some(jwks))
        }
        (_, Value::Null) => Ok(None),
        (other, _) => Err(invalid(&format!(
            "jwks is only for private_key_jwt, not {other}"
        ))),
    }
}

/// Checks the content type and the registration bearer token; `Err` holds which check failed.
enum Gate {
    MediaType(String),
    Unauthorized,
}

fn gate(shared: &Shared, req: &Req) -> Result<(), Gate> {
    if let Some(expected) = &shared.config.registration_token
        && req.bearer() != Some(expected.as_str())
    {
        return Err(Gate::Unauthorized);
    }
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Gate::MediaType(content_type))
    }
}

/// Registers `request` and returns the new client.
fn register(shared: &Shared, request: Request) -> ClientSpec {
    let cfg = &shared.config;
    let client_id = random_client_id();
    let mut spec = match (request.auth_method.as_str(), request.jwks) {
        ("none", _) => ClientSpec::public(client_id.clone()),
        (_, Some(jwks)) => ClientSpec::private_key_jwt(client_id.clone(), jwks),
        _ => ClientSpec::confidential(client_id.clone(), random_handle()),
    };
    spec.name = request.client_name.unwrap_or(client_id);
    spec.redirect_uris = request.redirect_uris;
    spec.post_logout_redirect_uris = request.post_logout_redirect_uris;
    spec.allowed_scopes = request.scopes;
    spec.require_pkce = request.require_pkce.unwrap_or(cfg.registered_require_pkce);
    spec.refresh_token_usage = cfg.registered_refresh_usage;
    spec.client_credentials = request
        .grant_types
        .iter()
        .any(|g| g == "client_credentials");
    shared
        .lock()
        .clients
        .insert(spec.client_id.clone(), spec.clone());
    spec
}

/// `POST /api/Clients/Register`.
pub(crate) fn net_health(shared: &Shared, req: &Req) -> Reply {
    if req.method != Method::POST {
        return method_not_allowed("POST");
    }
    match gate(shared, req) {
        Ok(()) => {}
        Err(Gate::Unauthorized) => {
            return json(
                StatusCode::UNAUTHORIZED,
                &json!({"Message": "Authorization has been denied for this request."}),
            );
        }
        Err(Gate::MediaType(t)) => {
            return json(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &json!({"Message": format!(
                    "The request entity's media type '{t}' is not supported for this resource: send application/json."
                )}),
            );
        }
    }
    let request = match parse(&req.body) {
        Ok(r) => r,
        Err(invalid) => {
            let key = format!("request.{}", invalid.field);
            return json(
                StatusCode::BAD_REQUEST,
                &json!({
                    "Message": format!("The request is invalid. {}: {}", invalid.field, invalid.message),
                    "ModelState": { key: [invalid.message] },
                }),
            );
        }
    };
    let auth_method = request.auth_method.clone();
    let spec = register(shared, request);
    let flow = if spec.require_pkce {
        "AuthorizationCodeWithProofKey"
    } else {
        "AuthorizationCode"
    };
    let access_lifetime = shared.lock().lifetimes.access.as_secs();
    json(
        StatusCode::OK,
        &json!({
            "ClientId": spec.client_id,
            "ClientSecret": spec.secret,
            "ClientName": spec.name,
            "Flow": flow,
            "RedirectUris": spec.redirect_uris,
            "PostLogoutRedirectUris": spec.post_logout_redirect_uris,
            "AllowedScopes": spec.allowed_scopes,
            "TokenEndpointAuthMethod": auth_method,
            "RefreshTokenUsage": spec.refresh_token_usage.as_str(),
            "AccessTokenLifetime": access_lifetime,
            "Enabled": true,
        }),
    )
}

/// `POST /connect/register` (RFC 7591), when enabled.
pub(crate) fn rfc7591(shared: &Shared, req: &Req) -> Reply {
    if !shared.config.dynamic_registration {
        return json(
            StatusCode::NOT_FOUND,
            &json!({"error": "registration_not_supported", "error_description": "Dynamic client registration is disabled"}),
        );
    }
    if req.method != Method::POST {
        return method_not_allowed("POST");
    }
    match gate(shared, req) {
        Ok(()) => {}
        Err(Gate::Unauthorized) => {
            return crate::provider::bearer_challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                Some("A valid initial access token is required"),
                None,
                &json!({"error": "invalid_token", "error_description": "A valid initial access token is required"}),
            );
        }
        Err(Gate::MediaType(_)) => {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_client_metadata", "error_description": "The request must be application/json"}),
            );
        }
    }
    let request = match parse(&req.body) {
        Ok(r) => r,
        Err(invalid) => {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({"error": invalid.rfc7591_error, "error_description": invalid.message}),
            );
        }
    };
    let auth_method = request.auth_method.clone();
    let grant_types = request.grant_types.clone();
    let spec = register(shared, request);
    let issued_at = shared.lock().now();
    let mut body = json!({
        "client_id": spec.client_id,
        "client_id_issued_at": issued_at,
        "client_name": spec.name,
        "redirect_uris": spec.redirect_uris,
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method,
        "scope": spec.allowed_scopes.join(" "),
    });
    if let (Some(obj), Some(secret)) = (body.as_object_mut(), &spec.secret) {
        obj.insert("client_secret".into(), secret.clone().into());
        obj.insert("client_secret_expires_at".into(), 0.into());
    }
    if let (Some(obj), Some(jwks)) = (body.as_object_mut(), &spec.jwks) {
        obj.insert("jwks".into(), jwks.clone());
    }
    if let Some(obj) = body.as_object_mut()
        && !spec.post_logout_redirect_uris.is_empty()
    {
        obj.insert(
            "post_logout_redirect_uris".into(),
            spec.post_logout_redirect_uris.clone().into(),
        );
    }
    json(StatusCode::CREATED, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_bind_in_any_case() {
        for body in [
            r#"{"redirect_uris":["http://127.0.0.1/cb"],"client_name":"A"}"#,
            r#"{"RedirectUris":["http://127.0.0.1/cb"],"ClientName":"A"}"#,
            r#"{"redirectUris":["http://127.0.0.1/cb"],"clientName":"A"}"#,
        ] {
            let r = parse(body.as_bytes()).expect("valid");
            assert_eq!(r.redirect_uris, vec!["http://127.0.0.1/cb"]);
            assert_eq!(r.client_name.as_deref(), Some("A"));
            assert_eq!(r.auth_method, "client_secret_basic");
        }
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            ("not json", "request"),
            ("[1]", "request"),
            ("{}", "RedirectUris"),
            (
                r#"{"redirect_uris":["http://example.com/cb"]}"#,
                "RedirectUris",
            ),
            (
                r#"{"redirect_uris":["http://127.0.0.1/cb#x"]}"#,
                "RedirectUris",
            ),
            (r#"{"redirect_uris":"relative/path"}"#, "RedirectUris"),
            (r#"{"redirect_uris":[1]}"#, "RedirectUris"),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}"#,
                "TokenEndpointAuthMethod",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}"#,
                "Jwks",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[]}}"#,
                "Jwks",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC"}]}}"#,
                "Jwks",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://a.example/jwks"}"#,
                "Jwks",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"jwks":{"keys":[]}}"#,
                "Jwks",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}"#,
                "GrantTypes",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"scope":"openid admin"}"#,
                "AllowedScopes",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}"#,
                "ResponseTypes",
            ),
            (
                r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}"#,
                "GrantTypes",
            ),
        ];
        for (body, field) in cases {
            let err = parse(body.as_bytes()).expect_err(body);
            assert_eq!(err.field, field, "{body}");
        }
    }
}
