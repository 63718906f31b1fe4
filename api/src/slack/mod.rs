//! Slack: the `/loupe` slash command and the Accept / Reject buttons of its answers.
//!
//! - `POST /slack/commands` takes a slash command (form-encoded, docs.slack.dev/interactivity/
//!   implementing-slash-commands): its `text` is a question for [`crate::ask`], asked by
//!   `slack:{team_id}:{user_id}`. The answer comes back as Block Kit in the reply when it is
//!   ready within [`SlackConfig::answer_within`] (Slack waits 3 s); otherwise the reply says it
//!   is looking and the answer follows on the command's `response_url`.
//! - `POST /slack/interactions` takes a `block_actions` payload: a click on Accept or Reject
//!   records the verdict for the clicking user, and the message's buttons are replaced by who
//!   decided what (through `response_url`).
//! - Both verify Slack's `v0` signature ([`verify`]) on the raw body first: a missing header,
//!   a bad signature or a timestamp more than five minutes off is a 401. `ssl_check=1` is
//!   answered with an empty 200. Without a signing secret these routes are not mounted (404).

mod blocks;
mod post;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono_tz::Tz;
use loupe_analysis::Judgement;
use serde_json::{json, Value};

pub use blocks::{message, ACCEPT, REJECT};
pub use post::ResponsePoster;

use crate::ask::{self, AskState, Asker, Clock, Intent};
use crate::error::{ApiError, Result};

/// What the Slack routes need to know.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The app's signing secret (Basic Information → App Credentials).
    pub signing_secret: String,
    /// The zone questions' clock times are read in (Slack does not send the user's).
    pub time_zone: Tz,
    /// Hosts besides `*.slack.com` that `response_url` may name (tests, proxies).
    pub response_url_hosts: Vec<String>,
    /// The web UI's address as Slack users reach it (`https://loupe.example.com`); default
    /// the scheme and `Host` of Slack's request.
    pub public_url: Option<String>,
    /// How long a slash command waits for its answer before it replies that it is looking
    /// and posts the answer to `response_url` (Slack gives up after 3 s); zero always posts.
    pub answer_within: Duration,
}

impl SlackConfig {
    /// A configuration with `signing_secret` and the defaults: UTC, Slack's hosts only, 2.5 s.
    pub fn new(signing_secret: impl Into<String>) -> Self {
        Self {
            signing_secret: signing_secret.into(),
            time_zone: Tz::UTC,
            response_url_hosts: Vec::new(),
            public_url: None,
            answer_within: Duration::from_millis(2500),
        }
    }
}

#[derive(Clone)]
struct SlackState {
    ask: AskState,
    config: Arc<SlackConfig>,
    poster: Arc<ResponsePoster>,
}

/// `POST /slack/commands` and `POST /slack/interactions`.
pub fn slack_router(ask: AskState, config: SlackConfig) -> Router {
    let poster = Arc::new(ResponsePoster::new(config.response_url_hosts.clone()));
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .with_state(SlackState {
            ask,
            config: Arc::new(config),
            poster,
        })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The signature check, on the wall clock (Slack's timestamps are wall time, whatever clock
/// the graph runs on).
fn check(state: &SlackState, headers: &HeaderMap, body: &[u8]) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    verify::verify(
        state.config.signing_secret.as_bytes(),
        header_str(headers, "x-slack-request-timestamp"),
        header_str(headers, "x-slack-signature"),
        body,
        now,
    )
    .map_err(|refusal| {
        tracing::warn!(%refusal, "refused a request to the Slack routes");
        ApiError::Unauthenticated(format!("not a request from Slack: {refusal}"))
    })
}

fn form(body: &[u8]) -> Result<HashMap<String, String>> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::InvalidBody(format!("not a form: {e}")))
}

/// The web UI's address for links in answers.
fn base(config: &SlackConfig, headers: &HeaderMap) -> String {
    if let Some(url) = &config.public_url {
        return url.clone();
    }
    let scheme = header_str(headers, "x-forwarded-proto").unwrap_or("http");
    let host = header_str(headers, "x-forwarded-host")
        .or_else(|| header_str(headers, header::HOST.as_str()))
        .unwrap_or("127.0.0.1:8080");
    format!("{scheme}://{host}")
}

/// A short message only the asker sees.
fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": blocks::escape(text)})
}

/// The reply to a question: the answer in Block Kit, in the channel when it answered
/// something (so the people in the incident see it), only to the asker when it is help, a
/// question back, or an error.
fn reply(result: &Result<ask::Answer>, base: &str) -> Value {
    match result {
        Ok(answer) => {
            let mut m = message(answer, base);
            let shared = answer.understood
                && !matches!(
                    answer.reading.as_ref().map(|r| &r.intent),
                    Some(Intent::Help) | None
                );
            m["response_type"] = json!(if shared { "in_channel" } else { "ephemeral" });
            m
        }
        Err(e) => ephemeral(&format!("loupe could not answer: {e}")),
    }
}

