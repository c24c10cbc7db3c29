//! Test harness for clawtray's cross-process tests (never shipped).
//!
//! - [`relay`]: the real `clawtray-relay` binary as a child process (start, SIGKILL, SIGTERM,
//!   restart on the same port and database, HTTP probes, its log).
//! - [`agent_end`]: a scripted agent end: pairs, resumes, answers meetings, and replies to chat
//!   with streamed deltas — built on `clawtray_proto::endpoint`, speaking to the real relay.
//! - [`fake_model`]: an OpenAI-compatible streaming model on 127.0.0.1 for the real gateway.
//! - [`gateway`]: the real OpenClaw gateway (pinned, from npm) as a child process, offline.

pub mod agent_end;
pub mod fake_model;
pub mod gateway;
pub mod relay;
