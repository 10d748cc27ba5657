//! Fuzz target `token_response`: see [`nethealth_oidc_fuzz::token_response`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::token_response(data));
