//! Durable columnar storage of accepted telemetry (ARCHITECTURE.md, "store").
//!
//! - [`wal`]: every accepted request is appended (length, CRC-32, tag, payload) and synced
//!   before the receiver acknowledges it; a torn or corrupt tail is cut on open, never loaded.
//! - [`schema`]: the Arrow schemas of `spans`, `logs`, `metric_points` and `changes`, in
//!   OpenTelemetry terms; [`convert`]: OTLP requests ⇄ record batches.
//! - [`Store`]: hot record batches in memory, flushed to time-partitioned Parquet segments
//!   ([`segment`]), compacted and expired in the background; the log files are deleted once
//!   their segments are durable.
//! - [`QueryEngine`]: DataFusion SQL over hot and cold data as one set of tables.

pub mod convert;
mod error;
pub mod functions;
pub mod metrics;
mod query;
pub mod schema;
pub mod segment;
mod store;
pub mod wal;

pub use error::{Error, QueryError, Result};
pub use metrics::StoreMetrics;
pub use query::{time_bounds, QueryEngine, QueryLimits, QueryOutput};
pub use schema::Table;
pub use segment::Segment;
pub use store::{FlushReport, MaintenanceReport, Opened, Store, StoreConfig, StoreStats};
pub use wal::{SyncPolicy, Wal, WalContents, WalRecord};

/// DataFusion as the store links it (its Arrow, Parquet and SQL types), for callers that
/// register tables or read batches.
pub use datafusion;
/// An Arrow record batch.
pub use datafusion::arrow::array::RecordBatch;
