//! The connection's policy as a pure machine: when to start a secure meeting, how long to wait for
//! one, when failed meetings trip the circuit breaker, when refused frames call for a resync, when
//! unacknowledged messages call for a resend, and when a meeting's keys retire. Fed
//! [`Input`]s with the time they happened; returns [`Action`]s and the next instant it wants to
//! be woken at ([`Policy::next_deadline`]) — no sockets, no clocks, no tasks, like
//! `proto::endpoint`.
//!
//! What it can never do is forget: no input leads to dropping the pairing or the outbox. The worst
//! it asks for is [`Action::Reconnect`] (a new connection, after the caller's backoff), whatever a
//! relay forges or drops.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

/// Failed handshakes on one connection before it is dropped (circuit breaker).
pub const MAX_HANDSHAKE_FAILURES: u32 = 5;
/// Circuit-breaker trips in a row (with no successful meeting) before the person is told the agent
/// may no longer know this device. The pairing is kept all the same: a relay can forge or drop
/// meeting replies, so failed meetings never count towards forgetting.
pub const MAX_BREAKER_TRIPS: u32 = 3;

/// The policy's timings (from [`super::ClientConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Time for the agent to answer a meeting.
    pub handshake_timeout: Duration,
    /// Sent messages unacknowledged this long in a live meeting start a new meeting.
    pub ack_timeout: Duration,
    /// After a refused frame, wait this long for more, then start one new meeting.
    pub resync_delay: Duration,
    /// A live meeting's keys retire after this long.
    pub rekey_after: Duration,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A relay connection opened (resumed); `peer_online` says whether the agent is there.
    Connected {
        /// The relay says the agent is connected.
        peer_online: bool,
    },
    /// The relay says a (new) agent connection is there (`peer_online` or `peer_restarted`).
    PeerOnline,
    /// The relay says the agent left.
    PeerOffline,
    /// The meeting is established.
    MeetingOnline,
    /// The agent's meeting reply failed to verify.
    HandshakeFailed(String),
    /// A sealed frame was refused (tampered, replayed, reordered); `live` says whether a meeting
    /// is established.
    FrameRejected {
        /// What the endpoint said about it (logged, never shown whole).
        error: String,
        /// A meeting is established.
        live: bool,
    },
    /// Too many frames failed to open: the meeting is over.
    MeetingBroken,
    /// The live meeting carried 2^31 frames either way.
    MeetingWorn,
    /// Where acknowledgements stand: `waiting` when the meeting is live and sent messages wait
    /// for an ack; `progressed` when some arrived just now.
    Acks {
        /// Sent messages wait for an ack in a live meeting.
        waiting: bool,
        /// An ack arrived just now.
        progressed: bool,
    },
    /// Time passed: the caller woke at (or after) [`Policy::next_deadline`].
    Tick,
    /// The person paired (again): earlier failures say nothing about the new pairing.
    Paired,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new secure meeting (the caller shows "handshaking").
    StartMeeting,
    /// Tell the person this.
    Notice(String),
    /// End this connection and connect again after the backoff, with this as the last error.
    Reconnect(String),
}

/// The policy's state: per-connection deadlines and counters, and the breaker that spans
/// connections.
#[derive(Debug)]
pub struct Policy {
    timings: Timings,
    /// The agent must answer the meeting by then.
    handshake_deadline: Option<Instant>,
    /// Failed handshakes on this connection.
    handshake_failures: u32,
    /// Breaker trips in a row with no successful meeting (spans connections).
    breaker_trips: u32,
    /// Frames refused on this connection (the first one is reported).
    rejected: u32,
    /// A new meeting is due then (after refused frames).
    resync_at: Option<Instant>,
    /// Since when sent messages have been waiting for an ack in a live meeting.
    ack_wait_since: Option<Instant>,
    /// When the live meeting's keys retire.
    rekey_at: Option<Instant>,
}

impl Policy {
    /// A policy with nothing armed.
    #[must_use]
    pub fn new(timings: Timings) -> Self {
        Self {
            timings,
            handshake_deadline: None,
            handshake_failures: 0,
            breaker_trips: 0,
            rejected: 0,
            resync_at: None,
            ack_wait_since: None,
            rekey_at: None,
        }
    }

