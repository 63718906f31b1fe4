//! Onset: when a cause's own signal left its baseline, relative to the incident.
//!
//! A root cause usually departs from its baseline no later than the symptoms it causes; a
//! candidate whose signal moved only after the incident began is more likely a victim. For each
//! cause, the signal of its strongest evidence that has a per-step series (error ratio, error
//! log records, latency, log records per call) is read in buckets over the baseline and the
//! analysed window. The onset is the first step of the window outside the baseline's band that
//! the signal stays outside: a step is out when it is more than `BAND` (3) robust standard
//! deviations (1.4826 × the median absolute deviation of the baseline steps, with a floor per
//! signal: Poisson for counts, a share of the level for ratios of time and records) from the
//! baseline steps' median, in the direction the evidence moved; it stays out when at least two
//! of it and the two steps after it are out (the last steps of the window need only themselves).
//! This is the change-point reading of a control chart (Shewhart; the SRE workbook's alerting on
//! a sustained burn rather than one bad step), not a model fit.

use loupe_graph::{HistoryPoint, KnowledgeGraph};

use crate::cause::{Cause, CauseKind, Onset};
use crate::stats::{median, BAND};

/// Fewest baseline steps with data for a band.
const MIN_BASELINE_STEPS: usize = 3;

/// A per-step signal of a service and the direction its evidence moved.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signal {
    ErrorRatio,
    ErrorLogs,
    /// Self time when the evidence is about self time, else the median duration.
    Latency {
        self_time: bool,
    },
    /// The 90th-percentile duration (a latency objective's symptom).
    TailLatency,
    LogsPerCall,
    /// Requests per step (a traffic symptom: only a fall counts).
    Requests,
}

impl Signal {
    /// The signal behind an evidence feature ([`crate::Evidence::feature`]), when it has a
    /// per-step series on the service.
    fn of_feature(feature: &str) -> Option<Self> {
        Some(match feature {
            "error_spans" | "failed_requests" | "failed_calls_into" => Self::ErrorRatio,
            "error_log_records" => Self::ErrorLogs,
            "self_time_p50" => Self::Latency { self_time: true },
            "server_duration_p50" | "call_gap_p50" | "trace_spectrum" => {
                Self::Latency { self_time: false }
            }
            "log_records_per_request" | "log_path_shift" => Self::LogsPerCall,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::ErrorRatio => "error_ratio",
            Self::ErrorLogs => "error_log_records",
            Self::Latency { .. } => "latency",
            Self::TailLatency => "latency_p90",
            Self::LogsPerCall => "log_records_per_call",
            Self::Requests => "requests",
        }
    }

    /// The step's value; `None` for a step without the calls the value needs.
    fn value(self, p: &HistoryPoint) -> Option<f64> {
        let per_call = |n: u64| (p.red.calls > 0).then(|| n as f64 / p.red.calls as f64);
        match self {
            Self::ErrorRatio => per_call(p.red.errors),
            Self::ErrorLogs => Some(p.error_log_records as f64),
            Self::Latency { self_time: true } => {
                p.red.self_time_mean_seconds.or(p.red.duration_p50_seconds)
            }
            Self::Latency { self_time: false } => p.red.duration_p50_seconds,
            Self::TailLatency => p.red.duration_p90_seconds,
            Self::LogsPerCall => per_call(p.log_records),
            Self::Requests => Some(p.red.calls as f64),
        }
    }

    /// The least spread of the band around a baseline median `center`.
    fn floor(self, center: f64) -> f64 {
        match self {
            // One failed call in a hundred.
            Self::ErrorRatio => 0.01,
            // Poisson counts.
            Self::ErrorLogs | Self::Requests => center.max(1.0).sqrt(),
            Self::Latency { .. } | Self::TailLatency => 0.1 * center.abs().max(1e-4),
            Self::LogsPerCall => (0.1 * center.abs()).max(0.05),
        }
    }

    /// Whether a step `z` robust standard deviations from the baseline median is out of band:
    /// a rise for most signals (a faster or cleaner service is no onset), a fall as well for
    /// log records per call (fewer is work left undone), only a fall for requests.
    fn out_of_band(self, z: f64) -> bool {
        match self {
            Self::LogsPerCall => z.abs() > BAND,
            Self::Requests => z < -BAND,
            _ => z > BAND,
        }
    }
}

/// The index in `window` of the first step out of the band of `baseline` that stays out (see
/// the module); `None` without [`MIN_BASELINE_STEPS`] baseline values or when no step is.
fn first_sustained_departure(
    baseline: &[Option<f64>],
    window: &[Option<f64>],
    signal: Signal,
) -> Option<usize> {
    let mut base: Vec<f64> = baseline.iter().flatten().copied().collect();
    if base.len() < MIN_BASELINE_STEPS {
        return None;
    }
    let center = median(&mut base);
    let mut deviations: Vec<f64> = base.iter().map(|v| (v - center).abs()).collect();
    let spread = (1.4826 * median(&mut deviations)).max(signal.floor(center));
    let out = |v: &Option<f64>| v.is_some_and(|v| signal.out_of_band((v - center) / spread));
    (0..window.len()).find(|&i| {
        let ahead = &window[i..window.len().min(i + 3)];
        out(&window[i]) && ahead.iter().filter(|v| out(v)).count() >= ahead.len().min(2)
    })
}

/// The onset of `cause` in `graph`: the signals of its evidence, strongest first, over the
/// baseline `[baseline.0, baseline.1)` and the window `[window.0, window.1)` in graph buckets;
/// the first signal with a sustained departure gives it. Seconds count from `reference` (the
/// window's start; [`Onset::measure_from`] moves it to the symptoms' onset). `None` for
/// candidates other than services and changes of a service, and when no signal departs.
pub fn onset(
    graph: &KnowledgeGraph,
    cause: &Cause,
    baseline: (u64, u64),
    window: (u64, u64),
    reference: u64,
) -> Option<Onset> {
    let service = match cause.entity.kind {
        CauseKind::Service => cause.entity.name.as_str(),
        CauseKind::Change => crate::cause::change_target(&cause.entity.name)?,
        _ => return None,
    };
    let series = Series::read(graph, service, baseline, window)?;
    let mut tried = Vec::new();
    for e in &cause.evidence {
        let Some(signal) = Signal::of_feature(&e.feature) else {
            continue;
        };
        if tried.contains(&signal) {
            continue;
        }
        tried.push(signal);
        if let Some(at) = series.departure(signal) {
            return Some(Onset::new(at, service, signal.name(), reference));
        }
    }
    None
}

/// When an incident's symptom began: the onset (as in the module) of a user-facing `service`'s
/// error ratio for the objective `error_ratio`, of its 90th-percentile duration for `latency`,
/// of its requests per step (a fall) for `traffic`, in `window` against `baseline`; `None` for
/// another objective or when none departs.
pub fn symptom_onset(
    graph: &KnowledgeGraph,
    service: &str,
    objective: &str,
    baseline: (u64, u64),
    window: (u64, u64),
) -> Option<u64> {
    let signal = match objective {
        "error_ratio" => Signal::ErrorRatio,
        "latency" => Signal::TailLatency,
        "traffic" => Signal::Requests,
        _ => return None,
    };
    Series::read(graph, service, baseline, window)?.departure(signal)
}

/// A service's steps over the baseline and over the window.
struct Series {
    before: Vec<HistoryPoint>,
    during: Vec<HistoryPoint>,
}

impl Series {
    fn read(
        graph: &KnowledgeGraph,
        service: &str,
        baseline: (u64, u64),
        window: (u64, u64),
    ) -> Option<Self> {
        let step = graph.config().bucket_nanos;
        let id = format!("service:{service}");
        Some(Self {
            before: graph
                .entity_history(&id, baseline.0, baseline.1, step)
                .ok()?,
            during: graph.entity_history(&id, window.0, window.1, step).ok()?,
        })
    }

