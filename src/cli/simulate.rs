//! `loupe simulate`: streams a simulated system's telemetry live to an OTLP endpoint (gRPC or
//! HTTP) with a fault every few minutes and the change webhooks a CI/CD system would send (case
//! sets are written by `loupe_simulate::cases::write_suite`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use loupe_ingest::{ExportRequest, OtlpGrpcClient, Signal};
use loupe_simulate::fault::{FaultKind, HerringKind};
use loupe_simulate::scenario::{plan_fault, GroundTruth};
use loupe_simulate::{Notice, Simulation, Topology};
use rand::{Rng, SeedableRng};

/// The OTLP transport of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC, gzip-compressed.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// Settings of a live stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// OTLP endpoint: `http://host:4317` for gRPC, `http://host:4318` for HTTP.
    pub endpoint: String,
    /// Transport.
    pub transport: Transport,
    /// Base URL of loupe's REST API for change webhooks; `None` drops them.
    pub api: Option<String>,
    /// The system.
    pub topology: Arc<Topology>,
    /// Seed.
    pub seed: u64,
    /// Fault kinds, injected in turn; empty means no fault.
    pub faults: Vec<FaultKind>,
    /// Time to the first fault.
    pub first_fault: Duration,
    /// Time from one fault's start to the next one's.
    pub fault_every: Duration,
    /// How long each fault lasts.
    pub fault_duration: Duration,
    /// Whether a red herring may come with each fault.
    pub herrings: bool,
    /// Fewest requests per second a fault's target receives (a fault on a quiet service shows
    /// little; the demo wants faults users feel).
    pub min_target_rate: f64,
    /// Stop after this long; `None` runs until interrupted.
    pub duration: Option<Duration>,
}

/// Something a stream did, for the caller to show.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// A fault starts now; its ground truth.
    FaultStarted(Box<GroundTruth>),
    /// The fault ended.
    FaultEnded(Box<GroundTruth>),
    /// Totals so far, every ten seconds.
    Progress(StreamTotals),
}

/// Totals of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// Requests sent.
    pub requests: u64,
    /// Spans, log records and points sent.
    pub items: u64,
    /// Items the endpoint rejected (partial success).
    pub rejected: u64,
    /// Change webhooks posted.
    pub notices: u64,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one sender per stream, made once: its size does not matter"
)]
enum Sender {
    Grpc(OtlpGrpcClient),
    Http(Client<HttpConnector, Full<Bytes>>, String),
}

impl Sender {
    async fn connect(endpoint: &str, transport: Transport) -> anyhow::Result<Self> {
        Ok(match transport {
            Transport::Grpc => Self::Grpc(
                OtlpGrpcClient::connect(endpoint)
                    .await?
                    .with_bearer_token(crate::cli::query::token_from_env())?,
            ),
            Transport::Http => Self::Http(
                Client::builder(TokioExecutor::new()).build_http(),
                endpoint.trim_end_matches('/').to_owned(),
            ),
        })
    }

    /// Sends one request; returns the items rejected.
    async fn send(&mut self, request: ExportRequest) -> anyhow::Result<u64> {
        match self {
            Self::Grpc(client) => Ok(client.send(request).await?),
            Self::Http(client, base) => {
                let path = match request.signal() {
                    Signal::Traces => "traces",
                    Signal::Metrics => "metrics",
                    Signal::Logs => "logs",
                };
                let url = format!("{base}/v1/{path}");
                let headers = [(
                    "content-type".to_owned(),
                    "application/x-protobuf".to_owned(),
                )];
                let body = post(client, &url, &headers, request.encode()).await?;
                Ok(request.rejected_in(&body)?)
            }
        }
    }
}

/// POSTs `body` to `url` with `headers`; returns the answer's body.
///
/// # Errors
/// When `url` cannot be reached or answers with anything but success.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> anyhow::Result<Bytes> {
    let mut r = hyper::Request::post(url);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    // A server with tokens: LOUPE_TOKEN (of the ingest scope) goes with every request.
    if let Some(token) = crate::cli::query::token_from_env() {
        r = r.header("authorization", format!("Bearer {token}"));
    }
    let response = client
        .request(r.body(Full::new(Bytes::from(body)))?)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "{url} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body)
}

