//! Candidates beyond services and the rules that explain services away by them, on small
//! hand-built windows: one line per case.

use loupe_graph::{
    DurationSketch, EdgeWindow, GaugeStats, LogStats, OperationWindow, PodWindow, QueryWindow,
    ServiceWindow,
};

use loupe_model::semconv::K8S_POD_CPU_LIMIT_UTILIZATION;
use loupe_model::{ChangeEvent, ChangeKind};

use super::*;
use crate::propagation::discount_callers_latency;

use CauseKind::Service as SERVICE;

/// One window: services `(name, self time ms, spans, failed spans)`, calls edges
/// `(caller, callee, calls, failed)`, queries `(service, database, ms, queries, failed)` and
/// pods `(service, node, CPU utilization)`.
struct W<'a> {
    services: &'a [(&'a str, f64, u64, u64)],
    edges: &'a [(&'a str, &'a str, u64, u64)],
    queries: &'a [(&'a str, &'a str, f64, u64, u64)],
    pods: &'a [(&'a str, &'a str, f64)],
}

fn sketch(ms: f64, n: u64) -> DurationSketch {
    let mut d = DurationSketch::default();
    // A little spread, as real durations have.
    (0..n).for_each(|i| d.add_nanos((ms * (1.0 + (i % 7) as f64 * 0.02) * 1e6) as u64));
    d
}

fn red(ms: f64, calls: u64, errors: u64) -> RedStats {
    RedStats {
        calls,
        errors,
        root_calls: 0,
        duration: sketch(ms, calls),
        self_time: sketch(ms, calls),
        points: 0,
    }
}

fn window(w: &W, start: u64) -> WindowStats {
    let logs = LogStats::default();
    let mut out = WindowStats {
        start,
        end: start + 300_000_000_000,
        ..Default::default()
    };
    for &(name, ms, calls, errors) in w.services {
        out.services.push(ServiceWindow {
            name: name.into(),
            red: red(ms, calls, errors),
            logs,
            ..Default::default()
        });
        out.operations.push(OperationWindow {
            service: name.into(),
            name: "op".into(),
            red: red(ms, calls, errors),
            logs,
            templates: Default::default(),
            call_paths: Vec::new(),
        });
    }
    for &(source, target, calls, errors) in w.edges {
        out.edges.push(EdgeWindow {
            source: source.into(),
            target: target.into(),
            red: red(1.0, calls, errors),
            ..Default::default()
        });
    }
    for &(source, database, ms, calls, errors) in w.queries {
        out.queries.push(QueryWindow {
            source: source.into(),
            database: database.into(),
            red: red(ms, calls, errors),
        });
    }
    for (i, &(service, node, cpu)) in w.pods.iter().enumerate() {
        let gauge = GaugeStats {
            sum: cpu * 20.0,
            count: 20,
            max: cpu,
        };
        out.pods.push(PodWindow {
            name: format!("{service}-{i}"),
            service: Some(service.into()),
            node: Some(node.into()),
            logs,
            gauges: [(K8S_POD_CPU_LIMIT_UTILIZATION.to_owned(), gauge)].into(),
        });
    }
    out.services.sort_by(|a, b| a.name.cmp(&b.name));
    out.pods.sort_by(|a, b| a.name.cmp(&b.name));
    out.operations.sort_by(|a, b| a.service.cmp(&b.service));
    out.edges
        .sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
    out
}

const SVC: &[(&str, f64, u64, u64)] = &[
    ("front", 5.0, 600, 0),
    ("cart", 5.0, 300, 0),
    ("shop", 5.0, 300, 0),
    ("stock", 5.0, 300, 0),
];
const CALLS: &[(&str, &str, u64, u64)] = &[
    ("front", "cart", 300, 0),
    ("front", "shop", 300, 0),
    ("cart", "stock", 150, 0),
    ("shop", "stock", 150, 0),
];
const DB: &[(&str, &str, f64, u64, u64)] = &[("stock", "postgresql/stock", 2.0, 300, 0)];
const PODS: &[(&str, &str, f64)] = &[
    ("front", "n1", 0.2),
    ("cart", "n1", 0.2),
    ("shop", "n1", 0.2),
    ("stock", "n2", 0.2),
    ("front", "n2", 0.2),
    ("cart", "n2", 0.2),
];

