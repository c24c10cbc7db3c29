//! JSON control frames between an end (agent or desktop) and the relay: `{"t": ...}` text
//! WebSocket messages. Binary frames are the ends' business and are described in [`crate::frame`].

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// Largest control frame either side accepts, in bytes.
pub const MAX_CONTROL_FRAME: usize = 4096;

/// Every control frame, in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ControlFrame {
    /// agent → relay: give me a nameplate.
    Claim,
    /// relay → agent: your nameplate and how long it lives.
    Claimed {
        /// The digits to show in the code.
        nameplate: String,
        /// Seconds until it expires.
        expires_in: u64,
    },
    /// desktop → relay: link me with the agent holding this nameplate.
    Join {
        /// The nameplate typed by the person.
        nameplate: String,
    },
    /// relay → both: the two sides of a nameplate are linked; start SPAKE2.
    Linked,
    /// both ways, forwarded: a SPAKE2 message (base64).
    Pake {
        /// Standard base64 of the SPAKE2 message.
        msg: String,
    },
    /// end → relay: my side confirmed the key.
    Confirmed,
    /// end → relay: my side's confirmation failed; burn the nameplate.
    Failed {
        /// Optional human reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// relay → end: the session exists; keep these.
    Paired {
        /// The session id.
        session: String,
        /// This end's device token (secret: redacted in `Debug`).
        token: SecretString,
    },
    /// relay → end: resume accepted.
    Resumed {
        /// Whether the other end is connected right now.
        peer_online: bool,
    },
    /// relay → end: the other end connected.
    PeerOnline,
    /// relay → end: the other end disconnected.
    PeerOffline,
    /// relay → desktop: a new agent process connected (it restarted): run a new meeting.
    PeerRestarted,
    /// end → relay: end this session for both sides.
    Revoke,
    /// relay → end: something went wrong; `code` says whether the session survives.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
    },
}

impl ControlFrame {
    /// Serialize to the JSON text sent on the wire.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing these plain enums cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(r#"{"t":"error","code":"INTERNAL","message":"serialization failed"}"#)
        })
    }

    /// Parse a text frame.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// An error frame with the code's standard message.
    #[must_use]
    pub fn error(code: ErrorCode) -> Self {
        ControlFrame::Error {
            code,
            message: code.describe().to_owned(),
        }
    }
}

