//! Errors of the data model: why one item from the wire was rejected.

/// Why a span, log record or data point could not be taken into the model.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// An id had the wrong number of bytes (trace ids are 16, span ids 8).
    #[error("invalid {field} length: {len} bytes, expected {expected}")]
    InvalidIdLength {
        /// Which field: `trace_id`, `span_id` or `parent_span_id`.
        field: &'static str,
        /// The length received.
        len: usize,
        /// The length the OTLP specification requires.
        expected: usize,
    },
    /// An id was all zero bytes, which the OTLP specification forbids for spans.
    #[error("invalid {field}: all zero bytes")]
    ZeroId {
        /// Which field.
        field: &'static str,
    },
    /// A number data point carried no value.
    #[error("data point of metric {metric:?} has no value")]
    MissingValue {
        /// The metric's name.
        metric: String,
    },
}

/// Result with the model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
