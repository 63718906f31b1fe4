//! Errors of the store.

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done: `open`, `read`, `append to`, `sync`, `truncate`.
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Stored data does not have the expected shape (a bug or a foreign file).
    #[error("stored data: {0}")]
    Schema(String),
    /// A segment file could not be written or read.
    #[error("segment {path}: {reason}")]
    Segment {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A query was refused or failed.
    #[error("{0}")]
    Query(QueryError),
}

/// Why a query did not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is not a read-only query, or does not parse or plan.
    #[error("{0}")]
    Invalid(String),
    /// The query ran past its time limit and was cancelled.
    #[error("query cancelled after its time limit of {0:?}")]
    Timeout(std::time::Duration),
    /// Execution failed.
    #[error("query failed: {0}")]
    Execution(String),
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
