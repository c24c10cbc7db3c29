//! Reliable delivery bookkeeping, generic over the message type: per-direction sequence numbers,
//! cumulative acknowledgements, what to resend after a meeting, and duplicate suppression.
//!
//! Sequence numbers start at 1; an ack of `n` means "I have delivered every message up to and
//! including `n`" (0 = nothing yet). Persistence is the caller's job: [`Delivery::snapshot`] and
//! [`Delivery::restore`] move the whole state in and out.

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// What travels inside one sealed frame: an ack, and optionally one sequenced message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<M> {
    /// Cumulative ack of the sender's receive direction.
    pub ack: u64,
    /// The message's sequence number (absent on ack-only envelopes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The message (present exactly when `seq` is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<M>,
}

/// What is wrong with some JSON, without any of its content: serde's own messages quote values
/// ("invalid type: string \"…\""), and an opened envelope's values are the person's words, which
/// must never reach a log or a notice.
#[must_use]
pub fn json_error_shape(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "cut-off JSON",
    };
    format!("{kind} (line {}, column {})", e.line(), e.column())
}

impl<M: Serialize + DeserializeOwned> Envelope<M> {
    /// JSON bytes for sealing.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ProtoError> {
        serde_json::to_vec(self).map_err(|e| ProtoError::MessageMalformed(e.to_string()))
    }

    /// Parse opened bytes; `seq` and `body` must come together.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ProtoError> {
        let env: Self = serde_json::from_slice(b)
            .map_err(|e| ProtoError::MessageMalformed(json_error_shape(&e)))?;
        match (&env.seq, &env.body) {
            (Some(0), _) => Err(ProtoError::MessageMalformed(
                "sequence numbers start at 1".into(),
            )),
            (Some(_), Some(_)) | (None, None) => Ok(env),
            _ => Err(ProtoError::MessageMalformed(
                "seq and body must come together".into(),
            )),
        }
    }
}

/// What to do with a received sequenced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// New and next in order: deliver it.
    Deliver,
    /// Already delivered: drop it (and re-ack).
    Duplicate,
    /// Later than the next expected one (a message was lost in between): drop it; the sender will
    /// resend from our ack after the next meeting.
    Gap {
        /// The sequence number we are waiting for.
        expected: u64,
    },
}

/// Persistable state of one end's delivery bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState<M> {
    /// Next sequence number to assign.
    pub next_seq: u64,
    /// Highest sequence number the peer has acknowledged.
    pub peer_acked: u64,
    /// Highest sequence number we delivered from the peer.
    pub delivered: u64,
    /// Sent (or queued) and not yet acknowledged, in order.
    pub unacked: Vec<(u64, M)>,
}

/// Both directions' bookkeeping for one end of a session.
#[derive(Debug, Clone)]
pub struct Delivery<M> {
    next_seq: u64,
    peer_acked: u64,
    delivered: u64,
    unacked: VecDeque<(u64, M)>,
    capacity: usize,
}

