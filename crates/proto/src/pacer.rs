//! Pacing of an end's outgoing frames, so a backlog never trips the relay's flood limits.
//!
//! A new meeting resends everything the peer has not acknowledged; after a long absence that can
//! be thousands of frames (a streamed reply is one message per delta). Sent at once, they exceed
//! the relay's burst (2,000 frames or 8 MiB by default) and the relay closes the connection as
//! flooding — and the next meeting resends the same backlog: a livelock the chaos suite found.
//! Both ends queue their frames and send them through a token bucket well inside the relay's
//! defaults. Normal chat never waits: the burst covers it.

use std::time::{Duration, Instant};

/// Frames sent at once before pacing starts (the relay allows a burst of 2,000).
pub const FRAME_BURST: f64 = 500.0;
/// Sustained frames per second (the relay allows 200).
pub const FRAMES_PER_SEC: f64 = 120.0;
/// Bytes sent at once before pacing starts (the relay allows 8 MiB).
pub const BYTE_BURST: f64 = 4.0 * 1024.0 * 1024.0;
/// Sustained bytes per second (the relay allows 4 MiB/s).
pub const BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

/// A two-dimensional token bucket: frames and bytes.
#[derive(Debug, Clone)]
pub struct Pacer {
    frames: f64,
    bytes: f64,
    at: Instant,
}

impl Pacer {
    /// A full bucket.
    #[must_use]
    pub fn new(now: Instant) -> Self {
        Self {
            frames: FRAME_BURST,
            bytes: BYTE_BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.frames = (self.frames + dt * FRAMES_PER_SEC).min(FRAME_BURST);
        self.bytes = (self.bytes + dt * BYTES_PER_SEC).min(BYTE_BURST);
    }

    /// Take one frame of `len` bytes if the budget allows now; otherwise how long to wait.
    /// A frame larger than the byte burst is let through once the bucket is full.
    pub fn take(&mut self, now: Instant, len: usize) -> Result<(), Duration> {
        self.refill(now);
        let need = (len as f64).min(BYTE_BURST);
        if self.frames >= 1.0 && self.bytes >= need {
            self.frames -= 1.0;
            self.bytes -= need;
            return Ok(());
        }
        let frame_wait = ((1.0 - self.frames).max(0.0)) / FRAMES_PER_SEC;
        let byte_wait = ((need - self.bytes).max(0.0)) / BYTES_PER_SEC;
        // rounded up, so coming back exactly then always finds the budget
        let micros = (frame_wait.max(byte_wait) * 1e6).ceil() + 1.0;
        Err(Duration::from_micros(micros as u64).max(Duration::from_millis(1)))
    }
}

/// Frames waiting to go out, in order, through a [`Pacer`].
#[derive(Debug)]
pub struct Outgoing {
    queue: std::collections::VecDeque<Vec<u8>>,
    pacer: Pacer,
    /// When the head may go, once the budget said wait.
    not_before: Option<Instant>,
}

impl Outgoing {
    /// An empty queue with a full budget.
    #[must_use]
    pub fn new(now: Instant) -> Self {
        Self {
            queue: std::collections::VecDeque::new(),
            pacer: Pacer::new(now),
            not_before: None,
        }
    }

    /// Queue a frame behind the others.
    pub fn push(&mut self, frame: Vec<u8>) {
        self.queue.push_back(frame);
    }

    /// The next frame if it may be sent now.
    pub fn pop_ready(&mut self, now: Instant) -> Option<Vec<u8>> {
        let len = self.queue.front()?.len();
        match self.pacer.take(now, len) {
            Ok(()) => {
                self.not_before = None;
                self.queue.pop_front()
            }
            Err(wait) => {
                self.not_before = Some(now + wait);
                None
            }
        }
    }

    /// When to come back for the next frame (`None`: nothing is waiting).
    #[must_use]
    pub fn next_at(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            None
        } else {
            Some(self.not_before.unwrap_or_else(Instant::now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_frames_are_paced_within_the_relays_limits() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mut sent = 0;
        while p.take(t0, 1024).is_ok() {
            sent += 1;
        }
        assert_eq!(sent, FRAME_BURST as usize);
        let wait = p.take(t0, 1024).unwrap_err();
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        // over ten simulated seconds, never more than the burst plus the sustained rate
        let mut now = t0;
        let mut more = 0;
        while now < t0 + Duration::from_secs(10) {
            match p.take(now, 1024) {
                Ok(()) => more += 1,
                Err(w) => now += w,
            }
        }
        assert!(more <= (10.0 * FRAMES_PER_SEC) as usize + 1, "{more}");
        assert!(more >= (10.0 * FRAMES_PER_SEC) as usize - 2, "{more}");
    }

    #[test]
    fn the_queue_keeps_order_and_says_when_to_come_back() {
        let t0 = Instant::now();
        let mut q = Outgoing::new(t0);
        for i in 0..(FRAME_BURST as usize + 2) {
            q.push(vec![u8::try_from(i % 250).unwrap(); 8]);
        }
        let mut got = Vec::new();
        while let Some(f) = q.pop_ready(t0) {
            got.push(f[0]);
        }
        assert_eq!(got.len(), FRAME_BURST as usize);
        assert!(got.windows(2).all(|w| w[1] == (w[0] + 1) % 250));
        let back = q.next_at().unwrap();
        assert!(back > t0);
        assert!(q.pop_ready(back).is_some());
    }

    #[test]
    fn big_frames_are_paced_by_bytes() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let mib = 1024 * 1024;
        for _ in 0..4 {
            p.take(t0, mib).unwrap();
        }
        let wait = p.take(t0, mib).unwrap_err();
        assert!(wait >= Duration::from_millis(400), "{wait:?}");
        // a frame bigger than the whole burst still goes, once the bucket is full
        let mut p = Pacer::new(t0);
        p.take(t0, 16 * mib).unwrap();
    }
}
