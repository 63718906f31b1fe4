//! The store end to end: the SQL surface as a data-driven file, a restart that rebuilds the
//! graph from Parquet segments, and SIGKILLs of the real `loupe` binary under a real exporter.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loupe_store::datafusion::arrow::ipc::reader::StreamReader;
use loupe_store::datafusion::arrow::util::pretty::pretty_format_batches;
use opentelemetry::trace::SpanKind;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SpanExporter as _;
use serde_json::{json, Value};

use crate::support::{get, get_json, post, post_json, start, temp_dir};

/// 2023-01-29T13:46:40Z.
const T0: u64 = 1_675_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

fn s(v: &str) -> Value {
    json!({"stringValue": v})
}

fn resource(service: &str, pod: &str) -> Value {
    json!({"attributes": [kv("service.name", s(service)), kv("k8s.pod.name", s(pod)),
        kv("k8s.namespace.name", s("shop"))]})
}

/// Four traces frontend → checkout; the fourth fails in checkout with HTTP 500.
fn traces() -> Value {
    let mut frontend = Vec::new();
    let mut checkout = Vec::new();
    for t in 1..=4u64 {
        let trace = format!("{t:032x}");
        let at = T0 + t * 1000 * MS;
        let id = |n: u64| format!("{:016x}", t * 16 + n);
        frontend.push(json!({"traceId": trace, "spanId": id(1), "name": "GET /", "kind": 2,
            "startTimeUnixNano": at.to_string(), "endTimeUnixNano": (at + (90 + 10 * t) * MS).to_string(),
            "attributes": [kv("http.response.status_code", json!({"intValue": "200"}))]}));
        frontend.push(json!({"traceId": trace, "spanId": id(2), "parentSpanId": id(1),
            "name": "POST /checkout", "kind": 3,
            "startTimeUnixNano": (at + 5 * MS).to_string(), "endTimeUnixNano": (at + (45 + 10 * t) * MS).to_string()}));
        let failed = t == 4;
        checkout.push(json!({"traceId": trace, "spanId": id(3), "parentSpanId": id(2),
            "name": "POST /checkout", "kind": 2,
            "startTimeUnixNano": (at + 10 * MS).to_string(), "endTimeUnixNano": (at + (40 + 10 * t) * MS).to_string(),
            "attributes": [kv("http.response.status_code", json!({"intValue": if failed { "500" } else { "200" }}))],
            "status": if failed { json!({"code": 2, "message": "payment declined"}) } else { json!({}) }}));
    }
    json!({"resourceSpans": [
        {"resource": resource("frontend", "frontend-1"), "scopeSpans": [{"spans": frontend}]},
        {"resource": resource("checkout", "checkout-1"), "scopeSpans": [{"spans": checkout}]}]})
}

fn logs() -> Value {
    let record = |t: u64, severity: u32, text: &str, body: &str| {
        json!({"timeUnixNano": (T0 + t * 1000 * MS).to_string(), "severityNumber": severity,
            "severityText": text, "body": s(body)})
    };
    json!({"resourceLogs": [
        {"resource": resource("checkout", "checkout-1"), "scopeLogs": [{"logRecords": [
            record(1, 17, "ERROR", "payment declined"), record(2, 17, "ERROR", "payment declined"),
            record(3, 9, "INFO", "order placed")]}]},
        {"resource": resource("checkout", "checkout-2"), "scopeLogs": [{"logRecords": [
            record(4, 17, "ERROR", "timeout calling payment")]}]},
        {"resource": resource("frontend", "frontend-1"), "scopeLogs": [{"logRecords": [
            record(4, 13, "WARN", "slow checkout")]}]}]})
}

/// `http.server.request.duration` as delta histograms (seconds, bounds 0.05, 0.1, 0.5).
fn metrics() -> Value {
    let point = |t: u64, counts: [u64; 4]| {
        let total: u64 = counts.iter().sum();
        json!({"startTimeUnixNano": (T0 + (t - 1) * 1000 * MS).to_string(),
            "timeUnixNano": (T0 + t * 1000 * MS).to_string(), "count": total.to_string(),
            "explicitBounds": [0.05, 0.1, 0.5],
            "bucketCounts": counts.iter().map(|c| c.to_string()).collect::<Vec<_>>()})
    };
    let metric = |points: Vec<Value>| {
        json!({"name": "http.server.request.duration", "unit": "s",
            "histogram": {"aggregationTemporality": 1, "dataPoints": points}})
    };
    json!({"resourceMetrics": [
        {"resource": resource("checkout", "checkout-1"), "scopeMetrics": [{"metrics": [
            metric(vec![point(1, [10, 20, 10, 0]), point(2, [0, 10, 10, 0])])]}]},
        {"resource": resource("frontend", "frontend-1"), "scopeMetrics": [{"metrics": [
            metric(vec![point(1, [0, 0, 5, 5])])]}]}]})
}

