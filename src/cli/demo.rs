//! `loupe demo`: a server with the simulated OpenTelemetry Demo streaming live into it, a
//! fault every few minutes with the change webhooks a CI system sends, and the incidents loupe
//! opens printed as they come (`run_live`); or one real labelled fault case replayed into it
//! over OTLP/gRPC with its ranked causes printed (`run`, `loupe demo --replay nezha`).

use std::path::PathBuf;

use anyhow::Context;
use loupe_analysis::{analyze, AnalysisConfig};
use loupe_ingest::nezha::NezhaDataset;

use loupe_analysis::Slo;
use loupe_simulate::{FaultKind, Topology};

use crate::cli::replay::{self, ReplaySelection};
use crate::cli::serve::ServeArgs;
use crate::cli::simulate::{StreamConfig, StreamEvent, Transport};
use crate::server::{self, ServeConfig};

/// The vendored case: a Train-Ticket fault from the Nezha dataset (MIT, see its LICENSE).
pub fn demo_dataset_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("nezha-demo")
}

/// Settings of the live demo.
#[derive(Debug, Clone)]
pub struct LiveDemo {
    /// Seed of the simulation.
    pub seed: u64,
    /// Time to the first fault.
    pub first_fault: std::time::Duration,
    /// Time between fault starts.
    pub fault_every: std::time::Duration,
    /// How long each fault lasts.
    pub fault_duration: std::time::Duration,
    /// Stop after this long (`None`: until interrupted).
    pub duration: Option<std::time::Duration>,
}

/// The faults of the live demo, in turn: the change-driven ones first, since most real
/// incidents follow a change, then the others that breach an availability objective.
pub const DEMO_FAULTS: [FaultKind; 7] = [
    FaultKind::BadDeployment,
    FaultKind::FeatureFlag,
    FaultKind::ConfigChange,
    FaultKind::MemoryLeak,
    FaultKind::Errors,
    FaultKind::NetworkPartition,
    FaultKind::Latency,
];

