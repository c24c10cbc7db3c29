//! The protocol crate's error type: one enum, each variant saying what went wrong in words a
//! caller can act on (or show).

use thiserror::Error;

/// Everything that can go wrong while parsing, pairing, meeting, sealing or opening.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    // --- pairing codes
    #[error("the pairing code is empty: type the code the agent shows, like 73514062-K4Q7-2MXD")]
    CodeEmpty,
    #[error("the pairing code has a character that cannot appear in it: '{0}'")]
    CodeBadCharacter(char),
    #[error("the pairing code is too short: it needs a number, then 8 letters or digits (like 73514062-K4Q7-2MXD)")]
    CodeTooShort,
    #[error(
        "the pairing code is missing its number at the front (like the 73514062 in 73514062-K4Q7-2MXD)"
    )]
    CodeMissingNameplate,
    #[error(
        "the pairing code's number (before the first dash) must be digits only, 1 to 8 of them"
    )]
    CodeBadNameplate,
    #[error("the pairing code's secret part must be exactly 8 letters or digits")]
    CodeBadSecretLength,

    // --- first pairing
    #[error("the pairing message from the other side is malformed")]
    PakeMalformed,
    #[error("the pairing code did not match: the code was mistyped, expired, or someone tried to intercept the pairing")]
    WrongCode,
    #[error("the other side's pairing details could not be read")]
    PairingPayloadMalformed,
    #[error("pairing step out of order: {0}")]
    PairingOutOfOrder(&'static str),

    // --- meetings (Noise KK)
    #[error("the secure handshake failed: the other side does not hold the key paired with this device (possible attack, or the other side lost its pairing)")]
    HandshakeFailed,
    #[error("handshake message is malformed")]
    HandshakeMalformed,

    // --- sealed frames
    #[error("frame is too short to be a sealed frame")]
    FrameTruncated,
    #[error("frame has unknown version or kind byte {0:#04x}")]
    UnknownFrameKind(u8),
    #[error(
        "frame counter {got} is not above the last accepted counter {last}: replayed or reordered"
    )]
    CounterNotIncreasing { got: u64, last: u64 },
    #[error("frame failed authentication: tampered, truncated, or sealed with other keys")]
    FrameAuthFailed,
    #[error("message is {0} bytes; the limit is 1 MiB")]
    PlaintextTooLarge(usize),
    #[error("this meeting has sealed its maximum number of frames; start a new meeting")]
    MeetingExhausted,

    // --- messages inside frames
    #[error("message could not be decoded: {0}")]
    MessageMalformed(String),
    #[error("peer acknowledged message {acked} but only {sent} were ever sent: the peer's state does not match ours")]
    AckBeyondSent { acked: u64, sent: u64 },
    #[error("the outbox is full ({0} messages waiting): the other side has been away too long")]
    OutboxFull(usize),

    #[error("operating system random number generator failed")]
    Rng,
}
