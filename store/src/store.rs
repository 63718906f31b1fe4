//! The store: write-ahead log, hot Arrow batches, Parquet segments, and the maintenance that
//! moves data between them (flush, compaction, retention).
//!
//! Write path: [`Store::append`] logs a request (synced per [`SyncPolicy`]) and adds its rows to
//! the hot batches, under one lock, so that the log files and the hot data always describe the
//! same requests. [`Store::flush`] seals the hot data together with the log files that hold it,
//! writes it as segments (off the write path: appends go on meanwhile), and only when the
//! segments are durable deletes those log files. Queries see the hot, the sealed and the
//! segment data as one table at every moment.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::StoreMetrics;
use crate::schema::Table;
use crate::segment::{self, Segment};
use crate::wal::{io, SyncPolicy, Wal, WalContents};

/// Store settings (README, "Configuration").
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The data directory: `wal/` and `segments/` go under it.
    pub dir: PathBuf,
    /// When log appends reach the disk.
    pub wal_sync: SyncPolicy,
    /// Flush the hot data once it holds this many bytes of Arrow memory (default 256 MiB).
    pub flush_bytes: usize,
    /// Flush the hot data at least this often (default 5 min).
    pub flush_interval: Duration,
    /// Delete segments whose newest row was received longer ago than this (default 7 days;
    /// `None` keeps all). Arrival, not event time: replayed old telemetry stays as long.
    pub retention_age: Option<Duration>,
    /// Delete the oldest segments while all of them take more than this many bytes (default
    /// none).
    pub retention_bytes: Option<u64>,
    /// Merge an hour's segments of a table once it has this many files (default 8); closed
    /// hours are merged from 2 files.
    pub compact_files: usize,
}

impl StoreConfig {
    /// The defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            wal_sync: SyncPolicy::Batch,
            flush_bytes: 256 << 20,
            flush_interval: Duration::from_secs(300),
            retention_age: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            compact_files: 8,
        }
    }
}

/// Hot rows of every table.
#[derive(Debug, Clone, Default)]
struct Hot {
    tables: [Vec<RecordBatch>; 4],
    rows: usize,
    bytes: usize,
    since: Option<Instant>,
}

impl Hot {
    fn push(&mut self, table: Table, batch: RecordBatch) {
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        self.since.get_or_insert_with(Instant::now);
        self.tables[index(table)].push(batch);
    }
}

fn index(table: Table) -> usize {
    Table::ALL.iter().position(|t| *t == table).unwrap_or(0)
}

#[derive(Default)]
struct State {
    active: Hot,
    /// Hot data being flushed, with the last log file that holds it.
    sealed: Vec<(u64, Hot)>,
    segments: Vec<Segment>,
    corrupt: Vec<(PathBuf, String)>,
    last_compaction: u64,
}

/// What a [`Store::flush`] wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlushReport {
    /// Rows written.
    pub rows: usize,
    /// Segment files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// What maintenance removed or merged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceReport {
    /// Segments deleted for age.
    pub expired_by_age: usize,
    /// Segments deleted for size.
    pub expired_by_size: usize,
    /// Segments merged by compaction (inputs).
    pub compacted_inputs: usize,
    /// Segments compaction wrote.
    pub compacted_outputs: usize,
}

/// The store's figures, for `GET /api/v1/store`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    /// Rows in memory not yet in segments.
    pub hot_rows: usize,
    /// Arrow memory of those rows, bytes.
    pub hot_bytes: usize,
    /// Segment files.
    pub segments: usize,
    /// Rows in segments.
    pub segment_rows: u64,
    /// Bytes of segments on disk.
    pub segment_bytes: u64,
    /// Bytes of write-ahead log on disk.
    pub wal_bytes: u64,
    /// Segment files that could not be read, with the reason (skipped, not deleted).
    pub corrupt_segments: Vec<String>,
}

/// What [`Store::open`] found.
pub struct Opened {
    /// The log's records that are not in segments yet, for the caller to replay (through
    /// [`Store::restore`] and into the graph).
    pub wal: WalContents,
    /// Segment files that could not be read (skipped), with the reason.
    pub corrupt: Vec<(PathBuf, String)>,
}