    /// The start of the step where `signal` departs, unix ns.
    fn departure(&self, signal: Signal) -> Option<u64> {
        let values = |points: &[HistoryPoint]| -> Vec<Option<f64>> {
            points.iter().map(|p| signal.value(p)).collect()
        };
        let i = first_sustained_departure(&values(&self.before), &values(&self.during), signal)?;
        Some(self.during[i].start_unix_nano)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_that_moved_first_has_a_negative_onset() {
        let second = 1_000_000_000;
        let mut onset = Onset::new(100 * second, "db", "latency", 90 * second);
        assert_eq!(onset.seconds_from_onset, 10.0);
        assert_eq!(
            onset.summary,
            "the latency of db left its baseline 10 s after the window's start"
        );
        onset.measure_from(130 * second, "the symptoms began");
        assert_eq!(onset.seconds_from_onset, -30.0);
        assert_eq!(
            onset.summary,
            "the latency of db left its baseline 30 s before the symptoms began"
        );
    }

    #[test]
    fn the_onset_is_the_first_step_that_stays_out_of_the_baseline_band() {
        let some = |v: &[f64]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        let base = some(&[0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        let latency = some(&[0.10, 0.11, 0.09, 0.10, 0.10, 0.12]);
        let ratio = some(&[0.0, 0.01, 0.0, 0.0, 0.02, 0.0]);
        let per_call = some(&[2.0, 2.0, 2.1, 1.9, 2.0, 2.0]);
        // (baseline, window, signal, onset)
        type Case<'a> = (&'a [Option<f64>], Vec<Option<f64>>, Signal, Option<usize>);
        let cases: [Case; 8] = [
            (
                &base,
                some(&[0.0, 1.0, 9.0, 8.0, 12.0]),
                Signal::ErrorLogs,
                Some(2),
            ),
            // One step out and back: a blip, not an onset.
            (
                &base,
                some(&[0.0, 9.0, 0.0, 0.0, 1.0]),
                Signal::ErrorLogs,
                None,
            ),
            // The last step of the window needs only itself.
            (
                &base,
                some(&[0.0, 1.0, 0.0, 0.0, 9.0]),
                Signal::ErrorLogs,
                Some(4),
            ),
            // Within Poisson noise of a count of 0 or 1 a step.
            (&base, some(&[2.0, 3.0, 2.0, 3.0]), Signal::ErrorLogs, None),
            (
                &latency,
                some(&[0.1, 0.1, 0.3, 0.1, 0.3]),
                Signal::Latency { self_time: true },
                Some(2),
            ),
            // Faster is not a latency onset; fewer records per call is a log onset.
            (
                &latency,
                some(&[0.1, 0.01, 0.01, 0.01]),
                Signal::Latency { self_time: false },
                None,
            ),
            (
                &per_call,
                some(&[2.0, 1.0, 1.0, 1.1]),
                Signal::LogsPerCall,
                Some(1),
            ),
            // Steps without calls are skipped, not read as 0.
            (
                &ratio,
                vec![Some(0.0), None, Some(0.5), None, Some(0.4)],
                Signal::ErrorRatio,
                Some(2),
            ),
        ];
        for (i, (baseline, window, signal, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                first_sustained_departure(baseline, &window, signal),
                expected,
                "case {i}"
            );
        }
        assert_eq!(
            first_sustained_departure(&base[..2], &some(&[9.0, 9.0]), Signal::ErrorLogs),
            None,
            "too few baseline steps for a band"
        );
    }
}
