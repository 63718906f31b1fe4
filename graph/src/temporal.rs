//! Validity on two clocks: when a fact was true in the observed system (valid time, from the
//! telemetry's own timestamps) and when loupe learned it (record time, from the receiving
//! clock). The model is the bitemporal one of Snodgrass & Ahn ("Temporal Databases", IEEE
//! Computer 19(9), 1986): a query names a valid time `at` and, optionally, a record time
//! `known_at`, and sees exactly the facts recorded by `known_at`.
//!
//! An observation at valid time `v` says the entity or relation was alive during its bucket
//! `[b·W, (b+1)·W)` and, since telemetry is sampled and bursty, for a liveness `L` after it:
//! it is valid during `[b·W, (b+1)·W + L)`. Its validity is the union of those spans over its
//! observations, cut at an explicit end (a pod replaced by a new one of the same name). Each
//! bucket keeps the earliest record time at which it was observed, so late data (a span from
//! ten minutes ago arriving now) is valid back then but known only from now on.
//!
//! As buckets age they roll up with the statistics (see `series.rs`): a 1-minute or 10-minute
//! bucket keeps the earliest record time of its observations and how far into it the last one
//! fell, so validity loses at most a bucket's width at the start of an interval and record time
//! is kept at the coarser resolution.

use serde::Serialize;

use crate::series::{Merge, Retention, Series};

/// What is known of the observations in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Observed {
    /// Earliest record time of an observation in the bucket.
    recorded: u64,
    /// 10-second buckets from the bucket's start to its last observation.
    last: u64,
}

impl Default for Observed {
    fn default() -> Self {
        Self {
            recorded: u64::MAX,
            last: 0,
        }
    }
}

impl Merge for Observed {
    fn merge_from(&mut self, other: &Self) {
        self.merge_at(other, 0);
    }

    fn merge_at(&mut self, other: &Self, offset: u64) {
        self.recorded = self.recorded.min(other.recorded);
        self.last = self.last.max(offset + other.last);
    }
}

/// One maximal interval of validity, as known at some record time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interval {
    /// Start of validity, unix nanoseconds.
    pub valid_from: u64,
    /// End of validity (exclusive), unix nanoseconds: the last observation's bucket end plus
    /// the liveness, or the explicit end.
    pub valid_to: u64,
    /// When loupe first learned of this interval (earliest record time of its observations),
    /// unix nanoseconds.
    pub recorded_at: u64,
    /// When loupe learned that it ended (an explicit end, e.g. the pod was replaced), unix
    /// nanoseconds; `None` when it ends by the liveness running out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<u64>,
}

/// The validity of one entity or relation.
#[derive(Debug, Clone, Default)]
pub struct Validity {
    /// Observed valid-time buckets.
    observed: Series<Observed>,
    /// The newest observed bucket and its record time, kept inline: most questions are about
    /// the recent past, and this answers them without reading the series.
    newest: Option<(u64, u64)>,
    /// An explicit end: valid time it ended, record time it was learned.
    ended: Option<(u64, u64)>,
}

/// The widths a [`Validity`] is read with: bucket width `W` and liveness `L`, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Bucket width `W`, nanoseconds (> 0).
    pub bucket: u64,
    /// Liveness `L` after an observation's bucket, nanoseconds.
    pub liveness: u64,
}

impl Validity {
    /// Records an observation in valid-time bucket `bucket`, learned at record time `recorded`.
    pub fn observe(&mut self, bucket: u64, recorded: u64) {
        match &mut self.newest {
            Some((b, r)) if *b == bucket => *r = (*r).min(recorded),
            Some((b, _)) if *b > bucket => {}
            _ => self.newest = Some((bucket, recorded)),
        }
        let (key, o) = self.observed.entry_at(bucket);
        o.merge_at(&Observed { recorded, last: 0 }, bucket - key);
    }

    /// Rolls old observations up with the statistics (see [`Retention`]).
    pub(crate) fn compact(&mut self, newest: u64, retention: &Retention) {
        self.observed.compact(newest, retention);
    }

    /// Ends validity at valid time `valid_to`, learned at record time `recorded` (the first
    /// end recorded stands).
    pub fn end(&mut self, valid_to: u64, recorded: u64) {
        if self.ended.is_none() {
            self.ended = Some((valid_to, recorded));
        }
    }

    /// The explicit end, if any, as known at `known_at` (`None`: known now).
    fn end_known(&self, known_at: Option<u64>) -> Option<(u64, u64)> {
        self.ended
            .filter(|(_, recorded)| known_at.is_none_or(|k| *recorded <= k))
    }

    /// Whether the fact was valid at any time in `[start, end)` as known at `known_at`
    /// (`None`: everything recorded so far). An empty range asks about the instant `start`.
    pub fn valid_during(&self, start: u64, end: u64, known_at: Option<u64>, w: Widths) -> bool {
        let end = end.max(start + 1);
        let end = match self.end_known(known_at) {
            Some((valid_to, _)) => end.min(valid_to),
            None => end,
        };
        if end <= start {
            return false;
        }
        if let Some((b, recorded)) = self.newest {
            let (from, to) = (b * w.bucket, (b + 1) * w.bucket + w.liveness);
            if from < end && to > start && known_at.is_none_or(|k| recorded <= k) {
                return true;
            }
        }
        // Buckets b with [b·W, (b + last + 1)·W + L) ∩ [start, end) ≠ ∅.
        let lo = start.saturating_sub(w.liveness) / w.bucket;
        let hi = end.div_ceil(w.bucket);
        self.observed.any(lo, hi, |b, _, o| {
            let from = b * w.bucket;
            let to = (b + o.last + 1) * w.bucket + w.liveness;
            from < end && to > start && known_at.is_none_or(|k| o.recorded <= k)
        })
    }

