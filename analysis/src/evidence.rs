//! Evidence: what changed for one service between the baseline and the analysed window, on
//! each signal, as a raw change with the figures behind it. The ranking turns raw changes into
//! comparable scores (see `normalize.rs`).
//!
//! Shifts in latency are log ratios of medians (DDSketch quantiles) with an additive offset that
//! keeps tiny absolute changes from looking large; bursts and deficits of counts (error spans,
//! error log records, log records per request) are Poisson z-scores of the observed count
//! against the count the baseline rate predicts, `(observed − λ) / √(λ + 1)`.

use loupe_graph::{DurationSketch, GaugeStats, RedStats, TraceStats};
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The signal a piece of evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSignal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
    /// Changes and events (deployments, flags, configuration, Kubernetes events).
    Changes,
}

/// One observed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The signal.
    pub signal: EvidenceSignal,
    /// What was measured: `self_time_p50`, `call_gap_p50`, `error_spans`, `failed_calls_into`,
    /// `error_log_records`, `log_records_per_request`, `cpu_utilization`, `memory_utilization`,
    /// `change_proximity`, and where a service has no spans `server_duration_p50` and
    /// `failed_requests` (its request-duration metrics); for databases `query_duration_p50`, `failed_queries`; for nodes
    /// `node_cpu_utilization`, `node_self_time_p50`; for network paths `failed_calls_on_path`;
    /// `log_path_shift`, `call_path_shift` and `trace_spectrum` for services.
    pub feature: Cow<'static, str>,
    /// A sentence for people.
    pub summary: String,
    /// The figure in the baseline window.
    pub baseline: f64,
    /// The figure in the analysed window.
    pub current: f64,
    /// The raw change (log ratio, z-score or percentage points, per feature).
    pub change: f64,
    /// How unusual the change is among all candidates of the analysis (robust z, ≥ 0, after
    /// propagation); for `change_proximity`, the change's proximity weight (0–1).
    pub score: f64,
}

impl Evidence {
    pub(crate) fn new(
        signal: EvidenceSignal,
        feature: &'static str,
        summary: String,
        baseline: f64,
        current: f64,
        change: f64,
    ) -> Self {
        Self {
            signal,
            feature: Cow::Borrowed(feature),
            summary,
            baseline,
            current,
            change,
            score: 0.0,
        }
    }
}

impl Evidence {
    /// The same evidence, read from metrics: where a service has no spans, the figures behind
    /// span-shaped evidence (failures, durations) come from its request-duration metrics.
    pub(crate) fn read_from_metrics(self) -> Self {
        Self {
            signal: EvidenceSignal::Metrics,
            ..self
        }
    }
}

/// Log ratio `ln((a + offset) / (b + offset))`.
pub(crate) fn log_ratio(a: f64, b: f64, offset: f64) -> f64 {
    ((a + offset) / (b + offset)).ln()
}

/// Poisson z-score of `observed` against expectation `lambda`.
pub(crate) fn poisson_z(observed: f64, lambda: f64) -> f64 {
    (observed - lambda) / (lambda + 1.0).sqrt()
}

/// z-score of `now` events over `exposure_now` against `before` events over `exposure_before`:
/// the conditional binomial test of two Poisson counts (Przyborowski & Wileński, Biometrika
/// 1940). Given `n = now + before` events, equal rates make `now` Binomial(`n`, `p₀`) with
/// `p₀ = exposure_now / (exposure_now + exposure_before)`; the score is its normal approximation
/// with a continuity correction, `(now − n·p₀ − ½) / √(n·p₀·(1 − p₀))` (towards zero by ½ on
/// either side). Unlike a z-score against the baseline's rate taken as exact, the reference's
/// own uncertainty counts: 4 records against none in a baseline twice the window's length
/// score 2.3, not 4, and the score grows as the square root of the records, not linearly.
/// 0 without events or exposure.
pub(crate) fn rate_change_z(
    now: u64,
    before: u64,
    (exposure_now, exposure_before): (f64, f64),
) -> f64 {
    let n = (now + before) as f64;
    if n == 0.0 || exposure_now <= 0.0 || exposure_before <= 0.0 {
        return 0.0;
    }
    let p0 = exposure_now / (exposure_now + exposure_before);
    let excess = now as f64 - n * p0;
    let corrected = excess.signum() * (excess.abs() - 0.5).max(0.0);
    corrected / (n * p0 * (1.0 - p0)).sqrt()
}

