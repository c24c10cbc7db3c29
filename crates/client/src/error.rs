//! The client's errors, each with a sentence a person can act on.

use thiserror::Error;

/// Why pairing failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PairError {
    #[error("{0}")]
    BadCode(String),
    #[error("the code did not match. Check it and try again — the agent will show a new code")]
    WrongCode,
    #[error("that code expired (codes live 10 minutes). Ask the agent for a new code")]
    ExpiredCode,
    #[error("no agent is waiting with that code. Check the number at the front, or ask the agent for a new code")]
    UnknownCode,
    #[error("cannot reach the relay at {url}: {reason}")]
    RelayUnreachable { url: String, reason: String },
    #[error("the relay refused: {0}")]
    RelayRefused(String),
    #[error("this device is already paired with {0}. Unpair first to pair with another agent")]
    AlreadyPaired(String),
    #[error("{0}")]
    BadRelayUrl(String),
    #[error("pairing could not be saved: {0}")]
    Storage(String),
    #[error("the client has stopped")]
    Stopped,
}

/// Errors of the client's other operations.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClientError {
    #[error("not paired with an agent yet: pair with the code the agent shows")]
    NotPaired,
    #[error("the message is too long ({0} bytes; the limit is 1 MiB)")]
    MessageTooLong(usize),
    #[error("the outbox is full ({0} messages waiting for the agent)")]
    OutboxFull(usize),
    #[error("could not save the message: {0}")]
    Storage(String),
    #[error("a message id must be 1 to 64 letters, digits, '-' or '_' (got {0} bytes)")]
    BadMessageId(usize),
    #[error("a session name must be 1 to 128 printable characters without spaces")]
    BadSessionKey,
    /// Files that cannot be sent (too large, empty, too many): nothing was queued.
    #[error("{0}")]
    Files(String),
    #[error("the client has stopped")]
    Stopped,
}
