//! The engine: the [`TelemetrySink`] behind the receivers. An accepted request goes to the
//! store (write-ahead log and hot Arrow batches, when the engine has a data directory), then
//! into the knowledge graph.
//!
//! On start the engine [recovers](Engine::recover): it rebuilds the graph from the stored
//! segments, hour by hour in the order the data was received, then replays the log records
//! that are not in segments yet. Until then it refuses new data with "unavailable", which
//! OTLP clients retry.

use crate::columnar::Columnar;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use loupe_graph::{GraphConfig, KnowledgeGraph};
use loupe_ingest::changes::ChangeSink;
use loupe_ingest::{Accepted, ExportRequest, Signal, TelemetrySink};
use loupe_model::time::{SharedClock, SystemClock};
use loupe_model::{ChangeEvent, TelemetryBatch};
use loupe_store::convert::{changes_from_batch, changes_to_batch};
use loupe_store::{Opened, QueryEngine, RecordBatch, Segment, Store, StoreConfig, Table};
use serde::Serialize;

/// Write-ahead-log tag of a batch of changes (JSON), beside the OTLP signals' tags.
const CHANGES_TAG: u8 = 16;

/// Set on a tag whose payload starts with the record time (u64 little-endian unix nanoseconds:
/// when loupe received it), so that a replayed log keeps the graph's record times.
const RECORDED_FLAG: u8 = 0x80;

/// The record time and payload of a log record.
fn split_recorded(tag: u8, payload: &[u8]) -> (u8, Option<u64>, &[u8]) {
    if tag & RECORDED_FLAG != 0 && payload.len() >= 8 {
        let (head, rest) = payload.split_at(8);
        let t = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
        (tag & !RECORDED_FLAG, Some(t), rest)
    } else {
        (tag, None, payload)
    }
}

/// Ingest's consumer: store, then graph.
pub struct Engine {
    graph: Arc<RwLock<KnowledgeGraph>>,
    store: Option<Arc<Store>>,
    query: Option<Arc<QueryEngine>>,
    clock: SharedClock,
    ready: AtomicBool,
    pending: Mutex<Option<Opened>>,
    progress: Mutex<RecoveryProgress>,
}

/// Where recovery stands, for logs and `/readyz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryProgress {
    /// `loading segments`, `replaying the write-ahead log`, `ready`.
    pub phase: &'static str,
    /// Segment files read into the graph so far.
    pub segments_done: usize,
    /// Segment files to read.
    pub segments_total: usize,
    /// Rows read from segments so far.
    pub rows: u64,
    /// Log records replayed so far.
    pub wal_records_done: usize,
    /// Log records to replay.
    pub wal_records_total: usize,
}

/// What [`Engine::recover`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Rows read from segments.
    pub segment_rows: u64,
    /// Segment files skipped as unreadable.
    pub unreadable_segments: usize,
    /// Requests replayed from the log.
    pub requests: usize,
    /// Requests in the log that no longer decode (skipped, reported).
    pub undecodable: usize,
    /// Bytes of torn tails cut from the log.
    pub torn_bytes: u64,
}

/// One stored request, ready to go into the graph.
enum Item {
    Telemetry(ExportRequest),
    Changes(Vec<ChangeEvent>),
}

impl Engine {
    /// An engine without durability, for evaluation and tests: no store, ready at once.
    pub fn in_memory(config: GraphConfig) -> Self {
        Self {
            graph: Arc::new(RwLock::new(KnowledgeGraph::new(config))),
            store: None,
            query: None,
            clock: Arc::new(SystemClock),
            ready: AtomicBool::new(true),
            pending: Mutex::new(None),
            progress: Mutex::new(RecoveryProgress {
                phase: "ready",
                ..Default::default()
            }),
        }
    }

    /// An engine over the store in `store.dir`: opens it (segment footers, log files) but does
    /// not rebuild the graph yet; call [`Engine::recover`] before it takes data.
    ///
    /// # Errors
    /// When the store cannot be opened.
    pub fn open(store: StoreConfig, config: GraphConfig) -> anyhow::Result<Self> {
        let (store, opened) = Store::open(store)?;
        let store = Arc::new(store);
        let query = Arc::new(QueryEngine::new(store.clone())?);
        let graph = Arc::new(RwLock::new(KnowledgeGraph::new(config)));
        query.register(
            "service_edges",
            Arc::new(crate::edges_table::ServiceEdges(graph.clone())),
        )?;
        Ok(Self {
            graph,
            store: Some(store),
            query: Some(query),
            clock: Arc::new(SystemClock),
            ready: AtomicBool::new(false),
            pending: Mutex::new(Some(opened)),
            progress: Mutex::new(RecoveryProgress {
                phase: "starting",
                ..Default::default()
            }),
        })
    }

