//! Latency features: a service's self-time shift per operation (spans), the request-duration
//! shift of a metrics-only service, and the gap shift of its call edges.

use std::collections::BTreeMap;

use loupe_graph::{DurationSketch, RedSource, RedStats, ServiceWindow, WindowStats};

use super::Windows;
use crate::candidate::{Candidate, Feature};
use crate::config::AnalysisConfig;
use crate::evidence::{self, Evidence};
use crate::history::pick;

/// A service's self-time shift: the mean of its operations' median shifts, weighted by their
/// current span counts. Per operation, because a service's spans often form clusters (a thin
/// server span and a heavy handler span per request) whose pooled median jumps from one cluster
/// to the other on a one-span change in their mix.
fn self_time_shift<'a>(
    service: &str,
    baseline: &'a WindowStats,
    current: &WindowStats,
    reference: Option<&'a WindowStats>,
    config: &AnalysisConfig,
) -> Option<Evidence> {
    let (mut weighted, mut weight, mut samples_now, mut samples_before) = (0.0, 0.0, 0, 0);
    let mut strongest: Option<Evidence> = None;
    for op in current.operations_of(service) {
        let now = &op.red.self_time;
        let find = |w: &'a WindowStats| w.operation(service, &op.name).map(|o| &o.red.self_time);
        let Some(before) = pick(
            find(baseline),
            reference.and_then(find),
            config.min_baseline_samples,
        ) else {
            continue;
        };
        let label = format!("{service} {}", op.name);
        let Some(e) = evidence::self_time(&label, now, before, config.min_gap_samples) else {
            continue;
        };
        samples_now += now.count();
        samples_before += before.count();
        weighted += e.change * now.count() as f64;
        weight += now.count() as f64;
        if strongest.as_ref().is_none_or(|s| e.change > s.change) {
            strongest = Some(e);
        }
    }
    let enough = samples_now.min(samples_before) >= config.min_self_time_samples;
    if !enough || weight == 0.0 {
        return None;
    }
    strongest.map(|e| Evidence {
        change: weighted / weight,
        ..e
    })
}

/// A metrics-only service's shift of its median request duration (see
/// [`evidence::server_duration`]), against the baseline, or the history where the baseline has
/// too few requests.
fn server_duration_shift(
    s: &ServiceWindow,
    baseline: &WindowStats,
    reference: Option<&WindowStats>,
    config: &AnalysisConfig,
) -> Option<Evidence> {
    fn find<'w>(w: &'w WindowStats, name: &str) -> Option<&'w RedStats> {
        w.service(name)
            .filter(|b| b.red_source == RedSource::Metrics)
            .map(|b| &b.red)
    }
    let (base, history) = (
        find(baseline, &s.name),
        reference.and_then(|r| find(r, &s.name)),
    );
    let duration = pick(
        base.map(|b| &b.duration),
        history.map(|r| &r.duration),
        config.min_baseline_samples,
    )?;
    // The figures whose durations `pick` chose (their metric points count too).
    let before = [base, history]
        .into_iter()
        .flatten()
        .find(|r| std::ptr::eq(&r.duration, duration))?;
    evidence::server_duration(&s.name, &s.red, before, config.min_requests)
}

/// The gap distribution of a `calls` edge.
fn gaps_of<'a>(w: &'a WindowStats, source: &str, target: &str) -> Option<&'a DurationSketch> {
    w.edge(source, target).map(|e| &e.red.self_time)
}

/// Service `s`'s self-time feature: the self-time shift of its spans' operations
/// ([`self_time_shift`]), or for a metrics-only service the shift of its median request
/// duration ([`server_duration_shift`]).
pub(crate) fn self_time(
    s: &ServiceWindow,
    w: &Windows,
    config: &AnalysisConfig,
) -> Option<Evidence> {
    let from_metrics = s.red_source == RedSource::Metrics;
    self_time_shift(&s.name, w.baseline, w.current, w.reference, config).or_else(|| {
        from_metrics.then(|| server_duration_shift(s, w.baseline, w.reference, config))?
    })
}

/// Adds the call-gap feature: each `calls` edge's gap shift; a service's feature is the mean
/// over all its edges (a slowed network path shows on every edge of the slowed service, only on
/// one of its neighbours'), and the edges that slowed are its evidence.
pub(crate) fn add_call_gaps<'w>(
    candidates: &mut BTreeMap<&'w str, Candidate>,
    w: &Windows<'w>,
    config: &AnalysisConfig,
) {
    let mut gaps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for e in &w.current.edges {
        let base_edge = gaps_of(w.baseline, &e.source, &e.target);
        let reference_edge = w.reference.and_then(|r| gaps_of(r, &e.source, &e.target));
        let Some(base) = pick(base_edge, reference_edge, config.min_baseline_samples) else {
            continue;
        };
        let Some(ev) = evidence::call_gap(
            &e.source,
            &e.target,
            &e.red.self_time,
            base,
            config.min_gap_samples,
        ) else {
            continue;
        };
        for end in [e.source.as_str(), e.target.as_str()] {
            gaps.entry(end).or_default().push(ev.change);
            // Every edge counts in the mean; only the edges that slowed are evidence to show.
            if let (Some(c), true) = (candidates.get_mut(end), ev.change > 0.0) {
                c.evidence.push((Feature::CallGap, ev.clone()));
            }
        }
    }
    for (name, shifts) in &gaps {
        if let Some(c) = candidates.get_mut(name) {
            c.raw.insert(
                Feature::CallGap,
                shifts.iter().sum::<f64>() / shifts.len() as f64,
            );
        }
    }
}
