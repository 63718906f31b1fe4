//! Arrow record batches (as stored or as a query returns them) → OTLP requests and changes.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Array, Int32Array, Int64Array,
    ListArray, MapArray, RecordBatch, StringArray, StructArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    Float64Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type,
};
use loupe_model::{ChangeEvent, ChangeKind, ObjectRef};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;

use crate::error::{Error, Result};

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Schema(format!("column {name} missing")))
}

fn typed<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    column(batch, name)?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::Schema(format!("column {name} has an unexpected type")))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    typed(batch, name)
}

fn times<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a datafusion::arrow::array::PrimitiveArray<TimestampNanosecondType>> {
    column(batch, name)?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| Error::Schema(format!("column {name} is not a timestamp")))
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_owned())
}

fn id_bytes(a: &StringArray, i: usize) -> Result<Vec<u8>> {
    if a.is_null(i) {
        return Ok(Vec::new());
    }
    hex::decode(a.value(i)).map_err(|e| Error::Schema(format!("stored id is not hex: {e}")))
}

/// Reads `AnyValue` structs.
struct AnyReader<'a> {
    array: &'a StructArray,
    string: &'a StringArray,
    boolean: &'a BooleanArray,
    int: &'a Int64Array,
    double: &'a Float64Array,
    bytes: &'a BinaryArray,
    list: &'a StringArray,
    kvlist: &'a StringArray,
}

impl<'a> AnyReader<'a> {
    fn new(array: &'a StructArray) -> Result<Self> {
        let f = |i: usize| array.column(i);
        let bad = || Error::Schema("AnyValue struct has unexpected fields".into());
        if array.num_columns() != 7 {
            return Err(bad());
        }
        Ok(Self {
            array,
            string: f(0).as_string_opt().ok_or_else(bad)?,
            boolean: f(1).as_boolean_opt().ok_or_else(bad)?,
            int: f(2).as_primitive_opt::<Int64Type>().ok_or_else(bad)?,
            double: f(3).as_primitive_opt::<Float64Type>().ok_or_else(bad)?,
            bytes: f(4).as_binary_opt().ok_or_else(bad)?,
            list: f(5).as_string_opt().ok_or_else(bad)?,
            kvlist: f(6).as_string_opt().ok_or_else(bad)?,
        })
    }

    fn get(&self, i: usize) -> Result<Option<AnyValue>> {
        use any_value::Value as V;
        if self.array.is_null(i) {
            return Ok(None);
        }
        let json = |e: serde_json::Error| Error::Schema(format!("stored nested value: {e}"));
        let value = if self.string.is_valid(i) {
            Some(V::StringValue(self.string.value(i).to_owned()))
        } else if self.boolean.is_valid(i) {
            Some(V::BoolValue(self.boolean.value(i)))
        } else if self.int.is_valid(i) {
            Some(V::IntValue(self.int.value(i)))
        } else if self.double.is_valid(i) {
            Some(V::DoubleValue(self.double.value(i)))
        } else if self.bytes.is_valid(i) {
            Some(V::BytesValue(self.bytes.value(i).to_vec()))
        } else if self.list.is_valid(i) {
            Some(V::ArrayValue(
                serde_json::from_str::<ArrayValue>(self.list.value(i)).map_err(json)?,
            ))
        } else if self.kvlist.is_valid(i) {
            Some(V::KvlistValue(
                serde_json::from_str::<KeyValueList>(self.kvlist.value(i)).map_err(json)?,
            ))
        } else {
            None
        };
        Ok(Some(AnyValue { value }))
    }
}

/// Reads `Map<Utf8, AnyValue>` attribute columns.
struct AttrReader<'a> {
    map: &'a MapArray,
    keys: &'a StringArray,
    values: AnyReader<'a>,
}

