//! Ranking: evidence on every signal for each candidate (services, the databases they query, the
//! nodes their pods run on, the network paths between them, the changes made to services and
//! nodes shortly before), each feature turned into a robust z-score across the candidates of the
//! analysis, propagation accounted for ("explained away"), the correlation rules applied, and
//! the candidates scored and ranked by the model ([`crate::ranker`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use loupe_graph::{
    DurationSketch, GaugeStats, PodWindow, RedSource, RedStats, ServiceWindow, WindowStats,
};
use loupe_model::semconv::{K8S_POD_CPU_LIMIT_UTILIZATION, K8S_POD_MEMORY_LIMIT_UTILIZATION};
use loupe_model::{ChangeEvent, ChangeKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::evidence::{self, Evidence, EvidenceSignal};
use crate::ranker::{Inputs, Ranker, CHANGE_WEIGHT, CHANGE_X_EVIDENCE, KIND, N_INPUTS, RULES};
use crate::rules::{ChangeFacts, Facts, Hypothesis};

/// Bounds and constants of the ranking, and the model that ranks.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisConfig {
    /// Fewest self-time samples on each side for a self-time shift to count.
    pub min_self_time_samples: u64,
    /// Fewest gap samples on each side for an edge's gap shift to count.
    pub min_gap_samples: u64,
    /// Fewest requests on each side for a log deficit to count.
    pub min_requests: u64,
    /// Below this many baseline samples a service or edge is compared with the reference
    /// window instead, when one is given.
    pub min_baseline_samples: u64,
    /// A service's error evidence is explained away when a callee's is at least this share of
    /// it.
    pub explained_share: f64,
    /// Factor applied to explained-away error evidence.
    pub explained_factor: f64,
    /// Most causes returned.
    pub max_causes: usize,
    /// Periods of the baseline's length, back to back before it, that a server analysing its
    /// own graph takes as the [`History`] (12 five-minute periods: the hour before).
    pub history_periods: usize,
    /// How long before the window a change still counts, nanoseconds (default 30 min).
    pub change_lookback_nanos: u64,
    /// Half-life of a change's weight with its distance before the window, nanoseconds (default
    /// 10 min): a deployment 10 minutes before counts half as much as one at the start.
    pub change_half_life_nanos: u64,
    /// Below this probability for the top cause, the analysis says "no confident cause" and
    /// lists its best guesses (default 0.5).
    pub min_confidence: f64,
    /// The rules and the model (default: the shipped ones).
    #[serde(skip)]
    pub ranker: Arc<Ranker>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            min_self_time_samples: 50,
            min_gap_samples: 5,
            min_requests: 5,
            min_baseline_samples: 20,
            explained_share: 0.5,
            explained_factor: 0.3,
            max_causes: 10,
            history_periods: 12,
            change_lookback_nanos: 30 * 60 * 1_000_000_000,
            change_half_life_nanos: 10 * 60 * 1_000_000_000,
            min_confidence: 0.5,
            ranker: Ranker::shipped(),
        }
    }
}

/// What kind of entity a cause is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// A service (`service.name`).
    Service,
    /// A database, named `<db.system.name>/<db.namespace>` as its callers' client spans give it.
    Database,
    /// A node (`k8s.node.name`).
    Node,
    /// A network path between two services, named `caller->callee` (see [`path_ends`]).
    Edge,
    /// A change to a service shortly before or during the window (a deployment, a flag flip, a
    /// configuration change, a Kubernetes event), or a Kubernetes event about a node, named
    /// `<service or node>:<change kind>@<time>`
    /// (`checkout:deployment@2026-11-21T14:02:00Z`, the time in RFC 3339 to the second; see
    /// [`change_target`]).
    Change,
}

impl CauseKind {
    /// The lowercase name used in ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Database => "database",
            Self::Node => "node",
            Self::Edge => "edge",
            Self::Change => "change",
        }
    }
}

impl std::fmt::Display for CauseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a cause is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    /// The kind.
    pub kind: CauseKind,
    /// The entity's name.
    pub name: String,
}

impl EntityRef {
    /// The cause's id, `<kind>:<name>` (`service:cart`, `edge:checkout->cart`), as verdicts and
    /// the API name it.
    pub fn id(&self) -> String {
        format!("{}:{}", self.kind, self.name)
    }
}

/// Between the caller and the callee in a network path's name (`checkout->cart`).
pub const EDGE_ARROW: &str = "->";

/// The caller and callee of a network path's name, `caller->callee`.
pub fn path_ends(name: &str) -> Option<(&str, &str)> {
    name.split_once(EDGE_ARROW)
}

/// The name of a change candidate: `<service or node>:<change kind>@<time>`, the time in RFC
/// 3339 to the second (UTC).
pub fn change_name(service: &str, change: &ChangeEvent) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(change.time_unix_nano);
    format!(
        "{service}:{}@{}",
        change.kind.as_str(),
        humantime::format_rfc3339_seconds(at)
    )
}

/// The service (or node) a change candidate's name (`<service or node>:<change kind>@<time>`,
/// [`change_name`]) says was changed; `None` when the name is not of that form.
pub fn change_target(name: &str) -> Option<&str> {
    let (head, _time) = name.rsplit_once('@')?;
    let (service, kind) = head.rsplit_once(':')?;
    (!service.is_empty() && !kind.is_empty()).then_some(service)
}

/// One ranked candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// 1-based rank.
    pub rank: usize,
    /// The candidate.
    pub entity: EntityRef,
    /// The model's score `w · x` (larger is more likely).
    pub score: f64,
    /// Probability that it is the root cause: the softmax of the scores over every candidate
    /// of the analysis (see [`crate::ranker`]).
    pub probability: f64,
    /// The evidence, strongest first.
    pub evidence: Vec<Evidence>,
    /// The correlation rules that held for it, with their sentences ([`crate::rules`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hypotheses: Vec<Hypothesis>,
    /// Counter-evidence: why some of its evidence counts less, each a sentence naming the
    /// candidate that accounts for it (a callee that fails or whose code path changed, the
    /// network path its failed calls fail on, a database whose queries slowed, a node whose
    /// pods ran hot, a slower callee of a metrics-only service). A change candidate carries
    /// its service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counter_evidence: Vec<String>,
    /// When its own signal left its baseline, in seconds from the incident's symptom onset (from
    /// the window's start for an analysis opened by hand; see [`crate::onset`]); filled by
    /// analyses of the live graph for the first causes with such a signal, `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<crate::onset::Onset>,
    /// The model's inputs for it ([`crate::ranker::input_names`]), kept for training.
    #[serde(skip)]
    pub inputs: Inputs,
    /// For a change candidate, the change (`None` for every other kind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeEvent>,
    /// A later deployment of the service, before the window's end, back to the version that
    /// `change` replaced: the change was already rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<ChangeEvent>,
    /// Suggested actions (never run by loupe); filled when the analysis knows where the service
    /// runs (see [`crate::investigate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remediation: Vec<crate::remediation::Remediation>,
}

/// The result of one analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Analysed window `[start, end)`, unix nanoseconds.
    pub window: [u64; 2],
    /// Baseline window `[start, end)`, unix nanoseconds.
    pub baseline: [u64; 2],
    /// Ranked causes, best first.
    pub causes: Vec<Cause>,
    /// Whether the top cause's probability reaches [`AnalysisConfig::min_confidence`]; when
    /// not, the causes are best guesses ("no confident cause").
    pub confident: bool,
    /// The model that ranked (`shipped`, or a file).
    pub model: String,
}

/// The longer past of an analysis: periods before the baseline believed normal (earlier
/// windows of the same length, say, or a known fault-free period), each kept apart so that
/// usual rates can be taken as medians over them, robust to a minority of periods a fault
/// touched, and pooled for series too thin to compare period by period.
#[derive(Debug, Clone, Default)]
pub struct History {
    periods: Vec<WindowStats>,
    /// Requests entering each service, per period (computed once).
    requests: Vec<HashMap<String, u64>>,
    pooled: WindowStats,
}

impl History {
    /// History from its periods, in any order.
    pub fn new(periods: Vec<WindowStats>) -> Self {
        let mut pooled = WindowStats::default();
        periods.iter().for_each(|p| pooled.merge_from(p));
        let requests = periods
            .iter()
            .map(|p| {
                requests(p)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            })
            .collect();
        Self {
            periods,
            requests,
            pooled,
        }
    }

    /// Whether there is no period.
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

    /// The median over the periods of `rate(period, requests into it)` where it gives one, and
    /// how many periods gave one; `None` below [`MIN_HISTORY_PERIODS`].
    fn usual(
        &self,
        rate: impl Fn(&WindowStats, &HashMap<String, u64>) -> Option<f64>,
    ) -> Option<(f64, usize)> {
        let mut rates: Vec<f64> = self
            .periods
            .iter()
            .zip(&self.requests)
            .filter_map(|(p, r)| rate(p, r))
            .collect();
        (rates.len() >= MIN_HISTORY_PERIODS).then(|| (median(&mut rates), rates.len()))
    }

    /// The usual log records per call of `service`'s operation `operation`, error records left
    /// out, over the periods with at least `min_calls` calls of it, and the dispersion of the
    /// periods' record counts about it ([`dispersion`]).
    fn usual_operation_log_rate(
        &self,
        service: &str,
        operation: &str,
        min_calls: u64,
    ) -> Option<(f64, usize, f64)> {
        // Each period's (records, calls), read once: the rate is their median ratio.
        let counts: Vec<(f64, f64)> = self
            .periods
            .iter()
            .filter_map(|p| {
                let o = p.operation(service, operation)?;
                (o.red.calls >= min_calls).then(|| (o.logs.routine() as f64, o.red.calls as f64))
            })
            .collect();
        if counts.len() < MIN_HISTORY_PERIODS {
            return None;
        }
        let rate = median(&mut counts.iter().map(|(r, c)| r / c).collect::<Vec<_>>());
        Some((rate, counts.len(), dispersion(&counts, rate)))
    }

    /// `service`'s usual error log records per request, over the periods with at least
    /// `min_requests` requests entering it.
    fn usual_error_log_rate(&self, service: &str, min_requests: u64) -> Option<(f64, usize)> {
        self.usual(|p, requests| {
            let reqs = requests.get(service).copied().unwrap_or(0);
            (reqs >= min_requests).then(|| {
                let errors = p.service(service).map_or(0, |s| s.logs.own_error_records());
                errors as f64 / reqs as f64
            })
        })
    }
}

/// Robust quasi-Poisson dispersion of counts `(records, calls)` about `rate` records per call:
/// the median squared Pearson residual `(records − rate·calls)² / (rate·calls)` over the
/// periods, divided by 0.455 (the median of χ² with one degree of freedom), at least 1. Log
/// records come in bundles (a call writes several, or a loop writes many), so their counts
/// vary more than Poisson counts would; a deficit is measured in units of this spread
/// (McCullagh & Nelder, "Generalized Linear Models", 2nd ed., §4.5, the quasi-likelihood
/// dispersion; the median for robustness to a period a fault touched). 1 when no period has an
/// expected count. With few periods the median is biased low (the period nearest the median
/// rate has a residual near 0), so the estimate errs towards Poisson, the stricter score.
fn dispersion(counts: &[(f64, f64)], rate: f64) -> f64 {
    let mut residuals: Vec<f64> = counts
        .iter()
        .filter(|(_, calls)| rate * calls > 0.0)
        .map(|(records, calls)| (records - rate * calls).powi(2) / (rate * calls))
        .collect();
    if residuals.is_empty() {
        return 1.0;
    }
    (median(&mut residuals) / 0.455).max(1.0)
}

/// Fewest history periods for a usual rate: the median of three withstands one period a fault
/// touched; of one or two, it does not.
const MIN_HISTORY_PERIODS: usize = 3;

/// Median of `v` (reordered); 0 when empty.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The features, each normalized on its own scale. The floor bounds the robust spread from
/// below, in the feature's unit, so that a feature every service shares nearly equally does not
/// turn noise into large scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Feature {
    SelfTime = 0,
    CallGap = 1,
    ErrorSpans = 2,
    ErrorLogs = 3,
    LogDeficit = 4,
    Cpu = 5,
    Memory = 6,
    LogPaths = 7,
    TraceSpectrum = 8,
}

/// Number of [`Feature`]s.
const FEATURES: usize = Feature::ALL.len();

impl Feature {
    const ALL: [Feature; 9] = [
        Self::SelfTime,
        Self::CallGap,
        Self::ErrorSpans,
        Self::ErrorLogs,
        Self::LogDeficit,
        Self::Cpu,
        Self::Memory,
        Self::LogPaths,
        Self::TraceSpectrum,
    ];

