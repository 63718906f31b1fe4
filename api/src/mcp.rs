//! The MCP server (Model Context Protocol, through the official Rust SDK `rmcp`): structured
//! tools for an AI agent, each one call of the REST API, so an agent sees exactly what the API
//! and the web UI show. Served over streamable HTTP at `/mcp` on the API's port (the tools call
//! the API's router in process) and over stdio by `loupe mcp --server URL` (the tools call a
//! running server over HTTP): [`Backend`] is the difference.
//!
//! Read-only tools are marked so (`readOnlyHint`); `record_verdict` writes, and is refused
//! unless the server was started with writes allowed. Times accept RFC 3339, unix nanoseconds,
//! `now` and `now-1h` (any humantime duration).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use loupe_model::time::SharedClock;

/// Where the tools send their REST calls.
pub trait Backend: Send + Sync + 'static {
    /// Calls `method` (`GET`, `POST`) on `path_and_query` (`/api/v1/incidents`) with a JSON
    /// `body`; the answer's JSON, or the API's error message (`400: invalid window: …`).
    fn call(
        &self,
        method: &'static str,
        path_and_query: String,
        body: Option<Value>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + '_>>;

    /// [`Backend::call`] on behalf of the token behind the tool call, so that what it writes
    /// records the token's name (verdicts' `token`). The default ignores it: a backend that
    /// sends its own token (stdio's HTTP client) is recorded by the API under that token.
    fn call_as(
        &self,
        method: &'static str,
        path_and_query: String,
        body: Option<Value>,
        principal: Option<crate::auth::Principal>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + '_>> {
        let _ = principal;
        self.call(method, path_and_query, body)
    }
}

/// A backend that calls an axum router in process (the server's own API).
pub struct RouterBackend(pub axum::Router);

impl Backend for RouterBackend {
    fn call(
        &self,
        method: &'static str,
        path_and_query: String,
        body: Option<Value>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + '_>> {
        self.call_as(method, path_and_query, body, None)
    }

    fn call_as(
        &self,
        method: &'static str,
        path_and_query: String,
        body: Option<Value>,
        principal: Option<crate::auth::Principal>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + '_>> {
        Box::pin(async move {
            use tower::ServiceExt;
            let body = match body {
                Some(v) => axum::body::Body::from(v.to_string()),
                None => axum::body::Body::empty(),
            };
            let request = axum::http::Request::builder()
                .method(method)
                .uri(&path_and_query)
                .header("content-type", "application/json")
                .body(body)
                .map_err(|e| format!("building the request: {e}"))?;
            let mut request = request;
            if let Some(p) = principal {
                request.extensions_mut().insert(p);
            }
            let response = self
                .0
                .clone()
                .oneshot(request)
                .await
                .map_err(|e| format!("{path_and_query}: {e}"))?;
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
                .await
                .map_err(|e| format!("{path_and_query}: reading the answer: {e}"))?;
            answer(status.as_u16(), &bytes)
        })
    }
}

/// The JSON of an API answer, or its error as a sentence.
pub fn answer(status: u16, bytes: &[u8]) -> Result<Value, String> {
    let value: Value = serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        Err(format!("{status}: {message}"))
    }
}

/// The MCP server's tools.
#[derive(Clone)]
pub struct LoupeMcp {
    backend: Arc<dyn Backend>,
    clock: SharedClock,
    allow_writes: bool,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for LoupeMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoupeMcp")
            .field("allow_writes", &self.allow_writes)
            .finish_non_exhaustive()
    }
}

/// `{"question", "time_zone"?, "now"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArgs {
    /// The question in plain English, e.g. "why is checkout slow since 14:00?", "what changed in
    /// the last hour?", "what depends on postgresql?".
    pub question: String,
    /// The asker's IANA time zone (Europe/Berlin); default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Read the question as if asked at this time (RFC 3339, unix nanoseconds, now-1h).
    #[serde(default)]
    pub now: Option<String>,
}

/// `{"id"}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IncidentArgs {
    /// The incident's id.
    pub id: u64,
}

/// `{"status"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListIncidentsArgs {
    /// `open`, `resolved`, `suppressed` or `any` (default).
    #[serde(default)]
    pub status: Option<String>,
}

