//! End-to-end tests: a real `loupe` server on `127.0.0.1:0`, real OTLP clients (the
//! `opentelemetry-otlp` exporters over gRPC and HTTP/protobuf, raw HTTP requests for malformed
//! input), a real Nezha case replayed over OTLP/gRPC, and a restart from the write-ahead log.

mod ask;
mod auth;
mod overload;
mod simulate;
mod slack;
mod store;
mod support;
mod tls;
mod traces;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;
use serde_json::{json, Value};

use support::{get_json, post, start, RpcStatus};

/// 2023-01-29T13:46:40Z: replayed data keeps its own time.
const T0: u64 = 1_675_000_000;

fn span(
    trace: u128,
    id: u64,
    parent: u64,
    name: &'static str,
    kind: SpanKind,
    start_ms: u64,
    end_ms: u64,
) -> SpanData {
    let at = |ms: u64| UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(ms);
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(trace),
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: false,
        span_kind: kind,
        name: name.into(),
        start_time: at(start_ms),
        end_time: at(end_ms),
        attributes: vec![KeyValue::new("http.request.method", "POST")],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("e2e").build(),
    }
}

fn resource(service: &'static str) -> Resource {
    Resource::builder_empty()
        .with_service_name(service)
        .with_attributes([
            KeyValue::new("k8s.pod.name", format!("{service}-7d9f8-abcde")),
            KeyValue::new("k8s.node.name", "node-1"),
        ])
        .build()
}

