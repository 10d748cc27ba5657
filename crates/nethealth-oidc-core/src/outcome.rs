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
use crate::store::StoreError;
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
    /// The provider does not offer what was asked for (its metadata has no such endpoint).
    #[error("the provider has no {0}; it cannot be used for this")]
    Unsupported(&'static str),
    /// The call cannot be made as the caller set it up or used it; nothing was sent.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The session can no longer get tokens: the user must log in again. `reason` says why, for a program to
    /// match; `source` is the error that ended the session, when there was one.
    #[error("{reason}: the user must log in again")]
    LoginRequired {
        /// Why.
        reason: LoginRequiredReason,
        /// The error that ended the session (the provider's `invalid_grant`, ...), if any.
        #[source]
        source: Option<Box<Error>>,
    },
    /// A token renewal could not finish (it was interrupted, or another one is running); trying again may work.
    #[error("the token renewal did not finish ({0}); try again")]
    Renewal(String),
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// DPoP (RFC 9449) could not be used: the key, the server's algorithms or the request.
    #[error(transparent)]
    Dpop(#[from] crate::dpop::DpopError),
}

/// A mistake in how the library was set up or called (not the provider's doing).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A login needs a redirect URI and the client has none.
    #[error(
        "no redirect URI is configured for this client: pass one with ClientConfig::with_redirect_uris or \
         ClientOptions::with_redirect_uri (it must be registered at the provider)"
    )]
    NoRedirectUri,
    /// The session holds no user (client-credentials tokens), so there is nobody to ask about.
    #[error(
        "this session has no user (client-credentials sessions have no ID token): ask the userinfo endpoint only \
         with a login session"
    )]
    NoUser,
}

/// Why a session requires a new login; see [`Error::LoginRequired`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginRequiredReason {
    /// The provider rejected the refresh token (`invalid_grant`: expired, revoked or already used there).
    RefreshTokenRejected,
    /// The refresh token's known lifetime is over; no request was sent.
    RefreshTokenExpired,
    /// The access token expired and there is no refresh token (`offline_access` was not granted).
    NoRefreshToken,
    /// The session was revoked or logged out.
    Ended,
    /// The stored tokens belong to another provider.
    OtherProvider,
    /// No renewal request could be built (the client's configuration does not allow one).
    NoRenewalRequest,
}

impl std::fmt::Display for LoginRequiredReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoginRequiredReason::RefreshTokenRejected => {
                "the provider rejected the refresh token (invalid_grant)"
            }
            LoginRequiredReason::RefreshTokenExpired => "the refresh token has expired",
            LoginRequiredReason::NoRefreshToken => {
                "the access token expired and there is no refresh token (ask for offline_access to get one)"
            }
            LoginRequiredReason::Ended => "the session was revoked or logged out",
            LoginRequiredReason::OtherProvider => "the stored tokens are from another provider",
            LoginRequiredReason::NoRenewalRequest => "no renewal request can be built for this client",
        })
    }
}

impl Error {
    /// A [`Error::LoginRequired`] for `reason`, caused by `source` if given.
    pub fn login_required(reason: LoginRequiredReason, source: Option<Error>) -> Error {
        Error::LoginRequired {
            reason,
            source: source.map(Box::new),
        }
    }

    /// Why the user must log in again, when this is [`Error::LoginRequired`].
    pub fn login_required_reason(&self) -> Option<LoginRequiredReason> {
        match self {
            Error::LoginRequired { reason, .. } => Some(*reason),
            _ => None,
        }
    }

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
            Error::LoginRequired { .. } => true,
            Error::Callback(CallbackError::InteractionRequired(_)) => true,
            _ => self
                .oauth_error()
                .is_some_and(|e| e.code == ErrorCode::InvalidGrant),
        }
    }

    /// Whether the same request may succeed later (connect failures, timeouts, 5xx, 429, a networked store that is
    /// down, slow, or whose lease was lost or held by another process).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(e) => !matches!(e, TransportError::BodyTooLarge { .. }),
            Error::Store(e) => matches!(
                e,
                StoreError::Unavailable { .. }
                    | StoreError::LeaseLost { .. }
                    | StoreError::LockTimeout { .. }
            ),
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
