//! Fuzz target `jwks`: see [`nethealth_oidc_fuzz::jwks`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::jwks(data));
