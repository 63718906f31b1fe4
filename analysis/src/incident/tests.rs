use std::sync::Arc;

use loupe_graph::GraphConfig;
use loupe_model::{
    AttributeValue, Attributes, Resource, ResourceSpans, Span, SpanId, SpanKind, StatusCode,
    TraceId,
};

use super::*;
use crate::verdict::Judgement;

const SECOND: u64 = 1_000_000_000;

fn spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Arc::new(Resource {
            attributes: Attributes(vec![(
                "service.name".into(),
                AttributeValue::String(service.into()),
            )]),
        }),
        spans,
    }
}

/// One request through frontend → checkout → payment at `t`; every span fails when
/// `failing` (payment fails and the failure propagates).
fn request(n: u64, t: u64, failing: bool) -> Vec<ResourceSpans> {
    let status = if failing {
        StatusCode::Error
    } else {
        StatusCode::Unset
    };
    let span = |i: u64, parent: Option<u64>, offset: u64, ms: u64| Span {
        trace_id: TraceId(u128::from(n + 1).to_be_bytes()),
        span_id: SpanId((n * 4 + i).to_be_bytes()),
        parent_span_id: parent.map(|p| SpanId((n * 4 + p).to_be_bytes())),
        name: "GET /".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: t + offset * 1_000_000,
        end_time_unix_nano: t + (offset + ms) * 1_000_000,
        status,
        attributes: Attributes::default(),
    };
    vec![
        spans("frontend", vec![span(1, None, 0, 30)]),
        spans("checkout", vec![span(2, Some(1), 2, 20)]),
        spans("payment", vec![span(3, Some(2), 4, 10)]),
    ]
}

#[test]
fn an_incident_opens_on_burning_errors_ranks_payment_and_resolves() {
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    let mut incidents = Incidents::default();
    let (detect_config, analysis) = (DetectConfig::default(), AnalysisConfig::default());
    let minute = 60 * SECOND;
    let (fault_start, fault_end) = (60 * minute, 66 * minute);
    let mut opened_at = None;
    // Two hours, a request every 2 s; payment fails for six minutes from minute 60. The
    // 6 h / 30 min alert keeps firing for 30 minutes after the failures stop (the short
    // window's reset time), then the incident resolves 10 minutes later.
    for n in 0..3_600u64 {
        let t = n * 2 * SECOND;
        let failing = (fault_start..fault_end).contains(&t);
        for batch in request(n, t, failing) {
            graph.apply_spans(&[batch]);
        }
        if incidents.tick(&graph, &detect_config, &analysis) && opened_at.is_none() {
            opened_at = incidents.list().first().map(|i| i.opened_unix_nano);
        }
    }
    let list = incidents.list();
    assert_eq!(list.len(), 1, "one incident: {list:#?}");
    let incident = list[0];
    let opened = opened_at.expect("opened");
    assert!(
        (fault_start..fault_start + 3 * minute).contains(&opened),
        "opened {} s after the fault began",
        (opened as i64 - fault_start as i64) / SECOND as i64
    );
    assert!(incident
        .symptoms
        .iter()
        .any(|s| s.service == "frontend" && s.objective == "error_ratio"));
    let top = &incident.analysis.as_ref().expect("analysed").causes[0];
    assert_eq!(top.entity.name, "payment", "{:#?}", incident.analysis);
    // The shipped rules explain it in words.
    assert!(
        top.hypotheses
            .iter()
            .any(|h| h.rule == "errors_originate_here" && h.sentence.contains("payment")),
        "{:#?}",
        top.hypotheses
    );
    // The alert's window began long before the fault; the symptom (frontend's error
    // ratio) and payment's errors both left their baselines in the fault's first step.
    assert!(incident.onset_unix_nano < fault_start);
    assert_eq!(incident.symptom_onset_unix_nano, Some(fault_start));
    let onset = top.onset.as_ref().expect("an onset");
    assert_eq!(
        (
            onset.signal.as_str(),
            onset.at_unix_nano,
            onset.seconds_from_onset
        ),
        ("error_ratio", fault_start, 0.0)
    );
    assert_eq!(
        onset.summary,
        "the error ratio of payment left its baseline as the symptoms began"
    );
    assert_eq!(incident.status, Status::Resolved);
    let resolved = incident.resolved_unix_nano.unwrap();
    let quiet = fault_end + 30 * minute + detect_config.resolve_after_nanos;
    assert!(
        (quiet - minute..quiet + minute).contains(&resolved),
        "resolved {} s after the failures stopped",
        (resolved - fault_end) / SECOND
    );
}

