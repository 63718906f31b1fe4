//! Overload end to end: a flood from many concurrent OpenTelemetry exporters (gRPC and HTTP)
//! and raw OTLP clients against a server with a small ingest budget. Refusals must be the
//! retryable forms with their hints (gRPC `UNAVAILABLE` + `RetryInfo`, HTTP 503 +
//! `Retry-After`), `/healthz` and the API must answer throughout, memory must stay bounded, and
//! afterwards SQL must find every acknowledged span exactly once and no refused one; `/metrics`
//! (parsed by a Prometheus text parser) must count what the clients saw. Then slow clients:
//! headers or a body sent byte by byte are cut off at their timeouts while a normal request at
//! the same time succeeds.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::trace::SpanExporter as _;
use prost::Message;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tonic_types::StatusExt;

use crate::support::{get, post, post_json, sdk_span, start_with, temp_dir, RpcStatus};

/// Clients: OpenTelemetry exporters (half gRPC, half HTTP; they retry refusals as the hints
/// say), and raw gRPC and HTTP clients (that do not, so their refusals can be inspected).
const EXPORTERS: u64 = 12;
const RAW: u64 = 4;
/// Batches each client sends, and spans in a batch.
const BATCHES: u64 = 12;
const SPANS: u64 = 50;

/// The span number of span `i` of batch `b` of client `c` (span ids derive from it).
fn number(c: u64, b: u64, i: u64) -> u64 {
    c * 1_000_000 + b * 1_000 + i
}

fn span_id_hex(n: u64) -> String {
    format!("{:016x}", n + 1)
}

