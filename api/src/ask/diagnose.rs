//! "Why is X slow": the open incident that concerns X, or an analysis of the window, as
//! ranked causes with evidence and the top cause's remediation commands.

use loupe_analysis::{investigate, Analysis};

use super::answer::{entity_label, lock, span, window_of, Answer, MINUTE};
use super::grammar::Reading;
use super::window::Clock;
use super::AskState;
use crate::error::{ApiError, Result};

/// Window of a diagnosis when the question names none and no incident is open.
const DIAGNOSE_WINDOW: u64 = 15 * MINUTE;
/// Causes shown with their evidence.
const CAUSES_SHOWN: usize = 3;

/// The causes of an analysis as facts and commands.
pub(super) fn explain(answer: &mut Answer, analysis: &Analysis) {
    if !analysis.confident {
        answer.facts.push(
            "no confident cause: no candidate clears the confidence bar; the best guesses follow"
                .into(),
        );
    }
    for cause in analysis.causes.iter().take(CAUSES_SHOWN) {
        answer.causes.push(super::answer::CauseRef {
            rank: cause.rank,
            id: cause.entity.id(),
            probability: cause.probability,
        });
        let change = cause
            .change
            .as_ref()
            .map(|c| format!(" after {}", c.summary))
            .unwrap_or_default();
        answer.facts.push(format!(
            "#{} {} ({:.0}%){change}",
            cause.rank,
            cause.entity.id(),
            cause.probability * 100.0
        ));
        for h in cause.hypotheses.iter().take(1) {
            answer.facts.push(format!("   {}", h.sentence));
        }
        for e in cause.evidence.iter().take(3) {
            answer.facts.push(format!("   evidence: {}", e.summary));
        }
        for c in cause.counter_evidence.iter().take(1) {
            answer.facts.push(format!("   counter-evidence: {c}"));
        }
    }
    if let Some(top) = analysis.causes.first() {
        answer.commands = top
            .remediation
            .iter()
            .filter_map(|r| r.command.as_ref().map(|c| format!("{c}    # {}", r.action)))
            .take(3)
            .collect();
    }
}

pub(super) fn headline_of(analysis: &Analysis) -> String {
    match analysis.causes.first() {
        None => "no candidate cause in that window".into(),
        Some(top) if analysis.confident => format!(
            "the likely cause is {} ({:.0}%)",
            top.entity.id(),
            top.probability * 100.0
        ),
        Some(top) => format!(
            "no confident cause; the best guess is {} ({:.0}%)",
            top.entity.id(),
            top.probability * 100.0
        ),
    }
}

pub(super) async fn diagnose(
    state: &AskState,
    question: &str,
    reading: &Reading,
    clock: Clock,
) -> Result<Answer> {
    let who = entity_label(reading);
    // No window said: the open incident that concerns the entity (or any), if one is open.
    if reading.window.is_none() {
        let incidents = lock(state)?;
        let open = incidents.list().into_iter().find(|i| {
            i.status != loupe_analysis::Status::Resolved
                && i.analysis.is_some()
                && reading.entity.as_ref().is_none_or(|k| {
                    i.symptoms.iter().any(|s| s.service == k.name)
                        || i.analysis.as_ref().is_some_and(|a| {
                            a.causes
                                .iter()
                                .take(5)
                                .any(|c| c.entity.id() == k.id || c.entity.name == k.name)
                        })
                })
        });
        if let (Some(i), Some(analysis)) = (open, open.and_then(|i| i.analysis.as_ref())) {
            let mut a = Answer::new(
                question,
                format!(
                    "I read this as: what is wrong with {who}: open incident #{} ({}) covers it",
                    i.id, i.title
                ),
                format!(
                    "incident #{} ({}): {}",
                    i.id,
                    i.title,
                    headline_of(analysis)
                ),
            );
            explain(&mut a, analysis);
            a.incident = Some(i.id);
            a.link(
                format!("incident #{}", i.id),
                format!("/incidents/{}", i.id),
            );
            a.data = serde_json::to_value(i).map_err(|e| ApiError::Internal(e.to_string()))?;
            return Ok(a);
        }
    }
    let (start, end) = window_of(state, reading, clock, DIAGNOSE_WINDOW)?;
    let worker = state.api.clone();
    // The graph's read lock first, then the incidents' mutex: the ticker's order.
    let analysis = tokio::task::spawn_blocking(move || {
        worker.read(|g| {
            let incidents = worker
                .incidents
                .lock()
                .map_err(|_| ApiError::Internal("incidents lock poisoned".into()))?;
            investigate(
                g,
                (start, end),
                None,
                Some(&incidents.verdicts),
                &worker.analysis,
            )
            .map_err(ApiError::from)
        })?
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut a = Answer::new(
        question,
        format!(
            "I read this as: why {who} misbehaves, {}, against the window before it",
            span(clock, (start, end), reading.window_phrase.as_deref())
        ),
        headline_of(&analysis),
    );
    explain(&mut a, &analysis);
    a.link(
        "the map of that window",
        format!("/map?at={end}&window={}s", (end - start) / 1_000_000_000),
    );
    a.data = serde_json::to_value(&analysis).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(a)
}
