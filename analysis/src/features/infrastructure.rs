//! Candidates beyond services: databases seen through their callers' client spans, nodes
//! whose pods ran hot together, and network paths whose calls failed where the callee's other
//! callers' did not.

use std::collections::{BTreeMap, HashMap, HashSet};

use loupe_graph::{PodWindow, RedStats, WindowStats};
use loupe_model::semconv::K8S_POD_CPU_LIMIT_UTILIZATION;

use crate::candidate::{Candidate, Feature};
use crate::cause::{CauseKind, EDGE_ARROW};
use crate::config::AnalysisConfig;
use crate::evidence::{self, Evidence};
use crate::history::pick;
use crate::window::queries_by_database;

use CauseKind::{Database as DATABASE, Edge as EDGE, Node as NODE};

/// Fewest pods, of at least two services, on a node for it to be a candidate: a node's evidence
/// is what its pods share, which one or two pods cannot tell from their own faults.
const MIN_NODE_PODS: usize = 3;

/// The candidates beyond services:
///
/// - **databases**, seen through their callers' client spans or, where they sent none, their
///   `db.client.operation.duration` metrics: the shift of the median query duration pooled
///   over callers (as self time; from metrics, only beyond the noise of their points), and
///   bursts of failed queries (as error spans);
/// - **nodes** with [`MIN_NODE_PODS`] pods or more of two services or more: the lower median
///   over its pods of their CPU utilization change (as CPU), and over the services with pods on
///   it (at least [`MIN_NODE_PODS`]) of their self-time shift (as self time). Lower medians, so
///   that one pod's or one service's own fault does not make its node a suspect;
/// - **network paths** (`caller->callee`): failed calls on one `calls` edge, counted only when
///   the callee's other callers saw no such burst and the callee's own spans did not fail as
///   much (each at most `explained_share` of it), so that the failure belongs to the path
///   rather than to the callee (a partition, a network policy). Other callers with fewer than
///   `min_requests` calls (a callee with one caller) count as calm: the path is then a
///   candidate beside the callee, and the callee's own evidence (its own failures) decides
///   between them, unless a pod of the callee stopped answering in the window (`stopped`, see
///   `STOPPED_SERVING_REASONS` in [`super::changes`]): then the calls failed because the callee was down, and
///   the path is no candidate.
///
/// `windows` is (baseline, current, reference).
pub(crate) fn infrastructure(
    windows: (&WindowStats, &WindowStats, Option<&WindowStats>),
    self_time: &HashMap<&str, f64>,
    incoming: (&HashMap<&str, RedStats>, &HashMap<&str, RedStats>),
    stopped: &HashSet<&str>,
    config: &AnalysisConfig,
) -> Vec<((CauseKind, String), Candidate)> {
    let (baseline, current, _) = windows;
    let mut out = databases(windows, config);
    out.extend(nodes(baseline, current, self_time));
    out.extend(network_paths(baseline, current, incoming, stopped, config));
    out
}

/// The databases of `current` as candidates ([`infrastructure`]); `windows` is (baseline,
/// current, reference).
fn databases(
    (baseline, current, reference): (&WindowStats, &WindowStats, Option<&WindowStats>),
    config: &AnalysisConfig,
) -> Vec<((CauseKind, String), Candidate)> {
    let mut out = Vec::new();
    let (now, before) = (queries_by_database(current), queries_by_database(baseline));
    let referenced = reference.map(queries_by_database).unwrap_or_default();
    let empty = RedStats::default();
    for (db, red) in &now {
        let b = before.get(db).unwrap_or(&empty);
        let mut c = Candidate::default();
        if red.points > 0 {
            // From client metrics: each point's mean stands for its calls (a baseline without
            // points gives no shift).
            c.add(
                Feature::SelfTime,
                evidence::query_duration_from_metrics(db, red, b, config.min_requests),
            );
        } else if let Some(base) = pick(
            Some(&b.duration),
            referenced.get(db).map(|r| &r.duration),
            config.min_baseline_samples,
        ) {
            c.add(
                Feature::SelfTime,
                evidence::query_duration(db, &red.duration, base, config.min_gap_samples),
            );
        }
        c.add(Feature::ErrorSpans, evidence::failed_queries(db, red, b));
        out.push(((DATABASE, (*db).to_owned()), c));
    }
    out
}

/// The nodes of `current` with [`MIN_NODE_PODS`] pods or more of two services or more, as
/// candidates ([`infrastructure`]), with the CPU of their pods ([`node_cpu`]) and the self time
/// of their services ([`node_self_time`]).
fn nodes(
    baseline: &WindowStats,
    current: &WindowStats,
    self_time: &HashMap<&str, f64>,
) -> Vec<((CauseKind, String), Candidate)> {
    let mut out = Vec::new();
    let mut nodes: BTreeMap<&str, Vec<&PodWindow>> = BTreeMap::new();
    for p in &current.pods {
        if let Some(n) = &p.node {
            nodes.entry(n.as_str()).or_default().push(p);
        }
    }
    for (node, pods) in nodes {
        let services: std::collections::BTreeSet<_> =
            pods.iter().filter_map(|p| p.service.as_ref()).collect();
        if pods.len() < MIN_NODE_PODS || services.len() < 2 {
            continue;
        }
        let mut c = Candidate::default();
        c.add(
            Feature::Cpu,
            node_cpu(node, &pods, services.len(), baseline),
        );
        let services: Vec<&str> = services.iter().map(|s| s.as_str()).collect();
        c.add(
            Feature::SelfTime,
            node_self_time(node, &services, self_time),
        );
        out.push(((NODE, node.to_owned()), c));
    }
    out
}

