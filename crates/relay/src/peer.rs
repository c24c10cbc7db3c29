//! A [`PeerHandle`] is how one connection's actor reaches another: a bounded queue of outbound
//! items plus a kill switch. Queued bytes are counted so a reader that cannot keep up is closed
//! (`SLOW_READER`) instead of growing the relay's memory. A [`Target`] is either such a handle or,
//! in a cluster, the [`Loc`] of a connection on another relay node.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_util::sync::CancellationToken;

use clawtray_proto::control::{ControlFrame, ErrorCode};

/// Where a connection lives in a relay cluster: its node and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Loc {
    /// The node's id (`--node-id`).
    pub node: Arc<str>,
    /// The connection's id on that node.
    pub conn: u64,
}

impl Loc {
    /// `node|conn`, as kept in Redis and sent between nodes.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}|{}", self.node, self.conn)
    }

    /// The inverse of [`Loc::encode`]; `None` for anything else (an empty string among them).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let (node, conn) = s.rsplit_once('|')?;
        if node.is_empty() {
            return None;
        }
        Some(Self {
            node: node.into(),
            conn: conn.parse().ok()?,
        })
    }
}

/// Another connection: one of this relay's (its handle) or, in a cluster, one on another node.
#[derive(Debug, Clone)]
pub enum Target {
    /// On this relay.
    Local(PeerHandle),
    /// On another node of the cluster.
    Remote(Loc),
}

/// Something for a connection's actor to do on behalf of another.
#[derive(Debug)]
pub enum Outbound {
    /// Forward a binary frame untouched.
    Binary(Bytes),
    /// Send a control frame.
    Control(ControlFrame),
    /// (Agent side of a pairing) a desktop joined this agent's nameplate: send `linked`; the
    /// desktop is `partner`.
    Linked {
        /// The desktop's connection.
        partner: Target,
    },
    /// Pairing finished: become the session's end and send `paired` with the device token this
    /// connection made when it confirmed.
    EnterSession {
        /// The new session.
        session: String,
        /// The other end, when it sits on another node.
        peer: Option<Loc>,
    },
    /// The session's other end came, went, or came back as a new process: pass `frame`
    /// (`peer_online` / `peer_offline` / `peer_restarted`) on. `from` is where the other end now
    /// is when that is another node.
    PeerNote {
        /// The control frame to send.
        frame: ControlFrame,
        /// The other end's node and connection, when remote.
        from: Option<Loc>,
    },
    /// The cluster lost this node (its lease ran out): whatever sat there is gone.
    NodeGone(Arc<str>),
    /// Send this error and close.
    CloseWith(ErrorCode),
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverError {
    /// The target is not connected.
    Away,
    /// The target's queue is full: it has been told to close.
    Slow,
}

/// One connection, as seen by others.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    /// Unique per accepted connection.
    pub conn_id: u64,
    tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
    kill_reason: Arc<AtomicU8>,
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
}

/// The receiving half, owned by the connection's actor.
#[derive(Debug)]
pub struct Mailbox {
    /// Outbound items.
    pub rx: mpsc::Receiver<Outbound>,
    /// Cancelled when another actor closes this connection.
    pub kill: CancellationToken,
    kill_reason: Arc<AtomicU8>,
    queued_bytes: Arc<AtomicUsize>,
}

