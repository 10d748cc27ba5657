#![doc = include_str!("../../../README.md")]
//!
//! # Crate layout
//!
//! - The async API (feature `async`, on by default) is at the root: [`Provider`], [`Client`], [`Session`],
//!   [`AuthorizedClient`], over [`HttpClient`] (reqwest on tokio).
//! - The blocking API (feature `blocking`, on by default) has the same names under [`blocking`], over ureq, with no
//!   async runtime.
//! - [`core`] is the sans-IO protocol core, for libraries that bring their own HTTP client.
//! - Token storage: [`TokenStore`], [`MemoryStore`], [`FileStore`], `KeyringStore` with the `keyring` feature,
//!   `RedisStore` with the `redis` feature.

pub use nethealth_oidc_store::{FileStore, MemoryStore, StoreError, SystemClock, TokenStore};

#[cfg(feature = "keyring")]
pub use nethealth_oidc_store::KeyringStore;
#[cfg(feature = "redis")]
pub use nethealth_oidc_store::{EncryptionKey, RedisOptions, RedisStore};
pub use oidc_core as core;
pub use oidc_core::authorize::{AuthorizationRequest, PendingLogin, Pkce, Prompt};
pub use oidc_core::context::{ClientOptions, Grant};
pub use oidc_core::lifecycle::{LifecycleConfig, TokenSet};
pub use oidc_core::registration::{
    ClientMetadata, FieldNames, NetHealthRegistration, RegisteredClient, RegistrationBase,
};
pub use oidc_core::retry::{RetryPolicy, TransportConfig};
pub use oidc_core::secret::{AccessToken, ClientSecret, RefreshToken};
pub use oidc_core::store::{SessionOptions, TokenHook};
pub use oidc_core::{
    ClientConfig, Error, GrantedScopes, ManualClock, Scopes, TokenAuthMethod, UnixTime,
};

#[cfg(feature = "async")]
pub use nethealth_oidc_reqwest::{AuthorizedClient, Client, HttpClient, Provider, Session};

/// The blocking API: the same names as the crate root, over ureq, with no async runtime.
#[cfg(feature = "blocking")]
pub mod blocking {
    pub use nethealth_oidc_ureq::{AuthorizedClient, Client, HttpClient, Provider, Session};
}
