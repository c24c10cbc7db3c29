//! The agent: runs next to a person's OpenClaw gateway, pairs with their desktops through a
//! relay, and bridges end-to-end encrypted chat to the gateway.
//!
//! - [`gateway`]: a client for the gateway's WebSocket protocol, usable on its own.
//! - [`bridge`]: gateway chat/agent events → desktop messages (pure reconciliation).
//! - [`error`]: [`error::AgentError`], every failure as a sentence a person can act on.
//! - [`keys`]: where the agent's static key lives (systemd credential, OS keyring, or a file).
//! - [`at_rest`]: sealing the state dir's secret files under keys derived from the static key.
//! - [`files`]: private atomic writes and damaged-file handling for the state dir.
//! - [`state`]: the state dir: keys, pairings, sealed pending messages.
//! - [`config`]: gateway URL and token resolution (flags, env, the local OpenClaw config).
//! - [`pair`]: `clawtray-agent pair` — claim a nameplate, show the code, run the first pairing.
//! - [`link`]: one paired desktop's relay connection, meetings and outbox.
//! - [`received_files`]: parts of files from desktops, kept sealed until their message goes.
//! - [`turns`]: desktop messages waiting for, or in, their gateway run — one at a time.
//! - [`service`]: `clawtray-agent run` — the hub between links and the gateway.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod approvals;
pub mod at_rest;
pub mod bridge;
pub mod config;
pub mod error;
pub mod files;
pub mod gateway;
pub mod keys;
pub mod link;
pub mod pair;
pub mod received_files;
pub mod service;
pub mod state;
pub mod turns;
