//! OTLP requests ⇄ Arrow record batches in the schemas of [`crate::schema`].
//!
//! Writing keeps exactly the items the graph keeps (the same checks as
//! `loupe_model::decode_*`: a span with a bad id, a number point without a value are left out,
//! the receiver reports them as rejected). Reading gives back OTLP requests item for item, one
//! resource and scope group per row, which the round-trip tests compare field by field.

mod build;
mod read;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use loupe_model::{check_log_record, check_number_point, check_span, ChangeEvent};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1 as pm;

use build::*;
pub use read::{changes_from_batch, logs_from_batch, metrics_from_batch, traces_from_batch};

use crate::schema::{Table, EVENT_FIELDS, LINK_FIELDS, QUANTILE_FIELDS};

fn batch(table: Table, mut columns: Vec<ArrayRef>) -> RecordBatch {
    // Builders grow by doubling; hot batches live for minutes, so give the slack back.
    for c in &mut columns {
        if let Some(a) = Arc::get_mut(c) {
            a.shrink_to_fit();
        }
    }
    // The builders follow the schema column for column; a mismatch is a bug caught by tests.
    RecordBatch::try_new(table.schema(), columns).expect("columns follow the table schema")
}

fn received_column(rows: usize, received: u64) -> ArrayRef {
    let mut b = Ts::with_capacity(rows);
    (0..rows).for_each(|_| b.append_value(ts(received)));
    timestamps(&mut b)
}

fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn status_code(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

/// The spans of a request that the graph accepts, as a `spans` batch received at `received`
/// (unix ns); `None` when none is accepted.
pub fn traces_to_batch(request: &ExportTraceServiceRequest, received: u64) -> Option<RecordBatch> {
    let mut origin = OriginBuilder::default();
    let (mut trace_id, mut span_id, mut trace_state, mut parent) =
        (Str::new(), Str::new(), Str::new(), Str::new());
    let (mut flags, mut name, mut kind) = (U32::new(), Str::new(), Str::new());
    let (mut start, mut end, mut duration) = (Ts::new(), Ts::new(), I64::new());
    let (mut code, mut message) = (Str::new(), Str::new());
    let (mut attributes, mut dropped) = (AttrBuilder::default(), U32::new());
    let (mut ev_offsets, mut ev_time, mut ev_name, mut ev_attrs, mut ev_dropped) = (
        Offsets::default(),
        Ts::new(),
        Str::new(),
        AttrBuilder::default(),
        U32::new(),
    );
    let (mut dropped_events, mut dropped_links) = (U32::new(), U32::new());
    let mut ln_offsets = Offsets::default();
    let (mut ln_trace, mut ln_span, mut ln_state, mut ln_flags, mut ln_attrs, mut ln_dropped) = (
        Str::new(),
        Str::new(),
        Str::new(),
        U32::new(),
        AttrBuilder::default(),
        U32::new(),
    );
    let mut rows = 0;
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            let o = Origin {
                resource: rs.resource.as_ref(),
                resource_schema_url: &rs.schema_url,
                scope: ss.scope.as_ref(),
                scope_schema_url: &ss.schema_url,
            };
            for s in ss.spans.iter().filter(|s| check_span(s).is_ok()) {
                rows += 1;
                origin.append(&o);
                trace_id.append_option(hex_id(&s.trace_id));
                span_id.append_option(hex_id(&s.span_id));
                trace_state.append_value(&s.trace_state);
                parent.append_option(hex_id(&s.parent_span_id));
                flags.append_value(s.flags);
                name.append_value(&s.name);
                kind.append_value(span_kind(s.kind));
                start.append_value(ts(s.start_time_unix_nano));
                end.append_value(ts(s.end_time_unix_nano));
                duration.append_value(
                    s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as i64
                );
                let status = s.status.as_ref();
                code.append_value(status_code(status.map_or(0, |st| st.code)));
                message.append_value(status.map_or("", |st| st.message.as_str()));
                attributes.append(&s.attributes);
                dropped.append_value(s.dropped_attributes_count);
                for e in &s.events {
                    ev_time.append_value(ts(e.time_unix_nano));
                    ev_name.append_value(&e.name);
                    ev_attrs.append(&e.attributes);
                    ev_dropped.append_value(e.dropped_attributes_count);
                }
                ev_offsets.push(s.events.len());
                dropped_events.append_value(s.dropped_events_count);
                for l in &s.links {
                    ln_trace.append_value(hex::encode(&l.trace_id));
                    ln_span.append_value(hex::encode(&l.span_id));
                    ln_state.append_value(&l.trace_state);
                    ln_flags.append_value(l.flags);
                    ln_attrs.append(&l.attributes);
                    ln_dropped.append_value(l.dropped_attributes_count);
                }
                ln_offsets.push(s.links.len());
                dropped_links.append_value(s.dropped_links_count);
            }
        }
    }
    if rows == 0 {
        return None;
    }
    let mut c: Vec<ArrayRef> = Vec::with_capacity(32);
    origin.finish(&mut c);
    c.push(Arc::new(trace_id.finish()));
    c.push(Arc::new(span_id.finish()));
    c.push(Arc::new(trace_state.finish()));
    c.push(Arc::new(parent.finish()));
    c.push(Arc::new(flags.finish()));
    c.push(Arc::new(name.finish()));
    c.push(Arc::new(kind.finish()));
    c.push(timestamps(&mut start));
    c.push(timestamps(&mut end));
    c.push(Arc::new(duration.finish()));
    c.push(Arc::new(code.finish()));
    c.push(Arc::new(message.finish()));
    c.push(Arc::new(attributes.finish()));
    c.push(Arc::new(dropped.finish()));
    c.push(struct_list(
        &EVENT_FIELDS,
        ev_offsets.finish(),
        vec![
            timestamps(&mut ev_time),
            Arc::new(ev_name.finish()),
            Arc::new(ev_attrs.finish()),
            Arc::new(ev_dropped.finish()),
        ],
    ));
    c.push(Arc::new(dropped_events.finish()));
    c.push(struct_list(
        &LINK_FIELDS,
        ln_offsets.finish(),
        vec![
            Arc::new(ln_trace.finish()),
            Arc::new(ln_span.finish()),
            Arc::new(ln_state.finish()),
            Arc::new(ln_flags.finish()),
            Arc::new(ln_attrs.finish()),
            Arc::new(ln_dropped.finish()),
        ],
    ));
    c.push(Arc::new(dropped_links.finish()));
    c.push(received_column(rows, received));
    Some(batch(Table::Spans, c))
}

