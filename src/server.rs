//! `loupe serve`: OTLP/gRPC, OTLP/HTTP and the REST API on their own listeners, one engine
//! behind them, recovery of the data directory in the background (`/healthz` answers at once,
//! `/readyz` once recovery is complete), a tick that lets idle spans out of the join buffer and
//! updates incidents, and the store's maintenance (flush, compaction, retention).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use loupe_analysis::{AnalysisConfig, DetectConfig, Incidents, Verdicts};
use loupe_api::auth::{guard, Listener, Tokens};
use loupe_api::{ApiState, Readiness, SqlState};
use loupe_graph::GraphConfig;
use loupe_ingest::{
    grpc_router, http_router, Admission, AdmissionConfig, BodyLimits, Limits, Receiver,
    ReceiverMetrics, Transport,
};
use loupe_model::time::{SharedClock, SystemClock};
use loupe_store::{QueryLimits, StoreConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::listen::{serve_on, ListenConfig};
use crate::tls::{Tls, TlsFiles, TlsListener};

/// Largest request body on the API listener, bytes (its routes set smaller limits of their own).
const API_MAX_BODY_BYTES: usize = 16 << 20;

/// How long a span waits in the join buffer after it was received, when no later span pushes
/// event time past its expiry.
pub const JOIN_IDLE: Duration = Duration::from_secs(5);

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// OTLP/gRPC listen address (default `127.0.0.1:4317`).
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (default `127.0.0.1:4318`).
    pub otlp_http_addr: SocketAddr,
    /// REST API and web page listen address (default `127.0.0.1:8080`).
    pub http_addr: SocketAddr,
    /// The store (data directory, retention, flushing); `None` keeps everything in memory,
    /// without SQL.
    pub store: Option<StoreConfig>,
    /// Limits of one SQL query.
    pub query_limits: QueryLimits,
    /// Receiver limits.
    pub limits: Limits,
    /// Service-level objectives and alerting for automatic incidents.
    pub detect: DetectConfig,
    /// Ranking settings and model (rules and weights), for incidents and `/analyze`.
    pub analysis: AnalysisConfig,
    /// Whether MCP agents may record verdicts (`/mcp`'s `record_verdict`).
    pub mcp_allow_writes: bool,
    /// `Host` names `/mcp` answers besides loopback and the listen address (a reverse proxy's).
    pub mcp_allowed_hosts: Vec<String>,
    /// The Slack routes' settings; `None` leaves them unmounted.
    pub slack: Option<loupe_api::slack::SlackConfig>,
    /// Bearer tokens every listener requires (see `loupe_api::auth`); `None`: no authentication,
    /// which only a loopback address or `insecure_no_auth` allows.
    pub tokens: Option<Arc<Tokens>>,
    /// Listen beyond loopback without tokens (logged as a warning at every start).
    pub insecure_no_auth: bool,
    /// How many expensive reads (SQL, analyses, asks) run at once, and how many wait.
    pub gate: loupe_api::gate::GateConfig,
    /// TLS on all three listeners; its `client_ca_file` (mutual TLS) applies to the OTLP
    /// listeners only, so browsers reach the UI without a client certificate.
    pub tls: Option<TlsFiles>,
    /// The ingest budget: bytes in flight, waiters, memory watermark.
    pub admission: AdmissionConfig,
    /// Connection limits and timeouts of each listener.
    pub listen: ListenConfig,
    /// The secret GitHub signs webhook deliveries to `POST /api/v1/changes` with
    /// (`X-Hub-Signature-256`); such deliveries need no bearer token.
    pub github_webhook_secret: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            otlp_grpc_addr: ([127, 0, 0, 1], 4317).into(),
            otlp_http_addr: ([127, 0, 0, 1], 4318).into(),
            http_addr: ([127, 0, 0, 1], 8080).into(),
            store: Some(StoreConfig::new("./loupe-data")),
            query_limits: QueryLimits::default(),
            limits: Limits::default(),
            detect: DetectConfig::default(),
            analysis: AnalysisConfig::default(),
            mcp_allow_writes: false,
            mcp_allowed_hosts: Vec::new(),
            slack: None,
            tokens: None,
            insecure_no_auth: false,
            tls: None,
            gate: loupe_api::gate::GateConfig::default(),
            admission: AdmissionConfig::default(),
            listen: ListenConfig::default(),
            github_webhook_secret: None,
        }
    }
}

