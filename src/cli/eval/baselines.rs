//! Published RCA baselines run in the same `loupe eval nezha` run as loupe: BARO (Pham et al.,
//! FSE 2024) and NSigma, as the RCAEval package ships them (`pip install rcaeval networkx
//! causal-learn requests tqdm`), each given every case's pod-metric matrix
//! ([`NezhaDataset::metric_matrix`]) and the injection time.
//!
//! loupe writes the matrices to a temporary folder and runs `baselines.py` (embedded in the
//! binary) with the Python interpreter given; that script prints each method's service ranking
//! and its time per case. The rankings are scored here with the same AC@k as loupe's own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use loupe_analysis::eval::Accuracy;
use loupe_ingest::nezha::{GroundTruthCase, NezhaDataset};
use serde::{Deserialize, Serialize};

/// The script that runs the baselines (see its docstring for its input and output).
const SCRIPT: &str = include_str!("baselines.py");

/// What to install when RCAEval cannot be imported.
pub const INSTALL_HINT: &str = "pip install rcaeval networkx causal-learn requests tqdm";

/// One baseline's ranking of one case.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineCase {
    /// `BARO` or `NSigma`.
    pub method: String,
    /// Case id.
    pub case_id: String,
    /// System.
    pub system: String,
    /// 1-based rank of the labelled service, `None` when the method did not rank it (it had no
    /// metric that changed) or failed on the case.
    pub rank: Option<usize>,
    /// Services, best first.
    pub ranking: Vec<String>,
    /// The method's own time on the case, seconds (reading its input excluded).
    pub seconds: f64,
    /// Why the method failed on this case, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A line the script prints.
#[derive(Debug, Deserialize)]
struct Line {
    #[serde(default)]
    fatal: Option<String>,
    #[serde(default)]
    case_id: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    ranking: Vec<String>,
    #[serde(default)]
    seconds: f64,
    #[serde(default)]
    error: Option<String>,
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs BARO and NSigma on `cases` (with `all`, the day's other faults, bounding each matrix)
/// with the interpreter `python`, reporting progress through `progress(done, total, case_id)`.
///
/// # Errors
/// When a metric file cannot be read, the interpreter cannot be started, RCAEval cannot be
/// imported (the message says what to install), or the script ends in failure.
pub fn run(
    dataset: &NezhaDataset,
    cases: &[&GroundTruthCase],
    all: &[GroundTruthCase],
    python: &Path,
    mut progress: impl FnMut(usize, usize, &str),
) -> anyhow::Result<Vec<BaselineCase>> {
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "loupe-baselines-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("creating {}", scratch.0.display()))?;
    let mut listing = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        progress(i, cases.len(), &case.case_id);
        let matrix = dataset.metric_matrix(case, all)?;
        let file = format!("{}.csv", case.case_id);
        std::fs::write(scratch.0.join(&file), matrix.to_csv())
            .with_context(|| format!("writing {file}"))?;
        listing.push(serde_json::json!({
            "case_id": case.case_id,
            "file": file,
            "inject_time": case.fault_start_unix_ns as f64 / 1e9,
        }));
    }
    std::fs::write(scratch.0.join("cases.json"), serde_json::to_vec(&listing)?)?;
    let script = scratch.0.join("baselines.py");
    std::fs::write(&script, SCRIPT)?;
    let mut child = Command::new(python)
        .arg(&script)
        .arg(&scratch.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} for the baselines (set --python to an interpreter with RCAEval: {INSTALL_HINT})",
                python.display()
            )
        })?;
    let stdout = child
        .stdout
        .take()
        .context("the baseline script's output")?;
    let mut out = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the baseline script's output")?;
        let parsed: Line = serde_json::from_str(&line)
            .with_context(|| format!("the baseline script printed {line:?}"))?;
        if let Some(fatal) = parsed.fatal {
            let _ = child.wait();
            anyhow::bail!(
                "{} cannot import RCAEval ({fatal}); install it with `{INSTALL_HINT}` or set --python",
                python.display()
            );
        }
        let Some(case) = cases.iter().find(|c| c.case_id == parsed.case_id) else {
            anyhow::bail!(
                "the baseline script named an unknown case {:?}",
                parsed.case_id
            );
        };
        progress(
            out.len() / 2,
            cases.len(),
            &format!("{} {}", parsed.method, case.case_id),
        );
        out.push(BaselineCase {
            rank: parsed
                .ranking
                .iter()
                .position(|s| *s == case.root_cause_service)
                .map(|i| i + 1),
            method: parsed.method,
            case_id: case.case_id.clone(),
            system: case.system.clone(),
            ranking: parsed.ranking,
            seconds: parsed.seconds,
            error: parsed.error,
        });
    }
    let status = child.wait().context("waiting for the baseline script")?;
    anyhow::ensure!(status.success(), "the baseline script failed ({status})");
    progress(cases.len(), cases.len(), "");
    Ok(out)
}

/// Accuracy and mean time per case of each method on each system: `(system, method, accuracy,
/// mean seconds, failed cases)`, systems in name order, methods in order of appearance.
pub fn summarize(cases: &[BaselineCase]) -> Vec<(String, String, Accuracy, f64, usize)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for c in cases {
        let key = (c.system.clone(), c.method.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys.into_iter()
        .map(|(system, method)| {
            let of: Vec<&BaselineCase> = cases
                .iter()
                .filter(|c| c.system == system && c.method == method)
                .collect();
            let ranks: Vec<Option<usize>> = of.iter().map(|c| c.rank).collect();
            let seconds = of.iter().map(|c| c.seconds).sum::<f64>() / of.len().max(1) as f64;
            let failed = of.iter().filter(|c| c.error.is_some()).count();
            (system, method, Accuracy::of(&ranks), seconds, failed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(method: &str, system: &str, rank: Option<usize>, seconds: f64) -> BaselineCase {
        BaselineCase {
            method: method.into(),
            case_id: "c".into(),
            system: system.into(),
            rank,
            ranking: Vec::new(),
            seconds,
            error: None,
        }
    }

    #[test]
    fn baselines_are_summarized_per_system_and_method() {
        let cases = [
            case("BARO", "tt", Some(1), 0.2),
            case("NSigma", "tt", Some(4), 0.1),
            case("BARO", "tt", None, 0.4),
            case("BARO", "ob", Some(2), 0.1),
        ];
        let rows = summarize(&cases);
        let got: Vec<(&str, &str, usize, f64, f64)> = rows
            .iter()
            .map(|(s, m, a, t, _)| {
                (
                    s.as_str(),
                    m.as_str(),
                    a.cases,
                    a.ac_at_1,
                    (t * 1e3).round(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ob", "BARO", 1, 0.0, 100.0),
                ("tt", "BARO", 2, 0.5, 300.0),
                ("tt", "NSigma", 1, 0.0, 100.0),
            ]
        );
    }
}