    /// Floor of the spread: log ratios 0.1 (≈10%), z-scores 1, utilization 5 percentage points.
    fn floor(self) -> f64 {
        match self {
            Self::SelfTime | Self::CallGap | Self::TraceSpectrum => 0.1,
            Self::ErrorSpans | Self::ErrorLogs | Self::LogDeficit | Self::LogPaths => 1.0,
            Self::Cpu | Self::Memory => 5.0,
        }
    }
}

/// Scores of `values` in units of their robust spread across services: each value (a change,
/// whose "no change" is 0) divided by the MAD about the median, scaled by 1.4826 to estimate σ
/// under normality (Rousseeuw & Croux, "Alternatives to the Median Absolute Deviation", JASA
/// 1993), the spread floored; over the values present, negatives clipped to 0, a missing value
/// scoring 0. Changes are not centred on the median: when most services of a small system
/// change together (a failure that propagates everywhere), the change still counts, and
/// propagation is left to the explained-away rule.
///
/// The spread is taken over the values where `scale_from` is true (the services), else, when no
/// service has the feature or the services' MAD is 0 (two services with the same count), over
/// every value present. Nodes, databases and network paths are read from the services' own
/// telemetry (a path's failed calls are its callee's failed calls, a node's CPU its pods'), so
/// counting them in the spread would count one failure twice, and where few candidates show a
/// feature one such copy can move the spread tenfold. A MAD of 0 would leave only the floor,
/// turning raw counts (thousands of failed spans) into scores.
fn robust_z(values: &[Option<f64>], scale_from: &[bool], floor: f64) -> Vec<f64> {
    let from_services: Vec<f64> = values
        .iter()
        .zip(scale_from)
        .filter_map(|(v, s)| v.filter(|_| *s))
        .collect();
    let mad = match median_abs_deviation(from_services) {
        Some(mad) if mad > 0.0 => mad,
        _ => median_abs_deviation(values.iter().flatten().copied().collect()).unwrap_or(0.0),
    };
    let spread = (1.4826 * mad).max(floor);
    values
        .iter()
        .map(|x| x.map_or(0.0, |x| (x / spread).max(0.0)))
        .collect()
}

/// Median absolute deviation about the median of `values`; `None` when there are none.
fn median_abs_deviation(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let m = median(&mut values);
    Some(median(
        &mut values.iter().map(|x| (x - m).abs()).collect::<Vec<_>>(),
    ))
}

/// One service's evidence while it is being gathered.
#[derive(Default)]
struct Candidate {
    raw: BTreeMap<Feature, f64>,
    evidence: Vec<(Feature, Evidence)>,
    /// Counter-evidence sentences ([`Cause::counter_evidence`]).
    counter: Vec<String>,
    /// The service called right before the transition of its call-path shift, when that is
    /// its code-path evidence (see `explain_reactions`).
    after_callee: Option<String>,
}

impl Candidate {
    fn add(&mut self, feature: Feature, e: Option<Evidence>) {
        if let Some(e) = e {
            self.raw.insert(feature, e.change);
            self.evidence.push((feature, e));
        }
    }
}

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
    evidence::server_duration(&s.name, &s.red, before, config.min_self_time_samples)
}

/// Who calls whom in a window (its `calls` edges), for questions about what lies downstream.
pub(crate) struct Callees<'a>(HashMap<&'a str, Vec<&'a str>>);

impl<'a> Callees<'a> {
    /// The callees of each service in `w`.
    pub(crate) fn of(w: &'a WindowStats) -> Self {
        let mut callees: HashMap<&str, Vec<&str>> = HashMap::new();
        for e in &w.edges {
            callees
                .entry(e.source.as_str())
                .or_default()
                .push(e.target.as_str());
        }
        Self(callees)
    }

    /// Whether some service downstream of `from` (a callee, a callee's callee, …; `from`
    /// itself excluded) satisfies `test`.
    pub(crate) fn any_downstream(&self, from: &str, test: impl Fn(&str) -> bool) -> bool {
        self.find_downstream(from, test).is_some()
    }

    /// The first service downstream of `from` (a callee, a callee's callee, …, depth first in
    /// edge order; `from` itself excluded) that satisfies `test`.
    pub(crate) fn find_downstream(
        &self,
        from: &str,
        test: impl Fn(&str) -> bool,
    ) -> Option<&'a str> {
        let mut seen: Vec<&str> = vec![from];
        let mut frontier: Vec<&'a str> = self.0.get(from).cloned().unwrap_or_default();
        frontier.reverse();
        while let Some(d) = frontier.pop() {
            if seen.contains(&d) {
                continue;
            }
            if test(d) {
                return Some(d);
            }
            seen.push(d);
            frontier.extend(self.0.get(d).map_or(&[][..], Vec::as_slice).iter().rev());
        }
        None
    }
}

/// Discounts the request-duration shift of metrics-only services by their callees': a
/// request's duration includes its calls, so a caller slows with its callee. A service whose
/// shift some service downstream of it (along the window's `calls` edges) matches to at least
/// `explained_share` has its shift multiplied by `explained_factor`, as failures are (see
/// `explain_away`). Spans need no such step: self time leaves the callees out.
fn discount_callers_latency(
    candidates: &mut BTreeMap<&str, Candidate>,
    metrics_only: &[&str],
    current: &WindowStats,
    config: &AnalysisConfig,
) {
    let callees = Callees::of(current);
    let shift = |c: &BTreeMap<&str, Candidate>, name: &str| {
        c.get(name)
            .and_then(|c| c.raw.get(&Feature::SelfTime).copied())
            .unwrap_or(0.0)
    };
    // Decided, and the figures quoted, before any discount.
    let explained: Vec<(&str, f64, &str, f64)> = metrics_only
        .iter()
        .copied()
        .filter_map(|name| {
            let own = shift(candidates, name);
            let by = callees.find_downstream(name, |d| {
                shift(candidates, d) >= config.explained_share * own
            });
            by.filter(|_| own > 0.0)
                .map(|d| (name, own, d, shift(candidates, d)))
        })
        .collect();
    for (name, own, by, theirs) in explained {
        if let Some(c) = candidates.get_mut(name) {
            if let Some(x) = c.raw.get_mut(&Feature::SelfTime) {
                *x *= config.explained_factor;
            }
            c.counter.push(format!(
                "its request duration (×{:.2}) is explained away by service {by} downstream \
                 of it (×{:.2}), and counts ×{}: a request waits on its calls",
                own.exp(),
                theirs.exp(),
                config.explained_factor
            ));
        }
    }
}

/// The strongest deficit of log records per call among a service's operations (records matched
/// to operations by their span ids; routine records only, [`loupe_graph::LogStats::routine`]). Per operation, because a change in the mix of requests
/// changes a service's records per request without any code path changing; `None` when no
/// operation has records and enough calls in both windows.
fn operation_log_deficit(
    service: &str,
    baseline: &WindowStats,
    current: &WindowStats,
    history: Option<&History>,
    config: &AnalysisConfig,
) -> Option<Evidence> {
    current
        .operations_of(service)
        .iter()
        .flat_map(|now| {
            let label = format!("{service} {}", now.name);
            let usual = history
                .and_then(|h| h.usual_operation_log_rate(service, &now.name, config.min_requests));
            // The dispersion is the operation's way of logging: it serves both comparisons.
            let dispersion = usual.map_or(1.0, |(_, _, d)| d);
            let against_baseline = baseline.operation(service, &now.name).and_then(|before| {
                evidence::log_deficit(
                    &label,
                    (now.logs.routine(), before.logs.routine()),
                    (now.red.calls, before.red.calls),
                    config.min_requests,
                    dispersion,
                )
            });
            let against_history = usual.and_then(|usual| {
                evidence::log_deficit_against_history(
                    &label,
                    (now.logs.routine(), now.red.calls),
                    usual,
                    config.min_requests,
                )
            });
            [against_baseline, against_history]
        })
        .flatten()
        .max_by(|a, b| a.change.total_cmp(&b.change))
}

/// The baseline figures for one series: the baseline's when it has enough samples, else the
/// reference's.
fn pick<'a>(
    base: Option<&'a DurationSketch>,
    reference: Option<&'a DurationSketch>,
    min: u64,
) -> Option<&'a DurationSketch> {
    match (base, reference) {
        (Some(b), Some(r)) if b.count() < min && r.count() > b.count() => Some(r),
        (Some(b), _) => Some(b),
        (None, r) => r,
    }
}

fn merged_gauge(pods: &[&PodWindow], metric: &str) -> Option<GaugeStats> {
    let mut out = GaugeStats::default();
    pods.iter()
        .filter_map(|p| p.gauges.get(metric))
        .for_each(|g| out.merge(g));
    (out.count > 0).then_some(out)
}

/// The gap distribution of a `calls` edge.
fn gaps_of<'a>(w: &'a WindowStats, source: &str, target: &str) -> Option<&'a DurationSketch> {
    w.edge(source, target).map(|e| &e.red.self_time)
}

/// Each service's pods.
fn pods_by_service(w: &WindowStats) -> HashMap<&str, Vec<&PodWindow>> {
    let mut out: HashMap<&str, Vec<&PodWindow>> = HashMap::new();
    for p in &w.pods {
        if let Some(service) = &p.service {
            out.entry(service.as_str()).or_default().push(p);
        }
    }
    out
}

/// Requests entering each service: its root spans plus calls on its incoming edges.
fn requests(w: &WindowStats) -> HashMap<&str, u64> {
    let mut out: HashMap<&str, u64> = w
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.red.root_calls))
        .collect();
    for e in &w.edges {
        *out.entry(e.target.as_str()).or_default() += e.red.calls;
    }
    out
}

/// Calls and failed calls into each service over its incoming `calls` edges (the other
/// figures left empty): its failed-calls evidence, and the totals a network path's callee's
/// other callers are taken from.
fn failed_calls(w: &WindowStats) -> HashMap<&str, RedStats> {
    let mut out: HashMap<&str, RedStats> = HashMap::new();
    for e in &w.edges {
        let red = out.entry(e.target.as_str()).or_default();
        red.calls += e.red.calls;
        red.errors += e.red.errors;
    }
    out
}

/// The window's observed time in seconds (its nominal length when nothing was observed).
fn seconds(w: &WindowStats) -> f64 {
    let nanos = if w.observed_nanos > 0 {
        w.observed_nanos
    } else {
        w.end - w.start
    };
    nanos as f64 / 1e9
}

