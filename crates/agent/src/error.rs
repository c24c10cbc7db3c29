//! [`AgentError`]: everything that can go wrong in the agent, by concern, each a sentence a person
//! can act on (the CLI prints it as is; the service logs it).

use std::path::PathBuf;

use clawtray_outbox::OutboxError;
use clawtray_proto::ProtoError;

use crate::gateway::GatewayError;

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file or directory of the state dir could not be read, created, locked or replaced.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing failed — most often a full disk.
    #[error("cannot write {}: {source} (is the disk full?)", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state file was damaged; it was moved aside so it no longer blocks start-up.
    #[error("{what} was damaged ({detail}) and was moved to {aside}; {remedy}")]
    Damaged {
        what: &'static str,
        detail: String,
        aside: String,
        remedy: &'static str,
    },
    /// Our own data could not be encoded (a bug: please report it).
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    /// A second agent on one state dir would answer the same desktops with the same keys.
    #[error("another clawtray-agent is already running with the state dir {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// The static key: where it lives, missing, ambiguous, or its home not answering.
    #[error("{0}")]
    Key(String),
    /// Flags, URLs and the local OpenClaw config.
    #[error("{0}")]
    Config(String),
    /// Pairing a desktop (`clawtray-agent pair`).
    #[error("{0}")]
    Pairing(String),
    /// Talking to the relay outside a pairing (`unpair --now`).
    #[error("{0}")]
    Relay(String),
    /// The OpenClaw gateway.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A desktop's outbox.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The cryptography or the random source.
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

impl AgentError {
    /// [`AgentError::Io`] for `action` on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| AgentError::Io {
            action,
            path,
            source,
        }
    }
}

/// [`AgentError::Encode`] for `what`.
pub fn encode_err(what: &'static str) -> impl FnOnce(serde_json::Error) -> AgentError {
    move |e| AgentError::Encode {
        what,
        detail: e.to_string(),
    }
}

/// The agent's result type.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
