//! The store's self-telemetry: write-ahead log appends, their bytes and errors, fsync latency,
//! segments flushed and compacted, flush duration. Kept by the [`crate::Store`] from its start
//! and added to a `/metrics` registry with [`StoreMetrics::register`].

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The store's metrics; cheap to clone (clones count into the same series).
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// Records appended to the write-ahead log.
    pub wal_appends: Counter,
    /// Bytes appended to the write-ahead log (frames included).
    pub wal_bytes: Counter,
    /// Appends that failed (their requests were refused, not acknowledged).
    pub wal_errors: Counter,
    /// `fdatasync` after an append, seconds.
    pub wal_sync_seconds: Histogram,
    /// Segment files written by flushes.
    pub segments_flushed: Counter,
    /// Segment files merged away by compaction.
    pub segments_compacted: Counter,
    /// One flush of the hot data, seconds.
    pub flush_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            wal_appends: Counter::default(),
            wal_bytes: Counter::default(),
            wal_errors: Counter::default(),
            // 50 µs to ~1.6 s.
            wal_sync_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
            segments_flushed: Counter::default(),
            segments_compacted: Counter::default(),
            // 10 ms to ~82 s.
            flush_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
        }
    }
}

impl StoreMetrics {
    /// Adds these metrics to `registry` as `loupe_wal_*` and `loupe_store_*`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "loupe_wal_appends",
            "Records appended to the write-ahead log",
            self.wal_appends.clone(),
        );
        registry.register_with_unit(
            "loupe_wal_appended",
            "Bytes appended to the write-ahead log",
            Unit::Bytes,
            self.wal_bytes.clone(),
        );
        registry.register(
            "loupe_wal_append_errors",
            "Appends to the write-ahead log that failed (not acknowledged)",
            self.wal_errors.clone(),
        );
        registry.register_with_unit(
            "loupe_wal_fsync_duration",
            "fdatasync of the write-ahead log after an append",
            Unit::Seconds,
            self.wal_sync_seconds.clone(),
        );
        registry.register(
            "loupe_store_segments_flushed",
            "Segment files written by flushes of the hot data",
            self.segments_flushed.clone(),
        );
        registry.register(
            "loupe_store_segments_compacted",
            "Segment files merged away by compaction",
            self.segments_compacted.clone(),
        );
        registry.register_with_unit(
            "loupe_store_flush_duration",
            "One flush of the hot data to segments",
            Unit::Seconds,
            self.flush_seconds.clone(),
        );
    }
}
