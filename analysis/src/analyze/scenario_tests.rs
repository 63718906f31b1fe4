//! Rankings on small graphs built from spans and logs through the real graph.

use std::sync::Arc;

use loupe_graph::{GraphConfig, KnowledgeGraph};
use loupe_model::{
    AttributeValue, Attributes, LogRecord, Resource, ResourceLogs, ResourceSpans, Span, SpanId,
    SpanKind, StatusCode, TraceId,
};

use super::*;

const SECOND: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
/// Baseline [0, 60 s), fault [60 s, 120 s).
const FAULT_START: u64 = 60 * SECOND;

fn resource(service: &str) -> Arc<Resource> {
    let attrs = vec![
        (
            "service.name".to_owned(),
            AttributeValue::String(service.to_owned()),
        ),
        (
            "k8s.pod.name".to_owned(),
            AttributeValue::String(format!("{service}-1")),
        ),
    ];
    Arc::new(Resource {
        attributes: Attributes(attrs),
    })
}

/// What each service of the chain frontend → checkout → payment does in one request: its own
/// work in ms, in which requests it logs an error instead of its line (every `error_every`-th;
/// 0: none), the log line it writes (none when empty), and whether the request ends there
/// (it calls no further).
#[derive(Clone, Copy)]
struct Step {
    self_ms: u64,
    error_every: u64,
    line: &'static str,
    stops: bool,
}

const OK: Step = Step {
    self_ms: 5,
    error_every: 0,
    line: "handled",
    stops: false,
};

/// One trace at `t` through the chain: each service is a server span whose child is the next
/// service's span (no client spans, as uninstrumented clients leave it).
fn trace(graph: &mut KnowledgeGraph, n: u64, t: u64, steps: [Step; 3]) {
    let services = ["frontend", "checkout", "payment"];
    let inner: u64 = steps.iter().map(|s| s.self_ms).sum();
    let (mut start, mut duration) = (t, inner * MS);
    for (i, (service, step)) in services.iter().zip(steps).enumerate() {
        let span = Span {
            trace_id: TraceId([(n % 250) as u8 + 1; 16]),
            span_id: SpanId([i as u8 + 1, (n >> 8) as u8, n as u8, 1, 1, 1, 1, 1]),
            parent_span_id: (i > 0).then_some(SpanId([
                i as u8,
                (n >> 8) as u8,
                n as u8,
                1,
                1,
                1,
                1,
                1,
            ])),
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            status: StatusCode::Unset,
            attributes: Attributes::default(),
        };
        let ids = (Some(span.trace_id), Some(span.span_id));
        graph.apply_spans(&[ResourceSpans {
            resource: resource(service),
            spans: vec![span],
        }]);
        // Written inside the span, as an SDK's log bridge records it.
        let record = LogRecord {
            time_unix_nano: start,
            severity_number: if step.error_every > 0 && n.is_multiple_of(step.error_every) {
                17
            } else {
                9
            },
            severity_text: String::new(),
            body: step.line.into(),
            event_name: String::new(),
            attributes: Attributes::default(),
            trace_id: ids.0,
            span_id: ids.1,
        };
        if !step.line.is_empty() {
            graph.apply_logs(&[ResourceLogs {
                resource: resource(service),
                records: vec![record],
            }]);
        }
        if step.stops {
            break;
        }
        start += step.self_ms * MS / 2;
        duration -= step.self_ms * MS;
    }
}

/// Ranks the three services when the fault window's requests do `fault` instead of `OK`;
/// `expected_first` must come first.
fn check(fault: [Step; 3], expected_first: &str) -> Analysis {
    let analysis = analyze_fault(fault);
    let ranking: Vec<&str> = analysis
        .causes
        .iter()
        .map(|c| c.entity.name.as_str())
        .collect();
    assert_eq!(ranking[0], expected_first, "ranking {ranking:?}");
    assert!(!analysis.causes[0].evidence.is_empty());
    analysis
}

/// The analysis of a fault window whose requests do `fault` instead of `OK`.
fn analyze_fault(fault: [Step; 3]) -> Analysis {
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    for n in 0..240u64 {
        let t = n * SECOND / 2;
        trace(
            &mut graph,
            n,
            t,
            if t < FAULT_START { [OK; 3] } else { fault },
        );
    }
    graph.flush();
    let baseline = graph.window(0, FAULT_START);
    let current = graph.window(FAULT_START, 2 * FAULT_START);
    analyze(&baseline, &current, None, &[], &AnalysisConfig::default()).unwrap()
}

/// The counter-evidence sentences of `service` in `analysis`.
fn counter<'a>(analysis: &'a Analysis, service: &str) -> &'a [String] {
    &analysis
        .causes
        .iter()
        .find(|c| c.entity.name == service)
        .expect("the service is a candidate")
        .counter_evidence
}

