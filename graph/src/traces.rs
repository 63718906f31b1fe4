//! Whole traces, for trace-spectrum analysis: which services each trace passed through, how
//! long it took end to end, and whether any of its spans failed.
//!
//! Spectrum-based fault localization scores a program element by how much more often it appears
//! in failing runs than in passing ones (Jones & Harrold, "Empirical Evaluation of the Tarantula
//! Automatic Fault-Localization Technique", ASE 2005; Abreu et al., "On the Accuracy of
//! Spectrum-based Fault Localization", TAIC PART 2007). Applied to microservices, a trace is a
//! run and a service an element (TraceRCA: Li et al., IWQoS 2021; MicroRank: Yu et al., WWW
//! 2021). The graph keeps, per service and bucket, the traces that passed through it
//! ([`TraceStats`]), and the same over all traces, so the analysis can compare the traces through
//! a service with the traces elsewhere.
//!
//! A trace is held in [`TraceTable`] while its spans arrive, under the same rules as the span
//! join buffer: it leaves when its last span's end is older than the event-time watermark less
//! the expiry, when no span of it arrived for the idle time, when the table is over capacity
//! (oldest first), or on flush. It is counted in the bucket of its earliest span's start.
//!
//! The table also keeps each trace's spans (their ids, parents, starts and operations, at most
//! [`MAX_PATH_SPANS`] a trace) for the call paths of `call_paths.rs`, worked out as it leaves.

use std::collections::{HashMap, VecDeque};

use loupe_model::TraceId;

use crate::call_paths::{PathSpan, MAX_HELD_PATH_SPANS, MAX_PATH_SPANS};
use crate::id_hash::Ids;
use crate::series::Merge;

/// Traces of one bucket (through one service, or all of them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TraceStats {
    /// Traces.
    pub traces: u64,
    /// Traces with at least one span of status `Error`.
    pub error_traces: u64,
    /// Sum of ln(end-to-end duration in seconds) over the traces (earliest start to latest
    /// end of their spans; a duration under 1 µs counts as 1 µs).
    pub ln_sum: f64,
}

impl TraceStats {
    /// Counts one trace of `seconds` end to end.
    pub fn add(&mut self, seconds: f64, error: bool) {
        let ln = seconds.max(1e-6).ln();
        self.traces += 1;
        self.error_traces += u64::from(error);
        self.ln_sum += ln;
    }

    /// Adds another bucket's traces.
    pub fn merge(&mut self, other: &Self) {
        self.traces += other.traces;
        self.error_traces += other.error_traces;
        self.ln_sum += other.ln_sum;
    }

    /// These traces less `other`, a subset of them (the traces elsewhere than through a
    /// service: all traces less those through it).
    pub fn less(&self, other: &Self) -> Self {
        Self {
            traces: self.traces.saturating_sub(other.traces),
            error_traces: self.error_traces.saturating_sub(other.error_traces),
            ln_sum: self.ln_sum - other.ln_sum,
        }
    }

    /// Mean of ln(duration in seconds): the log of the geometric mean duration; `None` without
    /// traces.
    pub fn ln_mean(&self) -> Option<f64> {
        (self.traces > 0).then(|| self.ln_sum / self.traces as f64)
    }

    /// Share of the traces that failed, `None` without traces.
    pub fn error_share(&self) -> Option<f64> {
        (self.traces > 0).then(|| self.error_traces as f64 / self.traces as f64)
    }
}

impl Merge for TraceStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

/// One trace while its spans arrive.
#[derive(Debug)]
struct Open {
    /// Service numbers (graph node indices), each once.
    services: Vec<u32>,
    start: u64,
    end: u64,
    error: bool,
    /// Receive tick of its latest span.
    received_at: u64,
    /// Its spans for call paths; emptied for good when the trace grows past
    /// [`MAX_PATH_SPANS`].
    spans: Vec<PathSpan>,
    too_long: bool,
}

/// A trace that left the table: what the graph counts.
#[derive(Debug, PartialEq)]
pub(crate) struct ClosedTrace {
    /// Service numbers, each once.
    pub services: Vec<u32>,
    /// Earliest span start, unix nanoseconds.
    pub start: u64,
    /// Latest span end less the earliest start, nanoseconds.
    pub duration_nanos: u64,
    /// Any span failed.
    pub error: bool,
    /// Its spans for call paths (see `call_paths.rs`), empty past [`MAX_PATH_SPANS`].
    pub spans: Vec<PathSpan>,
}