/// Offset of latency log ratios for a service's own work, seconds (10 µs).
pub(crate) const SELF_TIME_OFFSET_SECONDS: f64 = 10e-6;

/// Offset of latency log ratios for call gaps, seconds (100 µs): gaps are network round trips,
/// whose sub-millisecond jitter is not a fault.
const GAP_OFFSET_SECONDS: f64 = 100e-6;

/// `(baseline median, current median, log ratio)` in seconds, `None` below `min` samples on
/// either side.
pub(crate) fn median_shift(
    current: &DurationSketch,
    baseline: &DurationSketch,
    min: u64,
    offset: f64,
) -> Option<(f64, f64, f64)> {
    if current.count() < min || baseline.count() < min {
        return None;
    }
    let (c, b) = (
        current.quantile_seconds(0.5)?,
        baseline.quantile_seconds(0.5)?,
    );
    Some((b, c, log_ratio(c, b, offset)))
}

/// Trace spectrum of `service` (spectrum-based fault localization over traces: a service that
/// abnormal traces pass through and normal ones avoid is the likelier cause; Jones & Harrold,
/// ASE 2005; TraceRCA, Li et al., IWQoS 2021): how much more the traces through it changed than
/// the traces elsewhere, between the reference and the window.
///
/// `through` and `all` are `(window, reference)` traces through the service and over all
/// services; the traces elsewhere are `all` less `through`. With `Δ` the change from the
/// reference to the window, the score is
/// `(Δ mean ln(end-to-end seconds) through it − the same elsewhere)
///  + (Δ share of failed traces through it − the same elsewhere)`,
/// the first in natural-log units (0.69: the traces through it doubled in duration more than
/// the others), the second a share (0.5: half its traces failed more than the others'). A side
/// with fewer than `min` traces (elsewhere: none, for a service every trace passes through)
/// counts as unchanged; `None` when the traces through it are fewer than `min` on either side.
pub(crate) fn trace_spectrum(
    service: &str,
    through: (&TraceStats, &TraceStats),
    all: (&TraceStats, &TraceStats),
    min: u64,
) -> Option<Evidence> {
    let rest = (all.0.less(through.0), all.1.less(through.1));
    let enough = |(now, before): (&TraceStats, &TraceStats)| {
        now.traces >= min.max(2) && before.traces >= min.max(2)
    };
    if !enough(through) {
        return None;
    }
    let shift = |(now, before): (&TraceStats, &TraceStats)| -> (f64, f64) {
        if !enough((now, before)) {
            return (0.0, 0.0);
        }
        let mean = |t: &TraceStats| t.ln_mean().unwrap_or(0.0);
        let share = |t: &TraceStats| t.error_share().unwrap_or(0.0);
        (mean(now) - mean(before), share(now) - share(before))
    };
    let (slower, failing) = shift(through);
    let (slower_elsewhere, failing_elsewhere) = shift((&rest.0, &rest.1));
    let score = (slower - slower_elsewhere) + (failing - failing_elsewhere);
    let pct = |t: &TraceStats| 100.0 * t.error_share().unwrap_or(0.0);
    let elsewhere = if enough((&rest.0, &rest.1)) {
        format!(
            "; elsewhere ×{:.2}, {:.0}% failed ({:.0}% before)",
            slower_elsewhere.exp(),
            pct(&rest.0),
            pct(&rest.1)
        )
    } else {
        "; every trace passes through it".to_owned()
    };
    Some(Evidence::new(
        EvidenceSignal::Traces,
        "trace_spectrum",
        format!(
            "{} traces through {service}: end to end ×{:.2} (geometric mean), {:.0}% failed \
             ({:.0}% of {} before){elsewhere}",
            through.0.traces,
            slower.exp(),
            pct(through.0),
            pct(through.1),
            through.1.traces
        ),
        0.0,
        score,
        score,
    ))
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1e3)
}

