//! The token endpoint: requests for the `authorization_code`, `refresh_token` and `client_credentials` grants,
//! client authentication, and the response parser.
//!
//! ```text
//!  code_exchange_request / refresh_request / client_credentials_request   (build: http::Request<Vec<u8>>)
//!                     |
//!                     v   the driver sends it, with redirects turned off
//!  parse_token_response(&http::Response<Vec<u8>>) -> TokenResponse        (parse)
//!                     |
//!                     v
//!  granted_scopes(&requested, &response) -> GrantedScopes                  (what the user actually granted)
//! ```
//!
//! **Client authentication** ([`TokenAuthMethod`]) is picked by [`choose_auth_method`] from the provider's metadata and
//! the client's registration:
//! - `client_secret_basic`: `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, each part
//!   `application/x-www-form-urlencoded` first as RFC 6749 §2.3.1 requires (a secret holding `+`, `/`, `:` or `%`
//!   otherwise breaks). The header value is marked sensitive, so `http`'s `Debug` hides it;
//! - `client_secret_post`: `client_id` and `client_secret` in the form body;
//! - `none`: a public client sends only its `client_id`.
//!
//! **The parser is lenient where providers differ** and strict where safety needs it: `token_type` in any case
//! (`bearer` and `dpop` are accepted), `expires_in` as a number or a numeric string (see
//! [`TokenResponse::expires_in`]), optional `refresh_token`/`id_token`/`scope`, unknown fields kept. Error bodies
//! `{error, error_description, error_uri}` become [`ResponseError::OAuth`] whatever the 4xx/5xx status; IdentityServer3's
//! "invalid_grant / Unexpected code_verifier" carries a hint (see [`OAuthError::hint`](crate::error::OAuthError::hint))
//! that says to turn PKCE off for that client.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD_INDIFFERENT};
use http::HeaderValue;
use serde_json::{Map, Value};
use url::Url;

use crate::client::{ClientConfig, TokenAuthMethod};
use crate::client_auth::{self, ClientAuth, RequestStamp};
use crate::discovery::ProviderMetadata;
use crate::error::{Endpoint, ResponseError};
use crate::scope::{GrantedScopes, ScopeSource, Scopes};
use crate::secret::{AccessToken, AuthorizationCode, CodeVerifier, IdToken, RefreshToken};
use crate::time::UnixTime;
use crate::wire;

/// A successful token response (RFC 6749 §5.1), parsed leniently.
///
/// `Debug` shows no token (they are secret newtypes) and only the *names* of the [`extra`](Self::extra) fields:
/// SMART on FHIR puts the patient's id there, which is health data and does not belong in logs.
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// `token_type`, lower-cased (`bearer`, or `dpop` for a DPoP-bound token).
    pub token_type: String,
    /// `expires_in`; `None` when absent. A value too large to represent saturates.
    ///
    /// Accepted forms: a JSON number or a numeric string (`3600`, `"3600"`, `3600.7`, `1e30`). Fractions are cut
    /// (`3600.7` is 3600 s). A value beyond `u64::MAX` seconds saturates to `u64::MAX` seconds ("practically never");
    /// it never overflows or panics. Zero and negative values become `Some(Duration::ZERO)`: the token is to be
    /// treated as already expired (a caller must not refresh in a tight loop because of it). `null` counts as absent.
    /// A bare JSON number beyond what a 64-bit float holds (`1e400`) makes the whole body unparseable JSON, so the
    /// response is refused as malformed.
    pub expires_in: Option<Duration>,
    /// `refresh_token`, when one was issued (only if `offline_access` was granted at IdentityServer3). An empty
    /// string counts as absent.
    pub refresh_token: Option<RefreshToken>,
    /// `id_token`, when one was issued. An empty string counts as absent.
    pub id_token: Option<IdToken>,
    /// The `scope` field as sent; IdentityServer3 sends none. An empty string counts as absent.
    pub scope: Option<crate::scope::Scopes>,
    /// Every other field, kept (SMART on FHIR sends `patient`, `encounter`, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl TokenResponse {
    /// A bearer token response with nothing but an access token; set the public fields for the rest.
    ///
    /// Useful for tests and for drivers that obtain a token another way.
    pub fn new(access_token: AccessToken) -> Self {
        TokenResponse {
            access_token,
            token_type: String::from("bearer"),
            expires_in: None,
            refresh_token: None,
            id_token: None,
            scope: None,
            extra: Map::new(),
        }
    }

    /// When the access token expires, given the time the response was received; `None` when `expires_in` was absent.
    ///
    /// Saturates at [`UnixTime::MAX`].
    pub fn expires_at(&self, received_at: UnixTime) -> Option<UnixTime> {
        self.expires_in.map(|d| received_at.saturating_add(d))
    }

    /// An extra field that is a string (SMART on FHIR's `patient`, `encounter`, ...).
    pub fn extra_str(&self, name: &str) -> Option<&str> {
        self.extra.get(name).and_then(Value::as_str)
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .field("id_token", &self.id_token)
            .field("scope", &self.scope)
            .field("extra_fields", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a token request could not be built.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRequestError {
    /// The auth method needs a client secret, but the client has none.
    #[error(
        "token endpoint auth method `{}` needs a client secret, but the client has none: set the client secret, \
         or register the client as a public client (auth method `none`)",
        .method.as_str()
    )]
    MissingSecret {
        /// The method that needs the secret.
        method: TokenAuthMethod,
    },
    /// The `client_credentials` grant was asked for with auth method `none`.
    #[error(
        "the client_credentials grant is only for confidential clients (RFC 6749 §4.4), but auth method `none` was \
         given: authenticate with client_secret_basic or client_secret_post"
    )]
    PublicClientCannotUseClientCredentials,
    /// The provider lists no auth method this client can use.
    #[error(
        "the provider accepts only [{}] at the token endpoint, and this client can do none of them: register the \
         client for client_secret_basic or client_secret_post (or as a public client), or give it a private key \
         (ClientConfig::with_signing_key) for private_key_jwt",
        .supported.join(", ")
    )]
    NoSupportedAuthMethod {
        /// The methods the provider advertises.
        supported: Vec<String>,
    },
    /// The client id is empty.
    #[error("the client id is empty: set it to the client_id the provider issued at registration")]
    EmptyClientId,
    /// A required value (the code, the refresh token) is empty.
    #[error("the {0} is empty: pass the value the provider issued")]
    EmptyValue(&'static str),
    /// `private_key_jwt` without a private key.
    #[error(
        "token endpoint auth method `{}` needs the client's private key, but the client has none: load it with \
         ClientKey::from_pem or ClientKey::from_jwk and set it with ClientConfig::with_signing_key",
        .method.as_str()
    )]
    MissingSigningKey {
        /// The method that needs the key.
        method: TokenAuthMethod,
    },
    /// No algorithm both the key and the provider accept.
    #[error(
        "the provider accepts client assertions signed with [{}] only, but the {key} can sign with [{}]: use a key \
         of a type the provider accepts, or pin one of its algorithms with ClientKey::with_algorithm",
        .supported.join(", "), .can_sign.join(", ")
    )]
    NoSupportedSigningAlgorithm {
        /// The key (type and `kid`), or `client secret`.
        key: String,
        /// What the key can sign with.
        can_sign: Vec<String>,
        /// `token_endpoint_auth_signing_alg_values_supported`.
        supported: Vec<String>,
    },
    /// The key could not sign the assertion.
    #[error(
        "the client key `{kid}` could not sign the client assertion ({reason}): check that it is a valid private \
         key for its algorithm (RSA of at least 2048 bits, EC P-256 or P-384)"
    )]
    Signing {
        /// The key's `kid`.
        kid: String,
        /// Why.
        reason: String,
    },
}

