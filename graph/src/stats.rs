//! RED statistics for one time bucket of one entity or relation: calls, errors, the duration
//! distribution and the self-time distribution, each a mergeable log-bucketed histogram.
//!
//! The histogram maps a value `x` to the bucket `⌈log_γ x⌉` with `γ = (1 + α)/(1 − α)` and
//! answers a quantile with the bucket's midpoint `2γ^k/(γ + 1)`, which is within a relative
//! error `α` of the true quantile: the index mapping of DDSketch (Masson, Rim, Lee, "DDSketch: A
//! Fast and Fully-Mergeable Quantile Sketch with Relative-Error Guarantees", VLDB 2019), here
//! with α = 1% and a sparse store (sorted `(bucket, count)` pairs) instead of a dense one: a
//! ten-second bucket of one edge holds a few dozen distinct buckets, and a graph holds millions
//! of them.

/// Relative accuracy of quantiles.
const ALPHA: f64 = 0.01;
/// Smallest duration kept apart from zero, seconds (1 ns).
const MIN_SECONDS: f64 = 1e-9;

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// The bucket of `seconds` (≥ [`MIN_SECONDS`]); `i16::MIN` holds zero durations.
fn key(seconds: f64) -> i16 {
    if seconds < MIN_SECONDS {
        return i16::MIN;
    }
    let k = (seconds.ln() / gamma().ln()).ceil();
    k.clamp(f64::from(i16::MIN + 1), f64::from(i16::MAX)) as i16
}

/// The representative value of bucket `k`, seconds.
fn value(k: i16) -> f64 {
    if k == i16::MIN {
        return 0.0;
    }
    let g = gamma();
    2.0 * g.powi(i32::from(k)) / (g + 1.0)
}

/// A mergeable distribution of durations in seconds.
#[derive(Clone, Default, PartialEq)]
pub struct DurationSketch {
    /// Sorted by bucket; counts are never 0.
    bins: Vec<(i16, u32)>,
    count: u64,
    sum: f64,
    /// Sum of ln(seconds), for the log-normal moments significance tests use.
    ln_sum: f64,
    /// Sum of ln(seconds)².
    ln_sq_sum: f64,
}

impl std::fmt::Debug for DurationSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurationSketch")
            .field("count", &self.count)
            .field("bins", &self.bins.len())
            .finish()
    }
}

impl DurationSketch {
    /// Adds one duration, nanoseconds.
    pub fn add_nanos(&mut self, nanos: u64) {
        let seconds = nanos as f64 / 1e9;
        self.add_bucket(key(seconds), 1);
        self.count += 1;
        self.sum += seconds;
        // A zero duration (clock resolution) counts as a nanosecond.
        let ln = seconds.max(MIN_SECONDS).ln();
        self.ln_sum += ln;
        self.ln_sq_sum += ln * ln;
    }

    /// Adds `n` durations of `seconds` each: what a request-duration metric point tells when
    /// only its count and sum are used (its mean, `n` times).
    pub fn add_many(&mut self, seconds: f64, n: u64) {
        if n == 0 || !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        self.add_bucket(key(seconds), u32::try_from(n).unwrap_or(u32::MAX));
        self.count += n;
        self.sum += seconds * n as f64;
        let ln = seconds.max(MIN_SECONDS).ln();
        self.ln_sum += ln * n as f64;
        self.ln_sq_sum += ln * ln * n as f64;
    }

