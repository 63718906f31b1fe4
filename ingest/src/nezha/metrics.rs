//! Nezha per-pod metric files (`<pod>_metric.csv[.gz]`, one row a minute) → OTLP metric
//! requests: each column a gauge, named by the semantic conventions where one fits
//! (`k8s.pod.cpu.usage` in cores, `k8s.pod.memory.usage` in bytes, the `kubeletstats`
//! receiver's `k8s.pod.cpu_limit_utilization` as a ratio) and `nezha.pod.*` otherwise.

use std::ops::Range;
use std::path::Path;

use loupe_model::semconv::{
    K8S_POD_CPU_LIMIT_UTILIZATION, K8S_POD_CPU_USAGE, K8S_POD_MEMORY_LIMIT_UTILIZATION,
    K8S_POD_MEMORY_USAGE,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point::Value, AggregationTemporality, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};

use super::csv_files::{bad_row, columns, records};
use super::resource;
use crate::error::{Error, Result};
use crate::request::{ExportRequest, Inner};

/// Column → (metric name, unit, scale to that unit).
fn metric_of_column(column: &str) -> Option<(String, &'static str, f64)> {
    Some(match column {
        "Time" | "TimeStamp" | "PodName" => return None,
        "CpuUsage(m)" => (K8S_POD_CPU_USAGE.to_owned(), "{cpu}", 1e-3),
        "MemoryUsage(Mi)" => (K8S_POD_MEMORY_USAGE.to_owned(), "By", 1024.0 * 1024.0),
        "CpuUsageRate(%)" => (K8S_POD_CPU_LIMIT_UTILIZATION.to_owned(), "1", 0.01),
        "MemoryUsageRate(%)" => (K8S_POD_MEMORY_LIMIT_UTILIZATION.to_owned(), "1", 0.01),
        other => {
            let (name, unit) = match other.find('(') {
                Some(i) => (&other[..i], other[i + 1..].trim_end_matches(')')),
                None => (other, ""),
            };
            let unit = match unit {
                "%" => "%",
                "s" => "s",
                "Ops" => "{operation}/s",
                _ => "1",
            };
            (format!("nezha.pod.{}", snake_case(name)), unit, 1.0)
        }
    })
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Row `i`'s `TimeStamp` (unix seconds), or a dataset error naming the row.
fn row_seconds(path: &Path, row: &csv::StringRecord, i: usize, time: usize) -> Result<f64> {
    row.get(time)
        .unwrap_or("")
        .parse()
        .map_err(|e| bad_row(path, i + 1, format!("TimeStamp: {e}")))
}

/// The columns a pod's served requests come from: requests per second and the P90 server
/// latency (seconds) of the minute.
const WORKLOAD: &str = "PodWorkload(Ops)";
const SERVER_P90: &str = "PodServerLatencyP90(s)";
/// The server-side request-duration metric of the HTTP semantic conventions.
const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";

/// A row's served requests as a delta `http.server.request.duration` histogram point over the
/// minute that ends at `t`: the count is `PodWorkload(Ops)` × 60 and the sum is that count
/// times `PodServerLatencyP90(s)` (Nezha gives quantiles, not the mean, so the P90 stands for
/// it). `PodSuccessRate(%)` reads 0 for pods that serve, so no failures are derived. `None`
/// for a row with no requests or an unreadable cell.
fn server_duration(
    row: &csv::StringRecord,
    [workload, p90]: [usize; 2],
    t: u64,
) -> Option<HistogramDataPoint> {
    let cell = |i: usize| row.get(i).and_then(|v| v.parse::<f64>().ok());
    let (rate, p90) = (cell(workload)?, cell(p90)?);
    let count = (rate * 60.0).round();
    if !(count >= 1.0 && p90.is_finite() && p90 >= 0.0) {
        return None;
    }
    Some(HistogramDataPoint {
        start_time_unix_nano: t.saturating_sub(60_000_000_000),
        time_unix_nano: t,
        count: count as u64,
        sum: Some(count * p90),
        ..Default::default()
    })
}

/// The `*_metric.csv[.gz]` files in `dir/metric`, in name order; none when there is no such
/// folder.
fn metric_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let metric_dir = dir.join("metric");
    let Ok(entries) = std::fs::read_dir(&metric_dir) else {
        return Ok(Vec::new());
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: metric_dir.display().to_string(),
            source,
        })?;
        if entry.file_name().to_string_lossy().contains("_metric.csv") {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Metric points of every `*_metric.csv[.gz]` file in `dir/metric` within `range`, one request
/// per pod.
pub(super) fn load(dir: &Path, range: &Range<u64>) -> Result<Vec<ExportRequest>> {
    let paths = metric_files(dir)?;
    let mut requests = Vec::new();
    for path in paths {
        let (headers, rows) = records(&path)?;
        let [time, pod_column] = columns(&path, &headers, ["TimeStamp", "PodName"])?;
        let mut metrics: Vec<Metric> = headers
            .iter()
            .filter_map(metric_of_column)
            .map(|(name, unit, _)| Metric {
                name,
                unit: unit.to_owned(),
                ..Default::default()
            })
            .collect();
        let wanted: Vec<(usize, usize, f64)> = headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| metric_of_column(h).map(|m| (i, m.2)))
            .enumerate()
            .map(|(slot, (column, scale))| (slot, column, scale))
            .collect();
        let served = columns(&path, &headers, [WORKLOAD, SERVER_P90]).ok();
        let mut pod = None;
        let mut points: Vec<Vec<NumberDataPoint>> = vec![Vec::new(); metrics.len()];
        let mut durations = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let seconds = row_seconds(&path, r, i, time)?;
            let t = (seconds * 1e9) as u64;
            if !range.contains(&t) {
                continue;
            }
            pod.get_or_insert_with(|| r.get(pod_column).unwrap_or("").to_owned());
            if let Some(point) = served.and_then(|columns| server_duration(r, columns, t)) {
                durations.push(point);
            }
            for &(slot, column, scale) in &wanted {
                // An empty or non-numeric cell is a gap in the series, not a zero.
                let Ok(v) = r.get(column).unwrap_or("").parse::<f64>() else {
                    continue;
                };
                points[slot].push(NumberDataPoint {
                    time_unix_nano: t,
                    value: Some(Value::AsDouble(v * scale)),
                    ..Default::default()
                });
            }
        }
        let Some(pod) = pod else { continue };
        for (metric, data_points) in metrics.iter_mut().zip(points) {
            metric.data = Some(Data::Gauge(Gauge { data_points }));
        }
        metrics.retain(|m| matches!(&m.data, Some(Data::Gauge(g)) if !g.data_points.is_empty()));
        if !durations.is_empty() {
            metrics.push(Metric {
                name: HTTP_SERVER_REQUEST_DURATION.to_owned(),
                unit: "s".to_owned(),
                data: Some(Data::Histogram(Histogram {
                    data_points: durations,
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                })),
                ..Default::default()
            });
        }
        let resource_metrics = vec![ResourceMetrics {
            resource: Some(resource(&pod)),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }];
        requests.push(ExportRequest(Inner::Metrics(ExportMetricsServiceRequest {
            resource_metrics,
        })));
    }
    Ok(requests)
}

