//! Telemetry intake: the OTLP/gRPC and OTLP/HTTP receivers, their limits and error mapping, the
//! sink they feed, change intake (`POST /api/v1/changes`, Argo CD and GitHub webhooks), and
//! importers that turn datasets (Nezha) into OTLP requests.

pub mod changes;
mod error;
mod grpc;
mod http;
pub mod nezha;
mod receiver;
mod request;
mod signal;
mod sink;

pub use error::{Error, Result};
pub use grpc::grpc_router;
pub use http::http_router;
pub use receiver::{Limits, Receiver};
pub use request::{ExportRequest, OtlpGrpcClient};
pub use sink::{Accepted, Signal, TelemetrySink};
