//! Column builders shared by the three OTLP tables: attribute maps, `AnyValue` structs, lists
//! and the origin (resource and scope) columns.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListArray,
    MapArray, StringBuilder, StructArray, TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::schema::{ANY_VALUE_FIELDS, ATTRIBUTE_ENTRIES};

/// Builds the `AnyValue` struct column.
#[derive(Default)]
pub(crate) struct AnyBuilder {
    string: StringBuilder,
    boolean: BooleanBuilder,
    int: Int64Builder,
    double: Float64Builder,
    bytes: BinaryBuilder,
    array: StringBuilder,
    kvlist: StringBuilder,
    valid: Vec<bool>,
}

impl AnyBuilder {
    /// Appends a value: `None` is a null struct, an `AnyValue` without a case a struct whose
    /// fields are all null.
    pub fn append(&mut self, value: Option<&AnyValue>) {
        self.valid.push(value.is_some());
        let case = value.and_then(|v| v.value.as_ref());
        let (mut s, mut b, mut i, mut d, mut by, mut a, mut k) =
            (None, None, None, None, None, None, None);
        match case {
            Some(any_value::Value::StringValue(v)) => s = Some(v.as_str()),
            Some(any_value::Value::BoolValue(v)) => b = Some(*v),
            Some(any_value::Value::IntValue(v)) => i = Some(*v),
            Some(any_value::Value::DoubleValue(v)) => d = Some(*v),
            Some(any_value::Value::BytesValue(v)) => by = Some(v.as_slice()),
            Some(any_value::Value::ArrayValue(v)) => a = serde_json::to_string(v).ok(),
            Some(any_value::Value::KvlistValue(v)) => k = serde_json::to_string(v).ok(),
            // Only the profiles signal uses string-table indices; spans, logs and metrics never
            // carry them.
            Some(any_value::Value::StringValueStrindex(_)) | None => {}
        }
        self.string.append_option(s);
        self.boolean.append_option(b);
        self.int.append_option(i);
        self.double.append_option(d);
        self.bytes.append_option(by);
        self.array.append_option(a);
        self.kvlist.append_option(k);
    }

    pub fn finish(&mut self) -> StructArray {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.string.finish()),
            Arc::new(self.boolean.finish()),
            Arc::new(self.int.finish()),
            Arc::new(self.double.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.array.finish()),
            Arc::new(self.kvlist.finish()),
        ];
        let valid = std::mem::take(&mut self.valid);
        let nulls = (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid));
        StructArray::new(ANY_VALUE_FIELDS.clone(), arrays, nulls)
    }
}

/// List offsets: one entry per row, starting at 0.
pub(crate) struct Offsets(Vec<i32>);

impl Default for Offsets {
    fn default() -> Self {
        Self(vec![0])
    }
}

impl Offsets {
    /// Closes a row holding `len` more items.
    pub fn push(&mut self, len: usize) {
        let last = *self.0.last().unwrap_or(&0);
        self.0.push(last + len as i32);
    }

    pub fn finish(&mut self) -> OffsetBuffer<i32> {
        let offsets = std::mem::replace(&mut self.0, vec![0]);
        OffsetBuffer::new(ScalarBuffer::from(offsets))
    }
}

/// Builds a `Map<Utf8, AnyValue>` column of attributes.
#[derive(Default)]
pub(crate) struct AttrBuilder {
    offsets: Offsets,
    keys: StringBuilder,
    values: AnyBuilder,
}

impl AttrBuilder {
    /// Appends one row's attributes, in wire order.
    pub fn append(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            self.keys.append_value(&kv.key);
            self.values.append(kv.value.as_ref());
        }
        self.offsets.push(kvs.len());
    }

    pub fn finish(&mut self) -> MapArray {
        let DataType::Struct(fields) = ATTRIBUTE_ENTRIES.data_type() else {
            unreachable!("attribute entries are a struct")
        };
        let entries = StructArray::new(
            fields.clone(),
            vec![Arc::new(self.keys.finish()), Arc::new(self.values.finish())],
            None,
        );
        MapArray::new(
            ATTRIBUTE_ENTRIES.clone(),
            self.offsets.finish(),
            entries,
            None,
            false,
        )
    }
}