impl<'a> AttrReader<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self> {
        let bad = || Error::Schema("attributes are not a map of AnyValue".into());
        let map = array.as_map_opt().ok_or_else(bad)?;
        Ok(Self {
            map,
            keys: map.keys().as_string_opt().ok_or_else(bad)?,
            values: AnyReader::new(map.values().as_struct_opt().ok_or_else(bad)?)?,
        })
    }

    fn of(batch: &'a RecordBatch, name: &str) -> Result<Self> {
        Self::new(column(batch, name)?)
    }

    fn get(&self, row: usize) -> Result<Vec<KeyValue>> {
        let offsets = self.map.value_offsets();
        let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
        (from..to)
            .map(|i| {
                Ok(KeyValue {
                    key: self.keys.value(i).to_owned(),
                    value: self.values.get(i)?,
                    ..Default::default()
                })
            })
            .collect()
    }
}

/// Reads the origin columns.
struct OriginReader<'a> {
    resource_attributes: AttrReader<'a>,
    resource_dropped: &'a UInt32Array,
    resource_schema_url: &'a StringArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attributes: AttrReader<'a>,
    scope_dropped: &'a UInt32Array,
    scope_schema_url: &'a StringArray,
}

/// One row's origin.
#[derive(PartialEq)]
struct RowOrigin {
    resource: Resource,
    resource_schema_url: String,
    scope: InstrumentationScope,
    scope_schema_url: String,
}

impl<'a> OriginReader<'a> {
    fn new(b: &'a RecordBatch) -> Result<Self> {
        Ok(Self {
            resource_attributes: AttrReader::of(b, "resource_attributes")?,
            resource_dropped: typed(b, "resource_dropped_attributes_count")?,
            resource_schema_url: strings(b, "resource_schema_url")?,
            scope_name: strings(b, "scope_name")?,
            scope_version: strings(b, "scope_version")?,
            scope_attributes: AttrReader::of(b, "scope_attributes")?,
            scope_dropped: typed(b, "scope_dropped_attributes_count")?,
            scope_schema_url: strings(b, "scope_schema_url")?,
        })
    }

    fn get(&self, i: usize) -> Result<RowOrigin> {
        Ok(RowOrigin {
            resource: Resource {
                attributes: self.resource_attributes.get(i)?,
                dropped_attributes_count: self.resource_dropped.value(i),
                ..Default::default()
            },
            resource_schema_url: self.resource_schema_url.value(i).to_owned(),
            scope: InstrumentationScope {
                name: self.scope_name.value(i).to_owned(),
                version: self.scope_version.value(i).to_owned(),
                attributes: self.scope_attributes.get(i)?,
                dropped_attributes_count: self.scope_dropped.value(i),
            },
            scope_schema_url: self.scope_schema_url.value(i).to_owned(),
        })
    }
}

/// Groups rows into requests: consecutive rows received at the same time form one request,
/// consecutive rows of one origin one resource group.
struct Grouper<T> {
    out: Vec<(u64, Groups<T>)>,
}

/// The items of one request, per origin.
type Groups<T> = Vec<(RowOrigin, Vec<T>)>;

impl<T> Grouper<T> {
    fn new() -> Self {
        Self { out: Vec::new() }
    }

    fn push(&mut self, received: u64, origin: RowOrigin, item: T) {
        if self.out.last().is_none_or(|(r, _)| *r != received) {
            self.out.push((received, Vec::new()));
        }
        let groups = &mut self.out.last_mut().expect("pushed above").1;
        match groups.last_mut() {
            Some((o, items)) if *o == origin => items.push(item),
            _ => groups.push((origin, vec![item])),
        }
    }
}

fn received_times(b: &RecordBatch) -> Result<Vec<u64>> {
    let r = times(b, "received_time_unix_nano")?;
    Ok(r.values().iter().map(|t| *t as u64).collect())
}

fn kind_number(kind: &str) -> i32 {
    match kind {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => 0,
    }
}

fn status_number(code: &str) -> i32 {
    match code {
        "ok" => 1,
        "error" => 2,
        _ => 0,
    }
}

/// The list items `[from, to)` of row `i`.
fn list_range(l: &ListArray, i: usize) -> (usize, usize) {
    let o = l.value_offsets();
    (o[i] as usize, o[i + 1] as usize)
}

fn struct_of(l: &ListArray) -> Result<&StructArray> {
    l.values()
        .as_struct_opt()
        .ok_or_else(|| Error::Schema("list of structs expected".into()))
}