    /// The earliest instant something is due; feed [`Input::Tick`] then.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.handshake_deadline,
            self.rekey_at,
            self.resync_at,
            self.ack_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feed what happened at `now`; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        match input {
            Input::Connected { peer_online } => {
                self.handshake_failures = 0;
                self.rejected = 0;
                self.disarm();
                if peer_online {
                    self.start_meeting(now)
                } else {
                    Vec::new()
                }
            }
            Input::PeerOnline => {
                // a fresh agent connection: earlier silence (a dead link, an agent mid-restart)
                // says nothing about whether this one knows us
                self.handshake_failures = 0;
                self.breaker_trips = 0;
                self.start_meeting(now)
            }
            Input::PeerOffline => {
                self.disarm();
                Vec::new()
            }
            Input::Paired => {
                self.handshake_failures = 0;
                self.breaker_trips = 0;
                Vec::new()
            }
            Input::MeetingOnline => {
                self.rekey_at = Some(now + self.timings.rekey_after);
                self.handshake_deadline = None;
                self.handshake_failures = 0;
                self.breaker_trips = 0;
                Vec::new()
            }
            Input::HandshakeFailed(why) => self.handshake_failed(why, now),
            Input::FrameRejected { error, live } => {
                self.rejected = self.rejected.saturating_add(1);
                if live && self.resync_at.is_none() {
                    self.resync_at = Some(now + self.timings.resync_delay);
                }
                if self.rejected == 1 {
                    vec![Action::Notice(format!("a frame from the relay was refused ({error}): it was altered, replayed or reordered on the way; nothing it carried was shown, and a new secure meeting will resend what was lost"))]
                } else {
                    tracing::debug!(%error, "frame rejected");
                    Vec::new()
                }
            }
            Input::MeetingBroken => {
                let mut out = vec![Action::Notice(
                    "too many frames from the agent failed to open; starting a new secure meeting"
                        .into(),
                )];
                out.extend(self.start_meeting(now));
                out
            }
            Input::MeetingWorn => {
                info!("the meeting carried 2^31 frames; starting a new secure meeting");
                self.start_meeting(now)
            }
            Input::Acks {
                waiting,
                progressed,
            } => {
                if !waiting {
                    self.ack_wait_since = None;
                } else if progressed || self.ack_wait_since.is_none() {
                    self.ack_wait_since = Some(now);
                }
                Vec::new()
            }
            Input::Tick => self.tick(now),
        }
    }

    fn ack_deadline(&self) -> Option<Instant> {
        self.ack_wait_since.map(|t| t + self.timings.ack_timeout)
    }

    /// Everything timed stops (no meeting is live or being made).
    fn disarm(&mut self) {
        self.handshake_deadline = None;
        self.resync_at = None;
        self.ack_wait_since = None;
        self.rekey_at = None;
    }

    fn start_meeting(&mut self, now: Instant) -> Vec<Action> {
        self.disarm();
        self.handshake_deadline = Some(now + self.timings.handshake_timeout);
        vec![Action::StartMeeting]
    }

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.handshake_deadline) {
            return self
                .handshake_failed("the agent did not answer the handshake in time".into(), now);
        }
        if due(self.rekey_at) {
            info!("the meeting's keys are a day old; starting a new secure meeting");
            return self.start_meeting(now);
        }
        if due(self.resync_at) {
            return self.start_meeting(now);
        }
        if due(self.ack_deadline()) {
            let mut out = vec![Action::Notice(format!(
                "the agent has not confirmed a message for {} s; starting a new secure meeting to resend it",
                self.timings.ack_timeout.as_secs()
            ))];
            out.extend(self.start_meeting(now));
            return out;
        }
        Vec::new()
    }

    fn handshake_failed(&mut self, why: String, now: Instant) -> Vec<Action> {
        self.handshake_failures = self.handshake_failures.saturating_add(1);
        self.handshake_deadline = None;
        warn!(
            failures = self.handshake_failures,
            "handshake with the agent failed: {why}"
        );
        if self.handshake_failures < MAX_HANDSHAKE_FAILURES {
            return self.start_meeting(now);
        }
        self.handshake_failures = 0;
        self.breaker_trips = self.breaker_trips.saturating_add(1);
        let notice = Action::Notice(format!("{MAX_HANDSHAKE_FAILURES} handshakes with the agent failed in a row ({why}); reconnecting with backoff"));
        let last_error = if self.breaker_trips >= MAX_BREAKER_TRIPS {
            // a relay can forge or drop meeting replies: this never forgets the pairing
            format!(
                "the agent has not recognised this device in {} handshakes — it may have been reinstalled or unpaired while this device was away. The pairing and queued messages are kept: pair again to replace it, or unpair ({why})",
                MAX_HANDSHAKE_FAILURES * self.breaker_trips
            )
        } else {
            format!("secure handshake failed: {why}")
        };
        self.disarm();
        vec![notice, Action::Reconnect(last_error)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timings() -> Timings {
        Timings {
            handshake_timeout: 10 * S,
            ack_timeout: 10 * S,
            resync_delay: Duration::from_millis(500),
            rekey_after: 3600 * S,
        }
    }

    fn online(p: &mut Policy, now: Instant) {
        assert_eq!(
            p.handle(Input::Connected { peer_online: true }, now),
            vec![Action::StartMeeting]
        );
        assert!(p.handle(Input::MeetingOnline, now).is_empty());
    }

    fn notices(a: &[Action]) -> usize {
        a.iter().filter(|a| matches!(a, Action::Notice(_))).count()
    }

    #[test]
    fn a_meeting_starts_when_the_agent_is_there_and_waits_when_it_is_not() {
        let t0 = Instant::now();
        let mut p = Policy::new(timings());
        assert!(p
            .handle(Input::Connected { peer_online: false }, t0)
            .is_empty());
        assert_eq!(
            p.next_deadline(),
            None,
            "nothing is timed while the agent is away"
        );
        assert_eq!(
            p.handle(Input::PeerOnline, t0 + S),
            vec![Action::StartMeeting]
        );
        assert_eq!(
            p.next_deadline(),
            Some(t0 + 11 * S),
            "the handshake deadline"
        );
        assert!(p.handle(Input::MeetingOnline, t0 + 2 * S).is_empty());
        assert_eq!(
            p.next_deadline(),
            Some(t0 + 2 * S + 3600 * S),
            "only the key lifetime is left"
        );
    }

    #[test]
    fn an_unanswered_handshake_is_retried_then_trips_the_breaker_without_forgetting() {
        let t0 = Instant::now();
        let mut p = Policy::new(timings());
        let mut now = t0;
        assert_eq!(
            p.handle(Input::Connected { peer_online: true }, now),
            vec![Action::StartMeeting]
        );
        // early wake-ups do nothing
        assert!(p.handle(Input::Tick, now + 9 * S).is_empty());
        for _ in 1..MAX_HANDSHAKE_FAILURES {
            now = p.next_deadline().expect("a handshake deadline");
            assert_eq!(p.handle(Input::Tick, now), vec![Action::StartMeeting]);
        }
        now = p.next_deadline().expect("a handshake deadline");
        let a = p.handle(Input::Tick, now);
        assert_eq!(notices(&a), 1);
        assert!(
            matches!(a.last(), Some(Action::Reconnect(e)) if e.starts_with("secure handshake failed")),
            "{a:?}"
        );
        assert_eq!(
            p.next_deadline(),
            None,
            "nothing is timed once the connection ends"
        );
        // two more trips on later connections: the person is told, the pairing stays
        for trip in 2..=MAX_BREAKER_TRIPS {
            assert_eq!(
                p.handle(Input::Connected { peer_online: true }, now),
                vec![Action::StartMeeting]
            );
            let mut a = Vec::new();
            for _ in 0..MAX_HANDSHAKE_FAILURES {
                a = p.handle(Input::HandshakeFailed("bad reply".into()), now);
            }
            let Some(Action::Reconnect(e)) = a.last() else {
                panic!("trip {trip}: {a:?}")
            };
            if trip == MAX_BREAKER_TRIPS {
                assert!(
                    e.contains("has not recognised this device in 15 handshakes"),
                    "{e}"
                );
                assert!(
                    e.contains("The pairing and queued messages are kept"),
                    "{e}"
                );
            } else {
                assert!(e.starts_with("secure handshake failed: bad reply"), "{e}");
            }
        }
    }

    #[test]
    fn a_fresh_agent_connection_or_a_good_meeting_resets_the_breaker() {
        let now = Instant::now();
        for reset in [Input::PeerOnline, Input::MeetingOnline, Input::Paired] {
            let mut p = Policy::new(timings());
            for _ in 0..MAX_BREAKER_TRIPS - 1 {
                p.handle(Input::Connected { peer_online: true }, now);
                for _ in 0..MAX_HANDSHAKE_FAILURES {
                    p.handle(Input::HandshakeFailed("x".into()), now);
                }
            }
            p.handle(Input::Connected { peer_online: true }, now);
            p.handle(reset.clone(), now);
            let mut a = Vec::new();
            for _ in 0..MAX_HANDSHAKE_FAILURES {
                a = p.handle(Input::HandshakeFailed("x".into()), now);
            }
            assert!(
                matches!(a.last(), Some(Action::Reconnect(e)) if e.starts_with("secure handshake failed")),
                "after {reset:?} the breaker counts from zero: {a:?}"
            );
        }
    }

    #[test]
    fn refused_frames_are_reported_once_and_resync_after_a_short_wait() {
        let t0 = Instant::now();
        let mut p = Policy::new(timings());
        online(&mut p, t0);
        let rejected = |live| Input::FrameRejected {
            error: "tag mismatch".into(),
            live,
        };
        assert_eq!(notices(&p.handle(rejected(true), t0)), 1);
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_millis(500)));
        // more of the same within the wait: no more notices, the resync is not pushed back
        assert!(p
            .handle(rejected(true), t0 + Duration::from_millis(300))
            .is_empty());
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(
            p.handle(Input::Tick, t0 + Duration::from_millis(500)),
            vec![Action::StartMeeting]
        );
        // a frame refused while no meeting is live starts nothing (the meeting under way resends)
        let mut q = Policy::new(timings());
        q.handle(Input::Connected { peer_online: false }, t0);
        assert_eq!(notices(&q.handle(rejected(false), t0)), 1);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn the_ack_watchdog_restarts_on_progress_and_resends_through_a_new_meeting() {
        let t0 = Instant::now();
        let mut p = Policy::new(timings());
        online(&mut p, t0);
        let acks = |waiting, progressed| Input::Acks {
            waiting,
            progressed,
        };
        p.handle(acks(true, false), t0);
        assert_eq!(p.next_deadline(), Some(t0 + 10 * S));
        // waiting still, no progress: the watch keeps its start
        p.handle(acks(true, false), t0 + 4 * S);
        assert_eq!(p.next_deadline(), Some(t0 + 10 * S));
        // an ack arrived and more wait: the watch starts again
        p.handle(acks(true, true), t0 + 6 * S);
        assert_eq!(p.next_deadline(), Some(t0 + 16 * S));
        let a = p.handle(Input::Tick, t0 + 16 * S);
        assert_eq!(notices(&a), 1);
        assert_eq!(a.last(), Some(&Action::StartMeeting));
        // everything acknowledged: nothing to watch
        online(&mut p, t0 + 17 * S);
        p.handle(acks(true, false), t0 + 17 * S);
        p.handle(acks(false, true), t0 + 18 * S);
        assert_eq!(p.next_deadline(), Some(t0 + 17 * S + 3600 * S));
    }

    #[test]
    fn keys_retire_by_age_and_by_wear() {
        let t0 = Instant::now();
        let mut p = Policy::new(timings());
        online(&mut p, t0);
        assert!(p.handle(Input::Tick, t0 + 3599 * S).is_empty());
        assert_eq!(
            p.handle(Input::Tick, t0 + 3600 * S),
            vec![Action::StartMeeting]
        );
        assert_eq!(
            p.next_deadline(),
            Some(t0 + 3610 * S),
            "the new meeting's deadline"
        );
        p.handle(Input::MeetingOnline, t0 + 3601 * S);
        assert_eq!(
            p.handle(Input::MeetingWorn, t0 + 3602 * S),
            vec![Action::StartMeeting]
        );
    }

    #[test]
    fn the_agent_leaving_stops_every_timer_and_a_broken_meeting_starts_another() {
        let t0 = Instant::now();
        let mut p = Policy::new(timings());
        online(&mut p, t0);
        p.handle(
            Input::Acks {
                waiting: true,
                progressed: false,
            },
            t0,
        );
        p.handle(
            Input::FrameRejected {
                error: "x".into(),
                live: true,
            },
            t0,
        );
        assert!(p.handle(Input::PeerOffline, t0).is_empty());
        assert_eq!(p.next_deadline(), None);
        assert!(p.handle(Input::Tick, t0 + 7200 * S).is_empty());
        online(&mut p, t0 + 7200 * S);
        let a = p.handle(Input::MeetingBroken, t0 + 7201 * S);
        assert_eq!(notices(&a), 1);
        assert_eq!(a.last(), Some(&Action::StartMeeting));
    }
}