fn edge<'a>(graph: &'a Value, source: &str, target: &str) -> Option<&'a Value> {
    graph["edges"]
        .as_array()?
        .iter()
        .find(|e| e["kind"] == "calls" && e["source"] == source && e["target"] == target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporters_over_grpc_and_http_build_the_call_graph() {
    let server = start(None).await;
    let grpc = format!("http://{}", server.otlp_grpc_addr);
    let http = format!("http://{}/v1/traces", server.otlp_http_addr);
    let mut frontend = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&grpc)
        .build()
        .unwrap();
    let mut checkout = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&http)
        .build()
        .unwrap();
    let mut payment = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&grpc)
        .build()
        .unwrap();
    frontend.set_resource(&resource("frontend"));
    checkout.set_resource(&resource("checkout"));
    payment.set_resource(&resource("payment"));

    const TRACES: u128 = 4;
    // Each service exports its own spans in its own requests; the callee's spans arrive first,
    // so every parent/child pair is joined across requests and out of order.
    let per_trace = |t: u128| {
        let id = |n: u64| (t as u64) * 16 + n;
        (
            vec![span(
                t,
                id(5),
                id(4),
                "POST /charge",
                SpanKind::Server,
                20,
                30,
            )],
            vec![
                span(t, id(3), id(2), "POST /checkout", SpanKind::Server, 10, 60),
                span(t, id(4), id(3), "POST /charge", SpanKind::Client, 15, 40),
            ],
            vec![
                span(t, id(1), 0, "GET /", SpanKind::Server, 0, 100),
                span(t, id(2), id(1), "POST /checkout", SpanKind::Client, 5, 70),
            ],
        )
    };
    let (mut p, mut c, mut f) = (Vec::new(), Vec::new(), Vec::new());
    for t in 1..=TRACES {
        let (a, b, d) = per_trace(t);
        p.extend(a);
        c.extend(b);
        f.extend(d);
    }
    payment.export(p).await.unwrap();
    checkout.export(c).await.unwrap();
    frontend.export(f).await.unwrap();

    let at = (T0 + 60) * 1_000_000_000;
    let graph = get_json(
        server.http_addr,
        &format!("/api/v1/graph?at={at}&window=5m"),
    )
    .await;
    let fc = edge(&graph, "service:frontend", "service:checkout").expect("frontend → checkout");
    let cp = edge(&graph, "service:checkout", "service:payment").expect("checkout → payment");
    assert_eq!(
        (fc["calls"].as_u64(), cp["calls"].as_u64()),
        (Some(TRACES as u64), Some(TRACES as u64)),
        "{graph:#}"
    );
    let kinds: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    for kind in ["service", "operation", "pod", "node"] {
        assert!(kinds.contains(&kind), "no {kind} node in {kinds:?}");
    }
    assert!(graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "runs_on"
            && e["source"] == "pod:payment-7d9f8-abcde"
            && e["target"] == "node:node-1"));
    let services = get_json(
        server.http_addr,
        &format!("/api/v1/services?at={at}&window=5m"),
    )
    .await;
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["checkout", "frontend", "payment"]);
    server.shutdown().await;
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn json_trace(trace_id: &str, span_id: &str) -> Value {
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"spans": [{"traceId": trace_id, "spanId": span_id, "name": "GET /", "kind": 2,
            "startTimeUnixNano": "1675000000000000000", "endTimeUnixNano": "1675000000100000000"}]}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_its_specified_error_and_the_server_keeps_serving() {
    use prost::Message;
    let server = start(None).await;
    let addr = server.otlp_http_addr;
    let good =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default()
            .encode_to_vec();
    let proto = [("content-type", "application/x-protobuf")];
    let json_ct = [("content-type", "application/json")];

    // Truncated protobuf: a length-delimited field that claims more bytes than follow.
    let (status, _, body) = post(addr, "/v1/traces", &proto, vec![0x0a, 0x50, 0x01]).await;
    assert_eq!(status, 400);
    let rpc = RpcStatus::decode(&body[..]).expect("a google.rpc.Status protobuf body");
    assert_eq!(rpc.code, 3, "InvalidArgument");
    assert!(rpc.message.contains("protobuf"), "{}", rpc.message);

    let (status, _, _) = post(
        addr,
        "/v1/traces",
        &[("content-type", "text/plain")],
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(status, 415);

    let (status, _, body) =
        post(addr, "/v1/logs", &json_ct, b"{\"resourceLogs\": [".to_vec()).await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], 3);

    // 8 MiB of zeros gzip to a few KiB but inflate past the 4 MiB limit of this server.
    let bomb = gzip(&vec![0u8; 8 << 20]);
    assert!(bomb.len() < 64 << 10);
    let (status, _, _) = post(
        addr,
        "/v1/metrics",
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        bomb,
    )
    .await;
    assert_eq!(status, 413);

    let status =
        support::status_before_upload(addr, "/v1/traces", "application/x-protobuf", 2 << 20).await;
    assert_eq!(
        status, 413,
        "a declared body over the 1 MiB limit is refused unread"
    );

    // One span with a 2-byte trace id beside a valid one: partial success, the valid one kept.
    let mut request = json_trace("abcd", "0102030405060708");
    let valid = json_trace("0102030405060708090a0b0c0d0e0f10", "1112131415161718");
    request["resourceSpans"]
        .as_array_mut()
        .unwrap()
        .push(valid["resourceSpans"][0].clone());
    let (status, _, body) = support::post_json(addr, "/v1/traces", &request).await;
    assert_eq!(status, 200);
    let response: Value = serde_json::from_slice(&body).unwrap();
    let partial = &response["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "1", "{response}");
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace_id length: 2 bytes"),
        "{response}"
    );
    let services = get_json(
        server.http_addr,
        "/api/v1/services?at=1675000060000000000&window=5m",
    )
    .await;
    assert_eq!(services["services"][0]["calls"], 1);

    // The server still takes good requests, protobuf and gzipped JSON.
    let (status, _, _) = post(addr, "/v1/traces", &proto, good).await;
    assert_eq!(status, 200);
    let body = gzip(&serde_json::to_vec(&valid).unwrap());
    let (status, _, _) = post(
        addr,
        "/v1/traces",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 200);

    // A bad API parameter is a 400 that names it.
    let (status, body) = support::get(server.http_addr, "/api/v1/services?window=soon").await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid window"),
        "{error}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_nezha_case_names_its_root_cause_in_the_top_three() {
    use loupe_ingest::nezha::NezhaDataset;
    let server = start(None).await;
    let dataset = NezhaDataset::open(loupe::cli::demo::demo_dataset_dir()).unwrap();
    let cases = dataset.ground_truth().unwrap();
    let case = &cases[0];
    let telemetry = dataset.case(case, &cases).unwrap();
    let endpoint = format!("http://{}", server.otlp_grpc_addr);
    let totals = loupe::cli::replay::send(&endpoint, telemetry.requests, true)
        .await
        .unwrap();
    assert!(totals.items > 10_000 && totals.rejected == 0, "{totals:?}");
    support::wait_for_join_buffer(server.http_addr).await;
    let body = json!({
        "start": telemetry.fault.start, "end": telemetry.fault.end,
        "baseline_start": telemetry.baseline.start, "baseline_end": telemetry.baseline.end,
    });
    let (status, _, bytes) = post(
        server.http_addr,
        "/api/v1/analyze",
        &[("content-type", "application/json")],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let analysis: Value = serde_json::from_slice(&bytes).unwrap();
    let top3: Vec<&str> = analysis["causes"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .filter_map(|c| c["entity"]["name"].as_str())
        .collect();
    assert!(
        top3.contains(&case.root_cause_service.as_str()),
        "{} not in {top3:?}",
        case.root_cause_service
    );
    let first = &analysis["causes"][0];
    assert_eq!(first["rank"], 1);
    assert!(
        !first["evidence"].as_array().unwrap().is_empty(),
        "the top cause has evidence"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_a_restart() {
    let dir = support::temp_dir("restart");
    let server = start(Some(dir.clone())).await;
    let request = json_trace("0102030405060708090a0b0c0d0e0f10", "1112131415161718");
    let (status, _, _) = post(
        server.otlp_http_addr,
        "/v1/traces",
        &[("content-type", "application/json")],
        serde_json::to_vec(&request).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    server.shutdown().await;
    let before_restart = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let server = start(Some(dir.clone())).await;
    let services = get_json(
        server.http_addr,
        "/api/v1/services?at=1675000060000000000&window=5m",
    )
    .await;
    assert_eq!(services["services"][0]["name"], "checkout");
    assert_eq!(services["services"][0]["calls"], 1);
    // The log kept when loupe learned of the span: as known before the restart, it is there.
    let graph = get_json(
        server.http_addr,
        &format!("/api/v1/graph?at=1675000060000000000&window=5m&known_at={before_restart}"),
    )
    .await;
    let ids: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"service:checkout"), "{graph:#}");
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One OTLP/JSON request of a trace through frontend → checkout → payment and frontend →
/// shipping at `t` (unix ns), checkout logging one record in its span at `severity`.
fn chain_request(n: u64, t: u64, severity: u32) -> (Value, Value) {
    let trace_id = format!("{:032x}", n + 1);
    let id = |i: u64| format!("{:016x}", (n + 1) * 16 + i);
    let service = |name: &str, spans: Vec<Value>| {
        json!({"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": name}}]},
            "scopeSpans": [{"spans": spans}]})
    };
    let span = |i: u64, parent: Option<u64>, offset_ms: u64, ms: u64| {
        let mut s = json!({"traceId": trace_id, "spanId": id(i), "name": "GET /", "kind": 2,
            "startTimeUnixNano": (t + offset_ms * 1_000_000).to_string(),
            "endTimeUnixNano": (t + (offset_ms + ms) * 1_000_000).to_string()});
        if let Some(p) = parent {
            s["parentSpanId"] = json!(id(p));
        }
        s
    };
    let traces = json!({"resourceSpans": [
        service("frontend", vec![span(1, None, 0, 40)]),
        service("checkout", vec![span(2, Some(1), 2, 20)]),
        service("payment", vec![span(3, Some(2), 5, 10)]),
        service("shipping", vec![span(4, Some(1), 25, 10)]),
    ]});
    let logs = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": (t + 3_000_000).to_string(),
            "severityNumber": severity, "body": {"stringValue": "charging card"},
            "traceId": trace_id, "spanId": id(2)}]}]}]});
    (traces, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_compares_with_the_history_before_a_tainted_baseline() {
    let server = start(None).await;
    let addr = server.otlp_http_addr;
    let json_ct = [("content-type", "application/json")];
    // One request a second for 180 s; checkout logs errors from 120 s on, so the 20 s baseline
    // [140, 160) already holds the fault that the window [160, 180) is analysed for.
    for n in 0..180u64 {
        let severity = if n >= 120 { 17 } else { 9 };
        let (traces, logs) = chain_request(n, (T0 + n) * 1_000_000_000, severity);
        for (path, body) in [("/v1/traces", traces), ("/v1/logs", logs)] {
            let (status, _, _) =
                post(addr, path, &json_ct, serde_json::to_vec(&body).unwrap()).await;
            assert_eq!(status, 200, "{path}");
        }
    }
    support::wait_for_join_buffer(server.http_addr).await;
    let body =
        json!({"start": (T0 + 160) * 1_000_000_000u64, "end": (T0 + 180) * 1_000_000_000u64});
    let (status, _, bytes) = support::post_json(server.http_addr, "/api/v1/analyze", &body).await;
    assert_eq!(status, 200);
    let analysis: Value = serde_json::from_slice(&bytes).unwrap();
    let first = &analysis["causes"][0];
    assert_eq!(first["entity"]["name"], "checkout", "{analysis:#}");
    let summary = first["evidence"][0]["summary"].as_str().unwrap();
    assert!(summary.contains("past periods"), "{summary}");
    let score_before = first["score"].as_f64().unwrap();

    // A deployment of checkout just before the errors began is a candidate of its own, with
    // checkout's evidence, and outranks checkout.
    let change = json!({"kind": "deployment", "service": "checkout", "time": (T0 + 119) * 1_000_000_000u64,
        "version_from": "1.4.1", "version_to": "1.4.2"});
    let (status, _, _) = support::post_json(server.http_addr, "/api/v1/changes", &change).await;
    assert_eq!(status, 201);
    let (_, _, bytes) = support::post_json(server.http_addr, "/api/v1/analyze", &body).await;
    let analysis: Value = serde_json::from_slice(&bytes).unwrap();
    let first = &analysis["causes"][0];
    assert_eq!(first["entity"]["kind"], "change", "{analysis:#}");
    let at = "2023-01-29T13:48:39Z"; // T0 + 119 s
    assert_eq!(
        first["entity"]["name"],
        format!("checkout:deployment@{at}"),
        "{first:#}"
    );
    assert_eq!(analysis["causes"][1]["entity"]["name"], "checkout");
    assert_eq!(
        first["evidence"][0]["feature"], "change_proximity",
        "{first:#}"
    );
    assert!(
        first["evidence"][1]["summary"]
            .as_str()
            .unwrap()
            .contains("past periods"),
        "the change carries checkout's evidence: {first:#}"
    );
    assert!(first["evidence"][0]["summary"]
        .as_str()
        .unwrap()
        .contains("1.4.1 → 1.4.2"));
    assert!(first["score"].as_f64().unwrap() > score_before);
    let commands: Vec<&str> = first["remediation"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["command"].as_str())
        .collect();
    assert!(
        commands.contains(&"kubectl rollout undo deployment/checkout"),
        "{commands:?}"
    );
    server.shutdown().await;
}

fn change_payload(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/testdata/changes")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_changes_land_and_survive_a_restart() {
    let dir = support::temp_dir("changes");
    let server = start(Some(dir.clone())).await;
    let json_ct = ("content-type", "application/json");
    let (status, _, body) = post(
        server.http_addr,
        "/api/v1/changes",
        &[json_ct],
        change_payload("argocd-notification.json"),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let github = [
        json_ct,
        ("x-github-event", "deployment_status"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    for expected in [201, 201] {
        // GitHub redelivers: the same deployment status twice is one change.
        let (status, _, body) = post(
            server.http_addr,
            "/api/v1/changes",
            &github,
            change_payload("github-deployment-status.json"),
        )
        .await;
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(&body));
    }
    let (status, _, body) = post(
        server.http_addr,
        "/api/v1/changes",
        &[json_ct],
        br#"{"kind": "rollback", "service": "checkout"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("kind"),
        "{error}"
    );
    let query =
        "/api/v1/changes?from=2025-06-12T09:00:00Z&to=2025-06-12T10:00:00Z&service=checkout";
    let check = |changes: &Value| {
        let changes = changes["changes"].as_array().unwrap();
        let sources: Vec<&str> = changes
            .iter()
            .map(|c| c["source"].as_str().unwrap())
            .collect();
        assert_eq!(sources, ["argocd", "github"], "{changes:#?}");
        assert_eq!(changes[0]["version_to"], "1.14.2");
        assert_eq!(changes[1]["author"], "jane-doe");
        assert!(changes[0]["targets"]
            .as_array()
            .unwrap()
            .contains(&json!("service:checkout")));
    };
    check(&get_json(server.http_addr, query).await);
    server.shutdown().await;
    let server = start(Some(dir.clone())).await;
    check(&get_json(server.http_addr, query).await);
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_history_diff_and_blast_radius_through_the_api() {
    let server = start(None).await;
    for n in 0..60u64 {
        let (traces, _) = chain_request(n, (T0 + n) * 1_000_000_000, 9);
        let (status, _, _) = support::post_json(server.otlp_http_addr, "/v1/traces", &traces).await;
        assert_eq!(status, 200);
    }
    support::wait_for_join_buffer(server.http_addr).await;
    let at = (T0 + 60) * 1_000_000_000;
    let addr = server.http_addr;
    let detail = get_json(addr, "/api/v1/entities/service:checkout").await;
    assert_eq!(detail["kind"], "service");
    let relations = detail["relations"].as_array().unwrap();
    assert!(relations.iter().any(|r| r["kind"] == "calls"
        && r["direction"] == "out"
        && r["other"] == "service:payment"));
    assert!(relations.iter().any(|r| r["kind"] == "calls"
        && r["direction"] == "in"
        && r["other"] == "service:frontend"));
    let history = get_json(
        addr,
        &format!(
            "/api/v1/entities/service:checkout/history?from={}&to={at}&step=30s",
            T0 * 1_000_000_000
        ),
    )
    .await;
    let points = history["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    let calls: u64 = points.iter().map(|p| p["calls"].as_u64().unwrap()).sum();
    assert_eq!(calls, 60);
    let radius = get_json(
        addr,
        &format!("/api/v1/entities/service:payment/blast-radius?at={at}&window=1m"),
    )
    .await;
    let ids: Vec<&str> = radius["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["service:checkout", "service:frontend"]);
    let diff = get_json(
        addr,
        &format!(
            "/api/v1/graph/diff?from={}&to={at}&window=30s",
            at - 30_000_000_000
        ),
    )
    .await;
    assert!(
        diff["red_changes"].as_array().unwrap().len() >= 4,
        "{diff:#}"
    );
    let structure = get_json(
        addr,
        &format!("/api/v1/graph?at={at}&window=1m&stats=false"),
    )
    .await;
    let nodes = structure["nodes"].as_array().unwrap();
    assert!(nodes.iter().any(|n| n["id"] == "service:payment"));
    assert!(
        nodes.iter().all(|n| n.get("calls").is_none()),
        "{structure:#}"
    );
    let (status, body) = support::get(addr, "/api/v1/entities/service:nope").await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_requests_open_an_incident_that_names_the_failing_service() {
    let dir = support::temp_dir("incidents");
    let server = start(Some(dir.clone())).await;
    // 70 minutes of a request every 5 s; from minute 62 payment fails and the failure
    // propagates to checkout and frontend.
    let minute = 60u64;
    for n in 0..(70 * minute / 5) {
        let t = T0 + n * 5;
        let (mut traces, _) = chain_request(n, t * 1_000_000_000, 9);
        if t >= T0 + 62 * minute {
            for i in 0..3 {
                traces["resourceSpans"][i]["scopeSpans"][0]["spans"][0]["status"] =
                    json!({"code": 2, "message": "payment declined"});
            }
        }
        let (status, _, _) = support::post_json(server.otlp_http_addr, "/v1/traces", &traces).await;
        assert_eq!(status, 200);
    }
    support::wait_for_join_buffer(server.http_addr).await;
    let mut incidents = Value::Null;
    for _ in 0..50 {
        incidents = get_json(server.http_addr, "/api/v1/incidents").await;
        if !incidents["incidents"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = incidents["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{incidents:#}");
    assert_eq!(list[0]["status"], "open");
    assert_eq!(list[0]["source"], "detected");
    assert_eq!(list[0]["top_cause"], "payment", "{incidents:#}");
    let id = list[0]["id"].as_u64().unwrap();
    let incident = get_json(server.http_addr, &format!("/api/v1/incidents/{id}")).await;
    assert!(!incident["symptoms"].as_array().unwrap().is_empty());
    assert!(!incident["timeline"].as_array().unwrap().is_empty());
    assert_eq!(
        incident["analysis"]["causes"][0]["entity"]["name"],
        "payment"
    );

    // An SRE rejects payment: it drops at once and the verdict is listed and exported.
    let path = format!("/api/v1/incidents/{id}/causes/service:payment/verdict");
    let verdict = json!({"verdict": "rejected", "comment": "a test double", "by": "ana"});
    let (status, _, bytes) = support::post_json(server.http_addr, &path, &verdict).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    let incident = get_json(server.http_addr, &format!("/api/v1/incidents/{id}")).await;
    assert_ne!(
        incident["analysis"]["causes"][0]["entity"]["name"],
        "payment"
    );
    assert_eq!(incident["verdicts"][0]["by"], "ana");
    let labels = get_json(server.http_addr, "/api/v1/verdicts").await;
    assert_eq!(labels["verdicts"].as_array().unwrap().len(), 1);
    // The exported label is a training case for `loupe train --verdicts`: "any cause but
    // payment", over the incident's causes as they were ranked.
    let exported: loupe_analysis::Verdict =
        serde_json::from_value(labels["verdicts"][0].clone()).unwrap();
    let case = exported
        .training_case()
        .expect("the verdict kept its incident's candidates");
    let judged = exported
        .candidates
        .iter()
        .position(|(id, _)| id == "service:payment")
        .unwrap();
    assert!(!case.truth[judged]);
    assert_eq!(
        case.truth.iter().filter(|t| **t).count(),
        case.truth.len() - 1
    );
    let unknown = format!("/api/v1/incidents/{id}/causes/service:nope/verdict");
    let (status, _, _) = support::post_json(server.http_addr, &unknown, &verdict).await;
    assert_eq!(status, 404);
    let anonymous = json!({"verdict": "accepted", "by": ""});
    let (status, _, _) = support::post_json(server.http_addr, &path, &anonymous).await;
    assert_eq!(status, 400);

    // By hand, for any window.
    let body = json!({"start": (T0 + 30 * minute) * 1_000_000_000, "end": (T0 + 35 * minute) * 1_000_000_000, "title": "was it slow?"});
    let (status, _, bytes) = support::post_json(server.http_addr, "/api/v1/incidents", &body).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    let manual: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(manual["source"], "manual");
    assert_eq!(manual["title"], "was it slow?");
    let (status, _) = support::get(server.http_addr, "/api/v1/incidents/99").await;
    assert_eq!(status, 404);
    server.shutdown().await;

    // Incidents and their verdicts survive a restart.
    let server = start(Some(dir.clone())).await;
    let list = get_json(server.http_addr, "/api/v1/incidents").await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 2, "{list:#}");
    let incident = get_json(server.http_addr, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["verdicts"][0]["by"], "ana", "{incident:#}");
    assert_ne!(
        incident["analysis"]["causes"][0]["entity"]["name"],
        "payment"
    );
    let manual = get_json(
        server.http_addr,
        &format!("/api/v1/incidents/{}", manual["id"]),
    )
    .await;
    assert_eq!(manual["title"], "was it slow?");
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--rules` as `loupe serve` and `loupe eval` read it: a bad file stops loupe with the file,
/// line and reason; a good one adds its rule to the shipped ones; a model file that is not one
/// is refused.
#[test]
fn a_bad_rules_file_is_refused_at_start_with_its_line() {
    let dir = std::env::temp_dir().join(format!("loupe-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "# my rules\n[[rule]]\nname = \"hot\"\nwhen = \"cpu >= \"\nweight = 1\nsays = \"x\"\n",
    )
    .unwrap();
    let args = |rules: Option<&std::path::Path>, model: Option<&std::path::Path>| {
        loupe::config::ModelArgs {
            rules: rules.map(Into::into),
            model: model.map(Into::into),
        }
    };
    let e = args(Some(&bad), None).analysis_config().unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("{}:2: rule \"hot\": condition", bad.display())),
        "{message}"
    );
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[rule]]\nname = \"hot_node\"\nwhen = \"kind == 'node' and cpu >= 2\"\nweight = 1\nsays = \"{{ entity }} is hot\"\n",
    )
    .unwrap();
    let config = args(Some(&good), None).analysis_config().unwrap();
    let names: Vec<&str> = config
        .ranker
        .rules
        .rules()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert!(names.contains(&"hot_node") && names.contains(&"errors_originate_here"));
    let e = args(None, Some(&good)).analysis_config().unwrap_err();
    assert!(e.to_string().contains("not a safetensors file"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The `.route("…"` paths in a router's source, in order.
fn routed_paths(source: &str) -> Vec<String> {
    source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find('"')? + 1;
            let end = start + rest[start..].find('"')?;
            Some(rest[start..end].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_only_routes() {
    let dir = support::temp_dir("openapi");
    let server = start(Some(dir.clone())).await;
    let addr = server.http_addr;
    let doc = get_json(addr, "/api/v1/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{doc:#}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    // Every route in the routers' sources is documented (the entities catch-all as its three
    // operations; the UI's page and OTLP/HTTP's /v1/* are not part of this API).
    let sources = [
        include_str!("../../api/src/routes.rs"),
        include_str!("../../api/src/sql.rs"),
        include_str!("../../ingest/src/changes.rs"),
        include_str!("../../api/src/ask/mod.rs"),
    ];
    for path in sources.iter().flat_map(|s| routed_paths(s)) {
        if path == "/api/v1/entities/{*path}" {
            for p in [
                "/api/v1/entities/{id}",
                "/api/v1/entities/{id}/history",
                "/api/v1/entities/{id}/blast-radius",
            ] {
                assert!(paths.contains_key(p), "{p} is not documented");
            }
        } else {
            assert!(paths.contains_key(&path), "{path} is not documented");
        }
    }
    // Every documented operation is served: the router answers it (a handler's 404 carries its
    // own error; a path the router does not know reaches the web UI's fallback, whose 404 says
    // "no route for", and so does a method it does not route).
    let mut operations = 0;
    for (template, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post"].contains(&method.as_str()) {
                continue;
            }
            assert!(op["operationId"].is_string(), "{method} {template}");
            assert!(op["responses"].is_object(), "{method} {template}");
            let mut path = template.clone();
            let entity = template.starts_with("/api/v1/entities/");
            for (name, value) in [
                ("id", if entity { "service:nope" } else { "1" }),
                ("trace_id", "0123456789abcdef0123456789abcdef"),
                ("cause", "service:nope"),
            ] {
                path = path.replace(&format!("{{{name}}}"), value);
            }
            assert!(!path.contains('{'), "{template}: an unknown parameter");
            let (status, body) = if method == "get" {
                support::get(addr, &path).await
            } else {
                let (status, _, body) = support::post_json(addr, &path, &json!({})).await;
                (status, body)
            };
            let unrouted = String::from_utf8_lossy(&body).contains("no route for");
            assert_ne!(status, 405, "{method} {template} is not routed");
            assert!(
                !(status == 404 && (body.is_empty() || unrouted)),
                "{method} {template} is not routed"
            );
            operations += 1;
        }
    }
    assert!(operations >= 20, "{operations} operations");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
