//! The userinfo endpoint (OpenID Connect Core §5.3), and the RFC 6750 `WWW-Authenticate: Bearer` challenge parser
//! that every call made with an access token can use.
//!
//! [`parse_userinfo`] discards the response when its `sub` differs from the ID token's (Core §5.3.2: the answer may
//! be for another user, or substituted). Only JSON answers are accepted: a signed or encrypted `application/jwt`
//! answer is refused with [`UserinfoError::JwtNotSupported`].

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::error::{Endpoint, ErrorCode, ResponseError, truncate};
use crate::scope::Scopes;
use crate::secret::AccessToken;
use crate::wire;

/// The longest challenge parameter value kept, in bytes.
const MAX_PARAM: usize = 512;

/// The claims about the user that the userinfo endpoint returned.
///
/// Standard claims are typed; every other claim is kept in [`extra`](Self::extra). `email_verified` and
/// `phone_number_verified` are accepted as booleans or as the strings `"true"`/`"false"` (IdentityServer3 sends
/// strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserInfo {
    /// `sub`: equal to the ID token's.
    pub sub: String,
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `given_name`.
    #[serde(default)]
    pub given_name: Option<String>,
    /// `family_name`.
    #[serde(default)]
    pub family_name: Option<String>,
    /// `preferred_username`.
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// `email`.
    #[serde(default)]
    pub email: Option<String>,
    /// `email_verified`.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: Option<bool>,
    /// `phone_number`.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// `phone_number_verified`.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub phone_number_verified: Option<bool>,
    /// `locale`.
    #[serde(default)]
    pub locale: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl UserInfo {
    /// Another claim by name.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.extra.get(name)
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<BoolOrString>::deserialize(deserializer)? {
        None => None,
        Some(BoolOrString::Bool(b)) => Some(b),
        Some(BoolOrString::Text(t)) if t.eq_ignore_ascii_case("true") => Some(true),
        Some(BoolOrString::Text(t)) if t.eq_ignore_ascii_case("false") => Some(false),
        Some(BoolOrString::Text(_)) => None,
    })
}

/// A `WWW-Authenticate: Bearer ...` challenge (RFC 6750 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BearerChallenge {
    /// `realm`.
    pub realm: Option<String>,
    /// `error`: `invalid_token`, `insufficient_scope`, `invalid_request`, ...
    pub error: Option<ErrorCode>,
    /// `error_description`, cut.
    pub error_description: Option<String>,
    /// `error_uri`, cut.
    pub error_uri: Option<String>,
    /// `scope`: the scopes the resource needs (with `insufficient_scope`).
    pub scope: Option<Scopes>,
}

impl BearerChallenge {
    /// What the caller should do next.
    pub fn hint(&self) -> &'static str {
        match self.error {
            Some(ErrorCode::InvalidToken) => {
                "the access token is invalid, expired or revoked: refresh it (or log in again), then retry"
            }
            Some(ErrorCode::InsufficientScope) => {
                "the access token lacks a scope this call needs: log in again asking for it (the user may refuse it)"
            }
            Some(ErrorCode::InvalidRequest) => {
                "the request is malformed: check how the token is sent"
            }
            _ => "send a valid access token in the Authorization header",
        }
    }
}