/// Posts a change webhook to `api`'s `/api/v1/changes`.
///
/// # Errors
/// When the API cannot be reached or refuses the change.
pub async fn post_notice(
    client: &Client<HttpConnector, Full<Bytes>>,
    api: &str,
    notice: &Notice,
) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/changes", api.trim_end_matches('/'));
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    headers.extend(notice.headers.iter().cloned());
    post(client, &url, &headers, serde_json::to_vec(&notice.body)?)
        .await
        .context("a change webhook was refused")?;
    Ok(())
}

fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Streams until `config.duration` passes (or forever), once a second, reporting through
/// `on_event`.
///
/// # Errors
/// When the endpoint cannot be reached or refuses a request, or the API refuses a change.
pub async fn stream(
    config: StreamConfig,
    mut on_event: impl FnMut(StreamEvent),
) -> anyhow::Result<StreamTotals> {
    let mut sender = Sender::connect(&config.endpoint, config.transport).await?;
    let http = Client::builder(TokioExecutor::new()).build_http();
    let start = now_unix_nano();
    let mut sim = Simulation::new(config.topology.clone(), start, Vec::new(), config.seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed);
    let mut next_fault = start + config.first_fault.as_nanos() as u64;
    let mut kinds = config.faults.iter().cycle();
    let mut active: Vec<GroundTruth> = Vec::new();
    let mut totals = StreamTotals::default();
    let mut last_progress = start;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_unix_nano();
        if config
            .duration
            .is_some_and(|d| now >= start + d.as_nanos() as u64)
        {
            break;
        }
        // Plan the next fault as its time comes.
        if now >= next_fault {
            if let Some(&kind) = kinds.next() {
                let herrings: Vec<HerringKind> = if config.herrings && rng.random_bool(0.5) {
                    vec![HerringKind::UnrelatedDeployment]
                } else {
                    Vec::new()
                };
                let end = now + config.fault_duration.as_nanos() as u64;
                let (plans, mut truth) = plan_fault(
                    &config.topology,
                    kind,
                    &herrings,
                    (start, now, end),
                    config.min_target_rate,
                    &mut rng,
                );
                truth.case_id = format!("live-{}", now / 1_000_000_000);
                for p in plans {
                    sim.plan(p);
                }
                on_event(StreamEvent::FaultStarted(Box::new(truth.clone())));
                active.push(truth);
            }
            next_fault = now + config.fault_every.as_nanos().max(1) as u64;
        }
        let batch = sim.advance(now);
        for request in batch.requests {
            totals.items += request.item_count() as u64;
            totals.requests += 1;
            totals.rejected += sender.send(request).await?;
        }
        if let Some(api) = &config.api {
            for notice in &batch.notices {
                post_notice(&http, api, notice).await?;
                totals.notices += 1;
            }
        }
        active.retain(|t| {
            let over = t.fault_end_unix_ns <= now;
            if over {
                on_event(StreamEvent::FaultEnded(Box::new(t.clone())));
            }
            !over
        });
        if now >= last_progress + 10_000_000_000 {
            last_progress = now;
            on_event(StreamEvent::Progress(totals));
        }
    }
    Ok(totals)
}

/// What `loupe simulate` does.
#[derive(clap::Subcommand)]
pub enum SimulateMode {
    /// Stream live, in real time, until interrupted (or --duration passes).
    Stream(StreamArgs),
    /// Write a labelled case set (ground_truth.json and OTLP files per case) to a directory.
    Cases(CasesArgs),
}