/// The pods' metric rows as one matrix, the shape the RCAEval baselines (BARO, NSigma) take:
/// a row a minute, a column per `<service>_<metric>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricMatrix {
    /// Column names, `<service>_<file column less its unit>` (`ts-order-service_CpuUsage`).
    pub columns: Vec<String>,
    /// Rows in time order: the minute (unix seconds, a multiple of 60) and a value per column
    /// (`None` where that pod reported nothing that minute).
    pub rows: Vec<(u64, Vec<Option<f64>>)>,
}

impl MetricMatrix {
    /// The matrix as CSV with a leading `time` column (unix seconds); a gap is an empty cell.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("time");
        for c in &self.columns {
            out.push(',');
            out.push_str(c);
        }
        out.push('\n');
        for (t, values) in &self.rows {
            out.push_str(&t.to_string());
            for v in values {
                out.push(',');
                if let Some(v) = v {
                    out.push_str(&v.to_string());
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Whether a metric file column is one of the pod's own series: not the row's time or pod, and
/// not its node's (`Node*`, shared by every pod on the node).
fn own_series(column: &str) -> bool {
    metric_of_column(column).is_some() && !column.starts_with("Node")
}

/// Every pod's own series (see [`own_series`]) in `dir/metric` within `range` as one
/// [`MetricMatrix`], rows aligned by minute.
///
/// # Errors
/// [`Error::Io`] or [`Error::Dataset`] for an unreadable or malformed file.
pub(super) fn matrix(dir: &Path, range: &Range<u64>) -> Result<MetricMatrix> {
    let paths = metric_files(dir)?;
    let mut names: Vec<String> = Vec::new();
    let mut cells: std::collections::BTreeMap<u64, Vec<(usize, f64)>> = Default::default();
    for path in paths {
        let (headers, rows) = records(&path)?;
        let [time, pod_column] = columns(&path, &headers, ["TimeStamp", "PodName"])?;
        let wanted: Vec<(usize, &str)> = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| own_series(h))
            .map(|(i, h)| (i, h.split('(').next().unwrap_or(h)))
            .collect();
        let mut slots: Option<Vec<usize>> = None;
        for (i, r) in rows.iter().enumerate() {
            let seconds = row_seconds(&path, r, i, time)?;
            let t = (seconds * 1e9) as u64;
            if !range.contains(&t) {
                continue;
            }
            let slots = slots.get_or_insert_with(|| {
                let service = super::service_of_pod(r.get(pod_column).unwrap_or(""));
                wanted
                    .iter()
                    .map(|(_, name)| {
                        names.push(format!("{service}_{name}"));
                        names.len() - 1
                    })
                    .collect()
            });
            let minute = (seconds as u64) / 60 * 60;
            let row = cells.entry(minute).or_default();
            for (&slot, &(column, _)) in slots.iter().zip(&wanted) {
                // An empty or non-numeric cell is a gap, not a zero.
                if let Ok(v) = r.get(column).unwrap_or("").parse::<f64>() {
                    row.push((slot, v));
                }
            }
        }
    }
    let rows = cells
        .into_iter()
        .map(|(minute, set)| {
            let mut values = vec![None; names.len()];
            for (slot, v) in set {
                values[slot] = Some(v);
            }
            (minute, values)
        })
        .collect();
    Ok(MetricMatrix {
        columns: names,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_get_semantic_names_and_units() {
        let cases = [
            ("CpuUsage(m)", Some(("k8s.pod.cpu.usage", "{cpu}", 1e-3))),
            (
                "MemoryUsage(Mi)",
                Some(("k8s.pod.memory.usage", "By", 1048576.0)),
            ),
            (
                "CpuUsageRate(%)",
                Some(("k8s.pod.cpu_limit_utilization", "1", 0.01)),
            ),
            (
                "NodeCpuUsageRate(%)",
                Some(("nezha.pod.node_cpu_usage_rate", "%", 1.0)),
            ),
            (
                "PodServerLatencyP90(s)",
                Some(("nezha.pod.pod_server_latency_p90", "s", 1.0)),
            ),
            ("TimeStamp", None),
        ];
        for (column, expected) in cases {
            let got = metric_of_column(column);
            assert_eq!(
                got.as_ref().map(|(n, u, s)| (n.as_str(), *u, *s)),
                expected,
                "{column}"
            );
        }
    }

    #[test]
    fn pods_metrics_form_one_matrix_a_row_a_minute() {
        let dir = std::env::temp_dir().join(format!("loupe-matrix-{}", std::process::id()));
        let metric = dir.join("metric");
        std::fs::create_dir_all(&metric).unwrap();
        let header = "Time,TimeStamp,PodName,CpuUsage(m),PodWorkload(Ops),NodeCpuUsageRate(%)";
        std::fs::write(
            metric.join("cart-5d8f-x1_metric.csv"),
            format!("{header}\nt,60.5,cart-5d8f-x1,1.5,2,9\nt,121,cart-5d8f-x1,2.5,3,9\nt,181,cart-5d8f-x1,9,9,9\n"),
        )
        .unwrap();
        std::fs::write(
            metric.join("ad-77c4-q2_metric.csv"),
            format!("{header}\nt,59,ad-77c4-q2,7,,9\nt,119,ad-77c4-q2,8,1,9\n"),
        )
        .unwrap();
        let m = matrix(&dir, &(0..150_000_000_000)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // Files in name order (ad first); node-wide series left out; rows by minute, a gap
        // where a pod had no row or an empty cell; the row at 181 s is outside the range.
        assert_eq!(
            m.columns,
            [
                "ad_CpuUsage",
                "ad_PodWorkload",
                "cart_CpuUsage",
                "cart_PodWorkload"
            ]
        );
        assert_eq!(
            m.rows,
            vec![
                (0, vec![Some(7.0), None, None, None]),
                (60, vec![Some(8.0), Some(1.0), Some(1.5), Some(2.0)]),
                (120, vec![None, None, Some(2.5), Some(3.0)]),
            ]
        );
        assert_eq!(
            m.to_csv().lines().nth(1),
            Some("0,7,,,"),
            "a gap is an empty cell"
        );
    }
}