/// The traces being assembled, within bounded memory (see the module docs).
#[derive(Debug)]
pub(crate) struct TraceTable {
    capacity: usize,
    expiry_nanos: u64,
    open: HashMap<TraceId, Open, Ids>,
    /// Trace ids in first-arrival order (each once).
    order: VecDeque<TraceId>,
    watermark: u64,
    tick: Option<u64>,
    /// Spans kept for call paths over all open traces, and their bound.
    path_spans: usize,
    path_budget: usize,
}

impl TraceTable {
    /// A table of at most `capacity` traces whose traces wait `expiry_nanos` (event time) past
    /// their latest end.
    pub fn new(capacity: usize, expiry_nanos: u64) -> Self {
        Self {
            capacity,
            expiry_nanos,
            open: HashMap::default(),
            order: VecDeque::new(),
            watermark: 0,
            tick: None,
            path_spans: 0,
            path_budget: MAX_HELD_PATH_SPANS,
        }
    }

    /// Number of traces held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Takes one span of `trace` in: emitted by service number `service`, ending at `end`,
    /// failed or not; `path` gives its start and what its parent's call path and its own need.
    pub fn span(&mut self, trace: TraceId, service: u32, end: u64, error: bool, path: PathSpan) {
        let start = path.start;
        let end = end.max(start);
        self.watermark = self.watermark.max(end);
        let received_at = self.tick.unwrap_or(0);
        let t = self.open.entry(trace).or_insert_with(|| {
            self.order.push_back(trace);
            Open {
                services: Vec::new(),
                start,
                end,
                error: false,
                received_at,
                spans: Vec::new(),
                too_long: false,
            }
        });
        if !t.too_long && t.spans.len() < MAX_PATH_SPANS && self.path_spans < self.path_budget {
            t.spans.push(path);
            self.path_spans += 1;
        } else if !t.too_long {
            // Partial paths would be wrong paths: the trace counts none.
            t.too_long = true;
            self.path_spans -= t.spans.len();
            t.spans = Vec::new();
        }
        if !t.services.contains(&service) {
            t.services.push(service);
        }
        t.start = t.start.min(start);
        t.end = t.end.max(end);
        t.error |= error;
        t.received_at = received_at;
    }

    /// Lets out the traces past expiry or over capacity.
    pub fn expire(&mut self, out: &mut Vec<ClosedTrace>) {
        let horizon = self.watermark.saturating_sub(self.expiry_nanos);
        let capacity = self.capacity;
        self.close_oldest_while(out, |held, t| held > capacity || t.end < horizon);
    }

    /// Lets out the traces with no span received since `now − idle_nanos` (receive time).
    pub fn expire_idle(&mut self, now: u64, idle_nanos: u64, out: &mut Vec<ClosedTrace>) {
        if self.tick.is_none() {
            self.open.values_mut().for_each(|t| t.received_at = now);
        }
        self.tick = Some(now);
        let horizon = now.saturating_sub(idle_nanos);
        self.close_oldest_while(out, |_, t| t.received_at < horizon);
    }

    /// Lets every trace out.
    pub fn flush(&mut self, out: &mut Vec<ClosedTrace>) {
        self.close_oldest_while(out, |_, _| true);
    }

