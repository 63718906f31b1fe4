//! OTLP protobuf messages (opentelemetry-proto) → model types, one item at a time.
//!
//! Each request is decoded item by item: an item that breaks the OTLP data model (an id of the
//! wrong length, a number point without a value) is counted as rejected with its reason, and the
//! rest of the request is kept, as OTLP partial success requires (OTLP specification, "Partial
//! Success").

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1 as plogs;
use opentelemetry_proto::tonic::metrics::v1 as pmetrics;
use opentelemetry_proto::tonic::resource::v1 as presource;
use opentelemetry_proto::tonic::trace::v1 as ptrace;

use crate::error::{Error, Result};
use crate::ids::{SpanId, TraceId};
use crate::telemetry::*;

/// Items decoded from one request, with the count and first reason of those rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    /// The accepted items, grouped per resource.
    pub items: Vec<T>,
    /// Number of spans, log records or data points rejected.
    pub rejected: u64,
    /// Why the first rejected item was rejected.
    pub first_error: Option<Error>,
}

impl<T> Decoded<T> {
    fn new() -> Self {
        Self {
            items: Vec::new(),
            rejected: 0,
            first_error: None,
        }
    }

    fn reject(&mut self, error: Error) {
        self.rejected += 1;
        self.first_error.get_or_insert(error);
    }
}

/// A value as text: strings as they are, scalars in their usual notation, arrays and key/value
/// lists as JSON.
fn any_value_text(value: &any_value::Value) -> String {
    match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_) => {
            any_value_json(value).to_string()
        }
        other => match any_value_json(other) {
            serde_json::Value::String(s) => s,
            v => v.to_string(),
        },
    }
}

/// A value as JSON (bytes as lowercase hex, as OTLP/JSON writes ids).
fn any_value_json(value: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    let nested = |v: Option<&AnyValue>| {
        v.and_then(|v| v.value.as_ref())
            .map_or(J::Null, any_value_json)
    };
    match value {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => {
            serde_json::Number::from_f64(*d).map_or_else(|| J::String(d.to_string()), J::Number)
        }
        any_value::Value::BytesValue(b) => {
            J::String(b.iter().map(|x| format!("{x:02x}")).collect())
        }
        any_value::Value::ArrayValue(a) => {
            J::Array(a.values.iter().map(|v| nested(Some(v))).collect())
        }
        any_value::Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|p| (p.key.clone(), nested(p.value.as_ref())))
                .collect(),
        ),
        any_value::Value::StringValueStrindex(i) => J::String(format!("strindex:{i}")),
    }
}

fn attribute_value(value: &AnyValue) -> Option<AttributeValue> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(s) => AttributeValue::String(s.clone()),
        any_value::Value::BoolValue(b) => AttributeValue::Bool(*b),
        any_value::Value::IntValue(i) => AttributeValue::Int(*i),
        any_value::Value::DoubleValue(d) => AttributeValue::Double(*d),
        any_value::Value::BytesValue(b) => AttributeValue::Bytes(b.clone()),
        other => AttributeValue::Text(any_value_text(other)),
    })
}

fn attributes(kvs: &[KeyValue]) -> Attributes {
    Attributes(
        kvs.iter()
            .filter_map(|kv| Some((kv.key.clone(), attribute_value(kv.value.as_ref()?)?)))
            .collect(),
    )
}

fn resource(r: Option<&presource::Resource>) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: r.map(|r| attributes(&r.attributes)).unwrap_or_default(),
    })
}

fn optional_span_id(field: &'static str, bytes: &[u8]) -> Result<Option<SpanId>> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        SpanId::from_bytes(field, bytes).map(Some)
    }
}

fn optional_trace_id(bytes: &[u8]) -> Result<Option<TraceId>> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        TraceId::from_bytes("trace_id", bytes).map(Some)
    }
}

/// Checks a span as [`decode_traces`] does (ids of the right length, not all zero), without
/// building it: the store keeps exactly the spans the graph keeps.
///
/// # Errors
/// [`Error::InvalidIdLength`] or [`Error::ZeroId`] naming the field.
pub fn check_span(s: &ptrace::Span) -> Result<()> {
    TraceId::from_bytes("trace_id", &s.trace_id)?;
    SpanId::from_bytes("span_id", &s.span_id)?;
    optional_span_id("parent_span_id", &s.parent_span_id)?;
    Ok(())
}

/// Checks a log record as [`decode_logs`] does (trace and span ids, when set, valid).
///
/// # Errors
/// As [`check_span`].
pub fn check_log_record(r: &plogs::LogRecord) -> Result<()> {
    optional_trace_id(&r.trace_id)?;
    optional_span_id("span_id", &r.span_id)?;
    Ok(())
}

/// Checks a gauge or sum point as [`decode_metrics`] does (it carries a value).
///
/// # Errors
/// [`Error::MissingValue`] naming the metric.
pub fn check_number_point(metric: &pmetrics::Metric, p: &pmetrics::NumberDataPoint) -> Result<()> {
    match p.value {
        Some(_) => Ok(()),
        None => Err(Error::MissingValue {
            metric: metric.name.clone(),
        }),
    }
}

