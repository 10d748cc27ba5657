//! Fuzz target `callback`: see [`nethealth_oidc_fuzz::callback`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::callback(data));
