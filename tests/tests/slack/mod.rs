//! Slack end to end, the way Slack calls loupe: signed form posts to `/slack/commands` and
//! `/slack/interactions` on a server fed a simulated bad deployment, with a local stand-in for
//! Slack's `response_url` that records what loupe posts back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loupe_api::slack::{verify::sign, SlackConfig, ACCEPT};
use loupe_simulate::cases::run_case;
use loupe_simulate::{CaseSpec, FaultKind, Topology};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::support::{feed_case, get_json, post, post_json, start, start_with, temp_dir};

const MINUTE: u64 = 60_000_000_000;
const SECRET: &str = "e2e-signing-secret";

/// A stand-in for Slack's response_url: every JSON body posted to `/hook` goes to the channel.
async fn response_url_mock() -> (SocketAddr, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Posts `form` to `path` signed as Slack signs it, at `timestamp`.
async fn signed(
    addr: SocketAddr,
    path: &str,
    form: &[(&str, &str)],
    timestamp: u64,
) -> (u16, Value) {
    let body = serde_urlencoded::to_string(form).unwrap();
    let signature = sign(SECRET.as_bytes(), timestamp, body.as_bytes());
    let ts = timestamp.to_string();
    let (status, _, bytes) = post(
        addr,
        path,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-slack-request-timestamp", &ts),
            ("x-slack-signature", &signature),
        ],
        body.into_bytes(),
    )
    .await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn command<'a>(text: &'a str, response_url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("team_id", "T0LOUPE"),
        ("channel_id", "C0LOUPE"),
        ("user_id", "U0SRE"),
        ("user_name", "sre"),
        ("command", "/loupe"),
        ("text", text),
        ("response_url", response_url),
        ("trigger_id", "1.2.abc"),
        ("api_app_id", "A0LOUPE"),
    ]
}

