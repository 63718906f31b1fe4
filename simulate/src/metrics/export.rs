//! How a simulated deployment exports its metrics ([`MetricExport`]): the collection
//! interval, and durations and counters as delta or cumulative histograms and sums, or as
//! per-interval summaries with quantiles, as Prometheus-style and cloud-metric converters send
//! them ([`Temporality`]; OTLP metrics data model, "Temporality"); a function's FaaS metrics.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, summary_data_point, AggregationTemporality, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_semantic_conventions::{attribute as sc, metric as sm};
use serde::{Deserialize, Serialize};

use super::{ByPod, Hist, Meters, HTTP_BOUNDS};
use crate::otlp::kv;
use crate::sim::SECOND;

/// How a simulated deployment exports its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricExport {
    /// Collection interval, seconds (15 s for an SDK's reader, 60 s or 300 s for a
    /// cloud provider's metrics converted by a Collector).
    pub interval_seconds: u64,
    /// How durations and counters are sent.
    pub temporality: Temporality,
}

impl Default for MetricExport {
    fn default() -> Self {
        Self {
            interval_seconds: 15,
            temporality: Temporality::Delta,
        }
    }
}

impl MetricExport {
    /// The collection interval, nanoseconds.
    pub fn interval_nanos(&self) -> u64 {
        self.interval_seconds.max(1) * SECOND
    }
}

/// How durations and counters are sent (OTLP metrics data model, "Temporality").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Temporality {
    /// Histograms and sums of each interval alone (the SDKs' delta preference).
    #[default]
    Delta,
    /// Histograms and sums from the series' start (the SDKs' default, Prometheus).
    Cumulative,
    /// Summaries (count, sum, quantiles) of each interval, each point with its interval's
    /// start, as cloud-metric converters send them; counters as delta sums.
    Summary,
}

impl Temporality {
    /// Every way, in the order of `--temporality`'s help.
    pub const ALL: [Self; 3] = [Self::Delta, Self::Cumulative, Self::Summary];

    /// The snake-case name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delta => "delta",
            Self::Cumulative => "cumulative",
            Self::Summary => "summary",
        }
    }
}

impl std::str::FromStr for Temporality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown temporality {s:?}; known: delta, cumulative, summary"))
    }
}

/// Quantiles a summary point carries.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// One series of durations: its metric, unit and bucket bounds, attributes and measurements.
#[derive(Debug, Clone)]
pub(super) struct Series {
    pub(super) name: &'static str,
    pub(super) unit: &'static str,
    pub(super) bounds: &'static [f64],
    pub(super) attributes: Vec<KeyValue>,
    pub(super) hist: Hist,
}

/// One point of a duration metric: its start, attributes and measurements.
type Point = (u64, Vec<KeyValue>, Hist);

impl Meters {
    /// The OTLP metrics of one pod's duration series over `(start, t)`, one metric per name,
    /// as the export's temporality sends them (cumulative series are kept across intervals
    /// and sent every interval, with or without new measurements).
    pub(super) fn durations(
        &mut self,
        pod: usize,
        series: Vec<Series>,
        (start, t): (u64, u64),
    ) -> Vec<Metric> {
        let mut by_name: BTreeMap<&'static str, (&'static str, &'static [f64], Vec<Point>)> =
            BTreeMap::new();
        match self.export.temporality {
            Temporality::Delta | Temporality::Summary => {
                for x in series {
                    by_name
                        .entry(x.name)
                        .or_insert((x.unit, x.bounds, Vec::new()))
                        .2
                        .push((start, x.attributes, x.hist));
                }
            }
            Temporality::Cumulative => {
                for x in series {
                    let key = (pod, x.name, format!("{:?}", x.attributes));
                    match self.totals.get_mut(&key) {
                        Some((_, total)) => total.hist.merge(&x.hist),
                        None => {
                            self.totals.insert(key, (start, x));
                        }
                    }
                }
                let mine = (pod, "", String::new())..(pod + 1, "", String::new());
                for (start, x) in self.totals.range(mine).map(|(_, v)| v) {
                    by_name
                        .entry(x.name)
                        .or_insert((x.unit, x.bounds, Vec::new()))
                        .2
                        .push((*start, x.attributes.clone(), x.hist.clone()));
                }
            }
        }
        by_name
            .into_iter()
            .map(|(name, (unit, bounds, points))| {
                self.duration_metric(name, unit, bounds, points, t)
            })
            .collect()
    }

