//! Each fault kind leaves its expected signature in the generated telemetry, a red herring
//! leaves its own and nothing else, and a seed reproduces a case set byte for byte.

use std::sync::Arc;

use loupe_model::{PointValue, Resource, SpanKind, StatusCode, TelemetryBatch};
use loupe_simulate::cases::{run_case, write_suite, CaseTelemetry, SuiteSpec};
use loupe_simulate::{CaseSpec, FaultKind, GroundTruth, HerringKind, Topology};

const MINUTE: u64 = 60_000_000_000;

struct Span {
    resource: Arc<Resource>,
    span: loupe_model::Span,
}

struct Case {
    truth: GroundTruth,
    spans: Vec<Span>,
    logs: Vec<(Arc<Resource>, loupe_model::LogRecord)>,
    points: Vec<(Arc<Resource>, loupe_model::DataPoint)>,
    telemetry: CaseTelemetry,
}

fn case(kind: FaultKind, herrings: Vec<HerringKind>, seed: u64) -> Case {
    let spec = CaseSpec {
        case_id: format!("t-{kind}"),
        topology: Arc::new(Topology::builtin("otel-demo").unwrap()),
        fault: kind,
        herrings,
        seed,
        start_unix_nano: 1_767_571_200_000_000_000 + 10 * 3_600_000_000_000,
        baseline_nanos: 4 * MINUTE,
        fault_nanos: 3 * MINUTE,
        metrics: Default::default(),
        traffic: Default::default(),
    };
    let (truth, telemetry) = run_case(&spec);
    let mut out = Case {
        truth,
        spans: Vec::new(),
        logs: Vec::new(),
        points: Vec::new(),
        telemetry: CaseTelemetry::default(),
    };
    for r in &telemetry.requests {
        match r
            .items()
            .expect("every generated request holds valid items")
        {
            TelemetryBatch::Traces(b) => {
                for rs in b {
                    for span in rs.spans {
                        out.spans.push(Span {
                            resource: rs.resource.clone(),
                            span,
                        });
                    }
                }
            }
            TelemetryBatch::Logs(b) => {
                for rl in b {
                    for r in rl.records {
                        out.logs.push((rl.resource.clone(), r));
                    }
                }
            }
            TelemetryBatch::Metrics(b) => {
                for rm in b {
                    for p in rm.points {
                        out.points.push((rm.resource.clone(), p));
                    }
                }
            }
        }
    }
    out.telemetry = telemetry;
    out
}

fn attr<'a>(r: &'a Resource, key: &str) -> &'a str {
    r.attributes.get_str(key).unwrap_or("")
}

impl Case {
    fn fault(&self, t: u64) -> bool {
        t >= self.truth.fault_start_unix_ns
    }

    /// Server spans of `service` in the fault window (`true`) or the baseline.
    fn served(&self, service: &str, fault: bool) -> Vec<&Span> {
        self.select(|s| {
            attr(&s.resource, "service.name") == service
                && matches!(s.span.kind, SpanKind::Server | SpanKind::Consumer)
                && self.fault(s.span.start_time_unix_nano) == fault
        })
    }

    fn select(&self, f: impl Fn(&Span) -> bool) -> Vec<&Span> {
        self.spans.iter().filter(|s| f(s)).collect()
    }

    fn mean_ms<'a>(spans: impl IntoIterator<Item = &'a Span>) -> f64 {
        let (n, sum) = spans.into_iter().fold((0u64, 0u64), |(n, sum), s| {
            (
                n + 1,
                sum + s.span.end_time_unix_nano - s.span.start_time_unix_nano,
            )
        });
        assert!(n > 0, "no spans to measure");
        sum as f64 / n as f64 / 1e6
    }

    fn error_ratio(&self, service: &str, fault: bool) -> f64 {
        let (n, e) = self
            .served(service, fault)
            .into_iter()
            .fold((0, 0), |(n, e), s| {
                (n + 1, e + usize::from(s.span.status == StatusCode::Error))
            });
        assert!(n > 0, "{service} served nothing");
        e as f64 / n as f64
    }

    /// Errors or latency of the root cause's service rose.
    fn root_degraded(&self) -> bool {
        let root = &self.truth.root_cause_service;
        self.error_ratio(root, true) > self.error_ratio(root, false) + 0.1
            || Self::mean_ms(self.served(root, true))
                > 2.0 * Self::mean_ms(self.served(root, false)) + 50.0
    }

    fn gauge_mean(&self, pod: &str, metric: &str, fault: bool) -> f64 {
        let v: Vec<f64> = self
            .points
            .iter()
            .filter(|(r, p)| {
                attr(r, "k8s.pod.name") == pod
                    && p.metric_name == metric
                    && self.fault(p.time_unix_nano) == fault
            })
            .map(|(_, p)| match p.value {
                PointValue::Number(v) => v,
                PointValue::Distribution { .. } => f64::NAN,
            })
            .collect();
        assert!(!v.is_empty(), "no {metric} of {pod}");
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn notices_about(&self, service: &str) -> Vec<&serde_json::Value> {
        self.telemetry
            .notices
            .iter()
            .map(|n| &n.body)
            .filter(|b| b["service"] == service || b["repository"]["name"] == service)
            .collect()
    }
}

