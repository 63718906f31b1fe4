//! Helpers of the end-to-end tests: a server on free ports and a small HTTP client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use loupe::server::{self, ServeConfig, Server};
use loupe_ingest::Limits;
use loupe_store::StoreConfig;

/// `google.rpc.Status` as OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A server on `127.0.0.1:0` with small limits (1 MiB bodies, 4 MiB decompressed), ready
/// (recovery complete).
pub async fn start(data_dir: Option<PathBuf>) -> Server {
    start_with(data_dir, |_| {}).await
}

/// [`start`], with `settings` changing the configuration first.
pub async fn start_with(
    data_dir: Option<PathBuf>,
    settings: impl FnOnce(&mut ServeConfig),
) -> Server {
    let local = "127.0.0.1:0".parse().unwrap();
    let mut config = ServeConfig {
        otlp_grpc_addr: local,
        otlp_http_addr: local,
        http_addr: local,
        store: data_dir.map(StoreConfig::new),
        limits: Limits {
            max_body_bytes: 1 << 20,
            max_decompressed_bytes: 4 << 20,
        },
        ..ServeConfig::default()
    };
    settings(&mut config);
    let server = server::start(config).await.expect("server starts");
    server
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("recovery completes");
    server
}

/// POSTs `body`; returns status, headers and body.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Bytes) {
    request(hyper::Method::POST, addr, path, headers, body).await
}

/// Sends `method` `path` with `headers` and `body`; returns status, headers and body.
pub async fn request(
    method: hyper::Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("request sent");
    let (parts, body) = response.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// Sends a simulated case to `server` as its fleet would: every OTLP request over OTLP/gRPC
/// (none may be rejected) and every change webhook to `/api/v1/changes` (each must be
/// recorded, 201).
pub async fn feed_case(server: &Server, telemetry: loupe_simulate::cases::CaseTelemetry) {
    let endpoint = format!("http://{}", server.otlp_grpc_addr);
    let mut client = loupe_ingest::OtlpGrpcClient::connect(&endpoint)
        .await
        .unwrap();
    for r in telemetry.requests {
        assert_eq!(client.send(r).await.unwrap(), 0, "items rejected");
    }
    for n in &telemetry.notices {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(n.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = serde_json::to_vec(&n.body).unwrap();
        let (status, _, body) = post(server.http_addr, "/api/v1/changes", &headers, body).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
}

/// POSTs `body` as `application/json`; returns status, headers and body.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> (u16, hyper::HeaderMap, Bytes) {
    let bytes = serde_json::to_vec(body).expect("json encodes");
    post(addr, path, &[("content-type", "application/json")], bytes).await
}

/// A fresh directory under the system's temp dir for one test's data.
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("loupe-e2e-{name}-{}-{nanos}", std::process::id()))
}

/// GETs `path`; returns status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// GETs `path`, expecting 200 and JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Polls `/api/v1/status` until the join buffer is empty (the server lets idle spans out
/// about five seconds after they arrive); fails after 60 s.
pub async fn wait_for_join_buffer(addr: SocketAddr) {
    for _ in 0..600 {
        let status = get_json(addr, "/api/v1/status").await;
        if status["pending_spans"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("spans still pending after 60 s");
}

/// Sends only the head of a POST that declares `content_length` bytes with
/// `Expect: 100-continue`, as curl does for large uploads, and returns the status of the
/// server's first answer: 100 if it wants the body, or its final status if it refuses it
/// unread. A raw socket, because an HTTP client that writes the body anyway races the
/// server's close after an early refusal (a broken pipe instead of the status).
pub async fn status_before_upload(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    content_length: usize,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
         content-length: {content_length}\r\nexpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server answers the head within 10 s")
            .expect("answer read");
        assert!(n > 0, "connection closed before any answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {line}"))
}

/// A one-span trace as the OpenTelemetry SDK hands it to an exporter: server span `n` (trace
/// and span id from `n`) of 5 ms at 2026-01-01T00:00:00Z.
pub fn sdk_span(n: u64) -> opentelemetry_sdk::trace::SpanData {
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    opentelemetry_sdk::trace::SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(n) + 1),
            SpanId::from(n + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: "GET /".into(),
        start_time: t0,
        end_time: t0 + Duration::from_millis(5),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: Status::Unset,
        instrumentation_scope: opentelemetry::InstrumentationScope::builder("e2e").build(),
    }
}
