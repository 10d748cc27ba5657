//! Fuzz target `id_token`: see [`nethealth_oidc_fuzz::id_token`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::id_token(data));
