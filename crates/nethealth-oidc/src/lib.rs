//! nethealth-oidc: the facade (being written). For now it re-exports the sans-IO core.

pub use core;