/// A running server.
pub struct Server {
    /// Bound OTLP/gRPC address.
    pub otlp_grpc_addr: SocketAddr,
    /// Bound OTLP/HTTP address.
    pub otlp_http_addr: SocketAddr,
    /// Bound REST API address.
    pub http_addr: SocketAddr,
    /// The engine behind the receivers.
    pub engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind {what} on {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

fn spawn_serve(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    router: axum::Router,
    (config, shutdown): (ListenConfig, watch::Receiver<bool>),
    what: &'static str,
) -> anyhow::Result<JoinHandle<()>> {
    Ok(match tls {
        Some(tls) => serve_on(
            TlsListener::new(listener, tls)?,
            router,
            config,
            shutdown,
            what,
        ),
        None => serve_on(listener, router, config, shutdown, what),
    })
}

/// Refuses a listener beyond loopback without tokens, unless `insecure_no_auth`.
fn check_exposure(config: &ServeConfig) -> anyhow::Result<()> {
    let exposed: Vec<String> = [
        config.otlp_grpc_addr,
        config.otlp_http_addr,
        config.http_addr,
    ]
    .iter()
    .filter(|a| !a.ip().is_loopback())
    .map(ToString::to_string)
    .collect();
    if exposed.is_empty() {
        return Ok(());
    }
    match &config.tokens {
        Some(tokens) if tokens.is_empty() => tracing::warn!(
            path = %tokens.path().display(),
            "the tokens file holds no token: every request but /healthz, /readyz and the page is refused"
        ),
        Some(_) => {}
        None if config.insecure_no_auth => tracing::warn!(
            addresses = %exposed.join(", "),
            "listening beyond loopback WITHOUT authentication (--insecure-no-auth): anyone who reaches these addresses can read every trace, run SQL, send data and record verdicts"
        ),
        None => anyhow::bail!(
            "refusing to listen on {} without authentication: anyone who reaches it could read \
             every trace, run SQL, send data and record verdicts. Create tokens \
             (`loupe token create --name collector --scope ingest --tokens-file tokens.txt`) and \
             start with --auth-tokens-file tokens.txt, listen on 127.0.0.1, or pass \
             --insecure-no-auth",
            exposed.join(", ")
        ),
    }
    Ok(())
}

/// Reads the tokens file and the TLS files again on SIGHUP (both are also read again when
/// they change).
fn spawn_reload_on_hangup(
    tokens: Option<Arc<Tokens>>,
    tls: Vec<Arc<Tls>>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hangup) = signal(SignalKind::hangup()) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = hangup.recv() => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                let (tokens, tls) = (tokens.clone(), tls.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    if let Some(tokens) = tokens {
                        match tokens.reload() {
                            Ok(n) => tracing::info!(tokens = n, "SIGHUP: tokens file read again"),
                            Err(error) => tracing::warn!(%error, "SIGHUP: the tokens file does not parse: keeping the tokens last read"),
                        }
                    }
                    for t in tls {
                        match t.reload() {
                            Ok(()) => tracing::info!("SIGHUP: TLS files read again"),
                            Err(error) => tracing::warn!(error = format!("{error:#}"), "SIGHUP: the TLS files do not load: keeping the certificate last read"),
                        }
                    }
                })
                .await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (tokens, tls, shutdown.wait_for(|s| *s).await);
        }
    })
}

