//! Errors of the ingest path, and their single mapping to OTLP/HTTP and OTLP/gRPC statuses.

/// The delay a transient refusal suggests: HTTP `Retry-After` and gRPC `RetryInfo.retry_delay`
/// (OTLP specification, "OTLP/HTTP Throttling", "OTLP/gRPC Throttling").
pub const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// [`RETRY_AFTER`] as an HTTP `Retry-After` value (whole seconds, at least 1).
pub(crate) fn retry_after_header() -> axum::http::HeaderValue {
    axum::http::HeaderValue::from(RETRY_AFTER.as_secs().max(1))
}

/// Why a request could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body was not a valid protobuf message of the expected type.
    #[error("malformed protobuf body: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The body was not valid OTLP/JSON.
    #[error("malformed json body: {0}")]
    Json(#[from] serde_json::Error),
    /// The gzip stream was corrupt.
    #[error("malformed gzip body: {0}")]
    Gzip(#[source] std::io::Error),
    /// The body could not be read to its end (a broken or cut-off upload).
    #[error("cannot read request body: {0}")]
    Body(String),
    /// `Content-Type` was neither protobuf nor JSON.
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    /// `Content-Encoding` was neither gzip nor identity.
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedContentEncoding(String),
    /// The body, or its decompressed form, exceeded the configured limit.
    #[error("{what} exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// `body` or `decompressed body`.
        what: &'static str,
        /// The configured limit.
        limit_bytes: usize,
    },
    /// A dataset file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A dataset file was read but its content is not what its format requires.
    #[error("invalid dataset file {path}: {message}")]
    Dataset {
        /// The file.
        path: String,
        /// What is wrong, with the row where it applies.
        message: String,
    },
    /// The body did not arrive within the request-body timeout.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The consumer could not take the batch now; the client should retry.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// Sending to another OTLP endpoint failed (replay client).
    #[error("otlp client: {0}")]
    Client(String),
    /// The consumer failed for another reason.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the ingest [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status OTLP/HTTP prescribes (OTLP specification, "OTLP/HTTP Response").
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Protobuf(_) | Self::Json(_) | Self::Gzip(_) | Self::Body(_) => 400,
            Self::UnsupportedContentType(_) | Self::UnsupportedContentEncoding(_) => 415,
            Self::TooLarge { .. } => 413,
            Self::BodyTimeout(_) => 408,
            Self::Overloaded(_) => 503,
            Self::Internal(_) | Self::Io { .. } | Self::Dataset { .. } | Self::Client(_) => 500,
        }
    }

    /// The gRPC status OTLP/gRPC prescribes (OTLP specification, "OTLP/gRPC Response"); a
    /// transient refusal is `UNAVAILABLE` with `google.rpc.RetryInfo` of [`RETRY_AFTER`].
    pub fn grpc_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            Self::Protobuf(_)
            | Self::Json(_)
            | Self::Gzip(_)
            | Self::Body(_)
            | Self::UnsupportedContentType(_)
            | Self::UnsupportedContentEncoding(_) => tonic::Status::invalid_argument(message),
            Self::TooLarge { .. } => tonic::Status::resource_exhausted(message),
            Self::BodyTimeout(_) => tonic::Status::deadline_exceeded(message),
            Self::Overloaded(_) => {
                use tonic_types::{ErrorDetails, StatusExt};
                tonic::Status::with_error_details(
                    tonic::Code::Unavailable,
                    message,
                    ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
                )
            }
            Self::Internal(_) | Self::Io { .. } | Self::Dataset { .. } | Self::Client(_) => {
                tonic::Status::internal(message)
            }
        }
    }
}
