//! The telemetry data model shared by every loupe crate: resources, spans, log records, metric
//! data points, their ids, the semantic-convention keys loupe reads, and the conversion from OTLP
//! protobuf messages into these types (with per-item validation).
//!
//! The types follow the OpenTelemetry data model (`Resource`, `Span`, `LogRecord`, `DataPoint`)
//! but own their data and drop wire details, so that the graph and the analysis never see prost or
//! tonic types (see ARCHITECTURE.md).

pub mod change;
mod error;
mod ids;
mod otlp;
pub mod semconv;
mod telemetry;
pub mod time;

pub use change::{ChangeEvent, ChangeKind, ObjectRef};
pub use error::{Error, Result};
pub use ids::{SpanId, TraceId};
pub use otlp::{
    check_log_record, check_number_point, check_span, decode_logs, decode_metrics, decode_traces,
    Decoded,
};
pub use telemetry::{
    AttributeValue, Attributes, DataPoint, LogRecord, MetricKind, PointValue, Resource,
    ResourceLogs, ResourceMetrics, ResourceSpans, Span, SpanKind, StatusCode, TelemetryBatch,
};