/// Starts a server: opens the engine (recovery then runs in the background), binds the three
/// listeners and spawns their accept loops, the incident ticker, the store's maintenance and,
/// with tokens or TLS, their reload on SIGHUP.
///
/// # Errors
/// An exposure without tokens that `--insecure-no-auth` does not allow, a store, verdict or
/// incident file that cannot be opened, an address that cannot be bound, TLS files that do not
/// load.
pub async fn start(config: ServeConfig) -> anyhow::Result<Server> {
    check_exposure(&config)?;
    let clock: SharedClock = Arc::new(SystemClock);
    let engine = open_engine(&config).await?;
    // Self-telemetry: every part registers its metrics here; /metrics renders them.
    let mut registry = prometheus_client::registry::Registry::default();
    let receiver_metrics = ReceiverMetrics::register(&mut registry);
    if let Some(store) = engine.store() {
        store.metrics().register(&mut registry);
    }
    let admission = admission(&config, receiver_metrics.clone());
    let receiver = Receiver::new(engine.clone(), config.limits).with_metrics(receiver_metrics);
    let incidents = open_incidents(&config)?;
    let (api, analysis_seconds) = api_router(
        &config,
        (engine.clone(), clock.clone(), incidents.clone()),
        admission.clone(),
        registry,
    );
    let (otlp_grpc, otlp_http) = otlp_routers(&config, receiver, admission);

    let (grpc_listener, otlp_grpc_addr) = bind(config.otlp_grpc_addr, "OTLP/gRPC").await?;
    let (http_listener, otlp_http_addr) = bind(config.otlp_http_addr, "OTLP/HTTP").await?;
    let (api_listener, http_addr) = bind(config.http_addr, "the REST API").await?;
    let (api_tls, otlp_tls) = load_tls(&config)?;
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = vec![
        spawn_serve(
            grpc_listener,
            otlp_tls.clone(),
            otlp_grpc,
            (config.listen, rx.clone()),
            "otlp-grpc",
        )?,
        spawn_serve(
            http_listener,
            otlp_tls.clone(),
            otlp_http,
            (config.listen, rx.clone()),
            "otlp-http",
        )?,
        spawn_serve(
            api_listener,
            api_tls.clone(),
            api,
            (config.listen, rx.clone()),
            "api",
        )?,
    ];
    tasks.push(spawn_ticker(
        engine.clone(),
        clock.clone(),
        (
            incidents.clone(),
            config.detect.clone(),
            config.analysis.clone(),
        ),
        analysis_seconds,
        rx.clone(),
    ));
    if config.tokens.is_some() || config.tls.is_some() {
        let tls = api_tls.into_iter().chain(otlp_tls).collect();
        tasks.push(spawn_reload_on_hangup(
            config.tokens.clone(),
            tls,
            rx.clone(),
        ));
    }
    tasks.push(spawn_recovery(engine.clone()));
    if engine.store().is_some() {
        tasks.push(spawn_maintenance(engine.clone(), clock, rx));
    }
    tracing::info!(%otlp_grpc_addr, %otlp_http_addr, %http_addr, "loupe is serving");
    Ok(Server {
        otlp_grpc_addr,
        otlp_http_addr,
        http_addr,
        engine,
        shutdown,
        tasks,
    })
}

/// The ingest admission gate ([`Admission`]) of `config`, its resolved limits logged.
fn admission(config: &ServeConfig, metrics: ReceiverMetrics) -> Arc<Admission> {
    let admission = Admission::new(config.admission, metrics);
    let resolved = admission.config();
    tracing::info!(
        max_inflight_bytes = resolved.max_inflight_bytes,
        max_waiters = resolved.max_waiters,
        memory_limit_bytes = ?resolved.memory_limit_bytes,
        "ingest admission: refusals past these are retryable (UNAVAILABLE / 503)"
    );
    admission
}

/// The OTLP/gRPC and OTLP/HTTP receivers' routers, each behind the admission gate (with its
/// body limits) and the tokens guard.
fn otlp_routers(
    config: &ServeConfig,
    receiver: Receiver<Engine>,
    admission: Arc<Admission>,
) -> (axum::Router, axum::Router) {
    let otlp_body = |max_body_bytes| BodyLimits {
        max_body_bytes,
        body_timeout: config.listen.body_timeout,
    };
    let grpc = guard(
        loupe_ingest::guard(
            grpc_router(receiver.clone()),
            admission.clone(),
            Transport::grpc,
            otlp_body(config.limits.max_decompressed_bytes),
        ),
        config.tokens.clone(),
        Listener::OtlpGrpc,
    );
    let http = guard(
        loupe_ingest::guard(
            http_router(receiver),
            admission,
            Transport::http,
            otlp_body(config.limits.max_body_bytes),
        ),
        config.tokens.clone(),
        Listener::OtlpHttp,
    );
    (grpc, http)
}

/// The engine over `config.store`'s directory (opened off the async threads), else in memory.
async fn open_engine(config: &ServeConfig) -> anyhow::Result<Arc<Engine>> {
    let engine = match &config.store {
        Some(store) => {
            let store = store.clone();
            tokio::task::spawn_blocking(move || Engine::open(store, GraphConfig::default()))
                .await??
        }
        None => Engine::in_memory(GraphConfig::default()),
    };
    Ok(Arc::new(engine))
}