/// The log records of a request that the graph accepts, as a `logs` batch.
pub fn logs_to_batch(request: &ExportLogsServiceRequest, received: u64) -> Option<RecordBatch> {
    let mut origin = OriginBuilder::default();
    let (mut time, mut observed, mut sev_num, mut sev_text) =
        (Ts::new(), Ts::new(), I32::new(), Str::new());
    let (mut body, mut event_name, mut trace_id, mut span_id) =
        (AnyBuilder::default(), Str::new(), Str::new(), Str::new());
    let (mut flags, mut attributes, mut dropped) = (U32::new(), AttrBuilder::default(), U32::new());
    let mut rows = 0;
    for rl in &request.resource_logs {
        for sl in &rl.scope_logs {
            let o = Origin {
                resource: rl.resource.as_ref(),
                resource_schema_url: &rl.schema_url,
                scope: sl.scope.as_ref(),
                scope_schema_url: &sl.schema_url,
            };
            for r in sl
                .log_records
                .iter()
                .filter(|r| check_log_record(r).is_ok())
            {
                rows += 1;
                origin.append(&o);
                time.append_value(ts(r.time_unix_nano));
                observed.append_value(ts(r.observed_time_unix_nano));
                sev_num.append_value(r.severity_number);
                sev_text.append_value(&r.severity_text);
                body.append(r.body.as_ref());
                event_name.append_value(&r.event_name);
                trace_id.append_option(hex_id(&r.trace_id));
                span_id.append_option(hex_id(&r.span_id));
                flags.append_value(r.flags);
                attributes.append(&r.attributes);
                dropped.append_value(r.dropped_attributes_count);
            }
        }
    }
    if rows == 0 {
        return None;
    }
    let mut c: Vec<ArrayRef> = Vec::with_capacity(24);
    origin.finish(&mut c);
    c.push(timestamps(&mut time));
    c.push(timestamps(&mut observed));
    c.push(Arc::new(sev_num.finish()));
    c.push(Arc::new(sev_text.finish()));
    c.push(Arc::new(body.finish()));
    c.push(Arc::new(event_name.finish()));
    c.push(Arc::new(trace_id.finish()));
    c.push(Arc::new(span_id.finish()));
    c.push(Arc::new(flags.finish()));
    c.push(Arc::new(attributes.finish()));
    c.push(Arc::new(dropped.finish()));
    c.push(received_column(rows, received));
    Some(batch(Table::Logs, c))
}

