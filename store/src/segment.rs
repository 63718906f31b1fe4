//! Parquet segments: immutable files of one table and one hour of event time, sorted by
//! service and time, zstd-compressed, with page statistics and (on `trace_id`) bloom filters.
//!
//! Layout under `<data dir>/segments/`:
//! - `g<seq>/` holds the segments of one flush, covering the write-ahead-log files up to
//!   `<seq>`; it is written as `g<seq>.tmp/` and renamed when every file is synced, so a crash
//!   leaves either the whole flush or none of it.
//! - `c<seq>/` holds the output of one compaction and a `replaces` file naming (relative to
//!   `segments/`) the segments it supersedes; those are deleted after the rename, and again on
//!   start if a crash came between.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::{
    concat_batches, lexsort_to_indices, take_record_batch, SortColumn,
};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::schema::Table;
use crate::wal::{io, sync_dir};

/// Nanoseconds in an hour, the partition width.
pub const HOUR_NANOS: i64 = 3_600_000_000_000;

/// Rows per Parquet row group: the unit that statistics and bloom filters prune.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// A segment file that could not be read, and why.
pub type Unreadable = (PathBuf, String);

/// One segment file.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// Its table.
    pub table: Table,
    /// The hour of event time it holds (unix ns / 1 h).
    pub hour: i64,
    /// Smallest and largest event time in it, unix ns.
    pub min_time: i64,
    /// See `min_time`.
    pub max_time: i64,
    /// When loupe received the newest of its rows, unix ns: what retention by age compares, so
    /// that replayed old telemetry is kept as long as fresh telemetry.
    pub max_received: i64,
    /// Rows.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

fn segment_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Segment {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn writer_properties(
    table: Table,
    rows: usize,
    (min, max): (i64, i64),
    max_received: i64,
) -> WriterProperties {
    let meta = |k: &str, v: String| KeyValue::new(k.to_owned(), v);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_key_value_metadata(Some(vec![
            meta("loupe.table", table.name().to_owned()),
            meta("loupe.min_time", min.to_string()),
            meta("loupe.max_time", max.to_string()),
            meta("loupe.max_received", max_received.to_string()),
        ]));
    if matches!(table, Table::Spans | Table::Logs) {
        let col = ColumnPath::from("trace_id");
        b = b
            .set_column_bloom_filter_enabled(col.clone(), true)
            .set_column_bloom_filter_fpp(col.clone(), 0.01)
            .set_column_bloom_filter_max_ndv(col, rows.min(ROW_GROUP_ROWS) as u64);
    }
    b.build()
}

/// The event times of a batch of `table`, unix ns.
fn event_times(table: Table, batch: &RecordBatch) -> Result<Vec<i64>> {
    let col = batch
        .column_by_name(table.time_column())
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| Error::Schema(format!("{} has no time column", table.name())))?;
    Ok(col.values().to_vec())
}

/// Sorts rows by service, then event time.
fn sort_rows(table: Table, batch: &RecordBatch) -> Result<RecordBatch> {
    let key = |name: &str| -> Result<SortColumn> {
        Ok(SortColumn {
            values: batch
                .column_by_name(name)
                .ok_or_else(|| Error::Schema(format!("missing {name}")))?
                .clone(),
            options: None,
        })
    };
    let indices = lexsort_to_indices(
        &[key(table.service_column())?, key(table.time_column())?],
        None,
    )
    .map_err(|e| Error::Schema(e.to_string()))?;
    take_record_batch(batch, &indices).map_err(|e| Error::Schema(e.to_string()))
}