/// A `List<item>` column from its offsets and item array.
pub(crate) fn list(
    item: DataType,
    offsets: OffsetBuffer<i32>,
    values: ArrayRef,
    nulls: Option<NullBuffer>,
) -> ArrayRef {
    Arc::new(ListArray::new(
        Arc::new(Field::new("item", item, true)),
        offsets,
        values,
        nulls,
    ))
}

/// A `List<Struct>` column.
pub(crate) fn struct_list(
    fields: &Fields,
    offsets: OffsetBuffer<i32>,
    arrays: Vec<ArrayRef>,
) -> ArrayRef {
    let values = StructArray::new(fields.clone(), arrays, None);
    list(
        DataType::Struct(fields.clone()),
        offsets,
        Arc::new(values),
        None,
    )
}

/// Lowercase hex of an id, or `None` for an empty one.
pub(crate) fn hex_id(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| hex::encode(bytes))
}

/// A timestamp column in UTC.
pub(crate) fn timestamps(b: &mut TimestampNanosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

/// A wire `fixed64` time as the stored `i64` (same bits).
pub(crate) fn ts(t: u64) -> i64 {
    t as i64
}

/// The origin columns: `service_name`, resource and scope.
#[derive(Default)]
pub(crate) struct OriginBuilder {
    service: StringBuilder,
    resource_attributes: AttrBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttrBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
}

/// The resource and scope of a group of items, as the wire carries them.
pub(crate) struct Origin<'a> {
    pub resource: Option<&'a Resource>,
    pub resource_schema_url: &'a str,
    pub scope: Option<&'a InstrumentationScope>,
    pub scope_schema_url: &'a str,
}

impl Origin<'_> {
    /// `service.name` as a string, or `unknown_service` as the SDKs default it.
    pub fn service_name(&self) -> &str {
        self.resource
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or("unknown_service")
    }
}

impl OriginBuilder {
    pub fn append(&mut self, origin: &Origin<'_>) {
        self.service.append_value(origin.service_name());
        let resource = origin.resource;
        self.resource_attributes
            .append(resource.map_or(&[], |r| &r.attributes));
        self.resource_dropped
            .append_value(resource.map_or(0, |r| r.dropped_attributes_count));
        self.resource_schema_url
            .append_value(origin.resource_schema_url);
        let scope = origin.scope;
        self.scope_name
            .append_value(scope.map_or("", |s| s.name.as_str()));
        self.scope_version
            .append_value(scope.map_or("", |s| s.version.as_str()));
        self.scope_attributes
            .append(scope.map_or(&[], |s| &s.attributes));
        self.scope_dropped
            .append_value(scope.map_or(0, |s| s.dropped_attributes_count));
        self.scope_schema_url.append_value(origin.scope_schema_url);
    }

    pub fn finish(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.service.finish()));
        columns.push(Arc::new(self.resource_attributes.finish()));
        columns.push(Arc::new(self.resource_dropped.finish()));
        columns.push(Arc::new(self.resource_schema_url.finish()));
        columns.push(Arc::new(self.scope_name.finish()));
        columns.push(Arc::new(self.scope_version.finish()));
        columns.push(Arc::new(self.scope_attributes.finish()));
        columns.push(Arc::new(self.scope_dropped.finish()));
        columns.push(Arc::new(self.scope_schema_url.finish()));
    }
}

/// Builders of plain columns, re-exported for the table modules.
pub(crate) type U32 = UInt32Builder;
pub(crate) type U64 = UInt64Builder;
pub(crate) type I32 = Int32Builder;
pub(crate) type I64 = Int64Builder;
pub(crate) type F64 = Float64Builder;
pub(crate) type Bool = BooleanBuilder;
pub(crate) type Str = StringBuilder;
pub(crate) type Ts = TimestampNanosecondBuilder;
