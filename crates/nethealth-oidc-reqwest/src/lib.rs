//! Drives `nethealth-oidc-core` over reqwest (being written).