/// Ranks the services of `current` against `baseline`.
///
/// Features per service: self-time shift of its own spans; mean gap shift over all its call
/// edges (a slowed network path shows on every edge of the slowed service, only on one of its
/// neighbours'); bursts of error spans and error log records; a deficit of log records per
/// request; change of pod CPU (peak) and memory (mean) utilization; the log-path shift
/// ([`crate::log_paths`]), or for a service that writes no logs the call-path shift
/// ([`crate::call_paths`]; a caller's shift right after calling a service with evidence of its
/// own is explained away, `explain_reactions`); the trace spectrum
/// ([`evidence::trace_spectrum`]). Each feature
/// becomes a robust z-score across the candidates of the analysis. Databases, nodes and network
/// paths join the services as candidates (`infrastructure`), and so does the nearest change to
/// each service or node with evidence (`change_candidates`).
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
    let reference = history.map(|h| &h.pooled);
    for (which, w) in [("baseline", baseline), ("analysis", current)] {
        if w.start >= w.end {
            return Err(Error::EmptyWindow {
                which,
                start: w.start,
                end: w.end,
            });
        }
    }
    let empty = RedStats::default();
    let (requests_now, requests_before) = (requests(current), requests(baseline));
    let (pods_now, pods_before) = (pods_by_service(current), pods_by_service(baseline));
    let (incoming_now, incoming_before) = (failed_calls(current), failed_calls(baseline));
    let mut candidates: BTreeMap<&str, Candidate> = BTreeMap::new();
    for s in &current.services {
        let c = candidates.entry(&s.name).or_default();
        let b = baseline.service(&s.name);
        let from_metrics = s.red_source == RedSource::Metrics;
        c.add(
            Feature::SelfTime,
            self_time_shift(&s.name, baseline, current, reference, config).or_else(|| {
                from_metrics.then(|| server_duration_shift(s, baseline, reference, config))?
            }),
        );
        // Errors that originate here: its own error spans, or failed calls into it when its
        // callers saw more of them (calls it never answered), whichever is the stronger.
        let into = (
            incoming_now.get(s.name.as_str()).unwrap_or(&empty),
            incoming_before.get(s.name.as_str()).unwrap_or(&empty),
        );
        c.add(
            Feature::ErrorSpans,
            [
                if from_metrics {
                    evidence::failed_requests(&s.name, &s.red, b.map_or(&empty, |b| &b.red))
                } else {
                    evidence::error_spans(&s.name, &s.red, b.map_or(&empty, |b| &b.red))
                },
                // Without spans, the calls into it are its callers' client metrics.
                evidence::failed_calls_into(&s.name, into.0, into.1).map(|e| {
                    if from_metrics {
                        e.read_from_metrics()
                    } else {
                        e
                    }
                }),
            ]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.change.total_cmp(&b.change)),
        );
        // The traces through it against the traces elsewhere; the pooled history stands in for
        // a baseline with too few traces through it.
        let no_traces = loupe_graph::TraceStats::default();
        let through_before = b.map_or(&no_traces, |b| &b.traces);
        let (through_before, all_before) = match reference
            .and_then(|r| Some((r.service(&s.name)?, r)))
            .filter(|_| through_before.traces < config.min_baseline_samples)
        {
            Some((rs, r)) if rs.traces.traces > through_before.traces => (&rs.traces, &r.traces),
            _ => (through_before, &baseline.traces),
        };
        c.add(
            Feature::TraceSpectrum,
            evidence::trace_spectrum(
                &s.name,
                (&s.traces, through_before),
                (&current.traces, all_before),
                config.min_requests,
            ),
        );
        // Error records that name another service report its failure, not the writer's own.
        let base_logs = b.map_or(0, |b| b.logs.own_error_records());
        let own_errors = s.logs.own_error_records();
        if s.logs.foreign_error_records > 0 {
            c.counter.push(format!(
                "{} of its {} error log records name another service, and count as that \
                 service's failure, not as errors of its own code",
                s.logs.foreign_error_records, s.logs.error_records
            ));
        }
        let reqs = (
            requests_now.get(s.name.as_str()).copied().unwrap_or(0),
            requests_before.get(s.name.as_str()).copied().unwrap_or(0),
        );
        let (exposure, unit) = if reqs.0.min(reqs.1) >= config.min_requests {
            ((reqs.0 as f64, reqs.1 as f64), "request")
        } else {
            ((seconds(current), seconds(baseline)), "second")
        };
        let against_baseline =
            evidence::error_logs(&s.name, (own_errors, base_logs), exposure, unit);
        let against_history = history
            .filter(|_| reqs.0 >= config.min_requests)
            .and_then(|h| h.usual_error_log_rate(&s.name, config.min_requests))
            .and_then(|usual| {
                evidence::error_logs_against_history(&s.name, own_errors, reqs.0, usual)
            });
        c.add(
            Feature::ErrorLogs,
            [against_baseline, against_history]
                .into_iter()
                .flatten()
                .max_by(|a, b| a.change.total_cmp(&b.change)),
        );
        let logs = (s.logs.routine(), b.map_or(0, |b| b.logs.routine()));
        let per_operation = operation_log_deficit(&s.name, baseline, current, history, config);
        c.add(
            Feature::LogDeficit,
            per_operation
                .or_else(|| evidence::log_deficit(&s.name, logs, reqs, config.min_requests, 1.0)),
        );
        let no_pods = Vec::new();
        let now = pods_now.get(s.name.as_str()).unwrap_or(&no_pods);
        let before = pods_before.get(s.name.as_str()).unwrap_or(&no_pods);
        // The window's peak against the baseline's mean: a leak's OOM kill comes at the peak,
        // and the restart that follows pulls the window's mean back down.
        let resources = [
            (
                Feature::Cpu,
                K8S_POD_CPU_LIMIT_UTILIZATION,
                "cpu_utilization",
            ),
            (
                Feature::Memory,
                K8S_POD_MEMORY_LIMIT_UTILIZATION,
                "memory_utilization",
            ),
        ];
        for (feature, metric, name) in resources {
            if let (Some(n), Some(b)) = (merged_gauge(now, metric), merged_gauge(before, metric)) {
                c.add(feature, evidence::utilization_change(&s.name, name, &n, &b));
            }
        }
    }

    let metrics_only: Vec<&str> = current
        .services
        .iter()
        .filter(|s| s.red_source == RedSource::Metrics)
        .map(|s| s.name.as_str())
        .collect();
    discount_callers_latency(&mut candidates, &metrics_only, current, config);

    // Log paths: which code paths an operation's calls run, as the log templates they write.
    let mut reference_windows: Vec<&WindowStats> = vec![baseline];
    reference_windows.extend(reference);
    for (name, shift) in crate::log_paths::log_path_shift(&reference_windows, current) {
        if let Some(c) = candidates.get_mut(name.as_str()) {
            c.add(Feature::LogPaths, Some(shift.evidence(&name)));
        }
    }
    // Call paths: the same question asked of the calls a service's spans make, for services
    // that write no log records. Where a service logs, its log paths read its code paths at
    // the resolution of its log lines; reading its calls too would count one code path twice
    // and widen the spread every other service's shift is scored against.
    for (name, shift) in crate::call_paths::call_path_shift(&reference_windows, current) {
        let logs = current.service(&name).map_or(0, |s| s.logs.records);
        if let (Some(c), 0) = (candidates.get_mut(name.as_str()), logs) {
            c.add(Feature::LogPaths, Some(shift.evidence(&name)));
            c.after_callee = shift.after_callee;
        }
    }

    // Call gaps: each edge's shift; a service's feature is the mean over all its edges.
    let mut gaps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for e in &current.edges {
        let base_edge = gaps_of(baseline, &e.source, &e.target);
        let reference_edge = reference.and_then(|r| gaps_of(r, &e.source, &e.target));
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

    // Every candidate in one list: services, then databases, nodes and network paths.
    let mut keys: Vec<(CauseKind, String)> = candidates
        .keys()
        .map(|n| (SERVICE, (*n).to_owned()))
        .collect();
    let self_time: HashMap<&str, f64> = candidates
        .iter()
        .filter_map(|(n, c)| Some((*n, *c.raw.get(&Feature::SelfTime)?)))
        .collect();
    let incoming = (&incoming_now, &incoming_before);
    let stopped = stopped_serving(changes, current.start, current.end);
    let infra = infrastructure(
        (baseline, current, reference),
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
    let mut z: Vec<[f64; FEATURES]> = vec![[0.0; FEATURES]; keys.len()];
    let scale_from: Vec<bool> = keys.iter().map(|(kind, _)| *kind == SERVICE).collect();
    for feature in Feature::ALL {
        let values: Vec<Option<f64>> = gathered
            .iter()
            .map(|c| c.raw.get(&feature).copied())
            .collect();
        for (i, score) in robust_z(&values, &scale_from, feature.floor())
            .into_iter()
            .enumerate()
        {
            z[i][feature as usize] = score;
        }
    }
    let index: HashMap<(CauseKind, &str), usize> = keys
        .iter()
        .enumerate()
        .map(|(i, (kind, name))| ((*kind, name.as_str()), i))
        .collect();
    let undamped = z.clone();
    let mut counter = explain_away([baseline, current], &keys, &index, &mut z, config);
    explain_reactions(&gathered, &index, &undamped, &mut z, &mut counter, config);

    let mut causes: Vec<Cause> = keys
        .iter()
        .zip(gathered.iter_mut())
        .zip(&z)
        .zip(counter.iter_mut())
        .map(|((((kind, name), c), z), counter)| {
            let mut evidence: Vec<Evidence> = c
                .evidence
                .iter()
                .map(|(f, e)| Evidence {
                    score: z[*f as usize],
                    ..e.clone()
                })
                .filter(|e| e.score > 0.0)
                .collect();
            evidence.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(b.change.total_cmp(&a.change))
            });
            Cause {
                rank: 0,
                entity: EntityRef {
                    kind: *kind,
                    name: name.clone(),
                },
                score: z.iter().sum(),
                probability: 0.0,
                evidence,
                hypotheses: Vec::new(),
                counter_evidence: std::mem::take(&mut c.counter)
                    .into_iter()
                    .chain(std::mem::take(counter))
                    .collect(),
                onset: None,
                inputs: [0.0; N_INPUTS],
                change: None,
                rolled_back_by: None,
                remediation: Vec::new(),
            }
        })
        .collect();
    // Changes near the window are candidates of their own, each with the evidence of the
    // service it changed.
    let mut nearby: Vec<Option<Nearby>> = causes.iter().map(|_| None).collect();
    let (mut z, mut undamped) = (z, undamped);
    for (target, cause, near) in
        change_candidates(&causes, changes, current.start, current.end, config)
    {
        z.push(z[target]);
        undamped.push(undamped[target]);
        causes.push(cause);
        nearby.push(Some(near));
    }
    let facts: Vec<Facts> = causes
        .iter()
        .zip(&z)
        .zip(&undamped)
        .zip(&nearby)
        .map(|(((c, z), raw), near)| facts_of(c, z, raw, near.as_ref()))
        .collect();
    let hypotheses = config.ranker.rules.apply(&facts);
    for (((cause, z), near), hypotheses) in causes.iter_mut().zip(&z).zip(&nearby).zip(hypotheses) {
        let weight = near.as_ref().map_or(0.0, |n| n.weight);
        cause.inputs = inputs_of(cause.entity.kind, z, weight, &hypotheses);
        cause.hypotheses = hypotheses;
    }
    let inputs: Vec<Inputs> = causes.iter().map(|c| c.inputs).collect();
    let scores = config.ranker.scores(&inputs);
    for ((cause, score), p) in causes
        .iter_mut()
        .zip(&scores)
        .zip(config.ranker.probabilities(&scores))
    {
        cause.score = *score;
        cause.probability = p;
    }
    causes.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.entity.name.cmp(&b.entity.name))
    });
    causes.truncate(config.max_causes);
    causes
        .iter_mut()
        .enumerate()
        .for_each(|(i, c)| c.rank = i + 1);
    let confident = causes
        .first()
        .is_some_and(|c| c.probability >= config.min_confidence);
    Ok(Analysis {
        window: [current.start, current.end],
        baseline: [baseline.start, baseline.end],
        causes,
        confident,
        model: config.ranker.source.clone(),
    })
}

/// A change near the window that weighs in on a candidate.
#[derive(Debug)]
struct Nearby {
    /// Proximity weight, 0–1.
    weight: f64,
    /// When, in words.
    when: String,
    /// What, in words (its summary, else its kind).
    what: String,
}

/// What the rules see of one candidate.
fn facts_of(
    cause: &Cause,
    z: &[f64; FEATURES],
    raw: &[f64; FEATURES],
    near: Option<&Nearby>,
) -> Facts {
    // A change's sentences speak of the service (or node) it changed.
    let entity = match cause.entity.kind {
        CHANGE => change_target(&cause.entity.name)
            .unwrap_or_default()
            .to_owned(),
        _ => cause.entity.name.clone(),
    };
    Facts {
        entity,
        kind: cause.entity.kind.as_str().to_owned(),
        scores: *z,
        explained: z.iter().zip(raw).any(|(a, b)| a < b),
        change: cause.change.as_ref().zip(near).map(|(c, n)| ChangeFacts {
            kind: c.kind.as_str().to_owned(),
            summary: n.what.clone(),
            when: n.when.clone(),
            source: c.source.clone(),
            version_from: c.version_from.clone().unwrap_or_default(),
            version_to: c.version_to.clone().unwrap_or_default(),
            weight: n.weight,
        }),
        evidence: cause
            .evidence
            .iter()
            .map(|e| (e.feature.to_string(), e.summary.clone()))
            .collect(),
    }
}

/// The model's inputs of one candidate ([`crate::ranker::input_names`]) from its feature scores
/// `z` (after propagation).
fn inputs_of(
    kind: CauseKind,
    z: &[f64; FEATURES],
    change_weight: f64,
    hypotheses: &[Hypothesis],
) -> Inputs {
    let mut x = [0f32; N_INPUTS];
    for (x, z) in x.iter_mut().zip(z) {
        *x = *z as f32;
    }
    // The change times the evidence the hand weights sum (the trace spectrum, which they leave
    // out, included would let a red-herring change ride on a spectrum its service shares with
    // the cause).
    let summed: f64 = Feature::ALL
        .iter()
        .filter(|f| **f != Feature::TraceSpectrum)
        .map(|f| z[*f as usize])
        .sum();
    x[CHANGE_X_EVIDENCE] = (change_weight * summed) as f32;
    x[CHANGE_WEIGHT] = change_weight as f32;
    x[RULES] = hypotheses.iter().map(|h| h.weight).sum::<f64>() as f32;
    let kind = match kind {
        SERVICE => 0,
        DATABASE => 1,
        NODE => 2,
        EDGE => 3,
        CHANGE => 4,
    };
    x[KIND + kind] = 1.0;
    x
}

