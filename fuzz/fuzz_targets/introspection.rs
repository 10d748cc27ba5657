//! Fuzz target `introspection`: see [`nethealth_oidc_fuzz::introspection`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::introspection(data));