fn temporality_name(t: i32) -> &'static str {
    match t {
        1 => "delta",
        2 => "cumulative",
        _ => "unspecified",
    }
}

/// One data point of any type: what its columns are filled from.
trait Point {
    fn attributes(&self) -> &[opentelemetry_proto::tonic::common::v1::KeyValue];
    /// Start time, time, flags.
    fn times(&self) -> (u64, u64, u32);
    fn parts(&self) -> PointParts<'_>;
}

/// Implements [`Point`] for an OTLP point type, whose attributes and times sit in the same
/// fields in every type; `$parts` gives the rest.
macro_rules! point {
    ($ty:ty, |$p:ident| $parts:expr) => {
        impl Point for $ty {
            fn attributes(&self) -> &[opentelemetry_proto::tonic::common::v1::KeyValue] {
                &self.attributes
            }
            fn times(&self) -> (u64, u64, u32) {
                (self.start_time_unix_nano, self.time_unix_nano, self.flags)
            }
            fn parts(&self) -> PointParts<'_> {
                let $p = self;
                $parts
            }
        }
    };
}

point!(pm::NumberDataPoint, |n| {
    use pm::number_data_point::Value;
    PointParts {
        value_double: match n.value {
            Some(Value::AsDouble(d)) => Some(d),
            _ => None,
        },
        value_int: match n.value {
            Some(Value::AsInt(i)) => Some(i),
            _ => None,
        },
        ..Default::default()
    }
});

point!(pm::HistogramDataPoint, |h| PointParts {
    count: Some(h.count),
    sum: h.sum,
    min: h.min,
    max: h.max,
    explicit: Some((&h.bucket_counts, &h.explicit_bounds)),
    ..Default::default()
});

point!(pm::ExponentialHistogramDataPoint, |e| PointParts {
    count: Some(e.count),
    sum: e.sum,
    min: e.min,
    max: e.max,
    exponential: Some(e),
    ..Default::default()
});

point!(pm::SummaryDataPoint, |q| PointParts {
    count: Some(q.count),
    sum: Some(q.sum),
    quantiles: Some(&q.quantile_values),
    ..Default::default()
});

/// Builders of the `metric_points` columns after the origin.
#[derive(Default)]
struct PointColumns {
    name: Str,
    description: Str,
    unit: Str,
    metric_type: Str,
    temporality: Str,
    monotonic: Bool,
    attributes: AttrBuilder,
    start: Ts,
    time: Ts,
    flags: U32,
    value_double: F64,
    value_int: I64,
    count: U64,
    sum: F64,
    min: F64,
    max: F64,
    bucket_offsets: Offsets,
    bucket_valid: Vec<bool>,
    bucket_counts: U64,
    bound_offsets: Offsets,
    bounds: F64,
    scale: I32,
    zero_count: U64,
    zero_threshold: F64,
    positive_offset: I32,
    positive_offsets: Offsets,
    positive_valid: Vec<bool>,
    positive_counts: U64,
    negative_offset: I32,
    negative_offsets: Offsets,
    negative_valid: Vec<bool>,
    negative_counts: U64,
    quantile_offsets: Offsets,
    quantile_valid: Vec<bool>,
    quantiles: F64,
    quantile_values: F64,
    rows: usize,
}

/// What differs per point type, the rest being common.
#[derive(Default)]
struct PointParts<'a> {
    value_double: Option<f64>,
    value_int: Option<i64>,
    count: Option<u64>,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    explicit: Option<(&'a [u64], &'a [f64])>,
    exponential: Option<&'a pm::ExponentialHistogramDataPoint>,
    quantiles: Option<&'a [pm::summary_data_point::ValueAtQuantile]>,
}