fn check(kind: FaultKind) {
    let c = case(kind, Vec::new(), 7);
    let root = c.truth.root_cause_service.clone();
    let t = &c.truth;
    assert_eq!(t.fault_type, kind);
    match kind {
        FaultKind::Latency => {
            assert!(
                Case::mean_ms(c.served(&root, true))
                    > 2.0 * Case::mean_ms(c.served(&root, false)) + 100.0
            );
        }
        FaultKind::Errors => {
            assert!(
                c.error_ratio(&root, true) > 0.1,
                "{}",
                c.error_ratio(&root, true)
            );
            assert!(c.error_ratio(&root, false) < 0.02);
            assert!(c
                .spans
                .iter()
                .any(|s| attr(&s.resource, "service.name") == root
                    && s.span.status == StatusCode::Error));
        }
        FaultKind::Cpu => {
            let pod = t.root_cause_pod.clone().expect("a pod fault names its pod");
            let metric = loupe_model::semconv::K8S_POD_CPU_LIMIT_UTILIZATION;
            assert!(c.gauge_mean(&pod, metric, true) > c.gauge_mean(&pod, metric, false) + 0.3);
            let on_pod = |fault| {
                c.served(&root, fault)
                    .into_iter()
                    .filter(|s| attr(&s.resource, "k8s.pod.name") == pod)
                    .collect::<Vec<_>>()
            };
            assert!(Case::mean_ms(on_pod(true)) > 2.0 * Case::mean_ms(on_pod(false)));
        }
        FaultKind::MemoryLeak => {
            let pod = t.root_cause_pod.clone().expect("a pod fault names its pod");
            let killed = c.logs.iter().filter(|(r, l)| {
                attr(r, "k8s.object.name") == pod
                    && l.attributes.get_str("k8s.event.reason") == Some("OOMKilling")
            });
            assert!(killed.count() >= 1, "no OOMKilling event for {pod}");
            assert!(c.gauge_mean(&pod, "k8s.container.restart.count", true) > 0.0);
            assert_eq!(
                c.gauge_mean(&pod, "k8s.container.restart.count", false),
                0.0
            );
        }
        FaultKind::BadDeployment => {
            let versions = |fault| -> std::collections::BTreeSet<String> {
                c.served(&root, fault)
                    .into_iter()
                    .map(|s| attr(&s.resource, "service.version").to_owned())
                    .collect()
            };
            assert!(
                !versions(true).is_subset(&versions(false)),
                "no new version"
            );
            let notices = c.notices_about(&root);
            assert!(notices
                .iter()
                .any(|b| b["deployment_status"]["state"] == "success"));
            assert!(c.root_degraded());
        }
        FaultKind::ConfigChange => {
            assert!(c.notices_about(&root).iter().any(|b| b["kind"] == "config"));
            assert!(c.root_degraded());
        }
        FaultKind::FeatureFlag => {
            let flag = t.flag.clone().expect("a flag fault names its flag");
            let variants = |fault| -> std::collections::BTreeSet<String> {
                c.logs
                    .iter()
                    .filter(|(_, l)| {
                        l.event_name == "feature_flag.evaluation"
                            && l.attributes.get_str("feature_flag.key") == Some(flag.as_str())
                            && c.fault(l.time_unix_nano) == fault
                    })
                    .filter_map(|(_, l)| l.attributes.get_str("feature_flag.result.variant"))
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(variants(false), ["off".to_owned()].into());
            assert!(variants(true).contains("on"));
        }
        FaultKind::DbSlowdown => {
            let calls = |fault| {
                c.select(|s| {
                    s.span.kind == SpanKind::Client
                        && s.span.attributes.get_str("db.system.name").is_some()
                        && s.span.attributes.get_str("server.address") == Some(root.as_str())
                        && c.fault(s.span.start_time_unix_nano) == fault
                })
            };
            assert!(Case::mean_ms(calls(true)) > 5.0 * Case::mean_ms(calls(false)));
        }
        FaultKind::DbErrors => {
            assert_eq!(t.root_cause_kind, "database");
            let failed_share = |fault| {
                let calls = c.select(|s| {
                    s.span.kind == SpanKind::Client
                        && s.span.attributes.get_str("db.system.name").is_some()
                        && s.span.attributes.get_str("server.address") == Some(root.as_str())
                        && c.fault(s.span.start_time_unix_nano) == fault
                });
                assert!(!calls.is_empty(), "no queries to {root}");
                let failed = calls.iter().filter(|s| s.span.status == StatusCode::Error);
                failed.count() as f64 / calls.len() as f64
            };
            assert!(failed_share(true) > 0.1, "{}", failed_share(true));
            assert_eq!(failed_share(false), 0.0);
        }
        FaultKind::NoisyNeighbour => {
            assert_eq!(t.root_cause_kind, "node");
            // Self time (outside child spans) of every server span on the node.
            let mut children: std::collections::HashMap<_, u64> = Default::default();
            for s in &c.spans {
                if let Some(p) = s.span.parent_span_id {
                    *children.entry(p).or_default() +=
                        s.span.end_time_unix_nano - s.span.start_time_unix_nano;
                }
            }
            let self_ms = |fault| {
                let v: Vec<f64> = c
                    .select(|s| {
                        attr(&s.resource, "k8s.node.name") == root
                            && s.span.kind == SpanKind::Server
                            && c.fault(s.span.start_time_unix_nano) == fault
                    })
                    .iter()
                    .map(|s| {
                        let d = s.span.end_time_unix_nano - s.span.start_time_unix_nano;
                        d.saturating_sub(children.get(&s.span.span_id).copied().unwrap_or(0)) as f64
                    })
                    .collect();
                v.iter().sum::<f64>() / v.len() as f64
            };
            assert!(
                self_ms(true) > 1.8 * self_ms(false),
                "{} vs {}",
                self_ms(true),
                self_ms(false)
            );
        }
        FaultKind::NetworkPartition => {
            let [from, to] = t
                .root_cause_edge
                .clone()
                .expect("a partition names its edge");
            assert_eq!(from, root);
            let timeouts = |fault| {
                c.spans
                    .iter()
                    .filter(|s| {
                        attr(&s.resource, "service.name") == from
                            && s.span.kind == SpanKind::Client
                            && s.span.attributes.get_str("server.address") == Some(to.as_str())
                            && s.span.attributes.get_str("error.type") == Some("timeout")
                            && c.fault(s.span.start_time_unix_nano) == fault
                    })
                    .count()
            };
            assert!(timeouts(true) > 0);
            assert_eq!(timeouts(false), 0);
        }
    }
}

#[test]
fn every_fault_kind_leaves_its_signature() {
    for kind in FaultKind::ALL {
        check(kind);
    }
}

#[test]
fn an_unrelated_deployment_is_announced_and_changes_nothing() {
    let c = case(
        FaultKind::Errors,
        vec![HerringKind::UnrelatedDeployment],
        11,
    );
    let herring = c.truth.red_herrings[0]
        .service
        .clone()
        .expect("names its service");
    assert_ne!(herring, c.truth.root_cause_service);
    assert!(c
        .notices_about(&herring)
        .iter()
        .any(|b| b["deployment_status"]["state"] == "success"));
    assert!(c.error_ratio(&herring, true) < 0.05);
}

#[test]
fn a_seed_reproduces_a_case_set_byte_for_byte() {
    let spec = |seed| SuiteSpec {
        topologies: vec![
            Arc::new(Topology::builtin("otel-demo").unwrap()),
            Arc::new(Topology::builtin("random-small").unwrap()),
        ],
        faults: vec![FaultKind::BadDeployment, FaultKind::MemoryLeak],
        cases: 4,
        seed,
        herring_chance: 0.5,
        baselines_nanos: vec![MINUTE],
        fault_nanos: MINUTE,
        traffic: Vec::new(),
        metrics: Default::default(),
    };
    let dir = |name: &str| {
        let d = std::env::temp_dir().join(format!("loupe-sim-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    };
    let (a, b, c) = (dir("a"), dir("b"), dir("c"));
    write_suite(&a, &spec(5), |_, _, _| {}).unwrap();
    write_suite(&b, &spec(5), |_, _, _| {}).unwrap();
    write_suite(&c, &spec(6), |_, _, _| {}).unwrap();
    let files = |root: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let name = p.strip_prefix(root).unwrap().display().to_string();
                    out.push((name, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    };
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(
        fa.len(),
        2 + 4 * 4,
        "ground truth, manifest and four files per case"
    );
    assert!(fa == fb, "the same seed wrote different bytes");
    let truth = |f: &[(String, Vec<u8>)]| {
        f.iter()
            .find(|(n, _)| n == "ground_truth.json")
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(truth(&fa), truth(&fc), "another seed wrote the same cases");
    // And what was written reads back.
    let truths = loupe_simulate::cases::read_ground_truth(&a).unwrap();
    for t in &truths {
        let read = loupe_simulate::cases::read_case(&a, &t.case_id).unwrap();
        assert!(!read.requests.is_empty());
    }
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}
