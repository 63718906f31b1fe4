//! Per-bucket statistics at three resolutions: 10-second buckets for the recent past, rolled up
//! to 1-minute buckets as they age, and to 10-minute buckets after that, so that a graph that
//! runs for weeks holds a bounded number of buckets per entity and relation.
//!
//! Keys are always 10-second bucket indices (`t / W`); a 1-minute bucket is keyed by its first
//! 10-second bucket (a multiple of 6), a 10-minute one by a multiple of 60. Each level holds the
//! data of its own period only: 10 s from `fine_from` on, 1 min from `minute_from` up to
//! `fine_from`, 10 min before `minute_from`. A query over `[a, b)` merges, at each level, the
//! buckets whose key lies in the part of `[a, b)` that level holds, so that windows over old data
//! are resolved to the coarser bucket (a bucket counts when it starts inside the window).

/// A statistic that merges (RED figures, log counts, gauges, counts).
pub trait Merge: Default + Clone {
    /// Adds `other` into `self`.
    fn merge_from(&mut self, other: &Self);

    /// Adds `other`, a bucket `offset` 10-second buckets after this one's start, into `self`
    /// (rolling up); the same as [`Merge::merge_from`] for statistics that do not care where in
    /// the bucket they fell.
    fn merge_at(&mut self, other: &Self, offset: u64) {
        let _ = offset;
        self.merge_from(other);
    }

    /// Reads the first word of the statistic's out-of-line data, if it has any, and returns it:
    /// a cheap read that brings it into cache ahead of a merge (see [`Series::merged_with`]).
    fn touch(&self) -> u64 {
        0
    }
}

impl Merge for u64 {
    fn merge_from(&mut self, other: &Self) {
        *self += other;
    }
}

/// Bucket widths of the coarser levels, in 10-second buckets.
const MINUTE: u64 = 6;
const TEN_MINUTES: u64 = 60;

/// How long each resolution is kept, in 10-second buckets behind the newest data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// 10-second buckets kept (default 360: one hour).
    pub fine: u64,
    /// 1-minute buckets kept beyond those (default 1 800: five more hours).
    pub minute: u64,
    /// 10-minute buckets kept beyond those (default 259 200: thirty days); older data is dropped.
    pub ten_minutes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            fine: 360,
            minute: 1_800,
            ten_minutes: 259_200,
        }
    }
}

/// One series of buckets.
#[derive(Debug, Clone)]
pub struct Series<T> {
    levels: [Vec<(u64, T)>; 3],
    /// First key held at 10 s (everything before is rolled up).
    fine_from: u64,
    /// First key held at 1 min.
    minute_from: u64,
    /// A cache for queries: the sums of whole minutes still held at 10 s, computed when the
    /// minute closes (at compaction) and dropped when late data lands in it.
    minute_sums: Vec<(u64, T)>,
    /// Minutes before this key have had their sums computed.
    summed_until: u64,
}

impl<T> Default for Series<T> {
    fn default() -> Self {
        Self {
            levels: [Vec::new(), Vec::new(), Vec::new()],
            fine_from: 0,
            minute_from: 0,
            minute_sums: Vec::new(),
            summed_until: 0,
        }
    }
}

fn slot<T: Default>(level: &mut Vec<(u64, T)>, key: u64) -> &mut T {
    // Data mostly arrives in time order: check the end first.
    let i = match level.last() {
        Some((last, _)) if *last == key => level.len() - 1,
        Some((last, _)) if *last < key => {
            level.push((key, T::default()));
            level.len() - 1
        }
        None => {
            level.push((key, T::default()));
            0
        }
        Some(_) => match level.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => i,
            Err(i) => {
                level.insert(i, (key, T::default()));
                i
            }
        },
    };
    &mut level[i].1
}