    fn add_bucket(&mut self, k: i16, n: u32) {
        match self.bins.binary_search_by_key(&k, |(b, _)| *b) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.saturating_add(n),
            Err(i) => self.bins.insert(i, (k, n)),
        }
    }

    /// Merges another sketch into this one.
    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        if self.bins.is_empty() {
            self.bins.clone_from(&other.bins);
        } else {
            self.merge_bins(&other.bins);
        }
        self.count += other.count;
        self.sum += other.sum;
        self.ln_sum += other.ln_sum;
        self.ln_sq_sum += other.ln_sq_sum;
    }

    /// Merges sorted `other` into the sorted bins in place: count the buckets new to this
    /// sketch, grow by that many, and merge from the back (no allocation beyond the growth).
    fn merge_bins(&mut self, other: &[(i16, u32)]) {
        let (mut i, mut j, mut new) = (0, 0, 0);
        while j < other.len() {
            if i < self.bins.len() && self.bins[i].0 < other[j].0 {
                i += 1;
            } else {
                if i >= self.bins.len() || self.bins[i].0 != other[j].0 {
                    new += 1;
                }
                j += 1;
            }
        }
        let old = self.bins.len();
        self.bins.resize(old + new, (0, 0));
        let (mut i, mut j, mut k) = (old, other.len(), old + new);
        while j > 0 {
            k -= 1;
            if i > 0 && self.bins[i - 1].0 > other[j - 1].0 {
                self.bins[k] = self.bins[i - 1];
                i -= 1;
            } else if i > 0 && self.bins[i - 1].0 == other[j - 1].0 {
                let (key, n) = self.bins[i - 1];
                self.bins[k] = (key, n.saturating_add(other[j - 1].1));
                i -= 1;
                j -= 1;
            } else {
                self.bins[k] = other[j - 1];
                j -= 1;
            }
        }
    }

    /// The first bucket's count (0 when empty): one read of the out-of-line buckets.
    pub(crate) fn first_bin(&self) -> u64 {
        self.bins.first().map_or(0, |(_, n)| u64::from(*n))
    }

    /// Merges only the count, sum and log moments (not the buckets): for a mean, never for a
    /// quantile.
    pub(crate) fn merge_moments(&mut self, other: &Self) {
        self.count += other.count;
        self.sum += other.sum;
        self.ln_sum += other.ln_sum;
        self.ln_sq_sum += other.ln_sq_sum;
    }

    /// How many durations exceed `seconds` (by their buckets: within the 1% accuracy).
    pub fn count_above(&self, seconds: f64) -> u64 {
        let k = key(seconds);
        self.bins
            .iter()
            .filter(|(b, _)| *b > k)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    /// Number of durations added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in seconds, within 1% relative error; `None` when empty.
    pub fn quantile_seconds(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The rank of the quantile among the counted values, 0-based (as DDSketch ranks).
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        for (k, n) in &self.bins {
            seen += u64::from(*n);
            if seen > rank {
                return Some(value(*k));
            }
        }
        self.bins.last().map(|(k, _)| value(*k))
    }

    /// The mean in seconds; `None` when empty.
    pub fn mean_seconds(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Count, mean and (sample) variance of ln(seconds); `None` below two durations.
    pub fn log_moments(&self) -> Option<(f64, f64, f64)> {
        let n = self.count as f64;
        if n < 2.0 {
            return None;
        }
        let mean = self.ln_sum / n;
        let var = ((self.ln_sq_sum - n * mean * mean) / (n - 1.0)).max(0.0);
        Some((n, mean, var))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<(i16, u32)>()
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
    /// Number of request-duration metric points behind figures read from metrics (0 for
    /// spans'): each point's mean stands for all its calls, so the points, not the calls, are
    /// the samples of its duration.
    pub points: u64,
}

impl RedStats {
    /// Merges what a [`crate::RedSummary`] shows: everything but the self-time buckets (a
    /// summary shows the self-time mean only).
    pub(crate) fn merge_for_summary(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.root_calls += other.root_calls;
        self.points += other.points;
        self.duration.merge(&other.duration);
        self.self_time.merge_moments(&other.self_time);
    }

    /// Merges another bucket's figures into these.
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.root_calls += other.root_calls;
        self.points += other.points;
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
    /// Of the error records, those whose message names another known service (its failure as
    /// this one met it: `No instances available for ts-payment-service`); counted on services
    /// and pods, not on operations.
    pub foreign_error_records: u64,
}

impl LogStats {
    /// Records below ERROR without an exception: the lines a service writes as it does its
    /// work, whose falling short means work left undone (a falling error count means a
    /// problem went away).
    pub fn routine(&self) -> u64 {
        self.records.saturating_sub(self.error_records)
    }

    /// Error records that originate in the writer: all but those naming another service.
    pub fn own_error_records(&self) -> u64 {
        self.error_records
            .saturating_sub(self.foreign_error_records)
    }

    /// Adds another bucket's counts.
    pub fn merge(&mut self, other: &Self) {
        self.records += other.records;
        self.error_records += other.error_records;
        self.foreign_error_records += other.foreign_error_records;
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

impl crate::series::Merge for RedStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }

    fn touch(&self) -> u64 {
        self.duration.first_bin()
    }
}

impl crate::series::Merge for LogStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl crate::series::Merge for GaugeStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
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

    mod properties {
        use proptest::prelude::*;

        use super::super::DurationSketch;

        proptest! {
            #[test]
            fn quantiles_within_the_relative_accuracy_and_merge_is_union(
                a in prop::collection::vec(1u64..10_000_000_000, 1..200),
                b in prop::collection::vec(0u64..10_000_000_000, 0..200),
                q in 0.0f64..=1.0,
            ) {
                let (mut x, mut y, mut all) = (
                    DurationSketch::default(),
                    DurationSketch::default(),
                    DurationSketch::default(),
                );
                a.iter().for_each(|n| { x.add_nanos(*n); all.add_nanos(*n); });
                b.iter().for_each(|n| { y.add_nanos(*n); all.add_nanos(*n); });
                x.merge(&y);
                prop_assert_eq!(x.count(), all.count());
                prop_assert_eq!(x.quantile_seconds(q), all.quantile_seconds(q));
                let mut sorted: Vec<u64> = a.iter().chain(&b).copied().collect();
                sorted.sort_unstable();
                let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
                let exact = sorted[rank] as f64 / 1e9;
                let got = all.quantile_seconds(q).unwrap();
                if exact >= 1e-9 {
                    prop_assert!((got - exact).abs() <= 0.0100001 * exact, "got {} exact {}", got, exact);
                } else {
                    prop_assert_eq!(got, 0.0);
                }
            }
        }
    }
}
