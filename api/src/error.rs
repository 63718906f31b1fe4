//! API errors and their one mapping to HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error: a status, a stable code and a message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or body field was invalid; the message names it.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter or field.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The request body was not the JSON the endpoint takes.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// No such thing (an incident id, say).
    #[error("{0}")]
    NotFound(String),
    /// The request named an entity the graph does not hold.
    #[error(transparent)]
    UnknownEntity(#[from] loupe_graph::UnknownEntity),
    /// The analysis refused its input.
    #[error(transparent)]
    Analysis(#[from] loupe_analysis::Error),
    /// The SQL is not a read-only query, or does not parse or plan.
    #[error("{0}")]
    InvalidQuery(String),
    /// The query ran past its time limit and was cancelled.
    #[error("query cancelled after its time limit of {0:?}")]
    QueryTimeout(std::time::Duration),
    /// The query failed while running (a bad cast, say).
    #[error("{0}")]
    QueryFailed(String),
    /// The server cannot do this now or at all (recovering, no data directory).
    #[error("{0}")]
    Unavailable(String),
    /// The request carries no valid credential (a bearer token, a Slack signature).
    #[error("{0}")]
    Unauthenticated(String),
    /// The credential is valid but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A bug or a poisoned lock.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// Shorthand for [`ApiError::InvalidParameter`].
    pub fn invalid(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::InvalidParameter {
            name: name.to_owned(),
            reason: reason.to_string(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::UnknownEntity(_) => (StatusCode::NOT_FOUND, "unknown_entity"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Analysis(_) => (StatusCode::BAD_REQUEST, "invalid_window"),
            Self::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            Self::QueryTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "query_timeout"),
            Self::QueryFailed(_) => (StatusCode::BAD_REQUEST, "query_failed"),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        (status, Json(body)).into_response()
    }
}
