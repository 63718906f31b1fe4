//! The span join buffer: pairs parent and child spans that arrive in different requests and in
//! any order, within bounded memory.
//!
//! Every span waits here until its end is older than the event-time watermark less the expiry
//! (or until the buffer is over capacity, oldest first). While it waits, a child that arrives
//! finds it and is linked; a child that arrives first waits for its parent under the parent's
//! id. When a span leaves, its self time (duration less the union of its linked children's
//! intervals) is final. Links are never inferred from request boundaries.

use std::collections::{HashMap, VecDeque};

use loupe_model::{SpanId, TraceId};

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
}

#[derive(Debug)]
struct Pending {
    facts: SpanFacts,
    parent: Option<SpanId>,
    linked_to_parent: bool,
    children: Vec<(u64, u64)>,
    /// The receive tick at which the span arrived.
    received_at: u64,
    /// The service of a child in another service: the span is the client side of a call.
    remote_child: Option<usize>,
}

/// What the join tells the graph.
#[derive(Debug)]
pub(crate) enum JoinEvent {
    /// A parent and a child were paired.
    Link { parent: SpanFacts, child: SpanFacts },
    /// A span left the buffer; its self time is final. `remote_child` names the service of a
    /// child in another service, making this span the client side of that call and its self
    /// time the call's gap (network, queueing, client overhead).
    SelfTime {
        facts: SpanFacts,
        self_time_nanos: u64,
        remote_child: Option<usize>,
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
    spans: HashMap<Key, Pending>,
    waiting: HashMap<Key, Vec<SpanId>>,
    order: VecDeque<Key>,
    watermark: u64,
    /// The time of the latest [`JoinBuffer::expire_idle`] call: spans arriving now are stamped
    /// with it.
    tick: u64,
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
            spans: HashMap::new(),
            waiting: HashMap::new(),
            order: VecDeque::new(),
            watermark: 0,
            tick: 0,
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
        let mut pending = Pending {
            facts,
            parent,
            linked_to_parent: false,
            children: Vec::new(),
            received_at: self.tick,
            remote_child: None,
        };
        if let Some(parent_id) = parent {
            if let Some(p) = self.spans.get_mut(&(trace, parent_id)) {
                p.children.push((pending.facts.start, pending.facts.end));
                if p.facts.service != pending.facts.service {
                    p.remote_child = Some(pending.facts.service);
                }
                pending.linked_to_parent = true;
                events.push(JoinEvent::Link {
                    parent: p.facts.clone(),
                    child: pending.facts.clone(),
                });
            } else {
                self.waiting.entry((trace, parent_id)).or_default().push(id);
            }
        }
        if let Some(children) = self.waiting.remove(&key) {
            for child_id in children {
                if let Some(c) = self.spans.get_mut(&(trace, child_id)) {
                    c.linked_to_parent = true;
                    pending.children.push((c.facts.start, c.facts.end));
                    if c.facts.service != pending.facts.service {
                        pending.remote_child = Some(c.facts.service);
                    }
                    events.push(JoinEvent::Link {
                        parent: pending.facts.clone(),
                        child: c.facts.clone(),
                    });
                }
            }
        }
        self.spans.insert(key, pending);
        self.order.push_back(key);
    }

    /// Lets out the spans past expiry or over capacity.
    pub fn expire(&mut self, events: &mut Vec<JoinEvent>) {
        let horizon = self.watermark.saturating_sub(self.config.expiry_nanos);
        while let Some(key) = self.order.front().copied() {
            let over = self.spans.len() > self.config.capacity;
            let old = self.spans.get(&key).is_none_or(|p| p.facts.end < horizon);
            if !(over || old) {
                break;
            }
            self.order.pop_front();
            self.evict(key, events);
        }
    }

