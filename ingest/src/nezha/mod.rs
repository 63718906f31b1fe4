//! Importer of the Nezha dataset layout (Yu et al., "Nezha: Interpretable Fine-Grained Root
//! Causes Analysis for Microservices on Multi-Modal Observability Data", ESEC/FSE 2023): spans,
//! log lines and per-pod metrics in minute CSV files (plain or gzipped), turned into OTLP
//! export requests with their original timestamps.
//!
//! Layout: `rca_data/<day>/{trace,log,metric}/...` around injected faults,
//! `construct_data/<day>/...` for a fault-free period, and `ground_truth.json` (one object per
//! case). See `shared/data/nezha/SOURCE.md` in the project's workspace.

mod csv_files;
mod logs;
mod metrics;
mod traces;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::request::ExportRequest;

pub use logs::parse_severity;
pub use metrics::MetricMatrix;

/// Nanoseconds in a minute.
const MINUTE: u64 = 60 * 1_000_000_000;

/// How long a fault lasts after injection (SOURCE.md: "about 3 minutes").
pub const FAULT_DURATION_NANOS: u64 = 3 * MINUTE;

/// How much later than the spans the once-a-minute pod metrics of a window are stamped.
pub const METRIC_LAG_NANOS: u64 = MINUTE;

/// How far before the injection the baseline reaches.
pub const BASELINE_LOOKBACK_NANOS: u64 = 5 * MINUTE;

/// The pre-fault period of each case that goes into a day's reference.
pub const REFERENCE_LOOKBACK_NANOS: u64 = 2 * MINUTE;

/// How far before the injection a case's metric matrix reaches (for the RCAEval baselines,
/// which learn each series' normal range from it).
pub const METRIC_MATRIX_LOOKBACK_NANOS: u64 = 10 * MINUTE;

/// One labelled case of `ground_truth.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GroundTruthCase {
    /// E.g. `nezha-ob-2022-08-22-01`.
    pub case_id: String,
    /// `online-boutique` or `train-ticket`.
    pub system: String,
    /// The day folder, e.g. `2022-08-22`.
    pub date_dir: String,
    /// Injection time, unix nanoseconds.
    pub fault_start_unix_ns: u64,
    /// The labelled root-cause service.
    pub root_cause_service: String,
    /// The labelled root-cause pod.
    #[serde(default)]
    pub root_cause_pod: String,
    /// `cpu`, `delay`, `code_return` or `code_exception`.
    pub fault_type: String,
    /// Whether enough trace minutes survive for trace-based RCA.
    #[serde(default = "yes")]
    pub usable_for_trace_rca: bool,
    /// Whether spans before the injection exist in the case's minute files.
    #[serde(default = "yes")]
    pub has_prefault_traces: bool,
}

fn yes() -> bool {
    true
}

/// A Nezha-layout directory.
#[derive(Debug, Clone)]
pub struct NezhaDataset {
    root: PathBuf,
}

/// The OTLP requests of one case and the windows to analyze.
#[derive(Debug, Clone)]
pub struct CaseTelemetry {
    /// Requests in time order within each signal: traces, then logs, then metrics.
    pub requests: Vec<ExportRequest>,
    /// The baseline window, unix nanoseconds.
    pub baseline: Range<u64>,
    /// The fault window, unix nanoseconds.
    pub fault: Range<u64>,
    /// End of the fault window for pod metrics (later by [`METRIC_LAG_NANOS`]).
    pub metrics_end: u64,
}