/// A window: `{"start"?, "end"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DiagnoseArgs {
    /// Start of the window to diagnose (RFC 3339, unix nanoseconds, now-15m); default 15
    /// minutes before `end`.
    #[serde(default)]
    pub start: Option<String>,
    /// End of the window; default now.
    #[serde(default)]
    pub end: Option<String>,
    /// The service the symptom is on (optional; the analysis ranks every candidate).
    #[serde(default)]
    pub service: Option<String>,
}

/// `{"from"?, "to"?, "service"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChangesArgs {
    /// Start (RFC 3339, unix nanoseconds, now-1h); default an hour before `to`.
    #[serde(default)]
    pub from: Option<String>,
    /// End; default now.
    #[serde(default)]
    pub to: Option<String>,
    /// Only this service's changes.
    #[serde(default)]
    pub service: Option<String>,
}

/// `{"at"?, "window"?, "service"?, "depth"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GraphArgs {
    /// The end of the window (RFC 3339, unix nanoseconds, now-1h); default now.
    #[serde(default)]
    pub at: Option<String>,
    /// The window's length (5m, 1h); default 5m.
    #[serde(default)]
    pub window: Option<String>,
    /// Focus on this service (or entity id) and its neighbourhood.
    #[serde(default)]
    pub service: Option<String>,
    /// Relations deep around the focus (default 1).
    #[serde(default)]
    pub depth: Option<u32>,
}

/// `{"entity", "at"?, "window"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BlastRadiusArgs {
    /// Entity id: service:checkout, database:postgresql/orders, node:worker-1.
    pub entity: String,
    /// End of the window (RFC 3339, unix nanoseconds, now-1h); default now.
    #[serde(default)]
    pub at: Option<String>,
    /// The window's length; default 5m.
    #[serde(default)]
    pub window: Option<String>,
}

/// `{"entity", "from"?, "to"?, "step"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HistoryArgs {
    /// Entity id: service:checkout.
    pub entity: String,
    /// Start (RFC 3339, unix nanoseconds, now-1h); default an hour before `to`.
    #[serde(default)]
    pub from: Option<String>,
    /// End; default now.
    #[serde(default)]
    pub to: Option<String>,
    /// Step (1m, 10s); default 1m.
    #[serde(default)]
    pub step: Option<String>,
}

/// `{"service", …}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FindTracesArgs {
    /// service.name of the spans that select a trace.
    pub service: String,
    /// Span name they must have.
    #[serde(default)]
    pub operation: Option<String>,
    /// Start (RFC 3339, unix nanoseconds, now-1h); default an hour before `to`.
    #[serde(default)]
    pub from: Option<String>,
    /// End; default now.
    #[serde(default)]
    pub to: Option<String>,
    /// error, ok or unset.
    #[serde(default)]
    pub status: Option<String>,
    /// Least duration of the selecting spans (250ms).
    #[serde(default)]
    pub min_duration: Option<String>,
    /// newest (default) or slowest.
    #[serde(default)]
    pub sort: Option<String>,
    /// At most this many traces (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `{"trace_id"}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TraceArgs {
    /// 32 hex digits.
    pub trace_id: String,
}

/// `{"sql", "max_rows"?}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SqlArgs {
    /// One read-only SQL statement over spans, logs, metric_points, changes, service_edges.
    pub sql: String,
    /// Rows at most (the server's limit caps it).
    #[serde(default)]
    pub max_rows: Option<u32>,
}

/// `{"incident", "cause", "verdict", "comment"?, "by"}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct VerdictArgs {
    /// The incident's id.
    pub incident: u64,
    /// The cause's id, as the incident lists it (service:cart).
    pub cause: String,
    /// accepted or rejected.
    pub verdict: String,
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
    /// Who gives the verdict.
    pub by: String,
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let present: Vec<(&str, String)> = pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    match serde_urlencoded::to_string(&present) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    }
}

