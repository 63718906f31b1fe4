//! Temporal scenarios, as data: each file under `testdata/` is a sequence of observations
//! (spans with their resource, on a record-time clock the scenario sets) and expectations on
//! the graph as of a valid time and, optionally, a record time.
//!
//! Lines (times in seconds; `#` starts a comment):
//! - `clock S`: record time is now S.
//! - `span t=S trace=N id=N [parent=N] service=NAME [pod=NAME] [uid=U] [ns=NS] [node=N]
//!   [version=V] [deployment=W] [instance=I] [ms=DURATION] [error]
//!   [kind=server|client|producer|consumer] [s.KEY=VALUE…]`: `s.` fields are span attributes.
//! - `metric t=S service=NAME name=METRIC [value=X] [p.KEY=VALUE…]`: one gauge point; `p.`
//!   fields are point attributes.
//! - `log t=S service=NAME [pod=… ns=… uid=…] [event=NAME] [body=TEXT] [a.KEY=VALUE…]
//!   [r.KEY=VALUE…]`: one log record; `a.` fields are record attributes, `r.` fields extra
//!   resource attributes (underscores in TEXT read as spaces).
//! - `flush`: lets every span out of the join buffer.
//! - `expect at=S window=S [known_at=S] [has=ID,…] [lacks=ID,…] [edges=KIND:SRC>TGT,…]
//!   [noedges=KIND:SRC>TGT,…]`
//! - `changes from=S to=S [service=NAME] [known_at=S] count=N [kinds=KIND,…]
//!   [versions=FROM>TO,…] [targets=ID,…]`: the changes of that selection.
//! - `diff from=S to=S window=S [added=ID,…] [removed=ID,…] [added_relations=KIND:SRC>TGT,…]
//!   [versions=SERVICE:BEFORE>AFTER,…] [changes=N] [significant=ID,…]`: the diff of two windows.
//! - `blast id=ID at=S window=S [dependents=ID:SHARE:DISTANCE,…] [none=ID,…]`: the blast
//!   radius (shares to two decimals).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use loupe_graph::{ChangeQuery, DiffQuery, GraphConfig, GraphQuery, KnowledgeGraph};
use loupe_model::time::Clock;
use loupe_model::{
    AttributeValue, Attributes, DataPoint, LogRecord, MetricKind, PointValue, Resource,
    ResourceLogs, ResourceMetrics, ResourceSpans, Span, SpanId, SpanKind, StatusCode, TraceId,
};

const SECOND: u64 = 1_000_000_000;

#[derive(Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_unix_nano(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn seconds(v: &str) -> u64 {
    let s: f64 = v.parse().unwrap_or_else(|_| panic!("not seconds: {v}"));
    (s * SECOND as f64) as u64
}

fn resource(fields: &[(&str, &str)]) -> Arc<Resource> {
    let keys = [
        ("service", "service.name"),
        ("pod", "k8s.pod.name"),
        ("uid", "k8s.pod.uid"),
        ("ns", "k8s.namespace.name"),
        ("node", "k8s.node.name"),
        ("version", "service.version"),
        ("deployment", "k8s.deployment.name"),
        ("instance", "service.instance.id"),
    ];
    let attributes = keys
        .iter()
        .filter_map(|(field, key)| {
            let (_, v) = fields.iter().find(|(f, _)| f == field)?;
            Some((key.to_string(), AttributeValue::String(v.to_string())))
        })
        .chain(prefixed(fields, "r."))
        .collect();
    Arc::new(Resource {
        attributes: Attributes(attributes),
    })
}

/// The fields named `PREFIX.key` as attributes.
fn prefixed<'a>(
    fields: &'a [(&str, &str)],
    prefix: &'a str,
) -> impl Iterator<Item = (String, AttributeValue)> + 'a {
    fields.iter().filter_map(move |(f, v)| {
        let key = f.strip_prefix(prefix)?;
        Some((key.to_owned(), AttributeValue::String(v.to_string())))
    })
}

