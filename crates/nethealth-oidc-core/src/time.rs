//! Wall-clock time as the core sees it: always passed in, never read.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a driver gets "now" from. The core never calls it; the transports do, once per operation, and pass the
/// value in. Tests give a [`ManualClock`] to drive expiry without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current Unix time.
    fn now(&self) -> UnixTime;
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: UnixTime) -> Self {
        ManualClock(AtomicU64::new(start.as_secs()))
    }

    /// Sets the time.
    pub fn set(&self, now: UnixTime) {
        self.0.store(now.as_secs(), Ordering::SeqCst);
    }

    /// Moves the time forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let secs = d.as_secs();
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(secs))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

/// Seconds since the Unix epoch, as told by the caller.
///
/// ID tokens carry `exp`/`iat` as Unix time, so the core's notion of "now" is Unix time too (as in rustls'
/// `UnixTime`). Arithmetic saturates: a huge `expires_in` from the network can never overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The epoch itself.
    pub const EPOCH: UnixTime = UnixTime(0);
    /// The largest representable time; used for "never".
    pub const MAX: UnixTime = UnixTime(u64::MAX);

    /// A time from whole seconds since the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        UnixTime(secs)
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`UnixTime::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        UnixTime(self.0.saturating_add(d.as_secs()))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        UnixTime(self.0.saturating_sub(d.as_secs()))
    }

    /// How long from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: UnixTime) -> Duration {
        Duration::from_secs(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_when_told() {
        let c = ManualClock::new(UnixTime::from_secs(10));
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), UnixTime::from_secs(15));
        c.set(UnixTime::MAX);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), UnixTime::MAX);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = UnixTime::from_secs(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(u64::MAX)),
            UnixTime::MAX
        );
        assert_eq!(
            UnixTime::from_secs(3).saturating_sub(Duration::from_secs(10)),
            UnixTime::EPOCH
        );
        assert_eq!(
            UnixTime::from_secs(3).saturating_duration_since(UnixTime::from_secs(10)),
            Duration::ZERO
        );
    }
}
