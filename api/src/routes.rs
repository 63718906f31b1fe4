//! The routes and their handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::routing::{get, post};
use axum::{Json, Router};
use loupe_analysis::incident::VerdictRejected;
use loupe_analysis::{
    investigate, Analysis, AnalysisConfig, Incident, Incidents, Judgement, Verdict,
};
use loupe_graph::{
    ChangeQuery, ChangeRecord, DiffQuery, GraphDiff, GraphQuery, GraphSnapshot, KnowledgeGraph,
    ServiceSummary,
};
use loupe_model::time::SharedClock;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Result};
use crate::params::{parse_duration, parse_time, parse_time_str};

/// Default window of `services` and `graph` queries: five minutes.
const DEFAULT_WINDOW_NANOS: u64 = 5 * 60 * 1_000_000_000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The knowledge graph, written by the ingest path.
    pub graph: Arc<RwLock<KnowledgeGraph>>,
    /// The clock behind the default `at`.
    pub clock: SharedClock,
    /// Analysis settings.
    pub analysis: AnalysisConfig,
    /// Incidents, opened by detection or by hand.
    pub incidents: Arc<Mutex<Incidents>>,
}

impl ApiState {
    pub(crate) fn read<T>(&self, f: impl FnOnce(&KnowledgeGraph) -> T) -> Result<T> {
        let graph = self
            .graph
            .read()
            .map_err(|_| ApiError::Internal("graph lock poisoned".into()))?;
        Ok(f(&graph))
    }
}

/// The OpenAPI 3.1 description of the API (`api/openapi.json`, kept by hand beside the code;
/// the end-to-end tests check that it names every route and that every operation it names is
/// served).
const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The API and the web page.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON) }),
        )
        .route("/api/v1/status", get(status))
        .route("/api/v1/services", get(services))
        .route("/api/v1/graph", get(graph))
        .route("/api/v1/changes", get(changes))
        .route("/api/v1/graph/diff", get(diff))
        .route("/api/v1/entities/{*path}", get(entity))
        .route("/api/v1/analyze", post(analyze_window))
        .route("/api/v1/incidents", get(list_incidents).post(open_incident))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route(
            "/api/v1/incidents/{id}/causes/{cause}/verdict",
            post(post_verdict),
        )
        .route("/api/v1/verdicts", get(list_verdicts))
        .with_state(state)
        .merge(loupe_ui::router())
}

/// `[at − window, at)` from `at` (default now) and `window` (default 5m).
fn window(state: &ApiState, query: &HashMap<String, String>) -> Result<(u64, u64)> {
    let at = match query.get("at") {
        Some(s) => parse_time_str("at", s)?,
        None => state.clock.now_unix_nano(),
    };
    let window = match query.get("window") {
        Some(s) => parse_duration("window", s)?,
        None => DEFAULT_WINDOW_NANOS,
    };
    Ok((at.saturating_sub(window), at))
}

#[derive(Serialize)]
struct StatusResponse {
    entities: usize,
    relations: usize,
    pending_spans: usize,
}

/// `GET /api/v1/status`: graph size and spans still waiting in the join buffer.
async fn status(State(state): State<ApiState>) -> Result<Json<StatusResponse>> {
    let (entities, relations, pending_spans) =
        state.read(|g| (g.entity_count(), g.relation_count(), g.pending_spans()))?;
    Ok(Json(StatusResponse {
        entities,
        relations,
        pending_spans,
    }))
}

#[derive(Serialize)]
struct ServicesResponse {
    services: Vec<ServiceSummary>,
}

