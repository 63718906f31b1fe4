//! An OTLP export request of any signal, opaque outside this crate, and a gRPC client that
//! sends such requests to any OTLP endpoint (used by `loupe replay`).

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::receiver::Receiver;
use crate::signal::OtlpExport;
use crate::sink::{Signal, TelemetrySink};

/// One OTLP export request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest(pub(crate) Inner);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inner {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl ExportRequest {
    /// The signal carried.
    pub fn signal(&self) -> Signal {
        match &self.0 {
            Inner::Traces(_) => Signal::Traces,
            Inner::Metrics(_) => Signal::Metrics,
            Inner::Logs(_) => Signal::Logs,
        }
    }

    /// Number of spans, data points or log records in the request.
    pub fn item_count(&self) -> usize {
        match &self.0 {
            Inner::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            Inner::Metrics(r) => r
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| {
                    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                    match &m.data {
                        Some(Data::Gauge(g)) => g.data_points.len(),
                        Some(Data::Sum(s)) => s.data_points.len(),
                        Some(Data::Histogram(h)) => h.data_points.len(),
                        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                        Some(Data::Summary(s)) => s.data_points.len(),
                        None => 0,
                    }
                })
                .sum(),
            Inner::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
        }
    }

    /// Feeds the request to a receiver in process, through the same decode path as the wire.
    ///
    /// # Errors
    /// The receiver's sink error.
    pub async fn export_to<S: TelemetrySink + ?Sized>(self, receiver: &Receiver<S>) -> Result<u64> {
        async fn one<S: TelemetrySink + ?Sized, R: OtlpExport>(
            receiver: &Receiver<S>,
            request: R,
        ) -> Result<u64> {
            Ok(R::rejected(&receiver.export(request).await?) as u64)
        }
        match self.0 {
            Inner::Traces(r) => one(receiver, r).await,
            Inner::Metrics(r) => one(receiver, r).await,
            Inner::Logs(r) => one(receiver, r).await,
        }
    }
}

/// An OTLP/gRPC exporter client for the three signals, gzip-compressed.
pub struct OtlpGrpcClient {
    traces: TraceServiceClient<Channel>,
    metrics: MetricsServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
}

impl OtlpGrpcClient {
    /// Connects to `endpoint`, e.g. `http://127.0.0.1:4317`.
    ///
    /// # Errors
    /// [`Error::Client`] when the endpoint is invalid or unreachable.
    pub async fn connect(endpoint: &str) -> Result<Self> {
        let channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| Error::Client(format!("invalid endpoint {endpoint:?}: {e}")))?
            .connect()
            .await
            .map_err(|e| Error::Client(format!("cannot connect to {endpoint}: {e}")))?;
        let limit = 256 << 20;
        Ok(Self {
            traces: TraceServiceClient::new(channel.clone())
                .send_compressed(CompressionEncoding::Gzip)
                .max_encoding_message_size(limit),
            metrics: MetricsServiceClient::new(channel.clone())
                .send_compressed(CompressionEncoding::Gzip)
                .max_encoding_message_size(limit),
            logs: LogsServiceClient::new(channel)
                .send_compressed(CompressionEncoding::Gzip)
                .max_encoding_message_size(limit),
        })
    }

    /// Sends one request; returns the number of items the server rejected.
    ///
    /// # Errors
    /// [`Error::Client`] with the server's status when the export failed.
    pub async fn send(&mut self, request: ExportRequest) -> Result<u64> {
        let status = |s: tonic::Status| Error::Client(format!("export failed: {s}"));
        let rejected = match request.0 {
            Inner::Traces(r) => {
                let response = self.traces.export(r).await.map_err(status)?;
                ExportTraceServiceRequest::rejected(response.get_ref())
            }
            Inner::Metrics(r) => {
                let response = self.metrics.export(r).await.map_err(status)?;
                ExportMetricsServiceRequest::rejected(response.get_ref())
            }
            Inner::Logs(r) => {
                let response = self.logs.export(r).await.map_err(status)?;
                ExportLogsServiceRequest::rejected(response.get_ref())
            }
        };
        Ok(rejected as u64)
    }
}
