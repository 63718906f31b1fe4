//! Log features: bursts of error log records (against the baseline and the usual rate) and
//! deficits of routine records per call.

use loupe_graph::{ServiceWindow, WindowStats};

use super::Windows;
use crate::config::AnalysisConfig;
use crate::evidence::{self, Evidence};
use crate::history::History;
use crate::window::seconds;

/// Counter-evidence when some of service `s`'s error records name another service: they
/// report that service's failure, not the writer's own.
pub(crate) fn foreign_error_records(s: &ServiceWindow) -> Option<String> {
    (s.logs.foreign_error_records > 0).then(|| {
        format!(
            "{} of its {} error log records name another service, and count as that \
             service's failure, not as errors of its own code",
            s.logs.foreign_error_records, s.logs.error_records
        )
    })
}

/// Service `s`'s burst of error log records of its own, per request when it had at least
/// `min_requests` requests (`reqs`, window and baseline) on each side, else per second; against
/// the baseline and against the history's usual rate, the larger change.
pub(crate) fn error_logs(
    s: &ServiceWindow,
    w: &Windows,
    reqs: (u64, u64),
    config: &AnalysisConfig,
) -> Option<Evidence> {
    // Error records that name another service report its failure, not the writer's own.
    let base_logs = w
        .baseline
        .service(&s.name)
        .map_or(0, |b| b.logs.own_error_records());
    let own_errors = s.logs.own_error_records();
    let (exposure, unit) = if reqs.0.min(reqs.1) >= config.min_requests {
        ((reqs.0 as f64, reqs.1 as f64), "request")
    } else {
        ((seconds(w.current), seconds(w.baseline)), "second")
    };
    let against_baseline = evidence::error_logs(&s.name, (own_errors, base_logs), exposure, unit);
    let against_history = w
        .history
        .filter(|_| reqs.0 >= config.min_requests)
        .and_then(|h| h.usual_error_log_rate(&s.name, config.min_requests))
        .and_then(|usual| evidence::error_logs_against_history(&s.name, own_errors, reqs.0, usual));
    [against_baseline, against_history]
        .into_iter()
        .flatten()
        .max_by(|a, b| a.change.total_cmp(&b.change))
}

/// Service `s`'s deficit of routine log records: per operation ([`operation_log_deficit`]),
/// else over the service's requests (`reqs`, window and baseline).
pub(crate) fn log_deficit(
    s: &ServiceWindow,
    w: &Windows,
    reqs: (u64, u64),
    config: &AnalysisConfig,
) -> Option<Evidence> {
    let b = w.baseline.service(&s.name);
    let logs = (s.logs.routine(), b.map_or(0, |b| b.logs.routine()));
    let per_operation = operation_log_deficit(&s.name, w.baseline, w.current, w.history, config);
    per_operation.or_else(|| evidence::log_deficit(&s.name, logs, reqs, config.min_requests, 1.0))
}

/// The strongest deficit of log records per call among a service's operations (records matched
/// to operations by their span ids; routine records only, [`loupe_graph::LogStats::routine`]). Per operation, because a change in the mix of requests
/// changes a service's records per request without any code path changing; `None` when no
/// operation has records and enough calls in both windows.
fn operation_log_deficit(
    service: &str,
    baseline: &WindowStats,
    current: &WindowStats,
    history: Option<&History>,
    config: &AnalysisConfig,
) -> Option<Evidence> {
    current
        .operations_of(service)
        .iter()
        .flat_map(|now| {
            let label = format!("{service} {}", now.name);
            let usual = history
                .and_then(|h| h.usual_operation_log_rate(service, &now.name, config.min_requests));
            // The dispersion is the operation's way of logging: it serves both comparisons.
            let dispersion = usual.map_or(1.0, |(_, _, d)| d);
            let against_baseline = baseline.operation(service, &now.name).and_then(|before| {
                evidence::log_deficit(
                    &label,
                    (now.logs.routine(), before.logs.routine()),
                    (now.red.calls, before.red.calls),
                    config.min_requests,
                    dispersion,
                )
            });
            let against_history = usual.and_then(|usual| {
                evidence::log_deficit_against_history(
                    &label,
                    (now.logs.routine(), now.red.calls),
                    usual,
                    config.min_requests,
                )
            });
            [against_baseline, against_history]
        })
        .flatten()
        .max_by(|a, b| a.change.total_cmp(&b.change))
}

#[cfg(test)]
mod tests {
    use loupe_graph::RedStats;

    use super::*;

    /// A deficit is of routine records: fewer error records is a problem that went away.
    /// (records, of them errors) per 20 calls of one operation, baseline → window.
    #[test]
    fn a_log_deficit_counts_routine_records_only() {
        type Logs = (u64, u64);
        let cases: [(Logs, Logs, bool); 4] = [
            ((40, 0), (10, 0), true),   // 2 lines a call → ½: work left undone
            ((40, 20), (20, 0), false), // the errors stopped; the routine line stayed
            ((40, 20), (5, 0), true),   // the routine line stopped too
            ((20, 0), (40, 20), false), // errors started: no deficit (the error features)
        ];
        let window = |(records, error_records): (u64, u64)| WindowStats {
            start: 0,
            end: 60_000_000_000,
            operations: vec![loupe_graph::OperationWindow {
                service: "s".into(),
                name: "op".into(),
                red: RedStats {
                    calls: 20,
                    ..Default::default()
                },
                logs: loupe_graph::LogStats {
                    records,
                    error_records,
                    foreign_error_records: 0,
                },
                ..Default::default()
            }],
            ..Default::default()
        };
        for (before, now, deficit) in cases {
            let e = operation_log_deficit(
                "s",
                &window(before),
                &window(now),
                None,
                &AnalysisConfig::default(),
            );
            let shown = e.as_ref().is_some_and(|e| e.change > 2.0);
            assert_eq!(shown, deficit, "{before:?} → {now:?}: {e:?}");
        }
    }
}
