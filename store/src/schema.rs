//! The Arrow schemas of the stored tables, in OpenTelemetry terms: the one place they are
//! defined (README, "SQL tables", describes them for users).
//!
//! Conventions shared by every table:
//! - Times are `Timestamp(Nanosecond, "UTC")` under the OTLP field name (`start_time_unix_nano`,
//!   `time_unix_nano`…), so SQL can compare them with `now() - interval '1 hour'`; the OTLP
//!   `fixed64` value is kept bit for bit (read back as `u64`).
//! - Ids are lowercase hex text, as OTLP/JSON writes them (`trace_id = '4bf9…'`); empty ids are
//!   null.
//! - Attributes (`resource_attributes`, `scope_attributes`, `attributes`, an event's or link's
//!   `attributes`) are `Map<Utf8, AnyValue>` in wire order, where `AnyValue` is a struct with one
//!   non-null field per OTLP `AnyValue` case: `string_value`, `bool_value`, `int_value`,
//!   `double_value`, `bytes_value`, and `array_value` / `kvlist_value` as their OTLP/JSON text.
//!   In SQL: `attributes['http.route']['string_value']`,
//!   `attributes['http.response.status_code']['int_value'] >= 500`.
//! - `service_name` is the resource's `service.name` lifted into a column (the sort key of
//!   segments, with time), and `received_time_unix_nano` is when loupe received the request (the
//!   graph's record time).
//! - Enums are lowercase text: span `kind` `unspecified|internal|server|client|producer|consumer`,
//!   `status_code` `unset|ok|error`, metric `metric_type`
//!   `gauge|sum|histogram|exponential_histogram|summary`, `aggregation_temporality`
//!   `unspecified|delta|cumulative`.
//!
//! Not kept: metric exemplars and metric metadata, resource `entity_refs`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit,
};

/// The stored tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per span.
    Spans,
    /// One row per log record.
    Logs,
    /// One row per metric data point, every metric type.
    MetricPoints,
    /// One row per change posted to `/api/v1/changes`.
    Changes,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 4] = [
        Table::Spans,
        Table::Logs,
        Table::MetricPoints,
        Table::Changes,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spans => "spans",
            Self::Logs => "logs",
            Self::MetricPoints => "metric_points",
            Self::Changes => "changes",
        }
    }

    /// The table named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Self::Spans => SPANS.clone(),
            Self::Logs => LOGS.clone(),
            Self::MetricPoints => METRIC_POINTS.clone(),
            Self::Changes => CHANGES.clone(),
        }
    }

    /// The event-time column: what time-range predicates prune on and segments partition by.
    pub fn time_column(self) -> &'static str {
        match self {
            Self::Spans => "start_time_unix_nano",
            Self::Logs | Self::MetricPoints | Self::Changes => "time_unix_nano",
        }
    }

    /// The service column, first sort key of segments.
    pub fn service_column(self) -> &'static str {
        match self {
            Self::Changes => "service",
            _ => "service_name",
        }
    }
}

/// `Timestamp(Nanosecond, "UTC")`.
pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The fields of the `AnyValue` struct.
pub(crate) static ANY_VALUE_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new("string_value", DataType::Utf8, true),
        Field::new("bool_value", DataType::Boolean, true),
        Field::new("int_value", DataType::Int64, true),
        Field::new("double_value", DataType::Float64, true),
        Field::new("bytes_value", DataType::Binary, true),
        Field::new("array_value", DataType::Utf8, true),
        Field::new("kvlist_value", DataType::Utf8, true),
    ])
});

/// The `AnyValue` struct type.
pub fn any_value() -> DataType {
    DataType::Struct(ANY_VALUE_FIELDS.clone())
}

/// The entries field of an attribute map.
pub(crate) static ATTRIBUTE_ENTRIES: LazyLock<FieldRef> = LazyLock::new(|| {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", any_value(), true),
        ])),
        false,
    ))
});

/// `Map<Utf8, AnyValue>`.
pub fn attributes() -> DataType {
    DataType::Map(ATTRIBUTE_ENTRIES.clone(), false)
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// The struct of one span event.
pub(crate) static EVENT_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new("time_unix_nano", timestamp(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", attributes(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
});

/// The struct of one span link.
pub(crate) static LINK_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("attributes", attributes(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
});

/// The struct of one summary quantile.
pub(crate) static QUANTILE_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new("quantile", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
    ])
});