impl Mailbox {
    /// Note that a queued binary frame of `len` bytes left the queue.
    pub fn dequeued(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// Why the connection was killed.
    #[must_use]
    pub fn kill_reason(&self) -> ErrorCode {
        code_from_u8(self.kill_reason.load(Ordering::Acquire))
    }
}

/// A handle and its mailbox with the given bounds.
#[must_use]
pub fn channel(conn_id: u64, max_frames: usize, max_bytes: usize) -> (PeerHandle, Mailbox) {
    let (tx, rx) = mpsc::channel(max_frames.max(1));
    let kill = CancellationToken::new();
    let kill_reason = Arc::new(AtomicU8::new(0));
    let queued = Arc::new(AtomicUsize::new(0));
    (
        PeerHandle {
            conn_id,
            tx,
            kill: kill.clone(),
            kill_reason: kill_reason.clone(),
            queued_bytes: queued.clone(),
            max_queued_bytes: max_bytes,
        },
        Mailbox {
            rx,
            kill,
            kill_reason,
            queued_bytes: queued,
        },
    )
}

impl PeerHandle {
    /// Queue `item` without waiting. A full queue closes the target as a slow reader.
    pub fn deliver(&self, item: Outbound) -> Result<(), DeliverError> {
        let len = match &item {
            Outbound::Binary(b) => b.len(),
            _ => 0,
        };
        if len > 0 {
            let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
            if before + len > self.max_queued_bytes {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.close(ErrorCode::SlowReader);
                return Err(DeliverError::Slow);
            }
        }
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.close(ErrorCode::SlowReader);
                Err(DeliverError::Slow)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                Err(DeliverError::Away)
            }
        }
    }

    /// The connection has ended (its mailbox is gone).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Close the connection with `reason` (first reason wins).
    pub fn close(&self, reason: ErrorCode) {
        let _ = self.kill_reason.compare_exchange(
            0,
            code_to_u8(reason),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.kill.cancel();
    }
}

const CODES: [ErrorCode; 11] = [
    ErrorCode::Internal,
    ErrorCode::SlowReader,
    ErrorCode::Replaced,
    ErrorCode::SessionRevoked,
    ErrorCode::PairingFailed,
    ErrorCode::PeerGone,
    ErrorCode::HandshakeTimeout,
    ErrorCode::ShuttingDown,
    ErrorCode::NameplateExpired,
    ErrorCode::Flooding,
    ErrorCode::Unavailable,
];

fn code_to_u8(c: ErrorCode) -> u8 {
    CODES
        .iter()
        .position(|x| *x == c)
        .and_then(|i| u8::try_from(i + 1).ok())
        .unwrap_or(1)
}

fn code_from_u8(v: u8) -> ErrorCode {
    CODES
        .get(usize::from(v).saturating_sub(1))
        .copied()
        .unwrap_or(ErrorCode::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_slow_reader() {
        let (h, mb) = channel(1, 2, 1000);
        assert!(h
            .deliver(Outbound::Binary(Bytes::from_static(b"a")))
            .is_ok());
        assert!(h
            .deliver(Outbound::Binary(Bytes::from_static(b"b")))
            .is_ok());
        assert_eq!(
            h.deliver(Outbound::Binary(Bytes::from_static(b"c"))),
            Err(DeliverError::Slow)
        );
        assert!(mb.kill.is_cancelled());
        assert_eq!(mb.kill_reason(), ErrorCode::SlowReader);
    }

    #[test]
    fn too_many_queued_bytes_close_the_slow_reader() {
        let (h, mb) = channel(1, 100, 10);
        assert!(h
            .deliver(Outbound::Binary(Bytes::from(vec![0u8; 8])))
            .is_ok());
        assert_eq!(
            h.deliver(Outbound::Binary(Bytes::from(vec![0u8; 8]))),
            Err(DeliverError::Slow)
        );
        assert_eq!(mb.kill_reason(), ErrorCode::SlowReader);
    }

    #[test]
    fn the_first_close_reason_wins() {
        let (h, mb) = channel(1, 1, 1);
        h.close(ErrorCode::Replaced);
        h.close(ErrorCode::ShuttingDown);
        assert_eq!(mb.kill_reason(), ErrorCode::Replaced);
    }

    #[test]
    fn locations_round_trip_and_junk_is_refused() {
        let l = Loc {
            node: "relay-b.eu|1".into(),
            conn: 77,
        };
        assert_eq!(Loc::parse(&l.encode()), Some(l));
        for junk in ["", "|5", "node", "node|", "node|x", "node|-1"] {
            assert_eq!(Loc::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_gone_connection_is_away() {
        let (h, mb) = channel(1, 1, 1);
        drop(mb);
        assert_eq!(
            h.deliver(Outbound::Control(ControlFrame::PeerOnline)),
            Err(DeliverError::Away)
        );
    }
}
