//! Authentication end to end: a server with a tokens file, every route and receiver asked with
//! no token, an unknown token and a token of each scope (data-driven), OTLP through real
//! OpenTelemetry exporters configured with the header, and the refusal to listen beyond
//! loopback without tokens.

use std::collections::HashMap;
use std::sync::Arc;

use loupe::server::{self, ServeConfig};
use loupe_api::auth::{create_token, Scope, Tokens};
use opentelemetry_otlp::{
    Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::trace::SpanExporter as _;
use serde_json::json;

use crate::support::{post, request, sdk_span, start_with, temp_dir};

/// A credential of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Nobody,
    Unknown,
    Ingest,
    Read,
    Admin,
}

const EVERYONE: [Who; 5] = [
    Who::Nobody,
    Who::Unknown,
    Who::Ingest,
    Who::Read,
    Who::Admin,
];

/// The status class a credential gets on a route that needs `need` (`None`: open).
fn expected(who: Who, need: Option<Scope>) -> &'static str {
    match (need, who) {
        (None, _) => "through",
        (Some(_), Who::Nobody | Who::Unknown) => "401",
        (Some(Scope::Ingest), Who::Ingest) => "through",
        (Some(Scope::Read), Who::Read | Who::Admin) => "through",
        (Some(Scope::Admin), Who::Admin) => "through",
        _ => "403",
    }
}

