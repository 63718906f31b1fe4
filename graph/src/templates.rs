//! Log templates: each record's body is clustered online into a template by Drain (He et al.,
//! "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017), as the `logdrain`
//! crate implements it, after masking the tokens that vary per record (times, ids, addresses).
//!
//! One miner serves every graph of the process, so a template id means the same in every graph
//! (the evaluation loads its reference periods into graphs of their own). Template ids are
//! process-local: they are not persisted.
//!
//! Per operation and bucket the graph counts, for each template, the spans that wrote at least
//! one record of it ([`TemplateCounts`]): a code path that starts or stops running shows as a
//! template whose share of the operation's calls changes.

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

/// The template of a log record's body (its first [`HEAD_TOKENS`] whitespace-separated tokens);
/// `None` for an empty body.
pub fn template_of(body: &str) -> Option<TemplateId> {
    // The statement's leading tokens only: a trailing payload of varying length would
    // otherwise split one statement into many templates (Drain groups lines by token count).
    // A slice up to the end of the last head token: no allocation per record.
    let end = body
        .split_whitespace()
        .take(HEAD_TOKENS)
        .last()
        .map(|last| last.as_ptr() as usize - body.as_ptr() as usize + last.len())?;
    Some(miner().add(&body[..end]).cluster_id)
}

/// Leading tokens of a record that make its template.
const HEAD_TOKENS: usize = 8;

/// A template's current text (`<*>` and the masks' `<name>`s where records differ).
pub fn template_text(id: TemplateId) -> Option<String> {
    miner().cluster(id).map(|c| c.template().to_owned())
}

/// Spans per template: for each template, how many of an operation's spans wrote at least one
/// record of it. Sorted by template id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateCounts(pub Vec<(TemplateId, u64)>);

impl TemplateCounts {
    /// Adds `n` spans to `template`.
    pub fn add(&mut self, template: TemplateId, n: u64) {
        match self.0.binary_search_by_key(&template, |(t, _)| *t) {
            Ok(i) => self.0[i].1 += n,
            Err(i) => self.0.insert(i, (template, n)),
        }
    }

    /// Spans that wrote `template`.
    pub fn get(&self, template: TemplateId) -> u64 {
        self.0
            .binary_search_by_key(&template, |(t, _)| *t)
            .map_or(0, |i| self.0[i].1)
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
        let text = template_text(a).unwrap();
        assert!(text.contains("TravelServiceImpl#518"), "{text}");
        assert!(!text.contains("f3d4d4ef"), "{text}");
    }

    #[test]
    fn counts_merge_by_template() {
        let mut a = TemplateCounts::default();
        a.add(7, 2);
        a.add(3, 1);
        let mut b = TemplateCounts::default();
        b.add(7, 1);
        b.add(9, 4);
        a.merge_from(&b);
        assert_eq!(a.0, vec![(3, 1), (7, 3), (9, 4)]);
        assert_eq!(a.get(9), 4);
        assert_eq!(a.get(1), 0);
    }
}
