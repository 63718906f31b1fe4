//! The analysis as a pipeline: candidates gathered feature by feature
//! ([`crate::features`]), normalized ([`crate::normalize`]), propagation accounted for
//! ([`crate::propagation`]), the candidates made causes ([`crate::score`]), change candidates
//! added with the evidence of what they changed ([`crate::features::changes`]), and every cause
//! scored and ranked by the rules and the model ([`crate::score`]). This module only runs the
//! stages in order; each stage lives in its own module.

use std::collections::{BTreeMap, HashMap};

use loupe_graph::{RedSource, RedStats, WindowStats};
use loupe_model::ChangeEvent;

use crate::candidate::{Candidate, Feature};
use crate::cause::{Analysis, CauseKind};
use crate::config::AnalysisConfig;
use crate::error::{Error, Result};
use crate::features::{self, Windows};
use crate::history::History;
use crate::window::{failed_calls, pods_by_service, requests};
use crate::{normalize, propagation, score};

/// Ranks the services of `current` against `baseline`.
///
/// Features per service ([`crate::features`]): self-time shift of its own spans; mean gap
/// shift over all its call edges (a slowed network path shows on every edge of the slowed
/// service, only on one of its neighbours'); bursts of error spans and error log records; a
/// deficit of log records per request; change of pod CPU (peak) and memory (mean)
/// utilization; the log-path shift ([`crate::features::log_paths`]), or for a service that
/// writes no logs the call-path shift ([`crate::features::call_paths`]; a caller's shift right
/// after calling a service with evidence of its own is explained away by propagation); the
/// trace spectrum. Each feature becomes a robust z-score across the candidates of the
/// analysis. Databases, nodes and network paths join the services as candidates
/// ([`crate::features::infrastructure`]), and so does the nearest change to each service or
/// node with evidence ([`crate::features::changes`]).
///
/// Propagation: self time and gaps exclude downstream time by construction; a service's error
/// evidence is multiplied by `explained_factor` when one of its callees shows at least
/// `explained_share` of it (errors that surface in a caller usually originate downstream).
///
/// `history`, when given, is the longer past: pooled, it stands in for the baseline of any
/// service or edge with fewer than `min_baseline_samples` baseline samples (a long quiet
/// period, say); period by period, it gives each service's usual error-log rate, against which
/// the window is compared as well as against the baseline (the larger change counts), so that a
/// fault already active in the baseline still shows.
///
/// # Errors
/// [`Error::EmptyWindow`] when either window is empty.
pub fn analyze(
    baseline: &WindowStats,
    current: &WindowStats,
    history: Option<&History>,
    changes: &[ChangeEvent],
    config: &AnalysisConfig,
) -> Result<Analysis> {
    for (which, w) in [("baseline", baseline), ("analysis", current)] {
        if w.start >= w.end {
            return Err(Error::EmptyWindow {
                which,
                start: w.start,
                end: w.end,
            });
        }
    }
    let w = Windows {
        baseline,
        current,
        history,
        reference: history.map(History::pooled),
    };
    let (incoming_now, incoming_before) = (failed_calls(current), failed_calls(baseline));
    let incoming = (&incoming_now, &incoming_before);
    let mut candidates = service_candidates(&w, incoming, config);
    let metrics_only: Vec<&str> = current
        .services
        .iter()
        .filter(|s| s.red_source == RedSource::Metrics)
        .map(|s| s.name.as_str())
        .collect();
    propagation::discount_callers_latency(
        &mut candidates,
        &metrics_only,
        [baseline, current],
        config,
    );
    features::log_paths::add_log_paths(&mut candidates, &w);
    features::call_paths::add_call_paths(&mut candidates, &w);
    features::latency::add_call_gaps(&mut candidates, &w, config);

    let (keys, mut gathered) = all_candidates(candidates, &w, incoming, changes, config);
    let mut z = normalize::scores(&gathered, &keys);
    let index: HashMap<(CauseKind, &str), usize> = keys
        .iter()
        .enumerate()
        .map(|(i, (kind, name))| ((*kind, name.as_str()), i))
        .collect();
    let undamped = z.clone();
    let mut counter = propagation::explain_away([baseline, current], &keys, &index, &mut z, config);
    propagation::explain_reactions(&gathered, &index, &undamped, &mut z, &mut counter, config);

    let mut causes = score::causes_of(&keys, &mut gathered, &z, &mut counter);
    // Changes near the window are candidates of their own, each with the evidence of the
    // service it changed.
    let mut nearby: Vec<Option<features::changes::Nearby>> = causes.iter().map(|_| None).collect();
    let (mut z, mut undamped) = (z, undamped);
    for (target, cause, near) in
        features::changes::change_candidates(&causes, changes, current.start, current.end, config)
    {
        z.push(z[target]);
        undamped.push(undamped[target]);
        causes.push(cause);
        nearby.push(Some(near));
    }
    Ok(score::rank(
        causes,
        (&z, &undamped),
        &nearby,
        [baseline, current],
        config,
    ))
}