impl PointColumns {
    /// Appends the points of `metric`; `shape` is its metric type, temporality and
    /// monotonicity.
    fn push_all<'a, P: Point + 'a>(
        &mut self,
        (origin, o): (&mut OriginBuilder, &Origin<'_>),
        metric: &pm::Metric,
        shape: (&str, Option<i32>, Option<bool>),
        points: impl IntoIterator<Item = &'a P>,
    ) {
        for point in points {
            self.push((&mut *origin, o), metric, shape, point);
        }
    }

    /// Appends one point of `metric`; `shape` is its metric type, temporality and
    /// monotonicity.
    fn push<P: Point>(
        &mut self,
        origin: (&mut OriginBuilder, &Origin<'_>),
        metric: &pm::Metric,
        shape: (&str, Option<i32>, Option<bool>),
        point: &P,
    ) {
        let (origin, o) = origin;
        let (metric_type, temporality, monotonic) = shape;
        let (attributes, times, parts) = (point.attributes(), point.times(), point.parts());
        self.rows += 1;
        origin.append(o);
        self.name.append_value(&metric.name);
        self.description.append_value(&metric.description);
        self.unit.append_value(&metric.unit);
        self.metric_type.append_value(metric_type);
        self.temporality
            .append_option(temporality.map(temporality_name));
        self.monotonic.append_option(monotonic);
        self.attributes.append(attributes);
        self.start.append_value(ts(times.0));
        self.time.append_value(ts(times.1));
        self.flags.append_value(times.2);
        self.value_double.append_option(parts.value_double);
        self.value_int.append_option(parts.value_int);
        self.count.append_option(parts.count);
        self.sum.append_option(parts.sum);
        self.min.append_option(parts.min);
        self.max.append_option(parts.max);
        let (counts, bounds) = parts.explicit.unwrap_or((&[], &[]));
        self.bucket_valid.push(parts.explicit.is_some());
        self.bucket_counts.append_slice(counts);
        self.bucket_offsets.push(counts.len());
        self.bounds.append_slice(bounds);
        self.bound_offsets.push(bounds.len());
        let e = parts.exponential;
        self.scale.append_option(e.map(|e| e.scale));
        self.zero_count.append_option(e.map(|e| e.zero_count));
        self.zero_threshold
            .append_option(e.map(|e| e.zero_threshold));
        for (buckets, offset, offsets, valid, counts) in [
            (
                e.and_then(|e| e.positive.as_ref()),
                &mut self.positive_offset,
                &mut self.positive_offsets,
                &mut self.positive_valid,
                &mut self.positive_counts,
            ),
            (
                e.and_then(|e| e.negative.as_ref()),
                &mut self.negative_offset,
                &mut self.negative_offsets,
                &mut self.negative_valid,
                &mut self.negative_counts,
            ),
        ] {
            offset.append_option(buckets.map(|b| b.offset));
            valid.push(buckets.is_some());
            let c = buckets.map_or(&[][..], |b| b.bucket_counts.as_slice());
            counts.append_slice(c);
            offsets.push(c.len());
        }
        let q = parts.quantiles.unwrap_or(&[]);
        self.quantile_valid.push(parts.quantiles.is_some());
        for v in q {
            self.quantiles.append_value(v.quantile);
            self.quantile_values.append_value(v.value);
        }
        self.quantile_offsets.push(q.len());
    }

    fn finish(mut self, mut c: Vec<ArrayRef>, received: u64) -> RecordBatch {
        use datafusion::arrow::buffer::NullBuffer;
        let nulls = |v: Vec<bool>| Some(NullBuffer::from(v));
        c.push(Arc::new(self.name.finish()));
        c.push(Arc::new(self.description.finish()));
        c.push(Arc::new(self.unit.finish()));
        c.push(Arc::new(self.metric_type.finish()));
        c.push(Arc::new(self.temporality.finish()));
        c.push(Arc::new(self.monotonic.finish()));
        c.push(Arc::new(self.attributes.finish()));
        c.push(timestamps(&mut self.start));
        c.push(timestamps(&mut self.time));
        c.push(Arc::new(self.flags.finish()));
        c.push(Arc::new(self.value_double.finish()));
        c.push(Arc::new(self.value_int.finish()));
        c.push(Arc::new(self.count.finish()));
        c.push(Arc::new(self.sum.finish()));
        c.push(Arc::new(self.min.finish()));
        c.push(Arc::new(self.max.finish()));
        c.push(list(
            DataType::UInt64,
            self.bucket_offsets.finish(),
            Arc::new(self.bucket_counts.finish()),
            nulls(self.bucket_valid.clone()),
        ));
        c.push(list(
            DataType::Float64,
            self.bound_offsets.finish(),
            Arc::new(self.bounds.finish()),
            nulls(self.bucket_valid),
        ));
        c.push(Arc::new(self.scale.finish()));
        c.push(Arc::new(self.zero_count.finish()));
        c.push(Arc::new(self.zero_threshold.finish()));
        c.push(Arc::new(self.positive_offset.finish()));
        c.push(list(
            DataType::UInt64,
            self.positive_offsets.finish(),
            Arc::new(self.positive_counts.finish()),
            nulls(self.positive_valid),
        ));
        c.push(Arc::new(self.negative_offset.finish()));
        c.push(list(
            DataType::UInt64,
            self.negative_offsets.finish(),
            Arc::new(self.negative_counts.finish()),
            nulls(self.negative_valid),
        ));
        let quantile_struct = datafusion::arrow::array::StructArray::new(
            QUANTILE_FIELDS.clone(),
            vec![
                Arc::new(self.quantiles.finish()),
                Arc::new(self.quantile_values.finish()),
            ],
            None,
        );
        c.push(list(
            DataType::Struct(QUANTILE_FIELDS.clone()),
            self.quantile_offsets.finish(),
            Arc::new(quantile_struct),
            nulls(self.quantile_valid),
        ));
        c.push(received_column(self.rows, received));
        batch(Table::MetricPoints, c)
    }
}

/// The data points of a request that the graph accepts, as a `metric_points` batch.
pub fn metrics_to_batch(
    request: &ExportMetricsServiceRequest,
    received: u64,
) -> Option<RecordBatch> {
    use pm::metric::Data;
    let mut origin = OriginBuilder::default();
    let mut p = PointColumns::default();
    for rm in &request.resource_metrics {
        for sm in &rm.scope_metrics {
            let o = Origin {
                resource: rm.resource.as_ref(),
                resource_schema_url: &rm.schema_url,
                scope: sm.scope.as_ref(),
                scope_schema_url: &sm.schema_url,
            };
            for m in &sm.metrics {
                let to = (&mut origin, &o);
                let valid = |n: &&pm::NumberDataPoint| check_number_point(m, n).is_ok();
                match &m.data {
                    Some(Data::Gauge(g)) => {
                        let points = g.data_points.iter().filter(valid);
                        p.push_all(to, m, ("gauge", None, None), points);
                    }
                    Some(Data::Sum(sum)) => {
                        let temporality = Some(sum.aggregation_temporality);
                        let shape = ("sum", temporality, Some(sum.is_monotonic));
                        p.push_all(to, m, shape, sum.data_points.iter().filter(valid));
                    }
                    Some(Data::Histogram(h)) => {
                        let shape = ("histogram", Some(h.aggregation_temporality), None);
                        p.push_all(to, m, shape, &h.data_points);
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        let temporality = Some(h.aggregation_temporality);
                        let shape = ("exponential_histogram", temporality, None);
                        p.push_all(to, m, shape, &h.data_points);
                    }
                    Some(Data::Summary(sm)) => {
                        p.push_all(to, m, ("summary", None, None), &sm.data_points);
                    }
                    None => {}
                }
            }
        }
    }
    if p.rows == 0 {
        return None;
    }
    let mut c: Vec<ArrayRef> = Vec::with_capacity(40);
    origin.finish(&mut c);
    Some(p.finish(c, received))
}

/// Changes posted to the API, as a `changes` batch; `None` when there are none.
pub fn changes_to_batch(changes: &[ChangeEvent], received: u64) -> Option<RecordBatch> {
    if changes.is_empty() {
        return None;
    }
    let text = |f: &dyn Fn(&ChangeEvent) -> Option<&str>| -> ArrayRef {
        let mut b = Str::new();
        changes.iter().for_each(|c| b.append_option(f(c)));
        Arc::new(b.finish())
    };
    let mut time = Ts::new();
    let mut end = Ts::new();
    for c in changes {
        time.append_value(ts(c.time_unix_nano));
        end.append_option(c.end_time_unix_nano.map(ts));
    }
    let c: Vec<ArrayRef> = vec![
        text(&|c| Some(c.kind.as_str())),
        timestamps(&mut time),
        timestamps(&mut end),
        text(&|c| c.service.as_deref()),
        text(&|c| c.environment.as_deref()),
        text(&|c| c.version_from.as_deref()),
        text(&|c| c.version_to.as_deref()),
        text(&|c| c.commit.as_deref()),
        text(&|c| c.author.as_deref()),
        text(&|c| Some(&c.source)),
        text(&|c| Some(&c.summary)),
        text(&|c| c.object.as_ref().map(|o| o.kind.as_str())),
        text(&|c| c.object.as_ref().map(|o| o.name.as_str())),
        text(&|c| c.object.as_ref().and_then(|o| o.namespace.as_deref())),
        text(&|c| c.reason.as_deref()),
        text(&|c| c.flag.as_deref()),
        text(&|c| c.external_id.as_deref()),
        received_column(changes.len(), received),
    ];
    Some(batch(Table::Changes, c))
}
