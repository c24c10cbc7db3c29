//! Rate limits: a token bucket (frames/s and bytes/s per connection) and a per-address limiter
//! for pairing attempts. Pure: callers pass the current time in, so tests need no sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket refilled continuously at `rate` per second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    #[must_use]
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take `cost` tokens if available.
    pub fn try_take(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Counts pairing attempts per address in fixed one-minute windows.
#[derive(Debug)]
pub struct PairingLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses tracked before stale windows are swept.
const SWEEP_AT: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

impl PairingLimiter {
    /// Allow `per_minute` attempts per address.
    #[must_use]
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Record an attempt from `ip`; false when over the limit.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(mut w) = self.windows.lock() else {
            return false;
        };
        if w.len() >= SWEEP_AT {
            w.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        let entry = w.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5.0, t0);
        for _ in 0..5 {
            assert!(b.try_take(1.0, t0));
        }
        assert!(!b.try_take(1.0, t0));
        assert!(b.try_take(1.0, t0 + Duration::from_millis(100)));
        assert!(!b.try_take(1.0, t0 + Duration::from_millis(100)));
        // never above burst
        assert!(b.try_take(5.0, t0 + Duration::from_secs(100)));
        assert!(!b.try_take(1.0, t0 + Duration::from_secs(100)));
    }

    #[test]
    fn pairing_limiter_counts_per_address_per_minute() {
        let t0 = Instant::now();
        let l = PairingLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.allow(a, t0));
        assert!(l.allow(a, t0));
        assert!(!l.allow(a, t0));
        assert!(l.allow(b, t0));
        assert!(l.allow(a, t0 + WINDOW));
    }
}
