//! The agent's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the agent, with the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file or a setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No usable state directory.
    #[error("state directory {path} is not writable: {reason}")]
    StateDir { path: PathBuf, reason: String },
    /// Enrollment failed (bad token, server unreachable, unexpected answer).
    #[error("enrollment failed: {0}")]
    Enroll(String),
    /// A transport-level failure that is not a normal send outcome.
    #[error("transport: {0}")]
    Transport(String),
    /// The packet capture thread could not be started or died.
    #[error("packet capture: {0}")]
    Capture(String),
    /// A disk buffer record or state file is corrupt.
    #[error("corrupt {what} in {path}: {reason}")]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// JSON (de)serialization of agent state or events failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Wraps an I/O error with what was being done and on which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The agent's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
