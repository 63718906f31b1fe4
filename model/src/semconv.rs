//! The OpenTelemetry semantic-convention keys loupe reads, re-exported from
//! `opentelemetry-semantic-conventions` so no crate retypes a literal.

pub use opentelemetry_semantic_conventions::attribute::{
    CLOUD_PLATFORM, CLOUD_PROVIDER, DB_COLLECTION_NAME, DB_NAMESPACE, DB_SYSTEM_NAME,
    DEPLOYMENT_ENVIRONMENT_NAME, EXCEPTION_MESSAGE, EXCEPTION_TYPE, FAAS_NAME, HOST_NAME,
    K8S_CRONJOB_NAME, K8S_DAEMONSET_NAME, K8S_DEPLOYMENT_NAME, K8S_JOB_NAME, K8S_NAMESPACE_NAME,
    K8S_NODE_NAME, K8S_POD_NAME, K8S_POD_UID, K8S_REPLICASET_NAME, K8S_STATEFULSET_NAME,
    MESSAGING_DESTINATION_NAME, MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM, SERVER_ADDRESS,
    SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_PEER_NAME, SERVICE_VERSION,
};
pub use opentelemetry_semantic_conventions::metric::{
    DB_CLIENT_OPERATION_DURATION, FAAS_ERRORS, FAAS_INVOKE_DURATION, K8S_POD_CPU_USAGE,
    K8S_POD_MEMORY_USAGE, K8S_POD_NETWORK_IO, MESSAGING_CLIENT_OPERATION_DURATION,
};

/// Pod CPU usage as a share of its limit, 0..1 (OpenTelemetry Collector `kubeletstats`
/// receiver; not yet in the semantic conventions).
pub const K8S_POD_CPU_LIMIT_UTILIZATION: &str = "k8s.pod.cpu_limit_utilization";

/// Pod memory usage as a share of its limit, 0..1 (OpenTelemetry Collector `kubeletstats`
/// receiver; not yet in the semantic conventions).
pub const K8S_POD_MEMORY_LIMIT_UTILIZATION: &str = "k8s.pod.memory_limit_utilization";

/// `service.name` value the OpenTelemetry SDKs use when none is configured
/// (resource semantic conventions, "service").
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Lowest `SeverityNumber` of the ERROR range (OpenTelemetry logs data model, "Field:
/// SeverityNumber": 17-20 are ERROR, 21-24 FATAL).
pub const SEVERITY_NUMBER_ERROR: i32 = 17;

/// The pre-1.30 name of `service.peer.name` (the logical name of the service a client span
/// calls), still sent by most instrumentations.
pub const PEER_SERVICE: &str = "peer.service";

/// The RPC system of a client or server call (`aws-api` for a cloud SDK's calls), by its
/// pre-1.37 name, which the AWS SDK instrumentations still send; `rpc.system.name` since.
pub const RPC_SYSTEM: &str = "rpc.system";

/// The RPC system's name since semantic conventions 1.37.
pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";

/// The service an RPC calls (`DynamoDB`, `SQS` for the AWS SDK's calls), by its pre-1.37 name;
/// folded into `rpc.method` since.
pub const RPC_SERVICE: &str = "rpc.service";

/// `rpc.system` of a call an AWS SDK makes to a cloud API (AWS SDK instrumentation
/// conventions).
pub const RPC_SYSTEM_AWS_API: &str = "aws-api";
