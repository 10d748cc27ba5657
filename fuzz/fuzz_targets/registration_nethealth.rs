//! Fuzz target `registration_nethealth`: see [`nethealth_oidc_fuzz::registration_nethealth`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::registration_nethealth(data));