/// `loupe simulate stream` arguments.
#[derive(clap::Args)]
pub struct StreamArgs {
    /// OTLP endpoint (gRPC: http://HOST:4317; HTTP: http://HOST:4318).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub endpoint: String,
    /// OTLP transport.
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: OtlpProtocol,
    /// loupe's REST API, where change webhooks go (`none` to send none).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    #[command(flatten)]
    pub system: SystemArgs,
    /// Fault types injected in turn (`none` for none) [default: every type but db_errors].
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Time to the first fault.
    #[arg(long, default_value = "2m")]
    pub first_fault: humantime::Duration,
    /// Time between the starts of two faults.
    #[arg(long, default_value = "5m")]
    pub fault_every: humantime::Duration,
    /// How long each fault lasts.
    #[arg(long, default_value = "3m")]
    pub fault_duration: humantime::Duration,
    /// No red herrings.
    #[arg(long)]
    pub no_herrings: bool,
    /// Stop after this long.
    #[arg(long)]
    pub duration: Option<humantime::Duration>,
}

/// `loupe simulate cases` arguments.
#[derive(clap::Args)]
pub struct CasesArgs {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of cases.
    #[arg(long, default_value_t = 300)]
    pub cases: usize,
    /// Seed of the whole set.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Systems, used in turn: built-in names or topology files.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "otel-demo,random-small,random-large"
    )]
    pub topologies: Vec<String>,
    /// Fault types, used in turn [default: every type but db_errors].
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Chance of each kind of red herring in a case.
    #[arg(long, default_value_t = 0.5)]
    pub herring_chance: f64,
    /// Fault-free time before each fault; several, comma-separated, are used in turn (after
    /// every topology and traffic level), to measure short baselines beside long ones.
    #[arg(long, value_delimiter = ',', default_value = "6m")]
    pub baseline: Vec<humantime::Duration>,
    /// Length of each fault.
    #[arg(long, default_value = "4m")]
    pub fault_duration: humantime::Duration,
    /// Traffic levels, used in turn (after every topology): low is a quarter of the
    /// topology's rate, high four times it.
    #[arg(long, value_delimiter = ',', default_value = "normal")]
    pub traffic: Vec<loupe_simulate::scenario::Traffic>,
    /// How often the simulated services export their metrics: 15s as an SDK does, 60s or 5m
    /// as a cloud provider's converted metrics come.
    #[arg(long, default_value = "15s")]
    pub metric_interval: humantime::Duration,
    /// How durations and counters are exported: delta or cumulative histograms and sums, or
    /// per-interval summaries with quantiles (as cloud-metric converters send them).
    #[arg(long, default_value = "delta")]
    pub temporality: loupe_simulate::Temporality,
}

