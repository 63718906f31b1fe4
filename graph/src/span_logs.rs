//! Attribution of log records to the operation of the span they were written in (the record's
//! `trace_id`/`span_id`), whichever arrives first, within bounded memory.
//!
//! Counting log records per call of an operation, rather than per service, keeps a change in
//! the mix of requests from reading as a change in what the code does. The index also remembers
//! how many records of each template each span wrote so far, so that a record adds to its
//! operation's [`Tally`](crate::templates::Tally) as that span's first, second, … record of the
//! template (the log-path shift compares shares of calls and records per call, see
//! `crate::templates`).

use std::collections::{HashMap, VecDeque};

use loupe_model::{SpanId, TraceId};

use crate::id_hash::Ids;
use crate::templates::TemplateId;

type Key = (TraceId, SpanId);

/// A log record waiting for its span: its bucket, whether it reports an error, its template.
pub(crate) type WaitingLog = (u64, bool, Option<TemplateId>);

/// A record that met its span: its bucket, whether it reports an error, and its template with
/// the number of the span's earlier records of that template.
pub(crate) type SpanLog = (u64, bool, Option<(TemplateId, u64)>);

/// Records so far per template of one span.
type Written = Vec<(TemplateId, u64)>;

/// Counts one more record of `template` in `written`; returns the count before it.
fn write(written: &mut Written, template: TemplateId) -> u64 {
    match written.iter_mut().find(|(t, _)| *t == template) {
        Some((_, n)) => {
            *n += 1;
            *n - 1
        }
        None => {
            written.push((template, 1));
            0
        }
    }
}

pub(crate) struct SpanLogIndex {
    capacity: usize,
    /// Each known span's operation and its records so far per template.
    operations: HashMap<Key, (usize, Written), Ids>,
    order: VecDeque<Key>,
    waiting: HashMap<Key, Vec<WaitingLog>, Ids>,
    waiting_order: VecDeque<Key>,
}

impl SpanLogIndex {
    /// An index remembering at most `capacity` spans and `capacity` spans' waiting records.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            operations: HashMap::default(),
            order: VecDeque::new(),
            waiting: HashMap::default(),
            waiting_order: VecDeque::new(),
        }
    }

    /// Records a span's operation; returns the records that were waiting for it, in arrival
    /// order.
    pub fn span(&mut self, key: Key, operation: usize) -> Vec<SpanLog> {
        let waiting = self.waiting.remove(&key).unwrap_or_default();
        let mut written = Written::new();
        let logs = waiting
            .into_iter()
            .map(|(bucket, error, template)| {
                (bucket, error, template.map(|t| (t, write(&mut written, t))))
            })
            .collect();
        if self.operations.insert(key, (operation, written)).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.operations.remove(&old);
                }
            }
        }
        logs
    }

    /// The operation of a record's span when known, with the number of the span's earlier
    /// records of the record's `template` (`None` without one); else the record waits for the
    /// span (the oldest waiting spans are forgotten past capacity) and `None` is returned.
    pub fn log(
        &mut self,
        key: Key,
        bucket: u64,
        error: bool,
        template: Option<TemplateId>,
    ) -> Option<(usize, Option<u64>)> {
        if let Some((operation, written)) = self.operations.get_mut(&key) {
            return Some((*operation, template.map(|t| write(written, t))));
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
        assert_eq!(index.log(key(1), 7, false, Some(5)), None);
        assert_eq!(
            index.span(key(1), 42),
            vec![(7, true, Some((5, 0))), (7, false, Some((5, 1)))],
            "the waiting records, the second of template 5 after the first"
        );
        assert_eq!(
            index.log(key(1), 8, false, Some(5)),
            Some((42, Some(2))),
            "the span already wrote template 5 twice (the records that waited)"
        );
        assert_eq!(index.log(key(1), 8, false, Some(6)), Some((42, Some(0))));
        assert_eq!(index.log(key(1), 8, false, None), Some((42, None)));
        index.span(key(2), 1);
        index.span(key(3), 1);
        assert_eq!(
            index.log(key(1), 9, false, None),
            None,
            "forgotten past capacity"
        );
    }
}
