//! Fuzz target `discovery`: see [`nethealth_oidc_fuzz::discovery`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::discovery(data));
