#![doc = include_str!("../../../README.md")]
//!
//! # Crate layout
//!
//! - The async API (feature `async`, on by default) is at the root: [`Provider`], [`Client`], [`Session`],
//!   [`AuthorizedClient`], over [`HttpClient`] (reqwest on tokio).
//! - The blocking API (feature `blocking`, on by default) has the same names under [`blocking`], over ureq, with no
//!   async runtime.
//! - [`core`] is the sans-IO protocol core, for libraries that bring their own HTTP client.
//! - Token storage: [`TokenStore`], [`MemoryStore`], [`FileStore`].

pub use core;
pub use core::authorize::{AuthorizationRequest, PendingLogin, Pkce, Prompt};
pub use core::context::{ClientOptions, Grant};
pub use core::lifecycle::{LifecycleConfig, TokenSet};
pub use core::registration::{
    ClientMetadata, FieldNames, NetHealthRegistration, RegisteredClient, RegistrationBase,
};
pub use core::retry::{RetryPolicy, TransportConfig};
pub use core::secret::{AccessToken, ClientSecret, RefreshToken};
pub use core::store::{SessionOptions, TokenHook};
pub use core::{
    ClientConfig, Error, GrantedScopes, ManualClock, Scopes, TokenAuthMethod, UnixTime,
};
pub use nethealth_oidc_store::{FileStore, MemoryStore, StoreError, SystemClock, TokenStore};

#[cfg(feature = "async")]
pub use nethealth_oidc_reqwest::{AuthorizedClient, Client, HttpClient, Provider, Session};

/// The blocking API: the same names as the crate root, over ureq, with no async runtime.
#[cfg(feature = "blocking")]
pub mod blocking {
    pub use nethealth_oidc_ureq::{AuthorizedClient, Client, HttpClient, Provider, Session};
}