/// A median-duration shift as evidence: `what` names the measure in the summary ("median self
/// time of checkout").
fn duration_shift(
    feature: &'static str,
    what: &str,
    current: &DurationSketch,
    baseline: &DurationSketch,
    min: u64,
) -> Option<Evidence> {
    let (b, c, x) = median_shift(current, baseline, min, SELF_TIME_OFFSET_SECONDS)?;
    let summary = format!(
        "{what} went from {} to {} (×{:.2})",
        ms(b),
        ms(c),
        (c / b.max(1e-9))
    );
    Some(Evidence::new(
        EvidenceSignal::Traces,
        feature,
        summary,
        b,
        c,
        x,
    ))
}

/// Shift of a service's own work: median self time, current vs baseline, with at least `min`
/// samples on each side.
pub(crate) fn self_time(
    service: &str,
    current: &DurationSketch,
    baseline: &DurationSketch,
    min: u64,
) -> Option<Evidence> {
    let what = format!("median self time of {service}");
    duration_shift("self_time_p50", &what, current, baseline, min)
}

/// Shift of a service's median request duration as its server-side request-duration metrics
/// give it (each point's mean), where it has no spans: a metric shows the whole request, the
/// time in its callees included, so the ranking discounts it when a callee slowed as much (see
/// `propagation/`).
///
/// A point's mean stands for all the requests it counts, so the sketches hold the spread of
/// the points, not of requests, and their counts overstate what is known: the samples are the
/// points (`RedStats::points`). The shift counts only when it is more than
/// [`crate::stats::BAND`] standard errors: the standard error of a difference of two medians of
/// `k_now` and `k_before` points, `1.2533·σ·√(1/k_now + 1/k_before)` (the median's asymptotic
/// efficiency, √(π/2)), `σ` the robust standard deviation of the baseline points' log durations
/// (their interquartile range / 1.349); `None` within it. A gateway that answers a few requests
/// a second, whose per-minute means wander ×2 in a quiet hour, then raises nothing on a ×1.8
/// median of three minutes, while a service whose many points agree shows a ×1.2.
pub(crate) fn server_duration(
    service: &str,
    current: &RedStats,
    baseline: &RedStats,
    min: u64,
) -> Option<Evidence> {
    let what = format!("median request duration of {service} (server metrics)");
    points_shift("server_duration_p50", &what, current, baseline, min)
}

/// Shift of the median duration of queries to `database` as its callers' client metrics
/// (`db.client.operation.duration`) give it, where they sent no spans: as
/// [`server_duration`], the samples are the metric points, and the shift counts only beyond
/// [`crate::stats::BAND`] standard errors of the points' spread. A managed table that a few
/// calls a minute reach has per-minute means that wander, and a ×1.3 median of five points
/// against thirty is within them.
pub(crate) fn query_duration_from_metrics(
    database: &str,
    current: &RedStats,
    baseline: &RedStats,
    min: u64,
) -> Option<Evidence> {
    let what = format!("median duration of queries to {database} (client metrics)");
    points_shift("query_duration_p50", &what, current, baseline, min)
}

/// A median-duration shift of metric points ([`server_duration`]) as evidence read from
/// metrics; `None` within the points' noise.
fn points_shift(
    feature: &'static str,
    what: &str,
    current: &RedStats,
    baseline: &RedStats,
    min: u64,
) -> Option<Evidence> {
    if current.points.min(baseline.points) < MIN_POINTS && current.points.max(baseline.points) > 0 {
        return None;
    }
    let e = duration_shift(feature, what, &current.duration, &baseline.duration, min)?;
    let points = |r: &RedStats| r.points.max(1) as f64;
    // The points' spread, no finer than the sketch tells values apart; the band widened by
    // Student's t for a spread read from few points.
    let sigma = log_spread(&baseline.duration)?.max(MIN_LOG_SPREAD);
    let se = 1.2533 * sigma * (1.0 / points(current) + 1.0 / points(baseline)).sqrt();
    // Figures that do not count their points (0) are read as before: one point each side.
    let widen = if baseline.points > 0 {
        small_sample_factor(baseline.points)
    } else {
        1.0
    };
    (e.change.abs() > crate::stats::BAND * widen * se).then(|| Evidence {
        summary: format!(
            "{} over {} metric points ({} before{})",
            e.summary,
            current.points,
            baseline.points,
            if widen > 1.0 {
                ": a short baseline, so only a shift this large counts"
            } else {
                ""
            }
        ),
        ..e.read_from_metrics()
    })
}