/// The incidents and the verdicts, kept beside the write-ahead log (`verdicts.jsonl`,
/// `incidents.jsonl`) when there is a data directory; lines that do not parse are skipped with
/// a warning.
fn open_incidents(config: &ServeConfig) -> anyhow::Result<Arc<Mutex<Incidents>>> {
    let incidents = match &config.store {
        Some(store) => {
            let (verdicts, skipped) = Verdicts::open(&store.dir.join("verdicts.jsonl"))?;
            if skipped > 0 {
                tracing::warn!(skipped, "verdict lines that do not parse were skipped");
            }
            let (incidents, skipped) =
                Incidents::open(&store.dir.join("incidents.jsonl"), verdicts)?;
            if skipped > 0 {
                tracing::warn!(skipped, "incident lines that do not parse were skipped");
            }
            incidents
        }
        None => Incidents::default(),
    };
    Ok(Arc::new(Mutex::new(incidents)))
}

/// The REST API's router: the API, the change intake (behind the admission gate), ask, SQL,
/// Slack when configured, all behind the query gate; `/mcp`, whose tools call those routes in
/// process; `/metrics` (open on loopback, else needing `read`); the tokens guard and the body
/// deadline. Registers the gate's, the scrape-time and the analysis metrics in `registry`, which
/// `/metrics` then renders, and returns the analysis histogram for the ticker.
fn api_router(
    config: &ServeConfig,
    (engine, clock, incidents): (Arc<Engine>, SharedClock, Arc<Mutex<Incidents>>),
    admission: Arc<Admission>,
    mut registry: prometheus_client::registry::Registry,
) -> (
    axum::Router,
    prometheus_client::metrics::histogram::Histogram,
) {
    let api_state = ApiState {
        graph: engine.graph(),
        clock: clock.clone(),
        analysis: config.analysis.clone(),
        incidents: incidents.clone(),
    };
    let sql_state = SqlState {
        query: engine.query_engine(),
        store: engine.store(),
        limits: config.query_limits,
        readiness: engine.clone(),
        clock: clock.clone(),
    };
    let ask_state = loupe_api::AskState {
        api: api_state.clone(),
        sql: sql_state.clone(),
    };
    let changes = loupe_ingest::guard(
        loupe_ingest::changes::changes_router(
            engine.clone(),
            clock.clone(),
            config.github_webhook_secret.as_deref(),
        ),
        admission.clone(),
        Transport::changes,
        BodyLimits {
            max_body_bytes: loupe_ingest::changes::MAX_BODY_BYTES,
            body_timeout: config.listen.body_timeout,
        },
    );
    let mut api = loupe_api::router(api_state)
        .merge(changes)
        .merge(loupe_api::ask_router(ask_state.clone()))
        .merge(loupe_api::sql_router(sql_state));
    if let Some(slack) = config.slack.clone() {
        api = api.merge(loupe_api::slack::slack_router(ask_state, slack));
    }
    // Expensive reads take turns, whether they come over HTTP or from an MCP tool.
    let gate = loupe_api::gate::Gate::new(config.gate);
    gate.register(&mut registry);
    let api = loupe_api::gate::guard(api, gate);
    // MCP at /mcp: its tools call the routes above in process. The Host header may also name
    // the address the API listens on (rmcp refuses other hosts, against DNS rebinding).
    let mcp = loupe_api::mcp::streamable_http_service(
        Arc::new(loupe_api::mcp::RouterBackend(api.clone())),
        clock.clone(),
        config.mcp_allow_writes,
        [
            config.http_addr.ip().to_string(),
            config.http_addr.to_string(),
        ]
        .into_iter()
        .chain(config.mcp_allowed_hosts.iter().cloned())
        .collect(),
    );
    registry.register_collector(Box::new(crate::telemetry::ScrapeCollector::new(
        engine.clone(),
        incidents.clone(),
    )));
    let analysis_seconds = crate::telemetry::analysis_histogram(&mut registry);
    let metrics = crate::telemetry::metrics_router(Arc::new(registry));
    let api = api.nest_service("/mcp", mcp);
    // /metrics needs the read scope, unless the API listens on loopback only (a local
    // Prometheus scrapes it without a token).
    let api = if config.http_addr.ip().is_loopback() {
        guard(api, config.tokens.clone(), Listener::Api).merge(metrics)
    } else {
        guard(api.merge(metrics), config.tokens.clone(), Listener::Api)
    };
    let api = crate::listen::body_deadline(api, config.listen.body_timeout, API_MAX_BODY_BYTES);
    (api, analysis_seconds)
}

/// A listener's TLS, when it has one.
type ListenerTls = Option<Arc<Tls>>;