/// Runs the live demo until interrupted (or `demo.duration` passes): serve, stream the
/// simulated OpenTelemetry Demo into the server, and print each fault's ground truth and each
/// incident loupe opens with its top causes.
///
/// # Errors
/// When the server cannot start or the stream fails.
pub async fn run_live(mut config: ServeConfig, demo: LiveDemo) -> anyhow::Result<()> {
    // Latency faults breach a latency objective on the entry point; the demo sets one.
    config
        .detect
        .slos
        .entry("frontend-proxy".into())
        .or_insert(Slo {
            availability: 0.999,
            latency_threshold_seconds: Some(0.5),
            latency_target: 0.99,
        });
    let server = server::start(config).await?;
    server
        .wait_ready(std::time::Duration::from_secs(60))
        .await?;
    let topology = std::sync::Arc::new(Topology::builtin("otel-demo")?);
    let api = format!("http://{}", server.http_addr);
    let topology_rate = topology.requests_per_second;
    println!("open the investigation UI: {api}/");
    println!(
        "loupe is serving: OTLP/gRPC {}, OTLP/HTTP {}, REST API {api}/api/v1",
        server.otlp_grpc_addr, server.otlp_http_addr
    );
    println!(
        "streaming the simulated OpenTelemetry Demo ({} services, {} requests/s); first fault in {}s, then one every {}s",
        topology.services.len(),
        topology.requests_per_second,
        demo.first_fault.as_secs(),
        demo.fault_every.as_secs()
    );
    let stream = crate::cli::simulate::stream(
        StreamConfig {
            endpoint: format!("http://{}", server.otlp_grpc_addr),
            transport: Transport::Grpc,
            api: Some(api.clone()),
            topology,
            seed: demo.seed,
            faults: DEMO_FAULTS.to_vec(),
            first_fault: demo.first_fault,
            fault_every: demo.fault_every,
            fault_duration: demo.fault_duration,
            herrings: true,
            // Faults on what most requests reach (a third of the traffic or more), so that
            // users feel them and the availability or latency objective pages.
            min_target_rate: topology_rate / 3.0,
            duration: demo.duration,
        },
        |event| match event {
            StreamEvent::FaultStarted(t) => {
                let herrings: Vec<String> = t
                    .red_herrings
                    .iter()
                    .map(|h| {
                        format!(
                            "{:?}{}",
                            h.kind,
                            h.service
                                .as_ref()
                                .map(|s| format!(" of {s}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                println!(
                    "\n>>> injected {}: {} (root cause: {} {}){}",
                    t.fault_type,
                    t.description,
                    t.root_cause_kind,
                    t.root_cause_service,
                    if herrings.is_empty() {
                        String::new()
                    } else {
                        format!("; red herring: {}", herrings.join(", "))
                    }
                );
            }
            StreamEvent::FaultEnded(t) => {
                println!("<<< {} in {} ended", t.fault_type, t.root_cause_service)
            }
            StreamEvent::Progress(_) => {}
        },
    );
    let watch = watch_incidents(api.clone());
    println!("ctrl-c to stop; incidents appear at {api}/incidents as loupe opens them");
    let result = tokio::select! {
        r = stream => r.map(|_| ()),
        r = watch => r,
        r = tokio::signal::ctrl_c() => r.map_err(Into::into),
    };
    server.shutdown().await;
    result
}

/// Polls the API's incidents every 5 seconds and prints what opened, changed its top cause or
/// resolved.
async fn watch_incidents(api: String) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut seen: std::collections::BTreeMap<u64, (String, String)> = Default::default();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let uri: hyper::Uri = format!("{api}/api/v1/incidents").parse()?;
        let Ok(response) = client.get(uri).await else {
            continue;
        };
        let body = response.into_body().collect().await?.to_bytes();
        let list: serde_json::Value = serde_json::from_slice(&body)?;
        for i in list["incidents"].as_array().into_iter().flatten() {
            let id = i["id"].as_u64().unwrap_or(0);
            let status = i["status"].as_str().unwrap_or("").to_owned();
            let top = i["top_cause"].as_str().unwrap_or("(analysing)").to_owned();
            let now = (status.clone(), top.clone());
            if seen.get(&id) == Some(&now) {
                continue;
            }
            let what = match seen.get(&id) {
                None => "opened",
                Some((s, _)) if *s != status => status.as_str(),
                Some(_) => "re-ranked",
            };
            println!(
                "incident #{id} {what}: {} | top cause: {top} | {api}/incidents/{id}",
                i["title"].as_str().unwrap_or("")
            );
            seen.insert(id, now);
        }
    }
}

/// Runs the demo until interrupted.
///
/// # Errors
/// When the server cannot start or the vendored case cannot be read.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let server = server::start(config).await?;
    server
        .wait_ready(std::time::Duration::from_secs(60))
        .await?;
    println!("open the investigation UI: http://{}/", server.http_addr);
    let dataset = NezhaDataset::open(demo_dataset_dir()).context("the vendored demo case")?;
    let cases = dataset.ground_truth()?;
    let case = cases.first().context("the demo dataset has no case")?;
    let telemetry = dataset.case(case, &cases)?;
    println!(
        "replaying Nezha case {} ({} fault, {}) over OTLP/gRPC to {}",
        case.case_id, case.fault_type, case.system, server.otlp_grpc_addr
    );
    let endpoint = format!("http://{}", server.otlp_grpc_addr);
    let totals = replay::send(
        &endpoint,
        replay::requests(
            &dataset,
            &ReplaySelection {
                cases: vec![case.case_id.clone()],
                range: None,
            },
        )?,
        false,
    )
    .await?;
    println!(
        "sent {} items in {} requests",
        totals.items, totals.requests
    );
    server.engine.flush();
    let (baseline, current) = {
        let graph = server.engine.graph();
        let g = graph.read().unwrap_or_else(|p| p.into_inner());
        (
            g.window(telemetry.baseline.start, telemetry.baseline.end),
            g.window(telemetry.fault.start, telemetry.fault.end),
        )
    };
    let analysis = analyze(
        &baseline,
        &current,
        None,
        &[],
        &AnalysisConfig {
            max_causes: 5,
            ..Default::default()
        },
    )?;
    println!(
        "\nranked causes for the fault window (labelled root cause: {}):",
        case.root_cause_service
    );
    if !analysis.confident {
        println!("no confident cause; best guesses:");
    }
    for cause in &analysis.causes {
        println!(
            "{:>2}. {:<32} p {:>3.0}%",
            cause.rank,
            cause.entity.id(),
            cause.probability * 100.0
        );
        for h in &cause.hypotheses {
            println!("      {}", h.sentence);
        }
        for e in cause.evidence.iter().take(3) {
            println!("      {:?}: {}", e.signal, e.summary);
        }
        if let Some(onset) = &cause.onset {
            println!("      onset: {}", onset.summary);
        }
    }
    let api = server.http_addr;
    let incident = open_incident(
        &format!("http://{api}"),
        (telemetry.fault.start, telemetry.fault.end),
        &format!(
            "Nezha {} ({}, {})",
            case.case_id, case.fault_type, case.system
        ),
    )
    .await?;
    println!(
        "\nopened incident #{incident} for the fault window: http://{api}/incidents/{incident}"
    );
    println!(
        "\nthe server keeps running; explore it:\n  open http://{api}/\n  curl 'http://{api}/api/v1/services?at={}&window=10m'\n  curl -X POST http://{api}/api/v1/analyze -d '{{\"start\":{},\"end\":{}}}'\n  cargo run -- query --server http://{api} \"SELECT service_name, count(*) AS spans, sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors FROM spans GROUP BY service_name ORDER BY errors DESC\"\nctrl-c to stop",
        telemetry.fault.end, telemetry.fault.start, telemetry.fault.end
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}

/// Opens an incident by hand for `window` through the API (`POST /api/v1/incidents`), so the
/// web UI shows the replayed case; returns its id.
///
/// # Errors
/// When the API cannot be reached or refuses the window.
async fn open_incident(api: &str, window: (u64, u64), title: &str) -> anyhow::Result<u64> {
    let body = serde_json::json!({"start": window.0, "end": window.1, "title": title});
    let (_, bytes) =
        crate::cli::query::post_api(api, "/api/v1/incidents", &body, "application/json")
            .await
            .context("opening the incident")?;
    let incident: serde_json::Value = serde_json::from_slice(&bytes)?;
    incident["id"]
        .as_u64()
        .context("the opened incident has no id")
}

/// `loupe demo` arguments: the server's settings and the simulation's.
#[derive(clap::Args, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Replay a real dataset instead of the live simulation (the vendored Nezha case).
    #[arg(long, value_enum)]
    pub replay: Option<DemoDataset>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time to the first fault.
    #[arg(long, default_value = "90s")]
    pub first_fault: humantime::Duration,
    /// Time between the starts of two faults.
    #[arg(long, default_value = "5m")]
    pub fault_every: humantime::Duration,
    /// How long each fault lasts.
    #[arg(long, default_value = "3m")]
    pub fault_duration: humantime::Duration,
    /// Stop after this long (default: at ctrl-c).
    #[arg(long)]
    pub duration: Option<humantime::Duration>,
}

/// A real dataset `loupe demo --replay` replays.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DemoDataset {
    /// The vendored Nezha Train-Ticket case.
    Nezha,
}

/// `loupe demo`: serves with its data in a fresh temporary directory, removed at the end, and
/// streams the live simulation into it ([`run_live`]) or replays the Nezha case ([`run`]).
///
/// # Errors
/// The server's configuration, start or the run failing.
pub async fn execute(args: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs {
        serve,
        replay,
        seed,
        first_fault,
        fault_every,
        fault_duration,
        duration,
    } = args;
    // The demo replays the same case on every run: it keeps its data in a fresh
    // temporary directory (removed when it ends) so a second run does not count the
    // case twice.
    let mut config = serve.config()?;
    let dir = std::env::temp_dir().join(format!("loupe-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.store = config.store.map(|mut s| {
        s.dir = dir.clone();
        s
    });
    let result = match replay {
        Some(DemoDataset::Nezha) => run(config).await,
        None => {
            let demo = LiveDemo {
                seed,
                first_fault: first_fault.into(),
                fault_every: fault_every.into(),
                fault_duration: fault_duration.into(),
                duration: duration.map(Into::into),
            };
            run_live(config, demo).await
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}
