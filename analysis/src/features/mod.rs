//! The features: each reads one family of signals from the windows and adds raw values and
//! evidence to the candidates (`candidate`). One module per family: latency (self time,
//! request duration, call gaps), failures, logs, log paths and call paths (code paths), resources
//! (CPU, memory), the trace spectrum, infrastructure (databases, nodes, network paths) and
//! changes. Features read the windows, not other candidates' scores; explain-away is
//! `propagation`'s. Three readings across candidates stay with their feature: a node's self
//! time is the median of its services' ([`infrastructure`]), a change candidate carries its
//! service's evidence ([`changes`]), and a code-path shift is halved when a callee's shifted
//! too ([`log_paths`]).

use loupe_graph::WindowStats;

use crate::history::History;

pub mod call_paths;
pub mod changes;
pub mod failures;
pub mod infrastructure;
pub mod latency;
pub mod log_paths;
pub mod logs;
pub mod resources;
pub mod trace_spectrum;

/// The windows an analysis compares, as every feature reads them.
pub(crate) struct Windows<'a> {
    /// The baseline window.
    pub baseline: &'a WindowStats,
    /// The analysed window.
    pub current: &'a WindowStats,
    /// The longer past, when given.
    pub history: Option<&'a History>,
    /// The history pooled into one window ([`History::pooled`]): the stand-in for a baseline
    /// with too few samples.
    pub reference: Option<&'a WindowStats>,
}

impl<'a> Windows<'a> {
    /// The windows a code path is compared with: the baseline, then the pooled history.
    pub(crate) fn references(&self) -> Vec<&'a WindowStats> {
        let mut out = vec![self.baseline];
        out.extend(self.reference);
        out
    }
}
