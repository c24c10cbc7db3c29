//! Reconnect delays for both ends' relay connections: by default 1 s doubling to 30 s, with
//! ±20 % jitter, reset after a success. Pure: the caller passes the random number
//! ([`unit_random`] in production), so the policy is testable without sleeping.

use std::time::Duration;

/// First delay.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Consecutive failures and the delay they earn.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    base: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BACKOFF_BASE, BACKOFF_MAX)
    }
}

/// A number uniform in `[0, 1)` from the OS random source (0.5 if it fails).
#[must_use]
pub fn unit_random() -> f64 {
    let mut b = [0u8; 4];
    match clawtray_proto::secret::fill_random(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

impl Backoff {
    /// Delays from `base` doubling to `max`.
    #[must_use]
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            failures: 0,
            base,
            max,
        }
    }

    /// Record a failure; returns how long to wait. `unit_random` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, unit_random: f64) -> Duration {
        let exp = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let raw = self.base.as_secs_f64() * f64::from(1u32 << exp);
        let capped = raw.min(self.max.as_secs_f64());
        let jitter = 0.8 + 0.4 * unit_random.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped * jitter).min(self.max.as_secs_f64()))
    }

    /// A connection succeeded.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::default();
        let mids: Vec<u64> = (0..8)
            .map(|_| b.next_delay(0.5).as_millis() as u64)
            .collect();
        assert_eq!(
            mids,
            vec![1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(800));
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.999_999).as_millis(), 1199);
        b.reset();
        assert_eq!(b.failures(), 0);
        for _ in 0..100 {
            assert!(b.next_delay(1.0) <= BACKOFF_MAX);
        }
        let mut slow = Backoff::new(Duration::from_secs(60), Duration::from_secs(3600));
        let mids: Vec<u64> = (0..8).map(|_| slow.next_delay(0.5).as_secs()).collect();
        assert_eq!(mids, vec![60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert!((0.0..1.0).contains(&unit_random()));
    }
}
