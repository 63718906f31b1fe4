//! Chat-ops: a question in plain English read into a typed query by a deterministic grammar
//! (`grammar.rs`, `window.rs`, `resolve.rs`: no model), run on the same functions the REST
//! handlers call, and answered as one [`Answer`] value that renders as JSON
//! (`POST /api/v1/ask`) and as terminal text (`loupe ask`).
//!
//! Every answer says how the question was read ("I read this as: …"); a name it cannot place
//! or that fits several entities is asked back, never guessed.

mod answer;
mod diagnose;
mod facts;
#[cfg(test)]
mod golden;
mod grammar;
mod incidents;
mod resolve;
mod window;
mod words;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono_tz::Tz;
use serde::Deserialize;

pub use answer::{render_text, run, Answer, Asker, CauseRef, Link};
pub use grammar::{parse, Intent, Parse, Reading};
pub use resolve::Known;
pub use window::{Clock, WindowSpec};

use crate::error::{ApiError, Result};
use crate::params::parse_time;
use crate::routes::ApiState;
use crate::sql::SqlState;

/// What the ask route shares: the API's state and the SQL engine's.
#[derive(Clone)]
pub struct AskState {
    /// Graph, incidents, analysis settings, clock.
    pub api: ApiState,
    /// The SQL engine, for `sql: …` questions.
    pub sql: SqlState,
}

/// `POST /api/v1/ask`.
pub fn ask_router(state: AskState) -> Router {
    Router::new()
        .route("/api/v1/ask", post(ask))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskRequest {
    question: String,
    /// IANA zone of the asker (`Europe/Berlin`); default UTC.
    #[serde(default)]
    time_zone: Option<String>,
    /// The "now" the question is read against (RFC 3339 or unix ns); default the server's.
    #[serde(default)]
    now: Option<serde_json::Value>,
    /// Who asks (the `by` of a verdict).
    #[serde(default)]
    by: Option<String>,
    /// Refuse questions that write (verdicts); MCP sets it unless writes are allowed.
    #[serde(default)]
    read_only: bool,
}

/// Longest question read, in bytes.
const MAX_QUESTION_BYTES: usize = 4096;

/// `POST /api/v1/ask` `{"question":…,"time_zone"?,"now"?,"by"?}` → [`Answer`]. A question it
/// cannot read is still a 200, whose answer says so with the help; malformed JSON, an unknown
/// zone or a question past 4 KiB is a 400.
async fn ask(
    State(state): State<AskState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    body: Bytes,
) -> Result<Json<Answer>> {
    let request: AskRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if request.question.len() > MAX_QUESTION_BYTES {
        return Err(ApiError::invalid(
            "question",
            format!("longer than {MAX_QUESTION_BYTES} bytes"),
        ));
    }
    let zone: Tz = match &request.time_zone {
        None => Tz::UTC,
        Some(z) => z.parse().map_err(|_| {
            ApiError::invalid(
                "time_zone",
                format!("{z:?} is not an IANA time zone such as Europe/Berlin"),
            )
        })?,
    };
    let now = match &request.now {
        Some(v) => parse_time("now", v)?,
        None => state.api.clock.now_unix_nano(),
    };
    let clock = Clock { now, zone };
    let by = request.by.unwrap_or_else(|| "loupe ask".into());
    let asker = answer::Asker {
        by: &by,
        // A token without the admin scope may ask, not record verdicts.
        read_only: request.read_only
            || principal
                .as_ref()
                .is_some_and(|p| !p.may(crate::auth::Scope::Admin)),
        token: principal.as_ref().map(|p| p.name.as_str()),
    };
    Ok(Json(
        answer::run(&state, &request.question, clock, &asker).await?,
    ))
}

/// The names a question may use: every service, database, topic, external endpoint, node and
/// pod the graph has seen in the week before `now`.
pub fn known_names(state: &ApiState, now: u64) -> Result<Vec<Known>> {
    const WEEK: u64 = 7 * 24 * 3600 * 1_000_000_000;
    use loupe_graph::EntityKind as K;
    let kinds = [
        K::Service,
        K::Database,
        K::MessagingDestination,
        K::External,
        K::Node,
        K::Pod,
    ];
    let names = state.read(|g| g.names(&kinds, now.saturating_sub(WEEK), now.max(1)))?;
    let mut seen = HashMap::new();
    for (kind, id, full) in names {
        let name = match kind {
            // `otel-demo/cart-7d9f8-abcde@uid`: people type `cart-7d9f8-abcde`.
            "pod" => full
                .rsplit('/')
                .next()
                .unwrap_or(&full)
                .split('@')
                .next()
                .unwrap_or(&full)
                .to_owned(),
            _ => full.clone(),
        };
        // A service in a `service.namespace` is `shop/cart`: people type `cart` too.
        if kind == "service" {
            if let Some((_, short)) = full.rsplit_once('/') {
                seen.entry((id.clone(), short.to_owned())).or_insert(Known {
                    id: id.clone(),
                    kind: kind.to_owned(),
                    name: short.to_owned(),
                });
            }
        }
        seen.entry((id.clone(), name.clone())).or_insert(Known {
            id,
            kind: kind.to_owned(),
            name,
        });
    }
    let mut out: Vec<Known> = seen.into_values().collect();
    out.sort_by(|a, b| (&a.id, &a.name).cmp(&(&b.id, &b.name)));
    Ok(out)
}
