//! Chat-ops end to end: a server fed a simulated bad deployment over OTLP/gRPC and its
//! deployment webhook; `POST /api/v1/ask` in plain English names the injected cause first and
//! lists the deployment, and `loupe ask` prints the same; a question it cannot place asks back.

use std::sync::Arc;

use loupe_simulate::cases::run_case;
use loupe_simulate::{CaseSpec, FaultKind, Topology};
use serde_json::{json, Value};

use crate::support::{feed_case, post_json, start, temp_dir};

const MINUTE: u64 = 60_000_000_000;

async fn ask(addr: std::net::SocketAddr, question: &str, now: u64) -> Value {
    let (status, _, body) = post_json(
        addr,
        "/api/v1/ask",
        &json!({ "question": question, "now": now, "by": "e2e" }),
    )
    .await;
    assert_eq!(
        status,
        200,
        "{question}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_in_plain_english_names_the_injected_cause_and_its_deployment() {
    let dir = temp_dir("ask");
    let server = start(Some(dir.clone())).await;
    let spec = CaseSpec {
        case_id: "ask".into(),
        topology: Arc::new(Topology::builtin("otel-demo").unwrap()),
        fault: FaultKind::BadDeployment,
        herrings: Vec::new(),
        seed: 3,
        start_unix_nano: 1_767_571_200_000_000_000,
        baseline_nanos: 6 * MINUTE,
        fault_nanos: 4 * MINUTE,
        metrics: Default::default(),
        traffic: Default::default(),
    };
    let (truth, telemetry) = run_case(&spec);
    feed_case(&server, telemetry).await;
    let root = truth.root_cause_service.as_str();
    let now = truth.fault_end_unix_ns;

    // Why: the injected service (or its deployment) first.
    let answer = ask(
        server.http_addr,
        "why is frontend-proxy failing in the last 4 minutes?",
        now,
    )
    .await;
    assert_eq!(answer["understood"], true, "{answer:#}");
    assert_eq!(answer["reading"]["intent"], "diagnose");
    assert_eq!(answer["reading"]["entity"]["id"], "service:frontend-proxy");
    let interpretation = answer["interpretation"].as_str().unwrap();
    assert!(
        interpretation.starts_with("I read this as: why service frontend-proxy"),
        "{interpretation}"
    );
    let top = answer["data"]["causes"][0]["entity"].clone();
    let top_id = format!(
        "{}:{}",
        top["kind"].as_str().unwrap(),
        top["name"].as_str().unwrap()
    );
    assert!(
        top_id == format!("service:{root}") || top_id.starts_with(&format!("change:{root}:")),
        "top cause {top_id}, injected {root}: {answer:#}"
    );
    assert!(
        answer["headline"].as_str().unwrap().contains(root),
        "{answer:#}"
    );
    assert!(
        answer["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("kubectl rollout")),
        "a rollout command: {answer:#}"
    );

    // What changed: the deployment, with its versions.
    let answer = ask(server.http_addr, "what changed in the last hour", now).await;
    assert_eq!(answer["reading"]["intent"], "changes");
    let facts: Vec<&str> = answer["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        facts
            .iter()
            .any(|f| f.contains(root) && f.contains("github")),
        "the deployment of {root}: {facts:#?}"
    );

    // A misspelled name is resolved; an unknown one is asked back, not guessed.
    let answer = ask(
        server.http_addr,
        &format!("what depends on {}", &root[..root.len() - 1]),
        now,
    )
    .await;
    assert!(
        answer["understood"] == false
            || answer["reading"]["entity"]["id"] == format!("service:{root}"),
        "{answer:#}"
    );
    let answer = ask(server.http_addr, "why is billing slow", now).await;
    assert_eq!(answer["understood"], false);
    assert!(
        answer["headline"].as_str().unwrap().contains("billing"),
        "{answer:#}"
    );
    // Gibberish gets the help, not an error.
    let answer = ask(server.http_addr, "tell me a joke", now).await;
    assert_eq!(answer["understood"], false);
    assert!(
        answer["facts"].as_array().unwrap().len() > 5,
        "the help: {answer:#}"
    );

    // Bad requests are 400s that name what is wrong.
    let (status, _, body) = post_json(
        server.http_addr,
        "/api/v1/ask",
        &json!({ "question": "status", "time_zone": "Mars/Olympus" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("time_zone"));

    // `loupe ask` prints the same answer as text.
    let bin = crate::store::loupe_binary();
    let out = std::process::Command::new(bin)
        .args(["ask", "what changed in the last hour", "--server"])
        .arg(format!("http://{}", server.http_addr))
        .args(["--now", &now.to_string()])
        .output()
        .expect("loupe ask runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("I read this as: what changed between"),
        "{text}"
    );
    assert!(text.contains(root) && text.contains("github"), "{text}");
    assert!(
        text.contains(&format!("http://{}/changes?", server.http_addr)),
        "{text}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
