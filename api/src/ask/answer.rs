//! Runs a reading on the functions the REST handlers use and builds the one answer every face
//! renders: how the question was read, a headline, facts, the ranked causes' evidence,
//! commands, links to the web UI, and the raw data for machines. The intents' answers are in
//! `diagnose.rs` (why), `facts.rs` (changes, the graph, status, SQL) and `incidents.rs`
//! (incidents and verdicts).

use chrono::TimeZone;
use serde::Serialize;
use serde_json::Value;

use super::grammar::{parse, Intent, Parse, Reading};
use super::window::{Clock, WindowSpec};
use super::{diagnose, facts, incidents, known_names, AskState};
use crate::error::{ApiError, Result};

pub(super) const MINUTE: u64 = 60 * 1_000_000_000;

/// A link to a page of the web UI (a path on the server: `/incidents/3`).
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// What it shows.
    pub title: String,
    /// The path, with its query.
    pub path: String,
}

/// A ranked cause an answer shows.
#[derive(Debug, Clone, Serialize)]
pub struct CauseRef {
    /// Rank, from 1.
    pub rank: usize,
    /// Entity id (`service:payment`): the `{cause}` of a verdict.
    pub id: String,
    /// Probability, 0 to 1.
    pub probability: f64,
}

/// An answer.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The question, as asked.
    pub question: String,
    /// Whether it was read (false: it asks back, or could not read it).
    pub understood: bool,
    /// "I read this as: …", or what it could not read.
    pub interpretation: String,
    /// The typed reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<Reading>,
    /// The answer in one line.
    pub headline: String,
    /// The facts behind it, one sentence each.
    pub facts: Vec<String>,
    /// Commands to run (remediations: loupe never runs them).
    pub commands: Vec<String>,
    /// Pages of the web UI that show more.
    pub links: Vec<Link>,
    /// Choices, when it asks back (entity ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The incident the answer is about, when it is about one: its causes can take a verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    /// The ranked causes the facts show, best first (at most three).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<CauseRef>,
    /// The data the answer was read from, as the REST API returns it.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl Answer {
    pub(super) fn new(question: &str, interpretation: String, headline: String) -> Self {
        Self {
            question: question.to_owned(),
            understood: true,
            interpretation,
            reading: None,
            headline,
            facts: Vec::new(),
            commands: Vec::new(),
            links: Vec::new(),
            options: Vec::new(),
            incident: None,
            causes: Vec::new(),
            data: Value::Null,
        }
    }

    pub(super) fn link(&mut self, title: impl Into<String>, path: impl Into<String>) {
        self.links.push(Link {
            title: title.into(),
            path: path.into(),
        });
    }
}

/// Questions the help shows.
pub const EXAMPLES: &[&str] = &[
    "what is wrong right now?",
    "why is checkout slow since 14:00?",
    "why is payment failing in the last 30 minutes?",
    "what changed in cart in the last hour?",
    "what depends on postgresql?",
    "what does checkout call?",
    "how is frontend doing?",
    "list open incidents",
    "show incident 3",
    "reject cause cart of incident 3 because the rollout was already reverted",
    "sql: select service_name, count(*) from spans group by service_name",
];

fn help(question: &str, headline: String) -> Answer {
    let mut a = Answer::new(
        question,
        "I read this as: a request for help".into(),
        headline,
    );
    a.facts = EXAMPLES.iter().map(|e| format!("ask \"{e}\"")).collect();
    a.facts.push(
        "times: \"since 14:00\", \"in the last 30 minutes\", \"between 2 and 3pm\", \"yesterday\", \
         \"at 09:30 UTC\", \"during incident 3\""
            .into(),
    );
    a
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// A verdict's author.
    pub by: &'a str,
    /// Whether questions that write (verdicts) are refused.
    pub read_only: bool,
    /// The name of the bearer token the question came with (recorded with a verdict).
    pub token: Option<&'a str>,
}

