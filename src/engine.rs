//! The engine: the [`TelemetrySink`] behind the receivers. An accepted request goes to the
//! write-ahead log (when the engine has a data directory), then into the knowledge graph.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use loupe_graph::{GraphConfig, KnowledgeGraph};
use loupe_ingest::changes::ChangeSink;
use loupe_ingest::{decode_protobuf, Accepted, Signal, TelemetrySink};
use loupe_model::{ChangeEvent, TelemetryBatch};
use loupe_store::Wal;

/// Write-ahead-log tag of a batch of changes (JSON), beside the OTLP signals' tags.
const CHANGES_TAG: u8 = 16;

/// Ingest's consumer: WAL, then graph.
pub struct Engine {
    graph: Arc<RwLock<KnowledgeGraph>>,
    wal: Option<Mutex<Wal>>,
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
        };
        let mut recovery = Recovery {
            torn_bytes,
            ..Default::default()
        };
        for record in records {
            if record.tag == CHANGES_TAG {
                match serde_json::from_slice::<Vec<ChangeEvent>>(&record.payload) {
                    Ok(changes) => {
                        engine
                            .graph
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .apply_changes(&changes);
                        recovery.requests += 1;
                    }
                    Err(_) => recovery.undecodable += 1,
                }
                continue;
            }
            let decoded = Signal::from_tag(record.tag).map(|s| decode_protobuf(s, &record.payload));
            match decoded {
                Some(Ok(batch)) => {
                    if let Some(batch) = batch {
                        engine.apply(&batch);
                    }
                    recovery.requests += 1;
                }
                _ => recovery.undecodable += 1,
            }
        }
        Ok((engine, recovery))
    }

    /// The graph, shared with the API.
    pub fn graph(&self) -> Arc<RwLock<KnowledgeGraph>> {
        self.graph.clone()
    }

    /// Applies a decoded batch to the graph.
    pub fn apply(&self, batch: &TelemetryBatch) {
        // A panic while holding the lock poisons it; the graph's data is still consistent per
        // batch, so keep serving rather than failing every later request.
        let mut graph = self.graph.write().unwrap_or_else(|p| p.into_inner());
        match batch {
            TelemetryBatch::Traces(b) => graph.apply_spans(b),
            TelemetryBatch::Logs(b) => graph.apply_logs(b),
            TelemetryBatch::Metrics(b) => graph.apply_metrics(b),
        }
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
            wal.append(accepted.signal.tag(), protobuf)
                .map_err(|e| loupe_ingest::Error::Overloaded(format!("write-ahead log: {e}")))?;
        }
        self.apply(&accepted.batch);
        Ok(())
    }
}

impl ChangeSink for Engine {
    fn record_changes(&self, changes: Vec<ChangeEvent>) -> Result<Vec<String>, String> {
        if let Some(wal) = &self.wal {
            let payload = serde_json::to_vec(&changes).map_err(|e| e.to_string())?;
            wal.lock()
                .map_err(|_| "wal lock poisoned".to_owned())?
                .append(CHANGES_TAG, &payload)
                .map_err(|e| format!("write-ahead log: {e}"))?;
        }
        Ok(self
            .graph
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply_changes(&changes))
    }
}