/// Chooses how to authenticate at the token endpoint.
///
/// 1. A method the client was registered with wins if the provider supports it. When the metadata has no
///    `token_endpoint_auth_methods_supported`, the provider supports only `client_secret_basic` (OpenID Connect
///    Discovery §3). A registered secret method without a secret is an error rather than a silent downgrade.
/// 2. A client without a secret is a public client: `none` (providers often do not list `none`, but accept public
///    clients that are registered as such).
/// 3. Otherwise `client_secret_basic`, then `client_secret_post`, whichever the provider lists first in that order.
/// 4. Nothing fits (for example the provider lists only `private_key_jwt`): [`TokenRequestError::NoSupportedAuthMethod`].
pub fn choose_auth_method(
    metadata: &ProviderMetadata,
    client: &ClientConfig,
) -> Result<TokenAuthMethod, TokenRequestError> {
    let default = [String::from("client_secret_basic")];
    let supported: &[String] = if metadata.token_endpoint_auth_methods_supported.is_empty() {
        &default
    } else {
        &metadata.token_endpoint_auth_methods_supported
    };
    let offers = |m: TokenAuthMethod| supported.iter().any(|s| s == m.as_str());
    let has_secret = client.client_secret.is_some();
    let has_key = client.signing_key.is_some();

    if let Some(registered) = client.token_endpoint_auth_method {
        match registered {
            TokenAuthMethod::None => {}
            TokenAuthMethod::PrivateKeyJwt if !has_key => {
                return Err(TokenRequestError::MissingSigningKey { method: registered });
            }
            TokenAuthMethod::PrivateKeyJwt => {}
            _ if !has_secret => {
                return Err(TokenRequestError::MissingSecret { method: registered });
            }
            _ => {}
        }
        if offers(registered) {
            return Ok(registered);
        }
    }
    if has_key && offers(TokenAuthMethod::PrivateKeyJwt) {
        return Ok(TokenAuthMethod::PrivateKeyJwt);
    }
    if !has_secret {
        return Ok(TokenAuthMethod::None);
    }
    [
        TokenAuthMethod::ClientSecretBasic,
        TokenAuthMethod::ClientSecretPost,
        TokenAuthMethod::ClientSecretJwt,
    ]
    .into_iter()
    .find(|m| offers(*m))
    .ok_or_else(|| TokenRequestError::NoSupportedAuthMethod {
        supported: supported
            .iter()
            .map(|s| crate::error::truncate(s, 64))
            .collect(),
    })
}

/// An `Authorization: Basic ...` value for `client_secret_basic` (RFC 6749 §2.3.1): the id and the secret are each
/// `application/x-www-form-urlencoded`, joined by `:`, then base64-encoded. The value is marked sensitive.
pub fn basic_auth_header(client_id: &str, client_secret: &str) -> HeaderValue {
    let id: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = url::form_urlencoded::byte_serialize(client_secret.as_bytes()).collect();
    let mut value = HeaderValue::from_str(&format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{secret}"))
    ))
    .expect("base64 output is printable ASCII, always a valid header value");
    value.set_sensitive(true);
    value
}

