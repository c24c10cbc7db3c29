//! The client's settings and limits.

use std::path::PathBuf;
use std::time::Duration;

use super::policy::Timings;

/// Messages that may wait for the agent at once.
pub const OUTBOX_CAPACITY: usize = 10_000;
/// How long an unpair waits for the agent to acknowledge the sealed `unpair` before it goes on.
pub const UNPAIR_ACK_WAIT: Duration = Duration::from_secs(3);

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where the outbox lives.
    pub data_dir: PathBuf,
    /// The name shown to the agent at pairing.
    pub device_name: String,
    /// Allow `ws://` relays on other hosts (the token would travel in clear).
    pub allow_insecure_relay: bool,
    /// WebSocket ping period while connected.
    pub ping_interval: Duration,
    /// A ping unanswered this long means the link is dead.
    pub pong_timeout: Duration,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time for the agent to answer a meeting.
    pub handshake_timeout: Duration,
    /// Sent messages unacknowledged this long, with the agent there, start a new meeting (which
    /// resends them): a frame lost or dropped on the way is not waited for forever.
    pub ack_timeout: Duration,
    /// After a frame fails to open (tampered, replayed, out of order), wait this long for more of
    /// the same, then start one new meeting so both ends resend what was lost.
    pub resync_delay: Duration,
    /// While the relay refuses the pairing, try it again this often (the pairing is kept).
    pub refused_retry: Duration,
    /// A live meeting's keys retire after this long (and after 2^31 frames either way): a new
    /// meeting starts on the same connection.
    pub rekey_after: Duration,
}

impl ClientConfig {
    /// Defaults: ping every 15 s, dead after 15 s more (a dead link is noticed within ~30 s).
    #[must_use]
    pub fn new(data_dir: PathBuf, device_name: String) -> Self {
        Self {
            data_dir,
            device_name,
            allow_insecure_relay: false,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
            resync_delay: Duration::from_millis(500),
            refused_retry: Duration::from_secs(300),
            rekey_after: clawtray_proto::endpoint::REKEY_AFTER,
        }
    }
    /// The timings the connection policy runs on.
    #[must_use]
    pub fn timings(&self) -> Timings {
        Timings {
            handshake_timeout: self.handshake_timeout,
            ack_timeout: self.ack_timeout,
            resync_delay: self.resync_delay,
            rekey_after: self.rekey_after,
        }
    }
}
