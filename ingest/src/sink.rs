//! The consumer side of the receivers: where decoded telemetry goes. The binary implements it
//! (store, then graph); the receivers only decode, validate and answer.

use loupe_model::TelemetryBatch;

use crate::error::Result;
use crate::request::ExportRequest;

/// Which OTLP signal a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `/v1/traces`, `TraceService/Export`.
    Traces,
    /// `/v1/metrics`, `MetricsService/Export`.
    Metrics,
    /// `/v1/logs`, `LogsService/Export`.
    Logs,
}

impl Signal {
    /// One-byte tag used in durable logs.
    pub fn tag(self) -> u8 {
        match self {
            Self::Traces => 1,
            Self::Metrics => 2,
            Self::Logs => 3,
        }
    }

    /// The signal of a tag written by [`Signal::tag`].
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Self::Traces),
            2 => Some(Self::Metrics),
            3 => Some(Self::Logs),
            _ => None,
        }
    }
}

/// One accepted request: its decoded items and, for durable storage, the OTLP protobuf
/// encoding of the items that were accepted.
#[derive(Debug)]
pub struct Accepted {
    /// The signal.
    pub signal: Signal,
    /// The decoded items (rejected ones removed).
    pub batch: TelemetryBatch,
    /// The original request in OTLP protobuf encoding, rejected items included (they are
    /// rejected again, identically, when decoded again); `None` unless the sink
    /// [wants it](TelemetrySink::wants_protobuf).
    pub protobuf: Option<Vec<u8>>,
    /// The original request, decoded (for columnar storage); present with `protobuf`.
    pub request: Option<ExportRequest>,
}

/// Takes accepted telemetry. Called from a blocking thread, never from an async task.
pub trait TelemetrySink: Send + Sync + 'static {
    /// Consumes one request's items. Returning `Ok` acknowledges them to the client.
    ///
    /// # Errors
    /// [`crate::Error::Overloaded`] when the client should retry later, else
    /// [`crate::Error::Internal`].
    fn consume(&self, accepted: Accepted) -> Result<()>;

    /// Whether the sink stores requests in their protobuf encoding (a write-ahead log does);
    /// when not, the receivers skip encoding them.
    fn wants_protobuf(&self) -> bool {
        true
    }
}
