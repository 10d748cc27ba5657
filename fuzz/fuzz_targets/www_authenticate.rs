//! Fuzz target `www_authenticate`: see [`nethealth_oidc_fuzz::www_authenticate`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::www_authenticate(data));
