//! Call paths: which calls an operation's spans make, in what order, read from whole traces.
//!
//! An exception thrown, an early or a wrong return makes the faulty code skip calls it used to
//! make (an order placed, then no confirmation page rendered) or make others, while its callers
//! keep their own paths. Logs show this when the code logs (`templates`); spans show it always.
//! Nezha (Yu et al., ESEC/FSE 2023) mines such patterns from traces and logs and compares how
//! often one event follows another before and during a fault; loupe counts, per operation, the
//! transitions between the direct children of each of its spans.
//!
//! For a span with children `c₁ … c_k` (by start time, consecutive calls to the same operation
//! taken as one, so that a loop's length is no path), the transitions are `START → c₁`,
//! `c₁ → c₂`, …, `c_k → END`; a span without children has `START → END`. They are counted on the
//! parent span's operation, in the bucket of its start, when its trace leaves the trace table
//! (`traces.rs`): the children of a span arrive in any order and in any request. A trace of
//! more than [`MAX_PATH_SPANS`] spans counts no paths, nor does one that arrives while the
//! traces held keep [`MAX_HELD_PATH_SPANS`] (the memory held is bounded).

use loupe_model::SpanId;

use crate::series::Merge;

/// The start of a span's call path (a step that is no operation).
pub const PATH_START: u32 = u32::MAX;
/// The end of a span's call path.
pub const PATH_END: u32 = u32::MAX - 1;

/// Spans of one trace kept for call paths at most; a longer trace counts none.
pub const MAX_PATH_SPANS: usize = 1024;

/// Spans kept for call paths over all the traces held at most (4 Mi, 32 bytes each: 128 MiB);
/// a trace that would pass it counts no paths.
pub const MAX_HELD_PATH_SPANS: usize = 4 << 20;

/// Per transition `(from, to)` between the children of an operation's spans, how many spans
/// made it; steps are operations (their graph numbers), [`PATH_START`] or [`PATH_END`]. Sorted
/// by transition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallPaths(pub Vec<((u32, u32), u64)>);

impl CallPaths {
    /// Adds `n` spans that made `transition`.
    pub fn add(&mut self, transition: (u32, u32), n: u64) {
        match self.0.binary_search_by_key(&transition, |(t, _)| *t) {
            Ok(i) => self.0[i].1 += n,
            Err(i) => self.0.insert(i, (transition, n)),
        }
    }
}

impl Merge for CallPaths {
    fn merge_from(&mut self, other: &Self) {
        for &(t, n) in &other.0 {
            self.add(t, n);
        }
    }
}

/// One transition of an operation's call paths over a window, its steps named by their
/// operations' entity names (`checkout PlaceOrder`); `from: None` is the path's start, `to:
/// None` its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallTransition {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Spans of the operation that made it.
    pub spans: u64,
}

/// Adds `other`'s transitions into `into` (the same `from` and `to` add up).
pub fn merge_transitions(into: &mut Vec<CallTransition>, other: &[CallTransition]) {
    for t in other {
        match into.iter_mut().find(|x| x.from == t.from && x.to == t.to) {
            Some(x) => x.spans += t.spans,
            None => into.push(t.clone()),
        }
    }
}

/// One span of a trace, as its parent's call path and its own need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathSpan {
    pub span: SpanId,
    pub parent: Option<SpanId>,
    /// Start, unix nanoseconds.
    pub start: u64,
    /// The span's operation (graph number).
    pub operation: u32,
}

/// Every span's transitions, as `(its operation, its start, (from, to))`, into `out`. Spans are
/// reordered (by parent, then start); a span's children are found by binary search among them,
/// so a trace costs one sort and no allocation beyond `out`.
pub(crate) fn transitions(spans: &mut [PathSpan], out: &mut Vec<(u32, u64, (u32, u32))>) {
    let key = |s: &PathSpan| (s.parent.map(|p| p.0), s.start);
    spans.sort_unstable_by_key(key);
    for s in spans.iter() {
        let parent = Some(s.span.0);
        let lo = spans.partition_point(|c| c.parent.map(|p| p.0) < parent);
        let hi = lo
            + spans[lo..]
                .iter()
                .take_while(|c| c.parent.map(|p| p.0) == parent)
                .count();
        let mut from = PATH_START;
        for child in &spans[lo..hi] {
            if child.operation != from {
                out.push((s.operation, s.start, (from, child.operation)));
                from = child.operation;
            }
        }
        out.push((s.operation, s.start, (from, PATH_END)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8, parent: Option<u8>, start: u64, operation: u32) -> PathSpan {
        PathSpan {
            span: SpanId([id; 8]),
            parent: parent.map(|p| SpanId([p; 8])),
            start,
            operation,
        }
    }

    #[test]
    fn a_spans_children_in_start_order_make_its_path() {
        // Operation 0 calls 1, then 2 three times in a loop, then 1 again; 2's spans are leaves.
        // Arrival order is not start order.
        let mut spans = vec![
            span(5, Some(1), 50, 1),
            span(2, Some(1), 10, 1),
            span(1, None, 0, 0),
            span(4, Some(1), 30, 2),
            span(3, Some(1), 20, 2),
            span(6, Some(1), 40, 2),
        ];
        let mut out = Vec::new();
        transitions(&mut spans, &mut out);
        let of = |op: u32| -> Vec<(u32, u32)> {
            out.iter()
                .filter(|(o, _, _)| *o == op)
                .map(|(_, _, t)| *t)
                .collect()
        };
        assert_eq!(
            of(0),
            [(PATH_START, 1), (1, 2), (2, 1), (1, PATH_END)],
            "the loop counts once"
        );
        assert_eq!(of(1), [(PATH_START, PATH_END), (PATH_START, PATH_END)]);
        assert_eq!(of(2).len(), 3);
        assert!(out.iter().all(|(o, start, _)| *o != 0 || *start == 0));
    }

    #[test]
    fn paths_merge_by_transition() {
        let mut a = CallPaths::default();
        a.add((PATH_START, 3), 2);
        a.add((3, PATH_END), 2);
        let mut b = CallPaths::default();
        b.add((3, PATH_END), 1);
        b.add((PATH_START, PATH_END), 4);
        a.merge_from(&b);
        assert_eq!(
            a.0,
            [
                ((3, PATH_END), 3),
                ((PATH_START, 3), 2),
                ((PATH_START, PATH_END), 4)
            ]
        );
    }
}
