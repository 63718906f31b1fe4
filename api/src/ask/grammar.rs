//! Questions into typed readings, deterministically: normalize → find the time window →
//! find incident references → resolve the entity → classify the intent by its trigger words
//! (`shared/research/chatops.md` §3.3). A question it cannot read gets the help and the
//! nearest intent; a name it cannot place gets "did you mean …".

use serde::Serialize;

use super::resolve::{self, Known, Resolved};
use super::window::{self, Clock, WindowSpec};
use super::words::{STOP, VOCABULARY};

/// What a question asks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    /// Why is X slow / failing / down; what is wrong.
    Diagnose {
        /// `slow`, `failing`, `down`, when said.
        #[serde(skip_serializing_if = "Option::is_none")]
        symptom: Option<&'static str>,
    },
    /// What changed (in X).
    Changes,
    /// What depends on X, its blast radius.
    Dependents,
    /// What X calls.
    Dependencies,
    /// How X is doing: RED against its baseline.
    Status,
    /// One incident.
    ShowIncident {
        /// Its id.
        id: u64,
    },
    /// The incidents.
    ListIncidents {
        /// Only those still open.
        open_only: bool,
    },
    /// Accept or reject a cause of an incident.
    Verdict {
        /// The incident.
        incident: u64,
        /// The cause as typed (matched against the incident's causes when run).
        cause: String,
        /// `accepted` or `rejected`.
        verdict: &'static str,
        /// What follows "because".
        comment: String,
    },
    /// Read-only SQL.
    Sql {
        /// The statement.
        sql: String,
    },
    /// What loupe can answer.
    Help,
}

impl Intent {
    /// The intent's name, as the JSON's `intent` field says it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Diagnose { .. } => "diagnose",
            Self::Changes => "changes",
            Self::Dependents => "dependents",
            Self::Dependencies => "dependencies",
            Self::Status => "status",
            Self::ShowIncident { .. } => "show_incident",
            Self::ListIncidents { .. } => "list_incidents",
            Self::Verdict { .. } => "verdict",
            Self::Sql { .. } => "sql",
            Self::Help => "help",
        }
    }
}

/// How a question was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// What it asks.
    #[serde(flatten)]
    pub intent: Intent,
    /// The entity it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<Known>,
    /// The window it names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// The words that named the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_phrase: Option<String>,
    /// What was assumed: misspellings read as words it knows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assumptions: Vec<String>,
}

/// The outcome of reading a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Parse {
    /// Read.
    Read(Reading),
    /// A name is ambiguous or unknown, or a piece is missing: the question back and the choices.
    Clarify {
        /// The question back.
        message: String,
        /// Entity ids (or other choices) to pick from.
        options: Vec<String>,
    },
    /// Not a question it can read; the nearest intent, when one is near.
    Unknown {
        /// Why.
        message: String,
        /// The nearest intent's name.
        nearest: Option<&'static str>,
    },
}

/// Lowercased words of a question, Slack markup stripped, edge punctuation trimmed (`:`, `-`,
/// `.`, `#`, `/` kept inside words so times and names survive).
pub fn tokens(question: &str) -> Vec<String> {
    let mut text = question.to_owned();
    // Slack: <@U123>, <#C123|name>, <http://x|label> → label or nothing.
    while let (Some(open), Some(close)) = (text.find('<'), text.find('>')) {
        if close < open {
            break;
        }
        let inner = &text[open + 1..close];
        let label = inner
            .split_once('|')
            .map(|(_, l)| l.to_owned())
            .unwrap_or_default();
        text.replace_range(open..=close, &label);
    }
    let text = text
        .replace(['\u{2019}', '\u{2018}'], "'")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| {
                matches!(c, '?' | '!' | ',' | ';' | '"' | '\'' | '(' | ')' | '`')
            })
            .trim_end_matches('.')
            .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Reads `question` against `clock` and the names the graph knows.