/// Reasons of Kubernetes events that say a pod of the service stopped answering: killed for
/// memory (`OOMKilling` as the kernel's OOM killer reports it through the node, `OOMKilled` as
/// the container's last state), a crash loop, an eviction, failed probes. `Killing` is left
/// out: a rollout kills the old pods on purpose.
const STOPPED_SERVING_REASONS: &[&str] = &[
    "OOMKilling",
    "OOMKilled",
    "BackOff",
    "CrashLoopBackOff",
    "Evicted",
    "Unhealthy",
];

/// The services one of whose pods stopped answering between `start` and `end` (unix ns): a
/// Kubernetes event with one of [`STOPPED_SERVING_REASONS`].
fn stopped_serving(changes: &[ChangeEvent], start: u64, end: u64) -> HashSet<&str> {
    changes
        .iter()
        .filter(|c| {
            c.kind == ChangeKind::KubernetesEvent
                && (start..end).contains(&c.time_unix_nano)
                && c.reason
                    .as_deref()
                    .is_some_and(|r| STOPPED_SERVING_REASONS.contains(&r))
        })
        .filter_map(|c| c.service.as_deref())
        .collect()
}

/// The rollback of deployment `change`: the last deployment of its service after it and
/// before `end`, when that one goes back to the version `change` replaced (`version_to` = its
/// `version_from`); `None` when there is none, or when a later deployment rolled forward again.
fn rollback_of<'a>(
    change: &ChangeEvent,
    changes: &'a [ChangeEvent],
    end: u64,
) -> Option<&'a ChangeEvent> {
    let from = change.version_from.as_deref()?;
    if change.kind != ChangeKind::Deployment {
        return None;
    }
    changes
        .iter()
        .filter(|c| {
            c.kind == ChangeKind::Deployment
                && c.service == change.service
                && (change.time_unix_nano + 1..end).contains(&c.time_unix_nano)
        })
        .max_by_key(|c| c.time_unix_nano)
        .filter(|last| last.version_to.as_deref() == Some(from))
}

/// Whether deployment `change` undoes an earlier deployment of its service in `changes` (it
/// goes from that one's new version back to its old one): a response, not a cause.
fn is_rollback(change: &ChangeEvent, changes: &[ChangeEvent]) -> bool {
    change.kind == ChangeKind::Deployment
        && change.version_to.is_some()
        && changes.iter().any(|c| {
            c.kind == ChangeKind::Deployment
                && c.service == change.service
                && c.time_unix_nano < change.time_unix_nano
                && c.version_from == change.version_to
                && c.version_to == change.version_from
        })
}

/// What a change changed: its service, else the node of a Kubernetes event about a Node object
/// (`NodeNotReady`, disk pressure).
fn changed_entity(change: &ChangeEvent) -> Option<(CauseKind, &str)> {
    match (&change.service, &change.object) {
        (Some(service), _) => Some((SERVICE, service)),
        (None, Some(o)) if o.kind == "Node" => Some((NODE, &o.name)),
        _ => None,
    }
}

/// Change candidates. A change to a candidate service (or a Kubernetes event about a candidate
/// node, [`changed_entity`]) in `[start − lookback, end)` weighs `0.5^(Δ / half-life)`, `Δ` its
/// distance before `start` (0 inside the window); the strongest change to each service or node
/// with evidence (a positive summed score) becomes a candidate of kind [`CauseKind::Change`],
/// returned with the index of the changed candidate in `causes`. Its evidence is the change
/// (first) and the changed candidate's evidence; its proximity weight is an input of the
/// ranker (alone and times the service's evidence), so the change competes with the service it
/// changed: it outranks it when the evidence began near the change. Most incidents follow a
/// change (Google SRE book, "Managing Incidents"; DORA's change failure rate), but a change
/// alone is not an anomaly: a service without evidence yields no change candidate.
/// A deployment that rolls back an earlier one is never the change: the earlier one is, with
/// the rollback recorded (`Cause::rolled_back_by`).
fn change_candidates(
    causes: &[Cause],
    changes: &[ChangeEvent],
    start: u64,
    end: u64,
    config: &AnalysisConfig,
) -> Vec<(usize, Cause, Nearby)> {
    let from = start.saturating_sub(config.change_lookback_nanos);
    causes
        .iter()
        .enumerate()
        .filter_map(|(target, service)| {
            if service.score <= 0.0 || !matches!(service.entity.kind, SERVICE | NODE) {
                return None;
            }
            let (weight, before, change) = changes
                .iter()
                .filter(|c| changed_entity(c) == Some((service.entity.kind, &service.entity.name)))
                .filter(|c| (from..end).contains(&c.time_unix_nano))
                .filter(|c| !is_rollback(c, changes))
                .map(|c| {
                    let before = start.saturating_sub(c.time_unix_nano);
                    let weight =
                        0.5f64.powf(before as f64 / config.change_half_life_nanos.max(1) as f64);
                    (weight, before, c)
                })
                // Of equally near changes (all inside the window weigh 1), the earliest: a
                // later one is more likely a response (a rollback) than the cause.
                .max_by(|a, b| {
                    a.0.total_cmp(&b.0)
                        .then(b.2.time_unix_nano.cmp(&a.2.time_unix_nano))
                })?;
            let when = if before == 0 {
                "during the window".to_owned()
            } else {
                format!("{:.0} s before the window", before as f64 / 1e9)
            };
            let what = if change.summary.is_empty() {
                change.kind.as_str().replace('_', " ")
            } else {
                change.summary.clone()
            };
            let mut e = Evidence::new(
                EvidenceSignal::Changes,
                "change_proximity",
                format!("{what} ({when}; {})", change.source),
                0.0,
                weight,
                weight,
            );
            e.score = weight;
            let rolled_back_by = rollback_of(change, changes, end).cloned();
            if let Some(r) = &rolled_back_by {
                e.summary.push_str(&format!(
                    "; rolled back to {} {:.0} s later",
                    r.version_to.as_deref().unwrap_or("the previous version"),
                    r.time_unix_nano.saturating_sub(change.time_unix_nano) as f64 / 1e9
                ));
            }
            let mut evidence = vec![e];
            evidence.extend(service.evidence.iter().cloned());
            let cause = Cause {
                entity: EntityRef {
                    kind: CHANGE,
                    name: change_name(&service.entity.name, change),
                },
                evidence,
                change: Some(change.clone()),
                rolled_back_by,
                ..service.clone()
            };
            Some((target, cause, Nearby { weight, when, what }))
        })
        .collect()
}

/// The features through which a failure shows in its callers too: a failing call makes the
/// caller fail or log errors, or cut its work short and log less.
const FAILURE_FEATURES: [Feature; 3] =
    [Feature::ErrorSpans, Feature::ErrorLogs, Feature::LogDeficit];

/// A caller's call-path shift whose transition leaves a call into another service (it did
/// something else right after that service answered: stopped, skipped the next call) is its
/// reaction to the answer when that service shows evidence of its own: at least
/// `explained_share` of the shift, over all its features (before any damping). The shift is
/// then scaled by `explained_factor`, as propagated failures are ([`explain_away`]). A callee
/// that looks as usual leaves it whole: the caller's own code changed its path.
fn explain_reactions(
    gathered: &[Candidate],
    index: &HashMap<(CauseKind, &str), usize>,
    undamped: &[[f64; FEATURES]],
    z: &mut [[f64; FEATURES]],
    counter: &mut [Vec<String>],
    config: &AnalysisConfig,
) {
    let paths = Feature::LogPaths as usize;
    for (i, c) in gathered.iter().enumerate() {
        let Some(callee) = c.after_callee.as_deref() else {
            continue;
        };
        let Some(&j) = index.get(&(SERVICE, callee)) else {
            continue;
        };
        let (own, theirs) = (z[i][paths], undamped[j].iter().sum::<f64>());
        if own > 0.0 && theirs >= config.explained_share * own {
            z[i][paths] *= config.explained_factor;
            counter[i].push(format!(
                "its call-path shift ({own:.1}) is explained away by service {callee}, whose \
                 answer it reacted to ({theirs:.1}), and counts ×{}: a caller changes its path \
                 when its callee answers differently",
                config.explained_factor
            ));
        }
    }
}

/// Candidates reachable from `from` along `explains` links, `from` excluded.
fn downstream(from: usize, explains: &[Vec<usize>]) -> Vec<usize> {
    let mut seen: Vec<usize> = Vec::new();
    let mut stack: Vec<usize> = explains[from].clone();
    while let Some(s) = stack.pop() {
        if s == from || seen.contains(&s) {
            continue;
        }
        seen.push(s);
        stack.extend(explains[s].iter().copied());
    }
    seen
}

/// Propagation, the "explained away" rules of the ranking. Each scales down (by
/// `explained_factor`) evidence that a deeper candidate accounts for, when that candidate shows
/// at least `explained_share` of it:
///
/// - failure evidence (errors, log deficit) of a service, by anything downstream of it: a
///   service it calls, a database it queries, a network path it or a callee of it uses
///   (failures propagate to callers, so the deepest failing candidate is the better one). The
///   downstream candidate's strength counts its log-path shift too: a callee that caught an
///   exception or returned early answers wrongly without failing, and its caller fails;
/// - the failed calls into a service, by the one network path they fail on;
/// - a service's self time, by a database it queries whose queries slowed (the caller waits on
///   its queries, which count in its self time when the database is not instrumented);
/// - a service's CPU and self time, by a node one of its pods runs on whose pods all ran hot
///   (a noisy neighbour: the node, not the service, changed).
///
/// Returns, per candidate, its counter-evidence: a sentence for each rule that damped it,
/// naming the candidate that accounts for its evidence (the strongest one that does).
fn explain_away(
    windows: [&WindowStats; 2],
    keys: &[(CauseKind, String)],
    index: &HashMap<(CauseKind, &str), usize>,
    z: &mut [[f64; FEATURES]],
    config: &AnalysisConfig,
) -> Vec<Vec<String>> {
    let service = |name: &str| index.get(&(SERVICE, name)).copied();
    // What lies downstream of each candidate: a service's callees, databases and outgoing
    // network paths; a network path's callee's (not the callee itself).
    let mut explains: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
    let link = |explains: &mut Vec<Vec<usize>>, from: Option<usize>, to: Option<usize>| {
        if let (Some(a), Some(b)) = (from, to) {
            if a != b && !explains[a].contains(&b) {
                explains[a].push(b);
            }
        }
    };
    for w in windows {
        for e in &w.edges {
            link(&mut explains, service(&e.source), service(&e.target));
        }
        for q in &w.queries {
            let database = index.get(&(DATABASE, q.database.as_str())).copied();
            link(&mut explains, service(&q.source), database);
        }
    }
    // Network paths, and the callee each leads to: (path, caller, callee).
    let paths: Vec<(usize, Option<usize>, Option<usize>)> = keys
        .iter()
        .enumerate()
        .filter(|(_, (kind, _))| *kind == EDGE)
        .filter_map(|(i, (_, name))| {
            let (a, b) = path_ends(name)?;
            Some((i, service(a), service(b)))
        })
        .collect();
    for &(i, a, _) in &paths {
        link(&mut explains, a, Some(i));
    }
    for &(i, _, b) in &paths {
        let beyond = b.map(|b| explains[b].clone()).unwrap_or_default();
        for t in beyond {
            link(&mut explains, Some(i), Some(t));
        }
    }
    // What is damped: a candidate's failure evidence. What explains it: a failure as strong
    // downstream, or a code path that changed there (a callee that caught an exception or
    // returned early answers wrongly without failing).
    let failure = |z: &[[f64; FEATURES]], i: usize| {
        FAILURE_FEATURES
            .iter()
            .map(|f| z[i][*f as usize])
            .fold(0.0, f64::max)
    };
    let strength =
        |z: &[[f64; FEATURES]], i: usize| failure(z, i).max(z[i][Feature::LogPaths as usize]);
    let what = |i: usize| format!("{} {}", keys[i].0.as_str(), keys[i].1);
    let mut counter: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    let before = z.to_vec();
    for (i, (kind, _)) in keys.iter().enumerate() {
        if *kind != SERVICE && *kind != EDGE {
            continue;
        }
        let own = failure(&before, i);
        if own <= 0.0 {
            continue;
        }
        // (candidate, its strength, whether it is the path the calls into `i` fail on)
        let path_into = paths
            .iter()
            .filter(|&&(_, _, b)| b == Some(i))
            .map(|&(p, _, _)| (p, true));
        let by = path_into
            .chain(downstream(i, &explains).into_iter().map(|d| (d, false)))
            .map(|(d, into)| (d, strength(&before, d), into))
            .filter(|&(_, s, _)| s >= config.explained_share * own)
            // The strongest; on a tie the infrastructure candidate (listed after the
            // services), the more specific account.
            .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        if let Some((d, s, into)) = by {
            for f in FAILURE_FEATURES {
                z[i][f as usize] *= config.explained_factor;
            }
            let factor = config.explained_factor;
            counter[i].push(if into {
                format!(
                    "its failure evidence ({own:.1}) is explained away by {}, the path its \
                     failed calls fail on ({s:.1}), and counts ×{factor}",
                    what(d)
                )
            } else {
                let how = if failure(&before, d) >= config.explained_share * own {
                    "fails"
                } else {
                    "changed its code path"
                };
                format!(
                    "its failure evidence ({own:.1}) is explained away by {} downstream of it, \
                     which {how} ({s:.1}), and counts ×{factor}: failures propagate to callers",
                    what(d)
                )
            });
        }
    }
    // Slow queries: a database explains its callers' self time.
    let self_time = Feature::SelfTime as usize;
    for (i, targets) in explains.iter().enumerate() {
        let own = before[i][self_time];
        let by_database = targets
            .iter()
            .copied()
            .filter(|&d| {
                keys[d].0 == DATABASE && before[d][self_time] >= config.explained_share * own
            })
            .max_by(|&a, &b| before[a][self_time].total_cmp(&before[b][self_time]));
        if let (true, SERVICE, Some(d)) = (own > 0.0, keys[i].0, by_database) {
            z[i][self_time] *= config.explained_factor;
            counter[i].push(format!(
                "its self time ({own:.1}) is explained away by {}, whose queries slowed \
                 ({:.1}), and counts ×{}",
                what(d),
                before[d][self_time],
                config.explained_factor
            ));
        }
    }
    // Noisy neighbours: a node whose pods all ran hot explains its services' CPU and self time.
    let cpu = Feature::Cpu as usize;
    let mut on_node: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &windows[1].pods {
        if let (Some(s), Some(n)) = (&p.service, &p.node) {
            on_node.entry(s.as_str()).or_default().push(n.as_str());
        }
    }
    for (s, nodes) in on_node {
        let Some(i) = service(s) else { continue };
        let hot = nodes
            .iter()
            .filter_map(|n| index.get(&(NODE, *n)).copied())
            .filter(|&n| {
                before[n][cpu] > 0.0 && before[n][cpu] >= config.explained_share * before[i][cpu]
            })
            .max_by(|&a, &b| before[a][cpu].total_cmp(&before[b][cpu]));
        if let Some(n) = hot {
            z[i][cpu] *= config.explained_factor;
            z[i][self_time] *= config.explained_factor;
            if before[i][cpu] > 0.0 || before[i][self_time] > 0.0 {
                counter[i].push(format!(
                    "its CPU and self time are explained away by {}, whose pods ran hot \
                     together ({:.1}), and count ×{}",
                    what(n),
                    before[n][cpu],
                    config.explained_factor
                ));
            }
        }
    }
    counter
}