/// A path segment with what a URL path cannot hold escaped (an entity id's `/` kept: the
/// entity routes take the rest of the path).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl LoupeMcp {
    /// The tools over `backend`; `clock` reads `now` in relative times; `record_verdict` works
    /// only with `allow_writes`.
    pub fn new(backend: Arc<dyn Backend>, clock: SharedClock, allow_writes: bool) -> Self {
        Self {
            backend,
            clock,
            allow_writes,
            tool_router: Self::tool_router(),
        }
    }

    /// `now`, `now-1h`, `now+5m` as unix nanoseconds; anything else as given (RFC 3339 or
    /// unix nanoseconds, which the API checks).
    fn time(&self, value: Option<String>) -> Result<Option<String>, String> {
        let Some(v) = value else { return Ok(None) };
        let t = v.trim();
        let Some(rest) = t.strip_prefix("now") else {
            return Ok(Some(t.to_owned()));
        };
        let now = self.clock.now_unix_nano();
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(Some(now.to_string()));
        }
        let mut chars = rest.chars();
        let sign = chars.next();
        let nanos = humantime::parse_duration(chars.as_str().trim())
            .map_err(|e| format!("{v:?}: {e} (use now-1h, now-15m)"))?
            .as_nanos();
        let nanos = u64::try_from(nanos).map_err(|_| format!("{v:?}: too far"))?;
        Ok(Some(
            match sign {
                Some('-') => now.saturating_sub(nanos),
                Some('+') => now.saturating_add(nanos),
                _ => return Err(format!("{v:?}: use now-1h or now+5m")),
            }
            .to_string(),
        ))
    }

    async fn get(&self, path: String) -> CallToolResult {
        self.result(self.backend.call("GET", path, None).await)
    }

    async fn post(&self, path: String, body: Value) -> CallToolResult {
        self.result(self.backend.call("POST", path, Some(body)).await)
    }

    fn result(&self, r: Result<Value, String>) -> CallToolResult {
        match r {
            // Structured content must be an object.
            Ok(v @ Value::Object(_)) => CallToolResult::structured(v),
            Ok(v) => CallToolResult::structured(json!({ "value": v })),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
        }
    }
}

