//! SQL over stored telemetry and the readiness probe: `POST /api/v1/query`,
//! `GET /api/v1/traces` (search, `traces.rs`), `GET /api/v1/traces/{trace_id}`,
//! `GET /api/v1/store`, `GET /readyz`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loupe_model::time::SharedClock;
use loupe_store::datafusion::arrow::datatypes::SchemaRef;
use loupe_store::datafusion::arrow::ipc::writer::StreamWriter;
use loupe_store::datafusion::arrow::json::ArrayWriter;
use loupe_store::{QueryEngine, QueryError, QueryLimits, QueryOutput, RecordBatch, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::params::parse_duration;

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Whether the server has finished recovering its data.
pub trait Readiness: Send + Sync {
    /// Ready to take data and answer completely.
    fn ready(&self) -> bool;
    /// Where recovery stands, for `/readyz`.
    fn progress(&self) -> Value;
}

/// What the SQL routes share.
#[derive(Clone)]
pub struct SqlState {
    /// The SQL engine; `None` when the server keeps no data directory.
    pub query: Option<Arc<QueryEngine>>,
    /// The store, for its figures.
    pub store: Option<Arc<Store>>,
    /// Default and largest limits of one query.
    pub limits: QueryLimits,
    /// Recovery state.
    pub readiness: Arc<dyn Readiness>,
    /// The clock behind default time ranges.
    pub clock: SharedClock,
}

/// The SQL, trace, store and readiness routes.
pub fn sql_router(state: SqlState) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/api/v1/query", post(query))
        .route("/api/v1/traces", get(search_traces))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .route("/api/v1/store", get(store_stats))
        .with_state(state)
}

async fn readyz(State(state): State<SqlState>) -> Response {
    let progress = state.readiness.progress();
    if state.readiness.ready() {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))).into_response()
    } else {
        let body = serde_json::json!({"status": "recovering", "progress": progress});
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn store_stats(State(state): State<SqlState>) -> Result<Response> {
    let store = state.store.ok_or_else(no_store)?;
    let stats = tokio::task::spawn_blocking(move || store.stats())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(stats).into_response())
}

fn no_store() -> ApiError {
    ApiError::Unavailable(
        "this server keeps no data directory, so there is no stored telemetry to query".into(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
    #[serde(default)]
    max_rows: Option<usize>,
    #[serde(default)]
    timeout: Option<Value>,
}

#[derive(Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

#[derive(Serialize)]
struct QueryResponse {
    columns: Vec<Column>,
    rows: Vec<Value>,
    row_count: usize,
    truncated: bool,
    elapsed_ms: f64,
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Invalid(m) => ApiError::InvalidQuery(m),
        QueryError::Timeout(d) => ApiError::QueryTimeout(d),
        QueryError::Execution(m) => ApiError::QueryFailed(m),
    }
}

/// Rows as JSON objects (arrow-json: timestamps as RFC 3339, maps and structs as objects).
pub(crate) fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Value>> {
    let mut writer = ArrayWriter::new(Vec::new());
    for b in batches {
        writer
            .write(b)
            .map_err(|e| ApiError::Internal(format!("encoding rows: {e}")))?;
    }
    writer
        .finish()
        .map_err(|e| ApiError::Internal(format!("encoding rows: {e}")))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(format!("encoding rows: {e}")))
}

fn ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let fail = |e: loupe_store::datafusion::arrow::error::ArrowError| {
        ApiError::Internal(format!("encoding Arrow IPC: {e}"))
    };
    let mut writer = StreamWriter::try_new(Vec::new(), schema).map_err(fail)?;
    for b in batches {
        writer.write(b).map_err(fail)?;
    }
    writer.finish().map_err(fail)?;
    writer.into_inner().map_err(fail)
}

/// Runs `sql` within the server's limits, narrowed by the request's.
pub(crate) async fn run(
    state: &SqlState,
    sql: &str,
    max_rows: Option<usize>,
    timeout: Option<Duration>,
) -> Result<QueryOutput> {
    let engine = state.query.clone().ok_or_else(no_store)?;
    let limits = QueryLimits {
        max_rows: max_rows.map_or(state.limits.max_rows, |m| m.min(state.limits.max_rows)),
        timeout: timeout.map_or(state.limits.timeout, |t| t.min(state.limits.timeout)),
    };
    engine.query(sql, limits).await.map_err(query_error)
}

