//! What the UI can see: the connection state machine's states, message states, and the events a
//! [`crate::RelayClient`] publishes. All serialisable, so the tray app can pass them to the web view.

use serde::{Deserialize, Serialize};

use clawtray_proto::chat::ToDesktop;

/// Whether the agent's end is connected to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum PeerPresence {
    /// Connected and in a meeting with us.
    Online,
    /// Not connected right now: messages queue.
    Away,
}

/// The client's connection state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// No pairing: show the pairing dialog.
    Unpaired,
    /// A pairing is in progress.
    Pairing,
    /// Opening the relay connection.
    Connecting,
    /// Connected; running a meeting with the agent.
    Handshaking,
    /// Connected to the relay.
    Online {
        /// Whether the agent is there.
        peer: PeerPresence,
    },
    /// The last attempt failed; the next one is scheduled.
    WaitingToRetry {
        /// Unix milliseconds of the next attempt.
        #[ts(type = "number")]
        next_try_at_ms: u64,
        /// What went wrong, in words.
        last_error: String,
    },
    /// The relay refuses this pairing (it says it was ended, expired or is unknown). A relay's
    /// word is not trusted to destroy anything: the pairing and its queued messages are kept
    /// until the person pairs again or unpairs, or the agent ends the pairing end to end; the
    /// client tries the pairing again now and then, in case the relay was wrong.
    Refused {
        /// What the relay said, in words.
        reason: String,
        /// Unix milliseconds of the next attempt.
        #[ts(type = "number")]
        next_try_at_ms: u64,
    },
    /// The pairing is gone for good; the person must pair again.
    NeedsRepairing {
        /// Why, in words.
        reason: String,
    },
}

/// Where a sent message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Saved in the outbox, waiting for the agent.
    Queued,
    /// Sealed and sent; not yet acknowledged.
    Sent,
    /// The agent acknowledged it.
    Delivered,
    /// The agent's reply to it finished.
    Answered,
}

/// A message the person sent: its id, and where it is now (the core decides: sealed and sent
/// when a meeting with the agent is live, queued otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Sent {
    pub id: String,
    pub state: MessageState,
}

/// What a [`crate::RelayClient`] tells its subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClientEvent {
    /// The connection state changed.
    State {
        /// The new state.
        state: ConnectionState,
    },
    /// A message from the agent (in order, exactly once).
    Chat {
        /// The message.
        message: ToDesktop,
    },
    /// A message we sent moved on.
    Message {
        /// The message id.
        id: String,
        /// Its new state.
        state: MessageState,
    },
    /// Something a person should know (a handshake failure, a circuit breaker, storage trouble).
    Notice {
        /// A sentence.
        message: String,
    },
}