/// The payment failures again, after people rejected the failed calls into payment three times
/// as by design: the incident is kept, suppressed, with the reason in its timeline. Two
/// rejections are not enough.
#[test]
fn a_pattern_rejected_three_times_stops_raising_incidents() {
    let run = |rejections: usize| {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        let mut incidents = Incidents::default();
        for _ in 0..rejections {
            incidents
                .verdicts
                .record(crate::verdict::Verdict {
                    incident: 0,
                    cause: "service:payment".into(),
                    verdict: Judgement::Rejected,
                    comment: "by design".into(),
                    by: "ana".into(),
                    token: None,
                    at_unix_nano: 0,
                    window: [0, 1],
                    features: vec!["failed_calls_into".into()],
                    candidates: Vec::new(),
                })
                .unwrap();
        }
        let (detect, analysis) = (DetectConfig::default(), AnalysisConfig::default());
        for n in 0..2_100u64 {
            let t = n * 2 * SECOND;
            let failing = (3_600 * SECOND..3_960 * SECOND).contains(&t);
            for batch in request(n, t, failing) {
                graph.apply_spans(&[batch]);
            }
            incidents.tick(&graph, &detect, &analysis);
        }
        let list = incidents.list();
        assert_eq!(list.len(), 1, "{list:#?}");
        list[0].clone()
    };
    let raised = run(2);
    assert_eq!(raised.status, Status::Open);
    let suppressed = run(3);
    assert_eq!(suppressed.status, Status::Suppressed);
    let event = suppressed
        .timeline
        .iter()
        .find(|e| e.event.starts_with("suppressed"))
        .expect("the timeline says why");
    assert!(
        event.event.contains("service:payment was rejected 3 times")
            && event.event.contains("by design"),
        "{}",
        event.event
    );
}

#[test]
fn a_healthy_system_opens_nothing_and_a_manual_incident_is_analysed() {
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    let mut incidents = Incidents::default();
    for n in 0..600u64 {
        for batch in request(n, n * 2 * SECOND, n % 500 == 7) {
            graph.apply_spans(&[batch]);
        }
        incidents.tick(&graph, &DetectConfig::default(), &AnalysisConfig::default());
    }
    assert!(
        incidents.list().is_empty(),
        "a single failed request is no incident"
    );
    graph.flush();
    let id = incidents
        .open_manual(
            &graph,
            (600 * SECOND, 1_200 * SECOND),
            Some("checkout looked slow".into()),
            &AnalysisConfig::default(),
        )
        .id;
    let incident = incidents.get(id).unwrap();
    assert_eq!(incident.source, "manual");
    assert!(incident.analysis.is_some(), "{:?}", incident.analysis_error);
}

/// frontend calls checkout on even requests and cart on odd ones; from 10 minutes on,
/// checkout fails 3 in 10 of its calls and cart 1 in 4.
fn two_failing_branches() -> KnowledgeGraph {
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    for n in 0..1_200u64 {
        let t = n * SECOND;
        let (callee, k) = if n % 2 == 0 {
            ("checkout", n / 2)
        } else {
            ("cart", n / 2)
        };
        let faulty = t >= 600 * SECOND;
        let failing = faulty
            && match callee {
                "checkout" => k % 10 < 3,
                _ => k % 4 == 0,
            };
        let span = |i: u64, parent: Option<u64>, error: bool| Span {
            trace_id: TraceId(u128::from(n + 1).to_be_bytes()),
            span_id: SpanId((n * 4 + i).to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId((n * 4 + p).to_be_bytes())),
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: t + i * 1_000_000,
            end_time_unix_nano: t + 20_000_000 - i * 1_000_000,
            status: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            attributes: Attributes::default(),
        };
        graph.apply_spans(&[spans("frontend", vec![span(1, None, false)])]);
        graph.apply_spans(&[spans(callee, vec![span(2, Some(1), failing)])]);
    }
    graph.flush();
    graph
}