    /// Rebuilds the graph from the segments and replays the log into the hot data and the
    /// graph, reporting progress; then marks the engine ready.
    ///
    /// # Errors
    /// Never for bad data (unreadable segments and undecodable records are skipped and
    /// counted); only when called twice.
    pub fn recover(&self, mut report: impl FnMut(&RecoveryProgress)) -> anyhow::Result<Recovery> {
        let opened = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let (Some(store), Some(opened)) = (&self.store, opened) else {
            self.set_ready();
            return Ok(Recovery::default());
        };
        let mut recovery = Recovery {
            unreadable_segments: opened.corrupt.len(),
            torn_bytes: opened.wal.torn_bytes,
            ..Default::default()
        };
        let segments = store.segments();
        let mut progress = RecoveryProgress {
            phase: "loading segments",
            segments_total: segments.len(),
            wal_records_total: opened.wal.records.len(),
            ..Default::default()
        };
        self.publish(&progress, &mut report);
        // Hour by hour (all tables of an hour together), in the order the data arrived.
        let mut start = 0;
        while start < segments.len() {
            let hour = segments[start].hour;
            let end = start
                + segments[start..]
                    .iter()
                    .take_while(|s| s.hour == hour)
                    .count();
            let (items, rows, unreadable) = read_hour(&segments[start..end]);
            recovery.unreadable_segments += unreadable;
            recovery.segment_rows += rows;
            for (received, item) in items {
                self.apply_item(&item, Some(received));
            }
            recovery.segments += end - start - unreadable;
            progress.segments_done = end;
            progress.rows += rows;
            self.publish(&progress, &mut report);
            start = end;
        }
        progress.phase = "replaying the write-ahead log";
        self.publish(&progress, &mut report);
        for (n, record) in opened.wal.records.iter().enumerate() {
            let (tag, recorded, payload) = split_recorded(record.tag, &record.payload);
            let received = recorded.unwrap_or_else(|| self.clock.now_unix_nano());
            let item = if tag == CHANGES_TAG {
                serde_json::from_slice::<Vec<ChangeEvent>>(payload)
                    .ok()
                    .map(Item::Changes)
            } else {
                Signal::from_tag(tag)
                    .and_then(|s| ExportRequest::decode(s, payload).ok())
                    .map(Item::Telemetry)
            };
            match item {
                Some(item) => {
                    store.restore(batches_of(&item, received));
                    self.apply_item(&item, recorded);
                    recovery.requests += 1;
                }
                None => recovery.undecodable += 1,
            }
            if n % 1000 == 999 {
                progress.wal_records_done = n + 1;
                self.publish(&progress, &mut report);
            }
        }
        progress.wal_records_done = opened.wal.records.len();
        progress.phase = "ready";
        self.publish(&progress, &mut report);
        self.set_ready();
        Ok(recovery)
    }

    fn publish(&self, progress: &RecoveryProgress, report: &mut impl FnMut(&RecoveryProgress)) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = progress.clone();
        report(progress);
    }

    fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether recovery is complete and the engine takes data.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Where recovery stands.
    pub fn progress(&self) -> RecoveryProgress {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The graph, shared with the API.
    pub fn graph(&self) -> Arc<RwLock<KnowledgeGraph>> {
        self.graph.clone()
    }

    /// The store, when the engine has a data directory.
    pub fn store(&self) -> Option<Arc<Store>> {
        self.store.clone()
    }

    /// The SQL engine over the store, when the engine has one.
    pub fn query_engine(&self) -> Option<Arc<QueryEngine>> {
        self.query.clone()
    }

    fn apply_item(&self, item: &Item, recorded: Option<u64>) {
        let mut graph = self.graph.write().unwrap_or_else(|p| p.into_inner());
        graph.set_record_time(recorded);
        match item {
            Item::Telemetry(request) => {
                if let Some(batch) = request.items() {
                    apply_to(&mut graph, &batch);
                }
            }
            Item::Changes(changes) => {
                graph.apply_changes(changes);
            }
        }
        graph.set_record_time(None);
    }

    /// Applies a decoded batch to the graph, learned at `recorded`.
    fn apply_recorded(&self, batch: &TelemetryBatch, recorded: u64) {
        // A panic while holding the lock poisons it; the graph's data is still consistent per
        // batch, so keep serving rather than failing every later request.
        let mut graph = self.graph.write().unwrap_or_else(|p| p.into_inner());
        graph.set_record_time(Some(recorded));
        apply_to(&mut graph, batch);
        graph.set_record_time(None);
    }

    /// Applies a decoded batch to the graph, learned now.
    pub fn apply(&self, batch: &TelemetryBatch) {
        self.apply_recorded(batch, self.clock.now_unix_nano());
    }

    /// Finalizes every span waiting in the join buffer.
    pub fn flush(&self) {
        self.graph
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .flush();
    }

    fn unavailable(&self) -> String {
        let p = self.progress();
        format!(
            "loupe is recovering its data ({}: {}/{} segments, {}/{} log records); retry shortly",
            p.phase, p.segments_done, p.segments_total, p.wal_records_done, p.wal_records_total
        )
    }
}

