//! OTLP/gRPC receiver: the `TraceService`, `MetricsService` and `LogsService` `Export` methods
//! (OTLP specification, "OTLP/gRPC"), gzip accepted, message size bounded.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::admission::Ticket;
use crate::metrics::Transport;
use crate::receiver::Receiver;
use crate::signal::OtlpExport;
use crate::sink::TelemetrySink;

struct Grpc<S: ?Sized>(Receiver<S>);

impl<S: TelemetrySink + ?Sized> Grpc<S> {
    async fn serve<R: OtlpExport>(
        &self,
        request: Request<R>,
    ) -> Result<Response<R::Response>, Status> {
        if let Some(ticket) = request.extensions().get::<Arc<Ticket>>().cloned() {
            // Hold the decoded size too (gRPC decompresses before the handler runs).
            let decoded = request.get_ref().encoded_len();
            let held = ticket.bytes();
            if decoded > held {
                ticket
                    .grow(decoded - held, Transport::grpc)
                    .await
                    .map_err(|e| e.grpc_status())?;
            }
        }
        let response = self.0.export(request.into_inner(), Transport::grpc).await;
        response.map(Response::new).map_err(|e| e.grpc_status())
    }
}

#[tonic::async_trait]
impl<S: TelemetrySink + ?Sized> TraceService for Grpc<S> {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.serve(request).await
    }
}

#[tonic::async_trait]
impl<S: TelemetrySink + ?Sized> MetricsService for Grpc<S> {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.serve(request).await
    }
}

#[tonic::async_trait]
impl<S: TelemetrySink + ?Sized> LogsService for Grpc<S> {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.serve(request).await
    }
}

/// The three OTLP gRPC services as an axum router, to serve with `axum::serve` (HTTP/2
/// cleartext).
pub fn grpc_router<S: TelemetrySink + ?Sized>(receiver: Receiver<S>) -> axum::Router {
    let limit = receiver.limits().max_decompressed_bytes;
    let traces = TraceServiceServer::new(Grpc(receiver.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let metrics = MetricsServiceServer::new(Grpc(receiver.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(Grpc(receiver))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    tonic::service::Routes::new(traces)
        .add_service(metrics)
        .add_service(logs)
        .into_axum_router()
}
