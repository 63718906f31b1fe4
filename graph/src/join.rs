//! The span join buffer: pairs parent and child spans that arrive in different requests and in
//! any order, within bounded memory, and measures self time per service visit.
//!
//! Every span waits here until its end is older than the event-time watermark less the expiry,
//! until it has been idle past the idle time, or until the buffer is over capacity (oldest
//! first). While it waits, a child that arrives finds it and is linked; a child that arrives
//! first waits for its parent under the parent's id. Links are never inferred from request
//! boundaries.
//!
//! Self time is measured per *visit*: the spans one service emits for one incoming request (its
//! entry span and the same-service spans below it). A visit's self time is the entry span's
//! duration less the union of the outgoing calls made anywhere inside the visit (a client span
//! with a child in another service, or such a child itself when no client span wraps it). So a
//! handler span that instrumentation records as a childless sibling of the client call does not
//! count the callee's time as the service's own. The gap of a call (its client span less the
//! callee's spans: network, queueing, client overhead) belongs to the call.

use std::collections::{HashMap, VecDeque};

use loupe_model::{SpanId, TraceId};

use crate::id_hash::Ids;

/// The parts of a span the join needs: who emitted it and when.
#[derive(Debug, Clone)]
pub(crate) struct SpanFacts {
    pub service: usize,
    pub operation: usize,
    pub start: u64,
    pub end: u64,
    pub error: bool,
    /// The span is the client side of a call (`SpanKind::Client` or `Producer`).
    pub client: bool,
    /// The uninstrumented endpoint a client span names (`service.peer.name`, `server.address`),
    /// as the graph's peer number: the callee when no instrumented child answers.
    pub peer: Option<usize>,
}

#[derive(Debug)]
struct Pending {
    facts: SpanFacts,
    parent: Option<SpanId>,
    /// The parent's service once linked.
    parent_service: Option<usize>,
    /// Intervals of the direct children (for a client span's gap).
    children: Vec<(u64, u64)>,
    /// Intervals of outgoing calls made within this span's same-service subtree.
    calls_out: Vec<(u64, u64)>,
    /// The callee of a client span: of its children in other services, the longest (the
    /// lowest service index on a tie), so the choice does not depend on arrival order.
    remote_child: Option<(usize, u64)>,
    /// The receive tick at which the span arrived.
    received_at: u64,
}

/// What the join tells the graph.
#[derive(Debug)]
pub(crate) enum JoinEvent {
    /// A parent and a child were paired.
    Link { parent: SpanFacts, child: SpanFacts },
    /// A visit's entry span left the buffer: the visit's self time is final.
    VisitSelfTime {
        entry: SpanFacts,
        self_time_nanos: u64,
    },
    /// A client span that names a peer left the buffer without a child in another service: the
    /// call went to something uninstrumented.
    Unanswered { client: SpanFacts, peer: usize },
    /// A client span with a child in `callee` left the buffer: the call's gap is final.
    CallGap {
        client: SpanFacts,
        callee: usize,
        gap_nanos: u64,
    },
}

/// Bounds of the join buffer.
#[derive(Debug, Clone, Copy)]
pub struct JoinConfig {
    /// Most spans held at once; past it the oldest leave first.
    pub capacity: usize,
    /// How long (event time, nanoseconds) a span waits past its end for children and parent.
    pub expiry_nanos: u64,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            expiry_nanos: 30 * 1_000_000_000,
        }
    }
}

type Key = (TraceId, SpanId);

pub(crate) struct JoinBuffer {
    config: JoinConfig,
    spans: HashMap<Key, Pending, Ids>,
    waiting: HashMap<Key, Vec<SpanId>, Ids>,
    order: VecDeque<Key>,
    watermark: u64,
    /// The time of the latest [`JoinBuffer::expire_idle`] call: spans arriving now are stamped
    /// with it. `None` before the first call.
    tick: Option<u64>,
}

/// Length of the union of intervals clipped to `[start, end]`.
fn covered(start: u64, end: u64, intervals: &mut [(u64, u64)]) -> u64 {
    intervals.sort_unstable();
    let (mut total, mut cursor) = (0u64, start);
    for &(s, e) in intervals.iter() {
        let (s, e) = (s.max(cursor), e.min(end));
        if e > s {
            total += e - s;
            cursor = e;
        }
    }
    total
}

impl JoinBuffer {
    pub fn new(config: JoinConfig) -> Self {
        Self {
            config,
            spans: HashMap::default(),
            waiting: HashMap::default(),
            order: VecDeque::new(),
            watermark: 0,
            tick: None,
        }
    }