const BASE: W<'static> = W {
    services: SVC,
    edges: CALLS,
    queries: DB,
    pods: PODS,
};
/// `stock`'s only caller `cart` sees half its calls fail; `stock` answers none of them and
/// fails nothing of its own.
const ONE_CALLER_UNANSWERED: W<'static> = W {
    services: &[
        ("front", 5.0, 600, 150),
        ("cart", 5.0, 300, 150),
        ("shop", 5.0, 300, 0),
        ("stock", 5.0, 0, 0),
    ],
    edges: &[
        ("front", "cart", 300, 150),
        ("front", "shop", 300, 0),
        ("cart", "stock", 150, 150),
    ],
    ..BASE
};

#[test]
fn infrastructure_cases() {
    let base = BASE;
    #[allow(clippy::type_complexity)]
    // (what, the window, the top cause, services and what their counter-evidence says:
    // nothing when `None`)
    let cases: &[(&str, W, &str, &[(&str, Option<&str>)])] = &[
        (
            "slow queries: the database, not the service that waits on it",
            W {
                services: &[
                    ("front", 5.0, 600, 0),
                    ("cart", 5.0, 300, 0),
                    ("shop", 5.0, 300, 0),
                    ("stock", 40.0, 300, 0),
                ],
                queries: &[("stock", "postgresql/stock", 40.0, 300, 0)],
                ..base
            },
            "database:postgresql/stock",
            &[(
                "stock",
                Some("by database postgresql/stock, whose queries slowed"),
            )],
        ),
        (
            "failed queries: the database",
            W {
                services: &[
                    ("front", 5.0, 600, 90),
                    ("cart", 5.0, 300, 45),
                    ("shop", 5.0, 300, 45),
                    ("stock", 5.0, 300, 90),
                ],
                edges: &[
                    ("front", "cart", 300, 45),
                    ("front", "shop", 300, 45),
                    ("cart", "stock", 150, 45),
                    ("shop", "stock", 150, 45),
                ],
                queries: &[("stock", "postgresql/stock", 2.0, 300, 90)],
                ..base
            },
            "database:postgresql/stock",
            &[("stock", Some("by database postgresql/stock downstream"))],
        ),
        (
            "one caller's calls fail unanswered, the other caller's do not: the path",
            W {
                services: &[
                    ("front", 5.0, 600, 150),
                    ("cart", 5.0, 300, 150),
                    ("shop", 5.0, 300, 0),
                    ("stock", 5.0, 150, 0),
                ],
                edges: &[
                    ("front", "cart", 300, 150),
                    ("front", "shop", 300, 0),
                    ("cart", "stock", 150, 150),
                    ("shop", "stock", 150, 0),
                ],
                ..base
            },
            "edge:cart->stock",
            &[
                ("cart", Some("by edge cart->stock downstream")),
                (
                    "stock",
                    Some("by edge cart->stock, the path its failed calls fail on"),
                ),
            ],
        ),
        (
            "its only caller's calls fail unanswered, nothing else of its own fails: the path",
            ONE_CALLER_UNANSWERED,
            "edge:cart->stock",
            &[(
                "stock",
                Some("by edge cart->stock, the path its failed calls fail on"),
            )],
        ),
        (
            "every caller's calls fail unanswered (pods down): the callee",
            W {
                services: &[
                    ("front", 5.0, 600, 300),
                    ("cart", 5.0, 300, 150),
                    ("shop", 5.0, 300, 150),
                    ("stock", 5.0, 0, 0),
                ],
                edges: &[
                    ("front", "cart", 300, 150),
                    ("front", "shop", 300, 150),
                    ("cart", "stock", 150, 150),
                    ("shop", "stock", 150, 150),
                ],
                ..base
            },
            "service:stock",
            &[(
                "cart",
                Some("by service stock downstream of it, which fails"),
            )],
        ),
        (
            "the callee's own spans fail for one caller: the callee, not the path",
            W {
                services: &[
                    ("front", 5.0, 600, 150),
                    ("cart", 5.0, 300, 150),
                    ("shop", 5.0, 300, 0),
                    ("stock", 5.0, 300, 150),
                ],
                edges: &[
                    ("front", "cart", 300, 150),
                    ("front", "shop", 300, 0),
                    ("cart", "stock", 150, 150),
                    ("shop", "stock", 150, 0),
                ],
                ..base
            },
            "service:stock",
            &[(
                "cart",
                Some("by service stock downstream of it, which fails"),
            )],
        ),
        (
            "every pod on a node runs hot and its services slow: the node",
            W {
                services: &[
                    ("front", 10.0, 600, 0),
                    ("cart", 10.0, 300, 0),
                    ("shop", 15.0, 300, 0),
                    ("stock", 5.0, 300, 0),
                ],
                pods: &[
                    ("front", "n1", 0.5),
                    ("cart", "n1", 0.5),
                    ("shop", "n1", 0.5),
                    ("stock", "n2", 0.2),
                    ("front", "n2", 0.2),
                    ("cart", "n2", 0.2),
                ],
                ..base
            },
            "node:n1",
            &[(
                "shop",
                Some("explained away by node n1, whose pods ran hot"),
            )],
        ),
        (
            "one pod runs hot and its service slows: the service, not its node",
            W {
                services: &[
                    ("front", 5.0, 600, 0),
                    ("cart", 5.0, 300, 0),
                    ("shop", 15.0, 300, 0),
                    ("stock", 5.0, 300, 0),
                ],
                pods: &[
                    ("front", "n1", 0.2),
                    ("cart", "n1", 0.2),
                    ("shop", "n1", 0.6),
                    ("stock", "n2", 0.2),
                    ("front", "n2", 0.2),
                    ("cart", "n2", 0.2),
                ],
                ..base
            },
            "service:shop",
            &[("shop", None)],
        ),
    ];
    for (what, current, expected, says) in cases {
        let a = analyze(
            &window(&base, 0),
            &window(current, 300_000_000_000),
            None,
            &[],
            &AnalysisConfig::default(),
        )
        .unwrap();
        let top = a.causes.first().map(|c| c.entity.id());
        assert_eq!(top.as_deref(), Some(*expected), "{what}: {:#?}", a.causes);
        for (service, expected) in *says {
            let got = &a
                .causes
                .iter()
                .find(|c| c.entity.kind == SERVICE && c.entity.name == *service)
                .expect("the service is a candidate")
                .counter_evidence;
            match expected {
                Some(n) => assert!(got.iter().any(|s| s.contains(n)), "{what}: {got:?}"),
                None => assert!(got.is_empty(), "{what}: {got:?}"),
            }
        }
    }
}

