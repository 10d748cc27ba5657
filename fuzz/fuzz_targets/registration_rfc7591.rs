//! Fuzz target `registration_rfc7591`: see [`nethealth_oidc_fuzz::registration_rfc7591`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::registration_rfc7591(data));
