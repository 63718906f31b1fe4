//! `loupe demo`: a server plus one real labelled fault case replayed into it over OTLP/gRPC,
//! its ranked causes printed, and the server kept running for exploration.

use std::path::PathBuf;

use anyhow::Context;
use loupe_analysis::{analyze, AnalysisConfig};
use loupe_ingest::nezha::NezhaDataset;

use crate::replay::{self, ReplaySelection};
use crate::server::{self, ServeConfig};

/// The vendored case: a Train-Ticket fault from the Nezha dataset (MIT, see its LICENSE).
pub fn demo_dataset_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("nezha-demo")
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
    for cause in &analysis.causes {
        println!(
            "{:>2}. {:<32} score {:.2}",
            cause.rank, cause.entity.name, cause.score
        );
        for e in cause.evidence.iter().take(3) {
            println!("      {:?}: {}", e.signal, e.summary);
        }
    }
    let api = server.http_addr;
    println!(
        "\nthe server keeps running; explore it:\n  open http://{api}/\n  curl 'http://{api}/api/v1/services?at={}&window=10m'\n  curl -X POST http://{api}/api/v1/analyze -d '{{\"start\":{},\"end\":{}}}'\n  cargo run -- query --server http://{api} \"SELECT service_name, count(*) AS spans, sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors FROM spans GROUP BY service_name ORDER BY errors DESC\"\nctrl-c to stop",
        telemetry.fault.end, telemetry.fault.start, telemetry.fault.end
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