/// A callee with one caller whose calls fail unanswered: the path, unless a pod of the
/// callee stopped answering in the window. (what, the event's reason and time in seconds
/// after the window's start, whether `cart->stock` is a candidate.)
#[test]
fn a_one_caller_path_is_no_candidate_when_its_callee_stopped_serving() {
    // (reason, seconds after the window's start)
    type Event = Option<(&'static str, u64)>;
    let cases: [(&str, Event, bool); 5] = [
        ("no event", None, true),
        ("OOM-killed in the window", Some(("OOMKilling", 60)), false),
        ("crash loop in the window", Some(("BackOff", 200)), false),
        ("a rollout's pod kill", Some(("Killing", 60)), true),
        (
            "OOM-killed after the window",
            Some(("OOMKilling", 400)),
            true,
        ),
    ];
    let start = 300_000_000_000;
    for (what, event, path) in cases {
        let changes: Vec<ChangeEvent> = event
            .into_iter()
            .map(|(reason, at)| {
                let mut e = ChangeEvent::new(
                    ChangeKind::KubernetesEvent,
                    start + at * 1_000_000_000,
                    "k8s_events",
                );
                e.service = Some("stock".into());
                e.reason = Some(reason.into());
                e
            })
            .collect();
        let a = analyze(
            &window(&BASE, 0),
            &window(&ONE_CALLER_UNANSWERED, start),
            None,
            &changes,
            &AnalysisConfig::default(),
        )
        .unwrap();
        let has_path = a.causes.iter().any(|c| c.entity.id() == "edge:cart->stock");
        assert_eq!(has_path, path, "{what}: {:#?}", a.causes);
    }
}

/// A window as a metrics-only deployment shows it: each service's RED from its server
/// metrics (the duration includes its calls; no self time, no operations, no queries), each
/// edge's from its caller's client metrics.
fn metrics_only(mut w: WindowStats) -> WindowStats {
    for s in &mut w.services {
        s.red_source = RedSource::Metrics;
        s.red.self_time = DurationSketch::default();
    }
    for e in &mut w.edges {
        e.red_source = RedSource::Metrics;
        e.red.self_time = DurationSketch::default();
    }
    w.operations.clear();
    w.queries.clear();
    w
}

/// One line a case: the request-duration shifts of front → cart → stock → the shifts after
/// the discount (a caller whose callee, however deep, shifted at least half as much is
/// multiplied by `explained_factor`).
#[test]
fn a_callers_request_duration_is_discounted_by_its_callees() {
    // (shifts, discounted shifts, the service named in each one's counter-evidence)
    type Case = ([f64; 3], [f64; 3], [Option<&'static str>; 3]);
    let cases: [Case; 4] = [
        (
            [1.1, 1.6, 2.2],
            [0.33, 0.48, 2.2],
            [Some("cart"), Some("stock"), None],
        ),
        (
            [1.1, 1.6, 0.5],
            [0.33, 1.6, 0.5],
            [Some("cart"), None, None],
        ),
        (
            [1.1, 0.0, 0.6],
            [0.33, 0.0, 0.6],
            [Some("stock"), None, None],
        ),
        ([1.1, 0.0, 0.5], [1.1, 0.0, 0.5], [None, None, None]),
    ];
    let names = ["front", "cart", "stock"];
    let w = window(
        &W {
            services: &[],
            edges: &[("front", "cart", 1, 0), ("cart", "stock", 1, 0)],
            queries: &[],
            pods: &[],
        },
        0,
    );
    for (shifts, expected, by) in cases {
        let mut candidates: BTreeMap<&str, Candidate> = names
            .iter()
            .zip(shifts)
            .map(|(n, x)| {
                let mut c = Candidate::default();
                c.raw.insert(Feature::SelfTime, x);
                (*n, c)
            })
            .collect();
        discount_callers_latency(
            &mut candidates,
            &names,
            [&w, &w],
            &AnalysisConfig::default(),
        );
        let got: Vec<f64> = names
            .iter()
            .map(|n| candidates[n].raw[&Feature::SelfTime])
            .collect();
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (g - e).abs() < 1e-9,
                "{shifts:?}: got {got:?}, expected {expected:?}"
            );
        }
        for (n, by) in names.iter().zip(by) {
            let says = &candidates[n].counter;
            match by {
                Some(d) => assert!(
                    says.len() == 1 && says[0].contains(&format!("by service {d} downstream")),
                    "{shifts:?}, {n}: {says:?}"
                ),
                None => assert!(says.is_empty(), "{shifts:?}, {n}: {says:?}"),
            }
        }
    }
}

/// One line a case: services' request durations (ms, callees included), calls and errors
/// as their server metrics give them → the expected top cause.
#[test]
fn metrics_only_ranks_by_request_duration_and_failed_requests() {
    let base = W {
        services: &[
            ("front", 20.0, 600, 0),
            ("cart", 10.0, 300, 0),
            ("shop", 10.0, 300, 0),
            ("stock", 5.0, 300, 0),
        ],
        edges: CALLS,
        queries: &[],
        pods: &[],
    };
    #[allow(clippy::type_complexity)]
    let cases: &[(&str, &[(&str, f64, u64, u64)], &str)] = &[
        (
            "the callee slows and its callers with it: the callee",
            &[
                ("front", 60.0, 600, 0),
                ("cart", 50.0, 300, 0),
                ("shop", 50.0, 300, 0),
                ("stock", 45.0, 300, 0),
            ],
            "service:stock",
        ),
        (
            "a caller slows on its own: the caller, not the entry",
            &[
                ("front", 50.0, 600, 0),
                ("cart", 40.0, 300, 0),
                ("shop", 10.0, 300, 0),
                ("stock", 5.0, 300, 0),
            ],
            "service:cart",
        ),
        (
            "the callee fails and its callers fail with it: the callee",
            &[
                ("front", 20.0, 600, 120),
                ("cart", 10.0, 300, 60),
                ("shop", 10.0, 300, 60),
                ("stock", 5.0, 300, 120),
            ],
            "service:stock",
        ),
    ];
    for (what, services, expected) in cases {
        let current = W { services, ..base };
        let a = analyze(
            &metrics_only(window(&base, 0)),
            &metrics_only(window(&current, 300_000_000_000)),
            None,
            &[],
            &AnalysisConfig::default(),
        )
        .unwrap();
        let top = a.causes.first().map(|c| c.entity.id());
        assert_eq!(top.as_deref(), Some(*expected), "{what}: {:#?}", a.causes);
        let evidence: Vec<&str> = a.causes[0]
            .evidence
            .iter()
            .map(|e| e.feature.as_ref())
            .collect();
        assert!(
            evidence.contains(&"server_duration_p50") || evidence.contains(&"failed_requests"),
            "{what}: the metric evidence names itself: {evidence:?}"
        );
    }
}

/// Gives each service of `w` `points` metric points, as a metrics-only window counts them.
fn counted_points(w: &mut WindowStats, points: u64) {
    for s in &mut w.services {
        s.red.points = points;
    }
}

/// That the cause `id` of `a` has counter-evidence containing `says`, or none when `None` (a
/// cause that is not listed has none).
fn assert_counter_evidence(a: &Analysis, id: &str, says: Option<&str>, what: &str) {
    let counter = a
        .causes
        .iter()
        .find(|c| c.entity.id() == id)
        .map(|c| c.counter_evidence.clone())
        .unwrap_or_default();
    match says {
        Some(s) => assert!(counter.iter().any(|c| c.contains(s)), "{what}: {counter:?}"),
        None => assert!(counter.is_empty(), "{what}: {counter:?}"),
    }
}

/// Endpoints known only from their callers (a load balancer, an API gateway): a path into one
/// whose failures a service behind it shows on its own server side is explained by that
/// service; a path into an endpoint with nothing behind it keeps its evidence. (what, the
/// endpoint's address, the service behind it and its failed calls, the top cause, and what
/// the path's counter-evidence says: nothing when `None`.)
#[test]
fn a_service_behind_an_endpoint_explains_the_path_into_it() {
    type Case = (
        &'static str,
        &'static str,
        u64,
        &'static str,
        Option<&'static str>,
    );
    let lb = "internal-shop-1720431985.us-east-1.elb.amazonaws.com";
    let gateway = "k3x9v2m7qd.execute-api.us-east-1.amazonaws.com";
    let cases: [Case; 3] = [
        (
            "a load balancer named after its service",
            lb,
            100,
            "service:shop",
            Some("by service shop behind"),
        ),
        (
            "an API gateway that carries its service's traffic",
            gateway,
            100,
            "service:shop",
            Some("by service shop behind"),
        ),
        (
            "the service behind answers as usual: the path",
            lb,
            0,
            "edge:front->internal-shop-1720431985.us-east-1.elb.amazonaws.com",
            None,
        ),
    ];
    for (what, address, shop_failed, expected, says) in cases {
        // `front` calls `shop` through the endpoint; nothing names `shop` as a callee. In the
        // window, 100 of the 300 calls through the endpoint fail.
        let at = |start: u64, failed: u64, shop_failed: u64| {
            let mut w = metrics_only(window(
                &W {
                    services: &[
                        ("front", 5.0, 600, failed),
                        ("shop", 5.0, 300, shop_failed),
                        ("cart", 5.0, 300, 0),
                    ],
                    edges: &[("front", address, 300, failed), ("front", "cart", 300, 0)],
                    queries: &[],
                    pods: &[],
                },
                start,
            ));
            w.end = start + 300_000_000_000;
            // A call through the endpoint lasts as long as shop takes, and a little more.
            for e in w.edges.iter_mut().filter(|e| e.target == address) {
                e.red.duration = sketch(6.0, e.red.calls);
            }
            w
        };
        let (baseline, current) = (at(0, 0, 0), at(300_000_000_000, 100, shop_failed));
        let a = analyze(&baseline, &current, None, &[], &AnalysisConfig::default()).unwrap();
        let top = a.causes.first().map(|c| c.entity.id());
        assert_eq!(top.as_deref(), Some(expected), "{what}: {:#?}", a.causes);
        let path = format!("edge:front->{address}");
        assert_counter_evidence(&a, &path, says, what);
    }
}

/// A shared dependency known from client metrics is the cause only when its callers felt it
/// together. Metrics-only windows: `cart` and `shop` (300 requests each, 20 points before, 5
/// in the window) both query the table `aws.dynamodb/stock` (150 queries each). (what, the
/// table's median query ms in the window, cart's and shop's median request ms, shop's failed
/// requests, the top cause, what the table's counter-evidence says: nothing when `None`.)
#[test]
fn a_shared_dependency_is_the_cause_only_when_its_callers_felt_it() {
    type Case = (
        &'static str,
        f64,
        [f64; 2],
        u64,
        &'static str,
        Option<&'static str>,
    );
    let cases: [Case; 3] = [
        (
            "the table slows and both callers with it: the table",
            30.0,
            [60.0, 60.0],
            0,
            "database:aws.dynamodb/stock",
            None,
        ),
        (
            "the table's queries shift a little, no caller slows, shop fails: shop",
            14.0,
            [30.0, 30.0],
            100,
            "service:shop",
            Some("none of its callers slowed with it"),
        ),
        (
            "one of two equal callers slows alone: that caller",
            14.0,
            [90.0, 30.0],
            0,
            "service:cart",
            Some("only cart (50% of its queries) slowed with it"),
        ),
    ];
    let at = |start: u64, table_ms: f64, [cart, shop]: [f64; 2], failed: u64, points: u64| {
        let mut w = metrics_only(window(
            &W {
                services: &[
                    ("front", 40.0, 600, failed),
                    ("cart", cart, 300, 0),
                    ("shop", shop, 300, failed),
                ],
                edges: &[("front", "cart", 300, 0), ("front", "shop", 300, failed)],
                queries: &[],
                pods: &[],
            },
            start,
        ));
        counted_points(&mut w, points);
        for source in ["cart", "shop"] {
            let mut red = red(table_ms, 150, 0);
            red.points = points;
            w.queries.push(QueryWindow {
                source: source.into(),
                database: "aws.dynamodb/stock".into(),
                red,
            });
        }
        w.end = start + 300_000_000_000;
        w
    };
    for (what, table_ms, callers, failed, expected, says) in cases {
        let baseline = at(0, 10.0, [30.0, 30.0], 0, 20);
        let current = at(300_000_000_000, table_ms, callers, failed, 5);
        let a = analyze(&baseline, &current, None, &[], &AnalysisConfig::default()).unwrap();
        let top = a.causes.first().map(|c| c.entity.id());
        assert_eq!(top.as_deref(), Some(expected), "{what}: {:#?}", a.causes);
        assert_counter_evidence(&a, "database:aws.dynamodb/stock", says, what);
    }
}

/// A caller of a load balancer waits on the service behind it: the caller's request-duration
/// shift is discounted by that service's, as by a callee's; a service that does not fit
/// behind the endpoint (slower than the calls through it) discounts nothing.
#[test]
fn a_callers_request_duration_is_discounted_through_an_endpoint() {
    let lb = "internal-shop-1720431985.us-east-1.elb.amazonaws.com";
    // (shop's median ms, front's discounted shift)
    let cases = [(5.0, 0.33), (50.0, 1.1)];
    for (shop_ms, expected) in cases {
        let mut w = window(
            &W {
                services: &[("front", 9.0, 300, 0), ("shop", shop_ms, 300, 0)],
                edges: &[("front", lb, 300, 0)],
                queries: &[],
                pods: &[],
            },
            0,
        );
        w.edges[0].red.duration = sketch(6.0, 300);
        let mut candidates: BTreeMap<&str, Candidate> = [("front", 1.1), ("shop", 1.2)]
            .into_iter()
            .map(|(n, x)| {
                let mut c = Candidate::default();
                c.raw.insert(Feature::SelfTime, x);
                (n, c)
            })
            .collect();
        let names = ["front", "shop"];
        discount_callers_latency(
            &mut candidates,
            &names,
            [&w, &w],
            &AnalysisConfig::default(),
        );
        let got = candidates["front"].raw[&Feature::SelfTime];
        assert!((got - expected).abs() < 1e-9, "shop {shop_ms} ms: {got}");
        if expected < 1.1 {
            assert!(candidates["front"].counter[0].contains("service shop downstream"));
        }
    }
}

/// A slowdown every database shares (a burst of traffic) is the system's: with four tables
/// all ×1.2 and their callers a little slower too, the one service that fails is the cause,
/// and each table's shift is explained by the common one. One table ×3 among four keeps its
/// evidence.
#[test]
fn a_slowdown_every_dependency_shares_is_no_ones() {
    let at = |start: u64, [t1, rest]: [f64; 2], callers: f64, failed: u64, points: u64| {
        let mut w = metrics_only(window(
            &W {
                services: &[
                    ("front", 40.0 * callers, 600, failed),
                    ("cart", 30.0 * callers, 300, 0),
                    ("shop", 30.0 * callers, 300, failed),
                ],
                edges: &[("front", "cart", 300, 0), ("front", "shop", 300, failed)],
                queries: &[],
                pods: &[],
            },
            start,
        ));
        counted_points(&mut w, points);
        for (source, table, ms) in [
            ("cart", "t1", t1),
            ("cart", "t2", rest),
            ("shop", "t3", rest),
            ("shop", "t4", rest),
        ] {
            let mut red = red(ms, 150, 0);
            red.points = points;
            w.queries.push(QueryWindow {
                source: source.into(),
                database: format!("aws.dynamodb/{table}"),
                red,
            });
        }
        w.end = start + 300_000_000_000;
        w
    };
    let baseline = at(0, [10.0, 10.0], 1.0, 0, 20);
    // (what, the window, the top cause, whether t1 is explained by the common shift)
    let cases = [
        (
            "every table ×1.2, shop fails: shop",
            at(300_000_000_000, [12.0, 12.0], 1.2, 100, 5),
            "service:shop",
            true,
        ),
        (
            "one table ×3: that table",
            at(300_000_000_000, [30.0, 10.0], 1.2, 0, 5),
            "database:aws.dynamodb/t1",
            false,
        ),
    ];
    for (what, current, expected, explained) in cases {
        let a = analyze(&baseline, &current, None, &[], &AnalysisConfig::default()).unwrap();
        let top = a.causes.first().map(|c| c.entity.id());
        assert_eq!(top.as_deref(), Some(expected), "{what}: {:#?}", a.causes);
        let t1 = a
            .causes
            .iter()
            .find(|c| c.entity.id() == "database:aws.dynamodb/t1")
            .expect("t1 is a candidate");
        let common = t1
            .counter_evidence
            .iter()
            .any(|c| c.contains("databases measured by metrics shared"));
        assert_eq!(common, explained, "{what}: {:?}", t1.counter_evidence);
    }
}

/// An operator's `[[endpoints]]` entry names the service behind an endpoint that neither its
/// name nor its traffic gives away (an internal address; the service also serves others).
#[test]
fn a_configured_endpoint_names_the_service_behind_it() {
    let address = "10.0.3.7";
    let at = |start: u64, failed: u64| {
        let mut w = metrics_only(window(
            &W {
                services: &[("front", 5.0, 600, failed), ("shop", 5.0, 900, failed)],
                edges: &[("front", address, 300, failed)],
                queries: &[],
                pods: &[],
            },
            start,
        ));
        w.edges[0].red.duration = sketch(6.0, 300);
        w.end = start + 300_000_000_000;
        w
    };
    let (baseline, current) = (at(0, 0), at(300_000_000_000, 100));
    for (endpoints, expected) in [
        (Vec::new(), "edge:front->10.0.3.7"),
        (
            vec![crate::config::EndpointService {
                address: address.into(),
                service: "shop".into(),
            }],
            "service:shop",
        ),
    ] {
        let config = AnalysisConfig {
            endpoints,
            ..AnalysisConfig::default()
        };
        let a = analyze(&baseline, &current, None, &[], &config).unwrap();
        let top = a.causes.first().map(|c| c.entity.id());
        assert_eq!(top.as_deref(), Some(expected), "{:#?}", a.causes);
    }
}