/// Fewest metric points on each side of a shift read from metrics.
const MIN_POINTS: u64 = 2;

/// The smallest spread of log durations a sketch can show: twice its relative accuracy
/// (`loupe_graph`'s DDSketch, α = 1%), the width of one of its buckets.
const MIN_LOG_SPREAD: f64 = 0.02;

/// How much wider a band must be when the spread it uses is read from `k` points: Student's
/// t quantile (97.5%, `k − 1` degrees of freedom) over the normal's (1.96), 1 from 31 points
/// on; fewer than 2 points read as 2 (one degree of freedom, ×6.5).
fn small_sample_factor(k: u64) -> f64 {
    // t(0.975, df) for df = 1..=29 (any statistics table).
    const T: [f64; 29] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045,
    ];
    let df = k.max(2) - 1;
    T.get(df as usize - 1).map_or(1.0, |t| t / 1.96)
}

/// Robust standard deviation of a sketch's log durations: the interquartile range of
/// `ln(seconds + SELF_TIME_OFFSET_SECONDS)` over 1.349 (the normal's IQR in SDs).
fn log_spread(sketch: &DurationSketch) -> Option<f64> {
    let ln = |q| Some((sketch.quantile_seconds(q)? + SELF_TIME_OFFSET_SECONDS).ln());
    Some((ln(0.75)? - ln(0.25)?) / 1.349)
}

/// Burst of failed requests of a service as its server-side request-duration metrics count
/// them, where it has no spans.
pub(crate) fn failed_requests(
    service: &str,
    current: &RedStats,
    baseline: &RedStats,
) -> Option<Evidence> {
    let what = format!("requests to {service} (server metrics)");
    failures("failed_requests", &what, current, baseline).map(Evidence::read_from_metrics)
}

/// Shift of the median duration of the queries to a database, pooled over its callers' client
/// spans: a database is seen from outside, so the time its callers wait on it is its self time.
pub(crate) fn query_duration(
    database: &str,
    current: &DurationSketch,
    baseline: &DurationSketch,
    min: u64,
) -> Option<Evidence> {
    let what = format!("median duration of queries to {database}");
    duration_shift("query_duration_p50", &what, current, baseline, min)
}

/// Shift of the gap (client span self time: time outside the callee) on one call edge.
pub(crate) fn call_gap(
    source: &str,
    target: &str,
    current: &DurationSketch,
    baseline: &DurationSketch,
    min: u64,
) -> Option<Evidence> {
    let (b, c, x) = median_shift(current, baseline, min, GAP_OFFSET_SECONDS)?;
    let summary = format!(
        "median gap of calls {source} → {target} (time outside {target}) went from {} to {}",
        ms(b),
        ms(c)
    );
    Some(Evidence::new(
        EvidenceSignal::Traces,
        "call_gap_p50",
        summary,
        b,
        c,
        x,
    ))
}

/// Burst of failures: `current.errors` against the baseline error ratio times `current.calls`
/// (a Poisson z-score), as evidence `feature` whose summary reads "`errors` of `calls` `what`
/// failed".
pub(crate) fn failures(
    feature: &'static str,
    what: &str,
    current: &RedStats,
    baseline: &RedStats,
) -> Option<Evidence> {
    if current.errors == 0 {
        return None;
    }
    let ratio_b = if baseline.calls > 0 {
        baseline.errors as f64 / baseline.calls as f64
    } else {
        0.0
    };
    let x = poisson_z(current.errors as f64, ratio_b * current.calls as f64);
    let ratio_c = current.errors as f64 / current.calls.max(1) as f64;
    let summary = format!(
        "{} of {} {what} failed ({:.1}%, baseline {:.1}%)",
        current.errors,
        current.calls,
        ratio_c * 100.0,
        ratio_b * 100.0
    );
    Some(Evidence::new(
        EvidenceSignal::Traces,
        feature,
        summary,
        ratio_b,
        ratio_c,
        x,
    ))
}

/// Burst of error spans of a service.
pub(crate) fn error_spans(
    service: &str,
    current: &RedStats,
    baseline: &RedStats,
) -> Option<Evidence> {
    failures(
        "error_spans",
        &format!("spans of {service}"),
        current,
        baseline,
    )
}