/// Every candidate in one list, named by its key (kind, name): the services (`candidates`),
/// then databases, nodes and network paths ([`features::infrastructure`]).
fn all_candidates(
    candidates: BTreeMap<&str, Candidate>,
    w: &Windows,
    incoming: (&HashMap<&str, RedStats>, &HashMap<&str, RedStats>),
    changes: &[ChangeEvent],
    config: &AnalysisConfig,
) -> (Vec<(CauseKind, String)>, Vec<Candidate>) {
    let current = w.current;
    let mut keys: Vec<(CauseKind, String)> = candidates
        .keys()
        .map(|n| (CauseKind::Service, (*n).to_owned()))
        .collect();
    let self_time: HashMap<&str, f64> = candidates
        .iter()
        .filter_map(|(n, c)| Some((*n, *c.raw.get(&Feature::SelfTime)?)))
        .collect();
    let stopped = features::changes::stopped_serving(changes, current.start, current.end);
    let infra = features::infrastructure::infrastructure(
        (w.baseline, current, w.reference),
        &self_time,
        incoming,
        &stopped,
        config,
    );
    let mut gathered: Vec<Candidate> = candidates.into_values().collect();
    for (key, c) in infra {
        keys.push(key);
        gathered.push(c);
    }
    (keys, gathered)
}

/// Every service of the window as a candidate, with the features read from its own telemetry
/// (in this order: self time, failures, trace spectrum, error logs, log deficit, CPU and
/// memory). `incoming` is the calls and failed calls into each service, (window, baseline).
fn service_candidates<'w>(
    w: &Windows<'w>,
    incoming: (&HashMap<&str, RedStats>, &HashMap<&str, RedStats>),
    config: &AnalysisConfig,
) -> BTreeMap<&'w str, Candidate> {
    let (baseline, current) = (w.baseline, w.current);
    let (requests_now, requests_before) = (requests(current), requests(baseline));
    let (pods_now, pods_before) = (pods_by_service(current), pods_by_service(baseline));
    let mut candidates: BTreeMap<&str, Candidate> = BTreeMap::new();
    for s in &current.services {
        let c = candidates.entry(&s.name).or_default();
        c.add(
            Feature::SelfTime,
            features::latency::self_time(s, w, config),
        );
        c.add(
            Feature::ErrorSpans,
            features::failures::failures(s, baseline, incoming),
        );
        c.add(
            Feature::TraceSpectrum,
            features::trace_spectrum::trace_spectrum(s, w, config),
        );
        c.counter.extend(features::logs::foreign_error_records(s));
        let reqs = (
            requests_now.get(s.name.as_str()).copied().unwrap_or(0),
            requests_before.get(s.name.as_str()).copied().unwrap_or(0),
        );
        c.add(
            Feature::ErrorLogs,
            features::logs::error_logs(s, w, reqs, config),
        );
        c.add(
            Feature::LogDeficit,
            features::logs::log_deficit(s, w, reqs, config),
        );
        let no_pods = Vec::new();
        let now = pods_now.get(s.name.as_str()).unwrap_or(&no_pods);
        let before = pods_before.get(s.name.as_str()).unwrap_or(&no_pods);
        features::resources::add_utilization(c, &s.name, now, before);
    }
    candidates
}

#[cfg(test)]
mod infrastructure_tests;
#[cfg(test)]
mod scenario_tests;