/// Relay error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No session with that id.
    SessionNotFound,
    /// The session was unused for too long.
    SessionExpired,
    /// One side ended the session.
    SessionRevoked,
    /// The session id is malformed.
    InvalidSession,
    /// The device token does not belong to this session.
    DeviceTokenMismatch,
    /// Too many attempts; try later.
    RateLimited,
    /// No live nameplate with that number (never existed, already used, or burned).
    NameplateUnknown,
    /// The nameplate's 10 minutes ran out.
    NameplateExpired,
    /// The other side of the pairing reported a failed confirmation.
    PairingFailed,
    /// The other side of the pairing left before it finished.
    PeerGone,
    /// A frame could not be parsed or is not allowed now.
    BadFrame,
    /// A frame exceeded the size limit.
    FrameTooLarge,
    /// Too many frames or bytes per second.
    Flooding,
    /// The connection could not keep up reading its frames.
    SlowReader,
    /// Nothing arrived for too long.
    IdleTimeout,
    /// Pairing or the upgrade took too long.
    HandshakeTimeout,
    /// The relay is at its connection limit.
    TooManyConnections,
    /// A newer connection for the same session side took over.
    Replaced,
    /// The relay is shutting down or restarting.
    ShuttingDown,
    /// The relay hit an internal problem.
    Internal,
    /// A relay of a cluster cannot reach the cluster's shared store (Redis) right now; retry.
    Unavailable,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// True when the stored session is gone for good and the person must pair again.
    #[must_use]
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorCode::SessionNotFound
                | ErrorCode::SessionExpired
                | ErrorCode::SessionRevoked
                | ErrorCode::InvalidSession
                | ErrorCode::DeviceTokenMismatch
        )
    }

    /// The standard sentence for this code.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            ErrorCode::SessionNotFound => "This pairing is not known to the relay any more. Pair again with a new code.",
            ErrorCode::SessionExpired => "This pairing expired after a long time unused. Pair again with a new code.",
            ErrorCode::SessionRevoked => "This pairing was ended (unpaired) on one side. Pair again with a new code.",
            ErrorCode::InvalidSession => "The stored pairing is malformed. Pair again with a new code.",
            ErrorCode::DeviceTokenMismatch => "The relay did not accept this device's credentials for the pairing. Pair again with a new code.",
            ErrorCode::RateLimited => "Too many attempts from this address. Wait a minute and try again.",
            ErrorCode::NameplateUnknown => "No agent is waiting with that code. Check the number at the front, or ask the agent for a new code.",
            ErrorCode::NameplateExpired => "That code expired (codes live 10 minutes). Ask the agent for a new code.",
            ErrorCode::PairingFailed => "The code did not match on the other side. Ask the agent for a new code and type it again.",
            ErrorCode::PeerGone => "The other side left before pairing finished. Start pairing again.",
            ErrorCode::BadFrame => "The relay received a frame it cannot accept at this point.",
            ErrorCode::FrameTooLarge => "A message exceeded the relay's size limit.",
            ErrorCode::Flooding => "Too many messages too fast; the relay closed the connection.",
            ErrorCode::SlowReader => "The connection could not keep up with incoming messages; the relay closed it.",
            ErrorCode::IdleTimeout => "Nothing arrived for too long; the relay closed the idle connection.",
            ErrorCode::HandshakeTimeout => "Pairing took too long; start again.",
            ErrorCode::TooManyConnections => "The relay is full right now. Try again shortly.",
            ErrorCode::Replaced => "A newer connection for this device took over.",
            ErrorCode::ShuttingDown => "The relay is restarting. Reconnecting shortly.",
            ErrorCode::Internal => "The relay hit an internal problem. Try again.",
            ErrorCode::Unavailable => "The relay cannot reach its shared store right now. It recovers by itself; try again in a few seconds.",
            ErrorCode::Unknown => "The relay reported an error this version does not know.",
        }
    }

    /// The wire spelling, e.g. `SESSION_NOT_FOUND`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::SessionExpired => "SESSION_EXPIRED",
            ErrorCode::SessionRevoked => "SESSION_REVOKED",
            ErrorCode::InvalidSession => "INVALID_SESSION",
            ErrorCode::DeviceTokenMismatch => "DEVICE_TOKEN_MISMATCH",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::NameplateUnknown => "NAMEPLATE_UNKNOWN",
            ErrorCode::NameplateExpired => "NAMEPLATE_EXPIRED",
            ErrorCode::PairingFailed => "PAIRING_FAILED",
            ErrorCode::PeerGone => "PEER_GONE",
            ErrorCode::BadFrame => "BAD_FRAME",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::Flooding => "FLOODING",
            ErrorCode::SlowReader => "SLOW_READER",
            ErrorCode::IdleTimeout => "IDLE_TIMEOUT",
            ErrorCode::HandshakeTimeout => "HANDSHAKE_TIMEOUT",
            ErrorCode::TooManyConnections => "TOO_MANY_CONNECTIONS",
            ErrorCode::Replaced => "REPLACED",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes_match_the_design() {
        assert_eq!(ControlFrame::Claim.to_json(), r#"{"t":"claim"}"#);
        assert_eq!(
            ControlFrame::Claimed {
                nameplate: "7351".into(),
                expires_in: 600
            }
            .to_json(),
            r#"{"t":"claimed","nameplate":"7351","expires_in":600}"#
        );
        assert_eq!(
            ControlFrame::PeerRestarted.to_json(),
            r#"{"t":"peer_restarted"}"#
        );
        assert_eq!(
            ControlFrame::error(ErrorCode::DeviceTokenMismatch).to_json(),
            format!(
                r#"{{"t":"error","code":"DEVICE_TOKEN_MISMATCH","message":"{}"}}"#,
                ErrorCode::DeviceTokenMismatch.describe()
            )
        );
        assert_eq!(
            ControlFrame::from_json(r#"{"t":"failed"}"#).unwrap(),
            ControlFrame::Failed { reason: None }
        );
    }

    #[test]
    fn a_paired_frame_never_shows_its_token_in_debug() {
        let f = ControlFrame::from_json(r#"{"t":"paired","session":"s","token":"SECRET-TOKEN"}"#)
            .unwrap();
        assert!(!format!("{f:?}").contains("SECRET-TOKEN"));
        assert!(f.to_json().contains("SECRET-TOKEN"));
    }

    #[test]
    fn unknown_codes_and_frames_are_handled() {
        let f = ControlFrame::from_json(r#"{"t":"error","code":"SOMETHING_NEW","message":"x"}"#)
            .unwrap();
        assert_eq!(
            f,
            ControlFrame::Error {
                code: ErrorCode::Unknown,
                message: "x".into()
            }
        );
        assert!(ControlFrame::from_json(r#"{"t":"teleport"}"#).is_err());
        assert!(ControlFrame::from_json("{").is_err());
    }

    #[test]
    fn permanence_follows_the_design() {
        for c in [
            ErrorCode::SessionNotFound,
            ErrorCode::SessionExpired,
            ErrorCode::SessionRevoked,
            ErrorCode::InvalidSession,
            ErrorCode::DeviceTokenMismatch,
        ] {
            assert!(c.is_permanent());
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        for c in [
            ErrorCode::RateLimited,
            ErrorCode::NameplateUnknown,
            ErrorCode::ShuttingDown,
        ] {
            assert!(!c.is_permanent());
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
    }
}
