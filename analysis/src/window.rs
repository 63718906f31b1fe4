//! Figures the stages read from a window ([`WindowStats`]) beyond its own accessors: requests
//! and failed calls entering each service, each service's pods, the window's observed length,
//! and who calls whom.

use std::collections::HashMap;

use loupe_graph::{PodWindow, RedStats, WindowStats};

/// Who calls whom in a window (its `calls` edges), for questions about what lies downstream.
pub(crate) struct Callees<'a>(HashMap<&'a str, Vec<&'a str>>);

impl<'a> Callees<'a> {
    /// The callees of each service in `w`.
    pub(crate) fn of(w: &'a WindowStats) -> Self {
        let mut callees: HashMap<&str, Vec<&str>> = HashMap::new();
        for e in &w.edges {
            callees
                .entry(e.source.as_str())
                .or_default()
                .push(e.target.as_str());
        }
        Self(callees)
    }

    /// Whether some service downstream of `from` (a callee, a callee's callee, …; `from`
    /// itself excluded) satisfies `test`.
    pub(crate) fn any_downstream(&self, from: &str, test: impl Fn(&str) -> bool) -> bool {
        self.find_downstream(from, test).is_some()
    }

    /// The first service downstream of `from` (a callee, a callee's callee, …, depth first in
    /// edge order; `from` itself excluded) that satisfies `test`.
    pub(crate) fn find_downstream(
        &self,
        from: &str,
        test: impl Fn(&str) -> bool,
    ) -> Option<&'a str> {
        let mut seen: Vec<&str> = vec![from];
        let mut frontier: Vec<&'a str> = self.0.get(from).cloned().unwrap_or_default();
        frontier.reverse();
        while let Some(d) = frontier.pop() {
            if seen.contains(&d) {
                continue;
            }
            if test(d) {
                return Some(d);
            }
            seen.push(d);
            frontier.extend(self.0.get(d).map_or(&[][..], Vec::as_slice).iter().rev());
        }
        None
    }
}

/// Each service's pods.
pub(crate) fn pods_by_service(w: &WindowStats) -> HashMap<&str, Vec<&PodWindow>> {
    let mut out: HashMap<&str, Vec<&PodWindow>> = HashMap::new();
    for p in &w.pods {
        if let Some(service) = &p.service {
            out.entry(service.as_str()).or_default().push(p);
        }
    }
    out
}

/// Requests entering each service: its root spans plus calls on its incoming edges.
pub(crate) fn requests(w: &WindowStats) -> HashMap<&str, u64> {
    let mut out: HashMap<&str, u64> = w
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.red.root_calls))
        .collect();
    for e in &w.edges {
        *out.entry(e.target.as_str()).or_default() += e.red.calls;
    }
    out
}

/// Calls and failed calls into each service over its incoming `calls` edges (the other
/// figures left empty): its failed-calls evidence, and the totals a network path's callee's
/// other callers are taken from.
pub(crate) fn failed_calls(w: &WindowStats) -> HashMap<&str, RedStats> {
    let mut out: HashMap<&str, RedStats> = HashMap::new();
    for e in &w.edges {
        let red = out.entry(e.target.as_str()).or_default();
        red.calls += e.red.calls;
        red.errors += e.red.errors;
    }
    out
}

/// The window's observed time in seconds (its nominal length when nothing was observed).
pub(crate) fn seconds(w: &WindowStats) -> f64 {
    let nanos = if w.observed_nanos > 0 {
        w.observed_nanos
    } else {
        w.end - w.start
    };
    nanos as f64 / 1e9
}
