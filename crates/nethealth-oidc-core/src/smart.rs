//! SMART on FHIR (HL7 SMART App Launch 2.x): the `/.well-known/smart-configuration` document, and the launch context
//! a user login brings back.
//!
//! ```text
//!  smart_configuration_request(fhir_base) ──send──▶ parse_smart_configuration(response) -> SmartConfiguration
//!  Grant / TokenSet ──LaunchContext::from_fields(extra, id claims)──▶ patient, encounter, fhirUser, ...
//! ```
//!
//! **Backend Services** (machine clients) authenticate with `private_key_jwt` (RS384 or ES384) and ask for
//! `system/*.rs`-style scopes with the client-credentials grant; there is no refresh token, so a session asks for a
//! new token ahead of expiry (see [`Lifecycle`](crate::lifecycle::Lifecycle)). The launch context is health data:
//! [`LaunchContext`]'s `Debug` shows which fields are present, never their values.

use std::fmt;

use http::{Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::discovery::null_as_default;
use crate::error::{Endpoint, ResponseError};
use crate::wire;

/// The path of the SMART configuration, under the FHIR base URL.
pub const WELL_KNOWN_PATH: &str = "/.well-known/smart-configuration";

/// The `GET` of `{fhir_base}/.well-known/smart-configuration`.
pub fn smart_configuration_request(fhir_base: &Url) -> Request<Vec<u8>> {
    let mut url = fhir_base.clone();
    let path = format!("{}{WELL_KNOWN_PATH}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    wire::get_json(&url)
}

/// `/.well-known/smart-configuration`, parsed leniently: unknown fields are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SmartConfiguration {
    /// `issuer`, when the server is also an OpenID Provider.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<Url>,
    /// `authorization_endpoint`.
    #[serde(default)]
    pub authorization_endpoint: Option<Url>,
    /// `token_endpoint` (required by SMART).
    pub token_endpoint: Url,
    /// `revocation_endpoint`.
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    /// `introspection_endpoint`.
    #[serde(default)]
    pub introspection_endpoint: Option<Url>,
    /// `grant_types_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub grant_types_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `token_endpoint_auth_signing_alg_values_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// `scopes_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scopes_supported: Vec<String>,
    /// `capabilities` (`launch-standalone`, `client-confidential-asymmetric`, `permission-v2`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SmartConfiguration {
    /// Whether the server lists `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Whether SMART Backend Services can work here: the client-credentials grant and `private_key_jwt`.
    pub fn supports_backend_services(&self) -> bool {
        self.grant_types_supported
            .iter()
            .any(|g| g == "client_credentials")
            && self
                .token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "private_key_jwt")
    }
}

/// Parses the SMART configuration. The endpoints must be https or on a loopback host.
pub fn parse_smart_configuration(
    response: &Response<Vec<u8>>,
) -> Result<SmartConfiguration, ResponseError> {
    const E: Endpoint = Endpoint::Discovery;
    let config: SmartConfiguration = wire::parse_json(E, response)?;
    let endpoints = [
        Some(&config.token_endpoint),
        config.jwks_uri.as_ref(),
        config.authorization_endpoint.as_ref(),
        config.revocation_endpoint.as_ref(),
        config.introspection_endpoint.as_ref(),
    ];
    for url in endpoints.into_iter().flatten() {
        if url.scheme() != "https" && !wire::is_loopback(url) {
            return Err(wire::malformed(
                E,
                response.body(),
                format!(
                    "the SMART configuration names a non-https endpoint `{}`: the server must use https",
                    crate::error::truncate(url.as_str(), 200)
                ),
            ));
        }
    }
    Ok(config)
}

/// The SMART launch context of a user login (SMART App Launch §"Launch context"), typed.
///
/// `Debug` shows which fields are present, never their values (a patient id is health data).
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchContext {
    /// `patient`: the FHIR id of the patient in context.
    pub patient: Option<String>,
    /// `encounter`: the FHIR id of the encounter in context.
    pub encounter: Option<String>,
    /// `fhirUser`: the user's FHIR resource URL (an ID-token claim; also accepted from the token response).
    pub fhir_user: Option<String>,
    /// `need_patient_banner`: whether the app must show the patient's banner.
    pub need_patient_banner: Option<bool>,
    /// `smart_style_url`: the EHR's style sheet for the app.
    pub smart_style_url: Option<String>,
    /// `intent`: what the launching EHR wants the app to do.
    pub intent: Option<String>,
}