use CauseKind::{
    Change as CHANGE, Database as DATABASE, Edge as EDGE, Node as NODE, Service as SERVICE,
};

/// Fewest pods, of at least two services, on a node for it to be a candidate: a node's evidence
/// is what its pods share, which one or two pods cannot tell from their own faults.
const MIN_NODE_PODS: usize = 3;

/// The candidates beyond services:
///
/// - **databases**, seen through their callers' client spans: the shift of the median query
///   duration pooled over callers (as self time), and bursts of failed queries (as error spans);
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
///   [`STOPPED_SERVING_REASONS`]): then the calls failed because the callee was down, and
///   the path is no candidate.
///
/// `windows` is (baseline, current, reference).
fn infrastructure(
    windows: (&WindowStats, &WindowStats, Option<&WindowStats>),
    self_time: &HashMap<&str, f64>,
    incoming: (&HashMap<&str, RedStats>, &HashMap<&str, RedStats>),
    stopped: &HashSet<&str>,
    config: &AnalysisConfig,
) -> Vec<((CauseKind, String), Candidate)> {
    let (baseline, current, reference) = windows;
    let mut out = Vec::new();
    // Databases.
    fn pooled(w: &WindowStats) -> BTreeMap<&str, RedStats> {
        let mut m: BTreeMap<&str, RedStats> = BTreeMap::new();
        for q in &w.queries {
            m.entry(q.database.as_str()).or_default().merge(&q.red);
        }
        m
    }
    let (now, before) = (pooled(current), pooled(baseline));
    let referenced = reference.map(pooled).unwrap_or_default();
    let empty = RedStats::default();
    for (db, red) in &now {
        let b = before.get(db).unwrap_or(&empty);
        let mut c = Candidate::default();
        if let Some(base) = pick(
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
    // Nodes.
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
        let mut cpu: Vec<(f64, f64, f64)> = Vec::new();
        for p in &pods {
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
        let mut c = Candidate::default();
        if cpu.len() >= MIN_NODE_PODS {
            cpu.sort_by(|a, b| a.2.total_cmp(&b.2));
            let (b, n, change) = cpu[(cpu.len() - 1) / 2];
            c.add(
                Feature::Cpu,
                Some(Evidence::new(
                    evidence::EvidenceSignal::Metrics,
                    "node_cpu_utilization",
                    format!(
                        "cpu_utilization of the {} pods on node {node} ({} services) rose by a \
                         median {change:.1} points (the median pod: {:.1}% to {:.1}% at peak)",
                        cpu.len(),
                        services.len(),
                        b * 100.0,
                        n * 100.0
                    ),
                    b,
                    n,
                    change,
                )),
            );
        }
        let mut shifts: Vec<(f64, &str)> = services
            .iter()
            .filter_map(|s| Some((*self_time.get(s.as_str())?, s.as_str())))
            .collect();
        if shifts.len() >= MIN_NODE_PODS {
            shifts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (change, median_service) = shifts[(shifts.len() - 1) / 2];
            c.add(
                Feature::SelfTime,
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
                )),
            );
        }
        out.push(((NODE, node.to_owned()), c));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A deficit is of routine records: fewer error records is a problem that went away.
    /// (records, of them errors) per 20 calls of one operation, baseline → window.
    #[test]
    fn a_log_deficit_counts_routine_records_only() {
        type Logs = (u64, u64);
        let cases: [(Logs, Logs, bool); 4] = [
            ((40, 0), (10, 0), true),   // 2 lines a call → ½: work left undone
            ((40, 20), (20, 0), false), // the errors stopped; the routine line stayed
            ((40, 20), (5, 0), true),   // the routine line stopped too
            ((20, 0), (40, 20), false), // errors started: no deficit (the error features)
        ];
        let window = |(records, error_records): (u64, u64)| WindowStats {
            start: 0,
            end: 60_000_000_000,
            operations: vec![loupe_graph::OperationWindow {
                service: "s".into(),
                name: "op".into(),
                red: RedStats {
                    calls: 20,
                    ..Default::default()
                },
                logs: loupe_graph::LogStats {
                    records,
                    error_records,
                    foreign_error_records: 0,
                },
                ..Default::default()
            }],
            ..Default::default()
        };
        for (before, now, deficit) in cases {
            let e = operation_log_deficit(
                "s",
                &window(before),
                &window(now),
                None,
                &AnalysisConfig::default(),
            );
            let shown = e.as_ref().is_some_and(|e| e.change > 2.0);
            assert_eq!(shown, deficit, "{before:?} → {now:?}: {e:?}");
        }
    }

    /// One line per case: the periods' (records, calls), the usual rate, the dispersion.
    #[test]
    fn dispersion_measures_bundled_records_robustly() {
        type Counts<'a> = &'a [(f64, f64)];
        let cases: [(Counts, f64, f64); 5] = [
            (&[(140.0, 10.0), (141.0, 10.0), (139.0, 10.0)], 14.0, 1.0), // Poisson or less: 1
            (
                &[
                    (140.0, 10.0),
                    (100.0, 10.0),
                    (180.0, 10.0),
                    (120.0, 10.0),
                    (160.0, 10.0),
                ],
                14.0,
                400.0 / 140.0 / 0.455,
            ), // bundles of records: the median squared residual
            (
                &[
                    (140.0, 10.0),
                    (142.0, 10.0),
                    (138.0, 10.0),
                    (140.0, 10.0),
                    (0.0, 10.0),
                ],
                14.0,
                1.0,
            ), // one period a fault touched: outvoted
            (&[], 14.0, 1.0),                                            // no period
            (&[(5.0, 10.0)], 0.0, 1.0),                                  // no usual rate
        ];
        for (counts, rate, expected) in cases {
            let d = dispersion(counts, rate);
            assert!((d - expected).abs() < 1e-9, "{counts:?} at {rate}: {d}");
        }
    }

    #[test]
    fn robust_z_floors_the_spread_and_clips() {
        let z = robust_z(
            &[Some(0.0), Some(0.0), Some(0.0), Some(1.0), Some(-1.0)],
            &[true; 5],
            0.1,
        );
        assert_eq!(z, vec![0.0, 0.0, 0.0, 10.0, 0.0]);
        let values = [
            Some(1.0),
            Some(2.0),
            None,
            Some(3.0),
            Some(4.0),
            Some(100.0),
        ];
        let z = robust_z(&values, &[true; 6], 0.1);
        // Over the five present values: median 3, MAD 1 → spread 1.4826; the missing one is 0.
        assert!((z[5] - 100.0 / 1.4826).abs() < 1e-9);
        assert_eq!(z[2], 0.0);
    }

    /// The spread is the services' (`true`); the other candidates are scored on it, unless no
    /// service has the feature or the services' spread is 0. (values, from services, the last value's score.)
    #[test]
    fn robust_z_takes_the_spread_over_services() {
        type Case = (&'static [Option<f64>], &'static [bool], f64);
        let cases: [Case; 6] = [
            // Three services 1, 2, 3 (spread 1.4826); a path copying the 100: 100 / 1.4826.
            (
                &[Some(1.0), Some(2.0), Some(3.0), Some(100.0)],
                &[true, true, true, false],
                100.0 / 1.4826,
            ),
            // A path's 100 and a node's 90 beside two services: the services' MAD 1.
            (
                &[Some(1.0), Some(3.0), Some(90.0), Some(100.0)],
                &[true, true, false, false],
                100.0 / 1.4826,
            ),
            // The same values all counted in the spread: median 46.5, MAD 44.5.
            (
                &[Some(1.0), Some(3.0), Some(90.0), Some(100.0)],
                &[true; 4],
                100.0 / (1.4826 * 44.5),
            ),
            // No service has the feature: the spread of every value present.
            (
                &[None, None, Some(2.0), Some(4.0)],
                &[true, true, false, false],
                4.0 / 1.4826,
            ),
            // Two services with the same count (MAD 0): every value's, median 5, MAD 2.
            (
                &[Some(5.0), Some(5.0), Some(1.0), Some(100.0)],
                &[true, true, false, false],
                100.0 / (1.4826 * 2.0),
            ),
            // Every value the same: the floor.
            (
                &[Some(5.0), Some(5.0), Some(5.0)],
                &[true, true, false],
                5.0 / 0.1,
            ),
        ];
        for (values, services, want) in cases {
            let z = robust_z(values, services, 0.1);
            let got = *z.last().unwrap();
            assert!(
                (got - want).abs() < 1e-9,
                "{values:?} {services:?}: {got} ≠ {want}"
            );
        }
    }
}

#[cfg(test)]
mod change_tests {
    use loupe_model::{ChangeEvent, ChangeKind};

    use super::*;

    const MIN: i64 = 60;

    /// A service cause of `score` with nothing else yet.
    fn service_cause(name: &str, score: f64) -> Cause {
        Cause {
            rank: 0,
            entity: EntityRef {
                kind: CauseKind::Service,
                name: name.to_owned(),
            },
            score,
            probability: 0.0,
            evidence: Vec::new(),
            hypotheses: Vec::new(),
            counter_evidence: Vec::new(),
            onset: None,
            inputs: [0.0; N_INPUTS],
            change: None,
            rolled_back_by: None,
            remediation: Vec::new(),
        }
    }

    /// A deployment, then its rollback inside the window (the deployment itself inside the
    /// window, or 30 s before it, where it weighs less than the rollback): the deployment is
    /// the change that weighs in, its evidence says it was rolled back, and the suggestion is to
    /// check the rollback, never to undo it (which would bring the bad version back). Rolled
    /// forward again, it is the undo again.
    #[test]
    fn a_rolled_back_deployment_is_the_change_and_is_not_rolled_back_again() {
        let start: u64 = 3_600 * 1_000_000_000;
        let end = start + 5 * 60 * 1_000_000_000;
        let at = |seconds: i64| (start as i64 + seconds * 1_000_000_000) as u64;
        let deploy = |t: i64, from: &str, to: &str| {
            let mut c = ChangeEvent::new(ChangeKind::Deployment, at(t), "github");
            c.service = Some("cart".to_owned());
            c.version_from = Some(from.to_owned());
            c.version_to = Some(to.to_owned());
            c
        };
        // Deployments (seconds from the window's start, from, to) → the evidence's words
        // and the suggested command.
        #[allow(clippy::type_complexity)]
        let cases: [(&[(i64, &str, &str)], &str, &str); 4] = [
            (
                &[(60, "2.0.2", "2.0.3"), (180, "2.0.3", "2.0.2")],
                "rolled back to 2.0.2 120 s later",
                "kubectl rollout status deployment/cart",
            ),
            (
                &[(-30, "2.0.2", "2.0.3"), (180, "2.0.3", "2.0.2")],
                "rolled back to 2.0.2 210 s later",
                "kubectl rollout status deployment/cart",
            ),
            (
                &[(60, "2.0.2", "2.0.3")],
                "during the window",
                "kubectl rollout undo deployment/cart",
            ),
            (
                &[
                    (60, "2.0.2", "2.0.3"),
                    (120, "2.0.3", "2.0.2"),
                    (180, "2.0.2", "2.0.3"),
                ],
                "during the window",
                "kubectl rollout undo deployment/cart",
            ),
        ];
        for (deployments, words, command) in cases {
            let changes: Vec<ChangeEvent> = deployments
                .iter()
                .map(|(t, from, to)| deploy(*t, from, to))
                .collect();
            let causes = vec![service_cause("cart", 1.0)];
            let changed =
                change_candidates(&causes, &changes, start, end, &AnalysisConfig::default());
            let [(0, cause, _)] = changed.as_slice() else {
                panic!("{deployments:?}: one change candidate for cart, got {changed:?}");
            };
            assert_eq!(change_target(&cause.entity.name), Some("cart"));
            assert_eq!(
                cause.change.as_ref().and_then(|c| c.version_to.as_deref()),
                Some("2.0.3"),
                "{deployments:?}: the deployment, never its rollback"
            );
            let summary = &cause.evidence[0].summary;
            assert!(summary.contains(words), "{deployments:?}: {summary}");
            let commands: Vec<String> = crate::remediation::remediations(cause, None)
                .into_iter()
                .filter_map(|r| r.command)
                .collect();
            assert_eq!(
                commands.first().map(String::as_str),
                Some(command),
                "{deployments:?}: {commands:?}"
            );
            let undo = commands.iter().any(|c| c.contains("rollout undo"));
            assert_eq!(
                undo,
                cause.rolled_back_by.is_none(),
                "{deployments:?}: {commands:?}"
            );
        }
    }

    /// One line per case: services' summed scores, changes (service, seconds before the
    /// window's start; negative: after it), and the expected ranking under the hand weights
    /// (a change scores its service's evidence times 1 + its proximity weight) with its scores.
    /// `Δb` is the change to `b`.
    #[test]
    fn change_proximity_cases() {
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, &[(&str, f64)], &[(&str, i64)], &[&str], &[f64])] = &[
            (
                "no change, no effect",
                &[("a", 5.0), ("b", 4.0)],
                &[],
                &["a", "b"],
                &[5.0, 4.0],
            ),
            (
                "deployed at the start doubles",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 0)],
                &["Δb", "a", "b"],
                &[8.0, 5.0, 4.0],
            ),
            (
                "one half-life before: ×1.5",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 10 * MIN)],
                &["Δb", "a", "b"],
                &[6.0, 5.0, 4.0],
            ),
            (
                "during the window counts fully",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", -MIN)],
                &["Δb", "a", "b"],
                &[8.0, 5.0, 4.0],
            ),
            (
                "past the lookback: nothing",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 31 * MIN)],
                &["a", "b"],
                &[5.0, 4.0],
            ),
            (
                "after the window: nothing",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", -6 * MIN)],
                &["a", "b"],
                &[5.0, 4.0],
            ),
            (
                "a change without anomalies is no candidate",
                &[("a", 5.0), ("b", 0.0)],
                &[("b", 0)],
                &["a", "b"],
                &[5.0, 0.0],
            ),
            (
                "the nearest change counts, once",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 20 * MIN), ("b", 0)],
                &["Δb", "a", "b"],
                &[8.0, 5.0, 4.0],
            ),
            (
                "a far change ranks below a stronger service",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 20 * MIN)],
                &["a", "Δb", "b"],
                &[5.0, 5.0, 4.0],
            ),
        ];
        let start: u64 = 3_600 * 1_000_000_000;
        let end = start + 5 * 60 * 1_000_000_000;
        for (name, scores, changes, order, expected) in cases {
            let mut causes: Vec<Cause> = scores
                .iter()
                .map(|(s, score)| service_cause(s, *score))
                .collect();
            let changes: Vec<ChangeEvent> = changes
                .iter()
                .map(|(s, before)| {
                    let t = (start as i64 - before * 1_000_000_000) as u64;
                    let mut c = ChangeEvent::new(ChangeKind::Deployment, t, "api");
                    c.service = Some((*s).to_owned());
                    c
                })
                .collect();
            let changed =
                change_candidates(&causes, &changes, start, end, &AnalysisConfig::default());
            for (target, mut cause, near) in changed {
                assert_eq!(cause.evidence[0].feature, "change_proximity", "{name}");
                assert_eq!(
                    change_target(&cause.entity.name),
                    Some(causes[target].entity.name.as_str()),
                    "{name}"
                );
                cause.score *= 1.0 + near.weight;
                causes.push(cause);
            }
            // Stable: of equal scores, services first (the far change ties with `a`).
            causes.sort_by(|a, b| b.score.total_cmp(&a.score));
            let got: Vec<String> = causes
                .iter()
                .map(|c| match c.entity.kind {
                    CHANGE => format!("Δ{}", change_target(&c.entity.name).unwrap_or("?")),
                    _ => c.entity.name.clone(),
                })
                .collect();
            assert_eq!(&got, order, "{name}");
            for (c, e) in causes.iter().zip(*expected) {
                assert!(
                    (c.score - e).abs() < 1e-9,
                    "{name}: {} {} ≠ {e}",
                    c.entity.name,
                    c.score
                );
            }
        }
    }

    /// One line per case: a change's service and object, the candidates (kind, name) it can
    /// weigh on, and which of them gets a change candidate (and its first suggested command).
    #[test]
    fn events_about_a_node_are_changes_to_the_node() {
        let start: u64 = 3_600 * 1_000_000_000;
        let end = start + 5 * 60 * 1_000_000_000;
        let node = |name: &str| {
            let mut c = service_cause(name, 2.0);
            c.entity.kind = NODE;
            c
        };
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            Option<&str>,
            Option<(&str, &str)>,
            Option<&str>,
            Option<&str>,
        )] = &[
            (
                "NodeNotReady on worker-2",
                None,
                Some(("Node", "worker-2")),
                Some("worker-2"),
                Some("kubectl get pods -A -o wide --field-selector spec.nodeName=worker-2"),
            ),
            (
                "an event about another node",
                None,
                Some(("Node", "worker-9")),
                None,
                None,
            ),
            (
                "a pod event without its service",
                None,
                Some(("Pod", "worker-2")),
                None,
                None,
            ),
            (
                "a deployment of cart",
                Some("cart"),
                None,
                Some("cart"),
                Some("kubectl rollout undo deployment/cart"),
            ),
        ];
        for (name, service, object, expected, command) in cases {
            let mut c = ChangeEvent::new(ChangeKind::KubernetesEvent, start, "k8s_events");
            if service.is_some() {
                c.kind = ChangeKind::Deployment;
            }
            c.service = service.map(str::to_owned);
            c.object = object.map(|(kind, name)| loupe_model::ObjectRef {
                kind: kind.to_owned(),
                name: name.to_owned(),
                namespace: None,
            });
            let causes = vec![service_cause("cart", 2.0), node("worker-2")];
            let changed = change_candidates(&causes, &[c], start, end, &AnalysisConfig::default());
            let got: Vec<&str> = changed
                .iter()
                .filter_map(|(_, c, _)| change_target(&c.entity.name))
                .collect();
            assert_eq!(got, expected.as_slice(), "{name}");
            if let Some((_, cause, _)) = changed.first() {
                let commands: Vec<String> = crate::remediation::remediations(cause, None)
                    .into_iter()
                    .filter_map(|r| r.command)
                    .collect();
                assert_eq!(commands.first().map(String::as_str), *command, "{name}");
            }
        }
    }

    /// A change candidate's name says what changed, and when, and gives the service back.
    #[test]
    fn change_names_round_trip() {
        let mut c = ChangeEvent::new(ChangeKind::FeatureFlag, 1_763_733_720_000_000_000, "api");
        c.service = Some("shop/checkout".into());
        let name = change_name("shop/checkout", &c);
        assert_eq!(name, "shop/checkout:feature_flag@2025-11-21T14:02:00Z");
        assert_eq!(change_target(&name), Some("shop/checkout"));
        for not_a_change in ["checkout", "checkout@x", ":deployment@x", "a->b"] {
            assert_eq!(change_target(not_a_change), None, "{not_a_change}");
        }
    }
}

