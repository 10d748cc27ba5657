//! Drives `nethealth-oidc-core` over ureq (being written).
