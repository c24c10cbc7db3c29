//! A client for the OpenClaw gateway's WebSocket protocol (v4), usable on its own.
//!
//! - [`frames`]: the JSON frames (`req` / `res` / `event`) and the gateway's error shape.
//! - [`identity`]: the Ed25519 device identity (persisted, 0600) and the v3 connect signature.
//! - [`calls`]: the methods the agent calls (`chat.send`, `chat.abort`, `chat.history`,
//!   `agent.wait`), typed.
//! - [`approvals`]: exec approvals — the `exec.approval.*` events, `list` and `resolve`, typed.
//! - [`events`]: the events the agent reads (`chat`, `agent`) and the message shape they and
//!   `chat.history` share, typed.
//! - [`client`]: [`GatewayClient`], an actor that connects (challenge → `connect` → `hello-ok`),
//!   correlates requests with responses, publishes events, watches `tick` liveness, and reconnects
//!   with capped backoff honouring the gateway's `retryAfterMs`.

pub mod approvals;
pub mod calls;
pub mod client;
pub mod events;
pub mod frames;
pub mod identity;

pub use client::{GatewayClient, GatewayConfig, GatewayError, GatewayEvent, GatewayLink};