/// A node's CPU evidence: the lower median over its `pods` (of `services` services) of their
/// CPU utilization change, the window's peak against the baseline's mean; `None` below
/// [`MIN_NODE_PODS`] pods with figures on both sides.
fn node_cpu(
    node: &str,
    pods: &[&PodWindow],
    services: usize,
    baseline: &WindowStats,
) -> Option<Evidence> {
    let mut cpu: Vec<(f64, f64, f64)> = Vec::new();
    for p in pods {
        let Ok(b) = baseline.pods.binary_search_by(|x| x.name.cmp(&p.name)) else {
            continue;
        };
        let b = &baseline.pods[b];
        let gauges = (
            p.gauges.get(K8S_POD_CPU_LIMIT_UTILIZATION),
            b.gauges.get(K8S_POD_CPU_LIMIT_UTILIZATION),
        );
        if let (Some(n), Some(g)) = gauges {
            if let (Some(before), true) = (g.mean(), n.count > 0) {
                cpu.push((before, n.max, (n.max - before) * 100.0));
            }
        }
    }
    if cpu.len() < MIN_NODE_PODS {
        return None;
    }
    cpu.sort_by(|a, b| a.2.total_cmp(&b.2));
    let (b, n, change) = cpu[(cpu.len() - 1) / 2];
    Some(Evidence::new(
        evidence::EvidenceSignal::Metrics,
        "node_cpu_utilization",
        format!(
            "cpu_utilization of the {} pods on node {node} ({services} services) rose by a \
             median {change:.1} points (the median pod: {:.1}% to {:.1}% at peak)",
            cpu.len(),
            b * 100.0,
            n * 100.0
        ),
        b,
        n,
        change,
    ))
}

/// A node's self-time evidence: the lower median of the self-time shifts of the `services`
/// with pods on it (`self_time`, by service); `None` below [`MIN_NODE_PODS`] services with one.
fn node_self_time(
    node: &str,
    services: &[&str],
    self_time: &HashMap<&str, f64>,
) -> Option<Evidence> {
    let mut shifts: Vec<(f64, &str)> = services
        .iter()
        .filter_map(|s| Some((*self_time.get(s)?, *s)))
        .collect();
    if shifts.len() < MIN_NODE_PODS {
        return None;
    }
    shifts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (change, median_service) = shifts[(shifts.len() - 1) / 2];
    Some(Evidence::new(
        evidence::EvidenceSignal::Traces,
        "node_self_time_p50",
        format!(
            "self time of the {} services with pods on node {node} rose by a median \
             ×{:.2} ({median_service})",
            shifts.len(),
            change.exp()
        ),
        0.0,
        change,
        change,
    ))
}

/// The network paths of `current` whose calls failed where the callee's other callers' did
/// not, as candidates ([`infrastructure`]). `incoming` is the calls into each service,
/// (window, baseline); `stopped` the services a pod of which stopped serving.
fn network_paths(
    baseline: &WindowStats,
    current: &WindowStats,
    incoming: (&HashMap<&str, RedStats>, &HashMap<&str, RedStats>),
    stopped: &HashSet<&str>,
    config: &AnalysisConfig,
) -> Vec<((CauseKind, String), Candidate)> {
    let mut out = Vec::new();
    let empty = RedStats::default();
    // Network paths: the other callers' calls are the callee's incoming totals less this edge's.
    let others_than = |into: &HashMap<&str, RedStats>, edge: &RedStats, target: &str| {
        let total = into.get(target).unwrap_or(&empty);
        RedStats {
            calls: total.calls.saturating_sub(edge.calls),
            errors: total.errors.saturating_sub(edge.errors),
            ..RedStats::default()
        }
    };
    for e in current.edges.iter().filter(|e| e.red.errors > 0) {
        let b = baseline
            .edge(&e.source, &e.target)
            .map_or(&empty, |b| &b.red);
        let what = format!("calls from {} to {}", e.source, e.target);
        let Some(mut ev) = evidence::failures("failed_calls_on_path", &what, &e.red, b) else {
            continue;
        };
        let others = (
            others_than(incoming.0, &e.red, &e.target),
            others_than(incoming.1, b, &e.target),
        );
        // Other callers too few to compare with (a callee with one caller) compare as calm:
        // the callee's own evidence (its failures, a pod that stopped answering) then decides.
        let compared = others.0.calls >= config.min_requests;
        if !compared && stopped.contains(e.target.as_str()) {
            continue;
        }
        let others_change = compared
            .then(|| evidence::error_spans(&e.target, &others.0, &others.1))
            .flatten()
            .map_or(0.0, |x| x.change);
        // The callee's own failures: a path's calls fail without an answer from it.
        let answered = current.service(&e.target).and_then(|s| {
            let b = baseline.service(&e.target).map_or(&empty, |b| &b.red);
            evidence::error_spans(&e.target, &s.red, b)
        });
        let limit = config.explained_share * ev.change;
        if ev.change <= 0.0 || others_change > limit || answered.is_some_and(|a| a.change > limit) {
            continue;
        }
        ev.summary = format!(
            "{} while its other callers' {} calls saw {} failures",
            ev.summary, others.0.calls, others.0.errors
        );
        let label = format!("{}{EDGE_ARROW}{}", e.source, e.target);
        let mut c = Candidate::default();
        c.add(Feature::ErrorSpans, Some(ev));
        out.push(((EDGE, label), c));
    }
    out
}
