//! The desktop side of clawtray, without any GUI: everything the tray app and `clawtray-cli` need.
//!
//! - [`client`]: [`RelayClient`], one actor task that owns the relay connection, pairing, resume,
//!   meetings, backoff and the outbox; driven by commands, reporting through events.
//! - [`state`]: the connection state machine's states and the events the UI subscribes to.
//! - [`session_store`]: where a pairing lives — the OS keyring for secrets, a small file for the rest.
//! - `clawtray_outbox` (re-exported as [`outbox`]): messages the person sent, persisted (sealed)
//!   until the agent acknowledges them.
//! - [`chat_model`]: the conversation as the UI shows it, built from chat events. Pure.
//! - [`pairing_flow`]: the first pairing over one relay connection.
//! - [`wire`]: WebSocket connect and frame helpers.
//! - [`relay_url`]: relay URL validation (`ws://` only to loopback unless explicitly allowed).
//! - [`backoff`]: reconnect delays with jitter. Pure.

pub mod backoff;
pub mod chat_model;
pub mod client;
pub mod error;
pub mod pairing_flow;
pub mod relay_url;
pub mod session_store;
pub mod state;
pub mod wire;

pub use clawtray_outbox as outbox;
pub use client::{ClientConfig, RelayClient};
pub use error::{ClientError, PairError};
pub use state::{ClientEvent, ConnectionState, MessageState};