/// The API's TLS (without client certificates) and the receivers' (with them, if asked).
fn load_tls(config: &ServeConfig) -> anyhow::Result<(ListenerTls, ListenerTls)> {
    Ok(match &config.tls {
        Some(files) => {
            let api = TlsFiles {
                client_ca_file: None,
                ..files.clone()
            };
            (
                Some(Arc::new(Tls::load(api)?)),
                Some(Arc::new(Tls::load(files.clone())?)),
            )
        }
        None => (None, None),
    })
}

/// Once a second: lets idle spans out of the join buffer, then evaluates the alerts and
/// updates the incidents at the graph's watermark.
fn spawn_ticker(
    engine: Arc<Engine>,
    clock: SharedClock,
    (incidents, detect, analysis): (Arc<Mutex<Incidents>>, DetectConfig, AnalysisConfig),
    analysis_seconds: prometheus_client::metrics::histogram::Histogram,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let detect = Arc::new(detect);
    let analysis = Arc::new(analysis);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let engine = engine.clone();
            let now = clock.now_unix_nano();
            let idle = JOIN_IDLE.as_nanos() as u64;
            let (incidents, detect) = (incidents.clone(), detect.clone());
            let analysis = analysis.clone();
            let analysis_seconds = analysis_seconds.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let graph = engine.graph();
                graph
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .expire_idle(now, idle);
                let graph = graph.read().unwrap_or_else(|p| p.into_inner());
                let mut incidents = incidents.lock().unwrap_or_else(|p| p.into_inner());
                let started = std::time::Instant::now();
                let changed = incidents.tick(&graph, &detect, &analysis);
                analysis_seconds.observe(started.elapsed().as_secs_f64());
                if changed {
                    if let Some(i) = incidents.list().first() {
                        tracing::info!(id = i.id, title = %i.title, status = ?i.status, "incident updated");
                    }
                }
                // Saves made here or through the API since the last tick.
                if let Some(e) = incidents.take_save_error() {
                    tracing::warn!(error = %e, "an incident is kept in memory only");
                }
            })
            .await;
        }
    })
}

/// Rebuilds the graph and replays the log, logging progress at most every two seconds.
fn spawn_recovery(engine: Arc<Engine>) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut last = std::time::Instant::now();
        let result = engine.recover(|p| {
            if last.elapsed() >= Duration::from_secs(2) {
                last = std::time::Instant::now();
                tracing::info!(
                    phase = p.phase,
                    segments = format!("{}/{}", p.segments_done, p.segments_total),
                    rows = p.rows,
                    log_records = format!("{}/{}", p.wal_records_done, p.wal_records_total),
                    "recovering"
                );
            }
        });
        match result {
            Ok(r) => tracing::info!(
                segments = r.segments,
                segment_rows = r.segment_rows,
                unreadable_segments = r.unreadable_segments,
                log_requests = r.requests,
                undecodable = r.undecodable,
                torn_bytes = r.torn_bytes,
                seconds = started.elapsed().as_secs_f64(),
                "recovery complete: ready"
            ),
            Err(error) => tracing::error!(%error, "recovery failed"),
        }
    })
}

/// Every second, flushes the hot data when it is due; every minute, compacts and applies
/// retention. Runs on a blocking thread, off the ingest path.
fn spawn_maintenance(
    engine: Arc<Engine>,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            ticks += 1;
            let (Some(store), true) = (engine.store(), engine.is_ready()) else {
                continue;
            };
            let now = clock.now_unix_nano() as i64;
            let maintain = ticks.is_multiple_of(60);
            let _ = tokio::task::spawn_blocking(move || {
                if store.flush_due() {
                    match store.flush() {
                        Ok(r) => tracing::info!(rows = r.rows, files = r.files, bytes = r.bytes, "flushed hot data to segments"),
                        Err(error) => tracing::error!(%error, "flush failed; the data stays in the log and memory"),
                    }
                }
                if maintain {
                    match store.maintain(now) {
                        Ok(r) if r.compacted_inputs + r.expired_by_age + r.expired_by_size > 0 => {
                            tracing::info!(?r, "store maintenance")
                        }
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "store maintenance failed"),
                    }
                }
            })
            .await;
        }
    })
}

impl Readiness for Engine {
    fn ready(&self) -> bool {
        self.is_ready()
    }

    fn progress(&self) -> serde_json::Value {
        serde_json::to_value(Engine::progress(self)).unwrap_or_default()
    }
}

impl Server {
    /// Waits until recovery is complete (or `timeout` passes).
    ///
    /// # Errors
    /// When the engine is not ready within `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        while !self.engine.is_ready() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "not ready after {timeout:?}: {:?}",
                self.engine.progress()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the listeners to close.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
