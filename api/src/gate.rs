//! The query gate: SQL, analyses, `ask`, manual incidents, diffs and trace searches run at
//! most `max_concurrent` at a time, so a burst of expensive reads cannot take the CPU the
//! ingest path needs. Up to `max_waiting` more wait their turn for at most `max_wait`; past
//! that a request is refused at once with 503 and `Retry-After` (the API's `unavailable`
//! error), never queued without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The gate's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateConfig {
    /// Expensive requests running at once (default: the CPUs, at least 2).
    pub max_concurrent: usize,
    /// Requests waiting for a turn (default 64).
    pub max_waiting: usize,
    /// Longest wait for a turn (default 30 s).
    pub max_wait: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            max_concurrent: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
            max_waiting: 64,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// The endpoint label of the query metrics: the route's path (one of the few [`expensive`]
/// ones, so the series are few).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

/// The gate's state.
#[derive(Debug)]
pub struct Gate {
    config: GateConfig,
    permits: Semaphore,
    waiting: AtomicUsize,
    durations: Family<EndpointLabels, Histogram>,
    refused: Family<EndpointLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Gate {
    /// A gate with `config`.
    pub fn new(config: GateConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            permits: Semaphore::new(config.max_concurrent.max(1)),
            waiting: AtomicUsize::new(0),
            durations: Family::new_with_constructor(duration_histogram),
            refused: Family::default(),
        })
    }

    /// Adds the gate's metrics to `registry`: `loupe_query_duration_seconds{endpoint}` (time
    /// running, not waiting) and `loupe_query_refused_total{endpoint}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "loupe_query_duration",
            "Expensive reads (SQL, analyses, asks, diffs, trace searches), time from their turn to their answer",
            Unit::Seconds,
            self.durations.clone(),
        );
        registry.register(
            "loupe_query_refused",
            "Expensive reads refused with 503 because every turn was taken",
            self.refused.clone(),
        );
    }

    fn labels(path: &str) -> EndpointLabels {
        EndpointLabels {
            endpoint: path.to_owned(),
        }
    }
}

async fn run_timed(gate: &Gate, path: &str, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    gate.durations
        .get_or_create(&Gate::labels(path))
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Whether `method` `path` is an expensive read the gate holds.
pub fn expensive(method: &Method, path: &str) -> bool {
    match *method {
        Method::POST => matches!(
            path,
            "/api/v1/query" | "/api/v1/analyze" | "/api/v1/ask" | "/api/v1/incidents"
        ),
        Method::GET => matches!(path, "/api/v1/graph/diff" | "/api/v1/traces"),
        _ => false,
    }
}

fn busy(gate: &Gate, why: &str) -> Response {
    let mut response = ApiError::Unavailable(format!(
        "{} queries and analyses are running and {why}: try again shortly",
        gate.config.max_concurrent
    ))
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Middleware: runs an expensive request when a turn is free, waits for one within the
/// limits, or answers 503 with `Retry-After: 1`.
pub async fn hold(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if !expensive(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    if let Ok(permit) = gate.permits.try_acquire() {
        let response = run_timed(&gate, &path, request, next).await;
        drop(permit);
        return response;
    }
    if gate.waiting.fetch_add(1, Ordering::SeqCst) >= gate.config.max_waiting {
        gate.waiting.fetch_sub(1, Ordering::SeqCst);
        gate.refused.get_or_create(&Gate::labels(&path)).inc();
        return busy(&gate, &format!("{} more wait", gate.config.max_waiting));
    }
    let turn = tokio::time::timeout(gate.config.max_wait, gate.permits.acquire()).await;
    gate.waiting.fetch_sub(1, Ordering::SeqCst);
    match turn {
        Ok(Ok(permit)) => {
            let response = run_timed(&gate, &path, request, next).await;
            drop(permit);
            response
        }
        _ => {
            gate.refused.get_or_create(&Gate::labels(&path)).inc();
            busy(
                &gate,
                &format!("none finished within {:?}", gate.config.max_wait),
            )
        }
    }
}

/// `router` behind the gate.
pub fn guard(router: axum::Router, gate: Arc<Gate>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(gate, hold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expensive_requests_take_turns_and_the_rest_are_refused_with_retry_after() {
        let gate = Gate::new(GateConfig {
            max_concurrent: 1,
            max_waiting: 1,
            max_wait: Duration::from_millis(700),
        });
        let app = guard(
            axum::Router::new()
                .route(
                    "/api/v1/query",
                    post(|| async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "rows"
                    }),
                )
                .route("/api/v1/status", axum::routing::get(|| async { "ok" })),
            gate,
        );
        let call = |path: &'static str, method: Method| {
            let app = app.clone();
            tokio::spawn(async move {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap();
                let response = app.oneshot(request).await.unwrap();
                (
                    response.status().as_u16(),
                    response.headers().get("retry-after").cloned(),
                )
            })
        };
        // One runs, one waits its turn (300 ms < 700 ms), the third is refused at once.
        let first = call("/api/v1/query", Method::POST);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = call("/api/v1/query", Method::POST);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = call("/api/v1/query", Method::POST);
        // A cheap route is never held.
        let status = call("/api/v1/status", Method::GET).await.unwrap();
        assert_eq!(status.0, 200);
        let third = third.await.unwrap();
        assert_eq!(third.0, 503);
        assert_eq!(third.1.unwrap(), "1");
        assert_eq!(first.await.unwrap().0, 200);
        assert_eq!(second.await.unwrap().0, 200);
    }

    #[test]
    fn the_expensive_routes() {
        assert!(expensive(&Method::POST, "/api/v1/query"));
        assert!(expensive(&Method::POST, "/api/v1/ask"));
        assert!(expensive(&Method::GET, "/api/v1/graph/diff"));
        assert!(!expensive(&Method::GET, "/api/v1/incidents"));
        assert!(!expensive(&Method::POST, "/api/v1/changes"));
    }
}
