//! The engine: the [`TelemetrySink`] behind the receivers. An accepted request goes to the
//! write-ahead log (when the engine has a data directory), then into the knowledge graph.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use loupe_graph::{GraphConfig, KnowledgeGraph};
use loupe_ingest::changes::ChangeSink;
use loupe_ingest::{decode_protobuf, Accepted, Signal, TelemetrySink};
use loupe_model::time::{SharedClock, SystemClock};
use loupe_model::{ChangeEvent, TelemetryBatch};
use loupe_store::Wal;

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

/// Ingest's consumer: WAL, then graph.
pub struct Engine {
    graph: Arc<RwLock<KnowledgeGraph>>,
    wal: Option<Mutex<Wal>>,
    clock: SharedClock,
}

/// What [`Engine::open`] recovered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovery {
    /// Requests replayed from the log.
    pub requests: usize,
    /// Requests in the log that no longer decode (skipped, reported).
    pub undecodable: usize,
    /// Bytes of a torn tail cut from the log.
    pub torn_bytes: u64,
}

impl Engine {
    /// An engine without durability, for evaluation and tests.
    pub fn in_memory(config: GraphConfig) -> Self {
        Self {
            graph: Arc::new(RwLock::new(KnowledgeGraph::new(config))),
            wal: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// An engine that logs to `data_dir` and rebuilds its graph from what the log holds.
    ///
    /// # Errors
    /// When the log cannot be opened or read.
    pub fn open(data_dir: &Path, config: GraphConfig) -> anyhow::Result<(Self, Recovery)> {
        let (wal, records, torn_bytes) = Wal::open(data_dir)?;
        let engine = Self {
            graph: Arc::new(RwLock::new(KnowledgeGraph::new(config))),
            wal: Some(Mutex::new(wal)),
            clock: Arc::new(SystemClock),
        };
        let mut recovery = Recovery {
            torn_bytes,
            ..Default::default()
        };
        for record in records {
            let (tag, recorded, payload) = split_recorded(record.tag, &record.payload);
            let mut graph = engine.graph.write().unwrap_or_else(|p| p.into_inner());
            graph.set_record_time(recorded);
            let applied = if tag == CHANGES_TAG {
                serde_json::from_slice::<Vec<ChangeEvent>>(payload)
                    .map(|changes| {
                        graph.apply_changes(&changes);
                    })
                    .is_ok()
            } else {
                match Signal::from_tag(tag).map(|s| decode_protobuf(s, payload)) {
                    Some(Ok(batch)) => {
                        if let Some(batch) = batch {
                            apply_to(&mut graph, &batch);
                        }
                        true
                    }
                    _ => false,
                }
            };
            graph.set_record_time(None);
            match applied {
                true => recovery.requests += 1,
                false => recovery.undecodable += 1,
            }
        }
        Ok((engine, recovery))
    }

    /// The graph, shared with the API.
    pub fn graph(&self) -> Arc<RwLock<KnowledgeGraph>> {
        self.graph.clone()
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
}

impl TelemetrySink for Engine {
    fn wants_protobuf(&self) -> bool {
        self.wal.is_some()
    }

    fn consume(&self, accepted: Accepted) -> loupe_ingest::Result<()> {
        if let Some(wal) = &self.wal {
            let mut wal = wal
                .lock()
                .map_err(|_| loupe_ingest::Error::Internal("wal lock poisoned".into()))?;
            // Not durable means not acknowledged: the client retries.
            let Some(protobuf) = &accepted.protobuf else {
                return Err(loupe_ingest::Error::Internal(
                    "request arrived without its encoding".into(),
                ));
            };
            let recorded = self.clock.now_unix_nano();
            wal.append_parts(
                accepted.signal.tag() | RECORDED_FLAG,
                &[&recorded.to_le_bytes(), protobuf],
            )
            .map_err(|e| loupe_ingest::Error::Overloaded(format!("write-ahead log: {e}")))?;
            drop(wal);
            self.apply_recorded(&accepted.batch, recorded);
            return Ok(());
        }
        self.apply(&accepted.batch);
        Ok(())
    }
}

impl ChangeSink for Engine {
    fn record_changes(&self, changes: Vec<ChangeEvent>) -> Result<Vec<String>, String> {
        let recorded = self.clock.now_unix_nano();
        if let Some(wal) = &self.wal {
            let payload = serde_json::to_vec(&changes).map_err(|e| e.to_string())?;
            wal.lock()
                .map_err(|_| "wal lock poisoned".to_owned())?
                .append_parts(
                    CHANGES_TAG | RECORDED_FLAG,
                    &[&recorded.to_le_bytes(), &payload],
                )
                .map_err(|e| format!("write-ahead log: {e}"))?;
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