/// The OTLP request of a raw client's batch, spans as `sdk_span` makes them.
fn raw_request(c: u64, b: u64) -> ExportTraceServiceRequest {
    let t0 = 1_767_225_600u64 * 1_000_000_000;
    let spans = (0..SPANS)
        .map(|i| {
            let n = number(c, b, i);
            Span {
                trace_id: (u128::from(n) + 1).to_be_bytes().to_vec(),
                span_id: (n + 1).to_be_bytes().to_vec(),
                name: "GET /".into(),
                kind: 2,
                start_time_unix_nano: t0,
                end_time_unix_nano: t0 + 5_000_000,
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// What the clients saw.
#[derive(Default)]
struct Outcome {
    /// Span numbers of acknowledged batches.
    acked: BTreeSet<u64>,
    /// Span numbers of refused batches.
    refused: BTreeSet<u64>,
    /// Refused requests.
    refusals: u64,
    /// Refusals by raw clients whose form was checked.
    checked: u64,
}

fn record(outcome: &Mutex<Outcome>, c: u64, b: u64, ok: bool) {
    let mut o = outcome.lock().unwrap();
    let numbers = (0..SPANS).map(|i| number(c, b, i));
    if ok {
        o.acked.extend(numbers);
    } else {
        o.refused.extend(numbers);
        o.refusals += 1;
    }
}

async fn exporter_client(grpc: bool, c: u64, addr: SocketAddr, outcome: Arc<Mutex<Outcome>>) {
    let exporter = match grpc {
        true => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{addr}"))
            .build(),
        false => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("http://{addr}/v1/traces"))
            .build(),
    }
    .unwrap();
    for b in 0..BATCHES {
        let batch = (0..SPANS).map(|i| sdk_span(number(c, b, i))).collect();
        let result = exporter.export(batch).await;
        if let Err(e) = &result {
            let text = format!("{e:?}");
            assert!(
                text.contains("Unavailable") || text.contains("503"),
                "exporter {c}: not a retryable refusal: {text}"
            );
        }
        record(&outcome, c, b, result.is_ok());
    }
}

async fn raw_grpc_client(c: u64, addr: SocketAddr, outcome: Arc<Mutex<Outcome>>) {
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    for b in 0..BATCHES {
        let result = client.export(raw_request(c, b)).await;
        if let Err(status) = &result {
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            let retry = status
                .get_details_retry_info()
                .expect("UNAVAILABLE carries google.rpc.RetryInfo");
            assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
            outcome.lock().unwrap().checked += 1;
        }
        record(&outcome, c, b, result.is_ok());
    }
}

async fn raw_http_client(c: u64, addr: SocketAddr, outcome: Arc<Mutex<Outcome>>) {
    for b in 0..BATCHES {
        let body = raw_request(c, b).encode_to_vec();
        let headers = [("content-type", "application/x-protobuf")];
        let (status, headers, body) = post(addr, "/v1/traces", &headers, body).await;
        if status != 200 {
            assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
            assert_eq!(headers["retry-after"], "1");
            let rpc = RpcStatus::decode(body).expect("a google.rpc.Status body");
            assert_eq!(rpc.code, tonic::Code::Unavailable as i32, "{}", rpc.message);
            outcome.lock().unwrap().checked += 1;
        }
        record(&outcome, c, b, status == 200);
    }
}

/// Peak resident memory of this process (each test runs in its own under nextest), bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The sum of a metric's samples whose labels include `labels`.
fn sum(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// The peak RSS the flood may reach: the bound stated in the README.
const RSS_BOUND: u64 = 256 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_refused_retryably_and_every_acknowledged_span_is_stored_once() {
    let dir = temp_dir("overload");
    let server = start_with(Some(dir.clone()), |c| {
        c.admission.max_inflight_bytes = 8 << 10;
        c.admission.max_waiters = 2;
        c.admission.max_wait = Duration::from_millis(20);
    })
    .await;
    let outcome = Arc::new(Mutex::new(Outcome::default()));

    // Probes: /healthz and an API read, every 20 ms, until the flood is over.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes = {
        let (done, api) = (done.clone(), server.http_addr);
        tokio::spawn(async move {
            let (mut answered, mut slowest) = (0u32, Duration::ZERO);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for path in ["/healthz", "/api/v1/incidents"] {
                    let started = Instant::now();
                    let (status, _) = tokio::time::timeout(Duration::from_secs(2), get(api, path))
                        .await
                        .unwrap_or_else(|_| panic!("{path} did not answer within 2 s"));
                    assert_eq!(status, 200, "{path} during the flood");
                    slowest = slowest.max(started.elapsed());
                    answered += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (answered, slowest)
        })
    };

    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..EXPORTERS {
        let o = outcome.clone();
        let grpc = c % 2 == 0;
        let addr = match grpc {
            true => server.otlp_grpc_addr,
            false => server.otlp_http_addr,
        };
        clients.push(tokio::spawn(exporter_client(grpc, c, addr, o)));
    }
    for c in EXPORTERS..EXPORTERS + RAW {
        let o = outcome.clone();
        clients.push(tokio::spawn(match c % 2 {
            0 => Box::pin(raw_grpc_client(c, server.otlp_grpc_addr, o))
                as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            _ => Box::pin(raw_http_client(c, server.otlp_http_addr, o)),
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let flood = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, slowest) = probes.await.unwrap();

    let o = std::mem::take(&mut *outcome.lock().unwrap());
    let offered = (EXPORTERS + RAW) * BATCHES;
    eprintln!(
        "flood: {offered} requests of {SPANS} spans in {flood:?}; acknowledged {} spans, refused {} requests ({} checked raw); probes answered {answered}, slowest {slowest:?}; peak RSS {} MiB",
        o.acked.len(),
        o.refusals,
        o.checked,
        peak_rss() >> 20
    );
    assert!(
        o.refusals > 0,
        "the budget never filled: no overload tested"
    );
    assert!(!o.acked.is_empty(), "nothing was acknowledged");
    assert!(
        o.checked > 0,
        "no raw client saw a refusal to check its form"
    );
    assert!(answered > 0);
    assert!(peak_rss() < RSS_BOUND, "peak RSS {} MiB", peak_rss() >> 20);

    // Every acknowledged span once, no refused one.
    let (status, _, body) = post_json(
        server.http_addr,
        "/api/v1/query",
        &json!({"sql": "SELECT span_id, count(*) AS n FROM spans GROUP BY span_id"}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let rows: Value = serde_json::from_slice(&body).unwrap();
    let stored: HashMap<String, u64> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["span_id"].as_str().unwrap().to_owned(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    let duplicated: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    let missing: Vec<_> = o
        .acked
        .iter()
        .filter(|n| !stored.contains_key(&span_id_hex(**n)))
        .collect();
    assert!(missing.is_empty(), "acknowledged, not stored: {missing:?}");
    let unacked: Vec<_> = o
        .refused
        .iter()
        .filter(|n| stored.contains_key(&span_id_hex(**n)))
        .collect();
    assert!(unacked.is_empty(), "refused, yet stored: {unacked:?}");
    assert_eq!(stored.len(), o.acked.len());

    // /metrics counts what the clients saw.
    let (status, text) = get(server.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(text.to_vec()).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert_eq!(
        sum(&scrape, "loupe_receiver_accepted_spans_total", &[]),
        o.acked.len() as f64,
        "{text}"
    );
    // The exporters retry a refusal (RetryInfo, Retry-After) before they give up, so the
    // server refused at least as many requests as the clients finally lost.
    let refused = sum(&scrape, "loupe_receiver_refused_requests_total", &[]);
    assert!(
        refused >= o.refusals as f64,
        "{refused} < {}: {text}",
        o.refusals
    );
    eprintln!("server-side refusals (retries included): {refused}");
    assert!(
        sum(
            &scrape,
            "loupe_receiver_accepted_spans_total",
            &[("transport", "grpc")]
        ) > 0.0
    );
    assert!(
        sum(
            &scrape,
            "loupe_receiver_accepted_spans_total",
            &[("transport", "http")]
        ) > 0.0
    );
    assert_eq!(sum(&scrape, "loupe_receiver_inflight_bytes", &[]), 0.0);
    assert_eq!(
        sum(&scrape, "loupe_wal_appends_total", &[]),
        (o.acked.len() as u64 / SPANS) as f64
    );
    assert_eq!(
        sum(&scrape, "loupe_wal_fsync_duration_seconds_count", &[]),
        (o.acked.len() as u64 / SPANS) as f64
    );
    assert!(sum(&scrape, "loupe_graph_entities", &[]) > 0.0);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends `head` at once, then `trickle` a byte every 100 ms, while reading what the server
/// answers until it closes the connection; the time that took and the answer (`None`: not
/// closed within 4 s).
async fn trickle(
    addr: SocketAddr,
    head: &'static [u8],
    trickle: &'static [u8],
) -> (Duration, Option<String>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        if write.write_all(head).await.is_err() {
            return;
        }
        for byte in trickle {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Keep the connection open without sending more.
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(4), read.read_to_end(&mut out)).await;
    writer.abort();
    let answer = closed
        .ok()
        .map(|_| String::from_utf8_lossy(&out).into_owned());
    (started.elapsed(), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let server = start_with(None, |c| {
        c.listen.read_header_timeout = Duration::from_millis(800);
        c.listen.body_timeout = Duration::from_millis(800);
    })
    .await;
    let addr = server.otlp_http_addr;

    // Headers byte by byte, never finished; complete headers, then the body byte by byte.
    let trickle_headers = tokio::spawn(trickle(
        addr,
        b"",
        b"POST /v1/traces HTTP/1.1\r\nhost: loupe\r\ncontent-type: application/json\r\n",
    ));
    let trickle_body = tokio::spawn(trickle(
        addr,
        b"POST /v1/traces HTTP/1.1\r\nhost: loupe\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n",
        b"{\"resourceSpans\": [                                          ]}",
    ));

    // Meanwhile a normal request is served at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let body = serde_json::to_vec(&json!({"resourceSpans": []})).unwrap();
    let (status, _, _) = post(
        addr,
        "/v1/traces",
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(500));

    let (took, answer) = trickle_headers.await.unwrap();
    assert!(
        answer.is_some() && took < Duration::from_millis(2500),
        "a client trickling headers was not cut off: {took:?} {answer:?}"
    );
    let (took, answer) = trickle_body.await.unwrap();
    let answer = answer.unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a client trickling a body got {answer:?} after {took:?}"
    );
    assert!(took < Duration::from_millis(2500), "{took:?}");
    server.shutdown().await;
}
