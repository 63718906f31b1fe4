//! "What changed", "what depends on X", "what does X call", "how is X doing" and `sql:`:
//! changes, the blast radius, a focused graph, RED against the window before, rows.

use loupe_graph::{ChangeQuery, GraphQuery};
use serde_json::Value;

use super::answer::{entity_label, span, url_escape, when, window_of, Answer, MINUTE};
use super::grammar::{Intent, Reading};
use super::window::Clock;
use super::AskState;
use crate::error::{ApiError, Result};

/// Window of a change list when the question names none.
const CHANGES_WINDOW: u64 = 60 * MINUTE;
/// Window of a status or graph question when the question names none.
const NOW_WINDOW: u64 = 5 * MINUTE;

pub(super) fn changes(
    state: &AskState,
    question: &str,
    reading: &Reading,
    clock: Clock,
) -> Result<Answer> {
    let (from, to) = window_of(state, reading, clock, CHANGES_WINDOW)?;
    let service = reading
        .entity
        .as_ref()
        .filter(|k| k.kind == "service")
        .map(|k| k.name.clone());
    let list = state.api.read(|g| {
        g.changes(&ChangeQuery {
            from,
            to,
            service: service.clone(),
            known_at: None,
        })
    })?;
    let who = service
        .as_deref()
        .map(|s| format!(" in {s}"))
        .unwrap_or_default();
    let mut a = Answer::new(
        question,
        format!(
            "I read this as: what changed{who} {}",
            span(clock, (from, to), reading.window_phrase.as_deref())
        ),
        match list.len() {
            0 => format!("nothing changed{who} in that window"),
            1 => format!("1 change{who}"),
            n => format!("{n} changes{who}"),
        },
    );
    for c in &list {
        let e = &c.change;
        let versions = match (&e.version_from, &e.version_to) {
            (Some(f), Some(t)) => format!(" {f} → {t}"),
            (None, Some(t)) => format!(" → {t}"),
            _ => String::new(),
        };
        let author = e
            .author
            .as_deref()
            .map(|x| format!(" by {x}"))
            .unwrap_or_default();
        a.facts.push(format!(
            "{} {}{versions}{author} ({}): {}",
            when(clock, e.time_unix_nano),
            e.service.as_deref().unwrap_or("-"),
            e.source,
            e.summary
        ));
    }
    let svc = service.map(|s| format!("&service={s}")).unwrap_or_default();
    a.link(
        "the changes of that window",
        format!("/changes?from={from}&to={to}{svc}"),
    );
    a.data = serde_json::json!({ "changes": list });
    Ok(a)
}