async fn services(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ServicesResponse>> {
    let (start, end) = window(&state, &query)?;
    Ok(Json(ServicesResponse {
        services: state.read(|g| g.services(start, end))?,
    }))
}

async fn graph(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<GraphSnapshot>> {
    let (start, end) = window(&state, &query)?;
    let known_at = optional_time(&query, "known_at")?;
    let focus = query.get("service").map(|s| {
        if s.contains(':') {
            s.clone()
        } else {
            format!("service:{s}")
        }
    });
    let depth = match query.get("depth") {
        Some(d) => d
            .parse::<usize>()
            .map_err(|e| ApiError::invalid("depth", format!("{d:?}: {e}")))?,
        None => 1,
    };
    if focus.is_none() && query.contains_key("depth") {
        return Err(ApiError::invalid("depth", "needs service"));
    }
    let structure_only = match query.get("stats").map(String::as_str) {
        None | Some("true") => false,
        Some("false") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "stats",
                format!("{other:?}: use true or false"),
            ))
        }
    };
    let q = GraphQuery {
        start,
        end,
        known_at,
        focus,
        depth,
        structure_only,
    };
    Ok(Json(state.read(|g| g.snapshot(&q))??))
}

/// `[from, to)` from `from` and `to` (defaults: the hour before now).
fn range(state: &ApiState, query: &HashMap<String, String>) -> Result<(u64, u64)> {
    let to = optional_time(query, "to")?.unwrap_or_else(|| state.clock.now_unix_nano());
    let from = optional_time(query, "from")?.unwrap_or(to.saturating_sub(3600 * 1_000_000_000));
    if from >= to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    Ok((from, to))
}