/// The simulated system.
#[derive(clap::Args, Clone)]
pub struct SystemArgs {
    /// A built-in topology (otel-demo, cloud-shop, random-small, random-large) or a topology file
    /// (TOML).
    #[arg(long, default_value = "otel-demo")]
    pub topology: String,
    /// Requests per second entering the system [default: the topology's].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The OTLP transport of `loupe simulate stream`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// A built-in topology by name, else a topology file.
pub fn topology(arg: &str) -> anyhow::Result<std::sync::Arc<loupe_simulate::Topology>> {
    use loupe_simulate::topology::BUILTIN;
    let t = if BUILTIN.contains(&arg) {
        loupe_simulate::Topology::builtin(arg)?
    } else {
        let text = std::fs::read_to_string(arg).with_context(|| {
            format!("{arg:?} is neither a built-in topology ({BUILTIN:?}) nor a readable file")
        })?;
        loupe_simulate::Topology::parse(&text, arg)?
    };
    Ok(std::sync::Arc::new(t))
}

/// Fault types from their names; every type when none is given, none for `none`.
pub fn fault_kinds(names: &[String]) -> anyhow::Result<Vec<loupe_simulate::FaultKind>> {
    if names.is_empty() {
        return Ok(loupe_simulate::FaultKind::DEFAULT.to_vec());
    }
    if names == ["none"] {
        return Ok(Vec::new());
    }
    names
        .iter()
        .map(|n| n.parse().map_err(|e: String| anyhow::anyhow!(e)))
        .collect()
}

/// `loupe simulate`: streams live ([`stream`]) or writes a labelled case set
/// (`loupe_simulate::cases::write_suite`).
///
/// # Errors
/// Bad arguments (an unknown topology or fault type, no cases), or the stream or the writing
/// failing.
pub async fn execute(mode: SimulateMode) -> anyhow::Result<()> {
    match mode {
        SimulateMode::Stream(args) => stream_command(args).await,
        SimulateMode::Cases(args) => cases_command(args).await,
    }
}

/// `loupe simulate stream`.
async fn stream_command(args: StreamArgs) -> anyhow::Result<()> {
    let StreamArgs {
        endpoint,
        protocol,
        api,
        system,
        faults,
        first_fault,
        fault_every,
        fault_duration,
        no_herrings,
        duration,
    } = args;
    let mut t = (*topology(&system.topology)?).clone();
    if let Some(rate) = system.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be positive");
        t.requests_per_second = rate;
    }
    let config = StreamConfig {
        endpoint: endpoint.clone(),
        transport: match protocol {
            OtlpProtocol::Grpc => Transport::Grpc,
            OtlpProtocol::Http => Transport::Http,
        },
        api: (api != "none").then_some(api),
        topology: std::sync::Arc::new(t),
        seed: system.seed,
        faults: fault_kinds(&faults)?,
        first_fault: first_fault.into(),
        fault_every: fault_every.into(),
        fault_duration: fault_duration.into(),
        herrings: !no_herrings,
        min_target_rate: loupe_simulate::scenario::MIN_TARGET_RATE,
        duration: duration.map(Into::into),
    };
    eprintln!(
        "streaming {} to {endpoint}; ctrl-c to stop",
        system.topology
    );
    let stream = stream(config, |event| match event {
        StreamEvent::FaultStarted(t) => println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"event": "fault_started", "truth": t}))
                .unwrap_or_default()
        ),
        StreamEvent::FaultEnded(t) => println!(
            "{}",
            serde_json::to_string(
                &serde_json::json!({"event": "fault_ended", "case_id": t.case_id})
            )
            .unwrap_or_default()
        ),
        StreamEvent::Progress(p) => eprintln!(
            "sent {} items in {} requests ({} rejected), {} changes",
            p.items, p.requests, p.rejected, p.notices
        ),
    });
    tokio::select! {
        r = stream => { r?; }
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

/// `loupe simulate cases`.
async fn cases_command(args: CasesArgs) -> anyhow::Result<()> {
    let CasesArgs {
        out,
        cases,
        seed,
        topologies,
        faults,
        herring_chance,
        baseline,
        fault_duration,
        traffic,
        metric_interval,
        temporality,
    } = args;
    anyhow::ensure!(cases > 0, "--cases must be at least 1");
    let interval_seconds = metric_interval.as_secs();
    anyhow::ensure!(
        (1..=3600).contains(&interval_seconds),
        "--metric-interval must be between 1s and 1h"
    );
    let faults = fault_kinds(&faults)?;
    anyhow::ensure!(!faults.is_empty(), "--faults names no fault type");
    let spec = loupe_simulate::cases::SuiteSpec {
        topologies: topologies
            .iter()
            .map(|t| topology(t))
            .collect::<anyhow::Result<_>>()?,
        faults,
        cases,
        seed,
        herring_chance,
        baselines_nanos: baseline.iter().map(|b| b.as_nanos() as u64).collect(),
        fault_nanos: fault_duration.as_nanos() as u64,
        traffic,
        metrics: loupe_simulate::MetricExport {
            interval_seconds,
            temporality,
        },
    };
    let bar = indicatif::ProgressBar::new(cases as u64);
    let dir = out.clone();
    let truths = tokio::task::spawn_blocking(move || {
        loupe_simulate::cases::write_suite(&dir, &spec, |done, _, _| bar.set_position(done as u64))
    })
    .await??;
    println!("wrote {} labelled cases to {}", truths.len(), out.display());
    Ok(())
}
