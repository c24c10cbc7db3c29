//! Rate limits: a token bucket (frames/s and bytes/s per connection), a per-address limiter for
//! pairing attempts and failed resumes, and a per-address connection count. Pure: callers pass the current time in, so tests need no sleeping.

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

/// The address a limit counts against: an IPv4 address as it is (an IPv4-mapped IPv6 address as
/// its IPv4 one), an IPv6 address by its /64 — one host usually holds a whole /64, so counting
/// single IPv6 addresses would let it rotate past every limit.
#[must_use]
pub fn ip_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Open connections per address bucket ([`ip_bucket`]), capped.
#[derive(Debug)]
pub struct ConnectionsPerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct IpSlot<'a> {
    owner: &'a ConnectionsPerIp,
    bucket: IpAddr,
}

impl ConnectionsPerIp {
    /// At most `max` open connections per bucket (0: no cap).
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Count a connection from `ip`; `None` when its bucket is full.
    pub fn acquire(&self, ip: IpAddr) -> Option<IpSlot<'_>> {
        let bucket = ip_bucket(ip);
        let mut open = self.open.lock().ok()?;
        let n = open.entry(bucket).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            owner: self,
            bucket,
        })
    }

    /// Connections counted for `ip`'s bucket now.
    #[must_use]
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open
            .lock()
            .map_or(0, |o| o.get(&ip_bucket(ip)).copied().unwrap_or(0))
    }
}

impl Drop for IpSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.owner.open.lock() {
            if let Some(n) = open.get_mut(&self.bucket) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.bucket);
                }
            }
        }
    }
}

/// Counts attempts (pairing attempts, failed resumes) per address bucket ([`ip_bucket`]) in fixed
/// one-minute windows.
#[derive(Debug)]
pub struct PerAddressLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses tracked before stale windows are swept.
const SWEEP_AT: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

impl PerAddressLimiter {
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
        let entry = w.entry(ip_bucket(ip)).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Whether `ip` has used up this minute's attempts (without counting one).
    #[must_use]
    pub fn is_over(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(w) = self.windows.lock() else {
            return true;
        };
        w.get(&ip_bucket(ip)).is_some_and(|(start, n)| {
            now.saturating_duration_since(*start) < WINDOW && *n >= self.per_minute
        })
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
        let l = PerAddressLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.allow(a, t0));
        assert!(l.allow(a, t0));
        assert!(!l.allow(a, t0));
        assert!(l.allow(b, t0));
        assert!(l.allow(a, t0 + WINDOW));
        // one IPv6 host holds a /64: rotating addresses inside it does not reset the count
        let l = PerAddressLimiter::new(2);
        assert!(l.allow("2001:db8:1:2::1".parse().unwrap(), t0));
        assert!(l.allow("2001:db8:1:2:ffff::9".parse().unwrap(), t0));
        assert!(!l.allow("2001:db8:1:2:abcd:1:2:3".parse().unwrap(), t0));
        assert!(l.allow("2001:db8:1:3::1".parse().unwrap(), t0));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let b = |s: &str| ip_bucket(s.parse().unwrap());
        assert_eq!(b("2001:db8:1:2:3:4:5:6"), b("2001:db8:1:2::"));
        assert_ne!(b("2001:db8:1:2::"), b("2001:db8:1:3::"));
        assert_eq!(b("::ffff:192.0.2.7"), b("192.0.2.7"));
        assert_ne!(b("192.0.2.7"), b("192.0.2.8"));
    }

    #[test]
    fn connections_per_ip_are_capped_and_given_back() {
        let c = ConnectionsPerIp::new(2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let a2: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let s1 = c.acquire(a).unwrap();
        let _s2 = c.acquire(a2).unwrap();
        assert!(c.acquire(a).is_none(), "the /64 is full");
        assert!(c.acquire(other).is_some());
        drop(s1);
        assert_eq!(c.open(a), 1);
        assert!(c.acquire(a).is_some());
        let unlimited = ConnectionsPerIp::new(0);
        let held: Vec<_> = (0..1000).filter_map(|_| unlimited.acquire(a)).collect();
        assert_eq!(held.len(), 1000);
    }
}