/// The first index of `level` whose key is at least `key`. `level`'s keys rise by at least
/// `spacing` from one entry to the next (1 at 10 s, 6 at 1 min, 60 at 10 min), so the entry
/// `(last − key) / spacing` places before the last is the earliest that can hold `key`, and every
/// entry before it holds less. When nothing is missing between there and the end (a series that
/// is observed every bucket, the usual case), that entry is the answer, found with one read near
/// the data the query reads next; otherwise the search narrows to the entries after it.
fn lower_bound<T>(level: &[(u64, T)], key: u64, spacing: u64) -> usize {
    let n = level.len();
    if n == 0 || level[n - 1].0 < key {
        return n;
    }
    let back = (level[n - 1].0 - key) / spacing;
    let guess = (n - 1).saturating_sub(usize::try_from(back).unwrap_or(usize::MAX));
    if level[guess].0 >= key {
        return guess;
    }
    guess + 1 + level[guess + 1..].partition_point(|(k, _)| *k < key)
}

/// The entries of `level` (keys `spacing` or more apart) with keys in `[a, b)`.
fn between<T>(level: &[(u64, T)], a: u64, b: u64, spacing: u64) -> &[(u64, T)] {
    let end = lower_bound(level, b, spacing);
    let start = lower_bound(&level[..end], a, spacing);
    &level[start..end]
}

impl<T: Merge> Series<T> {
    /// The bucket of 10-second index `bucket`, at the resolution that holds it.
    pub fn entry(&mut self, bucket: u64) -> &mut T {
        self.entry_at(bucket).1
    }

    /// As [`Series::entry`], with the key of the bucket it falls in.
    pub fn entry_at(&mut self, bucket: u64) -> (u64, &mut T) {
        let (level, key) = if bucket >= self.fine_from {
            if bucket < self.summed_until {
                // Late data in a summed minute: drop the stale sum.
                let minute = bucket - bucket % MINUTE;
                if let Ok(i) = self.minute_sums.binary_search_by_key(&minute, |(k, _)| *k) {
                    self.minute_sums.remove(i);
                }
            }
            (0, bucket)
        } else if bucket >= self.minute_from {
            (1, bucket - bucket % MINUTE)
        } else {
            (2, bucket - bucket % TEN_MINUTES)
        };
        (key, slot(&mut self.levels[level], key))
    }

    /// The buckets that start in `[a, b)` (10-second indices), merged.
    pub fn merged(&self, a: u64, b: u64) -> T {
        self.merged_with(a, b, T::merge_from)
    }

    /// As [`Series::merged`], merging with `merge` (a cheaper merge when only part of the
    /// statistic is wanted).
    pub fn merged_with(&self, a: u64, b: u64, merge: impl Fn(&mut T, &T)) -> T {
        let mut out = T::default();
        let coarse_end = b.min(self.fine_from);
        if a < coarse_end {
            self.for_each(a, coarse_end, |_, v| merge(&mut out, v));
        }
        let from = a.max(self.fine_from);
        if from >= b {
            return out;
        }
        // 10-second part: whole minutes from their sums, the gaps between them (the partial
        // minutes at the ends, the open minute, a minute whose sum late data dropped) bucket by
        // bucket. Only the buckets merged are read.
        let sums = between(
            &self.minute_sums,
            from.div_ceil(MINUTE) * MINUTE,
            b / MINUTE * MINUTE,
            MINUTE,
        );
        // Two passes: the first only starts the reads of every bucket's out-of-line data (the
        // reads are independent, so the processor overlaps their cache misses), the second
        // merges from cache. The reads, not the merging, are what a window query waits on.
        let mut started = 0u64;
        self.visit_fine(from, b, sums, |v| started = started.wrapping_add(v.touch()));
        std::hint::black_box(started);
        self.visit_fine(from, b, sums, |v| merge(&mut out, v));
        out
    }

    /// Calls `f` on each of `sums` and on each 10-second bucket that starts in `[a, b)` outside
    /// them, in key order.
    fn visit_fine(&self, a: u64, b: u64, sums: &[(u64, T)], mut f: impl FnMut(&T)) {
        let mut gap_from = a;
        for (minute, sum) in sums {
            self.fine(gap_from, *minute).iter().for_each(|(_, v)| f(v));
            f(sum);
            gap_from = minute + MINUTE;
        }
        self.fine(gap_from, b).iter().for_each(|(_, v)| f(v));
    }

