//! The engine's error type. Every error knows its exit code and carries a message that names the problem
//! and, where there is one, the fix. Messages never contain a token or a signed URL query string.

use std::path::PathBuf;

/// Process exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INTEGRITY: i32 = 3;
    pub const HUB: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const DISK_SPACE: i32 = 6;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum EmaError {
    /// Bad configuration or bad command-line input.
    #[error("{0}")]
    Config(String),
    /// An I/O error on a named path.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk or from the hub do not match their expected hash, size or structure.
    #[error("{0}")]
    Integrity(String),
    /// The hub cannot be reached, or refused us (401/403).
    #[error("{0}")]
    Hub(String),
    /// The repo, revision or file does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Not enough free disk space.
    #[error("{0}")]
    DiskSpace(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl EmaError {
    pub fn exit_code(&self) -> i32 {
        match self {
            EmaError::Config(_) => exit::USAGE,
            EmaError::Io { .. } | EmaError::Other(_) => exit::FAILURE,
            EmaError::Integrity(_) => exit::INTEGRITY,
            EmaError::Hub(_) => exit::HUB,
            EmaError::NotFound(_) => exit::NOT_FOUND,
            EmaError::DiskSpace(_) => exit::DISK_SPACE,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EmaError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A short machine-readable kind for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            EmaError::Config(_) => "config",
            EmaError::Io { .. } => "io",
            EmaError::Integrity(_) => "integrity",
            EmaError::Hub(_) => "hub",
            EmaError::NotFound(_) => "not_found",
            EmaError::DiskSpace(_) => "disk_space",
            EmaError::Other(_) => "failure",
        }
    }
}

pub type Result<T, E = EmaError> = std::result::Result<T, E>;