/// Finds the `Bearer` challenge in a `WWW-Authenticate` header value and reads its parameters.
///
/// The value may hold several challenges (`Basic realm="x", Bearer error="invalid_token"`); parameter values may
/// be tokens or quoted strings with `\` escapes. Returns `None` when there is no `Bearer` challenge.
///
/// ```
/// use nethealth_oidc_core::ErrorCode;
/// use nethealth_oidc_core::http::HeaderValue;
/// use nethealth_oidc_core::userinfo::parse_www_authenticate_bearer;
///
/// let v = HeaderValue::from_static(r#"Bearer realm="api", error="invalid_token", error_description="expired""#);
/// let c = parse_www_authenticate_bearer(&v).unwrap();
/// assert_eq!(c.error, Some(ErrorCode::InvalidToken));
/// assert_eq!(c.error_description.as_deref(), Some("expired"));
/// ```
pub fn parse_www_authenticate_bearer(value: &HeaderValue) -> Option<BearerChallenge> {
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut lexer = Lexer {
        s: text.as_bytes(),
        i: 0,
    };
    let mut in_bearer = false;
    let mut found: Option<BearerChallenge> = None;
    loop {
        lexer.skip_separators();
        let Some(name) = lexer.token() else {
            // Not a token: skip one byte and go on (robustness against junk).
            if lexer.i >= lexer.s.len() {
                break;
            }
            lexer.i += 1;
            continue;
        };
        lexer.skip_spaces();
        if lexer.peek() == Some(b'=') {
            // `name=value`: a parameter of the current challenge (or token68 padding, which has no value after).
            lexer.i += 1;
            lexer.skip_spaces();
            let value = if lexer.peek() == Some(b'"') {
                lexer.quoted()
            } else {
                lexer.token().unwrap_or_default()
            };
            if in_bearer && let Some(challenge) = found.as_mut() {
                let value = truncate(&value, MAX_PARAM);
                match name.to_ascii_lowercase().as_str() {
                    "realm" => challenge.realm = Some(value),
                    "error" if !value.is_empty() => {
                        challenge.error = Some(ErrorCode::parse(&value))
                    }
                    "error_description" => challenge.error_description = Some(value),
                    "error_uri" => challenge.error_uri = Some(value),
                    "scope" => challenge.scope = Some(Scopes::parse(&value)),
                    _ => {}
                }
            }
        } else {
            // A new auth scheme starts.
            if found.is_some() && in_bearer {
                break;
            }
            in_bearer = name.eq_ignore_ascii_case("bearer");
            if in_bearer {
                found = Some(BearerChallenge::default());
            }
        }
    }
    found
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// An RFC 9110 `token` (also accepting token68 characters `/` and `+`).
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c);
            if !ok {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted string starting at `"`; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.i += 1;
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Why a userinfo request could not be built or its answer was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserinfoError {
    /// The access token holds bytes that cannot go in a header.
    #[error(
        "the access token holds characters that cannot be sent in an Authorization header: it is corrupt; log in again"
    )]
    UnsendableToken,
    /// The endpoint refused the access token with a `Bearer` challenge.
    #[error(
        "the userinfo endpoint refused the access token (HTTP {status}{}): {}",
        .challenge.error.as_ref().map(|e| format!(", {e}")).unwrap_or_default(),
        .challenge.hint()
    )]
    Bearer {
        /// The HTTP status (401 or 403).
        status: u16,
        /// The challenge (boxed: it is large and rare).
        challenge: Box<BearerChallenge>,
    },
    /// The answer is a signed or encrypted JWT, which this client does not accept.
    #[error(
        "the userinfo endpoint answered with a JWT (application/jwt), which this client does not support: register \
         the client without userinfo_signed_response_alg / userinfo_encrypted_response_alg"
    )]
    JwtNotSupported,
    /// The answer's `sub` is not the ID token's.
    #[error(
        "the userinfo answer is about another user (its sub differs from the ID token's): it was discarded; log in \
         again"
    )]
    SubjectMismatch,
    /// Any other failure of the response.
    #[error(transparent)]
    Response(#[from] ResponseError),
}

/// Builds the userinfo `GET`, with the access token as `Authorization: Bearer` (marked sensitive).
pub fn userinfo_request(
    endpoint: &Url,
    access_token: &AccessToken,
) -> Result<Request<Vec<u8>>, UserinfoError> {
    let auth =
        wire::bearer(access_token.expose_secret()).map_err(|_| UserinfoError::UnsendableToken)?;
    let mut request = wire::get_json(endpoint);
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, auth);
    Ok(request)
}

