//! Serving a router on a listener with the limits a server on a network needs, which
//! `axum::serve` does not expose: a cap on open connections per listener (further clients wait
//! in the kernel's accept queue), HTTP/2 concurrent streams per connection, a header-read
//! timeout for HTTP/1 (a client that sends its headers byte by byte is cut off), HTTP/2
//! keep-alive pings, and a request-body deadline. Built on hyper-util's `auto` connection
//! builder (HTTP/1.1 and HTTP/2, prior knowledge or ALPN), with graceful shutdown.
//!
//! Key names follow the OpenTelemetry Collector's `confighttp` (`read_header_timeout`) and
//! `configgrpc` (`max_concurrent_streams`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Connection limits of each listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenConfig {
    /// Open connections per listener (default 1024); past it, new connections wait to be
    /// accepted.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams (gRPC calls) per connection (default 100).
    pub max_concurrent_streams: u32,
    /// Longest an HTTP/1 client may take to send a request's headers (default 30 s).
    pub read_header_timeout: Duration,
    /// Longest a request's body may take to arrive (default 30 s): 408 after it.
    pub body_timeout: Duration,
    /// Longest in-flight requests get to finish at shutdown (default 10 s).
    pub shutdown_grace: Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_concurrent_streams: 100,
            read_header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, in a task.
pub fn serve_on<L>(
    mut listener: L,
    router: axum::Router,
    config: ListenConfig,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.read_header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        let builder = Arc::new(builder);
        let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        loop {
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let (io, _peer) = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let service = TowerToHyperService::new(router.clone());
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, what, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                what,
                grace = ?config.shutdown_grace,
                "connections still open after the shutdown grace; closing them"
            );
        }
    })
}

/// Reads every request's body within `timeout` (and at most `max_bytes`) before the routes
/// see it, so a client trickling a body holds no handler: 408 with `Connection: close` when it
/// is late, 413 when it is too large.
pub fn body_deadline(router: axum::Router, timeout: Duration, max_bytes: usize) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        (timeout, max_bytes),
        read_body,
    ))
}

async fn read_body(
    State((timeout, max_bytes)): State<(Duration, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let error = |status: StatusCode, code: &str, message: String| {
        let body = serde_json::json!({"error": {"code": code, "message": message}});
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    match tokio::time::timeout(timeout, Limited::new(body, max_bytes).collect()).await {
        Ok(Ok(collected)) => {
            next.run(Request::from_parts(parts, Body::from(collected.to_bytes())))
                .await
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body exceeds {max_bytes} bytes"),
        ),
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("cannot read the request body: {e}"),
        ),
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request body did not arrive within {timeout:?}"),
        ),
    }
}
