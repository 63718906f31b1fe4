//! Resource features: the change of a service's pod CPU (peak) and memory (mean) utilization.

use loupe_graph::{GaugeStats, PodWindow};
use loupe_model::semconv::{K8S_POD_CPU_LIMIT_UTILIZATION, K8S_POD_MEMORY_LIMIT_UTILIZATION};

use crate::candidate::{Candidate, Feature};
use crate::evidence;

/// Adds `service`'s CPU and memory features from its pods in the window (`now`) and the
/// baseline (`before`). The window's peak against the baseline's mean: a leak's OOM kill comes
/// at the peak, and the restart that follows pulls the window's mean back down.
pub(crate) fn add_utilization(
    c: &mut Candidate,
    service: &str,
    now: &[&PodWindow],
    before: &[&PodWindow],
) {
    let resources = [
        (
            Feature::Cpu,
            K8S_POD_CPU_LIMIT_UTILIZATION,
            "cpu_utilization",
        ),
        (
            Feature::Memory,
            K8S_POD_MEMORY_LIMIT_UTILIZATION,
            "memory_utilization",
        ),
    ];
    for (feature, metric, name) in resources {
        if let (Some(n), Some(b)) = (merged_gauge(now, metric), merged_gauge(before, metric)) {
            c.add(feature, evidence::utilization_change(service, name, &n, &b));
        }
    }
}

/// The gauge `metric` merged over `pods`; `None` when none of them has a point of it.
fn merged_gauge(pods: &[&PodWindow], metric: &str) -> Option<GaugeStats> {
    let mut out = GaugeStats::default();
    pods.iter()
        .filter_map(|p| p.gauges.get(metric))
        .for_each(|g| out.merge(g));
    (out.count > 0).then_some(out)
}