/// Runs `sql` through `POST /api/v1/query` as an Arrow stream; the table, or the error.
async fn sql_table(addr: SocketAddr, sql: &str) -> Result<String, String> {
    let body = serde_json::to_vec(&json!({ "sql": sql })).unwrap();
    let headers = [
        ("content-type", "application/json"),
        ("accept", loupe_api::ARROW_STREAM),
    ];
    let (status, _, bytes) = post(addr, "/api/v1/query", &headers, body).await;
    if status != 200 {
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        return Err(format!(
            "{status} {}",
            v["error"]["message"].as_str().unwrap_or("")
        ));
    }
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None).unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    Ok(pretty_format_batches(&batches).unwrap().to_string())
}

/// One case of `testdata/sql.test`.
struct Case {
    name: String,
    sql: String,
    /// The table, or `error: <substring>`.
    expected: String,
}

/// Cases: `# name`, the SQL, `----`, the expected table (or `error: <text>`), a blank line.
fn cases(text: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .expect("a case starts with `# name`")
            .to_owned();
        let rest: Vec<&str> = lines.collect();
        let split = rest
            .iter()
            .position(|l| *l == "----")
            .expect("`----` between SQL and result");
        out.push(Case {
            name,
            sql: rest[..split].join("\n"),
            expected: rest[split + 1..].join("\n"),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_surface_answers_as_its_data_file_says() {
    let dir = temp_dir("sql");
    let server = start(Some(dir.clone())).await;
    let otlp = server.otlp_http_addr;
    let (status, _, _) = post_json(otlp, "/v1/traces", &traces()).await;
    assert_eq!(status, 200);
    // Half of the data in Parquet segments, half hot in memory: the queries see both.
    let store = server.engine.store().unwrap();
    let report = tokio::task::spawn_blocking(move || store.flush().unwrap())
        .await
        .unwrap();
    assert_eq!(report.rows, 12);
    let (status, _, _) = post_json(otlp, "/v1/logs", &logs()).await;
    assert_eq!(status, 200);
    let (status, _, _) = post_json(otlp, "/v1/metrics", &metrics()).await;
    assert_eq!(status, 200);
    let change = json!({"kind": "deployment", "service": "checkout", "version_from": "1.4.1",
        "version_to": "1.4.2", "time": "2023-01-29T13:46:30Z", "author": "ci"});
    let (status, _, body) = post_json(server.http_addr, "/api/v1/changes", &change).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    // Joins the spans waiting for their parents, so the graph has its edges.
    server.engine.flush();

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/sql.test");
    let text = std::fs::read_to_string(&file).unwrap();
    let cases = cases(&text);
    assert!(cases.len() >= 8, "the file holds the cases");
    let mut failures = Vec::new();
    for case in &cases {
        let got = match sql_table(server.http_addr, &case.sql).await {
            Ok(table) => table,
            Err(e) => format!("error: {e}"),
        };
        let ok = match case.expected.strip_prefix("error: ") {
            Some(want) => got.starts_with("error: ") && got.contains(want),
            None => got.trim() == case.expected.trim(),
        };
        if !ok {
            failures.push(format!(
                "# {}\n{}\n---- expected\n{}\n---- got\n{}",
                case.name, case.sql, case.expected, got
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));

    // The JSON form and the trace tree.
    let (status, _, body) = post_json(
        server.http_addr,
        "/api/v1/query",
        &json!({"sql": "SELECT span_id FROM spans ORDER BY span_id", "max_rows": 3}),
    )
    .await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["row_count"], 3);
    assert_eq!(answer["truncated"], true);
    assert_eq!(answer["rows"][0]["span_id"], "0000000000000011");
    let trace = get_json(server.http_addr, &format!("/api/v1/traces/{:032x}", 4)).await;
    assert_eq!(trace["span_count"], 3);
    assert_eq!(trace["orphans"], 0);
    let root = &trace["roots"][0];
    assert_eq!(root["name"], "GET /");
    let server_span = &root["children"][0]["children"][0];
    assert_eq!(server_span["service_name"], "checkout");
    assert_eq!(server_span["status_message"], "payment declined");
    let (status, _) = get(server.http_addr, &format!("/api/v1/traces/{:032x}", 99)).await;
    assert_eq!(status, 404);
    let (status, _) = get(server.http_addr, "/api/v1/traces/xyz").await;
    assert_eq!(status, 400);
    // A query past its time limit is cancelled with a clear error.
    let slow =
        json!({"sql": "SELECT count(*) FROM generate_series(1, 10000000000)", "timeout": "200ms"});
    let (status, _, body) = post_json(server.http_addr, "/api/v1/query", &slow).await;
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("time limit"));
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rebuilds_the_graph_from_segments_and_the_log() {
    let dir = temp_dir("segments-restart");
    let server = start(Some(dir.clone())).await;
    let (status, _, _) = post_json(server.otlp_http_addr, "/v1/traces", &traces()).await;
    assert_eq!(status, 200);
    let store = server.engine.store().unwrap();
    tokio::task::spawn_blocking(move || store.flush().unwrap())
        .await
        .unwrap();
    let (status, _, _) = post_json(server.otlp_http_addr, "/v1/logs", &logs()).await;
    assert_eq!(status, 200);
    server.engine.flush();
    let at = "at=2023-01-29T13:46:45Z&window=10m";
    let before = get_json(server.http_addr, &format!("/api/v1/graph?{at}")).await;
    server.shutdown().await;

    let server = start(Some(dir.clone())).await;
    let (status, body) = get(server.http_addr, "/readyz").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let stats = get_json(server.http_addr, "/api/v1/store").await;
    assert_eq!(stats["segment_rows"], 12, "{stats}");
    assert_eq!(
        stats["hot_rows"], 5,
        "the logs came back from the log: {stats}"
    );
    server.engine.flush();
    let after = get_json(server.http_addr, &format!("/api/v1/graph?{at}")).await;
    let edges = |g: &Value| {
        let mut e: Vec<String> = g["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["kind"], e["source"], e["target"], e["stats"]["calls"]
                )
            })
            .collect();
        e.sort();
        e
    };
    assert!(!edges(&before).is_empty());
    assert_eq!(
        edges(&after),
        edges(&before),
        "the same graph after the restart"
    );
    server.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_segments_replay_into_another_server() {
    let dir = temp_dir("replay-source");
    let source = start(Some(dir.clone())).await;
    let (status, _, _) = post_json(source.otlp_http_addr, "/v1/traces", &traces()).await;
    assert_eq!(status, 200);
    let store = source.engine.store().unwrap();
    tokio::task::spawn_blocking(move || store.flush().unwrap())
        .await
        .unwrap();
    let target_dir = temp_dir("replay-target");
    let target = start(Some(target_dir.clone())).await;
    let endpoint = format!("http://{}", target.otlp_grpc_addr);
    // The source keeps running: replay only reads its segments.
    let totals = loupe::cli::replay::send_stored(&endpoint, &dir, None)
        .await
        .unwrap();
    assert_eq!((totals.items, totals.rejected), (12, 0));
    let table = sql_table(
        target.http_addr,
        "SELECT service_name, count(*) AS spans FROM spans GROUP BY service_name ORDER BY service_name",
    )
    .await
    .unwrap();
    assert!(table.contains("| checkout     | 4     |"), "{table}");
    assert!(table.contains("| frontend     | 8     |"), "{table}");
    source.shutdown().await;
    target.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&target_dir).unwrap();
}

/// The `loupe` binary of this build: `target/<profile>/loupe`, built on demand.
pub(crate) fn loupe_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let bin = profile_dir.join(format!("loupe{}", std::env::consts::EXE_SUFFIX));
    // Always ask cargo: a no-op when the binary is current, a link when it is not.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "loupe", "--bin", "loupe"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building the loupe binary failed");
    bin
}

/// Starts `loupe serve` on free ports with its data in `dir`; returns the child and the OTLP/gRPC
/// and REST addresses it logged.
// The caller waits for the child; a panic here fails the test and the child dies with its pipe.
#[allow(clippy::zombie_processes)]
fn spawn_loupe(bin: &Path, dir: &Path) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
        ])
        .args(["--http-addr", "127.0.0.1:0", "--flush-interval", "200ms"])
        .args(["--query-max-rows", "10000000"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loupe starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let field = |line: &str, key: &str| -> Option<SocketAddr> {
        let at = line.find(&format!(" {key}="))? + key.len() + 2;
        line[at..].split_whitespace().next()?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "loupe did not log its addresses");
        let line = lines.next().expect("loupe logs").unwrap();
        if line.contains("loupe is serving") {
            let grpc = field(&line, "otlp_grpc_addr").unwrap();
            let http = field(&line, "http_addr").unwrap();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, grpc, http);
        }
    }
}