impl<M: Clone> Delivery<M> {
    /// Empty bookkeeping holding at most `capacity` unacknowledged messages.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            next_seq: 1,
            peer_acked: 0,
            delivered: 0,
            unacked: VecDeque::new(),
            capacity,
        }
    }

    /// Rebuild from a snapshot.
    #[must_use]
    pub fn restore(state: DeliveryState<M>, capacity: usize) -> Self {
        Self {
            next_seq: state.next_seq.max(1),
            peer_acked: state.peer_acked,
            delivered: state.delivered,
            unacked: state.unacked.into(),
            capacity,
        }
    }

    /// The whole state, for persisting.
    #[must_use]
    pub fn snapshot(&self) -> DeliveryState<M> {
        DeliveryState {
            next_seq: self.next_seq,
            peer_acked: self.peer_acked,
            delivered: self.delivered,
            unacked: self.unacked.iter().cloned().collect(),
        }
    }

    /// Assign the next sequence number to `body` and keep it until acknowledged.
    pub fn enqueue(&mut self, body: M) -> Result<u64, ProtoError> {
        if self.unacked.len() >= self.capacity {
            return Err(ProtoError::OutboxFull(self.unacked.len()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.push_back((seq, body));
        Ok(seq)
    }

    /// The peer acknowledged everything up to `ack`. Returns the sequence numbers newly
    /// acknowledged. An ack beyond anything we sent means the two ends' states disagree.
    pub fn on_ack(&mut self, ack: u64) -> Result<Vec<u64>, ProtoError> {
        let sent = self.next_seq - 1;
        if ack > sent {
            return Err(ProtoError::AckBeyondSent { acked: ack, sent });
        }
        let mut done = Vec::new();
        if ack > self.peer_acked {
            self.peer_acked = ack;
        }
        while let Some((seq, _)) = self.unacked.front() {
            if *seq > ack {
                break;
            }
            done.push(*seq);
            self.unacked.pop_front();
        }
        Ok(done)
    }

    /// At a new meeting, the peer says it delivered up to `peer_delivered`. Beyond what we
    /// remember sending, that means we lost our last writes (a power loss took writes that were
    /// not yet synced, such as streaming deltas — see the outbox's `Durability`) while the peer got
    /// them: continue numbering after what the peer has, so no number is ever used for a second,
    /// different message, and count everything as acknowledged. Returns the numbers acknowledged,
    /// or `None` when the peer is not ahead (the ordinary [`Delivery::on_ack`] applies).
    /// Only ever called with a value from inside an authenticated meeting.
    pub fn catch_up(&mut self, peer_delivered: u64) -> Option<Vec<u64>> {
        if peer_delivered < self.next_seq {
            return None;
        }
        self.next_seq = peer_delivered + 1;
        self.peer_acked = peer_delivered;
        Some(self.unacked.drain(..).map(|(seq, _)| seq).collect())
    }

    /// Everything the peer has not acknowledged, in order: what to (re)send after a meeting.
    pub fn pending(&self) -> impl Iterator<Item = &(u64, M)> {
        self.unacked.iter()
    }

    /// Decide what to do with a received message numbered `seq`.
    pub fn receive(&mut self, seq: u64) -> Receipt {
        if seq <= self.delivered {
            Receipt::Duplicate
        } else if seq == self.delivered + 1 {
            self.delivered = seq;
            Receipt::Deliver
        } else {
            Receipt::Gap {
                expected: self.delivered + 1,
            }
        }
    }

    /// The sequence number the next [`Delivery::enqueue`] will assign (persist before enqueueing).
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Our cumulative ack: highest sequence number delivered from the peer.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Highest sequence number the peer acknowledged.
    #[must_use]
    pub fn peer_acked(&self) -> u64 {
        self.peer_acked
    }

    /// Number of messages waiting for an ack.
    #[must_use]
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_envelope_is_described_without_its_content() {
        // before: serde's message quoted the value, e.g. the person's own words
        let bad = br#"{"ack": 1, "seq": "SECRET-WORDS-7"}"#;
        let e = Envelope::<String>::from_bytes(bad).unwrap_err();
        let said = e.to_string();
        assert!(!said.contains("SECRET-WORDS-7"), "{said}");
        assert!(said.contains("wrong shape"), "{said}");
        let e =
            Envelope::<String>::from_bytes(br#"{"ack": 1, "seq": 2, "body": "cut"#).unwrap_err();
        assert!(!e.to_string().contains("cut\""), "{e}");
    }
    use proptest::prelude::*;

    #[test]
    fn a_peer_ahead_of_us_at_a_meeting_moves_our_numbering_past_what_it_has() {
        // we sent 1..=5, a power loss took the unsynced 4 and 5 from our disk: we restart
        // believing we sent 1..=3 (3 unacked); the peer delivered all five
        let mut d = Delivery::new(100);
        for m in ["a", "b", "c"] {
            d.enqueue(m.to_owned()).unwrap();
        }
        assert_eq!(
            d.catch_up(2),
            None,
            "a peer behind us: the ordinary ack applies"
        );
        assert_eq!(d.catch_up(5), Some(vec![1, 2, 3]));
        assert_eq!(d.pending().count(), 0, "nothing to resend");
        assert_eq!(
            d.enqueue("f".to_owned()).unwrap(),
            6,
            "no number is used twice"
        );
        assert_eq!(d.on_ack(6).unwrap(), vec![6]);
    }

    #[test]
    fn acks_are_cumulative_and_resend_starts_after_the_ack() {
        let mut d = Delivery::new(100);
        for m in ["a", "b", "c", "d"] {
            d.enqueue(m.to_owned()).unwrap();
        }
        assert_eq!(d.on_ack(2).unwrap(), vec![1, 2]);
        let pending: Vec<_> = d.pending().map(|(s, m)| (*s, m.clone())).collect();
        assert_eq!(pending, vec![(3, "c".to_owned()), (4, "d".to_owned())]);
        assert_eq!(
            d.on_ack(1).unwrap(),
            Vec::<u64>::new(),
            "an old ack changes nothing"
        );
        assert_eq!(
            d.on_ack(9),
            Err(ProtoError::AckBeyondSent { acked: 9, sent: 4 })
        );
    }

    #[test]
    fn receiver_delivers_once_in_order() {
        let mut d: Delivery<()> = Delivery::new(1);
        assert_eq!(d.receive(1), Receipt::Deliver);
        assert_eq!(d.receive(1), Receipt::Duplicate);
        assert_eq!(d.receive(3), Receipt::Gap { expected: 2 });
        assert_eq!(d.receive(2), Receipt::Deliver);
        assert_eq!(d.delivered(), 2);
    }

    #[test]
    fn outbox_is_bounded() {
        let mut d = Delivery::new(2);
        d.enqueue(1).unwrap();
        d.enqueue(2).unwrap();
        assert_eq!(d.enqueue(3), Err(ProtoError::OutboxFull(2)));
    }

    #[test]
    fn snapshot_restores_exactly() {
        let mut d = Delivery::new(10);
        d.enqueue("x".to_owned()).unwrap();
        d.enqueue("y".to_owned()).unwrap();
        d.on_ack(1).unwrap();
        d.receive(1);
        let r = Delivery::restore(d.snapshot(), 10);
        assert_eq!(r.snapshot(), d.snapshot());
    }

    #[test]
    fn envelope_json_is_validated() {
        let e = Envelope {
            ack: 3,
            seq: Some(4),
            body: Some("hi".to_owned()),
        };
        let b = e.to_bytes().unwrap();
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"ack":3,"seq":4,"body":"hi"}"#
        );
        assert_eq!(Envelope::<String>::from_bytes(&b).unwrap(), e);
        assert!(Envelope::<String>::from_bytes(br#"{"ack":1,"seq":2}"#).is_err());
        assert!(Envelope::<String>::from_bytes(br#"{"ack":1,"seq":0,"body":"x"}"#).is_err());
        assert!(Envelope::<String>::from_bytes(b"not json").is_err());
        assert!(Envelope::<String>::from_bytes(br#"{"ack":1}"#).is_ok());
    }

    proptest! {
        /// Whatever the interleaving of losses and duplicate resends, the receiver delivers each
        /// message exactly once and in order.
        #[test]
        fn exactly_once_in_order_under_loss_and_resend(
            n in 1usize..40,
            drops in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let mut sender = Delivery::new(1000);
            let mut receiver: Delivery<usize> = Delivery::new(1000);
            for i in 0..n { sender.enqueue(i).unwrap(); }
            let mut delivered = Vec::new();
            let mut drop_iter = drops.into_iter();
            // each round = one meeting: resend everything pending after the receiver's ack
            for _round in 0..(n + 300) {
                let batch: Vec<_> = sender.pending().cloned().collect();
                if batch.is_empty() { break; }
                for (seq, body) in batch {
                    if drop_iter.next().unwrap_or(false) { continue; }
                    if receiver.receive(seq) == Receipt::Deliver { delivered.push(body); }
                }
                sender.on_ack(receiver.delivered()).unwrap();
            }
            prop_assert_eq!(delivered, (0..n).collect::<Vec<_>>());
        }
    }
}