#[cfg(test)]
mod scenario_tests {
    //! Rankings on small graphs built from spans and logs through the real graph.

    use std::sync::Arc;

    use loupe_graph::{GraphConfig, KnowledgeGraph};
    use loupe_model::{
        AttributeValue, Attributes, LogRecord, Resource, ResourceLogs, ResourceSpans, Span, SpanId,
        SpanKind, StatusCode, TraceId,
    };

    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;
    /// Baseline [0, 60 s), fault [60 s, 120 s).
    const FAULT_START: u64 = 60 * SECOND;

    fn resource(service: &str) -> Arc<Resource> {
        let attrs = vec![
            (
                "service.name".to_owned(),
                AttributeValue::String(service.to_owned()),
            ),
            (
                "k8s.pod.name".to_owned(),
                AttributeValue::String(format!("{service}-1")),
            ),
        ];
        Arc::new(Resource {
            attributes: Attributes(attrs),
        })
    }

    /// What each service of the chain frontend → checkout → payment does in one request: its own
    /// work in ms, in which requests it logs an error instead of its line (every `error_every`-th;
    /// 0: none), the log line it writes (none when empty), and whether the request ends there
    /// (it calls no further).
    #[derive(Clone, Copy)]
    struct Step {
        self_ms: u64,
        error_every: u64,
        line: &'static str,
        stops: bool,
    }

    const OK: Step = Step {
        self_ms: 5,
        error_every: 0,
        line: "handled",
        stops: false,
    };

    /// One trace at `t` through the chain: each service is a server span whose child is the next
    /// service's span (no client spans, as uninstrumented clients leave it).
    fn trace(graph: &mut KnowledgeGraph, n: u64, t: u64, steps: [Step; 3]) {
        let services = ["frontend", "checkout", "payment"];
        let inner: u64 = steps.iter().map(|s| s.self_ms).sum();
        let (mut start, mut duration) = (t, inner * MS);
        for (i, (service, step)) in services.iter().zip(steps).enumerate() {
            let span = Span {
                trace_id: TraceId([(n % 250) as u8 + 1; 16]),
                span_id: SpanId([i as u8 + 1, (n >> 8) as u8, n as u8, 1, 1, 1, 1, 1]),
                parent_span_id: (i > 0).then_some(SpanId([
                    i as u8,
                    (n >> 8) as u8,
                    n as u8,
                    1,
                    1,
                    1,
                    1,
                    1,
                ])),
                name: "GET /".into(),
                kind: SpanKind::Server,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                status: StatusCode::Unset,
                attributes: Attributes::default(),
            };
            let ids = (Some(span.trace_id), Some(span.span_id));
            graph.apply_spans(&[ResourceSpans {
                resource: resource(service),
                spans: vec![span],
            }]);
            // Written inside the span, as an SDK's log bridge records it.
            let record = LogRecord {
                time_unix_nano: start,
                severity_number: if step.error_every > 0 && n.is_multiple_of(step.error_every) {
                    17
                } else {
                    9
                },
                severity_text: String::new(),
                body: step.line.into(),
                event_name: String::new(),
                attributes: Attributes::default(),
                trace_id: ids.0,
                span_id: ids.1,
            };
            if !step.line.is_empty() {
                graph.apply_logs(&[ResourceLogs {
                    resource: resource(service),
                    records: vec![record],
                }]);
            }
            if step.stops {
                break;
            }
            start += step.self_ms * MS / 2;
            duration -= step.self_ms * MS;
        }
    }