/// `POST /slack/commands`.
async fn commands(
    State(state): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let fields = form(&body)?;
    if fields.get("ssl_check").map(String::as_str) == Some("1") {
        return Ok(StatusCode::OK.into_response());
    }
    check(&state, &headers, &body)?;
    let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let question = field("text");
    let by = format!("slack:{}:{}", field("team_id"), field("user_id"));
    let response_url = fields.get("response_url").cloned();
    let clock = Clock {
        now: state.ask.api.clock.now_unix_nano(),
        zone: state.config.time_zone,
    };
    let base = base(&state.config, &headers);
    let (tx, rx) = tokio::sync::oneshot::channel::<Value>();
    // `answer_within` zero: every answer goes to response_url (the reply only acknowledges).
    let mut rx = (!state.config.answer_within.is_zero()).then_some(rx);
    let worker = state.clone();
    let asked = question.clone();
    tokio::spawn(async move {
        let asker = Asker {
            by: &by,
            read_only: false,
            token: None,
        };
        let result = ask::run(&worker.ask, &asked, clock, &asker).await;
        let message = reply(&result, &base);
        // The command's reply has gone: the answer goes to response_url.
        if let Err(message) = tx.send(message) {
            match response_url {
                Some(url) => {
                    if let Err(error) = worker.poster.post(&url, &message).await {
                        tracing::warn!(%error, "could not post an answer to Slack");
                    }
                }
                None => tracing::warn!("a slow answer has no response_url to go to"),
            }
        }
    });
    let looking = || {
        ephemeral(&format!(
            "Looking into \"{question}\"… the answer follows here."
        ))
    };
    let message = match rx.as_mut() {
        None => looking(),
        Some(rx) => match tokio::time::timeout(state.config.answer_within, &mut *rx).await {
            Ok(Ok(message)) => message,
            Ok(Err(_)) => {
                ephemeral("loupe could not answer: the answer failed; see the server's log")
            }
            Err(_) => {
                // Too slow for the reply; unless it has just come, it follows on response_url.
                rx.close();
                rx.try_recv().unwrap_or_else(|_| looking())
            }
        },
    };
    Ok(Json(message).into_response())
}

/// `POST /slack/interactions`.
async fn interactions(
    State(state): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    check(&state, &headers, &body)?;
    let fields = form(&body)?;
    let payload: Value =
        serde_json::from_str(fields.get("payload").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::invalid("payload", format!("not JSON: {e}")))?;
    let action = &payload["actions"][0];
    let action_id = action["action_id"].as_str().unwrap_or("");
    let judgement = match (payload["type"].as_str(), action_id) {
        (Some("block_actions"), ACCEPT) => Judgement::Accepted,
        (Some("block_actions"), REJECT) => Judgement::Rejected,
        // Other interactions (a link button, a shortcut) are acknowledged and left alone.
        _ => return Ok(StatusCode::OK.into_response()),
    };
    let value = action["value"].as_str().unwrap_or("");
    let (incident, cause) = value
        .split_once('|')
        .and_then(|(i, c)| Some((i.parse::<u64>().ok()?, c.to_owned())))
        .ok_or_else(|| {
            ApiError::invalid(
                "payload",
                format!("button value {value:?} is not incident|cause"),
            )
        })?;
    let user = payload["user"]["id"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let team = payload["team"]["id"]
        .as_str()
        .or(payload["user"]["team_id"].as_str())
        .unwrap_or("unknown");
    let name = payload["user"]["username"]
        .as_str()
        .or(payload["user"]["name"].as_str())
        .unwrap_or(&user)
        .to_owned();
    let by = format!("slack:{team}:{user}");
    let comment = format!("from Slack, by {name}");
    let now = state.ask.api.clock.now_unix_nano();
    let recorded = crate::routes::judge(
        &state.ask.api,
        (incident, cause.clone()),
        (judgement, comment, by),
        None,
        now,
    )
    .await;
    let word = if judgement == Judgement::Accepted {
        "accepted"
    } else {
        "rejected"
    };
    let update = match &recorded {
        Ok(_) => {
            let line = format!(
                "{} *{}* {word} by <@{user}> on incident #{incident}",
                if judgement == Judgement::Accepted {
                    "✅"
                } else {
                    "❌"
                },
                blocks::escape(&cause)
            );
            match (
                payload["message"]["blocks"].as_array(),
                action["block_id"].as_str(),
            ) {
                (Some(old), Some(block_id)) => json!({
                    "replace_original": true,
                    "text": payload["message"]["text"].clone(),
                    "blocks": blocks::mark_decided(old, block_id, &line),
                }),
                _ => {
                    json!({"response_type": "in_channel", "replace_original": false, "text": line})
                }
            }
        }
        Err(e) => {
            let mut m = ephemeral(&format!("loupe could not record that verdict: {e}"));
            m["replace_original"] = json!(false);
            m
        }
    };
    if let Some(url) = payload["response_url"].as_str().map(str::to_owned) {
        let poster = state.poster.clone();
        tokio::spawn(async move {
            if let Err(error) = poster.post(&url, &update).await {
                tracing::warn!(%error, "could not update the Slack message");
            }
        });
    }
    // Slack shows an error for anything but a 200; the clicker hears why on response_url.
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "a verdict from Slack was not recorded");
    }
    Ok(StatusCode::OK.into_response())
}
