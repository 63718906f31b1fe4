//! SQL over the store with DataFusion: each table is one provider that reads the hot Arrow
//! batches and the Parquet segments together, pruning segments by the time range in the query's
//! filters and row groups by their statistics, bloom filters and page index (Parquet filter
//! pushdown on).
//!
//! [`QueryEngine::query`] runs read-only SQL (DDL, DML and `SET` are refused) with a row limit
//! and a time limit; a query past its time limit is cancelled (its stream dropped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;

use crate::error::{Error, QueryError, Result};
use crate::schema::Table;
use crate::store::Store;

/// Limits on one query.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Rows returned at most; the answer says when it was cut (default 10 000).
    pub max_rows: usize,
    /// Wall time allowed; the query is cancelled after it (default 30 s).
    pub timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A query's answer.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// The result schema.
    pub schema: SchemaRef,
    /// The rows, at most `max_rows`.
    pub batches: Vec<RecordBatch>,
    /// Rows returned.
    pub rows: usize,
    /// Whether more rows were left out by the row limit.
    pub truncated: bool,
    /// Wall time spent.
    pub elapsed: Duration,
}

/// A stored table as DataFusion sees it.
#[derive(Debug)]
struct StoreTable {
    store: Arc<Store>,
    table: Table,
}

/// Nanoseconds of a timestamp literal.
fn timestamp_nanos(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn literal_nanos(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => timestamp_nanos(v),
        Expr::Cast(c) => literal_nanos(&c.expr),
        _ => None,
    }
}

fn is_column(e: &Expr, name: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == name,
        Expr::Cast(c) => is_column(&c.expr, name),
        _ => false,
    }
}

/// Narrows `[from, to]` by the filters that bound `column` with a timestamp literal (only
/// conjunctions: what the filter list is).
pub fn time_bounds(filters: &[Expr], column: &str) -> (Option<i64>, Option<i64>) {
    let (mut from, mut to): (Option<i64>, Option<i64>) = (None, None);
    let mut lower = |v: i64| from = Some(from.map_or(v, |f| f.max(v)));
    let mut upper_bounds = Vec::new();
    let mut visit = |e: &Expr, stack: &mut Vec<Expr>| match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                stack.push((**left).clone());
                stack.push((**right).clone());
                return;
            }
            let (col_left, value) = if is_column(left, column) {
                (true, literal_nanos(right))
            } else if is_column(right, column) {
                (false, literal_nanos(left))
            } else {
                return;
            };
            let Some(v) = value else { return };
            let op = if col_left {
                *op
            } else {
                op.swap().unwrap_or(*op)
            };
            match op {
                Operator::Gt | Operator::GtEq => lower(v),
                Operator::Lt | Operator::LtEq => upper_bounds.push(v),
                Operator::Eq => {
                    lower(v);
                    upper_bounds.push(v);
                }
                _ => {}
            }
        }
        Expr::Between(b) if !b.negated && is_column(&b.expr, column) => {
            if let (Some(l), Some(h)) = (literal_nanos(&b.low), literal_nanos(&b.high)) {
                lower(l);
                upper_bounds.push(h);
            }
        }
        _ => {}
    };
    let mut stack: Vec<Expr> = filters.to_vec();
    while let Some(e) = stack.pop() {
        visit(&e, &mut stack);
    }
    if let Some(min) = upper_bounds.into_iter().min() {
        to = Some(min);
    }
    (from, to)
}

fn df(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(e.to_string().into())
}

#[async_trait::async_trait]
impl TableProvider for StoreTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Used to prune segments and row groups; DataFusion still filters the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let schema = self.table.schema();
        let (from, to) = time_bounds(filters, self.table.time_column());
        let (hot, segments) = self.store.snapshot(self.table, from, to);
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !hot.is_empty() {
            // Two partitions: both cores scan the hot data.
            let half = hot.len().div_ceil(2);
            let partitions: Vec<Vec<RecordBatch>> =
                hot.chunks(half.max(1)).map(|c| c.to_vec()).collect();
            let mem = MemTable::try_new(schema.clone(), partitions)?;
            plans.push(mem.scan(state, projection, filters, limit).await?);
        }
        if !segments.is_empty() {
            let urls = segments
                .iter()
                .map(|s| ListingTableUrl::parse(s.path.to_string_lossy()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(schema.clone());
            let listing = ListingTable::try_new(config)?;
            plans.push(listing.scan(state, projection, filters, limit).await?);
        }
        match plans.len() {
            0 => {
                let projected = match projection {
                    Some(p) => Arc::new(schema.project(p).map_err(df)?),
                    None => schema,
                };
                Ok(Arc::new(EmptyExec::new(projected)))
            }
            _ => UnionExec::try_new(plans),
        }
    }
}

