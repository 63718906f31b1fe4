//! Telemetry intake: the OTLP/gRPC and OTLP/HTTP receivers, their limits and error mapping, the
//! sink they feed, and importers that turn datasets (Nezha) into OTLP requests.

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
pub use receiver::{decode_protobuf, Limits, Receiver};
pub use request::{ExportRequest, OtlpGrpcClient};
pub use sink::{Accepted, Signal, TelemetrySink};
