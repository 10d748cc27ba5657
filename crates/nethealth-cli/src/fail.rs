//! [`Failure`]: every way a command fails, each with the exit code scripts can rely on.

use nethealth_oidc::Error;
use nethealth_oidc::core::TransportError;
use nethealth_oidc::core::discovery::DiscoveryError;

/// Exit code: success.
pub(crate) const OK: u8 = 0;
/// Exit code: something else went wrong (the disk, the keyring).
pub(crate) const OTHER: u8 = 1;
/// Exit code: bad usage (unknown profile, bad argument, corrupt configuration).
pub(crate) const USAGE: u8 = 2;
/// Exit code: nobody is logged in, or the login ran out: run `nethealth login`.
pub(crate) const LOGIN_REQUIRED: u8 = 3;
/// Exit code: the server said no (refused consent, an error status, a missing scope).
pub(crate) const REFUSED: u8 = 4;
/// Exit code: the network failed (cannot connect, timeout, the browser never came back).
pub(crate) const NETWORK: u8 = 5;
/// Exit code: stopped with Ctrl-C.
pub(crate) const INTERRUPTED: u8 = 130;

/// Why a command failed. The message says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Failure {
    /// Bad usage or configuration.
    #[error("{0}")]
    Usage(String),
    /// A login is needed.
    #[error("{0}")]
    LoginRequired(String),
    /// The server refused.
    #[error("{0}")]
    Refused(String),
    /// The network (or the browser's way back) failed.
    #[error("{0}")]
    Network(String),
    /// The user pressed Ctrl-C.
    #[error("stopped (Ctrl-C); nothing was changed")]
    Interrupted,
    /// Anything else (disk, keyring).
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The exit code.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => USAGE,
            Failure::LoginRequired(_) => LOGIN_REQUIRED,
            Failure::Refused(_) => REFUSED,
            Failure::Network(_) => NETWORK,
            Failure::Interrupted => INTERRUPTED,
            Failure::Other(_) => OTHER,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let text = e.to_string();
        if e.is_login_required() {
            return Failure::LoginRequired(format!("{text}; run `nethealth login`"));
        }
        match &e {
            Error::Transport(_) | Error::Renewal(_) => Failure::Network(text),
            Error::Discovery(
                DiscoveryError::InvalidIssuer(_) | DiscoveryError::IssuerWithQuery(_),
            ) => Failure::Usage(text),
            Error::Store(_) => Failure::Other(text),
            _ => Failure::Refused(text),
        }
    }
}

impl From<TransportError> for Failure {
    fn from(e: TransportError) -> Self {
        Failure::Network(e.to_string())
    }
}

impl From<nethealth_oidc::StoreError> for Failure {
    fn from(e: nethealth_oidc::StoreError) -> Self {
        Failure::Other(e.to_string())
    }
}
