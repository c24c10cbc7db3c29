//! The relay link's heartbeat, the same at both ends: a ping every `interval`; a link that sends
//! nothing back (no pong, no frame) for `answer_within` after a ping is dead — a sleeping NAT or
//! a half-open socket that TCP would take minutes to notice.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// What the heartbeat asks for on a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send a ping.
    Ping,
    /// Nothing came back in time: drop the link.
    Dead,
}

/// Ping timing and the wait for an answer.
#[derive(Debug)]
pub struct Heartbeat {
    ticker: Interval,
    answer_within: Duration,
    awaiting_since: Option<Instant>,
}

impl Heartbeat {
    /// First ping one `interval` from now.
    #[must_use]
    pub fn new(interval: Duration, answer_within: Duration) -> Self {
        let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticker,
            answer_within,
            awaiting_since: None,
        }
    }

    /// Something came from the relay: the link is alive.
    pub fn heard(&mut self) {
        self.awaiting_since = None;
    }

    /// Wait for the next tick and say what to do.
    pub async fn tick(&mut self) -> Beat {
        self.ticker.tick().await;
        match self.awaiting_since {
            Some(since) if since.elapsed() >= self.answer_within => Beat::Dead,
            Some(_) => Beat::Ping,
            None => {
                self.awaiting_since = Some(Instant::now());
                Beat::Ping
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_after_a_ping_is_death_and_anything_heard_is_life() {
        let mut h = Heartbeat::new(Duration::from_secs(20), Duration::from_secs(20));
        assert_eq!(h.tick().await, Beat::Ping);
        h.heard();
        assert_eq!(h.tick().await, Beat::Ping, "an answer came: ping again");
        assert_eq!(h.tick().await, Beat::Dead, "nothing for a whole interval");
        let mut slow = Heartbeat::new(Duration::from_secs(5), Duration::from_secs(12));
        assert_eq!(slow.tick().await, Beat::Ping);
        assert_eq!(
            slow.tick().await,
            Beat::Ping,
            "5 s of silence: still within 12 s"
        );
        assert_eq!(slow.tick().await, Beat::Ping, "10 s");
        assert_eq!(slow.tick().await, Beat::Dead, "15 s");
    }
}
