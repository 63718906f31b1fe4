//! The protocol-independent core of the OTLP receivers: decode a request, validate its items,
//! hand the accepted ones to the sink, and build the `Export*ServiceResponse` with
//! `partial_success` when items were rejected (OTLP specification, "Partial Success").

use std::sync::Arc;

use loupe_model::{decode_logs, decode_metrics, decode_traces, Decoded, TelemetryBatch};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::error::{Error, Result};
use crate::sink::{Accepted, Signal, TelemetrySink};

/// Receiver limits, shared by gRPC and HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted on the wire, bytes (default 16 MiB).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, bytes (default 64 MiB).
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
        }
    }
}

/// Decodes requests and feeds a sink; cheap to clone.
pub struct Receiver<S: ?Sized> {
    sink: Arc<S>,
    limits: Limits,
}

impl<S: ?Sized> Clone for Receiver<S> {
    fn clone(&self) -> Self {
        Self {
            sink: self.sink.clone(),
            limits: self.limits,
        }
    }
}

fn partial<T>(decoded: &Decoded<T>) -> Option<(i64, String)> {
    (decoded.rejected > 0).then(|| {
        let reason = decoded
            .first_error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        (
            decoded.rejected as i64,
            format!("{} item(s) rejected; first: {reason}", decoded.rejected),
        )
    })
}

impl<S: TelemetrySink + ?Sized> Receiver<S> {
    /// A receiver feeding `sink`.
    pub fn new(sink: Arc<S>, limits: Limits) -> Self {
        Self { sink, limits }
    }

    /// The configured limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The request's protobuf encoding, when the sink keeps it.
    fn encoded<M: Message>(&self, request: &M) -> Option<Vec<u8>> {
        self.sink.wants_protobuf().then(|| request.encode_to_vec())
    }

    async fn deliver(
        &self,
        signal: Signal,
        batch: TelemetryBatch,
        protobuf: Option<Vec<u8>>,
    ) -> Result<()> {
        let sink = self.sink.clone();
        // The sink writes and updates the graph: CPU and disk work, off the async threads.
        tokio::task::spawn_blocking(move || {
            sink.consume(Accepted {
                signal,
                batch,
                protobuf,
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("sink task failed: {e}")))?
    }

    /// Takes a trace export.
    ///
    /// # Errors
    /// The sink's error; invalid spans are not errors but `partial_success`.
    pub async fn export_traces(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse> {
        let decoded = decode_traces(&request);
        let partial = partial(&decoded);
        if !decoded.items.is_empty() {
            self.deliver(
                Signal::Traces,
                TelemetryBatch::Traces(decoded.items),
                self.encoded(&request),
            )
            .await?;
        }
        Ok(ExportTraceServiceResponse {
            partial_success: partial.map(|(rejected_spans, error_message)| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        })
    }

    /// Takes a metrics export.
    ///
    /// # Errors
    /// The sink's error; invalid points are not errors but `partial_success`.
    pub async fn export_metrics(
        &self,
        request: ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse> {
        let decoded = decode_metrics(&request);
        let partial = partial(&decoded);
        if !decoded.items.is_empty() {
            self.deliver(
                Signal::Metrics,
                TelemetryBatch::Metrics(decoded.items),
                self.encoded(&request),
            )
            .await?;
        }
        Ok(ExportMetricsServiceResponse {
            partial_success: partial.map(|(rejected_data_points, error_message)| {
                ExportMetricsPartialSuccess {
                    rejected_data_points,
                    error_message,
                }
            }),
        })
    }

    /// Takes a logs export.
    ///
    /// # Errors
    /// The sink's error; invalid records are not errors but `partial_success`.
    pub async fn export_logs(
        &self,
        request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse> {
        let decoded = decode_logs(&request);
        let partial = partial(&decoded);
        if !decoded.items.is_empty() {
            self.deliver(
                Signal::Logs,
                TelemetryBatch::Logs(decoded.items),
                self.encoded(&request),
            )
            .await?;
        }
        Ok(ExportLogsServiceResponse {
            partial_success: partial.map(|(rejected_log_records, error_message)| {
                ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                }
            }),
        })
    }
}

/// Decodes a stored OTLP protobuf request (as written from [`Accepted::protobuf`]) back into
/// model items, with the same validation as on the wire.
///
/// # Errors
/// [`Error::Protobuf`] when the bytes are not a request of that signal.
pub fn decode_protobuf(signal: Signal, bytes: &[u8]) -> Result<TelemetryBatch> {
    Ok(match signal {
        Signal::Traces => {
            TelemetryBatch::Traces(decode_traces(&ExportTraceServiceRequest::decode(bytes)?).items)
        }
        Signal::Metrics => TelemetryBatch::Metrics(
            decode_metrics(&ExportMetricsServiceRequest::decode(bytes)?).items,
        ),
        Signal::Logs => {
            TelemetryBatch::Logs(decode_logs(&ExportLogsServiceRequest::decode(bytes)?).items)
        }
    })
}