/// Burst of failed calls into a service, as its callers saw them (errors on its incoming
/// `calls` edges). It counts what the service's own spans cannot: calls it never answered
/// (connection refused while its pods restart, timeouts across a partition), which fail in the
/// caller's client span with no server span of the callee.
pub(crate) fn failed_calls_into(
    service: &str,
    current: &RedStats,
    baseline: &RedStats,
) -> Option<Evidence> {
    let what = format!("calls into {service}");
    failures("failed_calls_into", &what, current, baseline)
}

/// Burst of failed queries to a database, as its callers' client spans report them.
pub(crate) fn failed_queries(
    database: &str,
    current: &RedStats,
    baseline: &RedStats,
) -> Option<Evidence> {
    let what = format!("queries to {database}");
    failures("failed_queries", &what, current, baseline)
}

/// Burst of error log records: errors now against the baseline rate per unit of exposure
/// (requests when both windows have enough of them, else seconds of observed time), scored by
/// [`rate_change_z`].
pub(crate) fn error_logs(
    service: &str,
    (current, baseline): (u64, u64),
    (exposure_now, exposure_before): (f64, f64),
    unit: &str,
) -> Option<Evidence> {
    if (current == 0 && baseline == 0) || exposure_now <= 0.0 || exposure_before <= 0.0 {
        return None;
    }
    let x = rate_change_z(current, baseline, (exposure_now, exposure_before));
    let (rc, rb) = (
        current as f64 / exposure_now,
        baseline as f64 / exposure_before,
    );
    let summary = format!(
        "{current} error log records from {service} ({rc:.3} per {unit}, baseline {rb:.3})"
    );
    Some(Evidence::new(
        EvidenceSignal::Logs,
        "error_log_records",
        summary,
        rb,
        rc,
        x,
    ))
}

/// Error log records per request against the service's usual rate in a longer history (the
/// median over past periods, so that a fault that outlived its first injection and tainted the
/// baseline does not hide itself).
pub(crate) fn error_logs_against_history(
    service: &str,
    current: u64,
    requests: u64,
    (usual_rate, periods): (f64, usize),
) -> Option<Evidence> {
    if current == 0 || requests == 0 {
        return None;
    }
    let x = poisson_z(current as f64, usual_rate * requests as f64);
    let rc = current as f64 / requests as f64;
    let summary = format!(
        "{current} error log records from {service} ({rc:.3} per request; usually {usual_rate:.3}, the median over {periods} past periods)"
    );
    Some(Evidence::new(
        EvidenceSignal::Logs,
        "error_log_records",
        summary,
        usual_rate,
        rc,
        x,
    ))
}

/// Deficit of log records per call against the usual rate in a longer history (the median over
/// past periods): a code path that stopped running, when the baseline already lacked it.
/// `logs` counts routine records only (below ERROR): fewer error records means a problem went
/// away, not work left undone. The score is the shortfall in standard deviations of a
/// quasi-Poisson count, `(expected − logs) / √(φ·(expected + 1))`, `φ` the history's
/// dispersion (≥ 1; 1 is Poisson).
pub(crate) fn log_deficit_against_history(
    label: &str,
    (logs, requests): (u64, u64),
    (usual_rate, periods, dispersion): (f64, usize, f64),
    min: u64,
) -> Option<Evidence> {
    if requests < min || usual_rate <= 0.0 {
        return None;
    }
    let expected = usual_rate * requests as f64;
    let x = (expected - logs as f64) / (dispersion.max(1.0) * (expected + 1.0)).sqrt();
    let pc = logs as f64 / requests as f64;
    let summary = format!("{label} wrote {pc:.2} routine log records per request (usually {usual_rate:.2}, the median over {periods} past periods): {logs} where {expected:.0} were expected");
    Some(Evidence::new(
        EvidenceSignal::Logs,
        "log_records_per_request",
        summary,
        usual_rate,
        pc,
        x,
    ))
}

