//! The relay's error type.

use thiserror::Error;

/// Errors that stop the relay from starting or serving.
#[derive(Debug, Error)]
pub enum RelayError {
    #[error("cannot listen on {addr}: {source} (is another relay already running there?)")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the session database at {path}: {message}")]
    Store { path: String, message: String },
    #[error("cannot load TLS certificate or key: {0}")]
    Tls(String),
    #[error(
        "cannot use Redis at {urls}: {message} (is it running, and reachable from this host?)"
    )]
    Redis { urls: String, message: String },
    #[error("no data directory could be determined for the session database; pass --db PATH")]
    NoDataDir,
}
