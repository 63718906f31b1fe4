//! Attribution of log records to the operation of the span they were written in (the record's
//! `trace_id`/`span_id`), whichever arrives first, within bounded memory.
//!
//! Counting log records per call of an operation, rather than per service, keeps a change in
//! the mix of requests from reading as a change in what the code does.

use std::collections::{HashMap, VecDeque};

use loupe_model::{SpanId, TraceId};

type Key = (TraceId, SpanId);

/// A log record waiting for its span: its bucket and whether it reports an error.
pub(crate) type WaitingLog = (u64, bool);

pub(crate) struct SpanLogIndex {
    capacity: usize,
    operations: HashMap<Key, usize>,
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
        if self.operations.insert(key, operation).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.operations.remove(&old);
                }
            }
        }
        self.waiting.remove(&key).unwrap_or_default()
    }

    /// The operation of a record's span when known; else the record waits for the span (the
    /// oldest waiting spans are forgotten past capacity) and `None` is returned.
    pub fn log(&mut self, key: Key, bucket: u64, error: bool) -> Option<usize> {
        if let Some(operation) = self.operations.get(&key) {
            return Some(*operation);
        }
        let entry = self.waiting.entry(key).or_default();
        if entry.is_empty() {
            self.waiting_order.push_back(key);
        }
        entry.push((bucket, error));
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
        assert_eq!(index.log(key(1), 7, true), None);
        assert_eq!(index.span(key(1), 42), vec![(7, true)]);
        assert_eq!(index.log(key(1), 8, false), Some(42));
        index.span(key(2), 1);
        index.span(key(3), 1);
        assert_eq!(index.log(key(1), 9, false), None, "forgotten past capacity");
    }
}
