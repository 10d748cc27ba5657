//! # nethealth-oidc-core
//!
//! The sans-IO protocol core of nethealth-oidc, an OpenID Connect client for the Net Health API.
//!
//! **What this crate is not.** It does no networking, never touches the disk, never reads the clock and never draws
//! randomness on its own. Every request is built as an [`http::Request<Vec<u8>>`] value, every response is handed
//! back as an [`http::Response<Vec<u8>>`], the current time comes in as a [`UnixTime`] argument, and randomness comes
//! in as an `&mut impl rand::CryptoRng` argument. Any HTTP client, async or blocking, can drive it:
//! `nethealth-oidc-reqwest` and `nethealth-oidc-ureq` are two such drivers.
//!
//! Each endpoint module offers public pairs: a `*_request(...)` builder and a `parse_*(response)` parser.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`discovery`] | `/.well-known/openid-configuration` |
//! | [`jwks`] | the provider's signing keys |
//! | [`registration`] | Net Health `/api/Clients/Register`, RFC 7591 and RFC 7592 |
//! | [`authorize`] | starting a login (PKCE, `state`, `nonce`) and checking its callback |
//! | [`token`] | the token endpoint |
//! | [`client_auth`] | client authentication: secrets, `private_key_jwt`, `client_secret_jwt` |
//! | [`device`] | the device flow (RFC 8628) for machines without a browser |
//! | [`scope`] | granted and refused scopes |
//! | [`id_token`] | ID-token validation |
//! | [`userinfo`], [`revocation`], [`introspection`], [`end_session`] | the other endpoints |
//! | [`lifecycle`] | the token lifecycle as a state machine |
//! | [`resource`] | one API call with the session's token: the retry after `invalid_token`, DPoP proofs and nonces |
//! | [`smart`] | SMART on FHIR: `/.well-known/smart-configuration`, the launch context |
//!
//! Errors from the provider are [`ResponseError`]s that keep apart "the provider said no", "the provider answered
//! something unexpected" and "the body did not parse". Secrets are newtypes from [`secret`] whose `Debug` is
//! redacted.

pub mod authorize;
pub mod client;
pub mod client_auth;
pub mod context;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod end_session;
pub mod error;
pub mod exchange;
pub mod id_token;
pub mod introspection;
pub mod jwks;
pub mod lifecycle;
pub mod outcome;
pub mod par;
pub mod registration;
pub mod renewal;
pub mod resource;
pub mod retry;
pub mod revocation;
pub mod scope;
pub mod secret;
pub mod smart;
pub mod store;
pub mod time;
pub mod token;
pub mod userinfo;
mod wire;

pub use client::{ClientConfig, TokenAuthMethod};
pub use error::{
    BodySnippet, Endpoint, ErrorCode, OAuthError, ResponseError, TransportError, json_reason,
};
pub use outcome::{Error, LoginRequiredReason, UsageError};
pub use scope::{GrantedScopes, ScopeSource, Scopes};
pub use time::{Clock, ManualClock, UnixTime};
pub use wire::{UrlError, is_loopback, parse_endpoint, require_secure};

pub use http;
pub use url::Url;