    /// Number of spans held.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Takes one span in; links it to its parent and to children already waiting.
    pub fn insert(
        &mut self,
        trace: TraceId,
        id: SpanId,
        parent: Option<SpanId>,
        facts: SpanFacts,
        events: &mut Vec<JoinEvent>,
    ) {
        let key = (trace, id);
        if self.spans.contains_key(&key) {
            return; // A duplicate delivery (an exporter's retry) adds nothing to the structure.
        }
        self.watermark = self.watermark.max(facts.end);
        self.spans.insert(
            key,
            Pending {
                facts,
                parent,
                parent_service: None,
                children: Vec::new(),
                calls_out: Vec::new(),
                remote_child: None,
                received_at: self.tick.unwrap_or(0),
            },
        );
        self.order.push_back(key);
        if let Some(parent_id) = parent {
            if self.spans.contains_key(&(trace, parent_id)) {
                self.link(trace, parent_id, id, events);
            } else {
                self.waiting.entry((trace, parent_id)).or_default().push(id);
            }
        }
        for child in self.waiting.remove(&key).unwrap_or_default() {
            if self.spans.contains_key(&(trace, child)) {
                self.link(trace, id, child, events);
            }
        }
    }

    /// Pairs a present parent and child, and carries the child's outgoing calls up the
    /// parent's visit.
    fn link(&mut self, trace: TraceId, parent: SpanId, child: SpanId, events: &mut Vec<JoinEvent>) {
        let Some(c) = self.spans.get(&(trace, child)) else {
            return;
        };
        let child_facts = c.facts.clone();
        let child_calls = c.calls_out.clone();
        let Some(p) = self.spans.get_mut(&(trace, parent)) else {
            return;
        };
        let parent_facts = p.facts.clone();
        p.children.push((child_facts.start, child_facts.end));
        let calls = if parent_facts.service != child_facts.service {
            let candidate = (child_facts.service, child_facts.end - child_facts.start);
            let better =
                |(s, d): (usize, u64)| candidate.1 > d || (candidate.1 == d && candidate.0 < s);
            if p.remote_child.is_none_or(better) {
                p.remote_child = Some(candidate);
            }
            // The call's interval: the client span when there is one, else the callee's span.
            vec![if parent_facts.client {
                (parent_facts.start, parent_facts.end)
            } else {
                (child_facts.start, child_facts.end)
            }]
        } else {
            child_calls
        };
        if let Some(c) = self.spans.get_mut(&(trace, child)) {
            c.parent_service = Some(parent_facts.service);
        }
        self.carry_up(trace, parent, &calls);
        events.push(JoinEvent::Link {
            parent: parent_facts,
            child: child_facts,
        });
    }

    /// Adds call intervals to `from` and to each present same-service ancestor of it.
    fn carry_up(&mut self, trace: TraceId, from: SpanId, calls: &[(u64, u64)]) {
        if calls.is_empty() {
            return;
        }
        let mut at = from;
        // The chain is finite: each step follows a linked parent of the same service, and a
        // span is its own ancestor only in malformed input, which the step bound stops.
        for _ in 0..64 {
            let Some(p) = self.spans.get_mut(&(trace, at)) else {
                return;
            };
            p.calls_out.extend_from_slice(calls);
            let service = p.facts.service;
            match (p.parent, p.parent_service) {
                (Some(up), Some(s)) if s == service => at = up,
                _ => return,
            }
        }
    }

    /// Lets out the spans past expiry or over capacity.
    pub fn expire(&mut self, events: &mut Vec<JoinEvent>) {
        let horizon = self.watermark.saturating_sub(self.config.expiry_nanos);
        let capacity = self.config.capacity;
        self.evict_oldest_while(events, |held, p| held > capacity || p.facts.end < horizon);
    }

    /// Lets out the spans received before `now − idle_nanos` (receive time, from the caller's
    /// clock), so that a quiet stream does not leave the last spans waiting for ever.
    pub fn expire_idle(&mut self, now: u64, idle_nanos: u64, events: &mut Vec<JoinEvent>) {
        if self.tick.is_none() {
            // Spans that arrived before the clock was first read count as received now.
            self.spans.values_mut().for_each(|p| p.received_at = now);
        }
        self.tick = Some(now);
        let horizon = now.saturating_sub(idle_nanos);
        self.evict_oldest_while(events, |_, p| p.received_at < horizon);
    }

    /// Lets every span out (end of a replay or of an evaluation case).
    pub fn flush(&mut self, events: &mut Vec<JoinEvent>) {
        self.evict_oldest_while(events, |_, _| true);
        self.waiting.clear();
    }