/// Parses the userinfo answer and checks that its `sub` equals `expected_sub` (the ID token's).
pub fn parse_userinfo(
    response: &Response<Vec<u8>>,
    expected_sub: &str,
) -> Result<UserInfo, UserinfoError> {
    let status = response.status();
    if matches!(status.as_u16(), 400 | 401 | 403)
        && let Some(challenge) = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .find_map(parse_www_authenticate_bearer)
    {
        return Err(UserinfoError::Bearer {
            status: status.as_u16(),
            challenge: Box::new(challenge),
        });
    }
    wire::check_status(Endpoint::Userinfo, response)?;
    if let Some(ct) = response.headers().get(CONTENT_TYPE) {
        let ct = String::from_utf8_lossy(ct.as_bytes()).to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime == "application/jwt" {
            return Err(UserinfoError::JwtNotSupported);
        }
    }
    let info: UserInfo = wire::parse_json(Endpoint::Userinfo, response)?;
    if !crate::secret::ct_eq_str(&info.sub, expected_sub) {
        return Err(UserinfoError::SubjectMismatch);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn bearer_challenges() {
        let c = parse_www_authenticate_bearer(&hv(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        ))
        .unwrap();
        assert_eq!(c.realm.as_deref(), Some("example"));
        assert_eq!(c.error, Some(ErrorCode::InvalidToken));
        assert_eq!(
            c.error_description.as_deref(),
            Some("The access token expired")
        );

        let c = parse_www_authenticate_bearer(&hv(
            r#"Basic realm="x", Bearer error=insufficient_scope, scope="openid profile", Other a=b"#,
        ))
        .unwrap();
        assert_eq!(c.error, Some(ErrorCode::InsufficientScope));
        assert_eq!(c.realm, None);
        assert!(c.scope.unwrap().contains("profile"));

        let c = parse_www_authenticate_bearer(&hv(r#"bearer error_description="say \"hi\", ok""#))
            .unwrap();
        assert_eq!(c.error_description.as_deref(), Some(r#"say "hi", ok"#));
        assert_eq!(c.error, None);

        assert_eq!(
            parse_www_authenticate_bearer(&hv("Bearer")),
            Some(BearerChallenge::default())
        );
        assert_eq!(
            parse_www_authenticate_bearer(&hv(r#"Basic realm="x""#)),
            None
        );
        assert_eq!(parse_www_authenticate_bearer(&hv("")), None);
        assert_eq!(parse_www_authenticate_bearer(&hv("Negotiate abc==")), None);
        // Junk never panics.
        for junk in [
            r#"Bearer error=""#,
            "Bearer =,=,",
            r#"Bearer error="unterminated"#,
            ",,,",
            "Bearer error=\"a\\",
        ] {
            let _ = parse_www_authenticate_bearer(&hv(junk));
        }
        let c = parse_www_authenticate_bearer(
            &HeaderValue::from_bytes(b"Bearer error=\"\xff\"").unwrap(),
        )
        .unwrap();
        assert!(c.error.is_some());
    }

    #[test]
    fn request_has_sensitive_bearer() {
        let url = Url::parse("https://accounts.example.com/connect/userinfo").unwrap();
        let r = userinfo_request(&url, &AccessToken::new("at-123")).unwrap();
        let auth = &r.headers()[http::header::AUTHORIZATION];
        assert_eq!(auth, "Bearer at-123");
        assert!(auth.is_sensitive());
        assert!(!format!("{r:?}").contains("at-123"));
        assert_eq!(
            userinfo_request(&url, &AccessToken::new("a\nb")).unwrap_err(),
            UserinfoError::UnsendableToken
        );
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Vec<u8>> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(body.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn parses_identityserver3_userinfo() {
        let r = resp(
            200,
            &[("content-type", "application/json; charset=utf-8")],
            r#"{"sub":"818727","email":"a@example.com","email_verified":"true","role":["admin"]}"#,
        );
        let info = parse_userinfo(&r, "818727").unwrap();
        assert_eq!(info.email_verified, Some(true));
        assert_eq!(info.claim("role"), Some(&serde_json::json!(["admin"])));
    }

    #[test]
    fn bad_answers() {
        let ok = r#"{"sub":"818727"}"#;
        assert_eq!(
            parse_userinfo(&resp(200, &[], ok), "other").unwrap_err(),
            UserinfoError::SubjectMismatch
        );
        assert_eq!(
            parse_userinfo(
                &resp(200, &[("content-type", "application/jwt")], "a.b.c"),
                "x"
            )
            .unwrap_err(),
            UserinfoError::JwtNotSupported
        );
        let e = parse_userinfo(
            &resp(
                401,
                &[(
                    "www-authenticate",
                    r#"Bearer error="invalid_token", error_description="expired""#,
                )],
                "",
            ),
            "818727",
        )
        .unwrap_err();
        match &e {
            UserinfoError::Bearer {
                status: 401,
                challenge,
            } => {
                assert_eq!(challenge.error, Some(ErrorCode::InvalidToken))
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("refresh it"));
        assert!(matches!(
            parse_userinfo(&resp(401, &[], ""), "x").unwrap_err(),
            UserinfoError::Response(ResponseError::Status { status: 401, .. })
        ));
        assert!(matches!(
            parse_userinfo(&resp(200, &[], r#"{"name":"no sub"}"#), "x").unwrap_err(),
            UserinfoError::Response(ResponseError::Malformed { .. })
        ));
        assert!(matches!(
            parse_userinfo(
                &resp(302, &[("location", "https://evil.example/")], ""),
                "x"
            )
            .unwrap_err(),
            UserinfoError::Response(ResponseError::Redirect { .. })
        ));
    }
}