/// The durable columnar store.
pub struct Store {
    config: StoreConfig,
    root: PathBuf,
    wal: Mutex<Wal>,
    metrics: StoreMetrics,
    state: RwLock<State>,
    maintenance: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Opens the store in `config.dir`: loads the segments (skipping unreadable ones, which are
    /// reported), finishes or discards interrupted flushes and compactions, and opens the log.
    /// The caller replays [`Opened::wal`].
    ///
    /// # Errors
    /// [`Error::Io`] when the directories cannot be created or read.
    pub fn open(config: StoreConfig) -> Result<(Self, Opened)> {
        let root = config.dir.join("segments");
        let loaded = segment::load(&root)?;
        for (path, reason) in &loaded.corrupt {
            tracing::warn!(path = %path.display(), %reason, "skipping unreadable segment");
        }
        let (wal, contents) =
            Wal::open(&config.dir.join("wal"), loaded.covered_wal, config.wal_sync)?;
        let state = State {
            segments: loaded.segments,
            corrupt: loaded.corrupt.clone(),
            last_compaction: loaded.last_compaction,
            ..Default::default()
        };
        let store = Self {
            config,
            root,
            wal: Mutex::new(wal),
            metrics: StoreMetrics::default(),
            state: RwLock::new(state),
            maintenance: Mutex::new(()),
        };
        Ok((
            store,
            Opened {
                wal: contents,
                corrupt: loaded.corrupt,
            },
        ))
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs one request (`tag`, payload in `parts`) and adds its rows to the hot data.
    /// Returning `Ok` means the request is durable per the sync policy.
    ///
    /// # Errors
    /// [`Error::Io`] when the log write fails; nothing is added then.
    pub fn append(
        &self,
        tag: u8,
        parts: &[&[u8]],
        batches: Vec<(Table, RecordBatch)>,
    ) -> Result<()> {
        let mut wal = lock(&self.wal);
        if let Err(e) = wal.append_parts(tag, parts) {
            self.metrics.wal_errors.inc();
            return Err(e);
        }
        self.metrics.wal_appends.inc();
        let framed: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 9;
        self.metrics.wal_bytes.inc_by(framed as u64);
        if let Some(took) = wal.last_sync.take() {
            self.metrics.wal_sync_seconds.observe(took.as_secs_f64());
        }
        let mut state = self.write();
        batches
            .into_iter()
            .for_each(|(t, b)| state.active.push(t, b));
        Ok(())
    }

    /// Adds rows replayed from the log to the hot data (no new log record).
    pub fn restore(&self, batches: Vec<(Table, RecordBatch)>) {
        let mut state = self.write();
        batches
            .into_iter()
            .for_each(|(t, b)| state.active.push(t, b));
    }

    /// Whether the hot data is due for a flush (size or age).
    pub fn flush_due(&self) -> bool {
        let state = self.read();
        let hot = &state.active;
        hot.bytes >= self.config.flush_bytes
            || hot
                .since
                .is_some_and(|s| s.elapsed() >= self.config.flush_interval)
    }

    /// Writes the hot data as segments and deletes the log files that held it. Appends go on
    /// while the files are written; queries see the data throughout.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Segment`] when writing fails: the data stays hot and in the log,
    /// and the next flush retries.
    pub fn flush(&self) -> Result<FlushReport> {
        let started = std::time::Instant::now();
        let report = self.flush_hot()?;
        if report.files > 0 {
            self.metrics
                .flush_seconds
                .observe(started.elapsed().as_secs_f64());
            self.metrics.segments_flushed.inc_by(report.files as u64);
        }
        Ok(report)
    }

    fn flush_hot(&self) -> Result<FlushReport> {
        let _m = lock(&self.maintenance);
        let (seq, hot) = {
            let mut wal = lock(&self.wal);
            let mut state = self.write();
            if state.active.rows == 0 {
                return Ok(FlushReport::default());
            }
            let seq = wal.rotate()?;
            let hot = std::mem::take(&mut state.active);
            state.sealed.push((seq, hot.clone()));
            (seq, hot)
        };
        match self.write_generation(seq, &hot) {
            Ok(segments) => {
                let report = FlushReport {
                    rows: hot.rows,
                    files: segments.len(),
                    bytes: segments.iter().map(|s| s.bytes).sum(),
                };
                {
                    let mut state = self.write();
                    state.sealed.retain(|(s, _)| *s != seq);
                    state.segments.extend(segments);
                }
                lock(&self.wal).remove_through(seq)?;
                Ok(report)
            }
            Err(e) => {
                // Back to the hot data, ahead of what arrived since; the log still holds it.
                let mut state = self.write();
                state.sealed.retain(|(s, _)| *s != seq);
                let mut back = hot;
                let newer = std::mem::take(&mut state.active);
                for (i, batches) in newer.tables.into_iter().enumerate() {
                    back.tables[i].extend(batches);
                }
                back.rows += newer.rows;
                back.bytes += newer.bytes;
                state.active = back;
                Err(e)
            }
        }
    }

    fn write_generation(&self, seq: u64, hot: &Hot) -> Result<Vec<Segment>> {
        let name = format!("g{seq:020}");
        let tmp = self.root.join(format!("{name}.tmp"));
        let dir = self.root.join(&name);
        let result = (|| {
            std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
            let mut segments = Vec::new();
            for table in Table::ALL {
                segments.extend(segment::write_table(
                    &tmp,
                    table,
                    &hot.tables[index(table)],
                )?);
            }
            segment::commit_dir(&tmp, &dir)?;
            Ok(segments
                .into_iter()
                .map(|mut s| {
                    s.path = dir.join(s.path.file_name().unwrap_or_default());
                    s
                })
                .collect())
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Merges small segments of the same table and hour (off the write path), then deletes
    /// segments past the retention age or beyond the size limit, oldest first.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Segment`] when a file cannot be written or removed.
    pub fn maintain(&self, now_unix_nano: i64) -> Result<MaintenanceReport> {
        let _m = lock(&self.maintenance);
        let mut report = MaintenanceReport::default();
        let compacted = self.compact(now_unix_nano, &mut report);
        self.metrics
            .segments_compacted
            .inc_by(report.compacted_inputs as u64);
        compacted?;
        self.expire(now_unix_nano, &mut report)?;
        Ok(report)
    }

    fn compact(&self, now: i64, report: &mut MaintenanceReport) -> Result<()> {
        let current_hour = now.div_euclid(segment::HOUR_NANOS);
        let groups: Vec<Vec<Segment>> = {
            let state = self.read();
            let mut by: std::collections::BTreeMap<(Table, i64), Vec<Segment>> = Default::default();
            for s in &state.segments {
                by.entry((s.table, s.hour)).or_default().push(s.clone());
            }
            by.into_iter()
                .filter(|((_, hour), files)| {
                    files.len() >= self.config.compact_files
                        || (files.len() >= 2 && *hour < current_hour)
                })
                .map(|(_, files)| files)
                .collect()
        };
        for inputs in groups {
            let seq = self.read().last_compaction + 1;
            let name = format!("c{seq:020}");
            let tmp = self.root.join(format!("{name}.tmp"));
            let dir = self.root.join(&name);
            std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
            let table = inputs[0].table;
            let written = segment::merge(&tmp, table, &inputs).and_then(|out| {
                let replaces: String = inputs
                    .iter()
                    .map(|s| segment::relative(&self.root, &s.path) + "\n")
                    .collect();
                let path = tmp.join("replaces");
                std::fs::write(&path, replaces).map_err(io("write", &path))?;
                std::fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(io("sync", &path))?;
                segment::commit_dir(&tmp, &dir)?;
                Ok(out)
            });
            let out = match written {
                Ok(out) => out,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
            };
            let out: Vec<Segment> = out
                .into_iter()
                .map(|mut s| {
                    s.path = dir.join(s.path.file_name().unwrap_or_default());
                    s
                })
                .collect();
            {
                let mut state = self.write();
                state.last_compaction = seq;
                state.segments.retain(|s| !inputs.contains(s));
                state.segments.extend(out.iter().cloned());
            }
            for s in &inputs {
                remove_segment(&s.path)?;
            }
            report.compacted_inputs += inputs.len();
            report.compacted_outputs += out.len();
        }
        Ok(())
    }

    fn expire(&self, now: i64, report: &mut MaintenanceReport) -> Result<()> {
        let doomed: Vec<(Segment, bool)> = {
            let state = self.read();
            let mut by_age = Vec::new();
            let mut kept: Vec<&Segment> = Vec::new();
            for s in &state.segments {
                let old = self
                    .config
                    .retention_age
                    .is_some_and(|age| s.max_received < now.saturating_sub(age.as_nanos() as i64));
                if old {
                    by_age.push((s.clone(), true));
                } else {
                    kept.push(s);
                }
            }
            if let Some(limit) = self.config.retention_bytes {
                kept.sort_by_key(|s| (s.max_time, s.min_time));
                let mut total: u64 = kept.iter().map(|s| s.bytes).sum();
                for s in kept {
                    if total <= limit {
                        break;
                    }
                    total -= s.bytes;
                    by_age.push((s.clone(), false));
                }
            }
            by_age
        };
        if doomed.is_empty() {
            return Ok(());
        }
        {
            let mut state = self.write();
            state
                .segments
                .retain(|s| !doomed.iter().any(|(d, _)| d == s));
        }
        for (s, age) in doomed {
            remove_segment(&s.path)?;
            match age {
                true => report.expired_by_age += 1,
                false => report.expired_by_size += 1,
            }
        }
        Ok(())
    }

    /// The segments, oldest hour first.
    pub fn segments(&self) -> Vec<Segment> {
        let mut s = self.read().segments.clone();
        segment::sort(&mut s);
        s
    }

    /// What a query over `table` reads: the hot and sealed batches, and the segments whose
    /// event times may overlap `[from, to]` (unix ns, inclusive; `None` is unbounded).
    pub fn snapshot(
        &self,
        table: Table,
        from: Option<i64>,
        to: Option<i64>,
    ) -> (Vec<RecordBatch>, Vec<Segment>) {
        let state = self.read();
        let i = index(table);
        let mut hot: Vec<RecordBatch> = state.active.tables[i].clone();
        for (_, h) in &state.sealed {
            hot.extend(h.tables[i].iter().cloned());
        }
        let segments = state
            .segments
            .iter()
            .filter(|s| s.table == table)
            .filter(|s| from.is_none_or(|f| s.max_time >= f) && to.is_none_or(|t| s.min_time <= t))
            .cloned()
            .collect();
        (hot, segments)
    }

    /// Its self-telemetry (write-ahead log, flushes, compaction).
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// The store's figures.
    pub fn stats(&self) -> StoreStats {
        let wal_bytes = lock(&self.wal).bytes();
        let state = self.read();
        let hot = std::iter::once(&state.active).chain(state.sealed.iter().map(|(_, h)| h));
        let (hot_rows, hot_bytes) = hot.fold((0, 0), |(r, b), h| (r + h.rows, b + h.bytes));
        StoreStats {
            hot_rows,
            hot_bytes,
            segments: state.segments.len(),
            segment_rows: state.segments.iter().map(|s| s.rows).sum(),
            segment_bytes: state.segments.iter().map(|s| s.bytes).sum(),
            wal_bytes,
            corrupt_segments: state
                .corrupt
                .iter()
                .map(|(p, r)| format!("{}: {r}", p.display()))
                .collect(),
        }
    }
}

impl std::fmt::Debug for Store {
    /// The directory only: the data is not for printing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.config.dir)
            .finish_non_exhaustive()
    }
}

fn remove_segment(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Io {
                action: "remove",
                path: path.display().to_string(),
                source: e,
            })
        }
    }
    if let Some(dir) = path.parent() {
        // The directory goes with its last segment (a compaction's keeps its `replaces` until
        // then).
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.all(|e| e.is_ok_and(|e| e.file_name() == "replaces")))
            .unwrap_or(false);
        if empty {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::traces_to_batch;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1 as pt;

    const HOUR: i64 = segment::HOUR_NANOS;
    /// 2026-09-24T00:00:00Z, an hour boundary.
    const T0: i64 = 1_790_208_000_000_000_000;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loupe-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// `n` spans of `service` starting at `t` (unix ns), with span ids from `first`.
    fn spans(service: &str, t: i64, n: u64, first: u64) -> (Table, RecordBatch) {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
        let spans = (0..n)
            .map(|i| pt::Span {
                trace_id: vec![7; 16],
                span_id: (first + i + 1).to_be_bytes().to_vec(),
                name: "GET /".into(),
                start_time_unix_nano: t as u64 + i,
                end_time_unix_nano: t as u64 + i + 1000,
                ..Default::default()
            })
            .collect();
        let resource = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![pt::ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        (Table::Spans, traces_to_batch(&request, t as u64).unwrap())
    }

    fn open(dir: &Path, tweak: impl FnOnce(&mut StoreConfig)) -> (Store, Opened) {
        let mut config = StoreConfig::new(dir);
        config.wal_sync = SyncPolicy::None;
        tweak(&mut config);
        Store::open(config).unwrap()
    }

    fn rows_of(store: &Store) -> u64 {
        let (hot, segments) = store.snapshot(Table::Spans, None, None);
        hot.iter().map(|b| b.num_rows() as u64).sum::<u64>()
            + segments.iter().map(|s| s.rows).sum::<u64>()
    }

    #[test]
    fn a_flush_moves_hot_rows_into_hourly_segments_and_deletes_their_log() {
        let dir = temp_dir("flush");
        let (store, _) = open(&dir, |_| {});
        // Two hours of spans in one request.
        store
            .append(1, &[b"r1"], vec![spans("a", T0, 3, 0)])
            .unwrap();
        store
            .append(1, &[b"r2"], vec![spans("b", T0 + HOUR, 2, 10)])
            .unwrap();
        assert_eq!(store.stats().hot_rows, 5);
        let report = store.flush().unwrap();
        assert_eq!((report.rows, report.files), (5, 2), "one file per hour");
        let stats = store.stats();
        assert_eq!(
            (stats.hot_rows, stats.segments, stats.segment_rows),
            (0, 2, 5)
        );
        drop(store);
        let (store, opened) = open(&dir, |_| {});
        assert!(
            opened.wal.records.is_empty(),
            "the log of flushed data is gone"
        );
        assert_eq!(rows_of(&store), 5);
        let hours: Vec<i64> = store
            .segments()
            .iter()
            .map(|s| s.hour - T0 / HOUR)
            .collect();
        assert_eq!(hours, vec![0, 1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retention_by_age_counts_from_arrival_so_replayed_old_data_stays() {
        let dir = temp_dir("retention-arrival");
        let (store, _) = open(&dir, |c| c.retention_age = Some(Duration::from_secs(3600)));
        // Rows of a day ago, received now.
        let (table, old) = spans("a", T0 - 24 * HOUR, 3, 0);
        let received = datafusion::arrow::array::TimestampNanosecondArray::from(vec![T0; 3])
            .with_timezone("UTC");
        let i = old.schema().index_of("received_time_unix_nano").unwrap();
        let mut columns = old.columns().to_vec();
        columns[i] = std::sync::Arc::new(received);
        let old = RecordBatch::try_new(old.schema(), columns).unwrap();
        store.append(1, &[b"r"], vec![(table, old)]).unwrap();
        store.flush().unwrap();
        let report = store.maintain(T0 + HOUR / 2).unwrap();
        assert_eq!(report.expired_by_age, 0, "received half an hour ago");
        let report = store.maintain(T0 + 2 * HOUR).unwrap();
        assert_eq!(report.expired_by_age, 1, "received two hours ago");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retention_deletes_whole_segments_by_age_then_by_size_and_nothing_else() {
        let dir = temp_dir("retention");
        let (store, _) = open(&dir, |c| c.compact_files = 100);
        for h in 0..3 {
            store
                .append(
                    1,
                    &[b"r"],
                    vec![spans("a", T0 + h * HOUR, 10, h as u64 * 100)],
                )
                .unwrap();
        }
        store.flush().unwrap();
        assert_eq!(store.segments().len(), 3);
        // Now is the end of hour 2; rows sit at the start of their hour, so an age of 150
        // minutes expires hour 0 only.
        let now = T0 + 3 * HOUR;
        let (store, _) = {
            drop(store);
            open(&dir, |c| {
                c.retention_age = Some(Duration::from_secs(150 * 60));
                c.compact_files = 100;
            })
        };
        let report = store.maintain(now).unwrap();
        assert_eq!((report.expired_by_age, report.expired_by_size), (1, 0));
        let left: Vec<i64> = store
            .segments()
            .iter()
            .map(|s| s.hour - T0 / HOUR)
            .collect();
        assert_eq!(left, vec![1, 2]);
        // A size limit that holds one segment keeps the newest.
        let newest = store.segments()[1].bytes;
        drop(store);
        let (store, _) = open(&dir, |c| {
            c.retention_age = None;
            c.retention_bytes = Some(newest);
        });
        let report = store.maintain(now).unwrap();
        assert_eq!((report.expired_by_age, report.expired_by_size), (0, 1));
        let left: Vec<i64> = store
            .segments()
            .iter()
            .map(|s| s.hour - T0 / HOUR)
            .collect();
        assert_eq!(left, vec![2]);
        assert_eq!(rows_of(&store), 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_segment_is_reported_and_skipped_not_fatal() {
        let dir = temp_dir("corrupt");
        let (store, _) = open(&dir, |_| {});
        store
            .append(1, &[b"r"], vec![spans("a", T0, 4, 0)])
            .unwrap();
        store
            .append(1, &[b"r"], vec![spans("a", T0 + HOUR, 6, 10)])
            .unwrap();
        store.flush().unwrap();
        let victim = store.segments()[0].path.clone();
        drop(store);
        let bytes = std::fs::read(&victim).unwrap();
        std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
        let (store, opened) = open(&dir, |_| {});
        assert_eq!(opened.corrupt.len(), 1);
        assert_eq!(opened.corrupt[0].0, victim);
        assert_eq!(store.stats().corrupt_segments.len(), 1);
        assert_eq!(rows_of(&store), 6, "the intact segment still loads");
        assert!(
            victim.exists(),
            "a corrupt file is kept for inspection, not deleted"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compaction_merges_an_hours_segments_and_keeps_every_row() {
        let dir = temp_dir("compact");
        let (store, _) = open(&dir, |_| {});
        for i in 0..3 {
            store
                .append(
                    1,
                    &[b"r"],
                    vec![spans("a", T0 + i * 60_000_000_000, 5, i as u64 * 10)],
                )
                .unwrap();
            store.flush().unwrap();
        }
        assert_eq!(store.segments().len(), 3);
        let report = store.maintain(T0 + 2 * HOUR).unwrap();
        assert_eq!((report.compacted_inputs, report.compacted_outputs), (3, 1));
        assert_eq!(store.segments().len(), 1);
        assert_eq!(rows_of(&store), 15);
        drop(store);
        let (store, opened) = open(&dir, |_| {});
        assert!(opened.corrupt.is_empty());
        assert_eq!((store.segments().len(), rows_of(&store)), (1, 15));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_interrupted_flush_neither_loses_nor_duplicates() {
        let dir = temp_dir("interrupted");
        // A crash after the segments were committed but before the log was removed: on open the
        // log is not replayed again.
        let (store, _) = open(&dir, |_| {});
        store
            .append(1, &[b"r"], vec![spans("a", T0, 4, 0)])
            .unwrap();
        let kept_log: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        store.flush().unwrap();
        drop(store);
        for (path, bytes) in &kept_log {
            std::fs::write(path, bytes).unwrap();
        }
        let (store, opened) = open(&dir, |_| {});
        assert!(
            opened.wal.records.is_empty(),
            "covered log files are dropped"
        );
        assert_eq!(rows_of(&store), 4);
        // A crash while writing a flush: the unfinished directory is removed, the log replays.
        store
            .append(1, &[b"again"], vec![spans("a", T0, 2, 50)])
            .unwrap();
        drop(store);
        std::fs::create_dir_all(dir.join("segments").join("g00000000000000000099.tmp")).unwrap();
        let (store, opened) = open(&dir, |_| {});
        assert_eq!(opened.wal.records.len(), 1);
        assert!(!dir
            .join("segments")
            .join("g00000000000000000099.tmp")
            .exists());
        assert_eq!(
            rows_of(&store),
            4,
            "replayed rows are the caller's to restore"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
