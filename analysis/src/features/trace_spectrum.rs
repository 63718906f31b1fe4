//! The trace-spectrum feature: the traces through a service against the traces elsewhere
//! (`evidence::trace_spectrum`).

use loupe_graph::ServiceWindow;

use super::Windows;
use crate::config::AnalysisConfig;
use crate::evidence::{self, Evidence};

/// Service `s`'s trace-spectrum evidence; the pooled history stands in for a baseline with
/// too few traces through it.
pub(crate) fn trace_spectrum(
    s: &ServiceWindow,
    w: &Windows,
    config: &AnalysisConfig,
) -> Option<Evidence> {
    let no_traces = loupe_graph::TraceStats::default();
    let through_before = w
        .baseline
        .service(&s.name)
        .map_or(&no_traces, |b| &b.traces);
    let (through_before, all_before) = match w
        .reference
        .and_then(|r| Some((r.service(&s.name)?, r)))
        .filter(|_| through_before.traces < config.min_baseline_samples)
    {
        Some((rs, r)) if rs.traces.traces > through_before.traces => (&rs.traces, &r.traces),
        _ => (through_before, &w.baseline.traces),
    };
    evidence::trace_spectrum(
        &s.name,
        (&s.traces, through_before),
        (&w.current.traces, all_before),
        config.min_requests,
    )
}