async fn query(State(state): State<SqlState>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let request: QueryRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if request.max_rows == Some(0) {
        return Err(ApiError::invalid("max_rows", "must be at least 1"));
    }
    let timeout = match &request.timeout {
        None => None,
        Some(Value::String(s)) => Some(Duration::from_nanos(parse_duration("timeout", s)?)),
        Some(Value::Number(n)) => Some(Duration::from_nanos(parse_duration(
            "timeout",
            &n.to_string(),
        )?)),
        Some(_) => {
            return Err(ApiError::invalid(
                "timeout",
                "a duration such as \"10s\" or integer nanoseconds",
            ))
        }
    };
    let out = run(&state, &request.sql, request.max_rows, timeout).await?;
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    if wants_arrow {
        let body = ipc(&out.schema, &out.batches)?;
        let truncated = if out.truncated { "true" } else { "false" };
        return Ok((
            [
                (header::CONTENT_TYPE, ARROW_STREAM),
                (
                    header::HeaderName::from_static("loupe-truncated"),
                    truncated,
                ),
            ],
            body,
        )
            .into_response());
    }
    let columns = out
        .schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    Ok(Json(QueryResponse {
        columns,
        rows: json_rows(&out.batches)?,
        row_count: out.rows,
        truncated: out.truncated,
        elapsed_ms: out.elapsed.as_secs_f64() * 1e3,
    })
    .into_response())
}

#[derive(Serialize)]
struct TraceSearchResponse {
    traces: Vec<crate::traces::TraceSummary>,
}

