//! Owned telemetry types: `Resource`, `Span`, `LogRecord`, `DataPoint`, grouped per resource as
//! OTLP groups them.

use std::sync::Arc;

use crate::ids::{SpanId, TraceId};
use crate::semconv;

/// An attribute value (OTLP `AnyValue`), nested values flattened to their JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// `string_value`.
    String(String),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(Vec<u8>),
    /// `array_value` or `kvlist_value`, kept as text.
    Text(String),
}

impl AttributeValue {
    /// The value as a string slice when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) | Self::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a number when it is one (ints widen to `f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Double(d) => Some(*d),
            _ => None,
        }
    }
}

/// Key/value attributes in wire order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(pub Vec<(String, AttributeValue)>);

impl Attributes {
    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The first value under `key` if it is a non-empty string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(AttributeValue::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// The entity that produced telemetry (OTLP `Resource`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Resource attributes (`service.name`, `k8s.pod.name`, ...).
    pub attributes: Attributes,
}

impl Resource {
    /// `service.name`, or `unknown_service` as the SDKs default it.
    pub fn service_name(&self) -> &str {
        self.attributes
            .get_str(semconv::SERVICE_NAME)
            .unwrap_or(semconv::UNKNOWN_SERVICE)
    }

    /// `k8s.pod.name`, when present.
    pub fn pod_name(&self) -> Option<&str> {
        self.attributes.get_str(semconv::K8S_POD_NAME)
    }

    /// The service's identity: `service.namespace/service.name` when a namespace is set, else
    /// `service.name` (resource semantic conventions, "service": the pair is unique).
    pub fn service_key(&self) -> String {
        match self.attributes.get_str(semconv::SERVICE_NAMESPACE) {
            Some(ns) => format!("{ns}/{}", self.service_name()),
            None => self.service_name().to_owned(),
        }
    }

    /// `k8s.namespace.name`, when present.
    pub fn k8s_namespace(&self) -> Option<&str> {
        self.attributes.get_str(semconv::K8S_NAMESPACE_NAME)
    }

    /// The pod's identity: `namespace/name` (or `name`), with `@k8s.pod.uid` appended when the
    /// uid is known, so that a pod recreated under the same name is a new pod.
    pub fn pod_key(&self) -> Option<String> {
        let name = self.pod_name()?;
        let mut key = match self.k8s_namespace() {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        };
        if let Some(uid) = self.attributes.get_str(semconv::K8S_POD_UID) {
            key.push('@');
            key.push_str(uid);
        }
        Some(key)
    }

    /// The workload that owns the pod, as `(kind, name)`: deployment, statefulset, daemonset,
    /// cronjob or job (`k8s.<kind>.name`), else the replicaset.
    pub fn workload(&self) -> Option<(&'static str, &str)> {
        [
            ("deployment", semconv::K8S_DEPLOYMENT_NAME),
            ("statefulset", semconv::K8S_STATEFULSET_NAME),
            ("daemonset", semconv::K8S_DAEMONSET_NAME),
            ("cronjob", semconv::K8S_CRONJOB_NAME),
            ("job", semconv::K8S_JOB_NAME),
            ("replicaset", semconv::K8S_REPLICASET_NAME),
        ]
        .into_iter()
        .find_map(|(kind, key)| self.attributes.get_str(key).map(|name| (kind, name)))
    }

    /// `service.instance.id`, when present.
    pub fn instance_id(&self) -> Option<&str> {
        self.attributes.get_str(semconv::SERVICE_INSTANCE_ID)
    }

    /// `service.version`, when present.
    pub fn service_version(&self) -> Option<&str> {
        self.attributes.get_str(semconv::SERVICE_VERSION)
    }

    /// The host the resource runs on: `k8s.node.name`, else `host.name`.
    pub fn node_name(&self) -> Option<&str> {
        self.attributes
            .get_str(semconv::K8S_NODE_NAME)
            .or_else(|| self.attributes.get_str(semconv::HOST_NAME))
    }
}

/// OTLP `Span.SpanKind`; unknown wire values become `Unspecified`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED` or an unknown value.
    #[default]
    Unspecified,
    /// `SPAN_KIND_INTERNAL`.
    Internal,
    /// `SPAN_KIND_SERVER`.
    Server,
    /// `SPAN_KIND_CLIENT`.
    Client,
    /// `SPAN_KIND_PRODUCER`.
    Producer,
    /// `SPAN_KIND_CONSUMER`.
    Consumer,
}

impl SpanKind {
    /// Maps the wire enum number.
    pub fn from_wire(value: i32) -> Self {
        match value {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }
}

/// OTLP `Status.StatusCode`; unknown wire values become `Unset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    /// `STATUS_CODE_UNSET`.
    #[default]
    Unset,
    /// `STATUS_CODE_OK`.
    Ok,
    /// `STATUS_CODE_ERROR`.
    Error,
}

