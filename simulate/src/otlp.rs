//! OTLP protobuf builders for the simulator: attributes, resources of simulated pods, and the
//! three export requests, grouped by resource as an SDK's batch processor sends them.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// An attribute value.
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Self::Str(v.to_owned())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Self::Str(v.clone())
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Self::Double(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// One attribute.
pub(crate) fn kv(key: &str, value: impl Into<Val>) -> KeyValue {
    let value = match value.into() {
        Val::Str(s) => Value::StringValue(s),
        Val::Int(i) => Value::IntValue(i),
        Val::Double(d) => Value::DoubleValue(d),
        Val::Bool(b) => Value::BoolValue(b),
    };
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string body.
pub(crate) fn text(body: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(body)),
    })
}

/// The simulator's instrumentation scope.
pub(crate) fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "loupe.simulate".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    })
}

/// A resource of the given attributes.
pub(crate) fn resource(attributes: Vec<KeyValue>) -> Option<Resource> {
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

/// Most items one request carries: the OpenTelemetry SDKs' batch processors export at most
/// 512 spans or log records at a time (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
/// `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`).
pub(crate) const MAX_EXPORT_BATCH: usize = 512;

/// Resource groups cut into requests of at most [`MAX_EXPORT_BATCH`] items, in order.
fn chunked<R, T>(groups: Vec<(R, Vec<T>)>) -> Vec<Vec<(R, Vec<T>)>>
where
    R: Clone,
{
    let mut out: Vec<Vec<(R, Vec<T>)>> = Vec::new();
    let mut current: Vec<(R, Vec<T>)> = Vec::new();
    let mut size = 0;
    for (resource, items) in groups {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let part: Vec<T> = items.by_ref().take(MAX_EXPORT_BATCH - size).collect();
            size += part.len();
            current.push((resource.clone(), part));
            if size == MAX_EXPORT_BATCH {
                out.push(std::mem::take(&mut current));
                size = 0;
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Trace exports of spans grouped by resource, at most [`MAX_EXPORT_BATCH`] spans each.
pub(crate) fn traces(groups: Vec<(Vec<KeyValue>, Vec<Span>)>) -> Vec<ExportTraceServiceRequest> {
    chunked(groups)
        .into_iter()
        .map(|part| ExportTraceServiceRequest {
            resource_spans: part
                .into_iter()
                .map(|(attributes, spans)| ResourceSpans {
                    resource: resource(attributes),
                    scope_spans: vec![ScopeSpans {
                        scope: scope(),
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        })
        .collect()
}

/// A log group's resource attributes and scope.
pub(crate) type LogResource = (Vec<KeyValue>, Option<InstrumentationScope>);

/// Log exports of records grouped by resource and scope, at most [`MAX_EXPORT_BATCH`]
/// records each.
pub(crate) fn logs(groups: Vec<(LogResource, Vec<LogRecord>)>) -> Vec<ExportLogsServiceRequest> {
    chunked(groups)
        .into_iter()
        .map(|part| ExportLogsServiceRequest {
            resource_logs: part
                .into_iter()
                .map(|((attributes, scope), log_records)| ResourceLogs {
                    resource: resource(attributes),
                    scope_logs: vec![ScopeLogs {
                        scope,
                        log_records,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        })
        .collect()
}

/// A metric export of metrics grouped by resource; `None` when there is no metric.
pub(crate) fn metrics(
    groups: Vec<(Vec<KeyValue>, Vec<Metric>)>,
) -> Option<ExportMetricsServiceRequest> {
    let resource_metrics: Vec<ResourceMetrics> = groups
        .into_iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(attributes, metrics)| ResourceMetrics {
            resource: resource(attributes),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    (!resource_metrics.is_empty()).then_some(ExportMetricsServiceRequest { resource_metrics })
}