/// The `authorization_code` grant (RFC 6749 §4.1.3): exchanges the code from the callback for tokens.
///
/// `redirect_uri` must be the one the authorization request used. `code_verifier` is the PKCE verifier (RFC 7636),
/// `None` when PKCE was turned off for this client.
pub fn code_exchange_request(
    token_endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    code: &AuthorizationCode,
    redirect_uri: &Url,
    code_verifier: Option<&CodeVerifier>,
    stamp: &RequestStamp,
) -> Result<http::Request<Vec<u8>>, TokenRequestError> {
    if code.expose_secret().is_empty() {
        return Err(TokenRequestError::EmptyValue("authorization code"));
    }
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose_secret()),
        ("redirect_uri", redirect_uri.as_str()),
    ];
    if let Some(v) = code_verifier {
        params.push(("code_verifier", v.expose_secret()));
    }
    client_auth::form_request(token_endpoint, client, auth, &params, stamp)
}

/// The `refresh_token` grant (RFC 6749 §6). `scope`, when given and not empty, asks for a narrower grant.
pub fn refresh_request(
    token_endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    refresh_token: &RefreshToken,
    scope: Option<&Scopes>,
    stamp: &RequestStamp,
) -> Result<http::Request<Vec<u8>>, TokenRequestError> {
    if refresh_token.expose_secret().is_empty() {
        return Err(TokenRequestError::EmptyValue("refresh token"));
    }
    let scope = scope.filter(|s| !s.is_empty()).map(Scopes::to_string);
    let mut params = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose_secret()),
    ];
    if let Some(s) = &scope {
        params.push(("scope", s));
    }
    client_auth::form_request(token_endpoint, client, auth, &params, stamp)
}

/// The `client_credentials` grant (RFC 6749 §4.4), for a confidential client acting on its own behalf.
///
/// Auth method `none` is refused: this grant needs a client that can authenticate.
pub fn client_credentials_request(
    token_endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    scope: Option<&Scopes>,
    stamp: &RequestStamp,
) -> Result<http::Request<Vec<u8>>, TokenRequestError> {
    if auth.method() == TokenAuthMethod::None {
        return Err(TokenRequestError::PublicClientCannotUseClientCredentials);
    }
    let scope = scope.filter(|s| !s.is_empty()).map(Scopes::to_string);
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(s) = &scope {
        params.push(("scope", s));
    }
    client_auth::form_request(token_endpoint, client, auth, &params, stamp)
}

/// Parses a token endpoint response.
///
/// - an OAuth error body on any 4xx/5xx (IdentityServer3 answers 400, others 401) is [`ResponseError::OAuth`];
///   a 3xx is [`ResponseError::Redirect`];
/// - the body must be a JSON object with a non-empty string `access_token`;
/// - `token_type` is compared in any letter case and stored lower-cased; an absent `token_type` is taken as
///   `bearer`; `dpop` (RFC 9449) is accepted too, and any other type (`mac`, ...) is refused because this client
///   cannot present it;
/// - `expires_in`: see [`TokenResponse::expires_in`];
/// - `refresh_token`, `id_token`, `scope` are optional; empty strings count as absent; a `scope` sent as a JSON array
///   of strings is accepted too;
/// - every other field is kept in [`TokenResponse::extra`].
pub fn parse_token_response(
    response: &http::Response<Vec<u8>>,
) -> Result<TokenResponse, ResponseError> {
    const E: Endpoint = Endpoint::Token;
    wire::check_status(E, response)?;
    let body = response.body();
    let bad = |reason: String| wire::malformed(E, body, reason);
    let mut map: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(bad("the body is not a JSON object".into())),
        Err(e) => return Err(bad(wire::json_reason(&e))),
    };

    let access_token = match map.remove("access_token") {
        Some(Value::String(s)) if !s.is_empty() => AccessToken::new(s),
        Some(Value::String(_)) => return Err(bad("`access_token` is empty".into())),
        None | Some(Value::Null) => return Err(bad("there is no `access_token`".into())),
        Some(_) => return Err(bad("`access_token` is not a string".into())),
    };

    let token_type = match map.remove("token_type") {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        None | Some(Value::Null) => String::from("bearer"),
        Some(_) => return Err(bad("`token_type` is not a string".into())),
    };
    if token_type != "bearer" && token_type != "dpop" {
        return Err(bad(format!(
            "token_type `{}` is not supported: this client can present bearer and DPoP tokens only; configure the \
             client at the provider for one of them",
            crate::error::truncate(&token_type, 32)
        )));
    }

    let expires_in = match map.remove("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(seconds(&n)),
        Some(Value::String(s)) => match s.trim().parse::<serde_json::Number>() {
            Ok(n) => Some(seconds(&n)),
            Err(_) => return Err(bad("`expires_in` is a string that is not a number".into())),
        },
        Some(_) => return Err(bad("`expires_in` is neither a number nor a string".into())),
    };

    let refresh_token = optional_string(&mut map, "refresh_token")
        .map_err(&bad)?
        .map(RefreshToken::new);
    let id_token = optional_string(&mut map, "id_token")
        .map_err(&bad)?
        .map(IdToken::new);
    let scope = match map.remove("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Scopes::parse(&s)),
        Some(Value::Array(items)) => Some(
            scope_array(&items).ok_or_else(|| bad("`scope` is an array of non-strings".into()))?,
        ),
        Some(_) => return Err(bad("`scope` is neither a string nor an array".into())),
    }
    .filter(|s| !s.is_empty());

    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        refresh_token,
        id_token,
        scope,
        extra: map,
    })
}

