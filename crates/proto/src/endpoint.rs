//! One end of a paired session's secure channel, as a pure state machine: meetings (Noise KK),
//! sealed frames and reliable delivery put together. Fed binary frames and intents; returns
//! [`Event`]s — frames to transmit, messages to deliver exactly once, acknowledgements to record.
//!
//! The desktop initiates every meeting ([`Endpoint::start_meeting`]); the agent answers and keeps
//! its new meeting *pending* until the desktop's first sealed frame opens under it, then resends
//! its unacknowledged messages. Nothing is ever sealed with an old meeting's keys once a new one
//! started, and nothing is dropped: unsent messages wait in the [`Delivery`] outbox.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::delivery::{Delivery, Envelope, Receipt};
use crate::frame::{self, FrameKind};
use crate::meeting::{self, Meeting, MeetingHello, MeetingInitiator};
use crate::secret::StaticKeypair;
use crate::{ProtoError, Role};

/// Consecutive frames that fail to open before the meeting is declared broken.
pub const MAX_OPEN_FAILURES: u32 = 3;

/// What the caller must do or know after feeding the endpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<In> {
    /// Send this binary frame to the peer (through the relay).
    Transmit(Vec<u8>),
    /// A new message from the peer, in order, exactly once.
    Deliver {
        /// Its sequence number.
        seq: u64,
        /// The message.
        body: In,
    },
    /// The peer acknowledged these of our messages (they left the outbox).
    Acked(Vec<u64>),
    /// A meeting is established: sealed traffic flows.
    Online,
    /// A frame was dropped (tampered, replayed, unexpected). Counted, not fatal.
    Rejected(ProtoError),
    /// A handshake with the pinned peer failed: possible attack or lost pairing. Loud.
    HandshakeFailed(ProtoError),
    /// Too many frames failed to open: the meeting is over. The desktop should start a new one.
    MeetingBroken,
}

/// Frames (either way) after which a meeting's keys retire and a new meeting starts.
pub const REKEY_AFTER_FRAMES: u64 = 1 << 31;
/// Age after which a meeting's keys retire and a new meeting starts.
pub const REKEY_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// One end of a session.
pub struct Endpoint<Out, In> {
    role: Role,
    me: StaticKeypair,
    peer: [u8; 32],
    session: String,
    delivery: Delivery<Out>,
    live: Option<Meeting>,
    pending: Option<Meeting>,
    initiating: Option<MeetingInitiator>,
    open_failures: u32,
    ack_owed: bool,
    _in: std::marker::PhantomData<fn() -> In>,
}

impl<Out, In> std::fmt::Debug for Endpoint<Out, In> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("role", &self.role)
            .field("live", &self.live.is_some())
            .field("pending", &self.pending.is_some())
            .field("initiating", &self.initiating.is_some())
            .finish_non_exhaustive()
    }
}

