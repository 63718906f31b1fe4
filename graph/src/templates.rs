//! Log templates: each record's body is clustered online into a template by Drain (He et al.,
//! "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017), as the `logdrain`
//! crate implements it, after masking the tokens that vary per record (times, ids, addresses).
//!
//! One miner serves every graph of the process, so a template id means the same in every graph
//! (the evaluation loads its reference periods into graphs of their own). Template ids are
//! process-local: they are not persisted.
//!
//! Per operation and bucket the graph tallies, for each template, the spans that wrote at least
//! one record of it, the records, and the sum of each span's record count squared
//! ([`TemplateCounts`], [`Tally`]): a code path that starts or stops running shows as a template
//! whose share of the operation's calls changes, and a loop that now runs fewer or more times
//! (an exception thrown half-way through) as a template whose records per call change.

use std::sync::OnceLock;

use logdrain::{Mask, Miner};

use crate::series::Merge;

/// A template's id (process-local).
pub type TemplateId = u64;

/// The process's miner, with the masks that keep per-record values out of templates.
fn miner() -> &'static Miner {
    static MINER: OnceLock<Miner> = OnceLock::new();
    MINER.get_or_init(|| {
        let ours = [
            // ISO date-times and clock times (`2023-01-29T08:42:22.38Z`, `16:42:22.382`).
            (
                r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
                "<time>",
            ),
            (r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
            (r"\b\d{4}-\d{2}-\d{2}\b", "<date>"),
            // Trace and span ids, hashes.
            (r"\b[0-9a-fA-F]{16}\b", "<hex>"),
            (r"\b0x[0-9a-fA-F]+\b", "<hex>"),
            // Durations and sizes (`12.5ms`, `3s`); bare numbers are Drain's own wildcards,
            // and a number inside a token (`Impl#518`, a source line) stays.
            (r"\b\d+(?:\.\d+)?(?:ms|us|ns|s|KB|MB|GB|B)\b", "<num>"),
        ];
        let masks = [
            logdrain::builtin_masks::uuid(),
            logdrain::builtin_masks::hex32(),
            logdrain::builtin_masks::ipv4(),
            logdrain::builtin_masks::email(),
            logdrain::builtin_masks::jwt(),
        ]
        .into_iter()
        .chain(ours.iter().filter_map(|(p, name)| Mask::new(p, name).ok()));
        Miner::builder()
            .masks(masks)
            .build()
            .unwrap_or_else(|_| Miner::from_options(logdrain::Options::default()))
    })
}

/// The template of a log record's body: of its message, the first [`HEAD_TOKENS`]
/// whitespace-separated tokens that are not its envelope ([`is_envelope`]); `None` for a body
/// with no such token.
pub fn template_of(body: &str) -> Option<TemplateId> {
    // The statement's leading tokens only: a trailing payload of varying length would
    // otherwise split one statement into many templates (Drain groups lines by token count).
    let mut head = String::with_capacity(body.len().min(160));
    for token in body
        .split_whitespace()
        .filter(|t| !is_envelope(t))
        .take(HEAD_TOKENS)
    {
        if !head.is_empty() {
            head.push(' ');
        }
        head.push_str(token);
    }
    (!head.is_empty()).then(|| miner().add(&head).cluster_id)
}

/// Whether a token of a log line is part of its envelope, not of its message: a timestamp, a
/// date or a clock time, a level word, a trace-context key (`TraceID:`, `span_id=…`) or a
/// trace or span id (12 or more hex digits). Where a collector passes whole formatted lines
/// as bodies (a filelog receiver without a parser, the Nezha files), these tokens are the same
/// on every line of a service; left in, they make every pair of its statements of one length
/// alike enough for Drain to merge them into one template.
fn is_envelope(token: &str) -> bool {
    let t = token.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | ',' | ';' | '"'));
    if t.is_empty() {
        return false;
    }
    const TRACE_KEYS: [&str; 8] = [
        "traceid", "trace_id", "trace-id", "trace.id", "spanid", "span_id", "span-id", "span.id",
    ];
    const LEVELS: [&str; 13] = [
        "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "ERR", "FATAL", "SEVERE", "CRITICAL",
        "FINE", "FINER", "FINEST",
    ];
    let key = t.split(['=', ':']).next().unwrap_or(t);
    if TRACE_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k)) {
        return true;
    }
    if LEVELS.contains(&t) {
        return true;
    }
    if t.len() >= 12 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    // `2023-01-29T08:42:22.38Z`, `16:42:22.382`, `2023-01-29`, `+08:00`.
    t.as_bytes()[0].is_ascii_digit()
        && (t.contains(':') || (t.len() == 10 && t.as_bytes()[4] == b'-'))
        && t.bytes().all(|b| {
            b.is_ascii_digit() || matches!(b, b':' | b'.' | b',' | b'-' | b'+' | b'T' | b'Z')
        })
}

/// Leading tokens of a record that make its template.
const HEAD_TOKENS: usize = 8;

/// A template's current text (`<*>` and the masks' `<name>`s where records differ).
pub fn template_text(id: TemplateId) -> Option<String> {
    miner().cluster(id).map(|c| c.template().to_owned())
}

/// What an operation's spans wrote of one template: with `c` the number of records a span
/// wrote of it, `spans` counts the spans with `c ≥ 1`, `records` sums `c` and `squares` sums
/// `c²`, so that records per call have a mean and a variance; `errors` counts the records at
/// ERROR or above, or carrying an exception.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Spans that wrote at least one record of the template.
    pub spans: u64,
    /// Records of the template.
    pub records: u64,
    /// Sum over spans of their record count squared.
    pub squares: u64,
    /// Records that report an error.
    pub errors: u64,
}