    /// Ranks the three services when the fault window's requests do `fault` instead of `OK`;
    /// `expected_first` must come first.
    fn check(fault: [Step; 3], expected_first: &str) -> Analysis {
        let analysis = analyze_fault(fault);
        let ranking: Vec<&str> = analysis
            .causes
            .iter()
            .map(|c| c.entity.name.as_str())
            .collect();
        assert_eq!(ranking[0], expected_first, "ranking {ranking:?}");
        assert!(!analysis.causes[0].evidence.is_empty());
        analysis
    }

    /// The analysis of a fault window whose requests do `fault` instead of `OK`.
    fn analyze_fault(fault: [Step; 3]) -> Analysis {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        for n in 0..240u64 {
            let t = n * SECOND / 2;
            trace(
                &mut graph,
                n,
                t,
                if t < FAULT_START { [OK; 3] } else { fault },
            );
        }
        graph.flush();
        let baseline = graph.window(0, FAULT_START);
        let current = graph.window(FAULT_START, 2 * FAULT_START);
        analyze(&baseline, &current, None, &[], &AnalysisConfig::default()).unwrap()
    }

    /// The counter-evidence sentences of `service` in `analysis`.
    fn counter<'a>(analysis: &'a Analysis, service: &str) -> &'a [String] {
        &analysis
            .causes
            .iter()
            .find(|c| c.entity.name == service)
            .expect("the service is a candidate")
            .counter_evidence
    }

    /// An error record that names another service reports that service's failure as the
    /// writer met it: it is no error of the writer's own code. One line per case: the line
    /// checkout writes at ERROR in every fault-window request, whether it is checkout's own.
    #[test]
    fn error_records_that_name_another_service_are_not_the_writers_own() {
        for (line, own) in [
            ("card declined", true),
            ("No instances available for payment", false),
            (
                "dial tcp: lookup payment.shop.svc.cluster.local: no such host",
                false,
            ),
        ] {
            let failing = Step {
                error_every: 1,
                line,
                ..OK
            };
            let analysis = analyze_fault([OK, failing, OK]);
            let checkout = analysis
                .causes
                .iter()
                .find(|c| c.entity.name == "checkout")
                .expect("checkout is a candidate");
            let error_logs = checkout
                .evidence
                .iter()
                .any(|e| e.feature == "error_log_records");
            assert_eq!(error_logs, own, "{line}: {:?}", checkout.evidence);
            let says = counter(&analysis, "checkout");
            assert_eq!(
                says.iter()
                    .any(|s| s.contains("120 of its 120 error log records name another service")),
                !own,
                "{line}: {says:?}"
            );
        }
    }

    #[test]
    fn slow_own_work_ranks_the_slow_service_not_its_callers() {
        let slow = Step { self_ms: 80, ..OK };
        check([OK, OK, slow], "payment");
        check([OK, slow, OK], "checkout");
    }

    #[test]
    fn errors_logged_along_the_chain_are_blamed_on_the_deepest_service() {
        let failing = Step {
            error_every: 1,
            ..OK
        };
        let analysis = check([failing, failing, failing], "payment");
        let says = counter(&analysis, "checkout");
        assert!(
            says.len() == 1 && says[0].contains("explained away by service payment downstream"),
            "{says:?}"
        );
        assert!(counter(&analysis, "payment").is_empty());
        let analysis = check([failing, failing, OK], "checkout");
        let says = counter(&analysis, "frontend");
        assert!(
            says.len() == 1
                && says[0].contains("by service checkout downstream of it, which fails"),
            "{says:?}"
        );
    }

    /// A callee whose calls took another code path (an exception caught, a wrong early
    /// return: no error of its own) explains the errors its caller logs about its answers: one
    /// request in five here, a burst that outscores the callee's path shift unless explained.
    #[test]
    fn a_callee_whose_code_path_changed_explains_its_callers_errors() {
        let failing_at_times = Step {
            error_every: 5,
            ..OK
        };
        let other_path = Step {
            line: "no price for route, using the default",
            ..OK
        };
        let analysis = check([OK, failing_at_times, other_path], "payment");
        let says = counter(&analysis, "checkout");
        assert!(
            says.len() == 1
                && says[0]
                    .contains("by service payment downstream of it, which changed its code path"),
            "{says:?}"
        );
    }

    /// Code that does not log: an exception thrown in checkout before it calls payment shows in
    /// checkout's call paths (its spans end without calling payment), through the whole path
    /// from spans to the ranking.
    #[test]
    fn a_service_that_stopped_calling_shows_in_its_call_paths() {
        let quiet = Step { line: "", ..OK };
        let thrown = Step {
            stops: true,
            ..quiet
        };
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        for n in 0..240u64 {
            let t = n * SECOND / 2;
            let steps = if t < FAULT_START || n % 3 == 0 {
                [quiet; 3]
            } else {
                [quiet, thrown, quiet]
            };
            trace(&mut graph, n, t, steps);
        }
        graph.flush();
        let baseline = graph.window(0, FAULT_START);
        let current = graph.window(FAULT_START, 2 * FAULT_START);
        let analysis = analyze(&baseline, &current, None, &[], &AnalysisConfig::default()).unwrap();
        let first = &analysis.causes[0];
        assert_eq!(first.entity.name, "checkout", "{:?}", analysis.causes);
        assert_eq!(first.evidence[0].feature, "call_path_shift");
        assert!(
            first.evidence[0].summary.starts_with(
                "checkout GET /: 33% of spans called payment GET / first (100% of 120"
            ),
            "{}",
            first.evidence[0].summary
        );
        // The shipped rule says it with the call path's sentence.
        assert!(
            first
                .hypotheses
                .iter()
                .any(|h| h.rule == "code_path_changed"
                    && h.sentence.ends_with(&first.evidence[0].summary)),
            "{:?}",
            first.hypotheses
        );
    }

    /// A fault already active in the baseline (it outlived an earlier injection) shows against
    /// the history only.
    #[test]
    fn a_fault_that_tainted_the_baseline_shows_against_the_history() {
        let failing = Step {
            error_every: 1,
            ..OK
        };
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        // [0, 60 s) healthy; the fault from 60 s on, through baseline [60, 120) and window
        // [120, 180).
        for n in 0..360u64 {
            let t = n * SECOND / 2;
            let steps = if t < FAULT_START {
                [OK; 3]
            } else {
                [OK, failing, OK]
            };
            trace(&mut graph, n, t, steps);
        }
        graph.flush();
        let baseline = graph.window(FAULT_START, 2 * FAULT_START);
        let current = graph.window(2 * FAULT_START, 3 * FAULT_START);
        let config = AnalysisConfig::default();
        let top = |history: Option<&History>| {
            let analysis = analyze(&baseline, &current, history, &[], &config).unwrap();
            let first = &analysis.causes[0];
            (first.entity.name.clone(), first.score)
        };
        let (_, score_without) = top(None);
        assert!(score_without < 1.0, "no change against the baseline");
        let history = History::new(vec![
            graph.window(0, FAULT_START / 2),
            graph.window(FAULT_START / 2, FAULT_START),
            baseline.clone(),
        ]);
        let (name, score) = top(Some(&history));
        assert_eq!(name, "checkout");
        assert!(score > 3.0, "score {score}");
    }
}

#[cfg(test)]
mod infrastructure_tests {
    //! Candidates beyond services and the rules that explain services away by them, on small
    //! hand-built windows: one line per case.

    use loupe_graph::{
        DurationSketch, EdgeWindow, GaugeStats, LogStats, OperationWindow, PodWindow, QueryWindow,
        ServiceWindow,
    };

    use super::*;

