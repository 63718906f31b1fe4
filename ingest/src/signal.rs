//! What differs between the three OTLP signals, in one place: the request and response types,
//! how a request decodes into model items, and how partial success is reported. Everything else
//! in the receivers is written once, generic over [`OtlpExport`].

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
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::request::{ExportRequest, Inner};
use crate::sink::Signal;

/// Items decoded from a request: the accepted batch (`None` when nothing was accepted), the
/// number rejected and why the first one was.
pub(crate) struct DecodedBatch {
    pub batch: Option<TelemetryBatch>,
    pub rejected: u64,
    pub first_error: Option<loupe_model::Error>,
}

fn decoded<T>(d: Decoded<T>, wrap: impl FnOnce(Vec<T>) -> TelemetryBatch) -> DecodedBatch {
    DecodedBatch {
        batch: (!d.items.is_empty()).then(|| wrap(d.items)),
        rejected: d.rejected,
        first_error: d.first_error,
    }
}

/// An `Export*ServiceRequest` of one signal.
pub(crate) trait OtlpExport: Message + Default + DeserializeOwned + Send + 'static {
    /// The matching `Export*ServiceResponse`.
    type Response: Message + Serialize + Default + Send + 'static;
    /// The signal.
    const SIGNAL: Signal;
    /// Decodes and validates the items.
    fn decode_items(&self) -> DecodedBatch;
    /// The request as the signal-independent [`ExportRequest`].
    fn into_request(self) -> ExportRequest;
    /// A response reporting `rejected` items with `message` (OTLP "Partial Success").
    fn partial_success(rejected: i64, message: String) -> Self::Response;
    /// The number of items a response says were rejected.
    fn rejected(response: &Self::Response) -> i64;
}

impl OtlpExport for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const SIGNAL: Signal = Signal::Traces;
    fn decode_items(&self) -> DecodedBatch {
        decoded(decode_traces(self), TelemetryBatch::Traces)
    }
    fn into_request(self) -> ExportRequest {
        ExportRequest(Inner::Traces(self))
    }
    fn partial_success(rejected_spans: i64, error_message: String) -> Self::Response {
        let partial = ExportTracePartialSuccess {
            rejected_spans,
            error_message,
        };
        ExportTraceServiceResponse {
            partial_success: Some(partial),
        }
    }
    fn rejected(response: &Self::Response) -> i64 {
        response
            .partial_success
            .as_ref()
            .map_or(0, |p| p.rejected_spans)
    }
}

impl OtlpExport for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const SIGNAL: Signal = Signal::Metrics;
    fn decode_items(&self) -> DecodedBatch {
        decoded(decode_metrics(self), TelemetryBatch::Metrics)
    }
    fn into_request(self) -> ExportRequest {
        ExportRequest(Inner::Metrics(self))
    }
    fn partial_success(rejected_data_points: i64, error_message: String) -> Self::Response {
        let partial = ExportMetricsPartialSuccess {
            rejected_data_points,
            error_message,
        };
        ExportMetricsServiceResponse {
            partial_success: Some(partial),
        }
    }
    fn rejected(response: &Self::Response) -> i64 {
        response
            .partial_success
            .as_ref()
            .map_or(0, |p| p.rejected_data_points)
    }
}

impl OtlpExport for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    const SIGNAL: Signal = Signal::Logs;
    fn decode_items(&self) -> DecodedBatch {
        decoded(decode_logs(self), TelemetryBatch::Logs)
    }
    fn into_request(self) -> ExportRequest {
        ExportRequest(Inner::Logs(self))
    }
    fn partial_success(rejected_log_records: i64, error_message: String) -> Self::Response {
        let partial = ExportLogsPartialSuccess {
            rejected_log_records,
            error_message,
        };
        ExportLogsServiceResponse {
            partial_success: Some(partial),
        }
    }
    fn rejected(response: &Self::Response) -> i64 {
        response
            .partial_success
            .as_ref()
            .map_or(0, |p| p.rejected_log_records)
    }
}