async fn wait_ready(http: SocketAddr) {
    for _ in 0..600 {
        if get(http, "/readyz").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not ready after 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_sigkill_exactly_once() {
    let bin = tokio::task::spawn_blocking(loupe_binary).await.unwrap();
    let dir = temp_dir("sigkill");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // xorshift: a random moment per round, reported so a failure can be replayed.
    let mut state = seed | 1;
    let mut random = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut acked: Vec<u64> = Vec::new();
    let mut sent: Vec<u64> = Vec::new();
    let mut next: u64 = 1;
    for round in 0..4 {
        let (mut child, grpc, http) = spawn_loupe(&bin, &dir);
        wait_ready(http).await;
        let mut exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{grpc}"))
            .with_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        exporter.set_resource(&crate::resource("crash"));
        // The first round outlives a flush (every 200 ms of hot data, checked each second); the
        // others die at any moment, during a flush or not.
        let kill_after = Duration::from_millis(match round {
            0 => 2500 + random(1000),
            _ => 300 + random(2500),
        });
        let started = Instant::now();
        let mut killed = false;
        while !killed {
            let ids: Vec<u64> = (next..next + 50).collect();
            next += 50;
            sent.extend(&ids);
            let batch = ids
                .iter()
                .map(|&i| crate::span(i as u128, i, 0, "GET /", SpanKind::Server, 0, 10))
                .collect();
            if started.elapsed() >= kill_after {
                // Kill while this export is in flight.
                let export = exporter.export(batch);
                let kill = async {
                    tokio::time::sleep(Duration::from_millis(random(5))).await;
                    child.kill().expect("SIGKILL");
                };
                let (result, ()) = tokio::join!(export, kill);
                if result.is_ok() {
                    acked.extend(&ids);
                }
                killed = true;
            } else {
                match exporter.export(batch).await {
                    Ok(()) => acked.extend(&ids),
                    Err(e) => panic!("round {round}: export failed before the kill: {e:?}"),
                }
            }
        }
        let _ = child.wait();
    }
    // A last start: every acknowledged span is there exactly once.
    let (mut child, _, http) = spawn_loupe(&bin, &dir);
    wait_ready(http).await;
    let sql = json!({"sql": "SELECT span_id, count(*) AS n FROM spans GROUP BY span_id", "max_rows": 1_000_000});
    let (status, _, body) = post_json(http, "/api/v1/query", &sql).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let mut stored = std::collections::HashMap::new();
    for row in answer["rows"].as_array().unwrap() {
        let id = u64::from_str_radix(row["span_id"].as_str().unwrap(), 16).unwrap();
        stored.insert(id, row["n"].as_u64().unwrap());
    }
    let stats = get_json(http, "/api/v1/store").await;
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(answer["truncated"], false);
    let sent: std::collections::HashSet<u64> = sent.into_iter().collect();
    let first = |v: Vec<String>| v.into_iter().take(10).collect::<Vec<_>>();
    let missing = first(
        acked
            .iter()
            .filter(|i| !stored.contains_key(i))
            .map(|i| i.to_string())
            .collect(),
    );
    let repeated = first(
        stored
            .iter()
            .filter(|(_, n)| **n != 1)
            .map(|(i, n)| format!("{i}×{n}"))
            .collect(),
    );
    let unknown = first(
        stored
            .keys()
            .filter(|i| !sent.contains(i))
            .map(|i| i.to_string())
            .collect(),
    );
    assert!(
        missing.is_empty() && repeated.is_empty() && unknown.is_empty(),
        "seed {seed}: {} acknowledged, {} stored; missing {missing:?}, repeated {repeated:?}, never sent {unknown:?}",
        acked.len(),
        stored.len()
    );
    assert!(
        acked.len() >= 4 * 50,
        "seed {seed}: some exports were acknowledged"
    );
    assert!(
        stats["segments"].as_u64().unwrap() > 0,
        "seed {seed}: flushes ran between the kills: {stats}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