fn log(fields: &[(&str, &str)]) -> LogRecord {
    let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
    LogRecord {
        time_unix_nano: seconds(get("t").expect("log needs t=")),
        severity_number: 9,
        severity_text: String::new(),
        body: get("body").unwrap_or("").replace('_', " "),
        event_name: get("event").unwrap_or("").to_owned(),
        attributes: Attributes(prefixed(fields, "a.").collect()),
        trace_id: None,
        span_id: None,
    }
}

fn span(fields: &[(&str, &str)]) -> Span {
    let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
    let n = |k: &str| get(k).map(|v| v.parse::<u64>().unwrap());
    let start = seconds(get("t").expect("span needs t="));
    let ms: u64 = get("ms").map_or(10, |v| v.parse().unwrap());
    let id = |v: u64| SpanId(v.to_be_bytes());
    Span {
        trace_id: TraceId((n("trace").expect("span needs trace=") as u128).to_be_bytes()),
        span_id: id(n("id").expect("span needs id=")),
        parent_span_id: n("parent").map(id),
        name: "GET /".into(),
        kind: match get("kind") {
            Some("client") => SpanKind::Client,
            Some("producer") => SpanKind::Producer,
            Some("consumer") => SpanKind::Consumer,
            _ => SpanKind::Server,
        },
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        status: if get("error").is_some() {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        attributes: Attributes(prefixed(fields, "s.").collect()),
    }
}

fn point(fields: &[(&str, &str)]) -> DataPoint {
    let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
    DataPoint {
        metric_name: get("name").expect("metric needs name=").to_owned(),
        unit: String::new(),
        kind: MetricKind::Gauge,
        time_unix_nano: seconds(get("t").expect("metric needs t=")),
        start_time_unix_nano: 0,
        value: PointValue::Number(get("value").map_or(1.0, |v| v.parse().unwrap())),
        attributes: Attributes(prefixed(fields, "p.").collect()),
        cumulative: false,
    }
}

fn list(v: Option<&str>) -> Vec<&str> {
    v.map(|v| v.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

fn run(name: &str, text: &str) {
    let clock = Arc::new(ManualClock::default());
    let mut graph = KnowledgeGraph::with_clock(GraphConfig::default(), clock.clone());
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(verb) = words.next() else {
            continue;
        };
        let fields: Vec<(&str, &str)> = words
            .map(|w| w.split_once('=').unwrap_or((w, "")))
            .collect();
        let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
        let at = format!("{name}:{}", number + 1);
        match verb {
            "clock" => clock.0.store(seconds(fields[0].0), Ordering::SeqCst),
            "span" => graph.apply_spans(&[ResourceSpans {
                resource: resource(&fields),
                spans: vec![span(&fields)],
            }]),
            "log" => graph.apply_logs(&[ResourceLogs {
                resource: resource(&fields),
                records: vec![log(&fields)],
            }]),
            "metric" => graph.apply_metrics(&[ResourceMetrics {
                resource: resource(&fields),
                points: vec![point(&fields)],
            }]),
            "flush" => graph.flush(),
            "diff" => {
                let d = graph.diff(&DiffQuery {
                    from: seconds(get("from").expect("diff needs from=")),
                    to: seconds(get("to").expect("diff needs to=")),
                    window: seconds(get("window").expect("diff needs window=")),
                    known_at: get("known_at").map(seconds),
                });
                let added: Vec<&str> = d.added_entities.iter().map(|e| e.id.as_str()).collect();
                let removed: Vec<&str> = d.removed_entities.iter().map(|e| e.id.as_str()).collect();
                for id in list(get("added")) {
                    assert!(added.contains(&id), "{at}: {id} not added: {added:?}");
                }
                for id in list(get("removed")) {
                    assert!(removed.contains(&id), "{at}: {id} not removed: {removed:?}");
                }
                let relations: Vec<String> = d
                    .added_relations
                    .iter()
                    .map(|r| format!("{}:{}>{}", r.kind, r.source, r.target))
                    .collect();
                for r in list(get("added_relations")) {
                    assert!(
                        relations.iter().any(|x| x == r),
                        "{at}: {r} not added: {relations:?}"
                    );
                }
                let versions: Vec<String> = d
                    .version_changes
                    .iter()
                    .map(|v| format!("{}:{}>{}", v.service, v.before.join("+"), v.after.join("+")))
                    .collect();
                for v in list(get("versions")) {
                    assert!(
                        versions.iter().any(|x| x == v),
                        "{at}: {v} not in {versions:?}"
                    );
                }
                if let Some(n) = get("changes") {
                    assert_eq!(
                        d.changes.len(),
                        n.parse::<usize>().unwrap(),
                        "{at}: {:#?}",
                        d.changes
                    );
                }
                for id in list(get("significant")) {
                    let c = d.red_changes.iter().find(|c| c.id == id);
                    assert!(
                        c.is_some_and(|c| c.strength >= loupe_graph::SIGNIFICANT_Z),
                        "{at}: {id} not significant: {c:?}"
                    );
                }
            }
            "blast" => {
                let end = seconds(get("at").expect("blast needs at="));
                let start =
                    end.saturating_sub(seconds(get("window").expect("blast needs window=")));
                let radius = graph
                    .blast_radius(get("id").expect("blast needs id="), start, end)
                    .unwrap();
                let got: Vec<String> = radius
                    .dependents
                    .iter()
                    .map(|d| format!("{}:{:.2}:{}", d.id, d.traffic_share, d.distance))
                    .collect();
                for d in list(get("dependents")) {
                    assert!(got.iter().any(|x| x == d), "{at}: {d} not in {got:?}");
                }
                for id in list(get("none")) {
                    assert!(
                        !radius.dependents.iter().any(|d| d.id == id),
                        "{at}: {id} is a dependent: {got:?}"
                    );
                }
            }
            "changes" => {
                let query = ChangeQuery {
                    from: seconds(get("from").expect("changes needs from=")),
                    to: seconds(get("to").expect("changes needs to=")),
                    service: get("service").map(str::to_owned),
                    known_at: get("known_at").map(seconds),
                };
                let changes = graph.changes(&query);
                let count: usize = get("count").expect("changes needs count=").parse().unwrap();
                assert_eq!(changes.len(), count, "{at}: {changes:#?}");
                for (i, kind) in list(get("kinds")).into_iter().enumerate() {
                    assert_eq!(changes[i].change.kind.as_str(), kind, "{at}: change {i}");
                }
                for (i, v) in list(get("versions")).into_iter().enumerate() {
                    let c = &changes[i].change;
                    let got = format!(
                        "{}>{}",
                        c.version_from.as_deref().unwrap_or(""),
                        c.version_to.as_deref().unwrap_or("")
                    );
                    assert_eq!(got, v, "{at}: change {i}");
                }
                for id in list(get("targets")) {
                    assert!(
                        changes.iter().any(|c| c.targets.iter().any(|t| t == id)),
                        "{at}: no change targets {id}: {changes:#?}"
                    );
                }
            }
            "expect" => {
                let at_t = seconds(get("at").expect("expect needs at="));
                let window = seconds(get("window").unwrap_or("0"));
                let query = GraphQuery {
                    start: at_t.saturating_sub(window),
                    end: at_t,
                    known_at: get("known_at").map(seconds),
                    ..Default::default()
                };
                let snapshot = graph.snapshot(&query).unwrap();
                let ids: Vec<&str> = snapshot.nodes.iter().map(|n| n.id.as_str()).collect();
                let edges: Vec<String> = snapshot
                    .edges
                    .iter()
                    .map(|e| format!("{}:{}>{}", e.kind, e.source, e.target))
                    .collect();
                for id in list(get("has")) {
                    assert!(ids.contains(&id), "{at}: {id} missing from {ids:?}");
                }
                for id in list(get("lacks")) {
                    assert!(!ids.contains(&id), "{at}: {id} present in {ids:?}");
                }
                for e in list(get("edges")) {
                    assert!(
                        edges.iter().any(|x| x == e),
                        "{at}: edge {e} missing from {edges:?}"
                    );
                }
                for e in list(get("noedges")) {
                    assert!(
                        !edges.iter().any(|x| x == e),
                        "{at}: edge {e} present in {edges:?}"
                    );
                }
            }
            other => panic!("{at}: unknown step {other:?}"),
        }
    }
}

#[test]
fn scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        run(&path.file_name().unwrap().to_string_lossy(), &text);
    }
}
