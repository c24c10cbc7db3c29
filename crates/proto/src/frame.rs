//! Binary frames: the first byte says what the rest is. The relay forwards them untouched between
//! the two ends of a pairing or session and never needs to look past this byte.
//!
//! | byte | kind | body |
//! |---|---|---|
//! | `0x01` | sealed data, version 1 | counter(8) ‖ ciphertext ‖ tag — see [`crate::sealed`] |
//! | `0x02` | meeting init (desktop → agent) | Noise KK message 1 |
//! | `0x03` | meeting reply (agent → desktop) | Noise KK message 2 |
//! | `0x10` | pairing confirmation (both ways) | MAC(32) ‖ sealed static key and name |

use crate::ProtoError;

/// Sealed data frame, version 1.
pub const SEALED_V1: u8 = 0x01;
/// Noise KK message 1.
pub const MEETING_INIT: u8 = 0x02;
/// Noise KK message 2.
pub const MEETING_REPLY: u8 = 0x03;
/// Pairing key confirmation.
pub const PAIRING_CONFIRM: u8 = 0x10;

/// What a binary frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Application data sealed with the meeting's keys.
    Sealed,
    /// Start of a meeting (Noise KK message 1).
    MeetingInit,
    /// Answer to a meeting init (Noise KK message 2).
    MeetingReply,
    /// Key confirmation of a first pairing.
    PairingConfirm,
}

impl FrameKind {
    /// The leading byte.
    #[must_use]
    pub fn byte(self) -> u8 {
        match self {
            FrameKind::Sealed => SEALED_V1,
            FrameKind::MeetingInit => MEETING_INIT,
            FrameKind::MeetingReply => MEETING_REPLY,
            FrameKind::PairingConfirm => PAIRING_CONFIRM,
        }
    }
}

/// Classify a binary frame by its first byte.
pub fn classify(frame: &[u8]) -> Result<FrameKind, ProtoError> {
    match frame.first() {
        None => Err(ProtoError::FrameTruncated),
        Some(&SEALED_V1) => Ok(FrameKind::Sealed),
        Some(&MEETING_INIT) => Ok(FrameKind::MeetingInit),
        Some(&MEETING_REPLY) => Ok(FrameKind::MeetingReply),
        Some(&PAIRING_CONFIRM) => Ok(FrameKind::PairingConfirm),
        Some(&other) => Err(ProtoError::UnknownFrameKind(other)),
    }
}

/// `kind ‖ body`.
#[must_use]
pub fn encode(kind: FrameKind, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + body.len());
    v.push(kind.byte());
    v.extend_from_slice(body);
    v
}

/// The body of a frame of the expected kind.
pub fn body_of(frame: &[u8], expected: FrameKind) -> Result<&[u8], ProtoError> {
    let kind = classify(frame)?;
    if kind != expected {
        return Err(ProtoError::UnknownFrameKind(kind.byte()));
    }
    Ok(&frame[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_kind_and_rejects_others() {
        for k in [
            FrameKind::Sealed,
            FrameKind::MeetingInit,
            FrameKind::MeetingReply,
            FrameKind::PairingConfirm,
        ] {
            let f = encode(k, b"x");
            assert_eq!(classify(&f), Ok(k));
            assert_eq!(body_of(&f, k), Ok(&b"x"[..]));
        }
        assert_eq!(classify(&[]), Err(ProtoError::FrameTruncated));
        assert_eq!(classify(&[0x7f]), Err(ProtoError::UnknownFrameKind(0x7f)));
        assert!(body_of(&[MEETING_INIT], FrameKind::MeetingReply).is_err());
    }
}
