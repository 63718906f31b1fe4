//! loupe's own metrics at `GET /metrics`, in the Prometheus text format 0.0.4
//! (`text/plain; version=0.0.4`): the receivers' (`loupe_receiver_*`), the store's
//! (`loupe_wal_*`, `loupe_store_*`), the query gate's (`loupe_query_*`), and, read at each
//! scrape, the graph's size, the incidents, and the process's memory and CPU.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use loupe_analysis::Incidents;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::engine::Engine;

/// Figures read at each scrape.
pub struct ScrapeCollector {
    engine: Arc<Engine>,
    incidents: Arc<Mutex<Incidents>>,
}

impl std::fmt::Debug for ScrapeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeCollector")
    }
}

impl ScrapeCollector {
    /// Reads `engine`'s graph and `incidents` at each scrape.
    pub fn new(engine: Arc<Engine>, incidents: Arc<Mutex<Incidents>>) -> Self {
        Self { engine, incidents }
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// CPU seconds of this process (user + system), from `/proc/self/stat` at 100 ticks a second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Long: a flat list, one gauge or counter of the scrape after another.
        let (entities, relations, pending) = {
            let graph = self.engine.graph();
            let graph = graph.read().unwrap_or_else(|p| p.into_inner());
            (
                graph.entity_count(),
                graph.relation_count(),
                graph.pending_spans(),
            )
        };
        gauge(
            &mut encoder,
            "loupe_graph_entities",
            "Entities in the knowledge graph (services, operations, pods, nodes, changes, ...)",
            None,
            entities as i64,
        )?;
        gauge(
            &mut encoder,
            "loupe_graph_relations",
            "Relations in the knowledge graph",
            None,
            relations as i64,
        )?;
        gauge(
            &mut encoder,
            "loupe_graph_pending_spans",
            "Spans waiting in the join buffer for their parent or child",
            None,
            pending as i64,
        )?;
        let (opened, open) = {
            let incidents = self.incidents.lock().unwrap_or_else(|p| p.into_inner());
            let list = incidents.list();
            let open = list
                .iter()
                .filter(|i| i.status == loupe_analysis::Status::Open)
                .count();
            (list.len(), open)
        };
        let metric = ConstCounter::new(opened as u64);
        metric.encode(encoder.encode_descriptor(
            "loupe_incidents_opened",
            "Incidents opened, detected or by hand, since the data directory was created",
            None,
            metric.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "loupe_incidents_open",
            "Incidents open (neither resolved nor suppressed)",
            None,
            open as i64,
        )?;
        if let Some(store) = self.engine.store() {
            let stats = store.stats();
            gauge(
                &mut encoder,
                "loupe_store_hot",
                "Arrow memory of rows not yet flushed to segments",
                Some(&Unit::Bytes),
                stats.hot_bytes as i64,
            )?;
            gauge(
                &mut encoder,
                "loupe_store_segments",
                "Segment files",
                None,
                stats.segments as i64,
            )?;
            gauge(
                &mut encoder,
                "loupe_store_segment",
                "Segment files' size on disk",
                Some(&Unit::Bytes),
                stats.segment_bytes as i64,
            )?;
            gauge(
                &mut encoder,
                "loupe_wal",
                "Write-ahead log's size on disk",
                Some(&Unit::Bytes),
                stats.wal_bytes as i64,
            )?;
        }
        if let Some(rss) = loupe_ingest::admission::resident_memory() {
            gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                rss as i64,
            )?;
        }
        if let Some(cpu) = cpu_seconds() {
            let metric = ConstCounter::new(cpu);
            metric.encode(encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                metric.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The duration of the once-a-second incident update (alert evaluation, then ranking of the
/// open incidents' causes), for `loupe_analysis_duration_seconds`.
pub fn analysis_histogram(registry: &mut Registry) -> Histogram {
    // 1 ms to ~33 s.
    let histogram = Histogram::new(exponential_buckets(0.001, 2.0, 16));
    registry.register_with_unit(
        "loupe_analysis_duration",
        "One update of the incidents: alert evaluation, then the ranking of open incidents' causes",
        Unit::Seconds,
        histogram.clone(),
    );
    histogram
}

/// `GET /metrics`: `registry` in the Prometheus text format.
pub fn metrics_router(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(render))
        .with_state(registry)
}

async fn render(State(registry): State<Arc<Registry>>) -> Response {
    let encoded = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).map(|_| text)
    })
    .await;
    match encoded {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        _ => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        )
            .into_response(),
    }
}
