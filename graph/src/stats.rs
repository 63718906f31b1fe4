//! RED statistics for one time bucket of one entity or relation: calls, errors, the duration
//! distribution and the self-time distribution, each a mergeable DDSketch.
//!
//! DDSketch: Masson, Rim, Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with
//! Relative-Error Guarantees", VLDB 2019; 1% relative accuracy (the crate's defaults).

use sketches_ddsketch::{Config, DDSketch};

/// A mergeable distribution of durations in seconds.
#[derive(Clone)]
pub struct DurationSketch {
    sketch: DDSketch,
    /// Sum of ln(seconds), for the log-normal moments significance tests use.
    ln_sum: f64,
    /// Sum of ln(seconds)².
    ln_sq_sum: f64,
}

impl std::fmt::Debug for DurationSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurationSketch")
            .field("count", &self.count())
            .finish()
    }
}

impl Default for DurationSketch {
    fn default() -> Self {
        Self {
            sketch: DDSketch::new(Config::defaults()),
            ln_sum: 0.0,
            ln_sq_sum: 0.0,
        }
    }
}

impl DurationSketch {
    /// Adds one duration, nanoseconds.
    pub fn add_nanos(&mut self, nanos: u64) {
        let seconds = nanos as f64 / 1e9;
        self.sketch.add(seconds);
        // A zero duration (clock resolution) counts as a nanosecond.
        let ln = seconds.max(1e-9).ln();
        self.ln_sum += ln;
        self.ln_sq_sum += ln * ln;
    }

    /// Merges another sketch into this one.
    pub fn merge(&mut self, other: &Self) {
        // Both sketches use `Config::defaults()`, the only case in which merge can fail.
        let _ = self.sketch.merge(&other.sketch);
        self.ln_sum += other.ln_sum;
        self.ln_sq_sum += other.ln_sq_sum;
    }

    /// Count, mean and (sample) variance of ln(seconds); `None` below two durations.
    pub fn log_moments(&self) -> Option<(f64, f64, f64)> {
        let n = self.count() as f64;
        if n < 2.0 {
            return None;
        }
        let mean = self.ln_sum / n;
        let var = ((self.ln_sq_sum - n * mean * mean) / (n - 1.0)).max(0.0);
        Some((n, mean, var))
    }

    /// Number of durations added.
    pub fn count(&self) -> u64 {
        self.sketch.count() as u64
    }

    /// The `q` quantile (0..=1) in seconds; `None` when empty.
    pub fn quantile_seconds(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }

    /// The mean in seconds; `None` when empty.
    pub fn mean_seconds(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sketch.sum().unwrap_or(0.0) / n as f64)
    }
}

/// RED figures of one bucket, as the spanmetrics connector defines them: `calls`, `errors`
/// (calls whose status is `Error`), and the duration distribution; plus self time. On a service
/// and on the operation of a visit's entry span, self time is per visit (the service's spans for
/// one incoming request, less the calls it made: see `join.rs`); on a `calls` edge it is the
/// call's gap (client span less the callee's spans: network, queueing, client overhead).
#[derive(Debug, Clone, Default)]
pub struct RedStats {
    /// Number of spans.
    pub calls: u64,
    /// Number of spans with status `Error`.
    pub errors: u64,
    /// Number of root spans (no parent): requests that enter the system here.
    pub root_calls: u64,
    /// Span durations, seconds.
    pub duration: DurationSketch,
    /// Self times, seconds (recorded when the span that closes a visit or call leaves the join
    /// buffer).
    pub self_time: DurationSketch,
}

impl RedStats {
    /// Merges another bucket's figures into these.
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.root_calls += other.root_calls;
        self.duration.merge(&other.duration);
        self.self_time.merge(&other.self_time);
    }
}

/// Log-record counts of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// All log records.
    pub records: u64,
    /// Records at ERROR or above, or carrying an exception.
    pub error_records: u64,
}

impl LogStats {
    /// Adds another bucket's counts.
    pub fn merge(&mut self, other: &Self) {
        self.records += other.records;
        self.error_records += other.error_records;
    }
}

/// Running mean of one gauge-like metric within a bucket; merged over a window it also keeps the
/// largest bucket mean.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GaugeStats {
    /// Sum of values.
    pub sum: f64,
    /// Number of values.
    pub count: u64,
    /// Largest bucket mean merged in (for a single bucket: its largest value).
    pub max: f64,
}

impl GaugeStats {
    /// Mean of the values, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Adds another bucket's values.
    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        let other_max = other.mean().unwrap_or(other.max);
        self.max = if self.count == 0 {
            other_max
        } else {
            self.max.max(other_max)
        };
        self.sum += other.sum;
        self.count += other.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketches_merge_and_answer_quantiles() {
        let mut a = DurationSketch::default();
        let mut b = DurationSketch::default();
        (1..=50).for_each(|ms| a.add_nanos(ms * 1_000_000));
        (51..=100).for_each(|ms| b.add_nanos(ms * 1_000_000));
        a.merge(&b);
        assert_eq!(a.count(), 100);
        let p50 = a.quantile_seconds(0.5).unwrap();
        assert!((p50 - 0.050).abs() < 0.002, "p50 {p50}");
        let mean = a.mean_seconds().unwrap();
        assert!((mean - 0.0505).abs() < 1e-9, "mean {mean}");
        let (n, m, v) = a.log_moments().unwrap();
        let logs: Vec<f64> = (1..=100).map(|ms| (ms as f64 / 1000.0).ln()).collect();
        let exact_mean = logs.iter().sum::<f64>() / 100.0;
        let exact_var = logs.iter().map(|x| (x - exact_mean).powi(2)).sum::<f64>() / 99.0;
        assert_eq!(n, 100.0);
        assert!((m - exact_mean).abs() < 1e-9 && (v - exact_var).abs() < 1e-9);
    }
}
