//! The simulator against a real server: a generated case is valid OTLP that the receivers
//! accept whole, its change webhooks are accepted by the changes endpoint, and the live stream
//! reaches the server over OTLP/HTTP.

use std::sync::Arc;
use std::time::Duration;

use loupe_ingest::OtlpGrpcClient;
use loupe_simulate::cases::run_case;
use loupe_simulate::{CaseSpec, FaultKind, HerringKind, Topology};
use serde_json::{json, Value};

use crate::support::{feed_case, get_json, post_json, start, temp_dir};

const MINUTE: u64 = 60_000_000_000;

async fn count(addr: std::net::SocketAddr, sql: &str) -> u64 {
    let (status, _, body) = post_json(addr, "/api/v1/query", &json!({ "sql": sql })).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["rows"][0]["n"].as_u64().expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_case_is_valid_otlp_that_the_server_accepts_whole() {
    let dir = temp_dir("simulate");
    let server = start(Some(dir.clone())).await;
    let spec = CaseSpec {
        case_id: "e2e".into(),
        topology: Arc::new(Topology::builtin("otel-demo").unwrap()),
        fault: FaultKind::BadDeployment,
        herrings: vec![HerringKind::UnrelatedDeployment, HerringKind::TrafficSpike],
        seed: 3,
        start_unix_nano: 1_767_571_200_000_000_000,
        baseline_nanos: 2 * MINUTE,
        fault_nanos: MINUTE,
        metrics: Default::default(),
        traffic: Default::default(),
    };
    let (truth, telemetry) = run_case(&spec);
    let spans: usize = telemetry
        .requests
        .iter()
        .filter(|r| r.signal() == loupe_ingest::Signal::Traces)
        .map(|r| r.item_count())
        .sum();
    assert!(
        telemetry.notices.len() >= 2,
        "the deployment and the unrelated one"
    );
    feed_case(&server, telemetry).await;
    let changes = get_json(
        server.http_addr,
        &format!(
            "/api/v1/changes?from={}&to={}",
            truth.baseline_start_unix_ns, truth.fault_end_unix_ns
        ),
    )
    .await;
    let deployed: Vec<&str> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "github")
        .filter_map(|c| c["service"].as_str())
        .collect();
    assert!(
        deployed.contains(&truth.root_cause_service.as_str()),
        "{changes}"
    );
    assert_eq!(
        count(server.http_addr, "SELECT count(*) AS n FROM spans").await,
        spans as u64
    );
    assert!(count(server.http_addr, "SELECT count(*) AS n FROM metric_points").await > 0);
    assert!(count(server.http_addr, "SELECT count(*) AS n FROM logs").await > 0);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A deployment that sends metrics and no traces (the simulated OpenTelemetry Demo's
/// request-duration histograms and pod metrics only): the server builds the dependency graph
/// from the client-side histograms, gives services RED from the server-side ones, and the
/// analysis names the service whose requests fail and slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_alone_give_the_graph_red_and_the_cause() {
    let server = start(None).await;
    let mut worked = 0;
    for (fault, seed) in [(FaultKind::Errors, 5), (FaultKind::Latency, 6)] {
        let spec = CaseSpec {
            case_id: format!("metrics-only-{seed}"),
            topology: Arc::new(Topology::builtin("otel-demo").unwrap()),
            fault,
            herrings: Vec::new(),
            seed,
            start_unix_nano: 1_767_571_200_000_000_000 + seed * 60 * MINUTE,
            baseline_nanos: 5 * MINUTE,
            fault_nanos: 3 * MINUTE,
            metrics: Default::default(),
            traffic: Default::default(),
        };
        let (truth, telemetry) = run_case(&spec);
        let mut client = OtlpGrpcClient::connect(&format!("http://{}", server.otlp_grpc_addr))
            .await
            .unwrap();
        for r in telemetry
            .requests
            .into_iter()
            .filter(|r| r.signal() == loupe_ingest::Signal::Metrics)
        {
            assert_eq!(client.send(r).await.unwrap(), 0, "items rejected");
        }
        let (start, end) = (truth.fault_start_unix_ns, truth.fault_end_unix_ns);
        let graph = get_json(
            server.http_addr,
            &format!("/api/v1/graph?at={end}&window=3m"),
        )
        .await;
        let calls: Vec<(&str, &str, u64)> = graph["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "calls")
            .map(|e| {
                let calls = e["calls"].as_u64().unwrap_or(0);
                (
                    e["source"].as_str().unwrap(),
                    e["target"].as_str().unwrap(),
                    calls,
                )
            })
            .collect();
        assert!(
            calls.iter().any(|(a, b, n)| *a == "service:frontend-proxy"
                && *b == "service:frontend"
                && *n > 0),
            "the dependency and its calls from client metrics: {calls:?}"
        );
        let body = json!({"start": start, "end": end, "baseline_start": truth.baseline_start_unix_ns, "baseline_end": start});
        let (status, _, bytes) = post_json(server.http_addr, "/api/v1/analyze", &body).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        let analysis: Value = serde_json::from_slice(&bytes).unwrap();
        let top = &analysis["causes"][0];
        assert_eq!(
            top["entity"]["name"],
            truth.root_cause_service.as_str(),
            "{fault:?}: {analysis:#}"
        );
        let signals: Vec<&str> = top["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["signal"].as_str())
            .collect();
        assert!(
            signals.contains(&"metrics") && !signals.contains(&"traces"),
            "{fault:?}: the evidence is the metrics': {:#}",
            top["evidence"]
        );
        worked += 1;
    }
    assert_eq!(worked, 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_reaches_the_server_over_otlp_http() {
    let dir = temp_dir("simulate-live");
    let server = start(Some(dir.clone())).await;
    let totals = loupe::cli::simulate::stream(
        loupe::cli::simulate::StreamConfig {
            endpoint: format!("http://{}", server.otlp_http_addr),
            transport: loupe::cli::simulate::Transport::Http,
            api: Some(format!("http://{}", server.http_addr)),
            topology: Arc::new(Topology::builtin("random-small").unwrap()),
            seed: 9,
            faults: Vec::new(),
            first_fault: Duration::from_secs(3600),
            fault_every: Duration::from_secs(3600),
            fault_duration: Duration::from_secs(60),
            herrings: false,
            min_target_rate: 0.3,
            duration: Some(Duration::from_secs(4)),
        },
        |_| {},
    )
    .await
    .unwrap();
    assert!(totals.requests > 0 && totals.items > 0);
    assert_eq!(totals.rejected, 0);
    assert!(count(server.http_addr, "SELECT count(*) AS n FROM spans").await > 0);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