/// The spans of a `spans` batch as requests, each with the time it was received (unix ns).
///
/// # Errors
/// [`Error::Schema`] when the batch does not have the `spans` schema.
pub fn traces_from_batch(b: &RecordBatch) -> Result<Vec<(u64, ExportTraceServiceRequest)>> {
    let origin = OriginReader::new(b)?;
    let received = received_times(b)?;
    let (trace_id, span_id, trace_state, parent) = (
        strings(b, "trace_id")?,
        strings(b, "span_id")?,
        strings(b, "trace_state")?,
        strings(b, "parent_span_id")?,
    );
    let (flags, name, kind): (&UInt32Array, _, _) =
        (typed(b, "flags")?, strings(b, "name")?, strings(b, "kind")?);
    let (start, end) = (
        times(b, "start_time_unix_nano")?,
        times(b, "end_time_unix_nano")?,
    );
    let (code, message) = (strings(b, "status_code")?, strings(b, "status_message")?);
    let attributes = AttrReader::of(b, "attributes")?;
    let dropped: &UInt32Array = typed(b, "dropped_attributes_count")?;
    let events: &ListArray = typed(b, "events")?;
    let ev = struct_of(events)?;
    let ev_time = ev.column(0).as_primitive::<TimestampNanosecondType>();
    let ev_name = ev.column(1).as_string::<i32>();
    let ev_attrs = AttrReader::new(ev.column(2))?;
    let ev_dropped = ev.column(3).as_primitive::<UInt32Type>();
    let dropped_events: &UInt32Array = typed(b, "dropped_events_count")?;
    let links: &ListArray = typed(b, "links")?;
    let ln = struct_of(links)?;
    let ln_trace = ln.column(0).as_string::<i32>();
    let ln_span = ln.column(1).as_string::<i32>();
    let ln_state = ln.column(2).as_string::<i32>();
    let ln_flags = ln.column(3).as_primitive::<UInt32Type>();
    let ln_attrs = AttrReader::new(ln.column(4))?;
    let ln_dropped = ln.column(5).as_primitive::<UInt32Type>();
    let dropped_links: &UInt32Array = typed(b, "dropped_links_count")?;
    let mut g = Grouper::new();
    for (i, &received) in received.iter().enumerate() {
        let (from, to) = list_range(events, i);
        let span_events = (from..to)
            .map(|j| {
                Ok(pt::span::Event {
                    time_unix_nano: ev_time.value(j) as u64,
                    name: ev_name.value(j).to_owned(),
                    attributes: ev_attrs.get(j)?,
                    dropped_attributes_count: ev_dropped.value(j),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (from, to) = list_range(links, i);
        let span_links = (from..to)
            .map(|j| {
                Ok(pt::span::Link {
                    trace_id: id_bytes(ln_trace, j)?,
                    span_id: id_bytes(ln_span, j)?,
                    trace_state: ln_state.value(j).to_owned(),
                    attributes: ln_attrs.get(j)?,
                    dropped_attributes_count: ln_dropped.value(j),
                    flags: ln_flags.value(j),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let status =
            (code.value(i) != "unset" || !message.value(i).is_empty()).then(|| pt::Status {
                message: message.value(i).to_owned(),
                code: status_number(code.value(i)),
            });
        let span = pt::Span {
            trace_id: id_bytes(trace_id, i)?,
            span_id: id_bytes(span_id, i)?,
            trace_state: trace_state.value(i).to_owned(),
            parent_span_id: id_bytes(parent, i)?,
            flags: flags.value(i),
            name: name.value(i).to_owned(),
            kind: kind_number(kind.value(i)),
            start_time_unix_nano: start.value(i) as u64,
            end_time_unix_nano: end.value(i) as u64,
            attributes: attributes.get(i)?,
            dropped_attributes_count: dropped.value(i),
            events: span_events,
            dropped_events_count: dropped_events.value(i),
            links: span_links,
            dropped_links_count: dropped_links.value(i),
            status,
        };
        g.push(received, origin.get(i)?, span);
    }
    Ok(g.out
        .into_iter()
        .map(|(received, groups)| {
            let resource_spans = groups
                .into_iter()
                .map(|(o, spans)| pt::ResourceSpans {
                    resource: Some(o.resource),
                    scope_spans: vec![pt::ScopeSpans {
                        scope: Some(o.scope),
                        spans,
                        schema_url: o.scope_schema_url,
                    }],
                    schema_url: o.resource_schema_url,
                })
                .collect();
            (received, ExportTraceServiceRequest { resource_spans })
        })
        .collect())
}

/// The log records of a `logs` batch as requests, each with the time it was received.
///
/// # Errors
/// [`Error::Schema`] when the batch does not have the `logs` schema.
pub fn logs_from_batch(b: &RecordBatch) -> Result<Vec<(u64, ExportLogsServiceRequest)>> {
    let origin = OriginReader::new(b)?;
    let received = received_times(b)?;
    let (time, observed) = (
        times(b, "time_unix_nano")?,
        times(b, "observed_time_unix_nano")?,
    );
    let sev_num: &Int32Array = typed(b, "severity_number")?;
    let sev_text = strings(b, "severity_text")?;
    let body = AnyReader::new(
        column(b, "body")?
            .as_struct_opt()
            .ok_or_else(|| Error::Schema("body is not an AnyValue".into()))?,
    )?;
    let (event_name, trace_id, span_id) = (
        strings(b, "event_name")?,
        strings(b, "trace_id")?,
        strings(b, "span_id")?,
    );
    let flags: &UInt32Array = typed(b, "flags")?;
    let attributes = AttrReader::of(b, "attributes")?;
    let dropped: &UInt32Array = typed(b, "dropped_attributes_count")?;
    let mut g = Grouper::new();
    for (i, &received) in received.iter().enumerate() {
        let record = pl::LogRecord {
            time_unix_nano: time.value(i) as u64,
            observed_time_unix_nano: observed.value(i) as u64,
            severity_number: sev_num.value(i),
            severity_text: sev_text.value(i).to_owned(),
            body: body.get(i)?,
            attributes: attributes.get(i)?,
            dropped_attributes_count: dropped.value(i),
            flags: flags.value(i),
            trace_id: id_bytes(trace_id, i)?,
            span_id: id_bytes(span_id, i)?,
            event_name: event_name.value(i).to_owned(),
        };
        g.push(received, origin.get(i)?, record);
    }
    Ok(g.out
        .into_iter()
        .map(|(received, groups)| {
            let resource_logs = groups
                .into_iter()
                .map(|(o, log_records)| pl::ResourceLogs {
                    resource: Some(o.resource),
                    scope_logs: vec![pl::ScopeLogs {
                        scope: Some(o.scope),
                        log_records,
                        schema_url: o.scope_schema_url,
                    }],
                    schema_url: o.resource_schema_url,
                })
                .collect();
            (received, ExportLogsServiceRequest { resource_logs })
        })
        .collect())
}

fn temporality_number(t: Option<&str>) -> i32 {
    match t {
        Some("delta") => 1,
        Some("cumulative") => 2,
        _ => 0,
    }
}

fn opt<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    a: &datafusion::arrow::array::PrimitiveArray<T>,
    i: usize,
) -> Option<T::Native> {
    a.is_valid(i).then(|| a.value(i))
}

fn u64_list(l: &ListArray, i: usize) -> Vec<u64> {
    if l.is_null(i) {
        return Vec::new();
    }
    l.value(i).as_primitive::<UInt64Type>().values().to_vec()
}

/// The points of a `metric_points` batch as requests (one metric per point), each with the time
/// it was received.
///
/// # Errors
/// [`Error::Schema`] when the batch does not have the `metric_points` schema.
pub fn metrics_from_batch(b: &RecordBatch) -> Result<Vec<(u64, ExportMetricsServiceRequest)>> {
    use pm::metric::Data;
    let origin = OriginReader::new(b)?;
    let received = received_times(b)?;
    let (name, description, unit, metric_type) = (
        strings(b, "metric_name")?,
        strings(b, "metric_description")?,
        strings(b, "metric_unit")?,
        strings(b, "metric_type")?,
    );
    let temporality = strings(b, "aggregation_temporality")?;
    let monotonic: &BooleanArray = typed(b, "is_monotonic")?;
    let attributes = AttrReader::of(b, "attributes")?;
    let (start, time) = (
        times(b, "start_time_unix_nano")?,
        times(b, "time_unix_nano")?,
    );
    let flags: &UInt32Array = typed(b, "flags")?;
    let value_double: &Float64Array = typed(b, "value_double")?;
    let value_int: &Int64Array = typed(b, "value_int")?;
    let count: &UInt64Array = typed(b, "count")?;
    let (sum, min, max): (&Float64Array, &Float64Array, &Float64Array) =
        (typed(b, "sum")?, typed(b, "min")?, typed(b, "max")?);
    let bucket_counts: &ListArray = typed(b, "bucket_counts")?;
    let bounds: &ListArray = typed(b, "explicit_bounds")?;
    let scale: &Int32Array = typed(b, "scale")?;
    let zero_count: &UInt64Array = typed(b, "zero_count")?;
    let zero_threshold: &Float64Array = typed(b, "zero_threshold")?;
    let positive_offset: &Int32Array = typed(b, "positive_offset")?;
    let positive_counts: &ListArray = typed(b, "positive_bucket_counts")?;
    let negative_offset: &Int32Array = typed(b, "negative_offset")?;
    let negative_counts: &ListArray = typed(b, "negative_bucket_counts")?;
    let quantiles: &ListArray = typed(b, "quantile_values")?;
    let mut g = Grouper::new();
    for (i, &received) in received.iter().enumerate() {
        let attrs = attributes.get(i)?;
        let (st, t, fl) = (start.value(i) as u64, time.value(i) as u64, flags.value(i));
        let tm = temporality_number(temporality.is_valid(i).then(|| temporality.value(i)));
        let data = match metric_type.value(i) {
            "gauge" | "sum" => {
                use pm::number_data_point::Value;
                let value = opt(value_double, i)
                    .map(Value::AsDouble)
                    .or_else(|| opt(value_int, i).map(Value::AsInt));
                let points = vec![pm::NumberDataPoint {
                    attributes: attrs,
                    start_time_unix_nano: st,
                    time_unix_nano: t,
                    exemplars: Vec::new(),
                    flags: fl,
                    value,
                }];
                if metric_type.value(i) == "gauge" {
                    Data::Gauge(pm::Gauge {
                        data_points: points,
                    })
                } else {
                    Data::Sum(pm::Sum {
                        data_points: points,
                        aggregation_temporality: tm,
                        is_monotonic: monotonic.is_valid(i) && monotonic.value(i),
                    })
                }
            }
            "histogram" => Data::Histogram(pm::Histogram {
                data_points: vec![pm::HistogramDataPoint {
                    attributes: attrs,
                    start_time_unix_nano: st,
                    time_unix_nano: t,
                    count: opt(count, i).unwrap_or(0),
                    sum: opt(sum, i),
                    bucket_counts: u64_list(bucket_counts, i),
                    explicit_bounds: if bounds.is_null(i) {
                        Vec::new()
                    } else {
                        bounds
                            .value(i)
                            .as_primitive::<Float64Type>()
                            .values()
                            .to_vec()
                    },
                    exemplars: Vec::new(),
                    flags: fl,
                    min: opt(min, i),
                    max: opt(max, i),
                }],
                aggregation_temporality: tm,
            }),
            "exponential_histogram" => {
                use pm::exponential_histogram_data_point::Buckets;
                let buckets = |offset: &Int32Array, counts: &ListArray| {
                    opt(offset, i).map(|offset| Buckets {
                        offset,
                        bucket_counts: u64_list(counts, i),
                    })
                };
                Data::ExponentialHistogram(pm::ExponentialHistogram {
                    data_points: vec![pm::ExponentialHistogramDataPoint {
                        attributes: attrs,
                        start_time_unix_nano: st,
                        time_unix_nano: t,
                        count: opt(count, i).unwrap_or(0),
                        sum: opt(sum, i),
                        scale: opt(scale, i).unwrap_or(0),
                        zero_count: opt(zero_count, i).unwrap_or(0),
                        positive: buckets(positive_offset, positive_counts),
                        negative: buckets(negative_offset, negative_counts),
                        flags: fl,
                        exemplars: Vec::new(),
                        min: opt(min, i),
                        max: opt(max, i),
                        zero_threshold: opt(zero_threshold, i).unwrap_or(0.0),
                    }],
                    aggregation_temporality: tm,
                })
            }
            "summary" => {
                let quantile_values = if quantiles.is_null(i) {
                    Vec::new()
                } else {
                    let q = quantiles.value(i);
                    let q = q
                        .as_struct_opt()
                        .ok_or_else(|| Error::Schema("quantile_values".into()))?;
                    let (qs, vs) = (
                        q.column(0).as_primitive::<Float64Type>(),
                        q.column(1).as_primitive::<Float64Type>(),
                    );
                    (0..q.len())
                        .map(|j| pm::summary_data_point::ValueAtQuantile {
                            quantile: qs.value(j),
                            value: vs.value(j),
                        })
                        .collect()
                };
                Data::Summary(pm::Summary {
                    data_points: vec![pm::SummaryDataPoint {
                        attributes: attrs,
                        start_time_unix_nano: st,
                        time_unix_nano: t,
                        count: opt(count, i).unwrap_or(0),
                        sum: opt(sum, i).unwrap_or(0.0),
                        quantile_values,
                        flags: fl,
                    }],
                })
            }
            other => return Err(Error::Schema(format!("unknown metric type {other:?}"))),
        };
        let metric = pm::Metric {
            name: name.value(i).to_owned(),
            description: description.value(i).to_owned(),
            unit: unit.value(i).to_owned(),
            metadata: Vec::new(),
            data: Some(data),
        };
        g.push(received, origin.get(i)?, metric);
    }
    Ok(g.out
        .into_iter()
        .map(|(received, groups)| {
            let resource_metrics = groups
                .into_iter()
                .map(|(o, metrics)| pm::ResourceMetrics {
                    resource: Some(o.resource),
                    scope_metrics: vec![pm::ScopeMetrics {
                        scope: Some(o.scope),
                        metrics,
                        schema_url: o.scope_schema_url,
                    }],
                    schema_url: o.resource_schema_url,
                })
                .collect();
            (received, ExportMetricsServiceRequest { resource_metrics })
        })
        .collect())
}

fn change_kind(kind: &str) -> Result<ChangeKind> {
    serde_json::from_value(serde_json::Value::String(kind.to_owned()))
        .map_err(|_| Error::Schema(format!("unknown change kind {kind:?}")))
}

/// The changes of a `changes` batch, each with the time it was received.
///
/// # Errors
/// [`Error::Schema`] when the batch does not have the `changes` schema.
pub fn changes_from_batch(b: &RecordBatch) -> Result<Vec<(u64, ChangeEvent)>> {
    let received = received_times(b)?;
    let kind = strings(b, "kind")?;
    let (time, end) = (times(b, "time_unix_nano")?, times(b, "end_time_unix_nano")?);
    let s = |name: &str| strings(b, name);
    let (service, environment, from, to) = (
        s("service")?,
        s("environment")?,
        s("version_from")?,
        s("version_to")?,
    );
    let (commit, author, source, summary) =
        (s("commit")?, s("author")?, s("source")?, s("summary")?);
    let (object_kind, object_name, object_namespace) =
        (s("object_kind")?, s("object_name")?, s("object_namespace")?);
    let (reason, flag, external_id) = (s("reason")?, s("flag")?, s("external_id")?);
    (0..b.num_rows())
        .map(|i| {
            let object = opt_str(object_kind, i).map(|kind| ObjectRef {
                kind,
                name: opt_str(object_name, i).unwrap_or_default(),
                namespace: opt_str(object_namespace, i),
            });
            let change = ChangeEvent {
                kind: change_kind(kind.value(i))?,
                time_unix_nano: time.value(i) as u64,
                end_time_unix_nano: end.is_valid(i).then(|| end.value(i) as u64),
                service: opt_str(service, i),
                environment: opt_str(environment, i),
                version_from: opt_str(from, i),
                version_to: opt_str(to, i),
                commit: opt_str(commit, i),
                author: opt_str(author, i),
                source: source.value(i).to_owned(),
                summary: summary.value(i).to_owned(),
                object,
                reason: opt_str(reason, i),
                flag: opt_str(flag, i),
                external_id: opt_str(external_id, i),
            };
            Ok((received[i], change))
        })
        .collect()
}