impl NezhaDataset {
    /// Opens a directory in the Nezha layout.
    ///
    /// # Errors
    /// [`Error::Dataset`] when it has no `rca_data` folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.join("rca_data").is_dir() {
            return Err(Error::Dataset {
                path: root.display().to_string(),
                message: "no rca_data folder: not a Nezha-layout directory".into(),
            });
        }
        Ok(Self { root })
    }

    /// The dataset's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `ground_truth.json`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Dataset`] when missing or not in the ground-truth schema.
    pub fn ground_truth(&self) -> Result<Vec<GroundTruthCase>> {
        let path = self.root.join("ground_truth.json");
        let text = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| Error::Dataset {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// All telemetry of one day's folder (`rca_data` or `construct_data`) within `range`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Dataset`] for an unreadable or malformed file.
    pub fn load(&self, part: &str, day: &str, range: Range<u64>) -> Result<Vec<ExportRequest>> {
        let dir = self.root.join(part).join(day);
        // Logs last: a log record that names another service is read against the services
        // known when it arrives, and a pod's metrics make its service known even when it
        // answered no span in the range (a callee with no instances available).
        let mut requests = traces::load(&dir, day, &range)?;
        requests.extend(metrics::load(&dir, &range)?);
        requests.extend(logs::load(&dir, day, &range)?);
        Ok(requests)
    }

    /// A day's reference: for each case that day, the [`REFERENCE_LOOKBACK_NANOS`] before its
    /// injection, clipped to after the previous fault (periods the labels say are fault-free),
    /// for services and edges whose own baseline is too thin, and as the longer history that
    /// error rates are also compared with. Returns the span and log requests and the periods.
    ///
    /// # Errors
    /// As [`NezhaDataset::load`].
    pub fn day_reference(
        &self,
        day: &str,
        cases: &[GroundTruthCase],
    ) -> Result<(Vec<ExportRequest>, Vec<Range<u64>>)> {
        let mut periods: Vec<Range<u64>> = cases
            .iter()
            .filter(|c| c.date_dir == day)
            .map(|c| quiet_before(c, cases, REFERENCE_LOOKBACK_NANOS))
            .filter(|p| !p.is_empty())
            .collect();
        periods.sort_by_key(|p| p.start);
        periods.dedup();
        let mut requests = Vec::new();
        for p in &periods {
            let dir = self.root.join("rca_data").join(day);
            requests.extend(traces::load(&dir, day, p)?);
            requests.extend(logs::load(&dir, day, p)?);
        }
        Ok((requests, periods))
    }

    /// The spans and log records of the day's designated fault-free period
    /// (`construct_data/<day>/`, the dataset's own baseline), all of it; empty when the day has
    /// none.
    ///
    /// # Errors
    /// As [`NezhaDataset::load`].
    pub fn normal_period(&self, day: &str) -> Result<Vec<ExportRequest>> {
        let dir = self.root.join("construct_data").join(day);
        let all = 0..u64::MAX;
        let mut requests = traces::load(&dir, day, &all)?;
        requests.extend(logs::load(&dir, day, &all)?);
        Ok(requests)
    }

    /// The telemetry of one case. The fault window is [`FAULT_DURATION_NANOS`] from the
    /// injection; the baseline is the [`BASELINE_LOOKBACK_NANOS`] before it; both are clipped so
    /// that no other fault of that day (in `all`) falls inside. Pod metrics, sampled once a
    /// minute and stamped at the minute's end, are loaded for [`METRIC_LAG_NANOS`] past the
    /// fault window.
    ///
    /// # Errors
    /// As [`NezhaDataset::load`].
    pub fn case(&self, case: &GroundTruthCase, all: &[GroundTruthCase]) -> Result<CaseTelemetry> {
        let (fault, metrics_end) = fault_window(case, all);
        let baseline = quiet_before(case, all, BASELINE_LOOKBACK_NANOS);
        let requests = self.load("rca_data", &case.date_dir, baseline.start..metrics_end)?;
        Ok(CaseTelemetry {
            requests,
            baseline,
            fault,
            metrics_end,
        })
    }

    /// One case's pod metrics as a matrix (a row a minute, a column per service and metric),
    /// the input of metric-based RCA baselines: from up to [`METRIC_MATRIX_LOOKBACK_NANOS`]
    /// before the injection, clipped so that no earlier fault's window falls inside, to the end
    /// of the case's metrics (as [`NezhaDataset::case`] bounds them). Node-wide series are left
    /// out: they belong to no one service.
    ///
    /// # Errors
    /// As [`NezhaDataset::load`].
    pub fn metric_matrix(
        &self,
        case: &GroundTruthCase,
        all: &[GroundTruthCase],
    ) -> Result<MetricMatrix> {
        let start = quiet_before(case, all, METRIC_MATRIX_LOOKBACK_NANOS).start;
        let end = fault_window(case, all).1;
        metrics::matrix(
            &self.root.join("rca_data").join(&case.date_dir),
            &(start..end),
        )
    }
}

/// `case`'s fault window ([`FAULT_DURATION_NANOS`] from the injection) and the end of its
/// metrics ([`METRIC_LAG_NANOS`] later), both clipped at the day's next injection.
fn fault_window(case: &GroundTruthCase, all: &[GroundTruthCase]) -> (Range<u64>, u64) {
    let start = case.fault_start_unix_ns;
    let next = all
        .iter()
        .filter(|c| c.date_dir == case.date_dir && c.fault_start_unix_ns > start)
        .map(|c| c.fault_start_unix_ns)
        .min()
        .unwrap_or(u64::MAX);
    let fault = start..(start + FAULT_DURATION_NANOS).min(next);
    let metrics_end = (fault.end + METRIC_LAG_NANOS).min(next);
    (fault, metrics_end)
}

/// The up-to-`lookback` before `case`'s injection that no earlier fault of its day covers.
fn quiet_before(case: &GroundTruthCase, all: &[GroundTruthCase], lookback: u64) -> Range<u64> {
    let start = case.fault_start_unix_ns;
    let previous_end = all
        .iter()
        .filter(|c| c.date_dir == case.date_dir && c.fault_start_unix_ns < start)
        .map(|c| c.fault_start_unix_ns + FAULT_DURATION_NANOS)
        .max()
        .unwrap_or(0);
    start.saturating_sub(lookback).max(previous_end).min(start)..start
}

/// Spans or log records per request, as an OpenTelemetry SDK's batch processor sends them.
const BATCH: usize = 512;

/// The OTLP resource of a Nezha pod: `service.name` from the pod name, `k8s.pod.name`.
fn resource(pod: &str) -> opentelemetry_proto::tonic::resource::v1::Resource {
    use loupe_model::semconv::{K8S_POD_NAME, SERVICE_NAME};
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    let kv = |key: &str, value: &str| KeyValue {
        key_strindex: 0,
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
    };
    opentelemetry_proto::tonic::resource::v1::Resource {
        attributes: vec![kv(SERVICE_NAME, service_of_pod(pod)), kv(K8S_POD_NAME, pod)],
        ..Default::default()
    }
}

/// Items grouped by pod, pods in order of first appearance (one OTLP resource each).
fn group_by_pod<'a, T>(items: impl IntoIterator<Item = (&'a str, T)>) -> Vec<(&'a str, Vec<T>)> {
    let mut groups: Vec<(&str, Vec<T>)> = Vec::new();
    for (pod, item) in items {
        match groups.iter_mut().find(|(p, _)| *p == pod) {
            Some((_, group)) => group.push(item),
            None => groups.push((pod, vec![item])),
        }
    }
    groups
}

