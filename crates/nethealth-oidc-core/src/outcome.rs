//! [`Error`]: every way a step of the protocol can fail, in one enum that both transports return.
//!
//! Each variant wraps the typed error of the module that found the problem, so a caller can match as finely as it
//! wants; the helper methods answer the questions applications ask most: did the user refuse
//! ([`Error::is_consent_denied`]), must the user log in again ([`Error::is_login_required`]), is it worth trying
//! again later ([`Error::is_transient`]).

use crate::authorize::{AuthorizeRequestError, CallbackError};
use crate::discovery::DiscoveryError;
use crate::error::{ErrorCode, OAuthError, ResponseError, TransportError};
use crate::id_token::IdTokenError;
use crate::registration::RegistrationError;
use crate::token::TokenRequestError;
use crate::userinfo::UserinfoError;

/// Every way a step of the protocol can fail.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request could not be carried (connect, timeout, body limit).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The provider answered with an error or something unusable.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// Registration failed.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    /// The authorization request could not be built.
    #[error(transparent)]
    AuthorizeRequest(#[from] AuthorizeRequestError),
    /// The login callback was refused (state, `iss`, consent denied, ...).
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// A token request could not be built.
    #[error(transparent)]
    TokenRequest(#[from] TokenRequestError),
    /// The ID token was refused.
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
    /// The userinfo answer was refused.
    #[error(transparent)]
    Userinfo(#[from] UserinfoError),
    /// The provider does not offer what was asked for.
    #[error("the provider has no {0}; it cannot be used for this")]
    Unsupported(&'static str),
    /// The session can no longer get tokens: the user must log in again. The text says why.
    #[error("{0}")]
    LoginRequired(String),
    /// A token renewal could not finish (it was interrupted, or another one is running); trying again may work.
    #[error("the token renewal did not finish ({0}); try again")]
    Renewal(String),
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Error {
    /// The provider's OAuth error, wherever it came from.
    pub fn oauth_error(&self) -> Option<&OAuthError> {
        match self {
            Error::Response(e) => e.oauth_error(),
            Error::Discovery(DiscoveryError::Response(e)) => e.oauth_error(),
            Error::Registration(RegistrationError::Response(e)) => e.oauth_error(),
            Error::Callback(CallbackError::InteractionRequired(e) | CallbackError::Provider(e)) => {
                Some(e)
            }
            _ => None,
        }
    }

    /// Whether the user refused consent (`access_denied` on the callback).
    pub fn is_consent_denied(&self) -> bool {
        matches!(self, Error::Callback(CallbackError::AccessDenied { .. }))
    }

    /// Whether the provider answered `invalid_grant` (a code or refresh token rejected).
    pub fn is_invalid_grant(&self) -> bool {
        self.oauth_error()
            .is_some_and(|e| e.code == ErrorCode::InvalidGrant)
    }

    /// Whether the user must log in again (a refresh token rejected or expired, or a login that needs interaction).
    pub fn is_login_required(&self) -> bool {
        match self {
            Error::LoginRequired(_) => true,
            Error::Callback(CallbackError::InteractionRequired(_)) => true,
            _ => self
                .oauth_error()
                .is_some_and(|e| e.code == ErrorCode::InvalidGrant),
        }
    }

    /// Whether the same request may succeed later (connect failures, timeouts, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(e) => !matches!(e, TransportError::BodyTooLarge { .. }),
            Error::Response(e) => e.is_transient(),
            Error::Discovery(DiscoveryError::Response(e)) => e.is_transient(),
            Error::Renewal(_) => true,
            _ => false,
        }
    }

    /// Whether the error says the JWKS should be fetched again (an unknown key id); see
    /// [`KeyCache::handle_check_failure`](crate::jwks::KeyCache::handle_check_failure).
    pub(crate) fn needs_jwks_refresh(&self) -> bool {
        matches!(self, Error::IdToken(e) if e.needs_jwks_refresh())
    }
}