    /// The 10-second buckets that start in `[a, b)`.
    fn fine(&self, a: u64, b: u64) -> &[(u64, T)] {
        if a < b {
            between(&self.levels[0], a, b, 1)
        } else {
            &[]
        }
    }

    /// Calls `f(key, bucket)` for each bucket that starts in `[a, b)`, in key order.
    pub fn for_each(&self, a: u64, b: u64, mut f: impl FnMut(u64, &T)) {
        self.for_each_sized(a, b, |k, _, v| f(k, v));
    }

    /// Calls `f(key, width, bucket)` for each bucket that starts in `[a, b)`, in key order;
    /// `width` is in 10-second buckets (1, 6 or 60).
    pub fn for_each_sized(&self, a: u64, b: u64, mut f: impl FnMut(u64, u64, &T)) {
        for (width, buckets) in self.slices(a, b, false) {
            buckets.iter().for_each(|(k, v)| f(*k, width, v));
        }
    }

    /// Whether `pred(key, width, bucket)` holds for some bucket that overlaps `[a, b)` (starts
    /// before `b` and ends after `a`), stopping at the first.
    pub fn any(&self, a: u64, b: u64, mut pred: impl FnMut(u64, u64, &T) -> bool) -> bool {
        self.slices(a, b, true)
            .into_iter()
            .any(|(width, buckets)| buckets.iter().any(|(k, v)| pred(*k, width, v)))
    }

    /// Per level, coarsest first: its bucket width and its buckets that start in `[a, b)`
    /// (with `overlapping`, also those that start before `a` and reach into it).
    fn slices(&self, a: u64, b: u64, overlapping: bool) -> [(u64, &[(u64, T)]); 3] {
        let from = |width: u64| {
            if overlapping {
                a.saturating_sub(width - 1)
            } else {
                a
            }
        };
        [
            (2, TEN_MINUTES, from(TEN_MINUTES), b.min(self.minute_from)),
            (
                1,
                MINUTE,
                from(MINUTE).max(self.minute_from),
                b.min(self.fine_from),
            ),
            (0, 1, a.max(self.fine_from), b),
        ]
        .map(|(level, width, lo, hi)| {
            let buckets: &[(u64, T)] = if lo < hi {
                between(&self.levels[level], lo, hi, width)
            } else {
                &[]
            };
            (width, buckets)
        })
    }