impl Tally {
    /// The tally of one record, the span's `prior`-th earlier record of the template excluded
    /// (`prior` = 0 for its first): `c² − (c − 1)² = 2c − 1` more squares, `c = prior + 1`.
    pub fn record(prior: u64, error: bool) -> Self {
        Self {
            spans: u64::from(prior == 0),
            records: 1,
            squares: 2 * prior + 1,
            errors: u64::from(error),
        }
    }

    /// A tally of `spans` spans that wrote one routine (non-error) record each.
    pub fn once(spans: u64) -> Self {
        Self {
            spans,
            records: spans,
            squares: spans,
            errors: 0,
        }
    }

    /// Adds another tally.
    pub fn add(&mut self, other: Tally) {
        self.spans += other.spans;
        self.records += other.records;
        self.squares += other.squares;
        self.errors += other.errors;
    }
}

/// Per template, what an operation's spans wrote of it ([`Tally`]). Sorted by template id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateCounts(pub Vec<(TemplateId, Tally)>);

impl TemplateCounts {
    /// Adds `tally` to `template`'s.
    pub fn add(&mut self, template: TemplateId, tally: Tally) {
        match self.0.binary_search_by_key(&template, |(t, _)| *t) {
            Ok(i) => self.0[i].1.add(tally),
            Err(i) => self.0.insert(i, (template, tally)),
        }
    }

    /// `template`'s tally (zero when no span wrote it).
    pub fn get(&self, template: TemplateId) -> Tally {
        self.0
            .binary_search_by_key(&template, |(t, _)| *t)
            .map_or(Tally::default(), |i| self.0[i].1)
    }
}

impl Merge for TemplateCounts {
    fn merge_from(&mut self, other: &Self) {
        for &(t, n) in &other.0 {
            self.add(t, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_that_differ_in_values_share_a_template() {
        let lines = [
            "16:42:22.382 INFO  t.s.TravelServiceImpl#518 TraceID: ffc8ca7e4c8f06c75142c880d5595d96 SpanID: 439bc949a9eeb0cc [getRouteByRouteId][Route ID: f3d4d4ef-693b-4456-8eed-59c0d717dd08]",
            "16:43:01.007 INFO  t.s.TravelServiceImpl#518 TraceID: 0a1b2c3d4e5f60718293a4b5c6d7e8f9 SpanID: 1234567890abcdef [getRouteByRouteId][Route ID: 0d4fe0a1-1111-2222-3333-444455556666]",
        ];
        let other =
            "16:43:01.009 ERROR t.s.TravelServiceImpl#540 [getRouteByRouteId][route not found]";
        let a = template_of(lines[0]).unwrap();
        assert_eq!(template_of(lines[1]), Some(a));
        assert_ne!(
            template_of(other),
            Some(a),
            "another statement, another template"
        );
        assert_eq!(template_of("   "), None);
        assert_eq!(
            template_of("16:43:01.009 INFO TraceID: 0a1b2c3d4e5f6071 "),
            None
        );
        let text = template_text(a).unwrap();
        assert!(text.contains("TravelServiceImpl#518"), "{text}");
        assert!(!text.contains("f3d4d4ef"), "{text}");
    }

    /// Lines of one service share their envelope (time, level, trace context); two statements
    /// of one length must not merge because of it.
    #[test]
    fn statements_that_share_only_their_envelope_are_apart() {
        let a = "18:25:44.525 INFO  t.s.TravelServiceImpl#366 TraceID: 43793fdb3f4862a691d4ce26d5e523ec SpanID: 10ce2c761b393750 [getTickets][Calculate distance][calculate time: 5]";
        let b = "18:25:44.526 INFO  t.s.TravelServiceImpl#372 TraceID: 0a1b2c3d4e5f60718293a4b5c6d7e8f9 SpanID: 1234567890abcdef [getRestTicketNumber][Seat request][request: Seat]";
        assert_ne!(template_of(a), template_of(b));
        for (token, envelope) in [
            ("2023-01-29T08:42:22.38Z", true),
            ("16:42:22.382", true),
            ("2023-01-29", true),
            ("[INFO]", true),
            ("trace_id=4bf92f3577b34da6a3ce929d0e0e4736", true),
            ("SpanID:", true),
            ("00f067aa0ba902b7", true),
            ("t.s.TravelServiceImpl#366", false),
            ("[getTickets][Calculate", false),
            ("Info", false),
            ("404", false),
            ("decade", false),
        ] {
            assert_eq!(is_envelope(token), envelope, "{token}");
        }
    }

    #[test]
    fn counts_merge_by_template() {
        let mut a = TemplateCounts::default();
        a.add(7, Tally::once(2));
        a.add(3, Tally::once(1));
        let mut b = TemplateCounts::default();
        b.add(7, Tally::once(1));
        b.add(9, Tally::once(4));
        a.merge_from(&b);
        let spans: Vec<(TemplateId, u64)> = a.0.iter().map(|(t, n)| (*t, n.spans)).collect();
        assert_eq!(spans, vec![(3, 1), (7, 3), (9, 4)]);
        assert_eq!(a.get(9), Tally::once(4));
        assert_eq!(a.get(1), Tally::default());
    }

    #[test]
    fn a_spans_records_tally_its_count_and_square() {
        // One span writing three records, one writing one: 2 spans, 4 records, 3² + 1² = 10.
        let mut a = TemplateCounts::default();
        for prior in [0, 1, 2, 0] {
            a.add(5, Tally::record(prior, prior == 2));
        }
        assert_eq!(
            a.get(5),
            Tally {
                spans: 2,
                records: 4,
                squares: 10,
                errors: 1,
            }
        );
    }
}