    fn close_oldest_while(
        &mut self,
        out: &mut Vec<ClosedTrace>,
        leave: impl Fn(usize, &Open) -> bool,
    ) {
        while let Some(id) = self.order.front().copied() {
            if !self.open.get(&id).is_none_or(|t| leave(self.open.len(), t)) {
                break;
            }
            self.order.pop_front();
            if let Some(t) = self.open.remove(&id) {
                self.path_spans -= t.spans.len();
                out.push(ClosedTrace {
                    services: t.services,
                    start: t.start,
                    duration_nanos: t.end - t.start,
                    error: t.error,
                    spans: t.spans,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span of `trace` that is a root of its own, of operation 9, without calls.
    fn span(
        table: &mut TraceTable,
        trace: TraceId,
        service: u32,
        start: u64,
        end: u64,
        error: bool,
    ) {
        let path = PathSpan {
            span: loupe_model::SpanId(start.to_le_bytes()),
            parent: None,
            start,
            operation: 9,
        };
        table.span(trace, service, end, error, path);
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_trace_gathers_its_services_and_leaves_past_expiry_or_capacity() {
        let mut table = TraceTable::new(2, 30 * S);
        let mut out = Vec::new();
        let id = |n: u8| TraceId([n; 16]);
        // Trace 1: services 0 → 1 → 0 (a callback), the callee failed; 100 ms end to end.
        span(&mut table, id(1), 0, 10 * S, 10 * S + 100_000_000, false);
        span(
            &mut table,
            id(1),
            1,
            10 * S + 20_000_000,
            10 * S + 60_000_000,
            true,
        );
        span(
            &mut table,
            id(1),
            0,
            10 * S + 30_000_000,
            10 * S + 40_000_000,
            false,
        );
        table.expire(&mut out);
        assert!(out.is_empty(), "the watermark has not passed it");
        // Trace 2 at 50 s moves the watermark past trace 1's end + 30 s.
        span(&mut table, id(2), 2, 50 * S, 50 * S + 1, false);
        table.expire(&mut out);
        assert_eq!(
            out,
            [ClosedTrace {
                services: vec![0, 1],
                start: 10 * S,
                duration_nanos: 100_000_000,
                error: true,
                spans: [0, 20_000_000, 30_000_000]
                    .map(|t| PathSpan {
                        span: loupe_model::SpanId((10 * S + t).to_le_bytes()),
                        parent: None,
                        start: 10 * S + t,
                        operation: 9,
                    })
                    .to_vec(),
            }]
        );
        // Over capacity, the oldest leaves first.
        out.clear();
        span(&mut table, id(3), 0, 51 * S, 51 * S + 1, false);
        span(&mut table, id(4), 0, 52 * S, 52 * S + 1, false);
        table.expire(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].services, [2]);
        assert_eq!(table.len(), 2);
        // Idle: nothing received since the first clock read, 10 s ago.
        out.clear();
        table.expire_idle(100 * S, 5 * S, &mut out);
        assert!(
            out.is_empty(),
            "spans before the first clock read count as received now"
        );
        table.expire_idle(110 * S, 5 * S, &mut out);
        assert_eq!(out.len(), 2);
        table.flush(&mut out);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn the_spans_kept_for_call_paths_are_bounded() {
        let mut table = TraceTable::new(10, 30 * S);
        table.path_budget = 3;
        let mut out = Vec::new();
        let id = |n: u8| TraceId([n; 16]);
        span(&mut table, id(1), 0, S, S + 1, false);
        span(&mut table, id(1), 0, 2 * S, 2 * S + 1, false);
        // Trace 2's second span passes the budget: trace 2 keeps none, trace 3 fits again.
        span(&mut table, id(2), 0, 3 * S, 3 * S + 1, false);
        span(&mut table, id(2), 0, 4 * S, 4 * S + 1, false);
        span(&mut table, id(3), 0, 5 * S, 5 * S + 1, false);
        assert_eq!(table.path_spans, 3);
        table.flush(&mut out);
        let kept: Vec<usize> = out.iter().map(|t| t.spans.len()).collect();
        assert_eq!(kept, [2, 0, 1]);
        assert_eq!(table.path_spans, 0);
    }

    #[test]
    fn stats_give_the_mean_error_share_and_the_rest() {
        let mut all = TraceStats::default();
        let mut through = TraceStats::default();
        for (seconds, error, via) in [(0.1, false, true), (0.4, true, true), (0.2, false, false)] {
            all.add(seconds, error);
            if via {
                through.add(seconds, error);
            }
        }
        let mean = through.ln_mean().unwrap();
        assert!((mean - (0.04f64).ln() / 2.0).abs() < 1e-12, "{mean}");
        assert_eq!(through.error_share(), Some(0.5));
        let rest = all.less(&through);
        assert_eq!(rest.traces, 1);
        assert_eq!(rest.error_traces, 0);
        assert!((rest.ln_sum - 0.2f64.ln()).abs() < 1e-12);
        assert!((rest.ln_mean().unwrap() - 0.2f64.ln()).abs() < 1e-12);
        assert_eq!(TraceStats::default().ln_mean(), None);
        assert_eq!(TraceStats::default().error_share(), None);
    }
}
