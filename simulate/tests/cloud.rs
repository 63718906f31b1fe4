//! The `cloud-shop` topology sends what a deployment on managed services sends: resources of
//! containers and functions with `cloud.*` and no `k8s.*`, client metrics that name load
//! balancers, managed tables and cloud APIs (which send nothing of their own), a function's
//! FaaS metrics; and each metric export (delta, cumulative, summaries; 15 s to 5 min) carries
//! the same calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use loupe_model::{DataPoint, MetricKind, PointValue, Resource, TelemetryBatch};
use loupe_simulate::cases::run_case;
use loupe_simulate::scenario::Traffic;
use loupe_simulate::{CaseSpec, FaultKind, MetricExport, Temporality, Topology};

const MINUTE: u64 = 60_000_000_000;

fn points(export: MetricExport, traffic: Traffic) -> Vec<(Arc<Resource>, DataPoint)> {
    let spec = CaseSpec {
        case_id: "cloud".into(),
        topology: Arc::new(Topology::builtin("cloud-shop").unwrap()),
        fault: FaultKind::DbErrors,
        herrings: Vec::new(),
        seed: 3,
        start_unix_nano: 1_767_571_200_000_000_000 + 12 * 3_600_000_000_000,
        baseline_nanos: 10 * MINUTE,
        fault_nanos: 5 * MINUTE,
        metrics: export,
        traffic,
    };
    let (_, telemetry) = run_case(&spec);
    let mut out = Vec::new();
    for r in &telemetry.requests {
        if let TelemetryBatch::Metrics(b) = r.items().expect("valid items") {
            for rm in b {
                for p in rm.points {
                    out.push((rm.resource.clone(), p));
                }
            }
        }
    }
    out
}

fn attr<'a>(attrs: &'a loupe_model::Attributes, key: &str) -> &'a str {
    attrs.get_str(key).unwrap_or("")
}

/// Calls per (service, metric, callee) over the whole case, whatever the export: deltas
/// summed, cumulative series differenced within each start time.
fn calls(points: &[(Arc<Resource>, DataPoint)]) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (r, p) in points {
        let PointValue::Distribution { count, .. } = p.value else {
            continue;
        };
        let callee = [
            "server.address",
            "db.collection.name",
            "db.namespace",
            "rpc.service",
        ]
        .map(|k| attr(&p.attributes, k))
        .join("/");
        let key = (
            attr(&r.attributes, "service.name").to_owned(),
            p.metric_name.clone(),
            callee,
        );
        let added = if p.cumulative && p.kind != MetricKind::Summary {
            let series = format!(
                "{:?}{:?}{:?}",
                r.attributes.0, p.metric_name, p.attributes.0
            );
            let (start, before) = last.get(&series).copied().unwrap_or((0, 0));
            last.insert(series, (p.start_time_unix_nano, count));
            if start == p.start_time_unix_nano {
                count - before
            } else {
                count
            }
        } else {
            count
        };
        *out.entry(key).or_default() += added;
    }
    out
}

#[test]
fn only_containers_and_functions_send_and_their_callers_name_the_rest() {
    let points = points(MetricExport::default(), Traffic::Normal);
    let senders: std::collections::BTreeSet<&str> = points
        .iter()
        .map(|(r, _)| attr(&r.attributes, "service.name"))
        .collect();
    assert_eq!(
        senders,
        ["cart", "catalog", "fulfilment", "orders", "payments", "web"].into()
    );
    for (r, _) in &points {
        assert_eq!(attr(&r.attributes, "cloud.provider"), "aws");
        assert!(attr(&r.attributes, "k8s.pod.name").is_empty());
    }
    let has = |service: &str, metric: &str, key: &str, value: &str| {
        points.iter().any(|(r, p)| {
            attr(&r.attributes, "service.name") == service
                && p.metric_name == metric
                && attr(&p.attributes, key) == value
        })
    };
    // The load balancer's host name, not the service behind it.
    assert!(has(
        "web",
        "http.client.request.duration",
        "server.address",
        "internal-catalog-1720431985.us-east-1.elb.amazonaws.com"
    ));
    assert!(!has(
        "web",
        "http.client.request.duration",
        "server.address",
        "catalog"
    ));
    assert!(has(
        "catalog",
        "db.client.operation.duration",
        "db.collection.name",
        "products"
    ));
    assert!(has(
        "orders",
        "db.client.operation.duration",
        "db.namespace",
        "orders-db"
    ));
    assert!(has("orders", "rpc.client.duration", "rpc.service", "SQS"));
    assert!(has(
        "orders",
        "rpc.client.duration",
        "rpc.system",
        "aws-api"
    ));
    // A function reports FaaS metrics, not HTTP server durations; a container the HTTP ones.
    let metrics_of = |service: &str| -> std::collections::BTreeSet<String> {
        points
            .iter()
            .filter(|(r, _)| attr(&r.attributes, "service.name") == service)
            .map(|(_, p)| p.metric_name.clone())
            .collect()
    };
    let payments = metrics_of("payments");
    for m in ["faas.invoke_duration", "faas.invocations", "faas.errors"] {
        assert!(payments.contains(m), "{payments:?}");
    }
    assert!(!payments.contains("http.server.request.duration"));
    assert!(metrics_of("catalog").contains("http.server.request.duration"));
}

/// Cumulative histograms and per-interval summaries carry the calls the delta histograms
/// do, at any interval; each summary point covers its own interval.
#[test]
fn every_export_carries_the_same_calls() {
    let reference = calls(&points(MetricExport::default(), Traffic::Normal));
    assert!(reference.values().sum::<u64>() > 1000, "{reference:?}");
    for (interval_seconds, temporality) in [
        (15, Temporality::Cumulative),
        (60, Temporality::Summary),
        (300, Temporality::Delta),
        (60, Temporality::Cumulative),
    ] {
        let export = MetricExport {
            interval_seconds,
            temporality,
        };
        let points = points(export, Traffic::Normal);
        let got = calls(&points);
        // The same simulation, so the same calls, less those after the last collection.
        for (key, &want) in &reference {
            let have = got.get(key).copied().unwrap_or(0);
            let slack = want * interval_seconds / (15 * 60) + 2;
            assert!(
                have <= want && have + slack >= want,
                "{export:?} {key:?}: {have} calls, {want} sent"
            );
        }
        let interval = interval_seconds * 1_000_000_000;
        for (_, p) in &points {
            if let (PointValue::Distribution { .. }, Temporality::Summary) = (&p.value, temporality)
            {
                assert_eq!(p.kind, MetricKind::Summary);
                assert_eq!(p.time_unix_nano - p.start_time_unix_nano, interval);
            }
            if temporality == Temporality::Cumulative && p.kind == MetricKind::Histogram {
                assert!(p.cumulative);
            }
        }
    }
}

/// Low traffic is a quarter of the usual, high four times it.
#[test]
fn traffic_levels_scale_the_calls() {
    let total = |traffic| -> f64 {
        calls(&points(MetricExport::default(), traffic))
            .iter()
            .filter(|((s, m, _), _)| s == "web" && m == "http.server.request.duration")
            .map(|(_, c)| *c as f64)
            .sum()
    };
    let (low, normal, high) = (
        total(Traffic::Low),
        total(Traffic::Normal),
        total(Traffic::High),
    );
    assert!((low / normal - 0.25).abs() < 0.08, "{low} / {normal}");
    assert!((high / normal - 4.0).abs() < 0.6, "{high} / {normal}");
}
