//! Reconnect delays: 1 s doubling to 30 s, with ±20 % jitter, reset after a success. Pure: the
//! caller passes the random number, so the policy is testable without sleeping.

use std::time::Duration;

/// First delay.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Consecutive failures and the delay they earn.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Record a failure; returns how long to wait. `unit_random` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, unit_random: f64) -> Duration {
        let exp = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let raw = BACKOFF_BASE.as_secs_f64() * f64::from(1u32 << exp);
        let capped = raw.min(BACKOFF_MAX.as_secs_f64());
        let jitter = 0.8 + 0.4 * unit_random.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped * jitter).min(BACKOFF_MAX.as_secs_f64()))
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
    }
}