/// Reads `question` and answers it for `asker`.
///
/// # Errors
/// When the graph or incidents cannot be read, or the analysis or SQL fails to run (an
/// unreadable question is an answer, not an error).
pub async fn run(
    state: &AskState,
    question: &str,
    clock: Clock,
    asker: &Asker<'_>,
) -> Result<Answer> {
    // A week of the graph's names: read on a blocking thread, not on the async workers.
    let api = state.api.clone();
    let known = tokio::task::spawn_blocking(move || known_names(&api, clock.now))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let reading = match parse(question, clock, &known) {
        Parse::Read(r) => r,
        Parse::Clarify { message, options } => {
            let mut a = Answer::new(
                question,
                "I need one more thing before I can answer".into(),
                message,
            );
            a.understood = false;
            a.options = options;
            return Ok(a);
        }
        Parse::Unknown { message, nearest } => {
            let mut a = help(
                question,
                match nearest {
                    Some(n) => format!("{message}; the nearest question I know is a {n} question"),
                    None => message.clone(),
                },
            );
            a.understood = false;
            a.interpretation = message;
            return Ok(a);
        }
    };
    let mut answer = match &reading.intent {
        Intent::Help => help(
            question,
            "I answer questions about incidents, causes, changes and dependencies".into(),
        ),
        Intent::Diagnose { .. } => diagnose::diagnose(state, question, &reading, clock).await?,
        Intent::Changes => facts::changes(state, question, &reading, clock)?,
        Intent::Dependents | Intent::Dependencies => {
            facts::graph(state, question, &reading, clock)?
        }
        Intent::Status => facts::status(state, question, &reading, clock)?,
        Intent::ShowIncident { id } => incidents::show_incident(state, question, *id, clock)?,
        Intent::ListIncidents { open_only } => {
            incidents::list_incidents(state, question, *open_only, clock)?
        }
        Intent::Verdict { incident, .. } if asker.read_only => {
            let mut a = Answer::new(
                question,
                format!("I read this as: a verdict on a cause of incident #{incident}"),
                "refused: this asker may not record verdicts (a token needs the admin scope; an MCP agent, the server's --mcp-allow-writes)".into(),
            );
            a.understood = false;
            a
        }
        Intent::Verdict {
            incident,
            cause,
            verdict,
            comment,
        } => {
            incidents::record_verdict(
                state,
                question,
                (*incident, cause, verdict, comment),
                (asker.by, asker.token),
                clock,
            )
            .await?
        }
        Intent::Sql { sql } => facts::run_sql(state, question, sql).await?,
    };
    if !reading.assumptions.is_empty() {
        answer.interpretation = format!(
            "{} ({})",
            answer.interpretation,
            reading.assumptions.join("; ")
        );
    }
    answer.reading = Some(reading);
    Ok(answer)
}

/// `2026-12-07 14:05 UTC` in the asker's zone.
pub(super) fn when(clock: Clock, ns: u64) -> String {
    clock
        .zone
        .timestamp_nanos(ns as i64)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// `between 13:05 and 14:05 UTC (in the last hour)`.
pub(super) fn span(clock: Clock, (start, end): (u64, u64), phrase: Option<&str>) -> String {
    let same_day = clock.zone.timestamp_nanos(start as i64).date_naive()
        == clock.zone.timestamp_nanos(end as i64).date_naive();
    let end_text = if same_day {
        clock
            .zone
            .timestamp_nanos(end as i64)
            .format("%H:%M %Z")
            .to_string()
    } else {
        when(clock, end)
    };
    let said = phrase.map(|p| format!(" (\"{p}\")")).unwrap_or_default();
    format!("between {} and {end_text}{said}", when(clock, start))
}

/// The reading's window, or `default` before now; an incident's window for `during incident N`.
pub(super) fn window_of(
    state: &AskState,
    reading: &Reading,
    clock: Clock,
    default: u64,
) -> Result<(u64, u64)> {
    match &reading.window {
        Some(WindowSpec::Range { start, end }) => Ok((*start, (*end).max(start + 1))),
        Some(WindowSpec::Incident { id }) => {
            let incidents = lock(state)?;
            let i = incidents
                .get(*id)
                .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
            Ok(match &i.analysis {
                Some(a) => (a.window[0], a.window[1]),
                None => (
                    i.onset_unix_nano,
                    i.resolved_unix_nano
                        .unwrap_or(clock.now)
                        .max(i.onset_unix_nano + 1),
                ),
            })
        }
        None => Ok((clock.now.saturating_sub(default), clock.now.max(1))),
    }
}

pub(super) fn lock(
    state: &AskState,
) -> Result<std::sync::MutexGuard<'_, loupe_analysis::Incidents>> {
    state
        .api
        .incidents
        .lock()
        .map_err(|_| ApiError::Internal("incidents lock poisoned".into()))
}

pub(super) fn entity_label(reading: &Reading) -> String {
    reading
        .entity
        .as_ref()
        .map(|k| format!("{} {}", k.kind.replace('_', " "), k.name))
        .unwrap_or_else(|| "the system".into())
}

/// A serde enum's wire name (`open`, `burn_rate`).
pub(super) fn text_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

pub(super) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An answer (as [`Answer`] serializes) as terminal text; links are made absolute on `base`
/// (`http://127.0.0.1:8080`).
pub fn render_text(answer: &Value, base: &str) -> String {
    let text = |k: &str| answer[k].as_str().unwrap_or("").to_owned();
    let list = |k: &str| -> Vec<String> {
        answer[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = format!("{}\n{}\n", text("interpretation"), text("headline"));
    for f in list("facts") {
        out.push_str(&format!("  {f}\n"));
    }
    let options = list("options");
    if !options.is_empty() {
        out.push_str(&format!("choices: {}\n", options.join(", ")));
    }
    let commands = list("commands");
    if !commands.is_empty() {
        out.push_str("suggested (loupe never runs these):\n");
        for c in commands {
            out.push_str(&format!("  {c}\n"));
        }
    }
    for l in answer["links"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}: {}{}\n",
            l["title"].as_str().unwrap_or(""),
            base.trim_end_matches('/'),
            l["path"].as_str().unwrap_or("")
        ));
    }
    out
}
