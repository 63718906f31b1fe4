//! The SQL table `service_edges`: the knowledge graph's bucketed statistics of service →
//! service calls, read from the graph at query time (10 s buckets, 1 min and 10 min once rolled
//! up; see README, "SQL tables").

use std::sync::{Arc, LazyLock, RwLock};

use async_trait::async_trait;
use loupe_graph::{EdgeBucket, KnowledgeGraph};
use loupe_store::datafusion::arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt64Builder,
};
use loupe_store::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use loupe_store::datafusion::catalog::{Session, TableProvider};
use loupe_store::datafusion::datasource::MemTable;
use loupe_store::datafusion::error::Result;
use loupe_store::datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use loupe_store::datafusion::physical_plan::ExecutionPlan;
use loupe_store::schema::timestamp;
use loupe_store::time_bounds;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f = |name: &str, t: DataType, null: bool| Field::new(name, t, null);
    Arc::new(Schema::new(vec![
        f("time_unix_nano", timestamp(), false),
        f("bucket_seconds", DataType::UInt64, false),
        f("caller", DataType::Utf8, false),
        f("callee", DataType::Utf8, false),
        f("calls", DataType::UInt64, false),
        f("errors", DataType::UInt64, false),
        f("error_ratio", DataType::Float64, false),
        f("duration_mean_seconds", DataType::Float64, true),
        f("duration_p50_seconds", DataType::Float64, true),
        f("duration_p95_seconds", DataType::Float64, true),
        f("duration_p99_seconds", DataType::Float64, true),
    ]))
});

/// `service_edges` over a graph.
#[derive(Clone)]
pub struct ServiceEdges(pub Arc<RwLock<KnowledgeGraph>>);

impl std::fmt::Debug for ServiceEdges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceEdges")
    }
}

fn batch(rows: &[EdgeBucket]) -> Result<RecordBatch> {
    let n = rows.len();
    let mut time = TimestampNanosecondBuilder::with_capacity(n);
    let (mut width, mut calls, mut errors) = (
        UInt64Builder::with_capacity(n),
        UInt64Builder::with_capacity(n),
        UInt64Builder::with_capacity(n),
    );
    let (mut caller, mut callee) = (StringBuilder::new(), StringBuilder::new());
    let mut floats: Vec<Float64Builder> =
        (0..5).map(|_| Float64Builder::with_capacity(n)).collect();
    for r in rows {
        time.append_value(r.start_unix_nano as i64);
        width.append_value(r.width_seconds);
        caller.append_value(&r.source);
        callee.append_value(&r.target);
        calls.append_value(r.red.calls);
        errors.append_value(r.red.errors);
        let ratio = if r.red.calls == 0 {
            0.0
        } else {
            r.red.errors as f64 / r.red.calls as f64
        };
        floats[0].append_value(ratio);
        floats[1].append_option(r.red.duration.mean_seconds());
        floats[2].append_option(r.red.duration.quantile_seconds(0.5));
        floats[3].append_option(r.red.duration.quantile_seconds(0.95));
        floats[4].append_option(r.red.duration.quantile_seconds(0.99));
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish().with_timezone("UTC")),
        Arc::new(width.finish()),
        Arc::new(caller.finish()),
        Arc::new(callee.finish()),
        Arc::new(calls.finish()),
        Arc::new(errors.finish()),
    ];
    columns.extend(floats.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
}

#[async_trait]
impl TableProvider for ServiceEdges {
    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (from, to) = time_bounds(filters, "time_unix_nano");
        let start = from.map_or(0, |f| f.max(0) as u64);
        // Buckets start before the bound they may still cover; `to` is inclusive.
        let end = to.map_or(u64::MAX / 2, |t| t.max(0) as u64 + 1);
        let rows = {
            let graph = self.0.read().unwrap_or_else(|p| p.into_inner());
            graph.edge_buckets(start, end)
        };
        let table = MemTable::try_new(SCHEMA.clone(), vec![vec![batch(&rows)?]])?;
        table.scan(state, projection, filters, limit).await
    }
}