    /// Buckets held, at all levels.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Rolls buckets up as they age behind `newest` (the newest 10-second index with data):
    /// 10-second buckets older than `retention.fine` into 1-minute ones, those older than
    /// `retention.minute` more into 10-minute ones, and drops what is older still.
    pub fn compact(&mut self, newest: u64, retention: &Retention) {
        let fine_from = newest.saturating_sub(retention.fine) / MINUTE * MINUTE;
        let minute_from = fine_from.saturating_sub(retention.minute) / TEN_MINUTES * TEN_MINUTES;
        let drop_before = minute_from.saturating_sub(retention.ten_minutes);
        if fine_from > self.fine_from {
            let keep = self.levels[0].partition_point(|(k, _)| *k < fine_from);
            let old: Vec<(u64, T)> = self.levels[0].drain(..keep).collect();
            for (k, v) in old {
                slot(&mut self.levels[1], k - k % MINUTE).merge_at(&v, k % MINUTE);
            }
            self.fine_from = fine_from;
        }
        if minute_from > self.minute_from {
            let keep = self.levels[1].partition_point(|(k, _)| *k < minute_from);
            let old: Vec<(u64, T)> = self.levels[1].drain(..keep).collect();
            for (k, v) in old {
                slot(&mut self.levels[2], k - k % TEN_MINUTES).merge_at(&v, k % TEN_MINUTES);
            }
            self.minute_from = minute_from;
        }
        let gone = self.levels[2].partition_point(|(k, _)| *k < drop_before);
        self.levels[2].drain(..gone);
        // Sums of the minutes that closed (a minute of grace for stragglers), and none of
        // minutes no longer held at 10 s.
        let stale = self
            .minute_sums
            .partition_point(|(k, _)| *k < self.fine_from);
        self.minute_sums.drain(..stale);
        // Every minute before the current one is closed; a straggler drops its minute's sum.
        let closed = newest / MINUTE * MINUTE;
        let start = self.summed_until.max(self.fine_from);
        if closed > start {
            let fine = between(&self.levels[0], start, closed, 1);
            let mut i = 0;
            while i < fine.len() {
                let minute = fine[i].0 - fine[i].0 % MINUTE;
                let mut sum = T::default();
                while i < fine.len() && fine[i].0 < minute + MINUTE {
                    sum.merge_from(&fine[i].1);
                    i += 1;
                }
                self.minute_sums.push((minute, sum));
            }
            self.summed_until = closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Rolling up loses resolution, never data: every window that is whole at the coarse
        /// resolution sums to what it summed before.
        #[test]
        fn compaction_keeps_every_count(
            points in prop::collection::vec((0u64..3_000, 1u64..5), 1..200),
            fine in 6u64..400,
            minute in 60u64..1_200,
            window in (0u64..50, 1u64..50),
        ) {
            let retention = Retention { fine, minute, ten_minutes: 1_000_000 };
            let mut s: Series<u64> = Series::default();
            let mut exact: Series<u64> = Series::default();
            for (b, n) in &points {
                *s.entry(*b) += n;
                *exact.entry(*b) += n;
            }
            let newest = points.iter().map(|(b, _)| *b).max().unwrap();
            s.compact(newest, &retention);
            let total: u64 = points.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(s.merged(0, u64::MAX), total);
            // Windows aligned to 10 minutes are exact at every level.
            let (a, len) = window;
            let (a, b) = (a * 60, (a + len) * 60);
            prop_assert_eq!(s.merged(a, b), exact.merged(a, b));
            // Late data lands at the resolution that holds its time, and never leaves a stale
            // minute sum behind.
            *s.entry(0) += 7;
            *exact.entry(0) += 7;
            prop_assert_eq!(s.merged(0, u64::MAX), total + 7);
            let late = newest.saturating_sub(fine / 2);
            *s.entry(late) += 3;
            *exact.entry(late) += 3;
            let (a, b) = (late.saturating_sub(20), late + 20);
            if a >= s.fine_from {
                prop_assert_eq!(s.merged(a, b), exact.merged(a, b));
            }
        }
    }

    proptest! {
        /// Whatever the gaps, the guess from the spacing finds the lower bound.
        #[test]
        fn the_lower_bound_is_found_from_the_spacing(
            mut keys in prop::collection::vec(0u64..1_000, 0..300),
            spacing in prop::sample::select(vec![1u64, 6, 60]),
            key in 0u64..70_000,
        ) {
            let mut keys: Vec<u64> = keys.drain(..).map(|k| k * spacing).collect();
            keys.sort_unstable();
            keys.dedup();
            let level: Vec<(u64, ())> = keys.iter().map(|k| (*k, ())).collect();
            prop_assert_eq!(
                lower_bound(&level, key, spacing),
                keys.partition_point(|k| *k < key)
            );
        }
    }

    #[test]
    fn levels_hold_their_periods_and_old_data_is_dropped() {
        let retention = Retention {
            fine: 12,
            minute: 60,
            ten_minutes: 120,
        };
        let mut s: Series<u64> = Series::default();
        for b in 0..400 {
            *s.entry(b) += 1;
        }
        s.compact(399, &retention);
        // 10 s from 384 (399 − 12 = 387, down to a minute), 1 min from 324 (down to 10
        // minutes: 300), 10 min from 300 − 120 = 180.
        assert_eq!(s.levels[0].first().map(|e| e.0), Some(384));
        assert_eq!(s.levels[1].first().map(|e| e.0), Some(300));
        assert_eq!(s.levels[2].first().map(|e| e.0), Some(180));
        assert_eq!(s.merged(0, 400), 400 - 180);
        assert_eq!(s.len(), 16 + 14 + 2);
    }
}
