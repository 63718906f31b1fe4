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

    /// The callees of each service in the current window (`windows[1]`), with the services
    /// behind each endpoint known only from its callers ([`behind`], with the operator's
    /// `configured` endpoints) as the endpoint's callees:
    /// a caller of a load balancer waits on the service behind it.
    pub(crate) fn through_endpoints(
        windows: [&'a WindowStats; 2],
        configured: &[crate::config::EndpointService],
    ) -> Self {
        let mut callees = Self::of(windows[1]);
        let endpoints: std::collections::BTreeSet<&str> = windows[1]
            .edges
            .iter()
            .map(|e| e.target.as_str())
            .filter(|t| windows[1].service(t).is_none())
            .collect();
        for endpoint in endpoints {
            let services = behind(windows, endpoint, configured);
            if !services.is_empty() {
                callees.0.insert(endpoint, services);
            }
        }
        callees
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

/// Each database's queries over every caller: `w`'s `queries` merged per database (their
/// metric points summed too).
pub(crate) fn queries_by_database(w: &WindowStats) -> std::collections::BTreeMap<&str, RedStats> {
    let mut m: std::collections::BTreeMap<&str, RedStats> = std::collections::BTreeMap::new();
    for q in &w.queries {
        m.entry(q.database.as_str()).or_default().merge(&q.red);
    }
    m
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

/// Whether the endpoint at `address` (known only from its callers) plausibly fronts
/// `service`: a label of the address (split at `.` and `-`) is the service's name, or a run
/// of labels spells it (`internal-orders-1190273811.us-east-1.elb.amazonaws.com` fronts
/// `orders`, `internal-order-api-7.elb…` fronts `order-api`).
pub(crate) fn named_after(address: &str, service: &str) -> bool {
    let wrapped = |s: &str| format!("-{}-", s.replace('.', "-"));
    !service.is_empty() && wrapped(address).contains(&wrapped(service))
}

/// The services that may be behind the endpoint `address`: instrumented services of
/// `current` that no instrumented service calls (in either window: they are reached through
/// something that sends no telemetry), other than the endpoint's own callers, whose median
/// request duration is at most [`RELAYED_DURATION`] times the endpoint's median call
/// duration (a call relayed to a service lasts at least as long as the service takes; the
/// slack is for medians of different points), and fronted by it: by name ([`named_after`]) or
/// by traffic, the calls they served in `current` being within a factor [`SAME_TRAFFIC`] of
/// the calls into the endpoint (an endpoint relays each call). Named ones come first. An
/// operator's word (`configured`, see [`crate::config::EndpointService`]) comes before any
/// inference: the services it names for the address, when `current` has them, are the answer.
pub(crate) fn behind<'a>(
    windows: [&'a WindowStats; 2],
    address: &str,
    configured: &[crate::config::EndpointService],
) -> Vec<&'a str> {
    let current = windows[1];
    let stated: Vec<&'a str> = configured
        .iter()
        .filter(|e| e.address == address)
        .filter_map(|e| current.service(&e.service).map(|s| s.name.as_str()))
        .collect();
    if !stated.is_empty() {
        return stated;
    }
    let called: std::collections::HashSet<&str> = windows
        .iter()
        .flat_map(|w| w.edges.iter().map(|e| e.target.as_str()))
        .collect();
    let into: Vec<&loupe_graph::EdgeWindow> = current
        .edges
        .iter()
        .filter(|e| e.target == address)
        .collect();
    let calls: u64 = into.iter().map(|e| e.red.calls).sum();
    let mut relayed = loupe_graph::DurationSketch::default();
    into.iter().for_each(|e| relayed.merge(&e.red.duration));
    let same_traffic = |a: f64, b: f64| a > 0.0 && b > 0.0 && a.max(b) <= SAME_TRAFFIC * a.min(b);
    let fits = |s: &loupe_graph::ServiceWindow| match (
        s.red.duration.quantile_seconds(0.5),
        relayed.quantile_seconds(0.5),
    ) {
        (Some(own), Some(through)) => own <= RELAYED_DURATION * through,
        _ => true,
    };
    let mut named = Vec::new();
    let mut by_traffic = Vec::new();
    for s in &current.services {
        let name = s.name.as_str();
        if name == address
            || called.contains(name)
            || into.iter().any(|e| e.source == name)
            || !fits(s)
        {
            continue;
        }
        if named_after(address, name) {
            named.push(name);
        } else if same_traffic(s.red.calls as f64, calls as f64) {
            by_traffic.push(name);
        }
    }
    named.extend(by_traffic);
    named
}

/// How far apart an endpoint's calls and a service's may be for the service to be behind the
/// endpoint by traffic alone: ×1.15, room for calls in flight at the window's edges and for a
/// few calls the endpoint answers itself or makes itself (health checks, redirects, cached
/// answers), and narrow enough that a service with its own share of the traffic (four
/// requests of five) is not taken for the endpoint's.
const SAME_TRAFFIC: f64 = 1.15;

/// How much slower than the calls through an endpoint the service behind it may look: ×1.25,
/// for medians read from different points.
const RELAYED_DURATION: f64 = 1.25;

#[cfg(test)]
mod tests {
    use super::named_after;

    /// (address, service, whether the address is named after the service)
    #[test]
    fn an_endpoint_is_named_after_a_service_by_whole_labels() {
        let cases = [
            (
                "internal-orders-1190273811.us-east-1.elb.amazonaws.com",
                "orders",
                true,
            ),
            (
                "internal-order-api-7.us-east-1.elb.amazonaws.com",
                "order-api",
                true,
            ),
            ("orders.shop.svc.cluster.local", "orders", true),
            (
                "internal-orders-1190273811.us-east-1.elb.amazonaws.com",
                "order",
                false,
            ),
            ("internal-preorders-1.elb.amazonaws.com", "orders", false),
            (
                "k3x9v2m7qd.execute-api.us-east-1.amazonaws.com",
                "payments",
                false,
            ),
            ("anything", "", false),
        ];
        for (address, service, named) in cases {
            assert_eq!(named_after(address, service), named, "{address} {service}");
        }
    }
}
