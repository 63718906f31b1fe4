//! Telemetry intake: the OTLP/gRPC and OTLP/HTTP receivers, their admission control, limits,
//! metrics and error mapping, the
//! sink they feed, change intake (`POST /api/v1/changes`, Argo CD and GitHub webhooks), and
//! importers that turn datasets (Nezha) into OTLP requests.

pub mod admission;
pub mod changes;
mod error;
pub mod fuzzing;
mod grpc;
mod guard;
mod http;
pub mod metrics;
pub mod nezha;
mod receiver;
mod request;
mod signal;
mod sink;

pub use admission::{Admission, AdmissionConfig};
pub use error::{Error, Result, RETRY_AFTER};
pub use grpc::grpc_router;
pub use guard::{guard, BodyLimits};
pub use http::http_router;
pub use metrics::{ReceiverMetrics, Transport};
pub use receiver::{Limits, Receiver};
pub use request::{ExportRequest, OtlpGrpcClient, Proto};
pub use sink::{Accepted, Signal, TelemetrySink};
