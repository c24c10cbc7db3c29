//! [`RelayClient`]: one actor task that owns the relay connection and all session state. The app
//! and the CLI drive it with commands and watch its [`ConnectionState`](crate::ConnectionState)
//! and [`ClientEvent`](crate::ClientEvent)s.
//!
//! - [`handle`]: the [`RelayClient`] handle and the commands it sends the actor;
//! - [`actor`]: the actor — loading the pairing, pairing, waiting between connections, the outbox;
//! - [`connection`]: one relay connection's loop — frames in and out, the endpoint's events;
//! - [`policy`]: when to start meetings, deadlines, the circuit breaker, resync and the ack
//!   watchdog, as a pure machine fed `(input, now)` and unit-tested without sockets;
//! - [`config`]: the settings.
//!
//! ```text
//!             pair ok                 resumed                meeting done
//! Unpaired ──────────▶ (paired) ──▶ Connecting ──▶ Handshaking ──▶ Online{peer}
//!    ▲                    ▲             │ error          │ 5 failed handshakes (circuit breaker)
//!    │ unpair             │ timer /     ▼                ▼
//!    │                    └──── WaitingToRetry{next, last_error}  (1 s doubling to 30 s, jitter)
//!    │                    │ timer (slow) / reconnect now
//!    │ unpair / pair      │   relay says the pairing is gone (revoked, unknown, expired, …)
//!    ├──────────────── Refused{reason, next} ◀──────────────────────
//!    │ sealed `unpair` from the agent
//!    └────────────────────────────────── (any connected state)
//! NeedsRepairing{reason}: the stored pairing itself is unreadable (keyring damaged).
//! ```
//!
//! Nothing the person sends is lost: every message is written to the outbox before it is first
//! transmitted, waits there while the agent is away, and is resent after each meeting until the
//! agent acknowledges it. Nothing is sealed with an old meeting's keys.
//!
//! Nothing the relay says destroys what this end holds: a relay error, however permanent it claims
//! to be, and any number of failed or unanswered meetings only change the state; the pairing and
//! the outbox go only when the person unpairs or pairs again, or when the agent says `unpair`
//! inside a meeting (sealed with the pinned keys, so no relay can forge it).

mod actor;
pub mod config;
mod connection;
mod handle;
pub mod policy;

pub use config::{ClientConfig, OUTBOX_CAPACITY, UNPAIR_ACK_WAIT};
pub use handle::RelayClient;
pub use policy::{MAX_BREAKER_TRIPS, MAX_HANDSHAKE_FAILURES};
