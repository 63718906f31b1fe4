//! The middleware that puts a receiver's routes behind the [`Admission`] gate and a
//! request-body deadline: memory watermark first, then the declared `Content-Length` admitted
//! before a byte of the body is read (or the body's size once read, for requests without one,
//! such as gRPC's), the body read within the deadline, and the [`Ticket`] handed to the handler
//! in the request's extensions and released once the handler has answered.
//!
//! Refusals answer in the protocol of the route: gRPC statuses for OTLP/gRPC, `google.rpc.Status`
//! bodies for OTLP/HTTP, loupe's JSON error shape for the changes route.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, Limited};

use crate::admission::{Admission, Ticket};
use crate::error::Error;
use crate::metrics::{Reason, Transport};

/// Body limits the guard enforces while reading.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body read, bytes; a larger one is left to the route to refuse (413).
    pub max_body_bytes: usize,
    /// Longest the whole body may take to arrive (default 30 s); past it the request is
    /// refused (408, gRPC `DEADLINE_EXCEEDED`) and its connection closed.
    pub body_timeout: Duration,
}

#[derive(Clone)]
struct GuardState {
    admission: Arc<Admission>,
    transport: Transport,
    limits: BodyLimits,
}

/// `router` behind `admission`, refusing in the protocol of `transport`.
pub fn guard(
    router: Router,
    admission: Arc<Admission>,
    transport: Transport,
    limits: BodyLimits,
) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        GuardState {
            admission,
            transport,
            limits,
        },
        admit,
    ))
}

/// The error response for `error` on `transport`.
pub(crate) fn refusal(transport: Transport, headers: &HeaderMap, error: &Error) -> Response {
    let mut response = match transport {
        Transport::grpc => error.grpc_status().into_http::<Body>(),
        Transport::http => crate::http::refusal(headers, error),
        Transport::changes | Transport::in_process => {
            let status = StatusCode::from_u16(error.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = match error {
                Error::Overloaded(_) => "unavailable",
                Error::BodyTimeout(_) => "timeout",
                Error::TooLarge { .. } => "too_large",
                _ => "bad_request",
            };
            let body = serde_json::json!({"error": {"code": code, "message": error.to_string()}});
            (status, axum::Json(body)).into_response()
        }
    };
    // OTLP/HTTP's refusal carries Retry-After already; gRPC's has RetryInfo instead.
    if matches!(error, Error::Overloaded(_))
        && matches!(transport, Transport::changes | Transport::in_process)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, crate::error::retry_after_header());
    }
    if matches!(error, Error::BodyTimeout(_)) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

async fn admit(State(state): State<GuardState>, request: Request, next: Next) -> Response {
    let GuardState {
        admission,
        transport,
        limits,
    } = state;
    if let Err(e) = admission.check_memory(transport) {
        return refusal(transport, request.headers(), &e);
    }
    let declared = declared_length(request.headers());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        // The route refuses it (413) without reading it.
        return next.run(request).await;
    }
    let mut ticket = match declared {
        Some(n) => match admission.admit(n, transport).await {
            Ok(t) => Some(t),
            Err(e) => return refusal(transport, request.headers(), &e),
        },
        None => None,
    };
    let (parts, body) = request.into_parts();
    let refuse = |e: Error| refusal(transport, &parts.headers, &e);
    let read = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body_bytes).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            let error = match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => Error::TooLarge {
                    what: "body",
                    limit_bytes: limits.max_body_bytes,
                },
                None => Error::Body(e.to_string()),
            };
            admission.metrics().refused_request(
                transport,
                match error {
                    Error::TooLarge { .. } => Reason::too_large,
                    _ => Reason::invalid,
                },
            );
            return refuse(error);
        }
        Err(_) => {
            admission
                .metrics()
                .refused_request(transport, Reason::timeout);
            return refuse(Error::BodyTimeout(limits.body_timeout));
        }
    };
    if ticket.is_none() {
        match admission.admit(bytes.len(), transport).await {
            Ok(t) => ticket = Some(t),
            Err(e) => return refuse(e),
        }
    }
    let ticket: Option<Arc<Ticket>> = ticket.map(Arc::new);
    let mut request = Request::from_parts(parts, Body::from(bytes));
    if let Some(t) = &ticket {
        request.extensions_mut().insert(t.clone());
    }
    let response = next.run(request).await;
    drop(ticket);
    response
}
