//! "Show incident N", "list incidents", "accept / reject cause C of incident N".

use loupe_analysis::Judgement;

use super::answer::{lock, text_of, when, Answer};
use super::diagnose::{explain, headline_of};
use super::grammar::or_list;
use super::window::Clock;
use super::AskState;
use crate::error::{ApiError, Result};

pub(super) fn show_incident(
    state: &AskState,
    question: &str,
    id: u64,
    clock: Clock,
) -> Result<Answer> {
    let incidents = lock(state)?;
    let i = incidents
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let mut a = Answer::new(
        question,
        format!("I read this as: show incident #{id}"),
        format!(
            "incident #{id} ({}, {}): {}",
            i.title,
            text_of(&i.status),
            i.analysis
                .as_ref()
                .map(headline_of)
                .unwrap_or_else(|| "not analysed yet".into())
        ),
    );
    a.facts
        .push(format!("onset {}", when(clock, i.onset_unix_nano)));
    for s in &i.symptoms {
        a.facts.push(format!(
            "symptom: {} {} ({})",
            s.service,
            s.objective,
            text_of(&s.detector)
        ));
    }
    if let Some(analysis) = &i.analysis {
        explain(&mut a, analysis);
    }
    a.incident = Some(id);
    a.link(format!("incident #{id}"), format!("/incidents/{id}"));
    a.data = serde_json::to_value(i).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(a)
}

pub(super) fn list_incidents(
    state: &AskState,
    question: &str,
    open_only: bool,
    clock: Clock,
) -> Result<Answer> {
    let incidents = lock(state)?;
    let list: Vec<_> = incidents
        .list()
        .into_iter()
        .filter(|i| !open_only || i.status == loupe_analysis::Status::Open)
        .collect();
    let what = if open_only {
        "open incidents"
    } else {
        "incidents"
    };
    let mut a = Answer::new(
        question,
        format!("I read this as: list the {what}"),
        match list.len() {
            0 => format!("no {what}"),
            1 => format!("1 {}", what.trim_end_matches('s')),
            n => format!("{n} {what}"),
        },
    );
    for i in &list {
        let top = i
            .analysis
            .as_ref()
            .and_then(|x| x.causes.first())
            .map(|c| {
                format!(
                    ": top cause {} ({:.0}%)",
                    c.entity.id(),
                    c.probability * 100.0
                )
            })
            .unwrap_or_default();
        a.facts.push(format!(
            "#{} {} ({}, since {}){top}",
            i.id,
            i.title,
            text_of(&i.status),
            when(clock, i.onset_unix_nano)
        ));
        a.link(
            format!("incident #{}", i.id),
            format!("/incidents/{}", i.id),
        );
    }
    a.data = serde_json::json!({ "incidents": list.iter().map(|i| serde_json::json!({"id": i.id, "title": i.title, "status": i.status})).collect::<Vec<_>>() });
    Ok(a)
}

pub(super) async fn record_verdict(
    state: &AskState,
    question: &str,
    (incident, cause, verdict, comment): (u64, &str, &str, &str),
    (by, token): (&str, Option<&str>),
    clock: Clock,
) -> Result<Answer> {
    // The cause among the incident's ranked causes: its id, its name, or the nearest name.
    let candidates: Vec<(String, String)> = {
        let incidents = lock(state)?;
        let i = incidents
            .get(incident)
            .ok_or_else(|| ApiError::NotFound(format!("no incident {incident}")))?;
        i.analysis
            .as_ref()
            .map(|a| {
                a.causes
                    .iter()
                    .map(|c| (c.entity.id(), c.entity.name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let typed = super::resolve::key(cause);
    let mut scored: Vec<(f64, &(String, String))> = candidates
        .iter()
        .map(|c| {
            let s = [&c.0, &c.1]
                .iter()
                .map(|n| {
                    let k = super::resolve::key(n);
                    if k == typed {
                        1.0
                    } else {
                        strsim::jaro_winkler(&typed, &k)
                    }
                })
                .fold(0.0, f64::max);
            (s, c)
        })
        .filter(|(s, _)| *s >= 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let ambiguous = scored.len() > 1 && scored[0].0 - scored[1].0 < 0.03 && scored[0].0 < 1.0;
    let Some(&(_, (id, _))) = scored.first().filter(|_| !ambiguous) else {
        let names: Vec<String> = if ambiguous {
            scored.iter().take(3).map(|(_, c)| c.0.clone()).collect()
        } else {
            candidates.iter().take(5).map(|c| c.0.clone()).collect()
        };
        let mut a = Answer::new(
            question,
            format!(
                "\"{cause}\" is not one cause of incident #{incident}: did you mean {}?",
                or_list(&names)
            ),
            format!("which cause of incident #{incident}?"),
        );
        a.understood = false;
        a.options = names;
        return Ok(a);
    };
    let judgement = if verdict == "rejected" {
        Judgement::Rejected
    } else {
        Judgement::Accepted
    };
    let recorded = crate::routes::judge(
        &state.api,
        (incident, id.clone()),
        (judgement, comment.to_owned(), by.to_owned()),
        token.map(str::to_owned),
        clock.now,
    )
    .await?;
    let mut a = Answer::new(
        question,
        format!("I read this as: {verdict} cause {id} of incident #{incident}, by {by}"),
        format!("recorded: {id} {verdict} on incident #{incident}"),
    );
    if !comment.is_empty() {
        a.facts.push(format!("comment: {comment}"));
    }
    a.link(
        format!("incident #{incident}"),
        format!("/incidents/{incident}"),
    );
    a.data = serde_json::to_value(&recorded).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(a)
}
