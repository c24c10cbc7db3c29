//! The desktop side of clawtray, without any GUI: everything the tray app and `clawtray-cli` need.
//!
//! - [`agents`]: several agents on one desktop — a slot (keyring entry, metadata, outbox) each.
//! - [`client`]: [`RelayClient`], one actor task that owns the relay connection, pairing, resume,
//!   meetings, backoff and the outbox; driven by commands, reporting through events.
//! - [`state`]: the connection state machine's states and the events the UI subscribes to.
//! - [`session_store`]: where a pairing lives — the OS keyring for secrets, a small file for the rest.
//! - `clawtray_outbox` (re-exported as [`outbox`]): messages the person sent, persisted (sealed)
//!   until the agent acknowledges them.
//! - [`approvals`]: the exec approvals waiting for the person, built from chat events. Pure.
//! - [`chat_model`]: the conversation as the UI shows it, built from chat events. Pure.
//! - [`outgoing_files`]: files attached to a message: checked, described, cut into parts. Pure.
//! - [`pairing_flow`]: the first pairing over one relay connection.
//! - [`ipc`]: the local channel between the tray host (which runs the [`RelayClient`]) and the
//!   chat window process.
//! - [`logging`]: each desktop process's rolling log file.
//! - [`links`]: what the chat window may load and what opens in the system browser. Pure.
//! - [`wire`]: WebSocket connect and frame helpers.
//! - [`warm`]: reading the chat window's libraries into the page cache ahead of the first click.
//! - [`relay_url`]: relay URL validation (`ws://` only to loopback unless explicitly allowed).
//! - `clawtray_transport` (re-exported as [`transport`]): opening the relay WebSocket, paced
//!   sending, the heartbeat and reconnect backoff — the same code the agent's links run.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod agents;
pub mod approvals;
pub mod chat_model;
pub mod client;
pub mod error;
#[cfg(unix)]
pub mod ipc;
pub mod links;
pub mod logging;
pub mod outgoing_files;
pub mod pairing_flow;
pub mod relay_url;
pub mod session_store;
pub mod state;
pub mod update;
pub mod warm;
pub mod wire;

pub use clawtray_outbox as outbox;
pub use clawtray_transport as transport;
pub use client::{ClientConfig, RelayClient};
pub use error::{ClientError, PairError};
pub use state::{ClientEvent, ConnectionState, MessageState, Sent};