async fn next_post(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("loupe posts to response_url within 30 s")
        .expect("the mock is up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_slash_command_answers_in_block_kit_and_a_button_records_the_verdict() {
    let (hook, mut posts) = response_url_mock().await;
    let response_url = format!("http://{hook}/hook");
    let dir = temp_dir("slack");
    let server = start_with(Some(dir.clone()), |c| {
        let mut slack = SlackConfig::new(SECRET);
        slack.response_url_hosts = vec![hook.to_string()];
        slack.public_url = Some("https://loupe.example.com".into());
        c.slack = Some(slack);
    })
    .await;
    let api = server.http_addr;
    let spec = CaseSpec {
        case_id: "slack".into(),
        topology: Arc::new(Topology::builtin("otel-demo").unwrap()),
        fault: FaultKind::BadDeployment,
        herrings: Vec::new(),
        seed: 5,
        start_unix_nano: 1_767_571_200_000_000_000,
        baseline_nanos: 6 * MINUTE,
        fault_nanos: 4 * MINUTE,
        metrics: Default::default(),
        traffic: Default::default(),
    };
    let (truth, telemetry) = run_case(&spec);
    feed_case(&server, telemetry).await;
    let (status, _, body) = post_json(
        api,
        "/api/v1/incidents",
        &json!({"start": truth.fault_start_unix_ns, "end": truth.fault_end_unix_ns, "title": "checkout errors"}),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let incident: Value = serde_json::from_slice(&body).unwrap();
    let id = incident["id"].as_u64().unwrap();

    // Refusals: no signature, a forged one, a stale timestamp; ssl_check is answered.
    let form = serde_urlencoded::to_string(command("list incidents", &response_url)).unwrap();
    let now = now_seconds();
    let ts = now.to_string();
    for headers in [
        vec![],
        vec![("x-slack-request-timestamp", ts.as_str())],
        vec![
            ("x-slack-request-timestamp", ts.as_str()),
            (
                "x-slack-signature",
                "v0=0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ],
    ] {
        let (status, _, _) =
            post(api, "/slack/commands", &headers, form.clone().into_bytes()).await;
        assert_eq!(status, 401, "{headers:?}");
    }
    let (status, _) = signed(
        api,
        "/slack/commands",
        &command("list incidents", &response_url),
        now - 400,
    )
    .await;
    assert_eq!(status, 401, "a timestamp 400 s old is a replay");
    let (status, _, body) =
        post(api, "/slack/commands", &[], b"ssl_check=1&token=x".to_vec()).await;
    assert_eq!((status, body.len()), (200, 0));

    // The slash command: the incident in Block Kit, in the channel, with its buttons.
    let question = format!("show incident {id}");
    let (status, reply) = signed(
        api,
        "/slack/commands",
        &command(&question, &response_url),
        now,
    )
    .await;
    assert_eq!(status, 200, "{reply:#}");
    assert_eq!(reply["response_type"], "in_channel", "{reply:#}");
    let blocks = reply["blocks"].as_array().expect("blocks").clone();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("incident #{id}")),
        "{reply:#}"
    );
    let top_cause = incident["analysis"]["causes"][0].clone();
    let top_id = format!(
        "{}:{}",
        top_cause["entity"]["kind"].as_str().unwrap(),
        top_cause["entity"]["name"].as_str().unwrap()
    );
    let buttons = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("an actions block")
        .clone();
    let accept = buttons["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action_id"] == ACCEPT)
        .expect("an Accept button")
        .clone();
    assert_eq!(accept["value"], format!("{id}|{top_id}"));
    assert!(
        reply
            .to_string()
            .contains(&format!("<https://loupe.example.com/incidents/{id}|")),
        "{reply:#}"
    );

    // The click: a signed block_actions payload records the verdict by the clicking user, and
    // the message's buttons for that cause are replaced.
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0SRE", "username": "sre", "team_id": "T0LOUPE"},
        "team": {"id": "T0LOUPE"},
        "api_app_id": "A0LOUPE",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0LOUPE"},
        "channel": {"id": "C0LOUPE", "name": "incidents"},
        "message": {"text": reply["text"], "blocks": blocks},
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": ACCEPT, "block_id": buttons["block_id"], "value": accept["value"], "action_ts": "1700000001.000200"}]
    })
    .to_string();
    let (status, _) = signed(
        api,
        "/slack/interactions",
        &[("payload", &payload)],
        now_seconds(),
    )
    .await;
    assert_eq!(status, 200);
    let verdicts = get_json(api, "/api/v1/verdicts").await;
    let verdict = verdicts["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["by"] == "slack:T0LOUPE:U0SRE")
        .unwrap_or_else(|| panic!("a verdict by the Slack user: {verdicts:#}"))
        .clone();
    assert_eq!(verdict["incident"], id, "{verdict:#}");
    assert_eq!(verdict["cause"], top_id.as_str(), "{verdict:#}");
    assert_eq!(verdict["verdict"], "accepted", "{verdict:#}");
    let update = next_post(&mut posts).await;
    assert_eq!(update["replace_original"], true, "{update:#}");
    let text = update.to_string();
    assert!(text.contains("accepted by <@U0SRE>"), "{update:#}");
    assert_eq!(
        update["blocks"].as_array().unwrap().len(),
        blocks.len(),
        "only the buttons change: {update:#}"
    );
    // A button on an unknown incident records nothing and says so to the clicker.
    let bad = payload.replace(&format!("\"{id}|"), "\"999|");
    let (status, _) = signed(
        api,
        "/slack/interactions",
        &[("payload", &bad)],
        now_seconds(),
    )
    .await;
    assert_eq!(status, 200);
    let said = next_post(&mut posts).await;
    assert_eq!(said["response_type"], "ephemeral", "{said:#}");
    assert!(
        said["text"].as_str().unwrap().contains("could not record"),
        "{said:#}"
    );
    // A forged click records nothing.
    let (status, _, _) = post(
        api,
        "/slack/interactions",
        &[
            ("x-slack-request-timestamp", &now_seconds().to_string()),
            ("x-slack-signature", "v0=00"),
        ],
        format!("payload={payload}").into_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        get_json(api, "/api/v1/verdicts").await["verdicts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_follows_on_response_url_and_without_a_secret_slack_is_404() {
    let (hook, mut posts) = response_url_mock().await;
    let response_url = format!("http://{hook}/hook");
    // Every answer is "slow" here: the reply says it is looking; the answer is posted.
    let server = start_with(None, |c| {
        let mut slack = SlackConfig::new(SECRET);
        slack.response_url_hosts = vec![hook.to_string()];
        slack.answer_within = Duration::ZERO;
        c.slack = Some(slack);
    })
    .await;
    let (status, reply) = signed(
        server.http_addr,
        "/slack/commands",
        &command("help", &response_url),
        now_seconds(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply["text"].as_str().unwrap().starts_with("Looking into"),
        "{reply:#}"
    );
    let answer = next_post(&mut posts).await;
    assert_eq!(
        answer["response_type"], "ephemeral",
        "help is for the asker only: {answer:#}"
    );
    assert!(
        answer["blocks"].as_array().unwrap().len() >= 3,
        "{answer:#}"
    );
    // A response_url elsewhere than Slack is not posted to.
    let (status, _) = signed(
        server.http_addr,
        "/slack/commands",
        &command("help", "http://169.254.169.254/latest"),
        now_seconds(),
    )
    .await;
    assert_eq!(status, 200);
    server.shutdown().await;

    let plain = start(None).await;
    let (status, _) = signed(
        plain.http_addr,
        "/slack/commands",
        &command("help", &response_url),
        now_seconds(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = signed(
        plain.http_addr,
        "/slack/interactions",
        &[("payload", "{}")],
        now_seconds(),
    )
    .await;
    assert_eq!(status, 404);
    plain.shutdown().await;
}