impl fmt::Debug for LaunchContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |present: bool| if present { "[present]" } else { "-" };
        f.debug_struct("LaunchContext")
            .field("patient", &shown(self.patient.is_some()))
            .field("encounter", &shown(self.encounter.is_some()))
            .field("fhir_user", &shown(self.fhir_user.is_some()))
            .field("need_patient_banner", &self.need_patient_banner)
            .field("smart_style_url", &shown(self.smart_style_url.is_some()))
            .field("intent", &shown(self.intent.is_some()))
            .finish()
    }
}

impl LaunchContext {
    /// The launch context from the extra fields of a token response (or a stored token set) and, for `fhirUser`,
    /// the ID token's claims. Fields of the wrong JSON type are ignored.
    pub fn from_fields(extra: &Map<String, Value>, id_claims: Option<&Map<String, Value>>) -> Self {
        let text = |map: &Map<String, Value>, name: &str| {
            map.get(name).and_then(Value::as_str).map(str::to_owned)
        };
        LaunchContext {
            patient: text(extra, "patient"),
            encounter: text(extra, "encounter"),
            fhir_user: text(extra, "fhirUser")
                .or_else(|| id_claims.and_then(|c| text(c, "fhirUser"))),
            need_patient_banner: extra.get("need_patient_banner").and_then(Value::as_bool),
            smart_style_url: text(extra, "smart_style_url"),
            intent: text(extra, "intent"),
        }
    }

    /// Whether there is no launch context at all.
    pub fn is_empty(&self) -> bool {
        *self == LaunchContext::default()
    }
}

impl crate::context::Grant {
    /// The SMART launch context of this grant (empty for a non-SMART login).
    pub fn launch_context(&self) -> LaunchContext {
        LaunchContext::from_fields(
            &self.response.extra,
            self.id_claims.as_ref().map(|c| &c.extra),
        )
    }
}

impl crate::lifecycle::TokenSet {
    /// The SMART launch context, kept across refreshes.
    pub fn launch_context(&self) -> LaunchContext {
        LaunchContext::from_fields(&self.extra, self.id_claims.as_ref().map(|c| &c.extra))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp(body: Value) -> Response<Vec<u8>> {
        Response::builder()
            .status(200)
            .body(body.to_string().into_bytes())
            .unwrap()
    }

    #[test]
    fn request_goes_under_the_fhir_base() {
        let r = smart_configuration_request(&Url::parse("https://ehr.example/fhir/r4/").unwrap());
        assert_eq!(
            r.uri(),
            "https://ehr.example/fhir/r4/.well-known/smart-configuration"
        );
    }

    #[test]
    fn parses_leniently_and_checks_endpoints() {
        let c = parse_smart_configuration(&resp(json!({
            "token_endpoint": "https://ehr.example/token",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "grant_types_supported": ["client_credentials"],
            "capabilities": ["client-confidential-asymmetric"],
            "scopes_supported": null,
            "x-vendor": 1,
        })))
        .unwrap();
        assert!(c.supports_backend_services());
        assert!(c.has_capability("client-confidential-asymmetric"));
        assert_eq!(c.extra["x-vendor"], 1);
        let err =
            parse_smart_configuration(&resp(json!({"token_endpoint": "http://ehr.example/token"})))
                .unwrap_err();
        assert!(err.to_string().contains("must use https"), "{err}");
        assert!(parse_smart_configuration(&resp(json!({}))).is_err());
    }

    #[test]
    fn launch_context_is_typed_and_its_debug_hides_values() {
        let extra = json!({"patient": "pat-123", "encounter": "enc-9", "need_patient_banner": true,
                           "smart_style_url": "https://ehr.example/style.json", "intent": "reconcile-medications"});
        let claims = json!({"fhirUser": "https://ehr.example/fhir/Practitioner/7"});
        let ctx = LaunchContext::from_fields(extra.as_object().unwrap(), claims.as_object());
        assert_eq!(ctx.patient.as_deref(), Some("pat-123"));
        assert_eq!(ctx.encounter.as_deref(), Some("enc-9"));
        assert_eq!(
            ctx.fhir_user.as_deref(),
            Some("https://ehr.example/fhir/Practitioner/7")
        );
        assert_eq!(ctx.need_patient_banner, Some(true));
        assert_eq!(ctx.intent.as_deref(), Some("reconcile-medications"));
        let debug = format!("{ctx:?}");
        assert!(
            !debug.contains("pat-123") && !debug.contains("Practitioner"),
            "{debug}"
        );
        assert!(LaunchContext::from_fields(&Map::new(), None).is_empty());
    }
}
