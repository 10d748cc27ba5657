//! Secret newtypes.
//!
//! Anything that grants access is wrapped: its `Debug` prints `Name([redacted])`, it has no `Display`,
//! its memory is zeroized on drop (through [`secrecy`]), and two values are compared in constant time with
//! [`ct_eq`](AccessToken::ct_eq). No secret type derives `PartialEq`: compare them with `ct_eq` on purpose.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// Compares two strings in time that depends only on their lengths.
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// `Debug` is redacted, the value is zeroized on drop, and [`ct_eq`](Self::ct_eq) compares in constant time.
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret itself. Never log it or put it in an error message.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }

            /// Compares with another value in constant time.
            pub fn ct_eq(&self, other: &Self) -> bool {
                ct_eq_str(self.expose_secret(), other.expose_secret())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.expose_secret())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }
    };
}

secret_type!(
    /// The client secret issued at registration.
    ClientSecret
);
secret_type!(
    /// An authorization code from the login callback.
    AuthorizationCode
);
secret_type!(
    /// A PKCE code verifier (RFC 7636).
    CodeVerifier
);
secret_type!(
    /// An OAuth 2.0 access token, sent as `Authorization: Bearer ...`.
    AccessToken
);
impl AccessToken {
    /// The `Authorization: Bearer ...` header value for this token, marked sensitive so that `http`'s `Debug`
    /// hides it. A token holding bytes a header cannot carry (which no well-behaved provider sends) gives an empty
    /// bearer, which every server refuses with 401 and which leaks nothing.
    pub fn authorization_header(&self) -> http::HeaderValue {
        crate::wire::bearer(self.expose_secret())
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer"))
    }
}

secret_type!(
    /// A refresh token. Store it securely: it outlives the access token.
    RefreshToken
);
secret_type!(
    /// An ID token (a signed JWT) as it came from the provider.
    IdToken
);
secret_type!(
    /// The `state` value of an authorization request, which binds the callback to the request.
    State
);
secret_type!(
    /// The `nonce` of an authorization request, which binds the ID token to the request.
    Nonce
);
secret_type!(
    /// An RFC 8628 device code: whoever holds it can collect the tokens once the user approves.
    DeviceCode
);
secret_type!(
    /// A signed client assertion (RFC 7523): whoever holds it can authenticate as the client until it expires.
    ClientAssertion
);
/// The client's private key for `private_key_jwt`, kept with the other secrets: redacted `Debug`, zeroized on drop.
pub use crate::client_auth::ClientKey;
secret_type!(
    /// An RFC 7591 initial access token or RFC 7592 registration access token.
    RegistrationAccessToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let t = AccessToken::new("very-secret-value");
        assert_eq!(format!("{t:?}"), "AccessToken([redacted])");
        assert!(!format!("{:?}", Some(&t)).contains("very-secret"));
    }

    #[test]
    fn ct_eq_compares_values() {
        assert!(State::new("abc").ct_eq(&State::new("abc")));
        assert!(!State::new("abc").ct_eq(&State::new("abd")));
        assert!(!State::new("abc").ct_eq(&State::new("abcd")));
    }

    #[test]
    fn serde_round_trip_keeps_value() {
        let t = RefreshToken::new("r1");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"r1\"");
        let back: RefreshToken = serde_json::from_str(&json).unwrap();
        assert!(back.ct_eq(&t));
    }
}
