//! `loupe bench store`: the columnar store's costs, measured in this process on synthetic OTLP
//! traffic shaped like production's.
//!
//! - Ingest: spans per CPU-second on one thread for requests of 512 spans of about 450 bytes
//!   each (10 span attributes; a resource with service and Kubernetes attributes), through what
//!   the receivers and the store do (protobuf decode, validation into model items, Arrow
//!   conversion, write-ahead-log append, hot append), beside the decode-only floor (protobuf
//!   decode and validation) measured on the same requests in the same run.
//! - Memory: resident set added per million hot spans.
//! - Disk: bytes per span in Parquet segments after flush and compaction.
//! - Queries on `spans_total` spans over one hour: trace by id, RED per service over the hour,
//!   error logs of one pod over the hour (medians of repeated runs).
//!
//! CPU time is the process's user and system time from `/proc/self/stat` (Linux; the ingest runs
//! on one thread, so CPU time and wall time agree closely).

use crate::columnar::Columnar;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use loupe_ingest::{ExportRequest, Signal};
use loupe_store::{QueryEngine, QueryLimits, Store, StoreConfig, SyncPolicy};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{median, resident_mib};

/// Size of the run.
#[derive(Debug, Clone)]
pub struct StoreBenchConfig {
    /// Spans stored for the query measures (default 5 000 000).
    pub spans_total: usize,
    /// Services they come from (default 50, two pods each).
    pub services: usize,
    /// Directory for the store (emptied first, removed after).
    pub dir: PathBuf,
    /// Random seed.
    pub seed: u64,
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct StoreBench {
    /// Mean protobuf size of one span in the requests, bytes.
    pub span_bytes: f64,
    /// Spans per request.
    pub spans_per_request: usize,
    /// Decode-only floor: spans per CPU-second.
    pub decode_spans_per_cpu_second: f64,
    /// Decode and store (WAL without fsync, Arrow, hot append): spans per CPU-second.
    pub store_spans_per_cpu_second: f64,
    /// The store's rate as a share of the floor.
    pub store_share_of_decode: f64,
    /// Resident memory added per million hot spans, MiB.
    pub rss_mib_per_million_hot_spans: f64,
    /// Arrow memory of a million hot spans, MiB.
    pub arrow_mib_per_million_hot_spans: f64,
    /// Spans stored for the queries.
    pub spans_total: usize,
    /// Log records stored beside them.
    pub logs_total: usize,
    /// Seconds to flush everything to segments (off the ingest path).
    pub flush_seconds: f64,
    /// Seconds to compact.
    pub compact_seconds: f64,
    /// Segment files after compaction.
    pub segments: usize,
    /// Bytes on disk per span after compaction.
    pub disk_bytes_per_span: f64,
    /// Median milliseconds: one trace by id.
    pub trace_by_id_ms: f64,
    /// Median milliseconds: RED per service over the hour.
    pub red_per_service_ms: f64,
    /// Median milliseconds: error logs of one pod over the hour.
    pub pod_error_logs_ms: f64,
}

fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat: user and system time in clock ticks (100 per second
    // on Linux).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// The resource of pod `pod` of service `service`, as the OpenTelemetry Kubernetes setup
/// describes it.
fn resource(service: usize, pod: usize) -> Resource {
    let name = format!("svc-{service:03}");
    let pod_name = format!("{name}-7d9f8c6b5-{pod:05x}");
    Resource {
        attributes: vec![
            string("service.name", &name),
            string("service.namespace", "shop"),
            string("service.version", "1.4.2"),
            string("service.instance.id", format!("{pod_name}-instance")),
            string("k8s.namespace.name", "shop"),
            string("k8s.pod.name", &pod_name),
            string(
                "k8s.pod.uid",
                format!("3f9c{service:04}-{pod:04}-4c1e-9a7b-2d5e8f1a6b0c"),
            ),
            string("k8s.deployment.name", &name),
            string(
                "k8s.node.name",
                format!("node-{:02}", (service * 2 + pod) % 20),
            ),
            string("telemetry.sdk.language", "java"),
        ],
        ..Default::default()
    }
}

/// One request: 512 spans of one pod, traces of 8 spans, times within `[t0, t0 + 1 h)`.
fn span_request(
    rng: &mut StdRng,
    services: usize,
    t0: u64,
    errors: bool,
) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let service = rng.random_range(0..services);
    let pod = rng.random_range(0..2);
    let mut spans = Vec::with_capacity(512);
    let mut traces = Vec::new();
    let routes = [
        "/api/cart",
        "/api/checkout",
        "/api/products/{id}",
        "/api/currency",
    ];
    for _ in 0..64 {
        let trace: [u8; 16] = rng.random();
        traces.push(trace);
        let start = t0 + rng.random_range(0..3_600_000_000_000u64);
        let mut parent: Vec<u8> = Vec::new();
        for depth in 0..8u64 {
            let span_id: [u8; 8] = rng.random();
            let route = routes[rng.random_range(0..routes.len())];
            let failed = errors && rng.random_range(0..100) < 2;
            let duration = rng.random_range(1_000_000..200_000_000u64);
            spans.push(pt::Span {
                trace_id: trace.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: parent.clone(),
                name: format!("GET {route}"),
                kind: if depth % 2 == 0 { 2 } else { 3 },
                start_time_unix_nano: start + depth * 1_000_000,
                end_time_unix_nano: start + depth * 1_000_000 + duration,
                attributes: vec![
                    string("http.request.method", "GET"),
                    string("url.path", route.replace("{id}", "OLJCESPC7Z")),
                    string("http.route", route),
                    int("http.response.status_code", if failed { 500 } else { 200 }),
                    string(
                        "server.address",
                        format!("svc-{:03}", (service + 1) % services),
                    ),
                    int("server.port", 8080),
                    string("network.protocol.version", "1.1"),
                    string(
                        "user_agent.original",
                        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) loupe-bench/1.0",
                    ),
                    string(
                        "client.address",
                        format!("10.42.{}.{}", service % 250, pod + 10),
                    ),
                    string("url.scheme", "http"),
                ],
                status: failed.then(|| pt::Status {
                    message: "upstream failed".into(),
                    code: 2,
                }),
                ..Default::default()
            });
            parent = span_id.to_vec();
        }
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(resource(service, pod)),
            scope_spans: vec![pt::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (request, traces)
}

fn log_request(rng: &mut StdRng, services: usize, t0: u64) -> ExportLogsServiceRequest {
    let service = rng.random_range(0..services);
    let pod = rng.random_range(0..2);
    let records = (0..512)
        .map(|_| {
            let error = rng.random_range(0..100) < 5;
            pl::LogRecord {
                time_unix_nano: t0 + rng.random_range(0..3_600_000_000_000u64),
                severity_number: if error { 17 } else { 9 },
                severity_text: if error { "ERROR" } else { "INFO" }.into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(if error {
                        "payment failed: upstream returned 503".into()
                    } else {
                        "order placed".into()
                    })),
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![pl::ResourceLogs {
            resource: Some(resource(service, pod)),
            scope_logs: vec![pl::ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Runs the benchmark, reporting progress through `progress(message)`.
///
/// # Errors
/// When the store cannot be written or a query fails.
pub async fn run(config: StoreBenchConfig, progress: impl Fn(&str)) -> anyhow::Result<StoreBench> {
    // Long: a measurement script read top to bottom; each phase's timer brackets its own
    // lines, and the result gathers every phase's figures.
    let mut rng = StdRng::seed_from_u64(config.seed);
    let t0: u64 = 1_790_208_000_000_000_000;
    let _ = std::fs::remove_dir_all(&config.dir);
    let mut store_config = StoreConfig::new(&config.dir);
    store_config.wal_sync = SyncPolicy::None;
    store_config.retention_age = None;
    store_config.compact_files = 2;
    let (store, _) = Store::open(store_config)?;
    let store = Arc::new(store);

    // Hot memory: a million spans appended, resident set before and after.
    progress("memory: 1 000 000 hot spans");
    let requests_per_million = 1_000_000 / 512 + 1;
    // First, on a fresh heap, each request made and dropped as it goes, so that the growth is
    // the hot data's.
    let mut traces: Vec<[u8; 16]> = Vec::with_capacity(2_000_000);
    let rss_before = resident_mib();
    let arrow_before = store.stats().hot_bytes;
    for _ in 0..requests_per_million {
        let (request, ids) = span_request(&mut rng, config.services, t0, true);
        traces.extend(ids);
        let request = ExportRequest::from(request);
        store.restore(request.to_batch(t0).into_iter().collect());
    }
    let hot_spans = requests_per_million * 512;
    let rss_per_million = (resident_mib() - rss_before) * 1e6 / hot_spans as f64;
    let arrow_per_million = (store.stats().hot_bytes - arrow_before) as f64 / (1024.0 * 1024.0)
        * 1e6
        / hot_spans as f64;
    store.flush()?;

    // Ingest: 200 requests (102 400 spans), decode-only then decode and store.
    progress("ingest: encoding 200 requests of 512 spans");
    let encoded: Vec<Vec<u8>> = (0..200)
        .map(|_| {
            span_request(&mut rng, config.services, t0, true)
                .0
                .encode_to_vec()
        })
        .collect();
    let spans_per_pass = 200 * 512;
    let span_bytes = encoded.iter().map(|e| e.len()).sum::<usize>() as f64 / spans_per_pass as f64;
    let passes = 5;
    let mut decode_cpu = Vec::new();
    let mut store_cpu = Vec::new();
    for pass in 0..passes {
        progress(&format!("ingest: pass {}/{passes}", pass + 1));
        let c = cpu_seconds();
        for bytes in &encoded {
            let request = ExportRequest::decode(Signal::Traces, bytes)?;
            std::hint::black_box(request.items());
        }
        decode_cpu.push(cpu_seconds() - c);
        let c = cpu_seconds();
        for bytes in &encoded {
            let request = ExportRequest::decode(Signal::Traces, bytes)?;
            let items = request.items();
            let received = t0;
            let batches = request.to_batch(received).into_iter().collect();
            store.append(
                Signal::Traces.tag(),
                &[&received.to_le_bytes(), bytes],
                batches,
            )?;
            std::hint::black_box(items);
        }
        store_cpu.push(cpu_seconds() - c);
    }
    let decode_rate = spans_per_pass as f64 / median(decode_cpu).max(1e-9);
    let store_rate = spans_per_pass as f64 / median(store_cpu).max(1e-9);

    // Bulk load to `spans_total` spans and a tenth as many log records, flushed every
    // million spans as a server would.
    let mut stored = spans_per_pass * passes + hot_spans;
    let mut logs = 0;
    let mut flush_seconds = 0.0;
    while stored < config.spans_total {
        let (request, ids) = span_request(&mut rng, config.services, t0, true);
        traces.extend(ids);
        let request = ExportRequest::from(request);
        store.restore(request.to_batch(t0).into_iter().collect());
        stored += 512;
        if stored % (1 << 20) < 512 {
            progress(&format!("load: {stored} spans; flushing"));
            let f = Instant::now();
            store.flush()?;
            flush_seconds += f.elapsed().as_secs_f64();
        }
    }
    while logs < config.spans_total / 10 {
        let logs_request = ExportRequest::from(log_request(&mut rng, config.services, t0));
        store.restore(logs_request.to_batch(t0).into_iter().collect());
        logs += 512;
    }
    let f = Instant::now();
    store.flush()?;
    flush_seconds += f.elapsed().as_secs_f64();
    progress("compacting");
    let c = Instant::now();
    store.maintain((t0 + 10 * 3_600_000_000_000) as i64)?;
    let compact_seconds = c.elapsed().as_secs_f64();
    let stats = store.stats();
    let (span_bytes_on_disk, span_rows) = store
        .segments()
        .iter()
        .filter(|s| s.table == loupe_store::Table::Spans)
        .fold((0u64, 0u64), |(b, r), s| (b + s.bytes, r + s.rows));
    let disk_bytes_per_span = span_bytes_on_disk as f64 / span_rows.max(1) as f64;

    // Queries.
    let engine = QueryEngine::new(store.clone())?;
    let limits = QueryLimits {
        max_rows: 1_000_000,
        timeout: std::time::Duration::from_secs(600),
    };
    let rfc3339 = |t: u64| {
        humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t))
            .to_string()
    };
    let (from, to) = (rfc3339(t0), rfc3339(t0 + 3_600_000_000_000));
    let hour = format!("'{from}' AND start_time_unix_nano < '{to}'");
    let time = |sql: String| {
        let engine = &engine;
        async move {
            let s = Instant::now();
            let out = engine.query(&sql, limits).await?;
            anyhow::ensure!(out.rows > 0, "no rows for {sql}");
            Ok::<f64, anyhow::Error>(s.elapsed().as_secs_f64() * 1e3)
        }
    };
    let mut trace_ms = Vec::new();
    progress("query: trace by id");
    for _ in 0..15 {
        let t = traces[rng.random_range(0..traces.len())];
        let sql = format!(
            "SELECT * FROM spans WHERE trace_id = '{}'",
            t.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        trace_ms.push(time(sql).await?);
    }
    progress("query: RED per service over 1 h");
    let mut red_ms = Vec::new();
    for _ in 0..5 {
        red_ms.push(
            time(format!(
                "SELECT service_name, count(*) AS requests, \
                 sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors, \
                 approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_nano) AS p99 \
                 FROM spans WHERE kind = 'server' AND start_time_unix_nano >= {hour} \
                 GROUP BY service_name"
            ))
            .await?,
        );
    }
    progress("query: error logs of one pod over 1 h");
    let mut logs_ms = Vec::new();
    for _ in 0..5 {
        let pod = format!(
            "svc-{:03}-7d9f8c6b5-{:05x}",
            rng.random_range(0..config.services),
            0
        );
        logs_ms.push(
            time(format!(
                "SELECT time_unix_nano, body['string_value'] AS body FROM logs \
                 WHERE resource_attributes['k8s.pod.name']['string_value'] = '{pod}' \
                 AND severity_number >= 17 AND time_unix_nano >= '{from}' \
                 AND time_unix_nano < '{to}'"
            ))
            .await?,
        );
    }
    drop(engine);
    drop(store);
    let _ = std::fs::remove_dir_all(&config.dir);
    Ok(StoreBench {
        span_bytes,
        spans_per_request: 512,
        decode_spans_per_cpu_second: decode_rate,
        store_spans_per_cpu_second: store_rate,
        store_share_of_decode: store_rate / decode_rate,
        rss_mib_per_million_hot_spans: rss_per_million,
        arrow_mib_per_million_hot_spans: arrow_per_million,
        spans_total: stored,
        logs_total: logs,
        flush_seconds,
        compact_seconds,
        segments: stats.segments,
        disk_bytes_per_span,
        trace_by_id_ms: median(trace_ms),
        red_per_service_ms: median(red_ms),
        pod_error_logs_ms: median(logs_ms),
    })
}