/// The service of a Kubernetes pod name: the name less its last two `-` parts (the ReplicaSet
/// hash and the pod suffix), e.g. `ts-order-service-6c5d8b7b9f-x2x9z` → `ts-order-service`.
pub fn service_of_pod(pod: &str) -> &str {
    let mut cut = pod.len();
    for _ in 0..2 {
        match pod[..cut].rfind('-') {
            Some(i) if i > 0 => cut = i,
            _ => return pod,
        }
    }
    &pod[..cut]
}

/// Unix nanoseconds of `HH:MM` on `day` (UTC), from a minute file's name.
fn minute_of_file(day: &str, file_name: &str) -> Option<u64> {
    let hh = file_name.get(0..2)?;
    let mm = file_name.get(3..5)?;
    let t = humantime::parse_rfc3339(&format!("{day}T{hh}:{mm}:00Z")).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as u64)
}

/// Minute files of `dir` (named `HH_MM_<kind>.csv[.gz]`) whose minute lies within `range`
/// widened by two minutes each side (a file holds about the minute before its name).
fn minute_files(dir: &Path, day: &str, range: &Range<u64>) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = minute_of_file(day, &name).is_some_and(|t| {
            t + 2 * MINUTE >= range.start && t < range.end.saturating_add(2 * MINUTE)
        });
        if wanted {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The kinds of Nezha file, for [`load_one_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `trace/HH_MM_trace.csv[.gz]`.
    Trace,
    /// `log/HH_MM_log.csv[.gz]`.
    Log,
    /// `metric/<pod>_metric.csv[.gz]`.
    Metric,
}

/// Reads one file of `kind` holding `bytes` (gzip-compressed when `gzip`) as the dataset reader
/// does, through a scratch dataset in `scratch` (emptied first); the requests it makes. For
/// fuzzing the CSV readers.
///
/// # Errors
/// The reader's [`Error::Dataset`] naming the row, or [`Error::Io`].
pub fn load_one_file(
    scratch: &Path,
    kind: FileKind,
    bytes: &[u8],
    gzip: bool,
) -> Result<Vec<ExportRequest>> {
    let io = |source| Error::Io {
        path: scratch.display().to_string(),
        source,
    };
    let _ = std::fs::remove_dir_all(scratch);
    let (sub, name) = match kind {
        FileKind::Trace => ("trace", "00_01_trace.csv"),
        FileKind::Log => ("log", "00_01_log.csv"),
        FileKind::Metric => ("metric", "frontend-0_metric.csv"),
    };
    std::fs::create_dir_all(scratch.join(sub)).map_err(io)?;
    let path = match gzip {
        true => scratch.join(sub).join(format!("{name}.gz")),
        false => scratch.join(sub).join(name),
    };
    std::fs::write(&path, bytes).map_err(io)?;
    let day = "2022-08-22";
    let all = 0..u64::MAX;
    match kind {
        FileKind::Trace => traces::load(scratch, day, &all),
        FileKind::Log => logs::load(scratch, day, &all),
        FileKind::Metric => metrics::load(scratch, &all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_map_to_services() {
        let cases = [
            ("frontend-579b9bff58-t2dbm", "frontend"),
            ("ts-order-service-6c5d8b7b9f-x2x9z", "ts-order-service"),
            ("single", "single"),
            ("a-b", "a-b"),
        ];
        for (pod, service) in cases {
            assert_eq!(service_of_pod(pod), service, "{pod}");
        }
    }

    #[test]
    fn minute_file_names_are_read_as_utc() {
        assert_eq!(
            minute_of_file("2022-08-22", "03_53_trace.csv.gz"),
            Some(1_661_140_380_000_000_000)
        );
        assert_eq!(minute_of_file("2022-08-22", "dependency.csv.gz"), None);
    }
}
