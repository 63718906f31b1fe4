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
