//! Shared helpers for the end-to-end tests: a client clock that moves with the local Accounts site's clock.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use nethealth_oidc::{ManualClock, UnixTime};
use nethealth_oidc_testkit::TestKit;

pub const REDIRECT: &str = "http://127.0.0.1:8080/callback";
pub const ALL: &str = "openid offline_access patients.read patients.write";

/// A manual clock for the client, set to the site's time.
pub fn clock_for(kit: &TestKit) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(UnixTime::from_secs(kit.now())))
}

/// Moves both clocks forward: the site's and the client's.
pub fn advance(kit: &TestKit, clock: &ManualClock, by: Duration) {
    kit.advance_clock(by);
    clock.advance(by);
}

pub fn url(s: &str) -> nethealth_oidc::core::Url {
    s.parse().expect("a valid URL")
}