/// `GET /api/v1/traces?service=S…`: see [`crate::traces`].
async fn search_traces(
    State(state): State<SqlState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TraceSearchResponse>> {
    let search = crate::traces::TraceSearch::parse(&query, state.clock.now_unix_nano())?;
    let out = run(&state, &search.sql(), Some(search.limit), None).await?;
    Ok(Json(TraceSearchResponse {
        traces: crate::traces::summaries(json_rows(&out.batches)?)?,
    }))
}

/// One span of a trace tree.
#[derive(Serialize)]
struct SpanNode {
    #[serde(flatten)]
    span: serde_json::Map<String, Value>,
    children: Vec<SpanNode>,
}

#[derive(Serialize)]
struct TraceResponse {
    trace_id: String,
    span_count: usize,
    services: Vec<String>,
    /// Spans whose parent is not stored (yet), shown as extra roots.
    orphans: usize,
    /// Spans nested deeper than [`MAX_TREE_DEPTH`], shown as extra roots with their subtrees.
    deep: usize,
    roots: Vec<SpanNode>,
}

const TRACE_COLUMNS: &str = "span_id, parent_span_id, name, kind, service_name, \
    start_time_unix_nano, end_time_unix_nano, duration_nano, status_code, status_message, \
    attributes, events, links, resource_attributes";

/// Deepest nesting of the span tree; a deeper span starts a new root (a real trace is rarely
/// more than a few dozen deep, and JSON nesting must stay bounded).
const MAX_TREE_DEPTH: usize = 128;

type SpanRow = serde_json::Map<String, Value>;

/// Builds the trees under `roots` from `children` (by parent span id), without recursion; spans
/// deeper than [`MAX_TREE_DEPTH`] become roots of their own. Returns the roots and how many were
/// cut off for depth; what `children` keeps afterwards hangs from no root (a cycle).
fn span_tree(
    roots: Vec<SpanRow>,
    children: &mut HashMap<String, Vec<SpanRow>>,
) -> (Vec<SpanNode>, usize) {
    struct Frame {
        span: SpanRow,
        kids: std::vec::IntoIter<SpanRow>,
        done: Vec<SpanNode>,
    }
    let mut take = |span: SpanRow| {
        let id = span.get("span_id").and_then(Value::as_str).unwrap_or("");
        let kids = children.remove(id).unwrap_or_default().into_iter();
        Frame {
            span,
            kids,
            done: Vec::new(),
        }
    };
    let mut pending: Vec<SpanRow> = roots;
    pending.reverse();
    let (mut out, mut deep) = (Vec::new(), 0);
    while let Some(root) = pending.pop() {
        let mut stack = vec![take(root)];
        while let Some(top) = stack.last_mut() {
            match top.kids.next() {
                Some(kid) if stack.len() >= MAX_TREE_DEPTH => {
                    deep += 1;
                    pending.push(kid);
                }
                Some(kid) => {
                    let frame = take(kid);
                    stack.push(frame);
                }
                None => {
                    let frame = stack.pop().expect("the loop saw it");
                    let node = SpanNode {
                        span: frame.span,
                        children: frame.done,
                    };
                    match stack.last_mut() {
                        Some(parent) => parent.done.push(node),
                        None => out.push(node),
                    }
                }
            }
        }
    }
    (out, deep)
}

/// Most spans returned for one trace.
const MAX_TRACE_SPANS: usize = 100_000;

async fn trace(
    State(state): State<SqlState>,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceResponse>> {
    let id = trace_id.to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.bytes().all(|b| b == b'0')
    {
        return Err(ApiError::invalid(
            "trace_id",
            "a trace id is 32 hex digits, not all zero",
        ));
    }
    let sql = format!(
        "SELECT {TRACE_COLUMNS} FROM spans WHERE trace_id = '{id}' ORDER BY start_time_unix_nano"
    );
    let out = run(&state, &sql, Some(MAX_TRACE_SPANS), None).await?;
    let rows = json_rows(&out.batches)?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no spans of trace {id} are stored"
        )));
    }
    let span_count = rows.len();
    let mut services: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get("service_name")?.as_str().map(str::to_owned))
        .collect();
    services.sort();
    services.dedup();
    // Children by parent, in start order.
    let ids: std::collections::HashSet<String> = rows
        .iter()
        .filter_map(|r| r.get("span_id")?.as_str().map(str::to_owned))
        .collect();
    let mut children: HashMap<String, Vec<SpanRow>> = HashMap::new();
    let mut roots = Vec::new();
    let mut orphans = 0;
    for row in rows {
        let Value::Object(span) = row else { continue };
        match span.get("parent_span_id").and_then(Value::as_str) {
            Some(parent) if ids.contains(parent) => {
                children.entry(parent.to_owned()).or_default().push(span)
            }
            Some(_) => {
                orphans += 1;
                roots.push(span);
            }
            None => roots.push(span),
        }
    }
    let (mut roots, deep) = span_tree(roots, &mut children);
    // Spans in a cycle of parent ids (bad data) hang from no root: show them as roots too.
    let cyclic: Vec<_> = children.drain().flat_map(|(_, v)| v).collect();
    orphans += cyclic.len();
    roots.extend(cyclic.into_iter().map(|span| SpanNode {
        span,
        children: Vec::new(),
    }));
    Ok(Json(TraceResponse {
        trace_id: id,
        span_count,
        services,
        orphans,
        deep,
        roots,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: usize, parent: Option<usize>) -> SpanRow {
        let mut m = SpanRow::new();
        m.insert("span_id".into(), Value::String(id.to_string()));
        if let Some(p) = parent {
            m.insert("parent_span_id".into(), Value::String(p.to_string()));
        }
        m
    }

    fn depth(n: &SpanNode) -> usize {
        1 + n.children.iter().map(depth).max().unwrap_or(0)
    }

    #[test]
    fn a_chain_deeper_than_the_limit_is_cut_into_bounded_trees_losing_no_span() {
        let n = 100_000;
        let mut children: HashMap<String, Vec<SpanRow>> = HashMap::new();
        for i in 1..n {
            children
                .entry((i - 1).to_string())
                .or_default()
                .push(row(i, Some(i - 1)));
        }
        let (roots, deep) = span_tree(vec![row(0, None)], &mut children);
        assert!(children.is_empty());
        fn count(n: &SpanNode) -> usize {
            1 + n.children.iter().map(count).sum::<usize>()
        }
        assert_eq!(roots.iter().map(count).sum::<usize>(), n);
        assert_eq!(deep, roots.len() - 1);
        assert!(roots.iter().all(|r| depth(r) <= MAX_TREE_DEPTH));
        assert_eq!(depth(&roots[0]), MAX_TREE_DEPTH);
        // Nested JSON of that size serializes without exhausting the stack.
        assert!(serde_json::to_string(&roots[0]).is_ok());
    }
}
