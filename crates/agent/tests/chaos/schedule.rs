//! The seeded schedule: a small deterministic RNG (SplitMix64) and the faults it picks from.

use std::time::Duration;

/// SplitMix64: tiny, seedable, good enough to pick faults and pauses reproducibly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// Which link a link fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Agent,
    Desktop,
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// SIGKILL the relay, start it again on the same port and database.
    KillRelay,
    /// SIGKILL the agent, start a new process on the same state dir (it re-keys).
    KillAgent,
    /// Kill the desktop core abruptly (its runtime torn down mid-await), start it again.
    KillDesktop,
    /// Close a link cleanly.
    Drop(Side),
    /// Freeze a link for a while (sometimes past the heartbeat, sometimes not).
    Stall(Side),
    /// One direction of a link silently swallowed, sockets open.
    HalfOpen(Side),
    /// Reset a link in the middle of a frame.
    Reset(Side),
}

impl Fault {
    pub fn pick(rng: &mut Rng) -> Fault {
        let side = if rng.range(0, 1) == 0 {
            Side::Agent
        } else {
            Side::Desktop
        };
        match rng.range(0, 6) {
            0 => Fault::KillRelay,
            1 => Fault::KillAgent,
            2 => Fault::KillDesktop,
            3 => Fault::Drop(side),
            4 => Fault::Stall(side),
            5 => Fault::HalfOpen(side),
            _ => Fault::Reset(side),
        }
    }
}
