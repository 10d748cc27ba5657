//! Fuzz target `store_envelope`: see [`nethealth_oidc_fuzz::store_envelope`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::store_envelope(data));
