//! Discovery: `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0).
//!
//! [`discovery_request`] builds the `GET`, [`parse_discovery`] checks the answer:
//! - a 3xx is an error (redirects are never followed);
//! - the document's `issuer` must equal the issuer that was asked for, byte for byte (Discovery §4.3): no
//!   trailing-slash or case normalising, since the ID tokens' `iss` will be compared the same way;
//! - every endpoint must be `https`, except on loopback hosts (127.0.0.0/8, `[::1]`, `localhost`), for tests;
//! - optional fields may be missing or `null` (IdentityServer3 writes some as `null`), and unknown fields are kept
//!   in [`ProviderMetadata::extra`].

use http::{Request, Response};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::error::{Endpoint, ResponseError};
use crate::wire::{self, UrlError};

/// The path appended to the issuer.
pub const WELL_KNOWN_PATH: &str = "/.well-known/openid-configuration";

/// Why discovery failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The issuer is not a usable URL.
    #[error("the issuer is not usable: {0}")]
    InvalidIssuer(UrlError),
    /// The issuer has a query or a fragment, which OpenID Connect forbids.
    #[error(
        "the issuer `{0}` has a query or fragment, which an OpenID issuer never has; give the bare issuer URL"
    )]
    IssuerWithQuery(String),
    /// The provider did not answer with a usable document.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The document names another issuer.
    #[error(
        "the discovery document names issuer `{found}`, not `{expected}`; configure exactly the issuer the provider \
         names (a trailing slash counts), or check that the URL points at the right provider"
    )]
    IssuerMismatch {
        /// The issuer that was asked for.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// An endpoint in the document is not https (and not on a loopback host).
    #[error("the discovery document's `{field}` is not acceptable: {error}")]
    InsecureEndpoint {
        /// The metadata field.
        field: &'static str,
        /// Why the URL was refused.
        error: UrlError,
    },
}

/// The discovery URL for `issuer`: the issuer without a trailing `/`, then [`WELL_KNOWN_PATH`].
pub fn discovery_url(issuer: &str) -> Result<Url, DiscoveryError> {
    let url = wire::parse_endpoint(issuer).map_err(DiscoveryError::InvalidIssuer)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(DiscoveryError::IssuerWithQuery(crate::error::truncate(
            issuer, 200,
        )));
    }
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    wire::parse_endpoint(&format!("{base}{WELL_KNOWN_PATH}")).map_err(DiscoveryError::InvalidIssuer)
}

/// The `GET` of the discovery document of `issuer`.
pub fn discovery_request(issuer: &str) -> Result<Request<Vec<u8>>, DiscoveryError> {
    Ok(wire::get_json(&discovery_url(issuer)?))
}

/// Parses and checks the discovery document of `issuer` (see the [module docs](self)).
pub fn parse_discovery(
    issuer: &str,
    response: &Response<Vec<u8>>,
) -> Result<ProviderMetadata, DiscoveryError> {
    let metadata: ProviderMetadata = wire::parse_json(Endpoint::Discovery, response)?;
    if metadata.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: crate::error::truncate(issuer, 200),
            found: crate::error::truncate(&metadata.issuer, 200),
        });
    }
    metadata.check_endpoints()?;
    Ok(metadata)
}

pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The provider's metadata. Optional fields may be missing; unknown fields are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// `issuer`: equals the issuer that was asked for, exactly.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: Url,
    /// `token_endpoint` (absent only for implicit-only providers, which this client cannot use).
    pub token_endpoint: Option<Url>,
    /// `jwks_uri`.
    pub jwks_uri: Option<Url>,
    /// `userinfo_endpoint`.
    pub userinfo_endpoint: Option<Url>,
    /// `registration_endpoint` (RFC 7591).
    pub registration_endpoint: Option<Url>,
    /// `revocation_endpoint` (RFC 7009).
    pub revocation_endpoint: Option<Url>,
    /// `introspection_endpoint` (RFC 7662).
    pub introspection_endpoint: Option<Url>,
    /// `end_session_endpoint` (RP-initiated logout).
    pub end_session_endpoint: Option<Url>,
    /// `device_authorization_endpoint` (RFC 8628, the device flow).
    pub device_authorization_endpoint: Option<Url>,
    /// `pushed_authorization_request_endpoint` (RFC 9126, PAR).
    pub pushed_authorization_request_endpoint: Option<Url>,
    /// `require_pushed_authorization_requests` (RFC 9126 §5): every login must go through PAR.
    #[serde(default, deserialize_with = "null_as_default")]
    pub require_pushed_authorization_requests: bool,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1): the DPoP proof algorithms the server accepts.
    #[serde(default, deserialize_with = "null_as_default")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// `scopes_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scopes_supported: Vec<String>,
    /// `response_types_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub response_types_supported: Vec<String>,
    /// `grant_types_supported`; when absent the spec's default is `authorization_code` and `implicit`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub grant_types_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported`; when absent the default is `client_secret_basic`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `token_endpoint_auth_signing_alg_values_supported`: the algorithms of `private_key_jwt` and
    /// `client_secret_jwt` assertions the provider accepts.
    #[serde(default, deserialize_with = "null_as_default")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// `id_token_signing_alg_values_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `code_challenge_methods_supported` (RFC 8414).
    #[serde(default, deserialize_with = "null_as_default")]
    pub code_challenge_methods_supported: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    #[serde(default, deserialize_with = "null_as_default")]
    pub authorization_response_iss_parameter_supported: bool,
    /// `claims_supported`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub claims_supported: Vec<String>,
    /// Every other field, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ProviderMetadata {
    /// Every endpoint the document names, with its field name.
    pub fn endpoints(&self) -> impl Iterator<Item = (&'static str, &Url)> {
        [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", self.token_endpoint.as_ref()),
            ("jwks_uri", self.jwks_uri.as_ref()),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
            ("registration_endpoint", self.registration_endpoint.as_ref()),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
            (
                "introspection_endpoint",
                self.introspection_endpoint.as_ref(),
            ),
            ("end_session_endpoint", self.end_session_endpoint.as_ref()),
            (
                "device_authorization_endpoint",
                self.device_authorization_endpoint.as_ref(),
            ),
            (
                "pushed_authorization_request_endpoint",
                self.pushed_authorization_request_endpoint.as_ref(),
            ),
        ]
        .into_iter()
        .filter_map(|(field, url)| url.map(|u| (field, u)))
    }

    /// Checks that every endpoint is https or on a loopback host.
    pub fn check_endpoints(&self) -> Result<(), DiscoveryError> {
        for (field, url) in self.endpoints() {
            wire::require_secure(url)
                .map_err(|error| DiscoveryError::InsecureEndpoint { field, error })?;
        }
        Ok(())
    }

    /// Whether the provider says it supports PKCE with S256.
    pub fn supports_pkce_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
    }

    /// Whether the callback must carry the RFC 9207 `iss` parameter.
    pub fn requires_iss_parameter(&self) -> bool {
        self.authorization_response_iss_parameter_supported
    }

    /// Whether the provider lists `scope` in `scopes_supported` (true when it lists nothing).
    pub fn may_support_scope(&self, scope: &str) -> bool {
        self.scopes_supported.is_empty() || self.scopes_supported.iter().any(|s| s == scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://accounts.nethealth.example/core";

    fn ok(body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(200)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    /// A document shaped like IdentityServer3's (its field set, with a `null` and the standard-base64 era layout).
    fn identityserver3_doc(issuer: &str) -> String {
        format!(
            r#"{{
  "issuer": "{issuer}",
  "jwks_uri": "{issuer}/.well-known/jwks",
  "authorization_endpoint": "{issuer}/connect/authorize",
  "token_endpoint": "{issuer}/connect/token",
  "userinfo_endpoint": "{issuer}/connect/userinfo",
  "end_session_endpoint": "{issuer}/connect/endsession",
  "check_session_iframe": "{issuer}/connect/checksession",
  "revocation_endpoint": "{issuer}/connect/revocation",
  "introspection_endpoint": "{issuer}/connect/introspect",
  "frontchannel_logout_supported": true,
  "frontchannel_logout_session_supported": true,
  "scopes_supported": ["openid","profile","email","offline_access","patients.read","patients.write"],
  "claims_supported": null,
  "response_types_supported": ["code","token","id_token","id_token token","code id_token","code token","code id_token token"],
  "response_modes_supported": ["form_post","query","fragment"],
  "grant_types_supported": ["authorization_code","client_credentials","password","refresh_token","implicit"],
  "subject_types_supported": ["public"],
  "id_token_signing_alg_values_supported": ["RS256"],
  "code_challenge_methods_supported": ["plain","S256"],
  "token_endpoint_auth_methods_supported": ["client_secret_post","client_secret_basic"]
}}"#
        )
    }

    #[test]
    fn discovery_url_strips_one_trailing_slash() {
        assert_eq!(
            discovery_url("https://a.example/core/").unwrap().as_str(),
            "https://a.example/core/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://a.example").unwrap().as_str(),
            "https://a.example/.well-known/openid-configuration"
        );
        assert!(matches!(
            discovery_url("http://a.example"),
            Err(DiscoveryError::InvalidIssuer(UrlError::NotHttps(_)))
        ));
        assert!(discovery_url("http://127.0.0.1:8080").is_ok());
        assert!(matches!(
            discovery_url("https://a.example/?x=1"),
            Err(DiscoveryError::IssuerWithQuery(_))
        ));
        let r = discovery_request(ISSUER).unwrap();
        assert_eq!(r.method(), http::Method::GET);
        assert_eq!(
            r.uri(),
            "https://accounts.nethealth.example/core/.well-known/openid-configuration"
        );
    }

    #[test]
    fn identityserver3_document_parses() {
        let md = parse_discovery(ISSUER, &ok(&identityserver3_doc(ISSUER))).unwrap();
        assert_eq!(md.issuer, ISSUER);
        assert_eq!(
            md.token_endpoint.as_ref().unwrap().as_str(),
            format!("{ISSUER}/connect/token")
        );
        assert!(md.claims_supported.is_empty(), "null is taken as empty");
        assert!(md.supports_pkce_s256());
        assert!(!md.requires_iss_parameter());
        assert!(md.registration_endpoint.is_none());
        assert_eq!(
            md.extra["check_session_iframe"],
            format!("{ISSUER}/connect/checksession")
        );
        assert_eq!(md.endpoints().count(), 7);
    }

    #[test]
    fn minimal_document_parses() {
        let doc = r#"{"issuer":"https://op.example","authorization_endpoint":"https://op.example/auth",
                      "authorization_response_iss_parameter_supported":true,"x-vendor":{"a":1}}"#;
        let md = parse_discovery("https://op.example", &ok(doc)).unwrap();
        assert!(md.token_endpoint.is_none());
        assert!(md.requires_iss_parameter());
        assert!(md.may_support_scope("anything"));
        assert_eq!(md.extra["x-vendor"]["a"], 1);
    }

    #[test]
    fn issuer_must_match_exactly() {
        for found in [
            format!("{ISSUER}/"),
            ISSUER.to_uppercase(),
            "https://evil.example/core".to_owned(),
        ] {
            let err = parse_discovery(ISSUER, &ok(&identityserver3_doc(&found))).unwrap_err();
            assert_eq!(
                err,
                DiscoveryError::IssuerMismatch {
                    expected: ISSUER.into(),
                    found: found.clone()
                }
            );
            assert!(err.to_string().contains("configure exactly the issuer"));
        }
    }

    #[test]
    fn insecure_endpoints_are_refused() {
        let doc = identityserver3_doc(ISSUER).replace(
            &format!("\"{ISSUER}/connect/token\""),
            "\"http://accounts.nethealth.example/core/connect/token\"",
        );
        let err = parse_discovery(ISSUER, &ok(&doc)).unwrap_err();
        assert!(
            matches!(
                err,
                DiscoveryError::InsecureEndpoint {
                    field: "token_endpoint",
                    error: UrlError::NotHttps(_)
                }
            ),
            "{err:?}"
        );
        // Loopback http is fine, for tests.
        let local = "http://127.0.0.1:4455";
        assert!(parse_discovery(local, &ok(&identityserver3_doc(local))).is_ok());
        let local = "http://localhost:4455";
        assert!(parse_discovery(local, &ok(&identityserver3_doc(local))).is_ok());
    }

    #[test]
    fn bad_answers_are_typed() {
        let redirect = Response::builder()
            .status(301)
            .header("location", "https://elsewhere.example/")
            .body(Vec::new())
            .unwrap();
        assert!(matches!(
            parse_discovery(ISSUER, &redirect),
            Err(DiscoveryError::Response(ResponseError::Redirect {
                status: 301,
                ..
            }))
        ));
        let not_found = Response::builder()
            .status(404)
            .body(b"<html>nope</html>".to_vec())
            .unwrap();
        assert!(matches!(
            parse_discovery(ISSUER, &not_found),
            Err(DiscoveryError::Response(ResponseError::Status {
                status: 404,
                ..
            }))
        ));
        let truncated = identityserver3_doc(ISSUER)[..200].to_owned();
        match parse_discovery(ISSUER, &ok(&truncated)) {
            Err(DiscoveryError::Response(ResponseError::Malformed { reason, .. })) => {
                assert!(reason.contains("truncated"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        for doc in [
            r#"{"authorization_endpoint":"https://op.example/auth"}"#,
            r#"{"issuer":"https://op.example"}"#,
            r#"{"issuer":"https://op.example","authorization_endpoint":"not a url"}"#,
            r#"[]"#,
            "",
        ] {
            assert!(
                matches!(
                    parse_discovery("https://op.example", &ok(doc)),
                    Err(DiscoveryError::Response(ResponseError::Malformed { .. }))
                ),
                "{doc}"
            );
        }
    }
}
