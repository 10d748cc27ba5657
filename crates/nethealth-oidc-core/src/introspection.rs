//! Token introspection (RFC 7662): the request and its parser.
//!
//! The parser is lenient where providers differ (`aud` as a string or an array, times as numbers or numeric
//! strings, `scope` absent) and strict where it matters: `active` must be present and a boolean. An inactive answer
//! carries nothing else of value, so its other fields are dropped.

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::client::ClientConfig;
use crate::client_auth::{ClientAuth, RequestStamp};
use crate::error::{Endpoint, ResponseError};
use crate::revocation::{TokenRef, token_form_request};
use crate::scope::Scopes;
use crate::time::UnixTime;
use crate::token::TokenRequestError;
use crate::wire;

/// An introspection answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Introspection {
    /// `active`: whether the token is currently valid.
    pub active: bool,
    /// `scope`.
    #[serde(default, deserialize_with = "scopes")]
    pub scope: Option<Scopes>,
    /// `client_id`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `username`.
    #[serde(default)]
    pub username: Option<String>,
    /// `token_type`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// `exp`, Unix seconds.
    #[serde(default, deserialize_with = "numeric_date")]
    pub exp: Option<u64>,
    /// `iat`, Unix seconds.
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: Option<u64>,
    /// `nbf`, Unix seconds.
    #[serde(default, deserialize_with = "numeric_date")]
    pub nbf: Option<u64>,
    /// `sub`.
    #[serde(default)]
    pub sub: Option<String>,
    /// `aud`, always as a list.
    #[serde(default, deserialize_with = "audiences")]
    pub aud: Vec<String>,
    /// `iss`.
    #[serde(default)]
    pub iss: Option<String>,
    /// `jti`.
    #[serde(default)]
    pub jti: Option<String>,
    /// Every other member.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Introspection {
    /// Whether the token is active and, by its own `exp`/`nbf`, valid at `now`.
    pub fn is_active_at(&self, now: UnixTime) -> bool {
        let now = now.as_secs();
        self.active && self.exp.is_none_or(|exp| now < exp) && self.nbf.is_none_or(|nbf| nbf <= now)
    }

    fn inactive() -> Self {
        Introspection {
            active: false,
            scope: None,
            client_id: None,
            username: None,
            token_type: None,
            exp: None,
            iat: None,
            nbf: None,
            sub: None,
            aud: Vec::new(),
            iss: None,
            jti: None,
            extra: serde_json::Map::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Int(u64),
    Float(f64),
    Text(String),
}

fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<NumOrText>::deserialize(d)? {
        None => None,
        Some(NumOrText::Int(v)) => Some(v),
        // `as` saturates; negative and NaN values become 0, which reads as "long expired".
        Some(NumOrText::Float(f)) => Some(if f.is_finite() && f > 0.0 {
            f as u64
        } else {
            0
        }),
        Some(NumOrText::Text(t)) => Some(t.trim().parse::<u64>().map_err(|_| {
            serde::de::Error::custom("a time is neither a number nor a numeric string")
        })?),
    })
}

fn audiences<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Aud>::deserialize(d)? {
        None => Vec::new(),
        Some(Aud::One(a)) => vec![a],
        Some(Aud::Many(v)) => v,
    })
}

fn scopes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scopes>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| Scopes::parse(&s)))
}

/// Builds the introspection request for `token`, authenticated by `auth` as at the token endpoint.
pub fn introspection_request(
    endpoint: &Url,
    client: &ClientConfig,
    auth: &ClientAuth,
    token: TokenRef<'_>,
    stamp: &RequestStamp,
) -> Result<http::Request<Vec<u8>>, TokenRequestError> {
    token_form_request(endpoint, client, auth, token, stamp)
}

/// Parses the introspection answer.
pub fn parse_introspection(
    response: &http::Response<Vec<u8>>,
) -> Result<Introspection, ResponseError> {
    let parsed: Introspection = wire::parse_json(Endpoint::Introspection, response)?;
    Ok(if parsed.active {
        parsed
    } else {
        Introspection::inactive()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::TokenAuthMethod;
    use crate::secret::{AccessToken, ClientSecret};

    fn resp(status: u16, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn request() {
        let url = Url::parse("https://accounts.example.com/connect/introspect").unwrap();
        let client = ClientConfig::new("api", Some(ClientSecret::new("s")));
        let at = AccessToken::new("at");
        let r = introspection_request(
            &url,
            &client,
            &ClientAuth::new(TokenAuthMethod::ClientSecretPost),
            TokenRef::Access(&at),
            &crate::client_auth::RequestStamp::new_inner(
                crate::time::UnixTime::from_secs(0),
                "jti",
            ),
        )
        .unwrap();
        assert_eq!(
            r.body(),
            b"token=at&token_type_hint=access_token&client_id=api&client_secret=s"
        );
        assert_eq!(r.uri(), "https://accounts.example.com/connect/introspect");
    }

    #[test]
    fn active_answer() {
        let i = parse_introspection(&resp(
            200,
            r#"{"active":true,"scope":"openid api1","client_id":"c","sub":"1","exp":"2000","iat":1000.5,
                "aud":"https://accounts.example.com/resources","iss":"https://accounts.example.com","amr":"pwd"}"#,
        ))
        .unwrap();
        assert!(i.active);
        assert!(i.scope.as_ref().unwrap().contains("api1"));
        assert_eq!(i.exp, Some(2000));
        assert_eq!(i.iat, Some(1000));
        assert_eq!(
            i.aud,
            vec!["https://accounts.example.com/resources".to_owned()]
        );
        assert_eq!(i.extra["amr"], "pwd");
        assert!(i.is_active_at(UnixTime::from_secs(1999)));
        assert!(!i.is_active_at(UnixTime::from_secs(2000)));
    }

    #[test]
    fn inactive_and_bad_answers() {
        let i = parse_introspection(&resp(200, r#"{"active":false,"sub":"leak"}"#)).unwrap();
        assert!(!i.active);
        assert_eq!(i.sub, None);
        assert!(!i.is_active_at(UnixTime::EPOCH));
        for body in [
            r#"{}"#,
            r#"{"active":"true"}"#,
            r#"{"active":true,"exp":"soon"}"#,
            "nope",
        ] {
            assert!(
                matches!(
                    parse_introspection(&resp(200, body)),
                    Err(ResponseError::Malformed { .. })
                ),
                "{body}"
            );
        }
        let e = parse_introspection(&resp(401, r#"{"error":"invalid_client"}"#)).unwrap_err();
        assert!(e.oauth_error().is_some());
    }
}
