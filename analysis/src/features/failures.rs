//! The failure feature: a service's own error spans (or, without spans, its failed requests),
//! or the failed calls into it when its callers saw more of them (calls it never answered),
//! whichever is the stronger.

use std::collections::HashMap;

use loupe_graph::{RedSource, RedStats, ServiceWindow, WindowStats};

use crate::evidence::{self, Evidence};

/// The failure evidence of service `s` against `baseline`. `incoming` is the calls and failed
/// calls into each service over its incoming `calls` edges, (window, baseline)
/// ([`crate::window::failed_calls`]).
pub(crate) fn failures(
    s: &ServiceWindow,
    baseline: &WindowStats,
    incoming: (&HashMap<&str, RedStats>, &HashMap<&str, RedStats>),
) -> Option<Evidence> {
    let empty = RedStats::default();
    let b = baseline.service(&s.name);
    let from_metrics = s.red_source == RedSource::Metrics;
    // Errors that originate here: its own error spans, or failed calls into it when its
    // callers saw more of them (calls it never answered), whichever is the stronger.
    let into = (
        incoming.0.get(s.name.as_str()).unwrap_or(&empty),
        incoming.1.get(s.name.as_str()).unwrap_or(&empty),
    );
    [
        if from_metrics {
            evidence::failed_requests(&s.name, &s.red, b.map_or(&empty, |b| &b.red))
        } else {
            evidence::error_spans(&s.name, &s.red, b.map_or(&empty, |b| &b.red))
        },
        // Without spans, the calls into it are its callers' client metrics.
        evidence::failed_calls_into(&s.name, into.0, into.1).map(|e| {
            if from_metrics {
                e.read_from_metrics()
            } else {
                e
            }
        }),
    ]
    .into_iter()
    .flatten()
    .max_by(|a, b| a.change.total_cmp(&b.change))
}
