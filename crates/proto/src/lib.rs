//! clawtray's wire protocol, shared by the desktop, the agent and the relay.
//!
//! Pure: no sockets, no files, no clocks, no async. Every piece is a value or a small state
//! machine that is fed bytes and returns bytes to send or a final result, so each transition can be
//! tested with plain values (and fuzzed).
//!
//! - [`code`]: pairing codes (`7351-K4Q7-2MXD`): generate, format, parse leniently.
//! - [`pairing`]: first pairing — SPAKE2 on the code's secret, key confirmation, pinning of static keys.
//! - [`meeting`]: every meeting — Noise KK with the pinned keys, yielding per-direction transport keys.
//! - [`sealed`]: sealed data frames (version ‖ counter ‖ AES-256-GCM).
//! - [`frame`]: the binary frame kinds the relay forwards untouched.
//! - [`delivery`]: reliable-delivery bookkeeping (sequence numbers, cumulative acks, resend, dedupe).
//! - [`endpoint`]: one end of a session: meetings + sealed frames + reliable delivery, as a machine.
//! - [`control`]: JSON control frames between an end and the relay.
//! - [`chat`]: chat messages carried inside sealed frames.
//! - [`files`]: files sent with a chat message: description, parts, limits, reassembly.
//! - [`secret`]: secret types that redact in `Debug` and zeroize on drop.
//! - [`kdf`]: the HKDF labels and derivations, in one place.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chat;
pub mod code;
pub mod control;
pub mod delivery;
pub mod endpoint;
pub mod error;
pub mod files;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod kdf;
pub mod meeting;
pub mod pacer;
pub mod pairing;
pub mod sealed;
pub mod secret;

pub use error::ProtoError;

/// Protocol label bound into every Noise prologue and key derivation.
pub const PROTOCOL_LABEL: &[u8] = b"clawtray/1";

/// The two ends of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The process next to the OpenClaw gateway (SPAKE2 side A, Noise responder).
    Agent,
    /// The tray app or CLI (SPAKE2 side B, Noise initiator).
    Desktop,
}

impl Role {
    /// The other end.
    #[must_use]
    pub fn peer(self) -> Role {
        match self {
            Role::Agent => Role::Desktop,
            Role::Desktop => Role::Agent,
        }
    }

    /// Lower-case name used in labels and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Desktop => "desktop",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
