//! The trace search (`GET /api/v1/traces`) on spans sent by a real OpenTelemetry exporter:
//! which traces each filter finds, in which order, with what summary; and the 400 that names
//! a bad parameter.

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use serde_json::Value;

use crate::support::{get, get_json, start, temp_dir};
use crate::{resource, span, T0};

/// Start of a trace `n` of the fixture, milliseconds after `T0`.
fn at(n: u64) -> u64 {
    n * 1000
}

/// Four traces: 1 and 2 call cart's `GetCart` (2 fails and is slow), 3 calls payment, 4 calls
/// cart's `AddItem`.
fn fixture() -> (Vec<SpanData>, Vec<SpanData>, Vec<SpanData>) {
    let (mut frontend, mut cart, mut payment) = (Vec::new(), Vec::new(), Vec::new());
    // (trace, root name, callee, callee operation, callee end offset ms, callee fails)
    let traces = [
        (1u128, "GET /", "cart", "GetCart", 60, false),
        (2, "GET /", "cart", "GetCart", 800, true),
        (3, "POST /checkout", "payment", "Charge", 200, false),
        (4, "GET /", "cart", "AddItem", 40, false),
    ];
    for (t, root, callee, op, end, fails) in traces {
        let s = at(t as u64);
        let id = |n: u64| (t as u64) * 16 + n;
        frontend.push(span(t, id(1), 0, root, SpanKind::Server, s, s + end + 100));
        frontend.push(span(
            t,
            id(2),
            id(1),
            op,
            SpanKind::Client,
            s + 5,
            s + end + 5,
        ));
        let mut server_span = span(t, id(3), id(2), op, SpanKind::Server, s + 10, s + end);
        if fails {
            server_span.status = Status::error("card store unavailable");
        }
        match callee {
            "cart" => cart.push(server_span),
            _ => payment.push(server_span),
        }
    }
    // A straggler of trace 4 two hours later: past the hour around a search, so no summary
    // reads it.
    cart.push(span(
        4,
        4 * 16 + 9,
        4 * 16 + 3,
        "Cleanup",
        SpanKind::Internal,
        7_204_000,
        7_204_010,
    ));
    (frontend, cart, payment)
}

fn trace_id(t: u128) -> String {
    format!("{t:032x}")
}

/// The trace ids a search answered, in order.
fn found(body: &Value) -> Vec<String> {
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_search_finds_traces_by_service_operation_status_and_duration() {
    let dir = temp_dir("trace-search");
    let server = start(Some(dir.clone())).await;
    let grpc = format!("http://{}", server.otlp_grpc_addr);
    let (frontend, cart, payment) = fixture();
    for (service, spans) in [("frontend", frontend), ("cart", cart), ("payment", payment)] {
        let mut exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&grpc)
            .build()
            .unwrap();
        exporter.set_resource(&resource(service));
        exporter.export(spans).await.unwrap();
    }
    let ns = |ms: u64| T0 * 1_000_000_000 + ms * 1_000_000;
    let range = format!("from={}&to={}", ns(0), ns(10_000));
    // (query, trace ids in order)
    let cases: [(&str, &[u128]); 11] = [
        ("service=cart", &[4, 2, 1]),
        ("service=cart&operation=GetCart", &[2, 1]),
        ("service=cart&status=error", &[2]),
        ("service=cart&status=unset", &[4, 1]),
        ("service=cart&min_duration=500ms", &[2]),
        ("service=cart&sort=slowest", &[2, 1, 4]),
        ("service=cart&limit=1", &[4]),
        ("service=payment", &[3]),
        ("service=frontend&operation=GET%20%2F", &[4, 2, 1]),
        ("service=nobody", &[]),
        ("service=o'brien", &[]),
    ];
    for (query, want) in cases {
        let body = get_json(server.http_addr, &format!("/api/v1/traces?{query}&{range}")).await;
        let want: Vec<String> = want.iter().map(|&t| trace_id(t)).collect();
        assert_eq!(found(&body), want, "{query}: {body:#}");
    }
    // The summary reads the spans within an hour of the range, not the straggler.
    let body = get_json(
        server.http_addr,
        &format!("/api/v1/traces?service=cart&limit=1&{range}"),
    )
    .await;
    assert_eq!(body["traces"][0]["span_count"], 3, "{body:#}");
    // A narrower range leaves the earlier traces out.
    let late = format!(
        "/api/v1/traces?service=frontend&from={}&to={}",
        ns(1500),
        ns(10_000)
    );
    let body = get_json(server.http_addr, &late).await;
    assert_eq!(
        found(&body),
        [trace_id(4), trace_id(3), trace_id(2)],
        "{body:#}"
    );
    // A trace's summary: its root, its whole span, its spans and its errors.
    let body = get_json(
        server.http_addr,
        &format!("/api/v1/traces?service=cart&status=error&{range}"),
    )
    .await;
    let t = &body["traces"][0];
    assert_eq!(t["root_service"], "frontend", "{t}");
    assert_eq!(t["root_name"], "GET /", "{t}");
    assert_eq!(t["span_count"], 3, "{t}");
    assert_eq!(t["error_count"], 1, "{t}");
    assert_eq!(t["start_time_unix_nano"].as_u64(), Some(ns(at(2))), "{t}");
    assert_eq!(t["duration_nano"].as_u64(), Some(900 * 1_000_000), "{t}");
    // Each found trace opens whole.
    let tree = get_json(server.http_addr, &format!("/api/v1/traces/{}", trace_id(2))).await;
    assert_eq!(tree["span_count"], 3);

    // Bad parameters: a 400 that names each.
    for (query, name) in [
        ("", "service"),
        ("service=cart&status=failed", "status"),
        ("service=cart&limit=0", "limit"),
        ("service=cart&min_duration=soon", "min_duration"),
        ("service=cart&from=tomorrow", "from"),
        ("service=cart&from=2000&to=1000", "to"),
        ("service=cart&sort=oldest", "sort"),
        ("service=cart&serivce=x", "serivce"),
    ] {
        let (status, body) = get(server.http_addr, &format!("/api/v1/traces?{query}")).await;
        assert_eq!(status, 400, "{query}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "invalid_parameter", "{query}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("invalid {name}:")),
            "{query}: {message}"
        );
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