/// The record batches of a stored item, received at `received`.
fn batches_of(item: &Item, received: u64) -> Vec<(Table, RecordBatch)> {
    match item {
        Item::Telemetry(r) => r.to_batch(received).into_iter().collect(),
        Item::Changes(c) => changes_to_batch(c, received)
            .map(|b| (Table::Changes, b))
            .into_iter()
            .collect(),
    }
}

/// The items of one hour's segments, sorted by the time they were received; rows read; files
/// that could not be read.
fn read_hour(segments: &[Segment]) -> (Vec<(u64, Item)>, u64, usize) {
    let mut items: Vec<(u64, Item)> = Vec::new();
    let (mut rows, mut unreadable) = (0, 0);
    for s in segments {
        let batches = match loupe_store::segment::read(&s.path) {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(%error, "skipping unreadable segment");
                unreadable += 1;
                continue;
            }
        };
        for batch in &batches {
            rows += batch.num_rows() as u64;
            let converted = match s.table {
                Table::Changes => changes_from_batch(batch).map(|cs| {
                    cs.into_iter()
                        .map(|(t, c)| (t, Item::Changes(vec![c])))
                        .collect::<Vec<_>>()
                }),
                table => crate::columnar::requests_from_batch(table, batch).map(|rs| {
                    rs.into_iter()
                        .map(|(t, r)| (t, Item::Telemetry(r)))
                        .collect()
                }),
            };
            match converted {
                Ok(v) => items.extend(v),
                Err(error) => {
                    tracing::warn!(%error, path = %s.path.display(), "skipping a segment batch");
                }
            }
        }
    }
    // Stable: requests received at the same instant keep their stored order.
    items.sort_by_key(|(t, _)| *t);
    (items, rows, unreadable)
}

impl TelemetrySink for Engine {
    fn wants_protobuf(&self) -> bool {
        self.store.is_some()
    }

    fn consume(&self, accepted: Accepted) -> loupe_ingest::Result<()> {
        if !self.is_ready() {
            return Err(loupe_ingest::Error::Overloaded(self.unavailable()));
        }
        if let Some(store) = &self.store {
            // Not durable means not acknowledged: the client retries.
            let (Some(protobuf), Some(request)) = (&accepted.protobuf, &accepted.request) else {
                return Err(loupe_ingest::Error::Internal(
                    "request arrived without its encoding".into(),
                ));
            };
            let recorded = self.clock.now_unix_nano();
            let batches = request.to_batch(recorded).into_iter().collect();
            store
                .append(
                    accepted.signal.tag() | RECORDED_FLAG,
                    &[&recorded.to_le_bytes(), protobuf],
                    batches,
                )
                .map_err(|e| loupe_ingest::Error::Overloaded(format!("store: {e}")))?;
            self.apply_recorded(&accepted.batch, recorded);
            return Ok(());
        }
        self.apply(&accepted.batch);
        Ok(())
    }
}

impl ChangeSink for Engine {
    fn record_changes(&self, changes: Vec<ChangeEvent>) -> Result<Vec<String>, String> {
        if !self.is_ready() {
            return Err(self.unavailable());
        }
        let recorded = self.clock.now_unix_nano();
        if let Some(store) = &self.store {
            let payload = serde_json::to_vec(&changes).map_err(|e| e.to_string())?;
            let batches = changes_to_batch(&changes, recorded)
                .map(|b| (Table::Changes, b))
                .into_iter()
                .collect();
            store
                .append(
                    CHANGES_TAG | RECORDED_FLAG,
                    &[&recorded.to_le_bytes(), &payload],
                    batches,
                )
                .map_err(|e| format!("store: {e}"))?;
        }
        let mut graph = self.graph.write().unwrap_or_else(|p| p.into_inner());
        graph.set_record_time(Some(recorded));
        let ids = graph.apply_changes(&changes);
        graph.set_record_time(None);
        Ok(ids)
    }
}

fn apply_to(graph: &mut KnowledgeGraph, batch: &TelemetryBatch) {
    match batch {
        TelemetryBatch::Traces(b) => graph.apply_spans(b),
        TelemetryBatch::Logs(b) => graph.apply_logs(b),
        TelemetryBatch::Metrics(b) => graph.apply_metrics(b),
    }
}