/// Deficit of log records per request entering the service: a code path that stopped running
/// stops logging while requests still arrive. `logs` counts routine records only (below
/// ERROR). The score is the shortfall in standard deviations of a quasi-Poisson count,
/// `(expected − logs) / √(φ·(expected + 1))`, `φ` the `dispersion` of the records (≥ 1; 1 is
/// Poisson).
pub(crate) fn log_deficit(
    service: &str,
    logs: (u64, u64),
    requests: (u64, u64),
    min: u64,
    dispersion: f64,
) -> Option<Evidence> {
    let ((logs_c, logs_b), (req_c, req_b)) = (logs, requests);
    if req_c < min || req_b < min || logs_b == 0 {
        return None;
    }
    let expected = logs_b as f64 * req_c as f64 / req_b as f64;
    let x = (expected - logs_c as f64) / (dispersion.max(1.0) * (expected + 1.0)).sqrt();
    let (pc, pb) = (logs_c as f64 / req_c as f64, logs_b as f64 / req_b as f64);
    let summary = format!("{service} wrote {pc:.2} routine log records per request (baseline {pb:.2}): {logs_c} where {expected:.0} were expected");
    Some(Evidence::new(
        EvidenceSignal::Logs,
        "log_records_per_request",
        summary,
        pb,
        pc,
        x,
    ))
}

