//! clawtray's relay: links a desktop and an agent by nameplate for their first pairing, then
//! routes their sealed binary frames by session. It sees no plaintext and holds no keys: it stores
//! session ids, hashes of device tokens and timestamps, nothing else.
//!
//! - [`config`]: every setting and limit, with named defaults.
//! - [`server`]: the listener, TLS, connection cap, graceful shutdown.
//! - [`http`]: the HTTP request head, `/healthz`, `/metrics`, and the WebSocket upgrade.
//! - [`conn`]: one connection's actor: its state machine and frame handling.
//! - [`pairing`]: pairing brokerage as a connection sees it, alone or in a cluster.
//! - [`nameplates`]: live nameplates and the pairing link between two connections (in process).
//! - [`cluster`]: a node of a relay cluster sharing state through Redis.
//! - [`peer`]: the handle through which one connection sends to, or closes, another.
//! - [`routes`]: which connection is each session's agent and desktop right now.
//! - [`store`]: persistent session records (SQLite, or Redis in a cluster).
//! - [`limits`]: token buckets and the per-address pairing limiter.
//! - [`metrics`]: counters rendered as Prometheus text.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client_ip;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod nameplates;
pub mod pairing;
pub mod peer;
pub mod routes;
pub mod server;
pub mod shared;
pub mod store;

pub use config::{Limits, RelayConfig};
pub use error::RelayError;
pub use server::{start, RelayHandle};
