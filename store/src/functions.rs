//! SQL functions loupe adds to DataFusion.
//!
//! `histogram_quantile(q, explicit_bounds, bucket_counts)`: an aggregate over explicit-bucket
//! histogram points (`metric_points` rows of type `histogram`) that adds their bucket counts
//! and estimates the `q`-quantile (0 ≤ q ≤ 1) by linear interpolation inside the bucket that
//! holds it, as Prometheus' `histogram_quantile` does (the first bucket's lower edge is 0 when
//! its upper bound is positive; a quantile in the overflow bucket is the highest finite bound).
//! Points with other bounds than the first point's are an error, not silently mixed. Add delta
//! points, or the last cumulative point of each series: adding cumulative points over time
//! counts observations more than once.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, UInt64Type};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{create_udaf, Accumulator, AggregateUDF, Volatility};

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// The `histogram_quantile` aggregate.
pub fn histogram_quantile() -> AggregateUDF {
    create_udaf(
        "histogram_quantile",
        vec![
            DataType::Float64,
            list_of(DataType::Float64),
            list_of(DataType::UInt64),
        ],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(HistogramQuantile::default()))),
        Arc::new(vec![
            DataType::Float64,
            list_of(DataType::Float64),
            list_of(DataType::UInt64),
        ]),
    )
}

#[derive(Debug, Default)]
struct HistogramQuantile {
    q: Option<f64>,
    bounds: Option<Vec<f64>>,
    counts: Vec<u64>,
}

impl HistogramQuantile {
    fn add(&mut self, q: f64, bounds: &[f64], counts: &[u64]) -> Result<()> {
        if !(0.0..=1.0).contains(&q) {
            return exec_err!("histogram_quantile: q must be within [0, 1], got {q}");
        }
        self.q.get_or_insert(q);
        match &self.bounds {
            None => {
                self.bounds = Some(bounds.to_vec());
                self.counts = vec![0; bounds.len() + 1];
            }
            Some(b) if b.as_slice() != bounds => {
                return exec_err!(
                    "histogram_quantile: points with different bucket bounds ({b:?} and {bounds:?}); group by the bounds or filter to one series"
                );
            }
            Some(_) => {}
        }
        if counts.len() != self.counts.len() {
            return exec_err!(
                "histogram_quantile: {} bucket counts for {} bounds (OTLP wants one more count than bounds)",
                counts.len(),
                bounds.len()
            );
        }
        for (total, c) in self.counts.iter_mut().zip(counts) {
            *total = total.saturating_add(*c);
        }
        Ok(())
    }

    fn update(&mut self, q: &dyn Array, bounds: &ListArray, counts: &ListArray) -> Result<()> {
        let q = q.as_primitive::<Float64Type>();
        for i in 0..q.len() {
            if q.is_null(i) || bounds.is_null(i) || counts.is_null(i) {
                continue;
            }
            let b = bounds.value(i);
            let c = counts.value(i);
            self.add(
                q.value(i),
                b.as_primitive::<Float64Type>().values(),
                c.as_primitive::<UInt64Type>().values(),
            )?;
        }
        Ok(())
    }
}

fn lists(values: &[ArrayRef]) -> Result<(&dyn Array, &ListArray, &ListArray)> {
    match values {
        [q, b, c] => match (b.as_list_opt::<i32>(), c.as_list_opt::<i32>()) {
            (Some(b), Some(c)) => Ok((q.as_ref(), b, c)),
            _ => exec_err!("histogram_quantile: bounds and counts must be lists"),
        },
        _ => exec_err!("histogram_quantile takes (q, explicit_bounds, bucket_counts)"),
    }
}

/// The quantile estimate of buckets with `counts` (one more than `bounds`), or `None` when
/// they are empty.
fn estimate(q: f64, bounds: &[f64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if (below + c) as f64 >= rank && c > 0 {
            if i == bounds.len() {
                // The overflow bucket has no upper edge.
                return bounds.last().copied();
            }
            let upper = bounds[i];
            let lower = match i {
                0 if upper > 0.0 => 0.0,
                0 => upper,
                _ => bounds[i - 1],
            };
            return Some(lower + (upper - lower) * ((rank - below as f64) / c as f64));
        }
        below += c;
    }
    bounds.last().copied()
}

impl Accumulator for HistogramQuantile {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (q, b, c) = lists(values)?;
        self.update(q, b, c)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (q, b, c) = lists(states)?;
        self.update(q, b, c)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let bounds: Vec<ScalarValue> = self
            .bounds
            .iter()
            .flatten()
            .map(|b| ScalarValue::Float64(Some(*b)))
            .collect();
        let counts: Vec<ScalarValue> = self
            .counts
            .iter()
            .map(|c| ScalarValue::UInt64(Some(*c)))
            .collect();
        let present = self.bounds.is_some();
        Ok(vec![
            ScalarValue::Float64(self.q),
            if present {
                ScalarValue::List(ScalarValue::new_list_nullable(&bounds, &DataType::Float64))
            } else {
                ScalarValue::Null.cast_to(&list_of(DataType::Float64))?
            },
            if present {
                ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::UInt64))
            } else {
                ScalarValue::Null.cast_to(&list_of(DataType::UInt64))?
            },
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value = match (&self.q, &self.bounds) {
            (Some(q), Some(bounds)) => estimate(*q, bounds, &self.counts),
            _ => None,
        };
        Ok(ScalarValue::Float64(value))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.bounds.as_ref().map_or(0, |b| b.len() * 8)
            + self.counts.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::estimate;

    #[test]
    fn the_estimate_interpolates_inside_the_bucket_as_prometheus_does() {
        let bounds = [0.1, 0.5, 1.0];
        // 10 in (0, 0.1], 30 in (0.1, 0.5], 40 in (0.5, 1], 20 above 1.
        let counts = [10, 30, 40, 20];
        assert_eq!(estimate(0.05, &bounds, &counts), Some(0.05));
        // Rank 50: 10 below the second bucket... 40 below the third, 10 of its 40.
        assert!((estimate(0.5, &bounds, &counts).unwrap() - 0.625).abs() < 1e-12);
        // Rank 90 is in the overflow bucket: the highest finite bound.
        assert_eq!(estimate(0.9, &bounds, &counts), Some(1.0));
        assert_eq!(estimate(0.5, &bounds, &[0, 0, 0, 0]), None);
    }
}
