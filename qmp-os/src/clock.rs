//! The engine's clock on top of `std::time`, and seeds.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant, SystemTime};

use qmp_core::Instant;

/// Converts between the engine's [`Instant`] (microseconds since the
/// connection was made) and `std::time::Instant`.
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    origin: StdInstant,
}

impl StdClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        StdClock {
            origin: StdInstant::now(),
        }
    }

    /// The engine's time now.
    pub fn now(&self) -> Instant {
        self.from_std(StdInstant::now())
    }

    /// The engine's time at `at` (the origin when `at` is before it).
    pub fn from_std(&self, at: StdInstant) -> Instant {
        let micros = at.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The std time of `at`, or `None` when it is too far away to
    /// represent (a deadline that means "never").
    pub fn to_std(&self, at: Instant) -> Option<StdInstant> {
        self.origin
            .checked_add(Duration::from_micros(at.as_micros()))
    }
}

impl Default for StdClock {
    fn default() -> Self {
        StdClock::new()
    }
}

/// `now + timeout`, or `None` when that is too far away to represent: a
/// huge timeout such as `Duration::MAX` means no limit, never a panic.
pub fn deadline_after(timeout: Duration) -> Option<StdInstant> {
    StdInstant::now().checked_add(timeout)
}

/// A seed that differs between connections, processes and runs, for the
/// guest agent's sync ids: an answer meant for an earlier client is then
/// never taken for ours.
pub fn seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(since_epoch.as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_overflows() {
        let clock = StdClock::new();
        let later = clock.origin + Duration::from_millis(5);
        let t = clock.from_std(later);
        assert_eq!(t.as_micros(), 5000);
        assert_eq!(clock.to_std(t), Some(later));
        // Before the origin: the origin, not a wrap-around.
        let earlier = clock.origin.checked_sub(Duration::from_secs(1));
        if let Some(earlier) = earlier {
            assert_eq!(clock.from_std(earlier), Instant::ZERO);
        }
        // A deadline that means "never" has no std time, and no panic.
        let never = Instant::ZERO + Duration::MAX;
        let _ = clock.to_std(never);
        assert!(deadline_after(Duration::MAX).is_none());
        assert_ne!(seed(), seed());
    }
}