fn optional_time(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>> {
    query.get(name).map(|s| parse_time_str(name, s)).transpose()
}

/// `GET /api/v1/graph/diff?from=A&to=B&window=D[&known_at=K]`: the graph in `[A − D, A)`
/// against `[B − D, B)` (defaults: B now, A one window before B, D 5m).
async fn diff(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<GraphDiff>> {
    let window = match query.get("window") {
        Some(s) => parse_duration("window", s)?,
        None => DEFAULT_WINDOW_NANOS,
    };
    let to = optional_time(&query, "to")?.unwrap_or_else(|| state.clock.now_unix_nano());
    let from = optional_time(&query, "from")?.unwrap_or(to.saturating_sub(window));
    if from >= to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    let q = DiffQuery {
        from,
        to,
        window,
        known_at: optional_time(&query, "known_at")?,
    };
    Ok(Json(state.read(|g| g.diff(&q))?))
}

/// `GET /api/v1/entities/{id}[?known_at=K]`, `…/{id}/history?from&to&step` and
/// `…/{id}/blast-radius?at&window`; ids are `kind:name` (`service:checkout`,
/// `pod:shop/cart-0@uid`), slashes allowed.
async fn entity(
    State(state): State<ApiState>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    if let Some(id) = path.strip_suffix("/history") {
        let (from, to) = range(&state, &query)?;
        let step = match query.get("step") {
            Some(s) => parse_duration("step", s)?,
            None => 60 * 1_000_000_000,
        };
        if (to - from) / step > 10_000 {
            return Err(ApiError::invalid(
                "step",
                "more than 10000 steps: use a larger step",
            ));
        }
        let history = state.read(|g| g.entity_history(id, from, to, step))??;
        return Ok(
            Json(serde_json::json!({"id": id, "step_nanos": step, "points": history}))
                .into_response(),
        );
    }
    if let Some(id) = path.strip_suffix("/blast-radius") {
        let (start, end) = window(&state, &query)?;
        return Ok(Json(state.read(|g| g.blast_radius(id, start, end))??).into_response());
    }
    let known_at = optional_time(&query, "known_at")?;
    Ok(Json(state.read(|g| g.entity_detail(&path, known_at))??).into_response())
}

#[derive(Serialize)]
struct ChangesResponse {
    changes: Vec<ChangeRecord>,
}

/// `GET /api/v1/changes?from=T&to=T[&service=S][&known_at=K]`: changes and events, oldest
/// first (defaults: the last hour).
async fn changes(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ChangesResponse>> {
    let (from, to) = range(&state, &query)?;
    let q = ChangeQuery {
        from,
        to,
        service: query.get("service").cloned(),
        known_at: optional_time(&query, "known_at")?,
    };
    Ok(Json(ChangesResponse {
        changes: state.read(|g| g.changes(&q))?,
    }))
}

#[derive(Deserialize)]
struct AnalyzeRequest {
    start: serde_json::Value,
    end: serde_json::Value,
    baseline_start: Option<serde_json::Value>,
    baseline_end: Option<serde_json::Value>,
}

/// `POST /api/v1/analyze`: ranks causes of `[start, end)` against the baseline
/// `[baseline_start, baseline_end)`, by default the window of equal length just before, and
/// against the history of [`AnalysisConfig::history_periods`] baseline-length periods before
/// the baseline.
async fn analyze_window(State(state): State<ApiState>, body: Bytes) -> Result<Json<Analysis>> {
    let request: AnalyzeRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let start = parse_time("start", &request.start)?;
    let end = parse_time("end", &request.end)?;
    if start >= end {
        return Err(ApiError::invalid("end", "must be after start"));
    }
    let baseline_end = request
        .baseline_end
        .as_ref()
        .map(|v| parse_time("baseline_end", v))
        .transpose()?
        .unwrap_or(start);
    let baseline_start = match &request.baseline_start {
        Some(v) => parse_time("baseline_start", v)?,
        None => baseline_end.saturating_sub(end - start),
    };
    if baseline_start >= baseline_end {
        return Err(ApiError::invalid(
            "baseline_end",
            "must be after baseline_start",
        ));
    }
    let worker = state.clone();
    // The graph's read lock before the incidents' mutex, the order the incident ticker takes
    // them in (the other order deadlocks behind a waiting writer).
    let analysis = tokio::task::spawn_blocking(move || {
        worker.read(|g| {
            let incidents = incidents_of(&worker)?;
            investigate(
                g,
                (start, end),
                Some((baseline_start, baseline_end)),
                Some(&incidents.verdicts),
                &worker.analysis,
            )
            .map_err(ApiError::from)
        })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))???;
    Ok(Json(analysis))
}

/// An incident in a list: what it is and its leading cause.
#[derive(Serialize)]
struct IncidentSummary {
    id: u64,
    title: String,
    status: loupe_analysis::Status,
    source: String,
    onset_unix_nano: u64,
    opened_unix_nano: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_unix_nano: Option<u64>,
    symptoms: usize,
    /// The symptoms' objectives (`error_ratio`, `latency`, `traffic`), each once.
    symptom_objectives: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_cause: Option<String>,
    /// The top cause's id (`service:cart`, `edge:checkout->cart`).
    #[serde(skip_serializing_if = "Option::is_none")]
    top_cause_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_cause_probability: Option<f64>,
    /// Whether the top cause clears the confidence bar (absent until an analysis ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    confident: Option<bool>,
}

fn incidents_of(state: &ApiState) -> Result<std::sync::MutexGuard<'_, Incidents>> {
    state
        .incidents
        .lock()
        .map_err(|_| ApiError::Internal("incidents lock poisoned".into()))
}

/// `GET /api/v1/incidents`: every incident, newest first.
async fn list_incidents(State(state): State<ApiState>) -> Result<Json<serde_json::Value>> {
    let incidents = incidents_of(&state)?;
    let list: Vec<IncidentSummary> = incidents
        .list()
        .into_iter()
        .map(|i| {
            let top = i.analysis.as_ref().and_then(|a| a.causes.first());
            let mut objectives: Vec<String> =
                i.symptoms.iter().map(|s| s.objective.to_string()).collect();
            objectives.sort();
            objectives.dedup();
            IncidentSummary {
                id: i.id,
                title: i.title.clone(),
                status: i.status,
                source: i.source.to_string(),
                onset_unix_nano: i.onset_unix_nano,
                opened_unix_nano: i.opened_unix_nano,
                resolved_unix_nano: i.resolved_unix_nano,
                symptoms: i.symptoms.len(),
                symptom_objectives: objectives,
                top_cause: top.map(|c| c.entity.name.clone()),
                top_cause_id: top.map(|c| c.entity.id()),
                top_cause_probability: top.map(|c| c.probability),
                confident: i.analysis.as_ref().map(|a| a.confident),
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "incidents": list })))
}

fn incident_id(id: &str) -> Result<u64> {
    id.parse()
        .map_err(|_| ApiError::invalid("id", format!("{id:?} is not an incident id")))
}

/// `GET /api/v1/incidents/{id}`: symptoms, onset, timeline, ranked causes and verdicts.
async fn get_incident(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let id = incident_id(&id)?;
    let incidents = incidents_of(&state)?;
    let incident = incidents
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let mut body = serde_json::to_value(incident).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["verdicts"] = serde_json::to_value(incidents.verdicts.of_incident(id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(body))
}

#[derive(Deserialize)]
struct VerdictRequest {
    verdict: Judgement,
    #[serde(default)]
    comment: String,
    by: String,
}

/// `POST /api/v1/incidents/{id}/causes/{cause}/verdict`
/// `{"verdict":"accepted"|"rejected","comment":…,"by":…}`: records it durably; a rejected cause
/// drops at once, and later analyses weigh causes like it accordingly.
async fn post_verdict(
    State(state): State<ApiState>,
    Path((id, cause)): Path<(String, String)>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<Verdict>)> {
    let id = incident_id(&id)?;
    let request: VerdictRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if request.by.trim().is_empty() {
        return Err(ApiError::invalid("by", "say who gives the verdict"));
    }
    let now = state.clock.now_unix_nano();
    let verdict = judge(
        &state,
        (id, cause),
        (request.verdict, request.comment, request.by),
        principal.map(|p| p.0.name),
        now,
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(verdict)))
}

/// Records a verdict on cause `cause` of incident `incident`, durably, off the async workers:
/// what the verdict route, `ask` and Slack's buttons share.
///
/// # Errors
/// No such incident or cause (404), or the verdict could not be saved (500).
pub(crate) async fn judge(
    state: &ApiState,
    (incident, cause): (u64, String),
    (verdict, comment, by): (Judgement, String, String),
    token: Option<String>,
    now: u64,
) -> Result<Verdict> {
    let worker = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut incidents = incidents_of(&worker)?;
        incidents
            .judge_with_token(incident, &cause, (verdict, comment, by), token, now)
            .map_err(|e| match e {
                VerdictRejected::Io(e) => ApiError::Internal(e.to_string()),
                other => ApiError::NotFound(other.to_string()),
            })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `GET /api/v1/verdicts`: every verdict with its case window and evidence features, oldest
/// first: the labels `loupe train` learns from.
async fn list_verdicts(State(state): State<ApiState>) -> Result<Json<serde_json::Value>> {
    let incidents = incidents_of(&state)?;
    Ok(Json(
        serde_json::json!({ "verdicts": incidents.verdicts.all() }),
    ))
}

#[derive(Deserialize)]
struct OpenIncident {
    start: serde_json::Value,
    end: serde_json::Value,
    title: Option<String>,
}

/// `POST /api/v1/incidents` `{"start":T,"end":T[,"title":…]}`: opens an incident by hand for
/// any window and ranks its causes.
async fn open_incident(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<Incident>)> {
    let request: OpenIncident =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let start = parse_time("start", &request.start)?;
    let end = parse_time("end", &request.end)?;
    if start >= end {
        return Err(ApiError::invalid("end", "must be after start"));
    }
    let worker = state.clone();
    let incident = tokio::task::spawn_blocking(move || {
        let graph = worker
            .graph
            .read()
            .map_err(|_| ApiError::Internal("graph lock poisoned".into()))?;
        let mut incidents = incidents_of(&worker)?;
        Ok::<_, ApiError>(
            incidents
                .open_manual(&graph, (start, end), request.title, &worker.analysis)
                .clone(),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((axum::http::StatusCode::CREATED, Json(incident)))
}
