//! Durable storage of accepted telemetry. This first slice is the write-ahead log: every
//! accepted request is appended (length, CRC-32, tag, payload) and synced before the receiver
//! acknowledges it; on start the log is read back, and a torn or corrupt tail (a crash in the
//! middle of a write) is cut off, never loaded. Arrow batches, Parquet segments and DataFusion
//! come with the columnar store (see ARCHITECTURE.md).

mod error;
mod wal;

pub use error::{Error, Result};
pub use wal::{Wal, WalRecord};
