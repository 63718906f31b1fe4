//! Service-level objectives on the user-facing services (those that receive root spans), and
//! multiwindow, multi-burn-rate alerts on them.
//!
//! Burn rate is the rate at which a window spends the error budget: the bad share of requests
//! divided by `1 − objective`. An alert fires when both a long and a short window burn faster
//! than a threshold: 14.4 over 1 h and 5 min (2% of a 30-day budget in an hour), or 6 over
//! 6 h and 30 min (5% in six hours), as Google's "The Site Reliability Workbook", chapter 5
//! ("Alerting on SLOs", multiwindow, multi-burn-rate alerts) recommends for paging.

use std::borrow::Cow;

use loupe_graph::KnowledgeGraph;

use super::{DetectConfig, Detector, Symptom};

const MINUTE: u64 = 60 * 1_000_000_000;

/// The paging alert windows: (long window, short window, burn-rate threshold).
pub const BURN_RATE_ALERTS: [(u64, u64, f64); 2] = [
    (60 * MINUTE, 5 * MINUTE, 14.4),
    (360 * MINUTE, 30 * MINUTE, 6.0),
];

/// `bad / total / (1 − objective)`; 0 without requests.
pub fn burn_rate(bad: u64, total: u64, objective: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let budget = (1.0 - objective).max(1e-9);
    bad as f64 / total as f64 / budget
}

/// The objectives' alerts firing at `now` (valid time) on the graph's user-facing services.
pub fn detect(graph: &KnowledgeGraph, now: u64, config: &DetectConfig) -> Vec<Symptom> {
    let mut out = Vec::new();
    for service in graph.entry_services(now.saturating_sub(60 * MINUTE), now) {
        let slo = config.slos.get(&service).unwrap_or(&config.default_slo);
        for (long, short, threshold) in BURN_RATE_ALERTS {
            let (Some(l), Some(s)) = (
                graph.service_red(&service, now.saturating_sub(long), now),
                graph.service_red(&service, now.saturating_sub(short), now),
            ) else {
                continue;
            };
            if s.calls < config.min_requests {
                continue;
            }
            let mut objectives = vec![("error_ratio", slo.availability, l.errors, s.errors)];
            if let Some(threshold_s) = slo.latency_threshold_seconds {
                objectives.push((
                    "latency",
                    slo.latency_target,
                    l.duration.count_above(threshold_s),
                    s.duration.count_above(threshold_s),
                ));
            }
            for (objective, target, long_bad, short_bad) in objectives {
                let long_burn_rate = burn_rate(long_bad, l.calls, target);
                let short_burn_rate = burn_rate(short_bad, s.calls, target);
                let firing = long_burn_rate >= threshold
                    && short_burn_rate >= threshold
                    && short_bad >= config.min_bad_requests;
                let already = out
                    .iter()
                    .any(|x: &Symptom| x.service == service && x.objective == objective);
                if firing && !already {
                    out.push(Symptom {
                        service: service.clone(),
                        operation: None,
                        objective: Cow::Borrowed(objective),
                        detector: Detector::BurnRate,
                        bad_ratio: Some(short_bad as f64 / s.calls as f64),
                        long_burn_rate: Some(long_burn_rate),
                        short_burn_rate: Some(short_burn_rate),
                        threshold: Some(threshold),
                        windows: [long, short],
                        at_unix_nano: now,
                        deviation: None,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_rate_is_the_bad_share_over_the_budget() {
        assert!((burn_rate(1, 100, 0.99) - 1.0).abs() < 1e-9);
        assert!((burn_rate(144, 10_000, 0.999) - 14.4).abs() < 1e-9);
        assert_eq!(burn_rate(5, 0, 0.999), 0.0);
    }
}
