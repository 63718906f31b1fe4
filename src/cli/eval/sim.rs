//! `loupe eval sim DIR`: scores the ranking on a simulated case set (see
//! `loupe_simulate::cases` for its layout). Each case is loaded into a fresh engine through the
//! receivers' decode path and its change webhooks through the changes endpoint's parsers; its
//! fault window is then investigated as an incident would be (baseline: the fault-free stretch
//! before it; changes: those the graph holds near it), and the labelled root cause's rank is
//! scored.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use loupe_analysis::{investigate, AnalysisConfig};
use loupe_ingest::changes::ChangeSink;
use loupe_simulate::cases::{read_case, read_ground_truth, CaseTelemetry};
use loupe_simulate::GroundTruth;

use super::ablation::SignalSet;
use super::{load, report, CaseResult, EvalReport};
use crate::engine::Engine;

/// Loads a case's telemetry of `signals` and its changes into a fresh in-memory engine.
///
/// # Errors
/// When a request or a change is refused.
pub async fn load_case(
    telemetry: CaseTelemetry,
    signals: SignalSet,
) -> anyhow::Result<Arc<Engine>> {
    let engine = load(signals.filter(telemetry.requests)).await?;
    for notice in telemetry.notices {
        let mut headers = HeaderMap::new();
        for (k, v) in &notice.headers {
            headers.insert(
                HeaderName::try_from(k.as_str())?,
                HeaderValue::try_from(v.as_str())?,
            );
        }
        let changes =
            loupe_ingest::changes::parse(&headers, None, None, &notice.body, notice.at_unix_nano)
                .map_err(|e| anyhow::anyhow!("a change webhook was refused: {e}"))?;
        engine
            .record_changes(changes)
            .map_err(|e| anyhow::anyhow!("a change was not recorded: {e}"))?;
    }
    Ok(engine)
}

/// Ranks one case's causes with `config`'s model (every candidate kept); returns the result for the report.
///
/// # Errors
/// When the case's files cannot be read or loaded.
pub async fn score_case(
    dir: &Path,
    truth: &GroundTruth,
    config: &AnalysisConfig,
    signals: SignalSet,
) -> anyhow::Result<CaseResult> {
    let telemetry = read_case(dir, &truth.case_id)?;
    let engine = load_case(telemetry, signals).await?;
    let graph = engine.graph();
    let g = graph.read().unwrap_or_else(|p| p.into_inner());
    let started = std::time::Instant::now();
    let analysis = investigate(
        &g,
        (truth.fault_start_unix_ns, truth.fault_end_unix_ns),
        Some((truth.baseline_start_unix_ns, truth.fault_start_unix_ns)),
        None,
        &AnalysisConfig {
            max_causes: usize::MAX,
            ..config.clone()
        },
    )
    .with_context(|| format!("analysing {}", truth.case_id))?;
    let analysis_seconds = started.elapsed().as_secs_f64();
    let baseline = std::time::Duration::from_secs(
        truth
            .fault_start_unix_ns
            .saturating_sub(truth.baseline_start_unix_ns)
            / 1_000_000_000,
    );
    Ok(CaseResult {
        analysis_seconds,
        condition: Some(format!(
            "traffic {}, baseline {}",
            truth.traffic.as_str(),
            humantime::format_duration(baseline)
        )),
        ..CaseResult::new(
            (
                truth.case_id.clone(),
                truth.system.clone(),
                truth.fault_type.to_string(),
            ),
            &truth.root_cause_service,
            truth.root_cause_edge.as_ref(),
            &analysis.causes,
        )
    })
}

/// Scores every case of the set in `dir` (or those in `only`), reporting progress through
/// `progress(done, total, case_id)`.
///
/// # Errors
/// When the set cannot be read, or no case is selected.
pub async fn run(
    dir: &Path,
    only: &[String],
    config: &AnalysisConfig,
    signals: SignalSet,
    mut progress: impl FnMut(usize, usize, &str),
) -> anyhow::Result<EvalReport> {
    let truths = read_ground_truth(dir)?;
    let selected: Vec<&GroundTruth> = truths
        .iter()
        .filter(|t| only.is_empty() || only.contains(&t.case_id))
        .collect();
    anyhow::ensure!(!selected.is_empty(), "no case selected (ids: {only:?})");
    let mut results = Vec::with_capacity(selected.len());
    for (i, truth) in selected.iter().enumerate() {
        progress(i, selected.len(), &truth.case_id);
        results.push(score_case(dir, truth, config, signals).await?);
    }
    progress(selected.len(), selected.len(), "");
    Ok(EvalReport {
        signals,
        ..report(results, &config.ranker.source)
    })
}