/// A JSON number of seconds as a duration: cut to whole seconds, negatives to zero, huge values saturated.
fn seconds(n: &serde_json::Number) -> Duration {
    if let Some(u) = n.as_u64() {
        return Duration::from_secs(u);
    }
    if n.as_i64().is_some() {
        // Only negative integers are not u64.
        return Duration::ZERO;
    }
    match n.as_f64() {
        // `as` saturates float-to-int conversions (and maps NaN to 0), so this never overflows.
        Some(f) if f > 0.0 => Duration::from_secs(f as u64),
        _ => Duration::ZERO,
    }
}

/// Removes an optional string field; an empty string counts as absent.
fn optional_string(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

/// Scopes from a JSON array; `None` if any item is not a string.
fn scope_array(items: &[Value]) -> Option<Scopes> {
    let mut scopes = Scopes::new();
    for item in items {
        for s in item.as_str()?.split_ascii_whitespace() {
            scopes.insert(s);
        }
    }
    Some(scopes)
}

/// What the user actually granted.
///
/// In order:
/// 1. the token response's `scope` ([`ScopeSource::TokenResponse`]);
/// 2. else, if the access token is a JWT (three base64url parts), its `scope` claim, either a space-separated string or a
///    JSON array of strings (IdentityServer3 sends an array and no `scope` field) ([`ScopeSource::AccessTokenClaim`]).
///    The payload is decoded **without verifying the signature**: the access token is meant for the resource server,
///    not for this client, and the result is informational only (it tells the application which features to offer;
///    the resource server still enforces the real grant). Never base an authorization decision on it;
/// 3. else RFC 6749 §5.1's rule, that the grant equals the request ([`ScopeSource::AssumedFromRequest`]).
///
/// An empty `scope` (field or claim) counts as absent. Garbage access tokens fall through to rule 3; nothing here
/// panics.
pub fn granted_scopes(requested: &Scopes, response: &TokenResponse) -> GrantedScopes {
    if let Some(scope) = &response.scope {
        return GrantedScopes::new(requested.clone(), scope.clone(), ScopeSource::TokenResponse);
    }
    if let Some(scope) = jwt_scope_claim(response.access_token.expose_secret()) {
        return GrantedScopes::new(requested.clone(), scope, ScopeSource::AccessTokenClaim);
    }
    GrantedScopes::new(
        requested.clone(),
        requested.clone(),
        ScopeSource::AssumedFromRequest,
    )
}

/// The `scope` claim of an unverified JWT; `None` when the token is not a JWT or has no usable, non-empty claim.
fn jwt_scope_claim(token: &str) -> Option<Scopes> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD_INDIFFERENT.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let scopes = match claims.get("scope")? {
        Value::String(s) => Scopes::parse(s),
        Value::Array(items) => scope_array(items)?,
        _ => return None,
    };
    (!scopes.is_empty()).then_some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_auth::ClientAuth;
    use crate::error::{ErrorCode, OAuthError};
    use crate::secret::ClientSecret;
    use http::header::{AUTHORIZATION, CONTENT_TYPE};

    fn endpoint() -> Url {
        Url::parse("https://accounts.example.com/connect/token").unwrap()
    }

    fn confidential() -> ClientConfig {
        ClientConfig::new("nethealth-app", Some(ClientSecret::new("s3cr3t")))
    }

    fn body(r: &http::Request<Vec<u8>>) -> &str {
        std::str::from_utf8(r.body()).unwrap()
    }

    fn auth_header(r: &http::Request<Vec<u8>>) -> Option<&str> {
        r.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap())
    }

    fn resp(status: u16, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    fn metadata(methods: &[&str]) -> ProviderMetadata {
        let json = serde_json::json!({
            "issuer": "https://accounts.example.com",
            "authorization_endpoint": "https://accounts.example.com/connect/authorize",
            "token_endpoint": "https://accounts.example.com/connect/token",
            "token_endpoint_auth_methods_supported": methods,
        });
        serde_json::from_value(json).unwrap()
    }

    fn jwt(payload: &serde_json::Value) -> String {
        let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            enc(br#"{"alg":"RS256","typ":"JWT"}"#),
            enc(payload.to_string().as_bytes()),
            enc(b"not-a-real-signature")
        )
    }

    // --- client authentication -------------------------------------------------------------------------------

    #[test]
    fn basic_header_encodes_per_rfc6749_2_3_1() {
        // id `a:b c` -> `a%3Ab+c`, secret `p@ss/+=` -> `p%40ss%2F%2B%3D`, then standard base64 of `id:secret`.
        let v = basic_auth_header("a:b c", "p@ss/+=");
        assert_eq!(
            v.to_str().unwrap(),
            "Basic YSUzQWIrYzpwJTQwc3MlMkYlMkIlM0Q="
        );
        assert!(v.is_sensitive());
        assert_eq!(
            basic_auth_header("nethealth-app", "s3cr3t")
                .to_str()
                .unwrap(),
            "Basic bmV0aGVhbHRoLWFwcDpzM2NyM3Q="
        );
    }

    #[test]
    fn basic_header_is_hidden_in_request_debug() {
        let r = refresh_request(
            &endpoint(),
            &confidential(),
            &ClientAuth::new(TokenAuthMethod::ClientSecretBasic),
            &RefreshToken::new("rt"),
            None,
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        let dbg = format!("{:?}", r.headers());
        assert!(!dbg.contains("bmV0aGVhbHRo"), "{dbg}");
    }

    #[test]
    fn code_exchange_with_each_auth_method() {
        let code = AuthorizationCode::new("c0de/+");
        let redirect = Url::parse("http://127.0.0.1:8080/callback").unwrap();
        let verifier = CodeVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let cases: [(TokenAuthMethod, &str, Option<&str>); 3] = [
            (
                TokenAuthMethod::ClientSecretBasic,
                "grant_type=authorization_code&code=c0de%2F%2B&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback\
                 &code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                Some("Basic bmV0aGVhbHRoLWFwcDpzM2NyM3Q="),
            ),
            (
                TokenAuthMethod::ClientSecretPost,
                "grant_type=authorization_code&code=c0de%2F%2B&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback\
                 &code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk&client_id=nethealth-app&client_secret=s3cr3t",
                None,
            ),
            (
                TokenAuthMethod::None,
                "grant_type=authorization_code&code=c0de%2F%2B&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback\
                 &code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk&client_id=nethealth-app",
                None,
            ),
        ];
        for (method, want_body, want_auth) in cases {
            let r = code_exchange_request(
                &endpoint(),
                &confidential(),
                &ClientAuth::new(method),
                &code,
                &redirect,
                Some(&verifier),
                &crate::client_auth::RequestStamp::new_inner(
                    crate::time::UnixTime::from_secs(0),
                    "jti",
                ),
            )
            .unwrap();
            assert_eq!(r.method(), http::Method::POST);
            assert_eq!(r.uri(), "https://accounts.example.com/connect/token");
            assert_eq!(r.headers()[CONTENT_TYPE], wire::FORM);
            assert_eq!(body(&r), want_body, "{method:?}");
            assert_eq!(auth_header(&r), want_auth, "{method:?}");
        }
    }

    #[test]
    fn code_exchange_without_pkce_sends_no_verifier() {
        let r = code_exchange_request(
            &endpoint(),
            &confidential(),
            &ClientAuth::new(TokenAuthMethod::ClientSecretPost),
            &AuthorizationCode::new("abc"),
            &Url::parse("https://app.example/cb").unwrap(),
            None,
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert!(!body(&r).contains("code_verifier"), "{}", body(&r));
    }

    #[test]
    fn refresh_and_client_credentials_bodies() {
        let scopes = Scopes::parse("patients.read openid");
        let r = refresh_request(
            &endpoint(),
            &confidential(),
            &ClientAuth::new(TokenAuthMethod::ClientSecretPost),
            &RefreshToken::new("rt 1"),
            Some(&scopes),
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert_eq!(
            body(&r),
            "grant_type=refresh_token&refresh_token=rt+1&scope=openid+patients.read\
             &client_id=nethealth-app&client_secret=s3cr3t"
        );
        let r = refresh_request(
            &endpoint(),
            &confidential(),
            &ClientAuth::new(TokenAuthMethod::ClientSecretBasic),
            &RefreshToken::new("rt"),
            Some(&Scopes::new()),
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert_eq!(body(&r), "grant_type=refresh_token&refresh_token=rt");

        let r = client_credentials_request(
            &endpoint(),
            &confidential(),
            &ClientAuth::new(TokenAuthMethod::ClientSecretBasic),
            Some(&Scopes::parse("api")),
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert_eq!(body(&r), "grant_type=client_credentials&scope=api");
        assert_eq!(auth_header(&r), Some("Basic bmV0aGVhbHRoLWFwcDpzM2NyM3Q="));
    }

    #[test]
    fn request_errors() {
        let public = ClientConfig::new("pub", None);
        let rt = RefreshToken::new("rt");
        for method in [
            TokenAuthMethod::ClientSecretBasic,
            TokenAuthMethod::ClientSecretPost,
        ] {
            assert_eq!(
                refresh_request(
                    &endpoint(),
                    &public,
                    &ClientAuth::new(method),
                    &rt,
                    None,
                    &crate::client_auth::RequestStamp::new_inner(
                        crate::time::UnixTime::from_secs(0),
                        "jti"
                    )
                )
                .unwrap_err(),
                TokenRequestError::MissingSecret { method }
            );
        }
        let r = refresh_request(
            &endpoint(),
            &public,
            &ClientAuth::new(TokenAuthMethod::None),
            &rt,
            None,
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert_eq!(
            body(&r),
            "grant_type=refresh_token&refresh_token=rt&client_id=pub"
        );
        assert_eq!(auth_header(&r), None);

        assert_eq!(
            client_credentials_request(
                &endpoint(),
                &confidential(),
                &ClientAuth::new(TokenAuthMethod::None),
                None,
                &crate::client_auth::RequestStamp::new_inner(
                    crate::time::UnixTime::from_secs(0),
                    "jti"
                )
            )
            .unwrap_err(),
            TokenRequestError::PublicClientCannotUseClientCredentials
        );
        assert_eq!(
            refresh_request(
                &endpoint(),
                &ClientConfig::new("", None),
                &ClientAuth::new(TokenAuthMethod::None),
                &rt,
                None,
                &crate::client_auth::RequestStamp::new_inner(
                    crate::time::UnixTime::from_secs(0),
                    "jti"
                )
            )
            .unwrap_err(),
            TokenRequestError::EmptyClientId
        );
        assert_eq!(
            refresh_request(
                &endpoint(),
                &confidential(),
                &ClientAuth::new(TokenAuthMethod::None),
                &RefreshToken::new(""),
                None,
                &crate::client_auth::RequestStamp::new_inner(
                    crate::time::UnixTime::from_secs(0),
                    "jti"
                )
            )
            .unwrap_err(),
            TokenRequestError::EmptyValue("refresh token")
        );
        assert!(
            code_exchange_request(
                &endpoint(),
                &confidential(),
                &ClientAuth::new(TokenAuthMethod::None),
                &AuthorizationCode::new(""),
                &endpoint(),
                None,
                &crate::client_auth::RequestStamp::new_inner(
                    crate::time::UnixTime::from_secs(0),
                    "jti"
                )
            )
            .unwrap_err()
            .to_string()
            .contains("authorization code is empty")
        );
        let msg = TokenRequestError::MissingSecret {
            method: TokenAuthMethod::ClientSecretBasic,
        }
        .to_string();
        assert!(
            msg.contains("client_secret_basic") && msg.contains("set the client secret"),
            "{msg}"
        );
    }

    #[test]
    fn choose_auth_method_matrix() {
        use TokenAuthMethod::{ClientSecretBasic as Basic, ClientSecretPost as Post};
        let secret = Some(ClientSecret::new("s"));
        type Case = (
            &'static [&'static str],
            Option<TokenAuthMethod>,
            bool,
            Result<TokenAuthMethod, TokenRequestError>,
        );
        let cases: &[Case] = &[
            // Absent list: only client_secret_basic (Discovery §3).
            (&[], None, true, Ok(Basic)),
            (&[], Some(Post), true, Ok(Basic)),
            (&[], None, false, Ok(TokenAuthMethod::None)),
            // IdentityServer3 lists post first; we still prefer basic.
            (
                &["client_secret_post", "client_secret_basic"],
                None,
                true,
                Ok(Basic),
            ),
            // The registered method wins when supported.
            (
                &["client_secret_post", "client_secret_basic"],
                Some(Post),
                true,
                Ok(Post),
            ),
            (
                &["client_secret_basic", "none"],
                Some(TokenAuthMethod::None),
                true,
                Ok(TokenAuthMethod::None),
            ),
            (&["client_secret_post"], None, true, Ok(Post)),
            (&["client_secret_post"], Some(Basic), true, Ok(Post)),
            // No secret: public client.
            (
                &["client_secret_basic"],
                None,
                false,
                Ok(TokenAuthMethod::None),
            ),
            (&["private_key_jwt"], None, false, Ok(TokenAuthMethod::None)),
            // Registered for a secret method but no secret.
            (
                &["client_secret_basic"],
                Some(Basic),
                false,
                Err(TokenRequestError::MissingSecret { method: Basic }),
            ),
            // Nothing fits.
            (
                &["private_key_jwt", "tls_client_auth"],
                None,
                true,
                Err(TokenRequestError::NoSupportedAuthMethod {
                    supported: vec!["private_key_jwt".into(), "tls_client_auth".into()],
                }),
            ),
        ];
        for (methods, registered, has_secret, want) in cases {
            let mut client =
                ClientConfig::new("c", if *has_secret { secret.clone() } else { None });
            client.token_endpoint_auth_method = *registered;
            let got = choose_auth_method(&metadata(methods), &client);
            assert_eq!(
                &got, want,
                "methods {methods:?}, registered {registered:?}, secret {has_secret}"
            );
        }
        let msg = choose_auth_method(&metadata(&["private_key_jwt"]), &confidential())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("private_key_jwt") && msg.contains("register the client"),
            "{msg}"
        );
    }

    // --- the response parser ---------------------------------------------------------------------------------

    #[test]
    fn identityserver3_shaped_response() {
        let at = jwt(&serde_json::json!({
            "iss": "https://accounts.example.com",
            "aud": "https://accounts.example.com/resources",
            "scope": ["openid", "patients.read", "offline_access"],
        }));
        let body = serde_json::json!({
            "id_token": "eyJ.id.token",
            "access_token": at,
            "expires_in": 3600,
            "token_type": "Bearer",
            "refresh_token": "rt-1",
            "alg": "RS256",
        });
        let t = parse_token_response(&resp(200, &body.to_string())).unwrap();
        assert_eq!(t.token_type, "bearer");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "rt-1");
        assert_eq!(t.id_token.as_ref().unwrap().expose_secret(), "eyJ.id.token");
        assert_eq!(t.scope, None);
        assert_eq!(t.extra_str("alg"), Some("RS256"));
        assert_eq!(
            t.expires_at(UnixTime::from_secs(1000)),
            Some(UnixTime::from_secs(4600))
        );

        let requested = Scopes::parse("openid patients.read patients.write offline_access");
        let g = granted_scopes(&requested, &t);
        assert_eq!(g.source(), ScopeSource::AccessTokenClaim);
        assert_eq!(
            g.granted(),
            &Scopes::parse("openid patients.read offline_access")
        );
        assert_eq!(g.refused(), Scopes::parse("patients.write"));
    }

    #[test]
    fn minimal_response_and_smart_on_fhir_extras() {
        let t = parse_token_response(&resp(
            200,
            r#"{"access_token":"opaque","token_type":"bearer","patient":"123","encounter":"e9",
                "fhirContext":[{"reference":"Patient/123"}],"need_patient_banner":true}"#,
        ))
        .unwrap();
        assert_eq!(t.expires_in, None);
        assert!(t.refresh_token.is_none() && t.id_token.is_none() && t.scope.is_none());
        assert_eq!(t.extra_str("patient"), Some("123"));
        assert_eq!(t.extra_str("encounter"), Some("e9"));
        assert!(t.extra["fhirContext"].is_array());
        assert_eq!(t.extra["need_patient_banner"], Value::Bool(true));
        assert_eq!(t.extra.len(), 4);
        // Absent token_type is taken as bearer.
        let t = parse_token_response(&resp(200, r#"{"access_token":"x"}"#)).unwrap();
        assert_eq!(t.token_type, "bearer");
    }

    #[test]
    fn token_type_any_case_bearer_or_dpop() {
        for tt in ["bearer", "Bearer", "BEARER", "bEaReR"] {
            let t = parse_token_response(&resp(
                200,
                &format!(r#"{{"access_token":"x","token_type":"{tt}"}}"#),
            ))
            .unwrap();
            assert_eq!(t.token_type, "bearer");
        }
        for tt in [r#""mac""#, r#""N_A""#, "7"] {
            let e = parse_token_response(&resp(
                200,
                &format!(r#"{{"access_token":"x","token_type":{tt}}}"#),
            ))
            .unwrap_err();
            match e {
                ResponseError::Malformed { reason, .. } => {
                    assert!(reason.contains("token_type"), "{reason}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let dpop = parse_token_response(&resp(200, r#"{"access_token":"x","token_type":"DPoP"}"#))
            .unwrap();
        assert_eq!(dpop.token_type, "dpop");
        let e = parse_token_response(&resp(200, r#"{"access_token":"x","token_type":"MAC"}"#))
            .unwrap_err();
        assert!(
            e.to_string().contains("token_type `mac` is not supported"),
            "{e}"
        );
    }

    #[test]
    fn expires_in_variants() {
        let max = Some(Duration::from_secs(u64::MAX));
        let cases: &[(&str, Option<Duration>)] = &[
            ("3600", Some(Duration::from_secs(3600))),
            (r#""3600""#, Some(Duration::from_secs(3600))),
            (r#"" 3600 ""#, Some(Duration::from_secs(3600))),
            ("3600.9", Some(Duration::from_secs(3600))),
            ("null", None),
            ("1e30", max),
            (r#""1e30""#, max),
            ("18446744073709551615", max),
            ("18446744073709551616", max), // u64::MAX + 1
            (r#""18446744073709551616""#, max),
            ("1e308", max),
            ("0", Some(Duration::ZERO)),
            ("-5", Some(Duration::ZERO)),
            (r#""-5""#, Some(Duration::ZERO)),
            ("-1e30", Some(Duration::ZERO)),
            ("-0.5", Some(Duration::ZERO)),
            ("0.5", Some(Duration::ZERO)),
        ];
        for (raw, want) in cases {
            let t = parse_token_response(&resp(
                200,
                &format!(r#"{{"access_token":"x","token_type":"bearer","expires_in":{raw}}}"#),
            ))
            .unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(t.expires_in, *want, "expires_in {raw}");
            // Expiry arithmetic saturates too.
            let _ = t.expires_at(UnixTime::from_secs(u64::MAX - 1));
        }
        let t =
            parse_token_response(&resp(200, r#"{"access_token":"x","expires_in":1e30}"#)).unwrap();
        assert_eq!(t.expires_at(UnixTime::from_secs(5)), Some(UnixTime::MAX));
        for raw in [
            r#""soon""#,
            r#""NaN""#,
            r#""inf""#,
            "true",
            "{}",
            "[3600]",
            r#""""#,
        ] {
            let e = parse_token_response(&resp(
                200,
                &format!(r#"{{"access_token":"x","expires_in":{raw}}}"#),
            ))
            .unwrap_err();
            assert!(matches!(e, ResponseError::Malformed { .. }), "{raw}: {e:?}");
            assert!(e.to_string().contains("expires_in"), "{raw}: {e}");
        }
    }

    #[test]
    fn optional_fields_empty_or_wrong_type() {
        let t = parse_token_response(&resp(
            200,
            r#"{"access_token":"x","refresh_token":"","id_token":null,"scope":""}"#,
        ))
        .unwrap();
        assert!(t.refresh_token.is_none() && t.id_token.is_none() && t.scope.is_none());
        let t = parse_token_response(&resp(200, r#"{"access_token":"x","scope":["a b","c"]}"#))
            .unwrap();
        assert_eq!(t.scope, Some(Scopes::parse("a b c")));
        for body in [
            r#"{"access_token":"x","refresh_token":5}"#,
            r#"{"access_token":"x","id_token":{}}"#,
            r#"{"access_token":"x","scope":7}"#,
            r#"{"access_token":"x","scope":[1]}"#,
        ] {
            assert!(
                matches!(
                    parse_token_response(&resp(200, body)),
                    Err(ResponseError::Malformed { .. })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_bodies() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"token_type":"bearer","expires_in":3600}"#,
                "no `access_token`",
            ),
            (r#"{"access_token":null}"#, "no `access_token`"),
            (r#"{"access_token":""}"#, "`access_token` is empty"),
            (r#"{"access_token":42}"#, "not a string"),
            (
                r#"{"access_token":"SECRETVALUE","token_type":"bea"#,
                "truncated",
            ),
            ("<html>oops</html>", "not JSON"),
            ("", "truncated"),
            (r#"["access_token"]"#, "not a JSON object"),
            ("null", "not a JSON object"),
        ];
        for (body, want) in cases {
            match parse_token_response(&resp(200, body)) {
                Err(e @ ResponseError::Malformed { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{body}: {msg}");
                    assert!(!msg.contains("SECRETVALUE"), "{msg}");
                }
                other => panic!("{body}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn error_bodies_on_400_and_401() {
        for status in [400, 401] {
            let e = parse_token_response(&resp(
                status,
                r#"{"error":"invalid_grant","error_description":"Unexpected code_verifier","error_uri":"https://docs.example/e"}"#,
            ))
            .unwrap_err();
            assert_eq!(
                e,
                ResponseError::OAuth {
                    endpoint: Endpoint::Token,
                    error: OAuthError {
                        code: ErrorCode::InvalidGrant,
                        description: Some("Unexpected code_verifier".into()),
                        uri: Some("https://docs.example/e".into()),
                    }
                }
            );
            assert!(e.to_string().contains("turn PKCE off"), "{e}");
        }
        let e = parse_token_response(&resp(401, r#"{"error":"invalid_client"}"#)).unwrap_err();
        assert_eq!(e.oauth_error().unwrap().code, ErrorCode::InvalidClient);
        let e = parse_token_response(&resp(500, "<html>")).unwrap_err();
        assert!(matches!(e, ResponseError::Status { status: 500, .. }));
        let e = parse_token_response(&resp(302, "")).unwrap_err();
        assert!(matches!(e, ResponseError::Redirect { status: 302, .. }));
    }

    #[test]
    fn debug_does_not_leak() {
        let t = parse_token_response(&resp(
            200,
            r#"{"access_token":"AT-SECRET","refresh_token":"RT-SECRET","id_token":"IDT-SECRET","patient":"PATIENT-42"}"#,
        ))
        .unwrap();
        let dbg = format!("{t:?}");
        for secret in ["AT-SECRET", "RT-SECRET", "IDT-SECRET", "PATIENT-42"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(dbg.contains("patient"), "{dbg}");
    }

    // --- granted scopes --------------------------------------------------------------------------------------

    #[test]
    fn granted_scopes_sources() {
        let requested = Scopes::parse("openid profile patients.read");
        let with_token = |token: &str, scope: Option<&str>| {
            let mut t = TokenResponse::new(AccessToken::new(token));
            t.scope = scope.map(Scopes::parse);
            granted_scopes(&requested, &t)
        };
        // The response's scope wins over the claim.
        let at = jwt(&serde_json::json!({"scope": "openid"}));
        let g = with_token(&at, Some("openid profile"));
        assert_eq!(g.source(), ScopeSource::TokenResponse);
        assert_eq!(g.granted(), &Scopes::parse("openid profile"));
        // Claim as a string.
        let g = with_token(
            &jwt(&serde_json::json!({"scope": "openid patients.read"})),
            None,
        );
        assert_eq!(g.source(), ScopeSource::AccessTokenClaim);
        assert_eq!(g.refused(), Scopes::parse("profile"));
        // Claim as an array (IdentityServer3).
        let g = with_token(
            &jwt(&serde_json::json!({"scope": ["openid", "profile"]})),
            None,
        );
        assert_eq!(g.source(), ScopeSource::AccessTokenClaim);
        assert_eq!(g.granted(), &Scopes::parse("openid profile"));
        // Padded base64url payload is tolerated.
        let padded = {
            let p = base64::engine::general_purpose::URL_SAFE.encode(br#"{"scope":"openid"}"#);
            format!("e30.{p}.sig")
        };
        assert_eq!(
            with_token(&padded, None).source(),
            ScopeSource::AccessTokenClaim
        );

        // Everything else falls back to the request.
        let garbage = [
            "opaque-token".to_string(),
            "a.b.c".into(),
            "..".into(),
            "a.b.c.d.e".into(),
            "e30.!!!.sig".into(),
            "e30.e30.sig".into(), // {} : no scope claim
            jwt(&serde_json::json!({"scope": 5})),
            jwt(&serde_json::json!({"scope": ["openid", 5]})),
            jwt(&serde_json::json!({"scope": ""})),
            jwt(&serde_json::json!(["not", "an", "object"])),
            format!(
                "e30.{}.sig",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xff, 0xfe])
            ),
        ];
        for token in garbage {
            let g = with_token(&token, None);
            assert_eq!(g.source(), ScopeSource::AssumedFromRequest, "{token}");
            assert_eq!(g.granted(), &requested);
            assert!(!g.is_partial());
        }
    }
}
