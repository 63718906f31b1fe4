//! Attribution of log records to the operation of the span they were written in (the record's
//! `trace_id`/`span_id`), whichever arrives first, within bounded memory.
//!
//! Counting log records per call of an operation, rather than per service, keeps a change in
//! the mix of requests from reading as a change in what the code does. The index also remembers
//! the templates each span's records had, so that a span counts once per template (the
//! log-path shift compares shares of calls, see `crate::templates`).

use std::collections::{HashMap, VecDeque};

use loupe_model::{SpanId, TraceId};

use crate::templates::TemplateId;

type Key = (TraceId, SpanId);

/// A log record waiting for its span: its bucket, whether it reports an error, its template.
pub(crate) type WaitingLog = (u64, bool, Option<TemplateId>);

pub(crate) struct SpanLogIndex {
    capacity: usize,
    /// Each known span's operation and the templates its records had so far.
    operations: HashMap<Key, (usize, Vec<TemplateId>)>,
    order: VecDeque<Key>,
    waiting: HashMap<Key, Vec<WaitingLog>>,
    waiting_order: VecDeque<Key>,
}

impl SpanLogIndex {
    /// An index remembering at most `capacity` spans and `capacity` spans' waiting records.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            operations: HashMap::new(),
            order: VecDeque::new(),
            waiting: HashMap::new(),
            waiting_order: VecDeque::new(),
        }
    }

    /// Records a span's operation; returns the records that were waiting for it.
    pub fn span(&mut self, key: Key, operation: usize) -> Vec<WaitingLog> {
        let waiting = self.waiting.remove(&key).unwrap_or_default();
        let mut templates: Vec<TemplateId> = waiting.iter().filter_map(|w| w.2).collect();
        templates.sort_unstable();
        templates.dedup();
        if self
            .operations
            .insert(key, (operation, templates))
            .is_none()
        {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.operations.remove(&old);
                }
            }
        }
        waiting
    }

    /// The operation of a record's span when known, and whether the record is the span's first
    /// of its `template`; else the record waits for the span (the oldest waiting spans are
    /// forgotten past capacity) and `None` is returned.
    pub fn log(
        &mut self,
        key: Key,
        bucket: u64,
        error: bool,
        template: Option<TemplateId>,
    ) -> Option<(usize, bool)> {
        if let Some((operation, seen)) = self.operations.get_mut(&key) {
            let first = template.is_some_and(|t| !seen.contains(&t));
            if let (Some(t), true) = (template, first) {
                seen.push(t);
            }
            return Some((*operation, first));
        }
        let entry = self.waiting.entry(key).or_default();
        if entry.is_empty() {
            self.waiting_order.push_back(key);
        }
        entry.push((bucket, error, template));
        while self.waiting_order.len() > self.capacity {
            if let Some(old) = self.waiting_order.pop_front() {
                self.waiting.remove(&old);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_meet_their_span_in_either_order() {
        let key = |n: u8| (TraceId([1; 16]), SpanId([n; 8]));
        let mut index = SpanLogIndex::new(2);
        assert_eq!(index.log(key(1), 7, true, Some(5)), None);
        assert_eq!(index.span(key(1), 42), vec![(7, true, Some(5))]);
        assert_eq!(
            index.log(key(1), 8, false, Some(5)),
            Some((42, false)),
            "the span already wrote template 5 (the record that waited)"
        );
        assert_eq!(index.log(key(1), 8, false, Some(6)), Some((42, true)));
        assert_eq!(index.log(key(1), 8, false, None), Some((42, false)));
        index.span(key(2), 1);
        index.span(key(3), 1);
        assert_eq!(
            index.log(key(1), 9, false, None),
            None,
            "forgotten past capacity"
        );
    }
}
