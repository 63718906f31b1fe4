//! `loupe bench graph`: the knowledge graph's costs on a synthetic system, measured in this
//! process: update cost per 10 000 spans, as-of and diff latency, memory, and the time of one
//! root-cause analysis.
//!
//! The system: `services` services in a layered call DAG with `edges` caller → callee edges,
//! each service on one of 50 nodes with two pods. The graph is filled for `minutes` of valid
//! time with every edge called in every 10-second bucket (one two-span trace per edge and
//! bucket), then measured; the update cost is measured apart, on realistic traces (a root and a
//! random walk down the DAG, 10 000 spans per batch).

pub mod store;

use std::path::PathBuf;
use std::time::Instant;

use loupe_analysis::{investigate, AnalysisConfig};
use loupe_graph::{DiffQuery, GraphConfig, GraphQuery, KnowledgeGraph};
use loupe_model::{
    AttributeValue, Attributes, Resource, ResourceSpans, Span, SpanId, SpanKind, StatusCode,
    TraceId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::Arc;

/// Size of the synthetic system.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    /// Services.
    pub services: usize,
    /// Caller → callee edges.
    pub edges: usize,
    /// Minutes of valid time to fill.
    pub minutes: u64,
    /// Random seed.
    pub seed: u64,
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct GraphBench {
    /// Services, edges and minutes of the filled graph.
    pub services: usize,
    /// Service-level `calls` edges.
    pub edges: usize,
    /// Minutes of 10 s buckets filled.
    pub minutes: u64,
    /// Spans applied to fill it.
    pub fill_spans: u64,
    /// Seconds to fill it.
    pub fill_seconds: f64,
    /// Entities and relations of the filled graph.
    pub entities: usize,
    /// Relations of the filled graph.
    pub relations: usize,
    /// Resident memory the filled graph added, MiB (from `/proc/self/statm`; 0 elsewhere).
    pub memory_mib: f64,
    /// That memory per bucket a relation holds (after rolling up to 1 and 10 minutes), bytes.
    pub bytes_per_bucket_held: f64,
    /// Median milliseconds to apply 10 000 spans of realistic traces.
    pub update_ms_per_10k_spans: f64,
    /// Median milliseconds of a 5-minute as-of snapshot at the end (after one untimed run).
    pub as_of_ms: f64,
    /// Milliseconds of the first such snapshot after the fill (cold caches).
    pub as_of_first_ms: f64,
    /// Median milliseconds of the same snapshot without statistics (entities and relations).
    pub as_of_structure_ms: f64,
    /// Median milliseconds of a 5-minute as-of snapshot with a record time (`known_at`).
    pub as_of_known_at_ms: f64,
    /// Median milliseconds of a diff of two 5-minute windows 30 minutes apart.
    pub diff_ms: f64,
    /// Median milliseconds of one root-cause analysis of the last 5 minutes as an incident
    /// runs it (`investigate`: baseline, 12 history periods, changes, every candidate ranked
    /// by the shipped rules and model, remediations).
    pub analysis_ms: f64,
    /// Candidates that analysis ranked.
    pub analysis_candidates: usize,
    /// Median milliseconds of `POST /api/v1/analyze` for the last 5 minutes, through the
    /// API's router in process (JSON in and out, the shipped settings).
    pub analyze_api_ms: f64,
    /// Median milliseconds of `POST /api/v1/ask` "why is svc-1 slow in the last 5
    /// minutes?", the same analysis asked in words, through the same router.
    pub ask_ms: f64,
    /// Median milliseconds of reading that question alone: the graph's names of the last week
    /// and the grammar (what `ask` adds before the analysis).
    pub ask_parse_ms: f64,
    /// How `ask` read the question (its "I read this as").
    pub ask_reading: String,
}

const SECOND: u64 = 1_000_000_000;
/// Valid time of the synthetic data's start: 2026-01-01T00:00:00Z.
const START: u64 = 1_767_225_600 * SECOND;

fn resource(service: usize, pod: usize) -> Arc<Resource> {
    let s = |v: String| AttributeValue::String(v);
    Arc::new(Resource {
        attributes: Attributes(vec![
            ("service.name".into(), s(format!("svc-{service}"))),
            ("service.namespace".into(), s("bench".into())),
            ("k8s.namespace.name".into(), s("bench".into())),
            ("k8s.pod.name".into(), s(format!("svc-{service}-{pod}"))),
            ("k8s.deployment.name".into(), s(format!("svc-{service}"))),
            ("k8s.node.name".into(), s(format!("node-{}", service % 50))),
            ("service.version".into(), s("1.0.0".into())),
        ]),
    })
}

fn span(trace: u128, id: u64, parent: Option<u64>, start: u64, nanos: u64, error: bool) -> Span {
    Span {
        trace_id: TraceId(trace.to_be_bytes()),
        span_id: SpanId(id.to_be_bytes()),
        parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
        name: "GET /api".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: start,
        end_time_unix_nano: start + nanos,
        status: if error {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        attributes: Attributes::default(),
    }
}

/// Spans grouped by resource, as an exporter batches them (one `ResourceSpans` per pod).
fn group(spans: Vec<(usize, usize, Span)>) -> Vec<ResourceSpans> {
    let mut by_pod: std::collections::BTreeMap<(usize, usize), Vec<Span>> = Default::default();
    for (service, pod, span) in spans {
        by_pod.entry((service, pod)).or_default().push(span);
    }
    by_pod
        .into_iter()
        .map(|((service, pod), spans)| ResourceSpans {
            resource: resource(service, pod),
            spans,
        })
        .collect()
}

/// A layered DAG: callers have lower numbers than callees; every service but the first tenth
/// (the front) has a caller.
fn topology(services: usize, edges: usize, rng: &mut StdRng) -> Vec<(usize, usize)> {
    let mut out = std::collections::BTreeSet::new();
    let front = (services / 10).max(1);
    for callee in front..services {
        out.insert((rng.random_range(0..callee), callee));
    }
    let mut tries = 0;
    while out.len() < edges && tries < edges * 20 {
        tries += 1;
        let a = rng.random_range(0..services - 1);
        let b = rng.random_range(a + 1..services);
        out.insert((a, b));
    }
    out.into_iter().collect()
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn resident_mib() -> f64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0.0;
    };
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Runs the benchmark, reporting progress through `progress(message)`.
pub fn run(config: BenchConfig, mut progress: impl FnMut(&str)) -> GraphBench {
    // Long: a measurement script read top to bottom; each phase's timer brackets its own
    // lines, and the result gathers every phase's figures.
    let mut rng = StdRng::seed_from_u64(config.seed);
    let edges = topology(config.services, config.edges, &mut rng);
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); config.services];
    edges.iter().for_each(|(a, b)| callees[*a].push(*b));

    // Update cost on realistic traces, in a graph of its own.
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    let mut next_id = 1u64;
    let mut trace = 1u128;
    let mut times = Vec::new();
    for batch in 0..60u64 {
        let mut spans: Vec<(usize, usize, Span)> = Vec::with_capacity(10_000);
        let t0 = START + batch * SECOND;
        while spans.len() < 10_000 {
            let mut at = rng.random_range(0..config.services / 10 + 1);
            let root = next_id;
            spans.push((
                at,
                rng.random_range(0..2),
                span(trace, root, None, t0, 40_000_000, false),
            ));
            next_id += 1;
            let mut parent = root;
            for depth in 1..5u64 {
                let Some(&callee) = callees[at].get(rng.random_range(0..callees[at].len().max(1)))
                else {
                    break;
                };
                let error = rng.random_bool(0.01);
                spans.push((
                    callee,
                    rng.random_range(0..2),
                    span(
                        trace,
                        next_id,
                        Some(parent),
                        t0 + depth * 1_000_000,
                        10_000_000,
                        error,
                    ),
                ));
                parent = next_id;
                next_id += 1;
                at = callee;
            }
            trace += 1;
        }
        let batch = group(spans);
        let started = Instant::now();
        graph.apply_spans(&batch);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(graph);
    let update_ms_per_10k_spans = median(times);
    progress(&format!(
        "update: {update_ms_per_10k_spans:.1} ms per 10 000 spans"
    ));

    // Fill: every edge called in every bucket.
    let before = resident_mib();
    let mut graph = KnowledgeGraph::new(GraphConfig::default());
    let buckets = config.minutes * 6;
    let started = Instant::now();
    let mut fill_spans = 0u64;
    for b in 0..buckets {
        let t = START + b * 10 * SECOND;
        let mut spans = Vec::with_capacity(edges.len() * 2);
        for (caller, callee) in &edges {
            let root = next_id;
            spans.push((*caller, 0, span(trace, root, None, t, 20_000_000, false)));
            let millis = rng.random_range(2..12);
            let child = span(
                trace,
                root + 1,
                Some(root),
                t + 1_000_000,
                millis * 1_000_000,
                false,
            );
            spans.push((*callee, 1, child));
            next_id += 2;
            trace += 1;
        }
        fill_spans += spans.len() as u64;
        graph.apply_spans(&group(spans));
        if b % 60 == 59 {
            progress(&format!(
                "filled {} of {} minutes",
                (b + 1) / 6,
                config.minutes
            ));
        }
    }
    graph.flush();
    let fill_seconds = started.elapsed().as_secs_f64();
    let memory_mib = resident_mib() - before;
    // Buckets each relation holds after rolling up: an hour at 10 s, five more at 1 min, the
    // rest at 10 min (the default retention).
    let retention = GraphConfig::default().retention;
    let fine = buckets.min(retention.fine);
    let minute = buckets
        .saturating_sub(fine)
        .min(retention.minute)
        .div_ceil(6);
    let ten = buckets
        .saturating_sub(retention.fine + retention.minute)
        .div_ceil(60);
    let relation_buckets = (graph.relation_count() as u64 * (fine + minute + ten)) as f64;

    let end = START + buckets * 10 * SECOND;
    let window = 5 * 60 * SECOND;
    // One untimed run first (the first query after the fill pays for cold caches and fresh
    // pages; it is reported apart), then the median of 7.
    let time = median_ms_of_7;
    let query = |known_at| GraphQuery {
        start: end - window,
        end,
        known_at,
        ..Default::default()
    };
    let structure = GraphQuery {
        structure_only: true,
        ..query(None)
    };
    let mut sink = 0usize;
    let cold = Instant::now();
    sink += graph.snapshot(&query(None)).map_or(0, |s| s.edges.len());
    let as_of_first_ms = cold.elapsed().as_secs_f64() * 1000.0;
    let as_of_ms = time(&mut || sink += graph.snapshot(&query(None)).map_or(0, |s| s.edges.len()));
    let as_of_structure_ms =
        time(&mut || sink += graph.snapshot(&structure).map_or(0, |s| s.edges.len()));
    let as_of_known_at_ms = time(&mut || {
        sink += graph
            .snapshot(&query(Some(u64::MAX - 1)))
            .map_or(0, |s| s.edges.len())
    });
    let diff_ms = time(&mut || {
        sink += graph
            .diff(&DiffQuery {
                from: end.saturating_sub(30 * 60 * SECOND),
                to: end,
                window,
                known_at: None,
            })
            .red_changes
            .len()
    });
    let config_all = AnalysisConfig {
        max_causes: usize::MAX,
        ..AnalysisConfig::default()
    };
    let analyse = || investigate(&graph, (end - window, end), None, None, &config_all);
    let analysis_candidates = analyse().map_or(0, |a| a.causes.len());
    let analysis_ms = time(&mut || sink += analyse().map_or(0, |a| a.causes.len()));
    std::hint::black_box(sink);
    let (entities, relations) = (graph.entity_count(), graph.relation_count());
    let ask = ask_beside_analyze(graph, end, window);
    GraphBench {
        services: config.services,
        edges: edges.len(),
        minutes: config.minutes,
        fill_spans,
        fill_seconds,
        entities,
        relations,
        memory_mib,
        bytes_per_bucket_held: memory_mib * 1024.0 * 1024.0 / relation_buckets.max(1.0),
        update_ms_per_10k_spans,
        as_of_ms,
        as_of_first_ms,
        as_of_structure_ms,
        as_of_known_at_ms,
        diff_ms,
        analysis_ms,
        analysis_candidates,
        analyze_api_ms: ask.analyze_ms,
        ask_ms: ask.ask_ms,
        ask_parse_ms: ask.parse_ms,
        ask_reading: ask.reading,
    }
}

/// Milliseconds of `f`: one untimed run, then the median of 7.
fn median_ms_of_7(f: &mut dyn FnMut()) -> f64 {
    f();
    median(
        (0..7)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

struct AskBench {
    analyze_ms: f64,
    ask_ms: f64,
    parse_ms: f64,
    reading: String,
}

struct AlwaysReady;

impl loupe_api::Readiness for AlwaysReady {
    fn ready(&self) -> bool {
        true
    }
    fn progress(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// The same analysis of the last `window` before `end` asked as `POST /api/v1/analyze` and as
/// `POST /api/v1/ask` in words, through the API's router in process; and the question's
/// reading alone. Each the median of 7 after one untimed run.
fn ask_beside_analyze(graph: KnowledgeGraph, end: u64, window: u64) -> AskBench {
    use tower::ServiceExt;
    let clock: loupe_model::time::SharedClock = Arc::new(loupe_model::time::SystemClock);
    let api = loupe_api::ApiState {
        graph: Arc::new(std::sync::RwLock::new(graph)),
        clock: clock.clone(),
        analysis: AnalysisConfig::default(),
        incidents: Default::default(),
    };
    let ask_state = loupe_api::AskState {
        api: api.clone(),
        sql: loupe_api::SqlState {
            query: None,
            store: None,
            limits: Default::default(),
            readiness: Arc::new(AlwaysReady),
            clock,
        },
    };
    let router = loupe_api::router(api.clone()).merge(loupe_api::ask_router(ask_state));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return AskBench {
                analyze_ms: f64::NAN,
                ask_ms: f64::NAN,
                parse_ms: f64::NAN,
                reading: format!("no runtime: {e}"),
            }
        }
    };
    let call = |path: &str, body: serde_json::Value| -> serde_json::Value {
        let request = axum::http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()));
        runtime.block_on(async {
            let Ok(request) = request else {
                return serde_json::Value::Null;
            };
            let Ok(response) = router.clone().oneshot(request).await;
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        })
    };
    let timed = median_ms_of_7;
    let question = "why is svc-1 slow in the last 5 minutes?";
    let analyze = serde_json::json!({"start": end - window, "end": end});
    let asked = serde_json::json!({"question": question, "now": end});
    let mut sink = 0usize;
    let analyze_ms =
        timed(&mut || sink += call("/api/v1/analyze", analyze.clone()).to_string().len());
    let ask_ms = timed(&mut || sink += call("/api/v1/ask", asked.clone()).to_string().len());
    let answer = call("/api/v1/ask", asked.clone());
    let clock = loupe_api::ask::Clock {
        now: end,
        zone: chrono_tz::Tz::UTC,
    };
    let parse_ms = timed(&mut || {
        let known = loupe_api::ask::known_names(&api, end).unwrap_or_default();
        sink += matches!(
            loupe_api::ask::parse(question, clock, &known),
            loupe_api::ask::Parse::Read(_)
        ) as usize;
    });
    std::hint::black_box(sink);
    AskBench {
        analyze_ms,
        ask_ms,
        parse_ms,
        reading: format!(
            "{}: {}",
            answer["interpretation"].as_str().unwrap_or("no answer"),
            answer["headline"].as_str().unwrap_or("")
        ),
    }
}

/// `loupe bench` arguments.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    pub target: BenchTarget,
    /// Services of the synthetic system [default: 1000 for graph, 50 for store].
    #[arg(long)]
    pub services: Option<usize>,
    /// Spans to store for the query measures (store).
    #[arg(long, default_value_t = 5_000_000)]
    pub spans: usize,
    /// Directory for the store's files (store; emptied first, removed after).
    #[arg(long, default_value = "./loupe-bench-data")]
    pub dir: PathBuf,
    /// Caller → callee edges.
    #[arg(long, default_value_t = 20_000)]
    pub edges: usize,
    /// Minutes of 10-second buckets to fill, every edge in every bucket.
    #[arg(long, default_value_t = 60)]
    pub minutes: u64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `loupe bench` measures.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchTarget {
    /// The knowledge graph: update cost, as-of and diff latency, memory.
    Graph,
    /// The columnar store: ingest rate against the decode-only floor, memory per hot span,
    /// bytes on disk per span, query latency.
    Store,
}

/// `loupe bench`: measures the store ([`store::run`]) or the graph ([`run`]) and prints the
/// figures as a table or JSON.
///
/// # Errors
/// Bad arguments, or the measured component failing.
pub async fn execute(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        target,
        services,
        spans,
        dir,
        edges,
        minutes,
        seed,
        json,
    } = args;
    match target {
        BenchTarget::Store => {
            let config = store::StoreBenchConfig {
                spans_total: spans,
                services: services.unwrap_or(50),
                dir,
                seed,
            };
            let r = store::run(config, |m| eprintln!("{m}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_store(&r);
            }
        }
        BenchTarget::Graph => {
            let services = services.unwrap_or(1000);
            anyhow::ensure!(services >= 10, "--services must be at least 10");
            anyhow::ensure!(
                minutes >= 35,
                "--minutes must be at least 35 (the diff looks 30 minutes back)"
            );
            let config = BenchConfig {
                services,
                edges,
                minutes,
                seed,
            };
            let result =
                tokio::task::spawn_blocking(move || run(config, |m| eprintln!("{m}"))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print_graph(&result);
            }
        }
    }
    Ok(())
}

/// `loupe bench store`'s figures as lines of text.
fn print_store(r: &store::StoreBench) {
    println!(
        "ingest ({} spans per request, {:.0} bytes per span):",
        r.spans_per_request, r.span_bytes
    );
    println!(
        "  decode only:        {:>10.0} spans per CPU-second",
        r.decode_spans_per_cpu_second
    );
    println!(
        "  decode and store:   {:>10.0} spans per CPU-second ({:.0}% of decode only)",
        r.store_spans_per_cpu_second,
        r.store_share_of_decode * 100.0
    );
    println!(
        "memory: {:.0} MiB resident per million hot spans ({:.0} MiB of Arrow arrays)",
        r.rss_mib_per_million_hot_spans, r.arrow_mib_per_million_hot_spans
    );
    println!(
        "load: {} spans and {} log records; flush {:.1} s, compaction {:.1} s, {} segment files",
        r.spans_total, r.logs_total, r.flush_seconds, r.compact_seconds, r.segments
    );
    println!(
        "disk: {:.1} bytes per span after compaction",
        r.disk_bytes_per_span
    );
    println!("query: trace by id {:.1} ms; RED per service over 1 h {:.1} ms; error logs of one pod over 1 h {:.1} ms", r.trace_by_id_ms, r.red_per_service_ms, r.pod_error_logs_ms);
}

/// `loupe bench graph`'s figures as lines of text.
fn print_graph(r: &GraphBench) {
    println!(
        "graph: {} services, {} edges, {} entities, {} relations, {} minutes of 10 s buckets",
        r.services, r.edges, r.entities, r.relations, r.minutes
    );
    println!(
        "fill: {} spans in {:.1} s ({:.0} spans/s)",
        r.fill_spans,
        r.fill_seconds,
        r.fill_spans as f64 / r.fill_seconds
    );
    println!(
        "update: {:.1} ms per 10 000 spans of realistic traces",
        r.update_ms_per_10k_spans
    );
    if r.memory_mib > 0.0 {
        println!(
            "memory: {:.0} MiB resident ({:.0} bytes per bucket held)",
            r.memory_mib, r.bytes_per_bucket_held
        );
    } else {
        // The allocator handed back the first graph's pages during the fill.
        println!("memory: too small to measure against the freed update graph");
    }
    println!(
        "as-of (5 min window): {:.1} ms (the first after the fill: {:.1} ms); with known_at: {:.1} ms; structure only: {:.1} ms",
        r.as_of_ms, r.as_of_first_ms, r.as_of_known_at_ms, r.as_of_structure_ms
    );
    println!("diff (two 5 min windows 30 min apart): {:.1} ms", r.diff_ms);
    println!(
        "analysis of the last 5 min ({} candidates ranked): {:.1} ms",
        r.analysis_candidates, r.analysis_ms
    );
    println!(
        "the same through the API: POST /api/v1/analyze {:.1} ms; POST /api/v1/ask {:.1} ms, of which reading the question {:.2} ms ({})",
        r.analyze_api_ms, r.ask_ms, r.ask_parse_ms, r.ask_reading
    );
}