impl StatusCode {
    /// Maps the wire enum number.
    pub fn from_wire(value: i32) -> Self {
        match value {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }
}

/// One span (OTLP `Span`), with the fields loupe uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// The parent's id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// The span name (operation).
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// Start, unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, unix nanoseconds; never before the start (a skewed end is clamped to it).
    pub end_time_unix_nano: u64,
    /// The status code.
    pub status: StatusCode,
    /// Span attributes.
    pub attributes: Attributes,
}

impl Span {
    /// Duration in nanoseconds.
    pub fn duration_nano(&self) -> u64 {
        self.end_time_unix_nano - self.start_time_unix_nano
    }
}

/// The spans of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSpans {
    /// The producing resource, shared by all its spans.
    pub resource: Arc<Resource>,
    /// The spans.
    pub spans: Vec<Span>,
}

/// One log record (OTLP `LogRecord`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Event time, unix nanoseconds (the observed time when the event time is unset).
    pub time_unix_nano: u64,
    /// `SeverityNumber` (0 when unspecified).
    pub severity_number: i32,
    /// `SeverityText` as sent.
    pub severity_text: String,
    /// The body as text.
    pub body: String,
    /// The event name (OTLP `LogRecord.event_name`, else the older `event.name` attribute);
    /// empty for a plain log record.
    pub event_name: String,
    /// Record attributes.
    pub attributes: Attributes,
    /// The trace the record belongs to, if any.
    pub trace_id: Option<TraceId>,
    /// The span the record belongs to, if any.
    pub span_id: Option<SpanId>,
}

impl LogRecord {
    /// Whether the record reports an error: severity ERROR or FATAL (by number, else by text),
    /// or an `exception.type`/`exception.message` attribute (exception semantic conventions).
    pub fn is_error(&self) -> bool {
        if self.severity_number >= semconv::SEVERITY_NUMBER_ERROR {
            return true;
        }
        if self.severity_number == 0 {
            let text = self.severity_text.to_ascii_uppercase();
            if text.starts_with("ERR") || text.starts_with("FATAL") || text.starts_with("CRIT") {
                return true;
            }
        }
        self.attributes.get(semconv::EXCEPTION_TYPE).is_some()
            || self.attributes.get(semconv::EXCEPTION_MESSAGE).is_some()
    }
}

/// The log records of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceLogs {
    /// The producing resource.
    pub resource: Arc<Resource>,
    /// The records.
    pub records: Vec<LogRecord>,
}

/// The OTLP metric type a point came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `Gauge`.
    Gauge,
    /// `Sum`.
    Sum,
    /// `Histogram`.
    Histogram,
    /// `ExponentialHistogram`.
    ExponentialHistogram,
    /// `Summary`.
    Summary,
}

/// The value of a data point.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// A number (gauge or sum).
    Number(f64),
    /// A distribution: count and sum (histograms, exponential histograms, summaries).
    Distribution {
        /// Number of observations.
        count: u64,
        /// Sum of observations (0 when the producer did not send it).
        sum: f64,
    },
}

/// One metric data point (OTLP `NumberDataPoint`, `HistogramDataPoint`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// Metric name, e.g. `k8s.pod.cpu.usage`.
    pub metric_name: String,
    /// Metric unit (UCUM), as sent.
    pub unit: String,
    /// The metric type.
    pub kind: MetricKind,
    /// Point time, unix nanoseconds.
    pub time_unix_nano: u64,
    /// Start of the point's interval, unix nanoseconds (OTLP `start_time_unix_nano`): for a
    /// cumulative point, when its series (re)started counting; 0 when not sent.
    pub start_time_unix_nano: u64,
    /// The value.
    pub value: PointValue,
    /// Point attributes.
    pub attributes: Attributes,
    /// Whether the value counts from the series' start (OTLP cumulative temporality; always for
    /// summaries) rather than over the export interval only (delta). Gauges are `false`.
    pub cumulative: bool,
}

/// The data points of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceMetrics {
    /// The producing resource.
    pub resource: Arc<Resource>,
    /// The points.
    pub points: Vec<DataPoint>,
}

/// A decoded batch of any signal, as the ingest path hands it on.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetryBatch {
    /// Spans.
    Traces(Vec<ResourceSpans>),
    /// Log records.
    Logs(Vec<ResourceLogs>),
    /// Metric data points.
    Metrics(Vec<ResourceMetrics>),
}

impl TelemetryBatch {
    /// The number of items: spans, log records or data points.
    pub fn len(&self) -> usize {
        match self {
            Self::Traces(r) => r.iter().map(|r| r.spans.len()).sum(),
            Self::Logs(r) => r.iter().map(|r| r.records.len()).sum(),
            Self::Metrics(r) => r.iter().map(|r| r.points.len()).sum(),
        }
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
