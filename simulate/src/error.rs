//! The simulator's errors.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A topology file is invalid, or names an unknown built-in.
    #[error("invalid topology: {0}")]
    Topology(String),
    /// A case-set file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A case-set file is not what the simulator writes.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The simulator's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