fn span(s: &ptrace::Span) -> Result<Span> {
    let status = s
        .status
        .as_ref()
        .map(|st| StatusCode::from_wire(st.code))
        .unwrap_or_default();
    Ok(Span {
        trace_id: TraceId::from_bytes("trace_id", &s.trace_id)?,
        span_id: SpanId::from_bytes("span_id", &s.span_id)?,
        parent_span_id: optional_span_id("parent_span_id", &s.parent_span_id)?,
        name: s.name.clone(),
        kind: SpanKind::from_wire(s.kind),
        start_time_unix_nano: s.start_time_unix_nano,
        // A clock-skewed end before the start is data, not an error: clamp to a zero duration.
        end_time_unix_nano: s.end_time_unix_nano.max(s.start_time_unix_nano),
        status,
        attributes: attributes(&s.attributes),
    })
}

/// Decodes an `ExportTraceServiceRequest`, rejecting spans with invalid ids.
pub fn decode_traces(request: &ExportTraceServiceRequest) -> Decoded<ResourceSpans> {
    let mut out = Decoded::new();
    for rs in &request.resource_spans {
        let mut spans = Vec::new();
        for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            match span(s) {
                Ok(s) => spans.push(s),
                Err(e) => out.reject(e),
            }
        }
        if !spans.is_empty() {
            out.items.push(ResourceSpans {
                resource: resource(rs.resource.as_ref()),
                spans,
            });
        }
    }
    out
}

fn log_record(r: &plogs::LogRecord) -> Result<LogRecord> {
    let time = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    Ok(LogRecord {
        time_unix_nano: time,
        severity_number: r.severity_number,
        severity_text: r.severity_text.clone(),
        body: r
            .body
            .as_ref()
            .and_then(|b| b.value.as_ref())
            .map(any_value_text)
            .unwrap_or_default(),
        event_name: if r.event_name.is_empty() {
            r.attributes
                .iter()
                .find(|kv| kv.key == "event.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(any_value_text)
                .unwrap_or_default()
        } else {
            r.event_name.clone()
        },
        attributes: attributes(&r.attributes),
        trace_id: optional_trace_id(&r.trace_id)?,
        span_id: optional_span_id("span_id", &r.span_id)?,
    })
}

/// Decodes an `ExportLogsServiceRequest`, rejecting records with invalid trace or span ids.
pub fn decode_logs(request: &ExportLogsServiceRequest) -> Decoded<ResourceLogs> {
    let mut out = Decoded::new();
    for rl in &request.resource_logs {
        let mut records = Vec::new();
        for r in rl.scope_logs.iter().flat_map(|sl| &sl.log_records) {
            match log_record(r) {
                Ok(r) => records.push(r),
                Err(e) => out.reject(e),
            }
        }
        if !records.is_empty() {
            out.items.push(ResourceLogs {
                resource: resource(rl.resource.as_ref()),
                records,
            });
        }
    }
    out
}

fn number_point(
    metric: &pmetrics::Metric,
    kind: MetricKind,
    p: &pmetrics::NumberDataPoint,
) -> Result<DataPoint> {
    use pmetrics::number_data_point::Value;
    let value = match p.value {
        Some(Value::AsDouble(d)) => d,
        Some(Value::AsInt(i)) => i as f64,
        None => {
            return Err(Error::MissingValue {
                metric: metric.name.clone(),
            })
        }
    };
    Ok(point(
        metric,
        kind,
        (p.start_time_unix_nano, p.time_unix_nano),
        PointValue::Number(value),
        &p.attributes,
    ))
}

/// Whether an OTLP `aggregation_temporality` is cumulative.
fn is_cumulative(temporality: i32) -> bool {
    temporality == pmetrics::AggregationTemporality::Cumulative as i32
}

fn point(
    metric: &pmetrics::Metric,
    kind: MetricKind,
    (start_time_unix_nano, time_unix_nano): (u64, u64),
    value: PointValue,
    attrs: &[KeyValue],
) -> DataPoint {
    DataPoint {
        metric_name: metric.name.clone(),
        unit: metric.unit.clone(),
        kind,
        time_unix_nano,
        start_time_unix_nano,
        value,
        attributes: attributes(attrs),
        cumulative: false,
    }
}

fn metric_points(
    metric: &pmetrics::Metric,
    out: &mut Vec<DataPoint>,
    decoded: &mut Decoded<ResourceMetrics>,
) {
    use pmetrics::metric::Data;
    let mut push = |r: Result<DataPoint>| match r {
        Ok(p) => out.push(p),
        Err(e) => decoded.reject(e),
    };
    match &metric.data {
        Some(Data::Gauge(g)) => g
            .data_points
            .iter()
            .for_each(|p| push(number_point(metric, MetricKind::Gauge, p))),
        Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| {
            push(number_point(metric, MetricKind::Sum, p).map(|p| DataPoint {
                cumulative: is_cumulative(s.aggregation_temporality),
                ..p
            }))
        }),
        Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| {
            let value = PointValue::Distribution {
                count: p.count,
                sum: p.sum.unwrap_or(0.0),
            };
            push(Ok(DataPoint {
                cumulative: is_cumulative(h.aggregation_temporality),
                ..point(
                    metric,
                    MetricKind::Histogram,
                    (p.start_time_unix_nano, p.time_unix_nano),
                    value,
                    &p.attributes,
                )
            }))
        }),
        Some(Data::ExponentialHistogram(h)) => h.data_points.iter().for_each(|p| {
            let value = PointValue::Distribution {
                count: p.count,
                sum: p.sum.unwrap_or(0.0),
            };
            let kind = MetricKind::ExponentialHistogram;
            push(Ok(DataPoint {
                cumulative: is_cumulative(h.aggregation_temporality),
                ..point(
                    metric,
                    kind,
                    (p.start_time_unix_nano, p.time_unix_nano),
                    value,
                    &p.attributes,
                )
            }))
        }),
        Some(Data::Summary(s)) => s.data_points.iter().for_each(|p| {
            let value = PointValue::Distribution {
                count: p.count,
                sum: p.sum,
            };
            // Summaries are cumulative by definition (OTLP metrics data model, "Summary").
            push(Ok(DataPoint {
                cumulative: true,
                ..point(
                    metric,
                    MetricKind::Summary,
                    (p.start_time_unix_nano, p.time_unix_nano),
                    value,
                    &p.attributes,
                )
            }))
        }),
        None => {}
    }
}

