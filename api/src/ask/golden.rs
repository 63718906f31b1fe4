//! The grammar's golden readings: every line of `api/testdata/ask.txt`, a question and what it
//! must be read as, against a fixed now and zone and a fixed set of names.

use super::grammar::{parse, Intent, Parse};
use super::resolve::Known;
use super::window::{Clock, WindowSpec};
use chrono::TimeZone;

/// The names the golden questions use.
fn known() -> Vec<Known> {
    let mut out: Vec<Known> = [
        "checkout",
        "cart",
        "payment",
        "frontend",
        "frontend-proxy",
        "product-catalog",
        "recommendation",
        "currency",
        "shipping",
        "email",
        "ad",
        "quote",
        "fraud-detection",
        "accounting",
        "ts-travel-service",
        "ts-travel2-service",
    ]
    .iter()
    .map(|n| Known {
        id: format!("service:{n}"),
        kind: "service".into(),
        name: (*n).into(),
    })
    .collect();
    for (kind, name) in [
        ("database", "payment-db"),
        ("database", "postgresql/orders"),
        ("database", "redis/valkey-cart"),
        ("node", "worker-1"),
        ("node", "worker-2"),
        ("messaging_destination", "kafka/orders"),
    ] {
        out.push(Known {
            id: format!("{kind}:{name}"),
            kind: kind.into(),
            name: name.into(),
        });
    }
    // A service in a `service.namespace` is known by its full and its short name.
    for name in ["shop/warehouse", "warehouse"] {
        out.push(Known {
            id: "service:shop/warehouse".into(),
            kind: "service".into(),
            name: name.into(),
        });
    }
    out.push(Known {
        id: "pod:otel-demo/cart-7d9f8-abcde@4f6a".into(),
        kind: "pod".into(),
        name: "cart-7d9f8-abcde".into(),
    });
    out
}

fn minute(ns: u64) -> String {
    chrono::Utc
        .timestamp_nanos(ns as i64)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// What a parse says, as the data file's keys.
fn describe(parse: &Parse) -> std::collections::BTreeMap<&'static str, String> {
    let mut m = std::collections::BTreeMap::new();
    match parse {
        Parse::Clarify { options, .. } => {
            m.insert("intent", "clarify".into());
            m.insert("options", options.join(","));
        }
        Parse::Unknown { nearest, .. } => {
            m.insert("intent", "unknown".into());
            m.insert("nearest", nearest.unwrap_or("-").into());
        }
        Parse::Read(r) => {
            m.insert("intent", r.intent.name().into());
            m.insert(
                "entity",
                r.entity.as_ref().map_or("-".into(), |k| k.id.clone()),
            );
            m.insert(
                "window",
                match &r.window {
                    None => "-".into(),
                    Some(WindowSpec::Range { start, end }) => {
                        format!("{}..{}", minute(*start), minute(*end))
                    }
                    Some(WindowSpec::Incident { id }) => format!("incident:{id}"),
                },
            );
            match &r.intent {
                Intent::Diagnose { symptom } => {
                    m.insert("symptom", symptom.unwrap_or("-").into());
                }
                Intent::ShowIncident { id } => {
                    m.insert("id", id.to_string());
                }
                Intent::ListIncidents { open_only } => {
                    m.insert("open_only", open_only.to_string());
                }
                Intent::Verdict {
                    incident,
                    cause,
                    verdict,
                    comment,
                } => {
                    m.insert("id", incident.to_string());
                    m.insert("cause", cause.clone());
                    m.insert("verdict", (*verdict).into());
                    m.insert("comment", comment.clone());
                }
                _ => {}
            }
        }
    }
    m
}

/// Every line of `testdata/ask.txt`: the question read as the line says.
#[test]
fn golden_questions_are_read_as_written() {
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 12, 7, 14, 30, 0)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as u64;
    let known = known();
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in include_str!("../../testdata/ask.txt").lines() {
        if line.trim().is_empty() || line.starts_with("# ") || line.trim() == "#" {
            continue;
        }
        let (question, want) = line
            .split_once("=>")
            .expect("a line is question => reading");
        let question = question.trim_end();
        let question = question.strip_prefix(' ').unwrap_or(question);
        let (zone, question) = match question.strip_prefix("[tz=") {
            Some(rest) => {
                let (z, q) = rest.split_once("] ").expect("[tz=Zone] question");
                (z.parse::<chrono_tz::Tz>().expect("a zone"), q)
            }
            None => (chrono_tz::Tz::UTC, question),
        };
        let got = describe(&parse(question, Clock { now, zone }, &known));
        // key=value pairs; a value runs to the next " key=".
        let want = want.trim();
        let mut pairs = Vec::new();
        let mut rest = want;
        while let Some((key, after)) = rest.split_once('=') {
            let next = after
                .match_indices(' ')
                .find(|(i, _)| {
                    let tail = &after[i + 1..];
                    tail.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                })
                .map_or(after.len(), |(i, _)| i);
            pairs.push((key.trim(), after[..next].trim()));
            rest = &after[next..];
        }
        for (key, value) in pairs {
            let got_value = got.get(key).map(String::as_str).unwrap_or("-");
            if got_value != value {
                failures.push(format!(
                    "{question:?}: {key} = {got_value:?}, want {value:?} (read as {got:?})"
                ));
            }
        }
        checked += 1;
    }
    assert!(checked >= 80, "{checked} questions");
    assert!(
        failures.is_empty(),
        "{} of {checked} misread:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
