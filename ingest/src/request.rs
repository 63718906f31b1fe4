//! An OTLP export request of any signal, opaque outside this crate, and a gRPC client that
//! sends such requests to any OTLP endpoint (used by `loupe replay` and `loupe simulate stream`).

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use loupe_model::TelemetryBatch;

use crate::error::{Error, Result};
use crate::metrics::Transport;
use crate::receiver::Receiver;
use crate::signal::OtlpExport;
use crate::sink::{Signal, TelemetrySink};

/// The OTLP message of an [`ExportRequest`], borrowed.
#[derive(Debug, Clone, Copy)]
pub enum Proto<'a> {
    /// `ExportTraceServiceRequest`.
    Traces(&'a ExportTraceServiceRequest),
    /// `ExportMetricsServiceRequest`.
    Metrics(&'a ExportMetricsServiceRequest),
    /// `ExportLogsServiceRequest`.
    Logs(&'a ExportLogsServiceRequest),
}

/// One OTLP export request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest(pub(crate) Inner);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inner {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl From<ExportTraceServiceRequest> for ExportRequest {
    fn from(r: ExportTraceServiceRequest) -> Self {
        Self(Inner::Traces(r))
    }
}

impl From<ExportMetricsServiceRequest> for ExportRequest {
    fn from(r: ExportMetricsServiceRequest) -> Self {
        Self(Inner::Metrics(r))
    }
}

impl From<ExportLogsServiceRequest> for ExportRequest {
    fn from(r: ExportLogsServiceRequest) -> Self {
        Self(Inner::Logs(r))
    }
}

impl ExportRequest {
    /// Decodes a request of `signal` from its OTLP protobuf encoding (as a write-ahead log
    /// holds it).
    ///
    /// # Errors
    /// [`Error::Protobuf`] when the bytes are not a request of that signal.
    pub fn decode(signal: Signal, bytes: &[u8]) -> Result<Self> {
        use prost::Message;
        Ok(match signal {
            Signal::Traces => ExportTraceServiceRequest::decode(bytes)?.into(),
            Signal::Metrics => ExportMetricsServiceRequest::decode(bytes)?.into(),
            Signal::Logs => ExportLogsServiceRequest::decode(bytes)?.into(),
        })
    }

    /// The request's OTLP protobuf encoding (the body of an OTLP/HTTP request, what
    /// [`ExportRequest::decode`] reads back).
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message;
        match &self.0 {
            Inner::Traces(r) => r.encode_to_vec(),
            Inner::Metrics(r) => r.encode_to_vec(),
            Inner::Logs(r) => r.encode_to_vec(),
        }
    }

    /// The number of items an OTLP/HTTP protobuf response to this request says were rejected
    /// (OTLP "Partial Success"); 0 for an empty body, which is full success.
    ///
    /// # Errors
    /// [`Error::Protobuf`] when the body is not the signal's `Export*ServiceResponse`.
    pub fn rejected_in(&self, response: &[u8]) -> Result<u64> {
        fn one<R: OtlpExport>(bytes: &[u8]) -> Result<u64> {
            use prost::Message;
            Ok(R::rejected(&R::Response::decode(bytes)?).max(0) as u64)
        }
        match &self.0 {
            Inner::Traces(_) => one::<ExportTraceServiceRequest>(response),
            Inner::Metrics(_) => one::<ExportMetricsServiceRequest>(response),
            Inner::Logs(_) => one::<ExportLogsServiceRequest>(response),
        }
    }

    /// The valid items as model types, as the receivers decode them; `None` when none is valid.
    pub fn items(&self) -> Option<TelemetryBatch> {
        match &self.0 {
            Inner::Traces(r) => r.decode_items().batch,
            Inner::Metrics(r) => r.decode_items().batch,
            Inner::Logs(r) => r.decode_items().batch,
        }
    }

    /// The protobuf message inside, for conversions that live outside this crate (the
    /// columnar form of the store, `loupe::columnar`).
    pub fn proto(&self) -> Proto<'_> {
        match &self.0 {
            Inner::Traces(r) => Proto::Traces(r),
            Inner::Metrics(r) => Proto::Metrics(r),
            Inner::Logs(r) => Proto::Logs(r),
        }
    }

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

    /// The earliest event time the request carries, unix nanoseconds: spans' start times, log
    /// records' times (their observed times when unset), data points' times; `None` when it
    /// carries no item with a time. Replays order requests of different signals by it.
    pub fn earliest_time_unix_nano(&self) -> Option<u64> {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let nonzero = |t: u64| (t > 0).then_some(t);
        match &self.0 {
            Inner::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .filter_map(|s| nonzero(s.start_time_unix_nano))
                .min(),
            Inner::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
                .filter_map(|l| nonzero(l.time_unix_nano).or(nonzero(l.observed_time_unix_nano)))
                .min(),
            Inner::Metrics(r) => r
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .filter_map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.iter().map(|p| p.time_unix_nano).min(),
                    Some(Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).min(),
                    Some(Data::Histogram(h)) => {
                        h.data_points.iter().map(|p| p.time_unix_nano).min()
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        h.data_points.iter().map(|p| p.time_unix_nano).min()
                    }
                    Some(Data::Summary(s)) => s.data_points.iter().map(|p| p.time_unix_nano).min(),
                    None => None,
                })
                .filter_map(nonzero)
                .min(),
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
            Ok(R::rejected(&receiver.export(request, Transport::in_process).await?) as u64)
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
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
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
            authorization: None,
        })
    }

    /// The same client sending `Authorization: Bearer <token>` with every request (a server
    /// with tokens needs one of the `ingest` scope); `None` sends none.
    ///
    /// # Errors
    /// [`Error::Client`] when the token cannot be a header value.
    pub fn with_bearer_token(mut self, token: Option<String>) -> Result<Self> {
        self.authorization = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| Error::Client("the token is not a valid header value".into()))?,
            ),
            None => None,
        };
        Ok(self)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// Sends one request; returns the number of items the server rejected.
    ///
    /// # Errors
    /// [`Error::Client`] with the server's status when the export failed.
    pub async fn send(&mut self, request: ExportRequest) -> Result<u64> {
        let status = |s: tonic::Status| Error::Client(format!("export failed: {s}"));
        let rejected = match request.0 {
            Inner::Traces(r) => {
                let request = self.request(r);
                let response = self.traces.export(request).await.map_err(status)?;
                ExportTraceServiceRequest::rejected(response.get_ref())
            }
            Inner::Metrics(r) => {
                let request = self.request(r);
                let response = self.metrics.export(request).await.map_err(status)?;
                ExportMetricsServiceRequest::rejected(response.get_ref())
            }
            Inner::Logs(r) => {
                let request = self.request(r);
                let response = self.logs.export(request).await.map_err(status)?;
                ExportLogsServiceRequest::rejected(response.get_ref())
            }
        };
        Ok(rejected as u64)
    }
}