/// Decodes an `ExportMetricsServiceRequest`, rejecting number points without a value.
pub fn decode_metrics(request: &ExportMetricsServiceRequest) -> Decoded<ResourceMetrics> {
    let mut out = Decoded::new();
    for rm in &request.resource_metrics {
        let mut points = Vec::new();
        for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
            metric_points(m, &mut points, &mut out);
        }
        if !points.is_empty() {
            out.items.push(ResourceMetrics {
                resource: resource(rm.resource.as_ref()),
                points,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans as PRs, ScopeSpans};

    fn proto_span(trace_len: usize, span_len: usize) -> ptrace::Span {
        ptrace::Span {
            trace_id: vec![1; trace_len],
            span_id: vec![2; span_len],
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 5,
            status: Some(ptrace::Status {
                message: String::new(),
                code: 2,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn bad_spans_are_rejected_and_good_ones_kept() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![PRs {
                scope_spans: vec![ScopeSpans {
                    spans: vec![proto_span(16, 8), proto_span(16, 5), proto_span(3, 8)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let decoded = decode_traces(&request);
        assert_eq!(decoded.rejected, 2);
        assert_eq!(
            decoded.first_error,
            Some(Error::InvalidIdLength {
                field: "span_id",
                len: 5,
                expected: 8
            })
        );
        let span = &decoded.items[0].spans[0];
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.status, StatusCode::Error);
        assert_eq!(span.duration_nano(), 0, "skewed end is clamped");
        assert_eq!(decoded.items[0].resource.service_name(), "unknown_service");
    }
}

#[cfg(test)]
mod properties {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans as PRs, ScopeSpans};
    use proptest::prelude::*;

    use super::*;

    fn any_span() -> impl Strategy<Value = ptrace::Span> {
        (
            prop::collection::vec(any::<u8>(), 0..20),
            prop::collection::vec(any::<u8>(), 0..12),
            prop::collection::vec(any::<u8>(), 0..12),
            any::<i32>(),
            any::<u64>(),
            any::<u64>(),
            prop::option::of(any::<i32>()),
        )
            .prop_map(
                |(trace_id, span_id, parent_span_id, kind, start, end, status)| ptrace::Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    kind,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    status: status.map(|code| ptrace::Status {
                        code,
                        message: String::new(),
                    }),
                    ..Default::default()
                },
            )
    }

    proptest! {
        /// Any wire input decodes without panicking; every span is either kept or counted as
        /// rejected; kept spans have valid ids and a non-negative duration.
        #[test]
        fn every_span_is_kept_or_rejected(spans in prop::collection::vec(any_span(), 0..40)) {
            let total = spans.len() as u64;
            let request = ExportTraceServiceRequest {
                resource_spans: vec![PRs {
                    scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                    ..Default::default()
                }],
            };
            let decoded = decode_traces(&request);
            let kept: u64 = decoded.items.iter().map(|r| r.spans.len() as u64).sum();
            prop_assert_eq!(kept + decoded.rejected, total);
            prop_assert_eq!(decoded.first_error.is_some(), decoded.rejected > 0);
            for span in decoded.items.iter().flat_map(|r| &r.spans) {
                prop_assert!(span.trace_id.0.iter().any(|b| *b != 0));
                prop_assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
            }
        }
    }
}