fn class(status: u16) -> &'static str {
    match status {
        401 => "401",
        403 => "403",
        _ => "through",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_receiver_needs_its_scope() {
    let dir = temp_dir("auth");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens.txt");
    let mut token = HashMap::new();
    token.insert(
        Who::Ingest,
        create_token(&file, "collector", &[Scope::Ingest]).unwrap(),
    );
    token.insert(
        Who::Read,
        create_token(&file, "viewer", &[Scope::Read]).unwrap(),
    );
    token.insert(
        Who::Admin,
        create_token(&file, "oncall", &[Scope::Admin]).unwrap(),
    );
    token.insert(
        Who::Unknown,
        "loupe_0000000000000000000000000000000000000000000000000000000000000000".into(),
    );
    let tokens = Arc::new(Tokens::open(&file).unwrap());
    let server = start_with(Some(dir.join("data")), |c| c.tokens = Some(tokens)).await;
    let api = server.http_addr;

    // The REST API, the UI, MCP: (method, path, body, scope needed).
    let change = json!({"kind": "deployment", "service": "cart", "version": "2", "time": 1_767_225_600_000_000_000u64});
    let routes: Vec<(&str, &str, Option<serde_json::Value>, Option<Scope>)> = vec![
        ("GET", "/healthz", None, None),
        ("GET", "/readyz", None, None),
        ("GET", "/api/v1/openapi.json", None, None),
        ("GET", "/", None, None),
        ("GET", "/incidents/1", None, None),
        ("GET", "/api/v1/status", None, Some(Scope::Read)),
        ("GET", "/api/v1/graph", None, Some(Scope::Read)),
        ("GET", "/api/v1/incidents", None, Some(Scope::Read)),
        ("GET", "/api/v1/verdicts", None, Some(Scope::Read)),
        (
            "GET",
            "/api/v1/traces?service=cart",
            None,
            Some(Scope::Read),
        ),
        (
            "POST",
            "/api/v1/query",
            Some(json!({"sql": "select 1"})),
            Some(Scope::Read),
        ),
        (
            "POST",
            "/api/v1/ask",
            Some(json!({"question": "help"})),
            Some(Scope::Read),
        ),
        (
            "POST",
            "/mcp",
            Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
            Some(Scope::Read),
        ),
        ("POST", "/api/v1/changes", Some(change), Some(Scope::Ingest)),
        (
            "POST",
            "/api/v1/incidents",
            Some(json!({"start": 1, "end": 2})),
            Some(Scope::Admin),
        ),
        (
            "POST",
            "/api/v1/incidents/1/causes/service:cart/verdict",
            Some(json!({"verdict": "accepted", "by": "e2e"})),
            Some(Scope::Admin),
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, need) in &routes {
        for who in EVERYONE {
            let mut headers = vec![
                ("content-type", "application/json".to_owned()),
                ("accept", "application/json, text/event-stream".to_owned()),
            ];
            if let Some(t) = token.get(&who) {
                headers.push(("authorization", format!("Bearer {t}")));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, response_headers, text) = if *method == "GET" {
                request(hyper::Method::GET, api, path, &headers, Vec::new()).await
            } else {
                post(
                    api,
                    path,
                    &headers,
                    body.as_ref().unwrap().to_string().into_bytes(),
                )
                .await
            };
            let got = class(status);
            if got != expected(who, *need) {
                wrong.push(format!(
                    "{method} {path} as {who:?}: {status} {}",
                    String::from_utf8_lossy(&text)
                ));
            }
            if status == 401 && response_headers.get("www-authenticate").is_none() {
                wrong.push(format!(
                    "{method} {path} as {who:?}: 401 without WWW-Authenticate"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // A read token may ask, but not record a verdict in words.
    let bearer = format!("Bearer {}", token[&Who::Read]);
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    let (status, _, body) = post(
        api,
        "/api/v1/ask",
        &headers,
        json!({"question": "accept cause cart of incident 1"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        answer["headline"].as_str().unwrap().starts_with("refused"),
        "{answer:#}"
    );

    // OTLP through real exporters, the token in the exporter's headers (gRPC metadata, HTTP).
    let grpc = format!("http://{}", server.otlp_grpc_addr);
    let http = format!("http://{}/v1/traces", server.otlp_http_addr);
    let mut sent = 0u64;
    for who in EVERYONE {
        let mut metadata = tonic::metadata::MetadataMap::new();
        let mut headers = HashMap::new();
        if let Some(t) = token.get(&who) {
            metadata.insert("authorization", format!("Bearer {t}").parse().unwrap());
            headers.insert("authorization".to_owned(), format!("Bearer {t}"));
        }
        let want_ok = who == Who::Ingest;
        let over_grpc = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&grpc)
            .with_metadata(metadata)
            .build()
            .unwrap();
        let result = over_grpc.export(vec![sdk_span(sent)]).await;
        assert_eq!(result.is_ok(), want_ok, "gRPC as {who:?}: {result:?}");
        if let Err(e) = &result {
            let text = format!("{e:?}");
            let want = if matches!(who, Who::Nobody | Who::Unknown) {
                "Unauthenticated"
            } else {
                "PermissionDenied"
            };
            assert!(text.contains(want), "gRPC as {who:?}: {text}");
        }
        sent += 1;
        let over_http = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&http)
            .with_headers(headers)
            .build()
            .unwrap();
        let result = over_http.export(vec![sdk_span(sent)]).await;
        assert_eq!(result.is_ok(), want_ok, "HTTP as {who:?}: {result:?}");
        sent += 1;
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_beyond_loopback_needs_tokens_or_the_insecure_flag() {
    let config = || ServeConfig {
        otlp_grpc_addr: "127.0.0.1:0".parse().unwrap(),
        otlp_http_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "0.0.0.0:0".parse().unwrap(),
        store: None,
        ..ServeConfig::default()
    };
    let refused = server::start(config()).await.err().expect("refused");
    let message = refused.to_string();
    assert!(
        message.starts_with("refusing to listen on 0.0.0.0:0 without authentication"),
        "{message}"
    );
    assert!(
        message.contains("loupe token create") && message.contains("--insecure-no-auth"),
        "{message}"
    );
    let insecure = server::start(ServeConfig {
        insecure_no_auth: true,
        ..config()
    })
    .await
    .expect("starts with the flag");
    insecure.shutdown().await;
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`, as GitHub signs deliveries.
fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_deliveries_signed_with_the_secret_need_no_token() {
    let dir = temp_dir("auth-github");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens.txt");
    create_token(&file, "collector", &[Scope::Ingest]).unwrap();
    let tokens = Arc::new(Tokens::open(&file).unwrap());
    let server = start_with(None, |c| {
        c.tokens = Some(tokens);
        c.github_webhook_secret = Some("webhook secret".into());
    })
    .await;
    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ingest/testdata/changes/github-deployment-status.json"),
    )
    .unwrap();
    let send = |signature: Option<String>| {
        let body = body.clone();
        let api = server.http_addr;
        async move {
            let mut headers = vec![
                ("content-type", "application/json".to_owned()),
                ("x-github-event", "deployment_status".to_owned()),
            ];
            if let Some(s) = signature {
                headers.push(("x-hub-signature-256", s));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, _, answer) = post(api, "/api/v1/changes", &headers, body).await;
            (status, String::from_utf8_lossy(&answer).into_owned())
        }
    };
    let (status, answer) = send(Some(github_signature("webhook secret", &body))).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = send(Some(github_signature("another secret", &body))).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("does not match"), "{answer}");
    let (status, answer) = send(None).await;
    assert_eq!(status, 401, "unsigned, no token: {answer}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loupes_own_otlp_client_sends_its_token() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let dir = temp_dir("auth-client");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens.txt");
    let ingest = create_token(&file, "replay", &[Scope::Ingest]).unwrap();
    let tokens = Arc::new(Tokens::open(&file).unwrap());
    let server = start_with(None, |c| c.tokens = Some(tokens)).await;
    let endpoint = format!("http://{}", server.otlp_grpc_addr);
    let request = || loupe_ingest::ExportRequest::from(ExportTraceServiceRequest::default());
    // As `loupe replay` and `loupe simulate stream` connect, with LOUPE_TOKEN or without.
    let mut with = loupe_ingest::OtlpGrpcClient::connect(&endpoint)
        .await
        .unwrap()
        .with_bearer_token(Some(ingest))
        .unwrap();
    assert_eq!(with.send(request()).await.unwrap(), 0);
    let mut without = loupe_ingest::OtlpGrpcClient::connect(&endpoint)
        .await
        .unwrap()
        .with_bearer_token(None)
        .unwrap();
    let refused = without.send(request()).await.unwrap_err().to_string();
    assert!(refused.contains("bearer token"), "{refused}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_answers_the_host_names_it_is_told_and_no_other() {
    let server = start_with(None, |c| {
        c.mcp_allowed_hosts = vec!["loupe.example.com".into()];
    })
    .await;
    // A stateless tools/list of the 2026-07-28 protocol.
    let list = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}}))
    .unwrap();
    let ask = |host: &'static str| {
        let list = list.clone();
        let api = server.http_addr;
        async move {
            let headers = [
                ("host", host),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ];
            let (status, _, body) = post(api, "/mcp", &headers, list).await;
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, body) = ask("loupe.example.com").await;
    assert!(
        status == 200 && body.contains("record_verdict"),
        "{status} {body}"
    );
    let (status, body) = ask("rebound.example.net").await;
    assert_eq!(status, 403, "{body}");
    server.shutdown().await;
}
