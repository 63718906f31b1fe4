//! Errors of the analysis.

/// Why an analysis could not run.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A window whose start is not before its end.
    #[error("invalid {which} window: start {start} is not before end {end}")]
    EmptyWindow {
        /// `analysis` or `baseline`.
        which: &'static str,
        /// Start, unix nanoseconds.
        start: u64,
        /// End, unix nanoseconds.
        end: u64,
    },
}

/// Result with the analysis [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