    /// One window: services `(name, self time ms, spans, failed spans)`, calls edges
    /// `(caller, callee, calls, failed)`, queries `(service, database, ms, queries, failed)` and
    /// pods `(service, node, CPU utilization)`.
    struct W<'a> {
        services: &'a [(&'a str, f64, u64, u64)],
        edges: &'a [(&'a str, &'a str, u64, u64)],
        queries: &'a [(&'a str, &'a str, f64, u64, u64)],
        pods: &'a [(&'a str, &'a str, f64)],
    }

    fn sketch(ms: f64, n: u64) -> DurationSketch {
        let mut d = DurationSketch::default();
        // A little spread, as real durations have.
        (0..n).for_each(|i| d.add_nanos((ms * (1.0 + (i % 7) as f64 * 0.02) * 1e6) as u64));
        d
    }

    fn red(ms: f64, calls: u64, errors: u64) -> RedStats {
        RedStats {
            calls,
            errors,
            root_calls: 0,
            duration: sketch(ms, calls),
            self_time: sketch(ms, calls),
            points: 0,
        }
    }

    fn window(w: &W, start: u64) -> WindowStats {
        let logs = LogStats::default();
        let mut out = WindowStats {
            start,
            end: start + 300_000_000_000,
            ..Default::default()
        };
        for &(name, ms, calls, errors) in w.services {
            out.services.push(ServiceWindow {
                name: name.into(),
                red: red(ms, calls, errors),
                logs,
                ..Default::default()
            });
            out.operations.push(OperationWindow {
                service: name.into(),
                name: "op".into(),
                red: red(ms, calls, errors),
                logs,
                templates: Default::default(),
                call_paths: Vec::new(),
            });
        }
        for &(source, target, calls, errors) in w.edges {
            out.edges.push(EdgeWindow {
                source: source.into(),
                target: target.into(),
                red: red(1.0, calls, errors),
                ..Default::default()
            });
        }
        for &(source, database, ms, calls, errors) in w.queries {
            out.queries.push(QueryWindow {
                source: source.into(),
                database: database.into(),
                red: red(ms, calls, errors),
            });
        }
        for (i, &(service, node, cpu)) in w.pods.iter().enumerate() {
            let gauge = GaugeStats {
                sum: cpu * 20.0,
                count: 20,
                max: cpu,
            };
            out.pods.push(PodWindow {
                name: format!("{service}-{i}"),
                service: Some(service.into()),
                node: Some(node.into()),
                logs,
                gauges: [(K8S_POD_CPU_LIMIT_UTILIZATION.to_owned(), gauge)].into(),
            });
        }
        out.services.sort_by(|a, b| a.name.cmp(&b.name));
        out.pods.sort_by(|a, b| a.name.cmp(&b.name));
        out.operations.sort_by(|a, b| a.service.cmp(&b.service));
        out.edges
            .sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
        out
    }

    const SVC: &[(&str, f64, u64, u64)] = &[
        ("front", 5.0, 600, 0),
        ("cart", 5.0, 300, 0),
        ("shop", 5.0, 300, 0),
        ("stock", 5.0, 300, 0),
    ];
    const CALLS: &[(&str, &str, u64, u64)] = &[
        ("front", "cart", 300, 0),
        ("front", "shop", 300, 0),
        ("cart", "stock", 150, 0),
        ("shop", "stock", 150, 0),
    ];
    const DB: &[(&str, &str, f64, u64, u64)] = &[("stock", "postgresql/stock", 2.0, 300, 0)];
    const PODS: &[(&str, &str, f64)] = &[
        ("front", "n1", 0.2),
        ("cart", "n1", 0.2),
        ("shop", "n1", 0.2),
        ("stock", "n2", 0.2),
        ("front", "n2", 0.2),
        ("cart", "n2", 0.2),
    ];

    const BASE: W<'static> = W {
        services: SVC,
        edges: CALLS,
        queries: DB,
        pods: PODS,
    };
    /// `stock`'s only caller `cart` sees half its calls fail; `stock` answers none of them and
    /// fails nothing of its own.
    const ONE_CALLER_UNANSWERED: W<'static> = W {
        services: &[
            ("front", 5.0, 600, 150),
            ("cart", 5.0, 300, 150),
            ("shop", 5.0, 300, 0),
            ("stock", 5.0, 0, 0),
        ],
        edges: &[
            ("front", "cart", 300, 150),
            ("front", "shop", 300, 0),
            ("cart", "stock", 150, 150),
        ],
        ..BASE
    };

    #[test]
    fn infrastructure_cases() {
        let base = BASE;
        #[allow(clippy::type_complexity)]
        // (what, the window, the top cause, services and what their counter-evidence says:
        // nothing when `None`)
        let cases: &[(&str, W, &str, &[(&str, Option<&str>)])] = &[
            (
                "slow queries: the database, not the service that waits on it",
                W {
                    services: &[
                        ("front", 5.0, 600, 0),
                        ("cart", 5.0, 300, 0),
                        ("shop", 5.0, 300, 0),
                        ("stock", 40.0, 300, 0),
                    ],
                    queries: &[("stock", "postgresql/stock", 40.0, 300, 0)],
                    ..base
                },
                "database:postgresql/stock",
                &[(
                    "stock",
                    Some("by database postgresql/stock, whose queries slowed"),
                )],
            ),
            (
                "failed queries: the database",
                W {
                    services: &[
                        ("front", 5.0, 600, 90),
                        ("cart", 5.0, 300, 45),
                        ("shop", 5.0, 300, 45),
                        ("stock", 5.0, 300, 90),
                    ],
                    edges: &[
                        ("front", "cart", 300, 45),
                        ("front", "shop", 300, 45),
                        ("cart", "stock", 150, 45),
                        ("shop", "stock", 150, 45),
                    ],
                    queries: &[("stock", "postgresql/stock", 2.0, 300, 90)],
                    ..base
                },
                "database:postgresql/stock",
                &[("stock", Some("by database postgresql/stock downstream"))],
            ),
            (
                "one caller's calls fail unanswered, the other caller's do not: the path",
                W {
                    services: &[
                        ("front", 5.0, 600, 150),
                        ("cart", 5.0, 300, 150),
                        ("shop", 5.0, 300, 0),
                        ("stock", 5.0, 150, 0),
                    ],
                    edges: &[
                        ("front", "cart", 300, 150),
                        ("front", "shop", 300, 0),
                        ("cart", "stock", 150, 150),
                        ("shop", "stock", 150, 0),
                    ],
                    ..base
                },
                "edge:cart->stock",
                &[
                    ("cart", Some("by edge cart->stock downstream")),
                    (
                        "stock",
                        Some("by edge cart->stock, the path its failed calls fail on"),
                    ),
                ],
            ),
            (
                "its only caller's calls fail unanswered, nothing else of its own fails: the path",
                ONE_CALLER_UNANSWERED,
                "edge:cart->stock",
                &[(
                    "stock",
                    Some("by edge cart->stock, the path its failed calls fail on"),
                )],
            ),
            (
                "every caller's calls fail unanswered (pods down): the callee",
                W {
                    services: &[
                        ("front", 5.0, 600, 300),
                        ("cart", 5.0, 300, 150),
                        ("shop", 5.0, 300, 150),
                        ("stock", 5.0, 0, 0),
                    ],
                    edges: &[
                        ("front", "cart", 300, 150),
                        ("front", "shop", 300, 150),
                        ("cart", "stock", 150, 150),
                        ("shop", "stock", 150, 150),
                    ],
                    ..base
                },
                "service:stock",
                &[(
                    "cart",
                    Some("by service stock downstream of it, which fails"),
                )],
            ),
            (
                "the callee's own spans fail for one caller: the callee, not the path",
                W {
                    services: &[
                        ("front", 5.0, 600, 150),
                        ("cart", 5.0, 300, 150),
                        ("shop", 5.0, 300, 0),
                        ("stock", 5.0, 300, 150),
                    ],
                    edges: &[
                        ("front", "cart", 300, 150),
                        ("front", "shop", 300, 0),
                        ("cart", "stock", 150, 150),
                        ("shop", "stock", 150, 0),
                    ],
                    ..base
                },
                "service:stock",
                &[(
                    "cart",
                    Some("by service stock downstream of it, which fails"),
                )],
            ),
            (
                "every pod on a node runs hot and its services slow: the node",
                W {
                    services: &[
                        ("front", 10.0, 600, 0),
                        ("cart", 10.0, 300, 0),
                        ("shop", 15.0, 300, 0),
                        ("stock", 5.0, 300, 0),
                    ],
                    pods: &[
                        ("front", "n1", 0.5),
                        ("cart", "n1", 0.5),
                        ("shop", "n1", 0.5),
                        ("stock", "n2", 0.2),
                        ("front", "n2", 0.2),
                        ("cart", "n2", 0.2),
                    ],
                    ..base
                },
                "node:n1",
                &[(
                    "shop",
                    Some("explained away by node n1, whose pods ran hot"),
                )],
            ),
            (
                "one pod runs hot and its service slows: the service, not its node",
                W {
                    services: &[
                        ("front", 5.0, 600, 0),
                        ("cart", 5.0, 300, 0),
                        ("shop", 15.0, 300, 0),
                        ("stock", 5.0, 300, 0),
                    ],
                    pods: &[
                        ("front", "n1", 0.2),
                        ("cart", "n1", 0.2),
                        ("shop", "n1", 0.6),
                        ("stock", "n2", 0.2),
                        ("front", "n2", 0.2),
                        ("cart", "n2", 0.2),
                    ],
                    ..base
                },
                "service:shop",
                &[("shop", None)],
            ),
        ];
        for (what, current, expected, says) in cases {
            let a = analyze(
                &window(&base, 0),
                &window(current, 300_000_000_000),
                None,
                &[],
                &AnalysisConfig::default(),
            )
            .unwrap();
            let top = a.causes.first().map(|c| c.entity.id());
            assert_eq!(top.as_deref(), Some(*expected), "{what}: {:#?}", a.causes);
            for (service, expected) in *says {
                let got = &a
                    .causes
                    .iter()
                    .find(|c| c.entity.kind == SERVICE && c.entity.name == *service)
                    .expect("the service is a candidate")
                    .counter_evidence;
                match expected {
                    Some(n) => assert!(got.iter().any(|s| s.contains(n)), "{what}: {got:?}"),
                    None => assert!(got.is_empty(), "{what}: {got:?}"),
                }
            }
        }
    }

    /// A callee with one caller whose calls fail unanswered: the path, unless a pod of the
    /// callee stopped answering in the window. (what, the event's reason and time in seconds
    /// after the window's start, whether `cart->stock` is a candidate.)
    #[test]
    fn a_one_caller_path_is_no_candidate_when_its_callee_stopped_serving() {
        // (reason, seconds after the window's start)
        type Event = Option<(&'static str, u64)>;
        let cases: [(&str, Event, bool); 5] = [
            ("no event", None, true),
            ("OOM-killed in the window", Some(("OOMKilling", 60)), false),
            ("crash loop in the window", Some(("BackOff", 200)), false),
            ("a rollout's pod kill", Some(("Killing", 60)), true),
            (
                "OOM-killed after the window",
                Some(("OOMKilling", 400)),
                true,
            ),
        ];
        let start = 300_000_000_000;
        for (what, event, path) in cases {
            let changes: Vec<ChangeEvent> = event
                .into_iter()
                .map(|(reason, at)| {
                    let mut e = ChangeEvent::new(
                        ChangeKind::KubernetesEvent,
                        start + at * 1_000_000_000,
                        "k8s_events",
                    );
                    e.service = Some("stock".into());
                    e.reason = Some(reason.into());
                    e
                })
                .collect();
            let a = analyze(
                &window(&BASE, 0),
                &window(&ONE_CALLER_UNANSWERED, start),
                None,
                &changes,
                &AnalysisConfig::default(),
            )
            .unwrap();
            let has_path = a.causes.iter().any(|c| c.entity.id() == "edge:cart->stock");
            assert_eq!(has_path, path, "{what}: {:#?}", a.causes);
        }
    }

    /// A window as a metrics-only deployment shows it: each service's RED from its server
    /// metrics (the duration includes its calls; no self time, no operations, no queries), each
    /// edge's from its caller's client metrics.
    fn metrics_only(mut w: WindowStats) -> WindowStats {
        for s in &mut w.services {
            s.red_source = RedSource::Metrics;
            s.red.self_time = DurationSketch::default();
        }
        for e in &mut w.edges {
            e.red_source = RedSource::Metrics;
            e.red.self_time = DurationSketch::default();
        }
        w.operations.clear();
        w.queries.clear();
        w
    }

    /// One line a case: the request-duration shifts of front → cart → stock → the shifts after
    /// the discount (a caller whose callee, however deep, shifted at least half as much is
    /// multiplied by `explained_factor`).
    #[test]
    fn a_callers_request_duration_is_discounted_by_its_callees() {
        // (shifts, discounted shifts, the service named in each one's counter-evidence)
        type Case = ([f64; 3], [f64; 3], [Option<&'static str>; 3]);
        let cases: [Case; 4] = [
            (
                [1.1, 1.6, 2.2],
                [0.33, 0.48, 2.2],
                [Some("cart"), Some("stock"), None],
            ),
            (
                [1.1, 1.6, 0.5],
                [0.33, 1.6, 0.5],
                [Some("cart"), None, None],
            ),
            (
                [1.1, 0.0, 0.6],
                [0.33, 0.0, 0.6],
                [Some("stock"), None, None],
            ),
            ([1.1, 0.0, 0.5], [1.1, 0.0, 0.5], [None, None, None]),
        ];
        let names = ["front", "cart", "stock"];
        let w = window(
            &W {
                services: &[],
                edges: &[("front", "cart", 1, 0), ("cart", "stock", 1, 0)],
                queries: &[],
                pods: &[],
            },
            0,
        );
        for (shifts, expected, by) in cases {
            let mut candidates: BTreeMap<&str, Candidate> = names
                .iter()
                .zip(shifts)
                .map(|(n, x)| {
                    let mut c = Candidate::default();
                    c.raw.insert(Feature::SelfTime, x);
                    (*n, c)
                })
                .collect();
            discount_callers_latency(&mut candidates, &names, &w, &AnalysisConfig::default());
            let got: Vec<f64> = names
                .iter()
                .map(|n| candidates[n].raw[&Feature::SelfTime])
                .collect();
            for (g, e) in got.iter().zip(expected) {
                assert!(
                    (g - e).abs() < 1e-9,
                    "{shifts:?}: got {got:?}, expected {expected:?}"
                );
            }
            for (n, by) in names.iter().zip(by) {
                let says = &candidates[n].counter;
                match by {
                    Some(d) => assert!(
                        says.len() == 1 && says[0].contains(&format!("by service {d} downstream")),
                        "{shifts:?}, {n}: {says:?}"
                    ),
                    None => assert!(says.is_empty(), "{shifts:?}, {n}: {says:?}"),
                }
            }
        }
    }

    /// One line a case: services' request durations (ms, callees included), calls and errors
    /// as their server metrics give them → the expected top cause.
    #[test]
    fn metrics_only_ranks_by_request_duration_and_failed_requests() {
        let base = W {
            services: &[
                ("front", 20.0, 600, 0),
                ("cart", 10.0, 300, 0),
                ("shop", 10.0, 300, 0),
                ("stock", 5.0, 300, 0),
            ],
            edges: CALLS,
            queries: &[],
            pods: &[],
        };
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, &[(&str, f64, u64, u64)], &str)] = &[
            (
                "the callee slows and its callers with it: the callee",
                &[
                    ("front", 60.0, 600, 0),
                    ("cart", 50.0, 300, 0),
                    ("shop", 50.0, 300, 0),
                    ("stock", 45.0, 300, 0),
                ],
                "service:stock",
            ),
            (
                "a caller slows on its own: the caller, not the entry",
                &[
                    ("front", 50.0, 600, 0),
                    ("cart", 40.0, 300, 0),
                    ("shop", 10.0, 300, 0),
                    ("stock", 5.0, 300, 0),
                ],
                "service:cart",
            ),
            (
                "the callee fails and its callers fail with it: the callee",
                &[
                    ("front", 20.0, 600, 120),
                    ("cart", 10.0, 300, 60),
                    ("shop", 10.0, 300, 60),
                    ("stock", 5.0, 300, 120),
                ],
                "service:stock",
            ),
        ];
        for (what, services, expected) in cases {
            let current = W { services, ..base };
            let a = analyze(
                &metrics_only(window(&base, 0)),
                &metrics_only(window(&current, 300_000_000_000)),
                None,
                &[],
                &AnalysisConfig::default(),
            )
            .unwrap();
            let top = a.causes.first().map(|c| c.entity.id());
            assert_eq!(top.as_deref(), Some(*expected), "{what}: {:#?}", a.causes);
            let evidence: Vec<&str> = a.causes[0]
                .evidence
                .iter()
                .map(|e| e.feature.as_ref())
                .collect();
            assert!(
                evidence.contains(&"server_duration_p50") || evidence.contains(&"failed_requests"),
                "{what}: the metric evidence names itself: {evidence:?}"
            );
        }
    }
}