    /// Lets out the spans received before `now − idle_nanos` (receive time, from the caller's
    /// clock), so that a quiet stream does not leave the last spans waiting for ever.
    pub fn expire_idle(&mut self, now: u64, idle_nanos: u64, events: &mut Vec<JoinEvent>) {
        self.tick = now;
        let horizon = now.saturating_sub(idle_nanos);
        while let Some(key) = self.order.front().copied() {
            if self
                .spans
                .get(&key)
                .is_some_and(|p| p.received_at >= horizon)
            {
                break;
            }
            self.order.pop_front();
            self.evict(key, events);
        }
    }

    /// Lets every span out (end of a replay or of an evaluation case).
    pub fn flush(&mut self, events: &mut Vec<JoinEvent>) {
        while let Some(key) = self.order.pop_front() {
            self.evict(key, events);
        }
        self.waiting.clear();
    }

    fn evict(&mut self, key: Key, events: &mut Vec<JoinEvent>) {
        let Some(mut p) = self.spans.remove(&key) else {
            return;
        };
        if let (Some(parent), false) = (p.parent, p.linked_to_parent) {
            self.waiting.remove(&(key.0, parent));
        }
        let (start, end) = (p.facts.start, p.facts.end);
        let self_time_nanos = (end - start) - covered(start, end, &mut p.children);
        events.push(JoinEvent::SelfTime {
            facts: p.facts,
            self_time_nanos,
            remote_child: p.remote_child,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(service: usize, start: u64, end: u64) -> SpanFacts {
        SpanFacts {
            service,
            operation: service,
            start,
            end,
            error: false,
            client: false,
        }
    }

    fn sid(n: u8) -> SpanId {
        SpanId([n; 8])
    }

    #[test]
    fn union_of_children_is_clipped_and_merged() {
        assert_eq!(covered(0, 100, &mut [(10, 30), (20, 40), (90, 150)]), 40);
        assert_eq!(covered(0, 100, &mut []), 0);
    }

    #[test]
    fn child_before_parent_is_linked_and_self_time_excludes_it() {
        let trace = TraceId([7; 16]);
        let mut buffer = JoinBuffer::new(JoinConfig {
            capacity: 10,
            expiry_nanos: 5,
        });
        let mut events = Vec::new();
        buffer.insert(trace, sid(2), Some(sid(1)), facts(1, 10, 40), &mut events);
        assert!(events.is_empty(), "the child waits for its parent");
        buffer.insert(trace, sid(1), None, facts(0, 0, 100), &mut events);
        assert!(matches!(&events[0], JoinEvent::Link { parent, child }
            if parent.service == 0 && child.service == 1));
        buffer.flush(&mut events);
        let self_times: Vec<(usize, u64)> = events
            .iter()
            .filter_map(|e| match e {
                JoinEvent::SelfTime {
                    facts,
                    self_time_nanos,
                    ..
                } => Some((facts.service, *self_time_nanos)),
                _ => None,
            })
            .collect();
        assert_eq!(self_times, vec![(1, 30), (0, 70)]);
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
            buffer.insert(trace, sid(n), Some(sid(200)), facts(0, 0, 1), &mut events);
            buffer.expire(&mut events);
        }
        assert_eq!(buffer.len(), 3);
        assert_eq!(events.len(), 7);
    }
}

#[cfg(test)]
mod idle_tests {
    use super::*;

    #[test]
    fn idle_spans_leave_after_the_idle_time() {
        let trace = TraceId([1; 16]);
        let mut buffer = JoinBuffer::new(JoinConfig {
            capacity: 10,
            expiry_nanos: u64::MAX,
        });
        let mut events = Vec::new();
        buffer.expire_idle(100, 10, &mut events);
        let facts = SpanFacts {
            service: 0,
            operation: 0,
            start: 0,
            end: 1,
            error: false,
            client: false,
        };
        buffer.insert(trace, SpanId([1; 8]), None, facts, &mut events);
        buffer.expire_idle(105, 10, &mut events);
        assert_eq!(buffer.len(), 1, "received at 100, not idle at 105");
        buffer.expire_idle(111, 10, &mut events);
        assert_eq!(buffer.len(), 0);
        assert_eq!(events.len(), 1);
    }
}