    /// One duration metric of `points` (each with its start) at `t`.
    fn duration_metric(
        &self,
        name: &str,
        unit: &str,
        bounds: &[f64],
        points: Vec<Point>,
        t: u64,
    ) -> Metric {
        let data = match self.export.temporality {
            Temporality::Summary => metric::Data::Summary(Summary {
                data_points: points
                    .into_iter()
                    .map(|(start, attributes, h)| SummaryDataPoint {
                        attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: t,
                        count: h.count,
                        sum: h.sum,
                        quantile_values: QUANTILES
                            .iter()
                            .map(|&q| summary_data_point::ValueAtQuantile {
                                quantile: q,
                                value: h.quantile(bounds, q),
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
            }),
            temporality => metric::Data::Histogram(Histogram {
                aggregation_temporality: if temporality == Temporality::Cumulative {
                    AggregationTemporality::Cumulative
                } else {
                    AggregationTemporality::Delta
                } as i32,
                data_points: points
                    .into_iter()
                    .map(|(start, attributes, h)| HistogramDataPoint {
                        attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: t,
                        count: h.count,
                        sum: Some(h.sum),
                        bucket_counts: h.counts,
                        explicit_bounds: bounds.to_vec(),
                        min: Some(h.min),
                        max: Some(h.max),
                        ..Default::default()
                    })
                    .collect(),
            }),
        };
        Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    /// A monotonic counter `name` of one pod: `value` more over `(start, t)`, as a delta or
    /// cumulative sum by the export's temporality.
    fn counter(
        &mut self,
        pod: usize,
        name: &'static str,
        unit: &str,
        value: f64,
        (start, t): (u64, u64),
    ) -> Metric {
        let (start, value, temporality) = match self.export.temporality {
            Temporality::Cumulative => {
                let total = self.counters.entry((pod, name)).or_insert((start, 0.0));
                total.1 += value;
                (total.0, total.1, AggregationTemporality::Cumulative)
            }
            _ => (start, value, AggregationTemporality::Delta),
        };
        Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: t,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                }],
                aggregation_temporality: temporality as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }
    }
}

impl Meters {
    /// A function's invocations over `(start, t)` as the FaaS metrics conventions report them:
    /// `faas.invocations` and `faas.errors` counters (pushed onto `metrics`, every interval)
    /// and the durations, without an outcome, as one `faas.invoke_duration` series (none when
    /// it was not invoked). `served` is the function's measurements, in seconds (see
    /// [`super::server_protocol`]).
    pub(super) fn function_series(
        &mut self,
        pod: usize,
        served: &ByPod,
        (start, t): (u64, u64),
        metrics: &mut Vec<Metric>,
    ) -> Vec<Series> {
        let (mut all, mut errors) = (Hist::default(), 0u64);
        for ((_, _, failed), (_, h)) in served {
            errors += if *failed { h.count } else { 0 };
            all.merge(h);
        }
        let interval = (start, t);
        metrics.push(self.counter(
            pod,
            sm::FAAS_INVOCATIONS,
            "{invocation}",
            all.count as f64,
            interval,
        ));
        metrics.push(self.counter(pod, sm::FAAS_ERRORS, "{error}", errors as f64, interval));
        if all.count == 0 {
            return Vec::new();
        }
        vec![Series {
            name: sm::FAAS_INVOKE_DURATION,
            unit: "s",
            bounds: &HTTP_BOUNDS,
            attributes: vec![kv(sc::FAAS_TRIGGER, "http")],
            hist: all,
        }]
    }
}