fn bad(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

#[tool_router]
impl LoupeMcp {
    #[tool(
        description = "Ask loupe a question in plain English (why is X slow, what changed, what depends on X, how is X doing, show incident N). The answer says how the question was read, the facts, commands and links.",
        annotations(read_only_hint = true)
    )]
    async fn ask(
        &self,
        Parameters(a): Parameters<AskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let now = match self.time(a.now) {
            Ok(n) => n,
            Err(e) => return Ok(bad(e)),
        };
        // Without writes allowed (or an admin token), a verdict asked in words is refused too.
        let read_only = !self.allow_writes || !may_write(&context);
        let mut body = json!({ "question": a.question, "by": "mcp", "read_only": read_only });
        if let Some(z) = a.time_zone {
            body["time_zone"] = z.into();
        }
        if let Some(n) = now {
            body["now"] = n.into();
        }
        Ok(self.post("/api/v1/ask".into(), body).await)
    }

    #[tool(
        description = "List incidents, newest first: id, title, status, onset, symptoms, top cause and its probability.",
        annotations(read_only_hint = true)
    )]
    async fn list_incidents(
        &self,
        Parameters(a): Parameters<ListIncidentsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut r = self
            .backend
            .call("GET", "/api/v1/incidents".into(), None)
            .await;
        if let (Ok(v), Some(status)) = (&mut r, a.status.filter(|s| s != "any")) {
            if let Some(list) = v["incidents"].as_array_mut() {
                list.retain(|i| i["status"] == status.as_str());
            }
        }
        Ok(self.result(r))
    }

    #[tool(
        description = "One incident: symptoms, onset, timeline, ranked causes with evidence, counter-evidence, remediation commands, and verdicts.",
        annotations(read_only_hint = true)
    )]
    async fn get_incident(
        &self,
        Parameters(a): Parameters<IncidentArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.get(format!("/api/v1/incidents/{}", a.id)).await)
    }

    #[tool(
        description = "Rank the likely root causes of a time window (default: the last 15 minutes) against the window before it, each with evidence and remediation.",
        annotations(read_only_hint = true)
    )]
    async fn diagnose(
        &self,
        Parameters(a): Parameters<DiagnoseArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let end = match self.time(a.end.or(Some("now".into()))) {
            Ok(e) => e.unwrap_or_default(),
            Err(e) => return Ok(bad(e)),
        };
        let start = match a.start {
            Some(s) => match self.time(Some(s)) {
                Ok(s) => s.unwrap_or_default(),
                Err(e) => return Ok(bad(e)),
            },
            None => match end.parse::<u64>() {
                Ok(e) => e.saturating_sub(15 * 60 * 1_000_000_000).to_string(),
                Err(_) => return Ok(bad("give start too when end is not unix nanoseconds".into())),
            },
        };
        let as_json = |s: String| {
            s.parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::String(s))
        };
        let mut r = self
            .backend
            .call(
                "POST",
                "/api/v1/analyze".into(),
                Some(json!({ "start": as_json(start), "end": as_json(end) })),
            )
            .await;
        if let (Ok(v), Some(service)) = (&mut r, a.service) {
            v["asked_about"] = service.into();
        }
        Ok(self.result(r))
    }

    #[tool(
        description = "Deployments, configuration and feature-flag changes and Kubernetes events in a window (default: the last hour), oldest first.",
        annotations(read_only_hint = true)
    )]
    async fn what_changed(
        &self,
        Parameters(a): Parameters<ChangesArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (from, to) = match (self.time(a.from), self.time(a.to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return Ok(bad(e)),
        };
        let q = query(&[("from", from), ("to", to), ("service", a.service)]);
        Ok(self.get(format!("/api/v1/changes{q}")).await)
    }

    #[tool(
        description = "The service graph as of a window: services, operations, pods, nodes, databases and who calls whom, with calls, errors and latency; focus on a service and a depth for large systems.",
        annotations(read_only_hint = true)
    )]
    async fn get_graph(
        &self,
        Parameters(a): Parameters<GraphArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let at = match self.time(a.at) {
            Ok(t) => t,
            Err(e) => return Ok(bad(e)),
        };
        let depth = a.service.as_ref().map(|_| a.depth.unwrap_or(1).to_string());
        let q = query(&[
            ("at", at),
            ("window", a.window),
            ("service", a.service),
            ("depth", depth),
        ]);
        Ok(self.get(format!("/api/v1/graph{q}")).await)
    }

    #[tool(
        description = "Everything that depends on an entity (callers, their callers; for a pod or node the services on it), with distance and the share of traffic through it.",
        annotations(read_only_hint = true)
    )]
    async fn blast_radius(
        &self,
        Parameters(a): Parameters<BlastRadiusArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let at = match self.time(a.at) {
            Ok(t) => t,
            Err(e) => return Ok(bad(e)),
        };
        let q = query(&[("at", at), ("window", a.window)]);
        Ok(self
            .get(format!(
                "/api/v1/entities/{}/blast-radius{q}",
                segment(&a.entity)
            ))
            .await)
    }

    #[tool(
        description = "An entity's RED figures (calls, errors, latency) and log counts per step over time.",
        annotations(read_only_hint = true)
    )]
    async fn entity_history(
        &self,
        Parameters(a): Parameters<HistoryArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (from, to) = match (self.time(a.from), self.time(a.to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return Ok(bad(e)),
        };
        let q = query(&[("from", from), ("to", to), ("step", a.step)]);
        Ok(self
            .get(format!(
                "/api/v1/entities/{}/history{q}",
                segment(&a.entity)
            ))
            .await)
    }

    #[tool(
        description = "Find traces through a service in a window (by operation, status, least duration), newest or slowest first, each with its root, duration, span and error counts.",
        annotations(read_only_hint = true)
    )]
    async fn find_traces(
        &self,
        Parameters(a): Parameters<FindTracesArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (from, to) = match (self.time(a.from), self.time(a.to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return Ok(bad(e)),
        };
        let q = query(&[
            ("service", Some(a.service)),
            ("operation", a.operation),
            ("from", from),
            ("to", to),
            ("status", a.status),
            ("min_duration", a.min_duration),
            ("sort", a.sort),
            ("limit", a.limit.map(|l| l.to_string())),
        ]);
        Ok(self.get(format!("/api/v1/traces{q}")).await)
    }

    #[tool(
        description = "A whole trace as a span tree: every span with its service, timing, status, attributes and events.",
        annotations(read_only_hint = true)
    )]
    async fn get_trace(
        &self,
        Parameters(a): Parameters<TraceArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .get(format!("/api/v1/traces/{}", segment(&a.trace_id)))
            .await)
    }

    #[tool(
        description = "Run one read-only SQL statement over the stored telemetry (tables spans, logs, metric_points, changes, service_edges) within the server's limits.",
        annotations(read_only_hint = true)
    )]
    async fn query_sql(
        &self,
        Parameters(a): Parameters<SqlArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut body = json!({ "sql": a.sql });
        if let Some(m) = a.max_rows {
            body["max_rows"] = m.into();
        }
        Ok(self.post("/api/v1/query".into(), body).await)
    }

    #[tool(
        description = "Record an SRE's verdict (accepted or rejected) on a cause of an incident; a rejected cause drops at once, and verdicts retrain the ranker. Refused unless the server allows MCP writes.",
        annotations(read_only_hint = false, destructive_hint = false)
    )]
    async fn record_verdict(
        &self,
        Parameters(a): Parameters<VerdictArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if !self.allow_writes {
            return Ok(bad(
                "record_verdict is off: start the server with --mcp-allow-writes (config mcp.allow_writes) to let agents record verdicts".into(),
            ));
        }
        if !may_write(&context) {
            return Ok(bad(
                "record_verdict needs a token with the admin scope; this one has not".into(),
            ));
        }
        let body =
            json!({ "verdict": a.verdict, "comment": a.comment.unwrap_or_default(), "by": a.by });
        let path = format!(
            "/api/v1/incidents/{}/causes/{}/verdict",
            a.incident,
            segment(&a.cause).replace('/', "%2F")
        );
        let principal = principal(&context);
        Ok(self.result(
            self.backend
                .call_as("POST", path, Some(body), principal)
                .await,
        ))
    }
}