/// A DataFusion session over the store's tables, plus any extra tables the caller registers
/// (the graph's `service_edges`).
pub struct QueryEngine {
    ctx: SessionContext,
}

impl QueryEngine {
    /// A session with the store's four tables registered.
    ///
    /// # Errors
    /// [`Error::Query`] when registration fails (a bug).
    pub fn new(store: Arc<Store>) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(true);
        {
            let options = config.options_mut();
            options.execution.parquet.pushdown_filters = true;
            options.execution.parquet.reorder_filters = true;
            options.execution.parquet.bloom_filter_on_read = true;
            options.execution.parquet.schema_force_view_types = false;
        }
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udaf(crate::functions::histogram_quantile());
        for table in Table::ALL {
            let provider = StoreTable {
                store: store.clone(),
                table,
            };
            ctx.register_table(table.name(), Arc::new(provider))
                .map_err(|e| Error::Query(QueryError::Execution(e.to_string())))?;
        }
        Ok(Self { ctx })
    }

    /// Registers another table (read at query time by its provider).
    ///
    /// # Errors
    /// [`Error::Query`] when the name is taken.
    pub fn register(&self, name: &str, provider: Arc<dyn TableProvider>) -> Result<()> {
        self.ctx
            .register_table(name, provider)
            .map(|_| ())
            .map_err(|e| Error::Query(QueryError::Execution(e.to_string())))
    }

    /// Runs one read-only SQL statement within `limits`.
    ///
    /// # Errors
    /// [`QueryError::Invalid`] for SQL that does not parse or plan or is not read-only,
    /// [`QueryError::Timeout`] past the time limit, [`QueryError::Execution`] when it fails.
    pub async fn query(&self, sql: &str, limits: QueryLimits) -> Result<QueryOutput, QueryError> {
        let started = Instant::now();
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let run = async {
            let frame = self
                .ctx
                .sql_with_options(sql, options)
                .await
                .map_err(|e| QueryError::Invalid(clean(e)))?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let mut stream = frame
                .execute_stream()
                .await
                .map_err(|e| QueryError::Execution(clean(e)))?;
            let mut batches = Vec::new();
            let mut rows = 0;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| QueryError::Execution(clean(e)))?;
                let room = limits.max_rows - rows;
                if batch.num_rows() > room {
                    batches.push(batch.slice(0, room));
                    rows += room;
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
                if rows == limits.max_rows {
                    // Cut here unless the stream holds no more rows.
                    while let Some(next) = stream.next().await {
                        let next = next.map_err(|e| QueryError::Execution(clean(e)))?;
                        if next.num_rows() > 0 {
                            truncated = true;
                            break;
                        }
                    }
                    break;
                }
            }
            Ok::<_, QueryError>((schema, batches, rows, truncated))
        };
        let (schema, batches, rows, truncated) =
            tokio::time::timeout(limits.timeout, run)
                .await
                .map_err(|_| QueryError::Timeout(limits.timeout))??;
        Ok(QueryOutput {
            schema,
            batches,
            rows,
            truncated,
            elapsed: started.elapsed(),
        })
    }
}

/// DataFusion's message without its context chain noise.
fn clean(e: DataFusionError) -> String {
    e.strip_backtrace()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn time_bounds_come_from_comparisons_and_between() {
        let c = "start_time_unix_nano";
        let filters = vec![col(c).gt_eq(ts(10)), ts(50).gt(col(c))];
        assert_eq!(time_bounds(&filters, c), (Some(10), Some(50)));
        let between = vec![col(c).between(ts(5), ts(7)).and(col("name").eq(lit("x")))];
        assert_eq!(time_bounds(&between, c), (Some(5), Some(7)));
        let other = vec![col("end_time_unix_nano").gt(ts(10))];
        assert_eq!(time_bounds(&other, c), (None, None));
        let or = vec![col(c).gt(ts(10)).or(col(c).lt(ts(2)))];
        assert_eq!(
            time_bounds(&or, c),
            (None, None),
            "a disjunction bounds nothing"
        );
    }
}
