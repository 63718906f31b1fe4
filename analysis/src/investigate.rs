//! An analysis of a window of the live graph: the baseline just before it, the history before
//! that, and the changes near it, read from the graph and ranked.

use loupe_graph::{ChangeQuery, KnowledgeGraph};

use crate::analyze::analyze;
use crate::cause::Analysis;
use crate::config::AnalysisConfig;
use crate::error::Result;
use crate::history::History;
use crate::remediation::remediations;
use crate::verdict::Verdicts;

/// How many of the first causes get an onset.
const ONSET_CAUSES: usize = 10;

/// Ranks causes of `[start, end)` in `graph` against `[baseline_start, baseline_end)` (by
/// default the window of equal length just before), the history of
/// `config.history_periods` baseline-length periods before the baseline, and the changes from
/// `config.change_lookback_nanos` before the window to its end; each cause gets its suggested
/// remediations, with commands for where its service runs, and the first [`ONSET_CAUSES`]
/// causes their onset ([`crate::onset`], seconds from `start`); `verdicts`, when given, reweigh
/// the ranking by what people accepted and rejected before.
///
/// # Errors
/// As [`analyze`].
pub fn investigate(
    graph: &KnowledgeGraph,
    (start, end): (u64, u64),
    baseline: Option<(u64, u64)>,
    verdicts: Option<&Verdicts>,
    config: &AnalysisConfig,
) -> Result<Analysis> {
    let (baseline_start, baseline_end) =
        baseline.unwrap_or((start.saturating_sub(end.saturating_sub(start)), start));
    let len = baseline_end.saturating_sub(baseline_start);
    let periods: Vec<_> = (1..=config.history_periods as u64)
        .filter_map(|i| {
            let end = baseline_start.checked_sub((i - 1) * len)?;
            Some(graph.window(end.checked_sub(len)?, end))
        })
        .filter(|w| !w.services.is_empty())
        .collect();
    let history = History::new(periods);
    let changes: Vec<_> = graph
        .changes(&ChangeQuery {
            from: start.saturating_sub(config.change_lookback_nanos),
            to: end,
            service: None,
            known_at: None,
        })
        .into_iter()
        .map(|c| c.change)
        .collect();
    let mut analysis = analyze(
        &graph.window(baseline_start, baseline_end),
        &graph.window(start, end),
        (!history.is_empty()).then_some(&history),
        &changes,
        config,
    )?;
    if let Some(v) = verdicts {
        v.reweigh(&mut analysis.causes);
    }
    // Onsets of the causes people read first (each is two short series reads).
    for cause in analysis.causes.iter_mut().take(ONSET_CAUSES) {
        cause.onset = crate::onset::onset(
            graph,
            cause,
            (baseline_start, baseline_end),
            (start, end),
            start,
        );
    }
    for cause in &mut analysis.causes {
        let service = match cause.entity.kind {
            crate::cause::CauseKind::Service => Some(cause.entity.name.as_str()),
            crate::cause::CauseKind::Change => crate::cause::change_target(&cause.entity.name),
            _ => None,
        };
        let placement = service.and_then(|s| graph.placement(s));
        cause.remediation = remediations(cause, placement.as_ref());
    }
    Ok(analysis)
}