    /// Evicts in arrival order while `leave(spans held, oldest span)` says so.
    fn evict_oldest_while(
        &mut self,
        events: &mut Vec<JoinEvent>,
        leave: impl Fn(usize, &Pending) -> bool,
    ) {
        while let Some(key) = self.order.front().copied() {
            if !self
                .spans
                .get(&key)
                .is_none_or(|p| leave(self.spans.len(), p))
            {
                break;
            }
            self.order.pop_front();
            self.evict(key, events);
        }
    }

    fn evict(&mut self, key: Key, events: &mut Vec<JoinEvent>) {
        let Some(mut p) = self.spans.remove(&key) else {
            return;
        };
        if let (Some(parent), None) = (p.parent, p.parent_service) {
            self.waiting.remove(&(key.0, parent));
        }
        let (start, end) = (p.facts.start, p.facts.end);
        if let (true, None, Some(peer)) = (p.facts.client, p.remote_child, p.facts.peer) {
            events.push(JoinEvent::Unanswered {
                client: p.facts.clone(),
                peer,
            });
        }
        if let (true, Some((callee, _))) = (p.facts.client, p.remote_child) {
            let gap_nanos = (end - start) - covered(start, end, &mut p.children);
            events.push(JoinEvent::CallGap {
                client: p.facts.clone(),
                callee,
                gap_nanos,
            });
        }
        // A visit starts at a root, at a span whose parent is in another service, or at an
        // orphan whose parent never arrived.
        if p.parent_service.is_none_or(|s| s != p.facts.service) {
            let self_time_nanos = (end - start) - covered(start, end, &mut p.calls_out);
            events.push(JoinEvent::VisitSelfTime {
                entry: p.facts,
                self_time_nanos,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(service: usize, start: u64, end: u64, client: bool) -> SpanFacts {
        SpanFacts {
            service,
            operation: service,
            start,
            end,
            error: false,
            client,
            peer: None,
        }
    }

    fn sid(n: u8) -> SpanId {
        SpanId([n; 8])
    }

    fn visits(events: &[JoinEvent]) -> Vec<(usize, u64)> {
        let mut out: Vec<(usize, u64)> = events
            .iter()
            .filter_map(|e| match e {
                JoinEvent::VisitSelfTime {
                    entry,
                    self_time_nanos,
                } => Some((entry.service, *self_time_nanos)),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn union_of_intervals_is_clipped_and_merged() {
        assert_eq!(covered(0, 100, &mut [(10, 30), (20, 40), (90, 150)]), 40);
        assert_eq!(covered(0, 100, &mut []), 0);
    }

    /// One trace, inserted in every order: service 0's entry (0–100) has a childless handler
    /// span (1–99) and a client span (5–80) calling service 1 (10–70). Service 0's visit self
    /// time is 100 − 75 = 25 whatever the handler span says; the call's gap is 75 − 60 = 15.
    #[test]
    fn visit_self_time_excludes_calls_in_any_arrival_order() {
        let trace = TraceId([7; 16]);
        let spans = [
            (sid(1), None, facts(0, 0, 100, false)),
            (sid(2), Some(sid(1)), facts(0, 1, 99, false)),
            (sid(3), Some(sid(1)), facts(0, 5, 80, true)),
            (sid(4), Some(sid(3)), facts(1, 10, 70, false)),
        ];
        let orders: [[usize; 4]; 4] = [[0, 1, 2, 3], [3, 2, 1, 0], [3, 0, 1, 2], [1, 3, 0, 2]];
        for order in orders {
            let mut buffer = JoinBuffer::new(JoinConfig {
                capacity: 10,
                expiry_nanos: 1_000,
            });
            let mut events = Vec::new();
            for i in order {
                let (id, parent, f) = spans[i].clone();
                buffer.insert(trace, id, parent, f, &mut events);
            }
            buffer.flush(&mut events);
            assert_eq!(visits(&events), vec![(0, 25), (1, 60)], "order {order:?}");
            let gaps: Vec<u64> = events
                .iter()
                .filter_map(|e| match e {
                    JoinEvent::CallGap {
                        callee: 1,
                        gap_nanos,
                        ..
                    } => Some(*gap_nanos),
                    _ => None,
                })
                .collect();
            assert_eq!(gaps, vec![15], "order {order:?}");
            let links = events
                .iter()
                .filter(|e| matches!(e, JoinEvent::Link { .. }))
                .count();
            assert_eq!(links, 3, "order {order:?}");
        }
    }

    #[test]
    fn capacity_bounds_the_buffer() {
        let trace = TraceId([7; 16]);
        let mut buffer = JoinBuffer::new(JoinConfig {
            capacity: 3,
            expiry_nanos: u64::MAX,
        });
        let mut events = Vec::new();
        for n in 1..=10 {
            buffer.insert(
                trace,
                sid(n),
                Some(sid(200)),
                facts(0, 0, 1, false),
                &mut events,
            );
            buffer.expire(&mut events);
        }
        assert_eq!(buffer.len(), 3);
        assert_eq!(visits(&events).len(), 7, "orphans are visits of their own");
    }

    #[test]
    fn spans_received_before_the_first_tick_are_not_idle_at_once() {
        let trace = TraceId([1; 16]);
        let mut buffer = JoinBuffer::new(JoinConfig {
            capacity: 10,
            expiry_nanos: u64::MAX,
        });
        let mut events = Vec::new();
        buffer.insert(
            trace,
            sid(2),
            Some(sid(1)),
            facts(1, 0, 1, false),
            &mut events,
        );
        buffer.expire_idle(1_000, 10, &mut events);
        assert_eq!(buffer.len(), 1, "a child waiting for its parent stays");
        buffer.insert(trace, sid(1), None, facts(0, 0, 2, false), &mut events);
        assert!(events.iter().any(|e| matches!(e, JoinEvent::Link { .. })));
    }

    #[test]
    fn idle_spans_leave_after_the_idle_time() {
        let trace = TraceId([1; 16]);
        let mut buffer = JoinBuffer::new(JoinConfig {
            capacity: 10,
            expiry_nanos: u64::MAX,
        });
        let mut events = Vec::new();
        buffer.expire_idle(100, 10, &mut events);
        buffer.insert(trace, sid(1), None, facts(0, 0, 1, false), &mut events);
        buffer.expire_idle(105, 10, &mut events);
        assert_eq!(buffer.len(), 1, "received at 100, not idle at 105");
        buffer.expire_idle(111, 10, &mut events);
        assert_eq!(buffer.len(), 0);
        assert_eq!(events.len(), 1);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A random trace: span `i > 0` has a parent among the spans before it.
    fn any_trace() -> impl Strategy<Value = Vec<(Option<usize>, SpanFacts)>> {
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0usize..3,
                any::<bool>(),
                0u64..1_000,
                0u64..1_000,
            ),
            1..25,
        )
        .prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (parent, service, client, a, b))| {
                    let parent = (i > 0).then(|| parent.index(i));
                    let facts = SpanFacts {
                        service,
                        operation: service,
                        start: a.min(b),
                        end: a.max(b),
                        error: false,
                        client,
                        peer: None,
                    };
                    (parent, facts)
                })
                .collect()
        })
    }

    /// Visits (entry start, self time), gaps (client start, callee, gap) and the link count.
    type Outcome = (Vec<(usize, u64)>, Vec<(usize, usize, u64)>, usize);

    fn outcome(trace: &[(Option<usize>, SpanFacts)], order: &[usize]) -> Outcome {
        let id = |i: usize| SpanId([(i + 1) as u8; 8]);
        let mut buffer = JoinBuffer::new(JoinConfig {
            capacity: 1_000,
            expiry_nanos: u64::MAX,
        });
        let mut events = Vec::new();
        for &i in order {
            let (parent, facts) = &trace[i];
            buffer.insert(
                TraceId([9; 16]),
                id(i),
                parent.map(id),
                facts.clone(),
                &mut events,
            );
        }
        buffer.flush(&mut events);
        let (mut visits, mut gaps, mut links) = (Vec::new(), Vec::new(), 0);
        for e in events {
            match e {
                JoinEvent::VisitSelfTime {
                    entry,
                    self_time_nanos,
                } => visits.push((entry.start as usize, self_time_nanos)),
                JoinEvent::CallGap {
                    client,
                    callee,
                    gap_nanos,
                } => gaps.push((client.start as usize, callee, gap_nanos)),
                JoinEvent::Link { .. } => links += 1,
                JoinEvent::Unanswered { .. } => {}
            }
        }
        visits.sort();
        gaps.sort();
        (visits, gaps, links)
    }

    proptest! {
        /// Joins, visit self times and call gaps do not depend on the order spans arrive in.
        #[test]
        fn arrival_order_does_not_matter(trace in any_trace(), seed in any::<u64>()) {
            let in_order: Vec<usize> = (0..trace.len()).collect();
            let mut shuffled = in_order.clone();
            // A deterministic shuffle from the seed (Fisher–Yates with an LCG).
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            let expected = outcome(&trace, &in_order);
            prop_assert_eq!(expected.2, trace.len() - 1, "every child links");
            prop_assert_eq!(outcome(&trace, &shuffled), expected);
        }
    }
}