pub fn parse(question: &str, clock: Clock, known: &[Known]) -> Parse {
    let trimmed = question.trim();
    let lower = trimmed.to_lowercase();
    if let Some(sql) = lower
        .strip_prefix("sql:")
        .map(|_| trimmed.get(4..).unwrap_or("").trim())
    {
        return Parse::Read(bare(Intent::Sql {
            sql: sql.to_owned(),
        }));
    }
    // SQL typed bare: SELECT …, or a WITH … AS ( … ) query (not "with cart, …").
    if lower.starts_with("select ") || lower.starts_with("with ") && lower.contains(" as (") {
        return Parse::Read(bare(Intent::Sql {
            sql: trimmed.to_owned(),
        }));
    }
    let mut words = tokens(trimmed);
    let assumptions = correct(&mut words, known);
    if words.is_empty()
        || matches!(words.as_slice(), [w] if w == "help" || w == "?")
        || words.join(" ").starts_with("what can you")
    {
        return Parse::Read(bare(Intent::Help));
    }
    // Taken words become None.
    let mut free: Vec<Option<&str>> = words.iter().map(|w| Some(w.as_str())).collect();
    let has = |w: &str| words.iter().any(|x| x == w);
    let has_any = |ws: &[&str]| words.iter().any(|x| ws.contains(&x.as_str()));

    // The window.
    let found = match window::find(&words, clock) {
        Ok(f) => f,
        Err(message) => {
            return Parse::Clarify {
                message,
                options: Vec::new(),
            }
        }
    };
    if let Some(f) = &found {
        for slot in &mut free[f.tokens.0..f.tokens.1] {
            *slot = None;
        }
    }
    // An incident reference (outside the window's words).
    let word_refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut incident = None;
    for i in 0..words.len() {
        if free[i].is_none() {
            continue;
        }
        if let Some((id, end)) = window::incident_ref(&word_refs, i) {
            incident = Some(id);
            for slot in &mut free[i..end] {
                *slot = None;
            }
            break;
        }
    }
    let (window, window_phrase) = match found {
        Some(f) => (Some(f.window), Some(f.phrase)),
        None => (None, None),
    };
    let read = |intent: Intent, entity: Option<Known>| {
        Parse::Read(Reading {
            intent,
            entity,
            window: window.clone(),
            window_phrase: window_phrase.clone(),
            assumptions: assumptions.clone(),
        })
    };

    // Verdicts: accept/reject cause C of incident N [because …].
    let accept = has_any(&["accept", "confirm", "approve", "ack"]);
    let reject = has_any(&["reject", "dismiss", "deny"]);
    if accept || reject {
        let Some(incident) = incident else {
            return Parse::Clarify {
                message: "which incident? say it as \"accept cause payment of incident 3\"".into(),
                options: Vec::new(),
            };
        };
        let because = words.iter().position(|w| w == "because" || w == "since");
        let comment = because
            .map(|b| words[b + 1..].join(" "))
            .unwrap_or_default();
        let verbs = [
            "accept", "confirm", "approve", "ack", "reject", "dismiss", "deny",
        ];
        let cause: Vec<&str> = words[..because.unwrap_or(words.len())]
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                free[*i].is_some()
                    && !verbs.contains(&w.as_str())
                    && !matches!(
                        w.as_str(),
                        "cause" | "the" | "of" | "on" | "for" | "in" | "as"
                    )
            })
            .map(|(_, w)| w.as_str())
            .collect();
        if cause.is_empty() {
            return Parse::Clarify {
                message: format!("which cause of incident {incident}? say it as \"reject cause payment of incident {incident}\""),
                options: Vec::new(),
            };
        }
        return read(
            Intent::Verdict {
                incident,
                cause: cause.join(" "),
                verdict: if reject { "rejected" } else { "accepted" },
                comment,
            },
            None,
        );
    }

    // The entity, among the words left that are not grammar.
    let candidates: Vec<Option<&str>> = free
        .iter()
        .map(|w| w.filter(|w| !STOP.contains(w)))
        .collect();
    let mut entity_start = None;
    let entity = match resolve::find(&candidates, known) {
        Some(Resolved::One(k, (start, _))) => {
            entity_start = Some(start);
            Some(k)
        }
        Some(Resolved::Ambiguous(choices, _)) => {
            let names: Vec<String> = choices.iter().map(|k| k.name.clone()).collect();
            return Parse::Clarify {
                message: format!("did you mean {}?", or_list(&names)),
                options: choices.into_iter().map(|k| k.id).collect(),
            };
        }
        None => None,
    };
    // A leftover word that looks like a name but is no known name: ask, do not guess.
    let unknown_word = || {
        candidates
            .iter()
            .flatten()
            .find(|w| w.len() >= 3 && w.chars().any(|c| c.is_ascii_alphabetic()))
            .map(|w| w.to_string())
    };

    let symptom = if has_any(&[
        "slow", "slower", "latency", "laggy", "lag", "timeouts", "timeout", "timing",
    ]) {
        Some("slow")
    } else if has_any(&[
        "failing", "fails", "failed", "fail", "errors", "error", "erroring", "5xx", "500s",
        "broken", "failures", "failure",
    ]) {
        Some("failing")
    } else if has("down") {
        Some("down")
    } else {
        None
    };
    let joined = format!(" {} ", words.join(" "));
    // "what calls payment", "which services call payment": the callers (the entity after the
    // verb); "what does checkout call": its callees.
    let calls_into = words
        .iter()
        .position(|w| w == "calls" || w == "call")
        .zip(entity_start)
        .is_some_and(|(c, e)| c < e);
    let intent = if incident.is_some() && !has_any(&["changed", "changes"]) {
        Some(Intent::ShowIncident {
            id: incident.unwrap_or_default(),
        })
    } else if has_any(&[
        "changed",
        "changes",
        "change",
        "deploy",
        "deploys",
        "deployed",
        "deployments",
        "rollout",
        "rollouts",
        "release",
        "releases",
        "released",
    ]) || joined.contains(" what's new ")
        || joined.contains(" what is new ")
    {
        Some(Intent::Changes)
    } else if has_any(&[
        "blast",
        "impact",
        "impacted",
        "affected",
        "dependents",
        "callers",
        "downstream",
    ]) || joined.contains(" depends on ")
        || joined.contains(" depend on ") && !joined.contains(" does ") && !joined.contains(" do ")
        || joined.contains(" who calls ")
        || calls_into && !joined.contains(" does ")
        || joined.contains(" who uses ")
        || joined.contains(" uses ")
    {
        // "what does checkout depend on": its dependencies, handled below.
        if joined.contains(" does ") && joined.contains(" depend on ") {
            Some(Intent::Dependencies)
        } else {
            Some(Intent::Dependents)
        }
    } else if has_any(&["dependencies", "upstream"])
        || joined.contains(" does ") && (has_any(&["call", "depend", "use", "talk", "reach"]))
        || has("calls") && entity.is_some()
    {
        Some(Intent::Dependencies)
    } else if has("why")
        || symptom.is_some()
        || has_any(&[
            "diagnose",
            "investigate",
            "wrong",
            "problem",
            "problems",
            "issue",
            "issues",
            "happening",
        ])
        || joined.contains(" root cause ")
    {
        Some(Intent::Diagnose { symptom })
    } else if has_any(&["incidents", "firing", "alerts", "alerting"]) {
        Some(Intent::ListIncidents {
            open_only: has_any(&["open", "firing", "active", "ongoing", "current", "alerting"]),
        })
    } else if has_any(&[
        "status", "health", "healthy", "doing", "ok", "okay", "fine", "up", "red", "state",
    ]) || joined.starts_with(" how is ")
        || joined.starts_with(" how's ")
        || joined.starts_with(" is ")
    {
        Some(Intent::Status)
    } else if entity.is_some() {
        // A bare name: how it is doing.
        Some(Intent::Status)
    } else {
        None
    };
    let needs_entity = matches!(
        intent,
        Some(Intent::Dependents | Intent::Dependencies | Intent::Status)
    );
    if entity.is_none() {
        if let Some(word) = unknown_word() {
            // With an intent, the word is surely meant as a name: offer what is near. Without
            // one, only what is very near (else it is no question of ours).
            let near = resolve::nearest(&word, known, 3, if intent.is_some() { 0.7 } else { 0.88 });
            if intent.is_some() || !near.is_empty() {
                let names: Vec<String> = near.iter().map(|k| k.name.clone()).collect();
                return Parse::Clarify {
                    message: if names.is_empty() {
                        format!("I know no service, database, pod or node named \"{word}\"")
                    } else {
                        format!(
                            "I know no service, database, pod or node named \"{word}\": did you mean {}?",
                            or_list(&names)
                        )
                    },
                    options: near.into_iter().map(|k| k.id).collect(),
                };
            }
        }
    }
    match intent {
        Some(i) if needs_entity && entity.is_none() && !matches!(i, Intent::Status) => {
            Parse::Clarify {
                message: format!("which service? say it as \"{}\"", example(&i)),
                options: Vec::new(),
            }
        }
        Some(i) => read(i, entity),
        None => Parse::Unknown {
            message: "I could not read that question".into(),
            nearest: nearest_intent(&words),
        },
    }
}

