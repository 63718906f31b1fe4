//! Labelled case sets on disk, for `loupe eval sim`:
//!
//! ```text
//! DIR/ground_truth.json            every case's GroundTruth, an array
//! DIR/suite.json                   how the set was generated (seed, counts, topologies)
//! DIR/cases/<case_id>/traces.otlp.gz   OTLP requests of one signal each: gzip over
//! DIR/cases/<case_id>/logs.otlp.gz     length-delimited protobuf (a 4-byte big-endian length,
//! DIR/cases/<case_id>/metrics.otlp.gz  then the request), the OpenTelemetry Collector file
//!                                      exporter's `proto` layout
//! DIR/cases/<case_id>/changes.jsonl    change webhooks, one {at_unix_nano, headers, body} a line
//! ```
//!
//! Writing is deterministic: the same suite and seed give the same bytes.

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use loupe_ingest::{ExportRequest, Signal};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fault::{FaultKind, HerringKind};
use crate::metrics::MetricExport;
use crate::scenario::{plan_case, CaseSpec, GroundTruth, Traffic};
use crate::sim::Notice;
use crate::topology::Topology;

const SECOND: u64 = 1_000_000_000;
/// Simulated cases start on 2026-01-05T00:00:00Z plus a whole number of hours.
const EPOCH: u64 = 1_767_571_200 * SECOND;
/// Fault-free stretch before a fault when a suite gives none (as `--baseline`'s default).
const DEFAULT_BASELINE: u64 = 6 * 60 * SECOND;
/// Largest request a case file may hold (a bound on what a reader allocates).
const MAX_REQUEST_BYTES: usize = 64 << 20;

/// A case's telemetry and change notices, each grouped by signal in the order it was written.
#[derive(Debug, Clone, Default)]
pub struct CaseTelemetry {
    /// OTLP requests.
    pub requests: Vec<ExportRequest>,
    /// Change webhooks.
    pub notices: Vec<Notice>,
}

/// How often a case's pods export, as the SDKs' batch processors do by default
/// (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BLRP_SCHEDULE_DELAY`: 5 s and 1 s). The receiving side
/// joins parents and children within a bounded time, so data of one moment must arrive close
/// together, as it does from a real fleet.
const EXPORT_INTERVAL: u64 = 5 * SECOND;

/// Runs a case's simulation from its start to its end.
pub fn run_case(spec: &CaseSpec) -> (GroundTruth, CaseTelemetry) {
    let (mut sim, truth) = plan_case(spec);
    let mut out = CaseTelemetry::default();
    let mut t = spec.start_unix_nano;
    while t < truth.fault_end_unix_ns {
        t = (t + EXPORT_INTERVAL).min(truth.fault_end_unix_ns);
        let batch = sim.advance(t);
        out.requests.extend(batch.requests);
        out.notices.extend(batch.notices);
    }
    (truth, out)
}

/// How to generate a case set.
#[derive(Debug, Clone)]
pub struct SuiteSpec {
    /// Systems, used in turn.
    pub topologies: Vec<Arc<Topology>>,
    /// Fault kinds, used in turn.
    pub faults: Vec<FaultKind>,
    /// Number of cases.
    pub cases: usize,
    /// Seed of the whole set.
    pub seed: u64,
    /// Chance of each herring kind in a case.
    pub herring_chance: f64,
    /// Fault-free stretches before the faults, nanoseconds, used in turn.
    pub baselines_nanos: Vec<u64>,
    /// Length of each fault, nanoseconds.
    pub fault_nanos: u64,
    /// Traffic levels, used in turn.
    pub traffic: Vec<Traffic>,
    /// How every case's metrics are exported.
    pub metrics: MetricExport,
}

/// What `suite.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteManifest {
    /// The generator's version.
    pub generator: String,
    /// Seed of the whole set.
    pub seed: u64,
    /// Number of cases.
    pub cases: usize,
    /// Systems.
    pub topologies: Vec<String>,
    /// Fault kinds.
    pub faults: Vec<FaultKind>,
    /// Chance of each herring kind in a case.
    pub herring_chance: f64,
    /// Seconds of fault-free baseline before the faults, used in turn.
    pub baseline_seconds: Vec<u64>,
    /// Seconds of fault per case.
    pub fault_seconds: u64,
    /// Traffic levels, used in turn.
    #[serde(default)]
    pub traffic: Vec<Traffic>,
    /// How the cases' metrics are exported.
    #[serde(default)]
    pub metrics: MetricExport,
}

/// The case specs of a suite, in order: kinds cycle fastest, then topologies, then traffic
/// levels, then baseline lengths.
pub fn suite_cases(spec: &SuiteSpec) -> Vec<CaseSpec> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (kinds, systems) = (spec.faults.len(), spec.topologies.len());
    let levels = spec.traffic.len().max(1);
    let baselines = spec.baselines_nanos.len().max(1);
    (0..spec.cases)
        .map(|i| {
            let fault = spec.faults[i % kinds];
            let topology = spec.topologies[(i / kinds) % systems].clone();
            let traffic = spec
                .traffic
                .get((i / (kinds * systems)) % levels)
                .copied()
                .unwrap_or_default();
            let baseline_nanos = spec
                .baselines_nanos
                .get((i / (kinds * systems * levels)) % baselines)
                .copied()
                .unwrap_or(DEFAULT_BASELINE);
            let herrings: Vec<HerringKind> = HerringKind::ALL
                .into_iter()
                .filter(|_| rng.random_bool(spec.herring_chance.clamp(0.0, 1.0)))
                .collect();
            let seed: u64 = rng.random();
            CaseSpec {
                case_id: format!("sim-{i:04}-{}-{}", topology.name, fault),
                topology,
                fault,
                herrings,
                seed,
                start_unix_nano: EPOCH + (seed % (24 * 14)) * 3_600 * SECOND,
                baseline_nanos,
                fault_nanos: spec.fault_nanos,
                metrics: spec.metrics,
                traffic,
            }
        })
        .collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes one case's files under `dir/cases/<case_id>/`.