/// Whether the HTTP request behind a tool call may write: true without authentication (no
/// principal: auth is off, or stdio, where the REST API checks the token), else when the
/// token has the admin scope.
fn may_write(context: &RequestContext<RoleServer>) -> bool {
    principal(context).is_none_or(|p| p.may(crate::auth::Scope::Admin))
}

/// The token behind the HTTP request of a tool call, when the server checks tokens.
fn principal(context: &RequestContext<RoleServer>) -> Option<crate::auth::Principal> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<crate::auth::Principal>())
        .cloned()
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for LoupeMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "loupe is a local observability engine with a temporal knowledge graph of services and \
             ranked root causes of incidents. Start with list_incidents or ask (\"what is wrong \
             right now?\"), then get_incident or diagnose; what_changed, blast_radius and \
             find_traces give the context. Times: RFC 3339, unix nanoseconds, now, now-1h.",
        )
    }
}

/// The `/mcp` service: streamable HTTP (JSON answers; sessions for clients before the
/// 2026-07-28 protocol), the tools over `backend`. `allowed_hosts` adds names the `Host`
/// header may carry beyond loopback (rmcp refuses others, against DNS rebinding).
pub fn streamable_http_service(
    backend: Arc<dyn Backend>,
    clock: SharedClock,
    allow_writes: bool,
    allowed_hosts: Vec<String>,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    LoupeMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    use rmcp::transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    };
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(allowed_hosts);
    let config = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(hosts);
    StreamableHttpService::new(
        move || Ok(LoupeMcp::new(backend.clone(), clock.clone(), allow_writes)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Principal, Scope};

    #[tokio::test]
    async fn calls_made_for_a_token_carry_its_principal_to_the_route() {
        // A route that answers with the name of the token it was called for.
        let router = axum::Router::new().route(
            "/who",
            axum::routing::post(|p: Option<axum::Extension<Principal>>| async move {
                axum::Json(json!({ "token": p.map(|axum::Extension(p)| p.name) }))
            }),
        );
        let backend = RouterBackend(router);
        let oncall = Principal {
            name: "oncall".into(),
            scopes: vec![Scope::Admin],
        };
        let answer = backend
            .call_as("POST", "/who".into(), Some(json!({})), Some(oncall))
            .await
            .unwrap();
        assert_eq!(answer, json!({ "token": "oncall" }));
        let anonymous = backend
            .call("POST", "/who".into(), Some(json!({})))
            .await
            .unwrap();
        assert_eq!(anonymous, json!({ "token": null }));
    }
}
