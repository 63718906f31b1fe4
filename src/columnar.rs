//! OTLP requests to and from the store's columnar form: the bridge between the receivers'
//! `ExportRequest` (loupe-ingest, which does not link DataFusion) and the store's Arrow record
//! batches (loupe-store's `convert`).

use loupe_ingest::{ExportRequest, Proto};
use loupe_store::{convert, RecordBatch, Table};

/// An OTLP request as rows of its table.
pub trait Columnar {
    /// The valid items as a record batch of their table, received at `received` (unix ns);
    /// `None` when none is valid.
    fn to_batch(&self, received: u64) -> Option<(Table, RecordBatch)>;
}

impl Columnar for ExportRequest {
    fn to_batch(&self, received: u64) -> Option<(Table, RecordBatch)> {
        match self.proto() {
            Proto::Traces(r) => convert::traces_to_batch(r, received).map(|b| (Table::Spans, b)),
            Proto::Metrics(r) => {
                convert::metrics_to_batch(r, received).map(|b| (Table::MetricPoints, b))
            }
            Proto::Logs(r) => convert::logs_to_batch(r, received).map(|b| (Table::Logs, b)),
        }
    }
}

/// The requests stored in a record batch of `table` (one per receive time, oldest first), with
/// their receive times; `changes` batches give none.
///
/// # Errors
/// The store's error when the batch does not have the table's schema.
pub fn requests_from_batch(
    table: Table,
    batch: &RecordBatch,
) -> loupe_store::Result<Vec<(u64, ExportRequest)>> {
    fn wrap<R: Into<ExportRequest>>(v: Vec<(u64, R)>) -> Vec<(u64, ExportRequest)> {
        v.into_iter().map(|(t, r)| (t, r.into())).collect()
    }
    Ok(match table {
        Table::Spans => wrap(convert::traces_from_batch(batch)?),
        Table::Logs => wrap(convert::logs_from_batch(batch)?),
        Table::MetricPoints => wrap(convert::metrics_from_batch(batch)?),
        Table::Changes => Vec::new(),
    })
}