    /// The maximal intervals of validity as known at `known_at`, in valid-time order.
    pub fn intervals(&self, known_at: Option<u64>, w: Widths) -> Vec<Interval> {
        let end = self.end_known(known_at);
        let mut out: Vec<Interval> = Vec::new();
        let mut done = false;
        self.observed.for_each(0, u64::MAX, |b, o| {
            if done || known_at.is_some_and(|k| o.recorded > k) {
                return;
            }
            let from = b * w.bucket;
            let to = (b + o.last + 1) * w.bucket + w.liveness;
            if let Some((valid_to, _)) = end {
                if from >= valid_to {
                    done = true;
                    return;
                }
            }
            match out.last_mut() {
                Some(last) if from <= last.valid_to => {
                    last.valid_to = last.valid_to.max(to);
                    last.recorded_at = last.recorded_at.min(o.recorded);
                }
                _ => out.push(Interval {
                    valid_from: from,
                    valid_to: to,
                    recorded_at: o.recorded,
                    superseded_at: None,
                }),
            }
        });
        if let (Some((valid_to, recorded)), Some(last)) = (end, out.last_mut()) {
            if last.valid_to > valid_to {
                last.valid_to = valid_to;
                last.superseded_at = Some(recorded);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const W: Widths = Widths {
        bucket: 10,
        liveness: 25,
    };

    /// Brute force from the raw observations: valid at instant `t` as known at `k` when some
    /// observation recorded by `k` covers `t` and no end known by `k` precedes it.
    fn brute_valid_at(
        observations: &[(u64, u64)],
        end: Option<(u64, u64)>,
        t: u64,
        k: Option<u64>,
    ) -> bool {
        let ended = end.is_some_and(|(to, r)| k.is_none_or(|k| r <= k) && t >= to);
        !ended
            && observations.iter().any(|(v, r)| {
                let b = v / W.bucket;
                k.is_none_or(|k| *r <= k)
                    && b * W.bucket <= t
                    && t < (b + 1) * W.bucket + W.liveness
            })
    }

    proptest! {
        #[test]
        fn as_of_equals_brute_force(
            observations in prop::collection::vec((0u64..500, 0u64..100), 0..40),
            end in prop::option::of((0u64..600, 0u64..100)),
            probes in prop::collection::vec((0u64..650, prop::option::of(0u64..110)), 1..30),
        ) {
            let mut v = Validity::default();
            for (t, r) in &observations {
                v.observe(t / W.bucket, *r);
            }
            if let Some((to, r)) = end {
                v.end(to, r);
            }
            for (t, k) in probes {
                let expected = brute_valid_at(&observations, end, t, k);
                prop_assert_eq!(v.valid_during(t, t, k, W), expected, "t={} k={:?}", t, k);
                // The intervals agree with the instant query.
                let in_interval = v
                    .intervals(k, W)
                    .iter()
                    .any(|i| i.valid_from <= t && t < i.valid_to);
                prop_assert_eq!(in_interval, expected, "intervals, t={} k={:?}", t, k);
            }
        }

        #[test]
        fn valid_during_is_any_instant_of_the_range(
            observations in prop::collection::vec((0u64..300, 0u64..50), 0..20),
            start in 0u64..350,
            len in 1u64..80,
            k in prop::option::of(0u64..60),
        ) {
            let mut v = Validity::default();
            for (t, r) in &observations {
                v.observe(t / W.bucket, *r);
            }
            let brute = (start..start + len).any(|t| brute_valid_at(&observations, None, t, k));
            prop_assert_eq!(v.valid_during(start, start + len, k, W), brute);
        }
    }

    #[test]
    fn intervals_merge_within_the_liveness_and_carry_record_times() {
        let mut v = Validity::default();
        v.observe(0, 100); // [0, 35)
        v.observe(2, 50); // [20, 55): overlaps, so one interval recorded at 50
        v.observe(10, 70); // [100, 135): a gap, a second interval
        let all = v.intervals(None, W);
        assert_eq!(
            all,
            vec![
                Interval {
                    valid_from: 0,
                    valid_to: 55,
                    recorded_at: 50,
                    superseded_at: None
                },
                Interval {
                    valid_from: 100,
                    valid_to: 135,
                    recorded_at: 70,
                    superseded_at: None
                },
            ]
        );
        // Known at 60: the observation recorded at 100 and at 70 are not known yet.
        assert_eq!(v.intervals(Some(60), W).len(), 1);
        assert_eq!(v.intervals(Some(60), W)[0].valid_from, 20);
        v.end(120, 200);
        let ended = v.intervals(None, W);
        assert_eq!(ended[1].valid_to, 120);
        assert_eq!(ended[1].superseded_at, Some(200));
        assert_eq!(
            v.intervals(Some(150), W)[1].valid_to,
            135,
            "end not yet known"
        );
    }
}
