//! Fuzz target `userinfo`: see [`nethealth_oidc_fuzz::userinfo`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nethealth_oidc_fuzz::userinfo(data));