/// An error record that names another service reports that service's failure as the
/// writer met it: it is no error of the writer's own code. One line per case: the line
/// checkout writes at ERROR in every fault-window request, whether it is checkout's own.
#[test]
fn error_records_that_name_another_service_are_not_the_writers_own() {
    for (line, own) in [
        ("card declined", true),
        ("No instances available for payment", false),
        (
            "dial tcp: lookup payment.shop.svc.cluster.local: no such host",
            false,
        ),
    ] {
        let failing = Step {
            error_every: 1,
            line,
            ..OK
        };
        let analysis = analyze_fault([OK, failing, OK]);
        let checkout = analysis
            .causes
            .iter()
            .find(|c| c.entity.name == "checkout")
            .expect("checkout is a candidate");
        let error_logs = checkout
            .evidence
            .iter()
            .any(|e| e.feature == "error_log_records");
        assert_eq!(error_logs, own, "{line}: {:?}", checkout.evidence);
        let says = counter(&analysis, "checkout");
        assert_eq!(
            says.iter()
                .any(|s| s.contains("120 of its 120 error log records name another service")),
            !own,
            "{line}: {says:?}"
        );
    }
}

#[test]
fn slow_own_work_ranks_the_slow_service_not_its_callers() {
    let slow = Step { self_ms: 80, ..OK };
    check([OK, OK, slow], "payment");
    check([OK, slow, OK], "checkout");
}

#[test]
fn errors_logged_along_the_chain_are_blamed_on_the_deepest_service() {
    let failing = Step {
        error_every: 1,
        ..OK
    };
    let analysis = check([failing, failing, failing], "payment");
    let says = counter(&analysis, "checkout");
    assert!(
        says.len() == 1 && says[0].contains("explained away by service payment downstream"),
        "{says:?}"
    );
    assert!(counter(&analysis, "payment").is_empty());
    let analysis = check([failing, failing, OK], "checkout");
    let says = counter(&analysis, "frontend");
    assert!(
        says.len() == 1 && says[0].contains("by service checkout downstream of it, which fails"),
        "{says:?}"
    );
}

/// A callee whose calls took another code path (an exception caught, a wrong early
/// return: no error of its own) explains the errors its caller logs about its answers: one
/// request in five here, a burst that outscores the callee's path shift unless explained.
#[test]
fn a_callee_whose_code_path_changed_explains_its_callers_errors() {
    let failing_at_times = Step {
        error_every: 5,
        ..OK
    };
    let other_path = Step {
        line: "no price for route, using the default",
        ..OK
    };
    let analysis = check([OK, failing_at_times, other_path], "payment");
    let says = counter(&analysis, "checkout");
    assert!(
        says.len() == 1
            && says[0].contains("by service payment downstream of it, which changed its code path"),
        "{says:?}"
    );
}

/// Code that does not log: an exception thrown in checkout before it calls payment shows in
/// checkout's call paths (its spans end without calling payment), through the whole path
/// from spans to the ranking.
#[test]
fn a_service_that_stopped_calling_shows_in_its_call_paths() {
    let quiet = Step { line: "", ..OK };
    let thrown = Step {
        stops: true,
        ..quiet
    };
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    for n in 0..240u64 {
        let t = n * SECOND / 2;
        let steps = if t < FAULT_START || n % 3 == 0 {
            [quiet; 3]
        } else {
            [quiet, thrown, quiet]
        };
        trace(&mut graph, n, t, steps);
    }
    graph.flush();
    let baseline = graph.window(0, FAULT_START);
    let current = graph.window(FAULT_START, 2 * FAULT_START);
    let analysis = analyze(&baseline, &current, None, &[], &AnalysisConfig::default()).unwrap();
    let first = &analysis.causes[0];
    assert_eq!(first.entity.name, "checkout", "{:?}", analysis.causes);
    assert_eq!(first.evidence[0].feature, "call_path_shift");
    assert!(
        first.evidence[0]
            .summary
            .starts_with("checkout GET /: 33% of spans called payment GET / first (100% of 120"),
        "{}",
        first.evidence[0].summary
    );
    // The shipped rule says it with the call path's sentence.
    assert!(
        first
            .hypotheses
            .iter()
            .any(|h| h.rule == "code_path_changed"
                && h.sentence.ends_with(&first.evidence[0].summary)),
        "{:?}",
        first.hypotheses
    );
}

/// A fault already active in the baseline (it outlived an earlier injection) shows against
/// the history only.
#[test]
fn a_fault_that_tainted_the_baseline_shows_against_the_history() {
    let failing = Step {
        error_every: 1,
        ..OK
    };
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    // [0, 60 s) healthy; the fault from 60 s on, through baseline [60, 120) and window
    // [120, 180).
    for n in 0..360u64 {
        let t = n * SECOND / 2;
        let steps = if t < FAULT_START {
            [OK; 3]
        } else {
            [OK, failing, OK]
        };
        trace(&mut graph, n, t, steps);
    }
    graph.flush();
    let baseline = graph.window(FAULT_START, 2 * FAULT_START);
    let current = graph.window(2 * FAULT_START, 3 * FAULT_START);
    let config = AnalysisConfig::default();
    let top = |history: Option<&History>| {
        let analysis = analyze(&baseline, &current, history, &[], &config).unwrap();
        let first = &analysis.causes[0];
        (first.entity.name.clone(), first.score)
    };
    let (_, score_without) = top(None);
    assert!(score_without < 1.0, "no change against the baseline");
    let history = History::new(vec![
        graph.window(0, FAULT_START / 2),
        graph.window(FAULT_START / 2, FAULT_START),
        baseline.clone(),
    ]);
    let (name, score) = top(Some(&history));
    assert_eq!(name, "checkout");
    assert!(score > 3.0, "score {score}");
}
