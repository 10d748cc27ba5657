#![doc = include_str!("../../../README.md")]
//!
//! # Crate layout
//!
//! - The async API (feature `async`, on by default) is at the root: [`Provider`], [`Client`], [`Session`],
//!   [`AuthorizedClient`], over [`HttpClient`] (reqwest on tokio).
//! - The blocking API (feature `blocking`, on by default) has the same names under [`blocking`], over ureq, with no
//!   async runtime.
//! - [`core`] is the sans-IO protocol core, for libraries that bring their own HTTP client.
//! - Many users (a web service): [`Sessions`] over a [`KeyedTokenStore`] ([`MemoryKeyedStore`], [`KeyedFileStore`],
//!   `KeyringKeyedStore`) or an [`AsyncKeyedTokenStore`], one session per [`SessionKey`].
//! - Token storage: [`TokenStore`], [`MemoryStore`], [`FileStore`], `KeyringStore` with the `keyring` feature,
//!   `RedisStore` with the `redis` feature.

pub use nethealth_oidc_store::{FileStore, MemoryStore, StoreError, SystemClock, TokenStore};
pub use nethealth_oidc_store::{KeyedFileStore, KeyedTokenStore, MemoryKeyedStore, SessionKey};

#[cfg(feature = "redis")]
pub use nethealth_oidc_store::{EncryptionKey, RedisOptions, RedisStore};
#[cfg(feature = "keyring")]
pub use nethealth_oidc_store::{KeyringKeyedStore, KeyringStore};
pub use oidc_core as core;
pub use oidc_core::authorize::{
    AuthorizationRequest, AuthorizationUrl, LoginTemplate, PendingLogin, Pkce, Prompt,
};
pub use oidc_core::context::{ClientOptions, Grant};
pub use oidc_core::introspection::Introspection;
pub use oidc_core::lifecycle::{LifecycleConfig, TokenSet};
pub use oidc_core::registration::{
    ClientMetadata, FieldNames, NetHealthRegistration, RegisteredClient, RegistrationBase,
};
pub use oidc_core::retry::{RetryPolicy, TransportConfig};
pub use oidc_core::secret::{AccessToken, ClientSecret, RefreshToken};
pub use oidc_core::store::{AsyncKeyedTokenStore, AsyncTokenStore, SessionOptions, TokenHook};
pub use oidc_core::{
    ClientConfig, Error, GrantedScopes, LoginRequiredReason, ManualClock, Scopes, TokenAuthMethod,
    UnixTime, UsageError,
};

#[cfg(feature = "async")]
pub use nethealth_oidc_reqwest::{
    AuthorizedClient, BlockingStore, Client, DeviceStep, HttpClient, Provider, Session, Sessions,
    WeakSession,
};

/// The `reqwest` crate the async API is built with. Use it for [`Session::authorized`] and
/// [`HttpClient::from_builder`], so that the application does not add a second copy of a different version (whose
/// `reqwest::Client` would not be the type these functions take).
#[cfg(feature = "async")]
pub use nethealth_oidc_reqwest::reqwest;

/// The blocking API: the same names as the crate root, over ureq, with no async runtime.
#[cfg(feature = "blocking")]
pub mod blocking {
    pub use nethealth_oidc_ureq::{
        AuthorizedClient, Client, DeviceStep, HttpClient, Provider, Session, Sessions, WeakSession,
    };

    /// The `ureq` crate the blocking API is built with. Use it for [`Session::authorized`], so that the
    /// application does not add a second copy of a different version (whose `ureq::Agent` would not be the type
    /// it takes).
    pub use nethealth_oidc_ureq::ureq;
}