/// Writes one sorted file of `batch` (all of one hour) to `path`, synced.
fn write_file(table: Table, hour: i64, batch: &RecordBatch, path: &Path) -> Result<Segment> {
    let times = event_times(table, batch)?;
    let (min, max) = (
        times.iter().copied().min().unwrap_or(0),
        times.iter().copied().max().unwrap_or(0),
    );
    let max_received = batch
        .column_by_name("received_time_unix_nano")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .and_then(|c| c.values().iter().copied().max())
        .unwrap_or(max);
    let file = File::create(path).map_err(io("create", path))?;
    let props = writer_properties(table, batch.num_rows(), (min, max), max_received);
    let mut writer = ArrowWriter::try_new(file, table.schema(), Some(props))
        .map_err(|e| segment_error(path, e))?;
    writer.write(batch).map_err(|e| segment_error(path, e))?;
    let file = writer.into_inner().map_err(|e| segment_error(path, e))?;
    file.sync_all().map_err(io("sync", path))?;
    let bytes = file.metadata().map_err(io("stat", path))?.len();
    Ok(Segment {
        path: path.to_owned(),
        table,
        hour,
        min_time: min,
        max_time: max,
        max_received,
        rows: batch.num_rows() as u64,
        bytes,
    })
}

/// Writes the rows of `batches` (all of `table`) into `dir`, one sorted file per hour of event
/// time, each synced. The caller syncs and renames `dir`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Segment`] when a file cannot be written.
pub(crate) fn write_table(
    dir: &Path,
    table: Table,
    batches: &[RecordBatch],
) -> Result<Vec<Segment>> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(Vec::new());
    }
    let all = concat_batches(&table.schema(), batches).map_err(|e| Error::Schema(e.to_string()))?;
    let times = event_times(table, &all)?;
    let mut hours: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    for (i, t) in times.iter().enumerate() {
        hours
            .entry(t.div_euclid(HOUR_NANOS))
            .or_default()
            .push(i as u32);
    }
    let mut out = Vec::with_capacity(hours.len());
    for (hour, rows) in hours {
        let part = if rows.len() == all.num_rows() {
            all.clone()
        } else {
            let idx = datafusion::arrow::array::UInt32Array::from(rows);
            take_record_batch(&all, &idx).map_err(|e| Error::Schema(e.to_string()))?
        };
        let sorted = sort_rows(table, &part)?;
        let path = dir.join(format!("{}-h{hour}.parquet", table.name()));
        out.push(write_file(table, hour, &sorted, &path)?);
    }
    Ok(out)
}

/// Reads a segment's footer: its table, hour and time range.
///
/// # Errors
/// [`Error::Segment`] when the file is not a readable loupe segment (truncated, corrupt,
/// foreign).
pub fn inspect(path: &Path) -> Result<Segment> {
    let file = File::open(path).map_err(io("open", path))?;
    let bytes = file.metadata().map_err(io("stat", path))?.len();
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| segment_error(path, e))?;
    let meta = builder.metadata().file_metadata();
    let kv = |key: &str| -> Option<String> {
        meta.key_value_metadata()?
            .iter()
            .find(|k| k.key == key)
            .and_then(|k| k.value.clone())
    };
    let table = kv("loupe.table")
        .and_then(|t| Table::from_name(&t))
        .ok_or_else(|| segment_error(path, "no loupe.table in its metadata"))?;
    let num = |key: &str| -> Result<i64> {
        kv(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| segment_error(path, format!("no {key} in its metadata")))
    };
    let (min_time, max_time) = (num("loupe.min_time")?, num("loupe.max_time")?);
    let max_received = num("loupe.max_received").unwrap_or(max_time);
    if builder.schema().fields() != table.schema().fields() {
        return Err(segment_error(path, "its schema is not the table's"));
    }
    Ok(Segment {
        path: path.to_owned(),
        table,
        hour: min_time.div_euclid(HOUR_NANOS),
        min_time,
        max_time,
        max_received,
        rows: meta.num_rows() as u64,
        bytes,
    })
}

