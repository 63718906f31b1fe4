//! `loupe serve`: OTLP/gRPC, OTLP/HTTP and the REST API on their own listeners, one engine
//! behind them, and a background tick that lets idle spans out of the join buffer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use loupe_analysis::{AnalysisConfig, DetectConfig, Incidents, Verdicts};
use loupe_api::ApiState;
use loupe_graph::GraphConfig;
use loupe_ingest::{grpc_router, http_router, Limits, Receiver};
use loupe_model::time::{SharedClock, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::Engine;

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
    /// Data directory; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Receiver limits.
    pub limits: Limits,
    /// Service-level objectives and alerting for automatic incidents.
    pub detect: DetectConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            otlp_grpc_addr: ([127, 0, 0, 1], 4317).into(),
            otlp_http_addr: ([127, 0, 0, 1], 4318).into(),
            http_addr: ([127, 0, 0, 1], 8080).into(),
            data_dir: Some(PathBuf::from("./loupe-data")),
            limits: Limits::default(),
            detect: DetectConfig::default(),
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
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, what, "listener failed");
        }
    })
}

/// Starts serving: recovers the data directory, binds the three listeners, and returns once
/// they accept connections.
///
/// # Errors
/// When the data directory cannot be recovered or an address cannot be bound.
pub async fn start(config: ServeConfig) -> anyhow::Result<Server> {
    let clock: SharedClock = Arc::new(SystemClock);
    let engine = match &config.data_dir {
        Some(dir) => {
            let dir2 = dir.clone();
            let (engine, recovery) =
                tokio::task::spawn_blocking(move || Engine::open(&dir2, GraphConfig::default()))
                    .await??;
            tracing::info!(
                data_dir = %dir.display(),
                requests = recovery.requests,
                undecodable = recovery.undecodable,
                torn_bytes = recovery.torn_bytes,
                "recovered write-ahead log"
            );
            engine
        }
        None => Engine::in_memory(GraphConfig::default()),
    };
    let engine = Arc::new(engine);
    let receiver = Receiver::new(engine.clone(), config.limits);
    // Verdicts are kept beside the write-ahead log; incidents themselves are rebuilt by
    // detection and not kept yet.
    let incidents = match &config.data_dir {
        Some(dir) => {
            let (verdicts, skipped) = Verdicts::open(&dir.join("verdicts.jsonl"))?;
            if skipped > 0 {
                tracing::warn!(skipped, "verdict lines that do not parse were skipped");
            }
            Incidents::with_verdicts(verdicts)
        }
        None => Incidents::default(),
    };
    let incidents = Arc::new(Mutex::new(incidents));
    let api = loupe_api::router(ApiState {
        graph: engine.graph(),
        clock: clock.clone(),
        analysis: AnalysisConfig::default(),
        incidents: incidents.clone(),
    })
    .merge(loupe_ingest::changes::changes_router(
        engine.clone(),
        clock.clone(),
    ));

    let (grpc_listener, otlp_grpc_addr) = bind(config.otlp_grpc_addr, "OTLP/gRPC").await?;
    let (http_listener, otlp_http_addr) = bind(config.otlp_http_addr, "OTLP/HTTP").await?;
    let (api_listener, http_addr) = bind(config.http_addr, "the REST API").await?;
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = vec![
        spawn_serve(
            grpc_listener,
            grpc_router(receiver.clone()),
            rx.clone(),
            "otlp-grpc",
        ),
        spawn_serve(
            http_listener,
            http_router(receiver),
            rx.clone(),
            "otlp-http",
        ),
        spawn_serve(api_listener, api, rx.clone(), "api"),
    ];
    tasks.push(spawn_ticker(
        engine.clone(),
        clock,
        (incidents.clone(), config.detect.clone()),
        rx,
    ));
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

/// Once a second: lets idle spans out of the join buffer, then evaluates the alerts and
/// updates the incidents at the graph's watermark.
fn spawn_ticker(
    engine: Arc<Engine>,
    clock: SharedClock,
    (incidents, detect): (Arc<Mutex<Incidents>>, DetectConfig),
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let detect = Arc::new(detect);
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
            let _ = tokio::task::spawn_blocking(move || {
                let graph = engine.graph();
                graph
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .expire_idle(now, idle);
                let graph = graph.read().unwrap_or_else(|p| p.into_inner());
                let mut incidents = incidents.lock().unwrap_or_else(|p| p.into_inner());
                if incidents.tick(&graph, &detect, &AnalysisConfig::default()) {
                    if let Some(i) = incidents.list().first() {
                        tracing::info!(id = i.id, title = %i.title, status = ?i.status, "incident updated");
                    }
                }
            })
            .await;
        }
    })
}

impl Server {
    /// Stops accepting, lets in-flight requests finish, and waits for the listeners to close.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