impl<Out, In> Endpoint<Out, In>
where
    Out: Serialize + DeserializeOwned + Clone,
    In: Serialize + DeserializeOwned,
{
    /// An endpoint for `session` between our static key and the pinned `peer` key, resuming the
    /// given delivery state.
    #[must_use]
    pub fn new(
        role: Role,
        me: StaticKeypair,
        peer: [u8; 32],
        session: String,
        delivery: Delivery<Out>,
    ) -> Self {
        Self {
            role,
            me,
            peer,
            session,
            delivery,
            live: None,
            pending: None,
            initiating: None,
            open_failures: 0,
            ack_owed: false,
            _in: std::marker::PhantomData,
        }
    }

    /// True while a meeting is established.
    #[must_use]
    pub fn is_online(&self) -> bool {
        self.live.is_some()
    }

    /// Whether the live meeting has carried enough frames, either way, that its keys should
    /// retire ([`REKEY_AFTER_FRAMES`]: half the counter space, long before it runs out). The
    /// desktop, which starts meetings, checks it after frames pass; time is the caller's to
    /// count ([`REKEY_AFTER`]).
    #[must_use]
    pub fn wants_rekey(&self) -> bool {
        self.live.as_ref().is_some_and(|m| {
            m.sealer.frames_sealed() >= REKEY_AFTER_FRAMES
                || m.opener
                    .last_counter()
                    .is_some_and(|c| c.saturating_add(1) >= REKEY_AFTER_FRAMES)
        })
    }

    /// The delivery bookkeeping (for persisting and for showing queued messages).
    #[must_use]
    pub fn delivery(&self) -> &Delivery<Out> {
        &self.delivery
    }

    /// The peer went away: forget the meeting (keys are dropped). Queued messages stay.
    pub fn peer_left(&mut self) {
        self.live = None;
        self.pending = None;
        self.initiating = None;
        self.open_failures = 0;
    }

    /// Desktop: start a new meeting now (peer online, restarted, or the old meeting broke).
    pub fn start_meeting(&mut self) -> Result<Vec<Event<In>>, ProtoError> {
        self.peer_left();
        let hello = MeetingHello {
            delivered: self.delivery.delivered(),
        };
        let (init, frame) = MeetingInitiator::start(&self.me, &self.peer, &self.session, hello)?;
        self.initiating = Some(init);
        Ok(vec![Event::Transmit(frame)])
    }

    /// Queue `body` for the peer; sealed and transmitted at once if a meeting is live. Returns
    /// its sequence number.
    pub fn send(&mut self, body: Out) -> Result<(u64, Vec<Event<In>>), ProtoError> {
        let seq = self.delivery.enqueue(body.clone())?;
        let mut events = Vec::new();
        if self.live.is_some() {
            let env = Envelope {
                ack: self.delivery.delivered(),
                seq: Some(seq),
                body: Some(body),
            };
            events.push(Event::Transmit(self.seal(&env)?));
            self.ack_owed = false;
        }
        Ok((seq, events))
    }

    /// An ack-only frame if we owe the peer one (call after handling a batch of frames).
    pub fn flush_ack(&mut self) -> Option<Vec<u8>> {
        if !self.ack_owed || self.live.is_none() {
            return None;
        }
        let env: Envelope<Out> = Envelope {
            ack: self.delivery.delivered(),
            seq: None,
            body: None,
        };
        let frame = self.seal(&env).ok()?;
        self.ack_owed = false;
        Some(frame)
    }

    fn seal(&mut self, env: &Envelope<Out>) -> Result<Vec<u8>, ProtoError> {
        let bytes = env.to_bytes()?;
        let live = self
            .live
            .as_mut()
            .ok_or(ProtoError::PairingOutOfOrder("no meeting"))?;
        live.sealer.seal(&bytes)
    }

    /// Feed one binary frame from the peer.
    pub fn on_frame(&mut self, bytes: &[u8]) -> Vec<Event<In>> {
        match frame::classify(bytes) {
            Ok(FrameKind::MeetingInit) if self.role == Role::Agent => self.on_meeting_init(bytes),
            Ok(FrameKind::MeetingReply) if self.role == Role::Desktop => {
                self.on_meeting_reply(bytes)
            }
            Ok(FrameKind::Sealed) => self.on_sealed(bytes),
            Ok(kind) => vec![Event::Rejected(ProtoError::UnknownFrameKind(kind.byte()))],
            Err(e) => vec![Event::Rejected(e)],
        }
    }

    fn on_meeting_init(&mut self, bytes: &[u8]) -> Vec<Event<In>> {
        let hello = MeetingHello {
            delivered: self.delivery.delivered(),
        };
        match meeting::respond(&self.me, &self.peer, &self.session, bytes, hello) {
            Ok((m, reply)) => {
                self.pending = Some(m);
                vec![Event::Transmit(reply)]
            }
            Err(e) => vec![Event::HandshakeFailed(e)],
        }
    }

    fn on_meeting_reply(&mut self, bytes: &[u8]) -> Vec<Event<In>> {
        let Some(init) = self.initiating.take() else {
            return vec![Event::Rejected(ProtoError::HandshakeMalformed)];
        };
        match init.finish(bytes) {
            Ok(m) => {
                let mut events = self.go_live(m);
                if !events.iter().any(|e| matches!(e, Event::Transmit(_))) {
                    // Always send something: the agent's meeting is pending until a frame opens.
                    self.ack_owed = true;
                    if let Some(f) = self.flush_ack() {
                        events.push(Event::Transmit(f));
                    }
                }
                events
            }
            Err(e) => vec![Event::HandshakeFailed(e)],
        }
    }

    /// Make `m` the live meeting: apply the peer's ack and resend what it has not acknowledged.
    fn go_live(&mut self, m: Meeting) -> Vec<Event<In>> {
        let peer_delivered = m.peer_hello.delivered;
        self.live = Some(m);
        self.pending = None;
        self.open_failures = 0;
        let mut events = vec![Event::Online];
        if let Some(acked) = self.delivery.catch_up(peer_delivered) {
            // the peer has more of ours than we remember (our unsynced last writes were lost):
            // nothing to resend, and numbering goes on after what it has (the outbox records
            // the new numbering with the next message)
            if !acked.is_empty() {
                events.push(Event::Acked(acked));
            }
            return events;
        }
        match self.delivery.on_ack(peer_delivered) {
            Ok(acked) if !acked.is_empty() => events.push(Event::Acked(acked)),
            Ok(_) => {}
            Err(e) => events.push(Event::Rejected(e)),
        }
        let resend: Vec<(u64, Out)> = self.delivery.pending().cloned().collect();
        for (seq, body) in resend {
            let env = Envelope {
                ack: self.delivery.delivered(),
                seq: Some(seq),
                body: Some(body),
            };
            match self.seal(&env) {
                Ok(f) => events.push(Event::Transmit(f)),
                Err(e) => {
                    events.push(Event::Rejected(e));
                    break;
                }
            }
        }
        events
    }

    fn on_sealed(&mut self, bytes: &[u8]) -> Vec<Event<In>> {
        let mut events = Vec::new();
        let opened = match self.live.as_mut().map(|m| m.opener.open(bytes)) {
            Some(Ok(p)) => Ok(p),
            live_result => {
                // Agent: the first frame under a pending meeting commits it.
                match self.pending.as_mut().map(|m| m.opener.open(bytes)) {
                    Some(Ok(p)) => {
                        if let Some(m) = self.pending.take() {
                            events.extend(self.go_live(m));
                        }
                        Ok(p)
                    }
                    _ => Err(match live_result {
                        Some(Err(e)) => e,
                        _ => ProtoError::FrameAuthFailed,
                    }),
                }
            }
        };
        let plaintext = match opened {
            Ok(p) => {
                self.open_failures = 0;
                p
            }
            Err(e) => {
                events.push(Event::Rejected(e));
                if self.live.is_some() {
                    self.open_failures += 1;
                    if self.open_failures >= MAX_OPEN_FAILURES {
                        self.peer_left();
                        events.push(Event::MeetingBroken);
                    }
                }
                return events;
            }
        };
        let env = match Envelope::<In>::from_bytes(&plaintext) {
            Ok(env) => env,
            Err(e) => {
                events.push(Event::Rejected(e));
                return events;
            }
        };
        match self.delivery.on_ack(env.ack) {
            Ok(acked) if !acked.is_empty() => events.push(Event::Acked(acked)),
            Ok(_) => {}
            Err(e) => events.push(Event::Rejected(e)),
        }
        if let (Some(seq), Some(body)) = (env.seq, env.body) {
            match self.delivery.receive(seq) {
                Receipt::Deliver => {
                    self.ack_owed = true;
                    events.push(Event::Deliver { seq, body });
                }
                Receipt::Duplicate => self.ack_owed = true,
                Receipt::Gap { expected } => {
                    events.push(Event::Rejected(ProtoError::MessageMalformed(format!(
                        "message {seq} arrived before {expected}; waiting for the resend"
                    ))));
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Desk = Endpoint<String, String>;
    type Agent = Endpoint<String, String>;

    fn ends() -> (Desk, Agent) {
        let dk = StaticKeypair::generate().unwrap();
        let ak = StaticKeypair::generate().unwrap();
        let d = Endpoint::new(
            Role::Desktop,
            dk.clone(),
            ak.public(),
            "s".into(),
            Delivery::new(100),
        );
        let a = Endpoint::new(Role::Agent, ak, dk.public(), "s".into(), Delivery::new(100));
        (d, a)
    }

    fn frames(ev: &[Event<String>]) -> Vec<Vec<u8>> {
        ev.iter()
            .filter_map(|e| {
                if let Event::Transmit(f) = e {
                    Some(f.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    fn delivered(ev: &[Event<String>]) -> Vec<String> {
        ev.iter()
            .filter_map(|e| {
                if let Event::Deliver { body, .. } = e {
                    Some(body.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// Pass every frame from one side to the other until both are quiet; collect deliveries.
    fn pump(
        d: &mut Desk,
        a: &mut Agent,
        mut to_agent: Vec<Vec<u8>>,
        mut to_desk: Vec<Vec<u8>>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut got_a, mut got_d) = (Vec::new(), Vec::new());
        while !to_agent.is_empty() || !to_desk.is_empty() {
            for f in std::mem::take(&mut to_agent) {
                let ev = a.on_frame(&f);
                got_a.extend(delivered(&ev));
                to_desk.extend(frames(&ev));
            }
            to_desk.extend(a.flush_ack());
            for f in std::mem::take(&mut to_desk) {
                let ev = d.on_frame(&f);
                got_d.extend(delivered(&ev));
                to_agent.extend(frames(&ev));
            }
            to_agent.extend(d.flush_ack());
        }
        (got_a, got_d)
    }

    #[test]
    fn a_meeting_that_carried_half_its_counter_space_either_way_wants_new_keys() {
        let (mut d, mut a) = ends();
        assert!(!d.wants_rekey(), "no meeting, nothing to re-key");
        let start = frames(&d.start_meeting().unwrap());
        pump(&mut d, &mut a, start, vec![]);
        assert!(!d.wants_rekey() && !a.wants_rekey());
        // the agent has sealed 2^31 - 1 frames; the desktop sees the next one's counter
        a.live
            .as_mut()
            .unwrap()
            .sealer
            .skip_to(REKEY_AFTER_FRAMES - 1);
        let (_, ev) = a.send("the 2^31st".into()).unwrap();
        let (_, got_d) = pump(&mut d, &mut a, vec![], frames(&ev));
        assert_eq!(got_d, vec!["the 2^31st"]);
        assert!(
            d.wants_rekey(),
            "the desktop, which starts meetings, notices the agent's count"
        );
        // a new meeting starts the count again
        let start = frames(&d.start_meeting().unwrap());
        pump(&mut d, &mut a, start, vec![]);
        assert!(d.is_online() && !d.wants_rekey());
        // and its own count
        d.live.as_mut().unwrap().sealer.skip_to(REKEY_AFTER_FRAMES);
        assert!(d.wants_rekey());
    }

    #[test]
    fn messages_queued_while_offline_flow_after_the_meeting() {
        let (mut d, mut a) = ends();
        let (_, ev) = d.send("queued 1".into()).unwrap();
        assert!(ev.is_empty(), "nothing is sealed without a meeting");
        d.send("queued 2".into()).unwrap();
        a.send("agent queued".into()).unwrap();
        let start = frames(&d.start_meeting().unwrap());
        let (got_a, got_d) = pump(&mut d, &mut a, start, vec![]);
        assert_eq!(got_a, vec!["queued 1", "queued 2"]);
        assert_eq!(got_d, vec!["agent queued"]);
        assert!(d.is_online() && a.is_online());
        assert_eq!(d.delivery().unacked_len(), 0);
        assert_eq!(a.delivery().unacked_len(), 0);
    }

    #[test]
    fn a_new_meeting_resends_exactly_what_was_not_acknowledged() {
        let (mut d, mut a) = ends();
        let start = frames(&d.start_meeting().unwrap());
        pump(&mut d, &mut a, start, vec![]);
        // sent but lost in transit (the relay died)
        let (_, ev) = d.send("lost in transit".into()).unwrap();
        assert_eq!(frames(&ev).len(), 1);
        // delivered but the ack was lost
        let (_, ev) = d.send("ack lost".into()).unwrap();
        let ev_a = a.on_frame(&frames(&ev)[0]);
        assert_eq!(
            delivered(&ev_a),
            Vec::<String>::new(),
            "gap: waits for the resend"
        );
        d.peer_left();
        a.peer_left();
        let start = frames(&d.start_meeting().unwrap());
        let (got_a, _) = pump(&mut d, &mut a, start, vec![]);
        assert_eq!(got_a, vec!["lost in transit", "ack lost"]);
        // and once more: nothing is delivered twice
        d.peer_left();
        a.peer_left();
        let start = frames(&d.start_meeting().unwrap());
        let (got_a, _) = pump(&mut d, &mut a, start, vec![]);
        assert!(got_a.is_empty());
    }

    #[test]
    fn a_replayed_meeting_init_does_not_displace_the_live_meeting() {
        let (mut d, mut a) = ends();
        let start = frames(&d.start_meeting().unwrap());
        let old_init = start[0].clone();
        pump(&mut d, &mut a, start, vec![]);
        // the relay replays message 1: the agent answers, but its live meeting stays
        let replayed_reply = frames(&a.on_frame(&old_init));
        assert_eq!(replayed_reply.len(), 1);
        let (_, ev) = d.send("still works".into()).unwrap();
        let ev_a = a.on_frame(&frames(&ev)[0]);
        assert_eq!(delivered(&ev_a), vec!["still works"]);
        // and the desktop, not initiating, rejects the unexpected reply and stays online
        assert!(matches!(
            d.on_frame(&replayed_reply[0])[0],
            Event::Rejected(_)
        ));
        assert!(d.is_online());
    }

    #[test]
    fn replayed_frames_are_rejected_and_repeated_failures_break_the_meeting() {
        let (mut d, mut a) = ends();
        let start = frames(&d.start_meeting().unwrap());
        pump(&mut d, &mut a, start, vec![]);
        let (_, ev) = d.send("once".into()).unwrap();
        let f = frames(&ev)[0].clone();
        assert_eq!(delivered(&a.on_frame(&f)), vec!["once"]);
        let ev = a.on_frame(&f);
        assert!(matches!(
            ev[0],
            Event::Rejected(ProtoError::CounterNotIncreasing { .. })
        ));
        a.on_frame(&f);
        let ev = a.on_frame(&f);
        assert!(ev.contains(&Event::MeetingBroken));
        assert!(!a.is_online());
    }

    #[test]
    fn an_impostor_cannot_meet() {
        let (mut d, _) = ends();
        let impostor_key = StaticKeypair::generate().unwrap();
        let mut impostor: Agent = Endpoint::new(
            Role::Agent,
            impostor_key,
            d.me.public(),
            "s".into(),
            Delivery::new(10),
        );
        let start = frames(&d.start_meeting().unwrap());
        let ev = impostor.on_frame(&start[0]);
        assert!(matches!(ev[0], Event::HandshakeFailed(_)));
    }
}