/// Reads every row of a segment.
///
/// # Errors
/// [`Error::Segment`] when the file cannot be decoded.
pub fn read(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(io("open", path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| segment_error(path, e))?;
    reader
        .map(|b| b.map_err(|e| segment_error(path, e)))
        .collect()
}

/// Merges segments of one table and hour into one file in `dir`.
///
/// # Errors
/// As [`read`] and [`write_table`].
pub(crate) fn merge(dir: &Path, table: Table, inputs: &[Segment]) -> Result<Vec<Segment>> {
    let mut batches = Vec::new();
    for s in inputs {
        batches.extend(read(&s.path)?);
    }
    write_table(dir, table, &batches)
}

/// Renames a finished `<name>.tmp` directory to `<name>`, durably.
pub(crate) fn commit_dir(tmp: &Path, final_dir: &Path) -> Result<()> {
    sync_dir(tmp)?;
    std::fs::rename(tmp, final_dir).map_err(io("rename", tmp))?;
    if let Some(parent) = final_dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// The segments under `root`, after finishing interrupted compactions and removing unfinished
/// directories; files that cannot be read are returned apart, with the reason.
pub(crate) struct Loaded {
    pub segments: Vec<Segment>,
    pub corrupt: Vec<(PathBuf, String)>,
    /// Highest `g<seq>`: write-ahead-log files up to it are in segments.
    pub covered_wal: u64,
    /// Highest `c<seq>`.
    pub last_compaction: u64,
}

fn dir_seq(name: &str, prefix: char) -> Option<u64> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// Opens `root` for a store: removes unfinished flush and compaction directories, deletes the
/// files finished compactions replace and empty directories, then [`scan`]s what is left.
pub(crate) fn load(root: &Path) -> Result<Loaded> {
    std::fs::create_dir_all(root).map_err(io("create", root))?;
    let mut loaded = Loaded {
        segments: Vec::new(),
        corrupt: Vec::new(),
        covered_wal: 0,
        last_compaction: 0,
    };
    for dir in dirs(root)? {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".tmp") {
            std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
            continue;
        }
        if let Some(seq) = dir_seq(&name, 'g') {
            loaded.covered_wal = loaded.covered_wal.max(seq);
        }
        if let Some(seq) = dir_seq(&name, 'c') {
            loaded.last_compaction = loaded.last_compaction.max(seq);
            for rel in replaced_by(&dir) {
                let _ = std::fs::remove_file(root.join(&rel));
                // A flush's number stays taken while a compaction names its files, so that a
                // later flush never reuses the name.
                if let Some(seq) = rel.split('/').next().and_then(|d| dir_seq(d, 'g')) {
                    loaded.covered_wal = loaded.covered_wal.max(seq);
                }
            }
        } else if parquet_files(&dir).is_empty() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    (loaded.segments, loaded.corrupt) = scan(root)?;
    Ok(loaded)
}

/// The directories under `root`, sorted.
fn dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io("list", root))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The segment files a compaction directory says it replaces, relative to `segments/`.
fn replaced_by(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("replaces"))
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The Parquet files in `dir`.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .collect()
        })
        .unwrap_or_default()
}

/// Sorts segments oldest hour first, then by table and path: the order recovery and replay
/// read them in.
pub(crate) fn sort(segments: &mut [Segment]) {
    segments.sort_by(|a, b| (a.hour, a.table, &a.path).cmp(&(b.hour, b.table, &b.path)));
}

/// The segments under `root` (a data directory's `segments/`) without changing anything: for
/// readers beside a running server. Unfinished flushes are skipped, as are files a finished
/// compaction replaces; unreadable files are returned apart with the reason.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be listed.
pub fn scan(root: &Path) -> Result<(Vec<Segment>, Vec<Unreadable>)> {
    let dirs: Vec<PathBuf> = dirs(root)?
        .into_iter()
        .filter(|d| !d.to_string_lossy().ends_with(".tmp"))
        .collect();
    let replaced: std::collections::HashSet<PathBuf> = dirs
        .iter()
        .flat_map(|d| replaced_by(d))
        .map(|rel| root.join(rel))
        .collect();
    let (mut segments, mut corrupt) = (Vec::new(), Vec::new());
    for path in dirs.iter().flat_map(|d| parquet_files(d)) {
        if replaced.contains(&path) {
            continue;
        }
        match inspect(&path) {
            Ok(s) => segments.push(s),
            Err(e) => corrupt.push((path, e.to_string())),
        }
    }
    sort(&mut segments);
    Ok((segments, corrupt))
}

/// The path of `path` relative to `root`, for a `replaces` file.
pub(crate) fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}