/// Incidents and their verdicts survive a restart: the same incidents come back (the
/// newest state of each), a torn last line is skipped, and new incidents are numbered past
/// every incident kept and every incident a verdict names.
#[test]
fn incidents_survive_a_restart_and_ids_never_collide() {
    let dir = std::env::temp_dir().join(format!("loupe-incidents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (incidents_file, verdicts_file) = (dir.join("incidents.jsonl"), dir.join("verdicts.jsonl"));
    let _ = std::fs::remove_file(&incidents_file);
    let _ = std::fs::remove_file(&verdicts_file);
    let graph = two_failing_branches();
    let window = (600 * SECOND, 1_200 * SECOND);
    let config = AnalysisConfig::default();
    let open = || {
        let (verdicts, _) = Verdicts::open(&verdicts_file).unwrap();
        Incidents::open(&incidents_file, verdicts).unwrap()
    };
    let as_json = |i: &Incidents| serde_json::to_value(i.list()).unwrap();
    let (mut incidents, skipped) = open();
    assert_eq!((incidents.list().len(), skipped), (0, 0));
    let first = incidents.open_manual(&graph, window, None, &config).id;
    incidents
        .judge(
            first,
            "service:checkout",
            (Judgement::Rejected, "by design".into(), "ana".into()),
            1,
        )
        .unwrap();
    let second = incidents
        .open_manual(&graph, window, Some("again".into()), &config)
        .id;
    assert_eq!((first, second), (1, 2));
    assert_eq!(incidents.take_save_error(), None);
    let before = as_json(&incidents);
    // A torn write at the end of the file.
    let mut text = std::fs::read_to_string(&incidents_file).unwrap();
    text.push_str("{\"id\": 3, \"tit");
    std::fs::write(&incidents_file, text).unwrap();

    let (incidents, skipped) = open();
    assert_eq!(skipped, 1);
    assert_eq!(
        as_json(&incidents),
        before,
        "the same incidents, newest state each"
    );
    let top = incidents
        .get(first)
        .and_then(|i| i.analysis.as_ref())
        .map(|a| a.causes[0].entity.name.clone());
    assert_eq!(top.as_deref(), Some("cart"), "the rejection still holds");
    assert_eq!(
        std::fs::read_to_string(&incidents_file)
            .unwrap()
            .lines()
            .count(),
        2,
        "rewritten, a line each"
    );
    // A verdict on an analysis read back from the file: no model inputs, no training case.
    let (mut reloaded, _) = open();
    let verdict = reloaded
        .judge_with_token(
            second,
            "service:cart",
            (Judgement::Accepted, String::new(), "ana".into()),
            Some("oncall".into()),
            2,
        )
        .unwrap();
    assert!(verdict.candidates.is_empty() && verdict.training_case().is_none());
    drop(reloaded);
    // The token's name is kept with the verdict (the audit trail), the first one had none.
    let (kept, _) = Verdicts::open(&verdicts_file).unwrap();
    let tokens: Vec<Option<&str>> = kept.all().iter().map(|v| v.token.as_deref()).collect();
    assert_eq!(tokens, [None, Some("oncall")]);
    // A verdict on an incident the file does not hold (written before incidents were
    // kept): the next incident is numbered past it.
    let (mut verdicts, _) = Verdicts::open(&verdicts_file).unwrap();
    let mut v = verdicts.all()[0].clone();
    v.incident = 7;
    verdicts.record(v).unwrap();
    drop(incidents);
    let (verdicts, _) = Verdicts::open(&verdicts_file).unwrap();
    let (mut incidents, _) = Incidents::open(&incidents_file, verdicts).unwrap();
    assert_eq!(incidents.open_manual(&graph, window, None, &config).id, 8);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_rejected_cause_drops_at_once_and_ranks_lower_in_a_repeated_case() {
    let graph = two_failing_branches();
    let window = (600 * SECOND, 1_200 * SECOND);
    let config = AnalysisConfig::default();
    let mut incidents = Incidents::default();
    let top = |i: &Incident| i.analysis.as_ref().unwrap().causes[0].entity.name.clone();
    let first = incidents.open_manual(&graph, window, None, &config).id;
    assert_eq!(top(incidents.get(first).unwrap()), "checkout");
    incidents
        .judge(
            first,
            "service:checkout",
            (Judgement::Rejected, "by design".into(), "ana".into()),
            1,
        )
        .unwrap();
    assert_eq!(
        top(incidents.get(first).unwrap()),
        "cart",
        "demoted at once"
    );
    assert_eq!(incidents.verdicts.of_incident(first).len(), 1);
    // The same case again: what was rejected weighs less.
    let again = incidents.open_manual(&graph, window, None, &config).id;
    assert_eq!(top(incidents.get(again).unwrap()), "cart");
    // An unknown cause or incident is refused.
    assert!(incidents
        .judge(
            again,
            "service:nope",
            (Judgement::Accepted, String::new(), "ana".into()),
            2
        )
        .is_err());
    assert!(incidents
        .judge(
            99,
            "service:cart",
            (Judgement::Accepted, String::new(), "ana".into()),
            2
        )
        .is_err());
}