/// Change of a pod utilization metric (a 0..1 share of the limit), in percentage points: the
/// peak bucket now ([`GaugeStats::max`], the largest bucket mean) against the baseline mean (a
/// memory leak is killed at its peak, and the restart pulls the window's mean back down). Both
/// directions count: a peak below the usual mean means the pod restarted and stayed low.
pub(crate) fn utilization_change(
    pod: &str,
    feature: &'static str,
    current: &GaugeStats,
    baseline: &GaugeStats,
) -> Option<Evidence> {
    let b = baseline.mean()?;
    let c = current.max;
    if current.count == 0 {
        return None;
    }
    let x = ((c - b) * 100.0).abs();
    let summary = format!(
        "{feature} of pod {pod} went from {:.1}% to {:.1}%",
        b * 100.0,
        c * 100.0
    );
    Some(Evidence::new(
        EvidenceSignal::Metrics,
        feature,
        summary,
        b,
        c,
        x,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod's utilization change in points, one line per case: the window's (mean, peak), the
    /// baseline's mean, the change.
    #[test]
    fn utilization_change_reads_the_windows_peak() {
        let cases: [((f64, f64), f64, f64); 4] = [
            // A leak killed at its limit: the restart pulls the mean to 0.30, the peak stays.
            ((0.30, 0.98), 0.25, 73.0),
            // Steady: the peak a point above the usual mean.
            ((0.25, 0.26), 0.25, 1.0),
            // Restarted before the window and stayed low: the peak below the usual mean.
            ((0.10, 0.12), 0.25, 13.0),
            // A CPU burst.
            ((0.20, 0.90), 0.20, 70.0),
        ];
        for ((mean, peak), before, want) in cases {
            let gauge = |mean: f64, max: f64| GaugeStats {
                sum: mean * 10.0,
                count: 10,
                max,
            };
            let e = utilization_change("p", "u", &gauge(mean, peak), &gauge(before, before))
                .expect("both windows have points");
            assert!(
                (e.change - want).abs() < 1e-9,
                "{mean} {peak} {before}: {e:?}"
            );
        }
        let empty = GaugeStats::default();
        assert!(utilization_change(
            "p",
            "u",
            &empty,
            &GaugeStats {
                sum: 1.0,
                count: 4,
                max: 0.3
            }
        )
        .is_none());
    }

    /// `(now, before, exposures) → z`: the conditional binomial test's normal approximation.
    #[test]
    fn rate_change_z_counts_the_baselines_uncertainty() {
        let check = |now, before, exposure, z: f64| {
            let got = rate_change_z(now, before, exposure);
            assert!(
                (got - z).abs() < 0.005,
                "{now} vs {before} over {exposure:?}: {got}"
            );
        };
        // 4 records against none in twice the exposure: p₀ = ⅓, (4 − 4/3 − ½)/√(8/9).
        check(4, 0, (1.0, 2.0), 2.298);
        // Four times the records: the score grows as their square root, not fourfold.
        check(16, 0, (1.0, 2.0), 5.392);
        // The same rate on both sides, and fewer now: no burst.
        check(10, 20, (1.0, 2.0), 0.0);
        check(2, 20, (1.0, 2.0), -2.186);
        // Nothing to compare.
        check(0, 0, (1.0, 2.0), 0.0);
        check(5, 0, (1.0, 0.0), 0.0);
    }

    /// A metrics-only service's per-minute points, `(mean seconds, requests)`.
    fn points(points: &[(f64, u64)]) -> RedStats {
        let mut red = RedStats::default();
        for &(mean, n) in points {
            red.duration.add_many(mean, n);
            red.calls += n;
            red.points += 1;
        }
        red
    }

    #[test]
    fn a_metrics_duration_shift_must_leave_its_points_spread() {
        let check = |baseline: &[(f64, u64)], current: &[(f64, u64)], shifted: bool| {
            let e = server_duration("gw", &points(current), &points(baseline), 50);
            assert_eq!(e.is_some(), shifted, "{baseline:?} -> {current:?}: {e:?}");
        };
        // A gateway whose minutes wander (Nezha Train-Ticket's UI, 08:47–08:55): ×1.8 is noise.
        let wandering = [
            (0.225, 60),
            (0.35, 76),
            (0.241, 88),
            (0.405, 120),
            (0.483, 52),
        ];
        check(&wandering, &[(0.633, 92), (0.717, 84), (0.421, 120)], false);
        check(&wandering, &[(2.1, 92), (1.9, 84), (2.5, 120)], true);
        // A steady service: ×1.5 is a shift, ±3% is not.
        let steady = [(0.100, 600), (0.104, 600), (0.097, 600), (0.102, 600)];
        check(&steady, &[(0.15, 600), (0.16, 600), (0.149, 600)], true);
        check(&steady, &[(0.105, 600), (0.099, 600), (0.101, 600)], false);
        // Many points that agree: a ×1.25 shift within one point's spread still shows.
        let many: Vec<(f64, u64)> = (0..40)
            .map(|i| (0.08 + 0.01 * (i % 5) as f64, 50))
            .collect();
        let later: Vec<(f64, u64)> = many.iter().map(|&(m, n)| (m * 1.25, n)).collect();
        check(&many, &later, true);
        check(&many[..2], &later[..2], false);
        // Too few requests to read a median.
        check(&steady, &[(0.15, 10)], false);
        // One point in the window is not a shift, however large.
        check(&steady, &[(0.5, 600)], false);
        // Three points of baseline: a band ×2.2 wider (`few_points_widen_the_band`), and ×1.5
        // against a steady baseline still shows.
        check(
            &steady[..3],
            &[(0.15, 600), (0.16, 600), (0.149, 600)],
            true,
        );
    }

    /// Student's t over the normal's 1.96: ×6.5 for 2 points, ×2.2 for 3, ×1.3 for 6, 1 from
    /// 31 on.
    #[test]
    fn few_points_widen_the_band() {
        for (k, factor) in [
            (0, 6.48),
            (2, 6.48),
            (3, 2.20),
            (6, 1.31),
            (30, 1.04),
            (31, 1.0),
        ] {
            let got = small_sample_factor(k);
            assert!((got - factor).abs() < 0.01, "{k} points: {got}");
        }
    }

    #[test]
    fn poisson_z_and_log_ratio() {
        assert_eq!(poisson_z(10.0, 3.0), 3.5);
        assert!((log_ratio(2.0, 1.0, 0.0) - 2f64.ln()).abs() < 1e-12);
        assert_eq!(log_ratio(0.0, 0.0, 1.0), 0.0);
    }

    #[test]
    fn error_logs_against_history_uses_the_usual_rate() {
        let e = error_logs_against_history("s", 12, 12, (0.0, 3)).unwrap();
        assert_eq!(e.change, poisson_z(12.0, 0.0));
        let usual = error_logs_against_history("s", 12, 12, (1.0, 3)).unwrap();
        assert_eq!(usual.change, 0.0);
        assert!(error_logs_against_history("s", 0, 12, (0.0, 3)).is_none());
    }

    #[test]
    fn log_deficit_against_history_expects_the_usual_rate() {
        let e = log_deficit_against_history("s op", (10, 10), (2.0, 5, 1.0), 5).unwrap();
        assert_eq!(e.change, 10.0 / 21f64.sqrt());
        // Records that vary four times as much as Poisson counts: half the score.
        let bundled = log_deficit_against_history("s op", (10, 10), (2.0, 5, 4.0), 5).unwrap();
        assert_eq!(bundled.change, 10.0 / 84f64.sqrt());
        assert!(log_deficit_against_history("s op", (10, 4), (2.0, 5, 1.0), 5).is_none());
        assert!(log_deficit_against_history("s op", (10, 10), (0.0, 5, 1.0), 5).is_none());
    }

    #[test]
    fn self_time_needs_samples_on_both_sides() {
        let mut current = DurationSketch::default();
        let mut baseline = DurationSketch::default();
        (0..10).for_each(|_| current.add_nanos(4_000_000));
        assert!(self_time("s", &current, &baseline, 5).is_none());
        (0..10).for_each(|_| baseline.add_nanos(1_000_000));
        let e = self_time("s", &current, &baseline, 5).unwrap();
        assert!((e.change - (4.01f64 / 1.01).ln()).abs() < 0.03, "{e:?}");
    }

    #[test]
    fn log_deficit_counts_missing_records() {
        // Baseline: 100 records for 50 requests; now 50 requests but only 20 records.
        let e = log_deficit("s", (20, 100), (50, 50), 5, 1.0).unwrap();
        assert!((e.change - 80.0 / 101f64.sqrt()).abs() < 1e-9);
        assert!(log_deficit("s", (20, 100), (3, 50), 5, 1.0).is_none());
    }

    /// One line per case: the traces through the service and the traces elsewhere, each
    /// (window, reference) as (count, seconds each, failed); the score expected.
    #[test]
    fn trace_spectrum_compares_the_traces_through_a_service_with_the_others() {
        type Traces = (u64, f64, u64);
        let stats = |(n, seconds, failed): Traces| {
            let mut t = TraceStats::default();
            for i in 0..n {
                t.add(seconds, i < failed);
            }
            t
        };
        let ln2 = 2f64.ln();
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, [Traces; 2], [Traces; 2], Option<f64>)] = &[
            (
                "its traces doubled, the others did not",
                [(50, 0.2, 0), (50, 0.1, 0)],
                [(100, 0.1, 0), (100, 0.1, 0)],
                Some(ln2),
            ),
            (
                "every trace doubled: no more than elsewhere",
                [(50, 0.2, 0), (50, 0.1, 0)],
                [(100, 0.2, 0), (100, 0.1, 0)],
                Some(0.0),
            ),
            (
                "every trace passes through it: elsewhere counts as unchanged",
                [(50, 0.2, 0), (50, 0.1, 0)],
                [(0, 0.1, 0), (0, 0.1, 0)],
                Some(ln2),
            ),
            (
                "half its traces failed, none elsewhere",
                [(50, 0.1, 25), (50, 0.1, 0)],
                [(100, 0.1, 0), (100, 0.1, 0)],
                Some(0.5),
            ),
            (
                "failures everywhere, a quarter more through it",
                [(40, 0.1, 20), (40, 0.1, 0)],
                [(100, 0.1, 25), (100, 0.1, 0)],
                Some(0.25),
            ),
            (
                "too few traces through it",
                [(3, 0.2, 0), (50, 0.1, 0)],
                [(100, 0.1, 0), (100, 0.1, 0)],
                None,
            ),
        ];
        for (name, through, elsewhere, expected) in cases {
            let (through_now, through_before) = (stats(through[0]), stats(through[1]));
            let (mut all_now, mut all_before) = (stats(elsewhere[0]), stats(elsewhere[1]));
            all_now.merge(&through_now);
            all_before.merge(&through_before);
            let got = trace_spectrum(
                "cart",
                (&through_now, &through_before),
                (&all_now, &all_before),
                5,
            );
            match (got, expected) {
                (None, None) => {}
                (Some(e), Some(x)) => {
                    assert!((e.change - x).abs() < 1e-9, "{name}: {} ≠ {x}", e.change);
                    assert!(e.summary.contains("traces through cart"), "{}", e.summary);
                }
                (got, x) => panic!("{name}: {got:?}, expected {x:?}"),
            }
        }
    }
}
