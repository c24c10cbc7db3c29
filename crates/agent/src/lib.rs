//! The agent: runs next to a person's OpenClaw gateway, pairs with their desktops through a
//! relay, and bridges end-to-end encrypted chat to the gateway.
//!
//! - [`gateway`]: a client for the gateway's WebSocket protocol, usable on its own.
//! - [`bridge`]: gateway chat/agent events → desktop messages (pure reconciliation).
//! - [`files`]: private atomic writes and damaged-file handling for the state dir.

pub mod bridge;
pub mod files;
pub mod gateway;