pub(super) fn graph(
    state: &AskState,
    question: &str,
    reading: &Reading,
    clock: Clock,
) -> Result<Answer> {
    let Some(entity) = &reading.entity else {
        return Err(ApiError::Internal(
            "a graph question without an entity".into(),
        ));
    };
    let (start, end) = window_of(state, reading, clock, NOW_WINDOW)?;
    let dependents = matches!(reading.intent, Intent::Dependents);
    let mut a;
    if dependents {
        let radius = state
            .api
            .read(|g| g.blast_radius(&entity.id, start, end))??;
        a = Answer::new(
            question,
            format!(
                "I read this as: what depends on {} {}",
                entity.id,
                span(clock, (start, end), reading.window_phrase.as_deref())
            ),
            match radius.dependents.len() {
                0 => format!("nothing depends on {} in that window", entity.name),
                n => format!("{n} entities depend on {}", entity.name),
            },
        );
        for d in &radius.dependents {
            a.facts.push(format!(
                "{} ({} hop{}, about {:.0}% of its traffic goes through {})",
                d.id,
                d.distance,
                if d.distance == 1 { "" } else { "s" },
                d.traffic_share * 100.0,
                entity.name
            ));
        }
        a.data = serde_json::to_value(&radius).map_err(|e| ApiError::Internal(e.to_string()))?;
    } else {
        let snapshot = state.api.read(|g| {
            g.snapshot(&GraphQuery {
                start,
                end,
                known_at: None,
                focus: Some(entity.id.clone()),
                depth: 1,
                structure_only: false,
            })
        })??;
        let out: Vec<&loupe_graph::EdgeView> = snapshot
            .edges
            .iter()
            .filter(|e| {
                e.source == entity.id
                    && matches!(e.kind, "calls" | "queries" | "publishes" | "consumes")
            })
            .collect();
        a = Answer::new(
            question,
            format!(
                "I read this as: what {} calls {}",
                entity.id,
                span(clock, (start, end), reading.window_phrase.as_deref())
            ),
            match out.len() {
                0 => format!("{} calls nothing in that window", entity.name),
                n => format!("{} calls {n} dependencies", entity.name),
            },
        );
        for e in &out {
            let v = serde_json::to_value(e).unwrap_or(Value::Null);
            let calls = v["calls"]
                .as_u64()
                .map(|c| format!(", {c} calls"))
                .unwrap_or_default();
            let errors = v["error_ratio"]
                .as_f64()
                .filter(|r| *r > 0.0)
                .map(|r| format!(", {:.1}% errors", r * 100.0))
                .unwrap_or_default();
            a.facts
                .push(format!("{} {}{calls}{errors}", e.kind, e.target));
        }
        a.data = serde_json::to_value(&snapshot).map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    a.link(
        format!("the map around {}", entity.name),
        format!(
            "/map?at={end}&window={}s&service={}&depth=2",
            (end - start) / 1_000_000_000,
            if entity.kind == "service" {
                &entity.name
            } else {
                &entity.id
            }
        ),
    );
    Ok(a)
}

pub(super) fn status(
    state: &AskState,
    question: &str,
    reading: &Reading,
    clock: Clock,
) -> Result<Answer> {
    let (start, end) = window_of(state, reading, clock, NOW_WINDOW)?;
    let len = end - start;
    // The baseline: the window of equal length just before, as an analysis takes it.
    let (b_start, b_end) = (start.saturating_sub(len), start);
    let (now, before) = state
        .api
        .read(|g| (g.services(start, end), g.services(b_start, b_end)))?;
    let name = reading
        .entity
        .as_ref()
        .filter(|k| k.kind == "service")
        .map(|k| k.name.as_str());
    let shown: Vec<_> = now
        .iter()
        .filter(|s| name.is_none_or(|n| s.name == n))
        .collect();
    let rate = |calls: u64, nanos: u64| calls as f64 / (nanos as f64 / 1e9);
    let mut a = Answer::new(
        question,
        format!(
            "I read this as: how {} is doing {}, against the {} before",
            entity_label(reading),
            span(clock, (start, end), reading.window_phrase.as_deref()),
            humantime::format_duration(std::time::Duration::from_nanos(b_end - b_start))
        ),
        String::new(),
    );
    let mut worst: Option<(f64, String)> = None;
    for s in &shown {
        let base = before.iter().find(|b| b.name == s.name);
        let p90 = |x: Option<f64>| {
            x.map(|v| format!("{:.0} ms", v * 1e3))
                .unwrap_or_else(|| "-".into())
        };
        let (b_rate, b_err, b_p90) = base.map_or((0.0, 0.0, None), |b| {
            (
                rate(b.red.calls, b_end - b_start),
                b.red.error_ratio,
                b.red.duration_p90_seconds,
            )
        });
        a.facts.push(format!(
            "{}: {:.1} req/s (baseline {:.1}), {:.2}% errors (baseline {:.2}%), p90 {} (baseline {})",
            s.name,
            rate(s.red.calls, len),
            b_rate,
            s.red.error_ratio * 100.0,
            b_err * 100.0,
            p90(s.red.duration_p90_seconds),
            p90(b_p90)
        ));
        let excess = s.red.error_ratio - b_err;
        if worst.as_ref().is_none_or(|(w, _)| excess > *w) {
            worst = Some((excess, s.name.clone()));
        }
    }
    a.headline = match (name, shown.first()) {
        (Some(n), None) => format!("{n} served no requests in that window"),
        (Some(n), Some(s)) => format!(
            "{n}: {:.2}% errors, p90 {}",
            s.red.error_ratio * 100.0,
            s.red
                .duration_p90_seconds
                .map(|v| format!("{:.0} ms", v * 1e3))
                .unwrap_or_else(|| "-".into())
        ),
        (None, _) => match worst {
            Some((w, svc)) if w > 0.01 => format!(
                "{} services; {svc} has the most new errors (+{:.1} points)",
                shown.len(),
                w * 100.0
            ),
            _ => format!(
                "{} services; none has more errors than its baseline",
                shown.len()
            ),
        },
    };
    if let Some(k) = &reading.entity {
        a.link(
            format!("{} over time", k.name),
            format!("/entities/{}", url_escape(&k.id)),
        );
    }
    a.data = serde_json::json!({ "services": shown, "baseline": before });
    Ok(a)
}

pub(super) async fn run_sql(state: &AskState, question: &str, sql: &str) -> Result<Answer> {
    let out = crate::sql::run(&state.sql, sql, Some(100), None).await?;
    let rows = crate::sql::json_rows(&out.batches)?;
    let mut a = Answer::new(
        question,
        format!("I read this as: the SQL query {sql}"),
        format!(
            "{} row{}{}",
            out.rows,
            if out.rows == 1 { "" } else { "s" },
            if out.truncated { " (truncated)" } else { "" }
        ),
    );
    a.facts = rows.iter().take(20).map(Value::to_string).collect();
    a.link("the query page", format!("/query?sql={}", url_escape(sql)));
    a.data = serde_json::json!({ "rows": rows, "truncated": out.truncated });
    Ok(a)
}