///
/// # Errors
/// [`Error::Io`] when a file cannot be written.
pub fn write_case(dir: &Path, truth: &GroundTruth, telemetry: &CaseTelemetry) -> Result<()> {
    let case_dir = dir.join("cases").join(&truth.case_id);
    std::fs::create_dir_all(&case_dir).map_err(io(&case_dir))?;
    for signal in [Signal::Traces, Signal::Logs, Signal::Metrics] {
        let path = case_dir.join(file_name(signal));
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut out = GzEncoder::new(BufWriter::new(file), Compression::new(6));
        for r in telemetry.requests.iter().filter(|r| r.signal() == signal) {
            let bytes = r.encode();
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.write_all(&len.to_be_bytes()).map_err(io(&path))?;
            out.write_all(&bytes).map_err(io(&path))?;
        }
        out.finish()
            .and_then(|mut w| w.flush())
            .map_err(io(&path))?;
    }
    let path = case_dir.join("changes.jsonl");
    let mut text = String::new();
    for n in &telemetry.notices {
        text.push_str(&serde_json::to_string(n).unwrap_or_default());
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(io(&path))
}

fn file_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "traces.otlp.gz",
        Signal::Logs => "logs.otlp.gz",
        Signal::Metrics => "metrics.otlp.gz",
    }
}

/// Generates a whole suite into `dir` (created if missing), reporting `progress(done,
/// total, case_id)`; returns the ground truth it wrote.
///
/// # Errors
/// [`Error::Io`] when a file cannot be written.
pub fn write_suite(
    dir: &Path,
    spec: &SuiteSpec,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Vec<GroundTruth>> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cases = suite_cases(spec);
    let mut truths = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        progress(i, cases.len(), &case.case_id);
        let (truth, telemetry) = run_case(case);
        write_case(dir, &truth, &telemetry)?;
        truths.push(truth);
    }
    progress(cases.len(), cases.len(), "");
    let manifest = SuiteManifest {
        generator: format!("loupe-simulate {}", env!("CARGO_PKG_VERSION")),
        seed: spec.seed,
        cases: spec.cases,
        topologies: spec.topologies.iter().map(|t| t.name.clone()).collect(),
        faults: spec.faults.clone(),
        herring_chance: spec.herring_chance,
        baseline_seconds: spec.baselines_nanos.iter().map(|b| b / SECOND).collect(),
        fault_seconds: spec.fault_nanos / SECOND,
        traffic: spec.traffic.clone(),
        metrics: spec.metrics,
    };
    for (name, value) in [
        ("ground_truth.json", serde_json::to_string_pretty(&truths)),
        ("suite.json", serde_json::to_string_pretty(&manifest)),
    ] {
        let path = dir.join(name);
        let text = value.map_err(|e| Error::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, text + "\n").map_err(io(&path))?;
    }
    Ok(truths)
}

/// A case set's ground truth.
///
/// # Errors
/// [`Error::Io`] or [`Error::Format`] when `DIR/ground_truth.json` is missing or not a list
/// of simulated cases.
pub fn read_ground_truth(dir: &Path) -> Result<Vec<GroundTruth>> {
    let path = dir.join("ground_truth.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        path,
        reason: format!("not a simulated case set's ground truth: {e}"),
    })
}

/// Reads one case's telemetry back: traces, then logs, then metrics, then the notices.
///
/// # Errors
/// [`Error::Io`] or [`Error::Format`] naming the file and what is wrong with it.
pub fn read_case(dir: &Path, case_id: &str) -> Result<CaseTelemetry> {
    let case_dir: PathBuf = dir.join("cases").join(case_id);
    let mut out = CaseTelemetry::default();
    for signal in [Signal::Traces, Signal::Logs, Signal::Metrics] {
        let path = case_dir.join(file_name(signal));
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        let mut input = GzDecoder::new(std::io::BufReader::new(file));
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(io(&path))?;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let bad = |reason: String| Error::Format {
                path: path.clone(),
                reason,
            };
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| bad("truncated length prefix".into()))?;
            let len = u32::from_be_bytes(*len) as usize;
            if len > MAX_REQUEST_BYTES || len > tail.len() {
                return Err(bad(format!("a request of {len} bytes does not fit")));
            }
            let request =
                ExportRequest::decode(signal, &tail[..len]).map_err(|e| bad(e.to_string()))?;
            out.requests.push(request);
            rest = &tail[len..];
        }
    }
    let path = case_dir.join("changes.jsonl");
    let file = std::fs::File::open(&path).map_err(io(&path))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        out.notices
            .push(serde_json::from_str(&line).map_err(|e| Error::Format {
                path: path.clone(),
                reason: format!("line {}: {e}", i + 1),
            })?);
    }
    Ok(out)
}