fn bare(intent: Intent) -> Reading {
    Reading {
        intent,
        entity: None,
        window: None,
        window_phrase: None,
        assumptions: Vec::new(),
    }
}

/// Replaces each word that is no grammar word and no known name, but within a typo of a
/// grammar word (Jaro–Winkler ≥ 0.9, or one edit for words of five letters or more), by that
/// word; returns what it assumed.
fn correct(words: &mut [String], known: &[Known]) -> Vec<String> {
    let mut assumed = Vec::new();
    for w in words.iter_mut() {
        if w.len() < 4
            || STOP.contains(&w.as_str())
            || VOCABULARY.contains(&w.as_str())
            || !w.chars().all(|c| c.is_ascii_alphabetic())
            || known
                .iter()
                .any(|k| resolve::key(&k.name) == resolve::key(w))
        {
            continue;
        }
        let near = VOCABULARY.iter().find(|v| {
            strsim::jaro_winkler(w, v) >= 0.9
                || (w.len() >= 5 && strsim::damerau_levenshtein(w, v) <= 1)
        });
        if let Some(v) = near {
            assumed.push(format!("read \"{w}\" as \"{v}\""));
            *w = (*v).to_owned();
        }
    }
    assumed
}

fn example(intent: &Intent) -> &'static str {
    match intent {
        Intent::Dependents => "what depends on payment",
        Intent::Dependencies => "what does checkout call",
        _ => "how is checkout doing",
    }
}

/// "a", "a or b", "a, b or c".
pub fn or_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The intent whose trigger words the question's words come closest to (misspellings such as
/// "chnaged"), when any comes close.
fn nearest_intent(words: &[String]) -> Option<&'static str> {
    const TRIGGERS: &[(&str, &str)] = &[
        ("why", "diagnose"),
        ("slow", "diagnose"),
        ("failing", "diagnose"),
        ("wrong", "diagnose"),
        ("changed", "changes"),
        ("deployed", "changes"),
        ("depends", "dependents"),
        ("blast", "dependents"),
        ("calls", "dependencies"),
        ("status", "status"),
        ("healthy", "status"),
        ("incidents", "list_incidents"),
        ("incident", "show_incident"),
        ("accept", "verdict"),
        ("reject", "verdict"),
    ];
    let mut best: Option<(f64, &'static str)> = None;
    for w in words {
        for (t, intent) in TRIGGERS {
            let s = strsim::jaro_winkler(w, t);
            if s >= 0.85 && best.is_none_or(|(b, _)| s > b) {
                best = Some((s, intent));
            }
        }
    }
    best.map(|(_, i)| i)
}