/// Columns every OTLP table starts with: who sent it.
fn origin() -> Vec<Field> {
    vec![
        Field::new("service_name", DataType::Utf8, false),
        Field::new("resource_attributes", attributes(), false),
        Field::new("resource_dropped_attributes_count", DataType::UInt32, false),
        Field::new("resource_schema_url", DataType::Utf8, false),
        Field::new("scope_name", DataType::Utf8, false),
        Field::new("scope_version", DataType::Utf8, false),
        Field::new("scope_attributes", attributes(), false),
        Field::new("scope_dropped_attributes_count", DataType::UInt32, false),
        Field::new("scope_schema_url", DataType::Utf8, false),
    ]
}

fn with_origin(own: Vec<Field>) -> SchemaRef {
    let mut fields = origin();
    fields.extend(own);
    fields.push(Field::new("received_time_unix_nano", timestamp(), false));
    Arc::new(Schema::new(fields))
}

static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_origin(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, true),
        Field::new("flags", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("start_time_unix_nano", timestamp(), false),
        Field::new("end_time_unix_nano", timestamp(), false),
        Field::new("duration_nano", DataType::Int64, false),
        Field::new("status_code", DataType::Utf8, false),
        Field::new("status_message", DataType::Utf8, false),
        Field::new("attributes", attributes(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new(
            "events",
            list_of(DataType::Struct(EVENT_FIELDS.clone())),
            false,
        ),
        Field::new("dropped_events_count", DataType::UInt32, false),
        Field::new(
            "links",
            list_of(DataType::Struct(LINK_FIELDS.clone())),
            false,
        ),
        Field::new("dropped_links_count", DataType::UInt32, false),
    ])
});

static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_origin(vec![
        Field::new("time_unix_nano", timestamp(), false),
        Field::new("observed_time_unix_nano", timestamp(), false),
        Field::new("severity_number", DataType::Int32, false),
        Field::new("severity_text", DataType::Utf8, false),
        Field::new("body", any_value(), true),
        Field::new("event_name", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("flags", DataType::UInt32, false),
        Field::new("attributes", attributes(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
});

static METRIC_POINTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let u64s = list_of(DataType::UInt64);
    with_origin(vec![
        Field::new("metric_name", DataType::Utf8, false),
        Field::new("metric_description", DataType::Utf8, false),
        Field::new("metric_unit", DataType::Utf8, false),
        Field::new("metric_type", DataType::Utf8, false),
        Field::new("aggregation_temporality", DataType::Utf8, true),
        Field::new("is_monotonic", DataType::Boolean, true),
        Field::new("attributes", attributes(), false),
        Field::new("start_time_unix_nano", timestamp(), false),
        Field::new("time_unix_nano", timestamp(), false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("value_double", DataType::Float64, true),
        Field::new("value_int", DataType::Int64, true),
        Field::new("count", DataType::UInt64, true),
        Field::new("sum", DataType::Float64, true),
        Field::new("min", DataType::Float64, true),
        Field::new("max", DataType::Float64, true),
        Field::new("bucket_counts", u64s.clone(), true),
        Field::new("explicit_bounds", list_of(DataType::Float64), true),
        Field::new("scale", DataType::Int32, true),
        Field::new("zero_count", DataType::UInt64, true),
        Field::new("zero_threshold", DataType::Float64, true),
        Field::new("positive_offset", DataType::Int32, true),
        Field::new("positive_bucket_counts", u64s.clone(), true),
        Field::new("negative_offset", DataType::Int32, true),
        Field::new("negative_bucket_counts", u64s, true),
        Field::new(
            "quantile_values",
            list_of(DataType::Struct(QUANTILE_FIELDS.clone())),
            true,
        ),
    ])
});

static CHANGES: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("time_unix_nano", timestamp(), false),
        Field::new("end_time_unix_nano", timestamp(), true),
        text("service"),
        text("environment"),
        text("version_from"),
        text("version_to"),
        text("commit"),
        text("author"),
        Field::new("source", DataType::Utf8, false),
        Field::new("summary", DataType::Utf8, false),
        text("object_kind"),
        text("object_name"),
        text("object_namespace"),
        text("reason"),
        text("flag"),
        text("external_id"),
        Field::new("received_time_unix_nano", timestamp(), false),
    ]))
});
