//! `loupe eval nezha DIR`: for every labelled case, load its baseline and fault telemetry into
//! a fresh engine through the receivers' decode path, analyze the fault window, and score the
//! ranking against the label (AC@1, AC@3, Avg@5 overall, per system and per fault type).

pub mod ablation;
pub mod baselines;
pub mod sim;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use loupe_analysis::eval::{names_root_cause, rank_of_cause, Accuracy};
use loupe_analysis::ranker::TrainingCase;
use loupe_analysis::{analyze, AnalysisConfig, History};
use loupe_graph::{GraphConfig, Retention, WindowStats};
use loupe_ingest::nezha::{GroundTruthCase, NezhaDataset};
use loupe_ingest::{ExportRequest, Limits, Receiver};
use serde::Serialize;

use self::ablation::{AblationArm, SignalSet};
use crate::cli::values::DatasetFormat;
use crate::engine::Engine;

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case id.
    pub case_id: String,
    /// System.
    pub system: String,
    /// Fault type.
    pub fault_type: String,
    /// The labelled root-cause service.
    pub truth: String,
    /// 1-based rank of the truth, if ranked.
    pub rank: Option<usize>,
    /// Cause ids (`service:cart`, `database:postgresql/orders`), best first.
    pub ranking: Vec<String>,
    /// The top cause's probability.
    pub probability: f64,
    /// The conditions of a simulated case beyond its fault: `traffic low, baseline 3m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Time of the analysis alone (loading the telemetry excluded), seconds.
    pub analysis_seconds: f64,
    /// The top three causes and the labelled one, with their evidence.
    pub causes: Vec<loupe_analysis::Cause>,
    /// Every candidate's model inputs and whether it names the root cause, for `loupe train`.
    #[serde(skip)]
    pub candidates: TrainingCase,
}

impl CaseResult {
    /// Scores `causes` (ranked) against the label `truth` (and `edge`, a partition's ends; see
    /// [`names_root_cause`]).
    pub fn new(
        (case_id, system, fault_type): (String, String, String),
        truth: &str,
        edge: Option<&[String; 2]>,
        causes: &[loupe_analysis::Cause],
    ) -> Self {
        Self {
            case_id,
            system,
            fault_type,
            truth: truth.to_owned(),
            rank: rank_of_cause(causes, truth, edge),
            ranking: causes.iter().map(|c| c.entity.id()).collect(),
            probability: causes.first().map_or(0.0, |c| c.probability),
            condition: None,
            analysis_seconds: 0.0,
            candidates: TrainingCase {
                inputs: causes.iter().map(|c| c.inputs).collect(),
                truth: causes
                    .iter()
                    .map(|c| names_root_cause(&c.entity, truth, edge))
                    .collect(),
            },
            causes: causes
                .iter()
                .filter(|c| c.rank <= 3 || names_root_cause(&c.entity, truth, edge))
                .cloned()
                .collect(),
        }
    }
}

/// Summary plus per-case results, as `--json` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Over all cases.
    pub summary: Accuracy,
    /// Per system.
    pub per_system: BTreeMap<String, Accuracy>,
    /// Per system and fault type (`system/fault_type`).
    pub per_fault_type: BTreeMap<String, Accuracy>,
    /// Per fault type over every system.
    pub per_fault: BTreeMap<String, Accuracy>,
    /// Per fault type and condition (`db_errors, traffic low, baseline 3m`), over the
    /// simulated cases whose conditions vary; empty otherwise.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub per_condition: BTreeMap<String, Accuracy>,
    /// The model that ranked (`shipped`, or a file).
    pub model: String,
    /// Every case.
    pub cases: Vec<CaseResult>,
    /// Published baselines run on the same cases (`--baselines`), one entry a case and method.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<baselines::BaselineCase>,
    /// The signals fed (`all` unless `--signals` said otherwise).
    pub signals: SignalSet,
    /// The ablation's arms (`--ablation`), this run's among them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ablation: Vec<AblationArm>,
}

impl EvalReport {
    /// This run as an arm of the ablation.
    pub fn arm(&self) -> AblationArm {
        AblationArm {
            signals: self.signals,
            summary: self.summary,
            per_system: self.per_system.clone(),
        }
    }
}

/// The graph settings of an evaluation: a day of data at full resolution, since reference
/// periods are read back at arbitrary times of the day.
pub(crate) fn eval_graph_config() -> GraphConfig {
    GraphConfig {
        retention: Retention {
            fine: 8_640 * 2,
            ..Retention::default()
        },
        ..GraphConfig::default()
    }
}

/// A fresh in-memory engine with `requests` fed through the receivers' decode path, its join
/// buffer flushed.
///
/// # Errors
/// When the engine refuses a request.
pub(crate) async fn load(requests: Vec<ExportRequest>) -> anyhow::Result<Arc<Engine>> {
    let engine = Arc::new(Engine::in_memory(eval_graph_config()));
    let receiver = Receiver::new(engine.clone(), Limits::default());
    for request in requests {
        request.export_to(&receiver).await?;
    }
    engine.flush();
    Ok(engine)
}

/// A day's history periods: its designated fault-free period and the quiet periods before its
/// faults, each with its window.
struct DayHistory {
    normal: WindowStats,
    quiet: Vec<(Range<u64>, WindowStats)>,
}

/// The window of each period in `engine`'s graph.
fn window_each(
    engine: &Engine,
    periods: impl IntoIterator<Item = Range<u64>>,
) -> Vec<(Range<u64>, WindowStats)> {
    let graph = engine.graph();
    let graph = graph.read().unwrap_or_else(|p| p.into_inner());
    periods
        .into_iter()
        .map(|p| {
            let w = graph.window(p.start, p.end);
            (p, w)
        })
        .collect()
}

/// The cases named in `only`, or every case usable for trace RCA when it is empty.
///
/// # Errors
/// When that selects no case.
pub fn select<'a>(
    all: &'a [GroundTruthCase],
    only: &[String],
) -> anyhow::Result<Vec<&'a GroundTruthCase>> {
    let selected: Vec<&GroundTruthCase> = all
        .iter()
        .filter(|c| {
            if only.is_empty() {
                c.usable_for_trace_rca
            } else {
                only.contains(&c.case_id)
            }
        })
        .collect();
    anyhow::ensure!(!selected.is_empty(), "no case selected (ids: {only:?})");
    Ok(selected)
}

/// Runs the evaluation over `cases` (all usable cases when empty) with `config`'s model (every
/// candidate kept), reporting progress on
/// stderr through `progress(done, total, case_id)`.
///
/// # Errors
/// When a dataset file cannot be read.
pub async fn run(
    dataset: &NezhaDataset,
    only: &[String],
    config: &AnalysisConfig,
    signals: SignalSet,
    mut progress: impl FnMut(usize, usize, &str),
) -> anyhow::Result<EvalReport> {
    let all = dataset.ground_truth()?;
    let selected = select(&all, only)?;
    let mut days: BTreeMap<String, DayHistory> = BTreeMap::new();
    let mut results = Vec::new();
    for (i, case) in selected.iter().enumerate() {
        progress(i, selected.len(), &case.case_id);
        if !days.contains_key(&case.date_dir) {
            let (requests, periods) = dataset.day_reference(&case.date_dir, &all)?;
            let quiet = window_each(&*load(signals.filter(requests)).await?, periods);
            let normal = load(signals.filter(dataset.normal_period(&case.date_dir)?)).await?;
            let normal = window_each(&normal, std::iter::once(0..u64::MAX))
                .remove(0)
                .1;
            days.insert(case.date_dir.clone(), DayHistory { normal, quiet });
        }
        // History only: the day's designated fault-free period and the quiet periods that
        // ended before this fault began.
        let day = &days[&case.date_dir];
        let periods: Vec<WindowStats> = std::iter::once(&day.normal)
            .chain(
                day.quiet
                    .iter()
                    .filter(|(p, _)| p.end <= case.fault_start_unix_ns)
                    .map(|(_, w)| w),
            )
            .filter(|w| !w.services.is_empty())
            .cloned()
            .collect();
        let history = (!periods.is_empty()).then(|| History::new(periods));
        let telemetry = dataset.case(case, &all)?;
        let engine = load(signals.filter(telemetry.requests)).await?;
        let (baseline, current) = {
            let graph = engine.graph();
            let g = graph.read().unwrap_or_else(|p| p.into_inner());
            let mut current = g.window(telemetry.fault.start, telemetry.fault.end);
            current.pods = g.window(telemetry.fault.start, telemetry.metrics_end).pods;
            (
                g.window(telemetry.baseline.start, telemetry.baseline.end),
                current,
            )
        };
        let started = std::time::Instant::now();
        let analysis = analyze(
            &baseline,
            &current,
            history.as_ref(),
            &[],
            &AnalysisConfig {
                max_causes: usize::MAX,
                ..config.clone()
            },
        )?;
        let analysis_seconds = started.elapsed().as_secs_f64();
        results.push(CaseResult {
            analysis_seconds,
            ..CaseResult::new(
                (
                    case.case_id.clone(),
                    case.system.clone(),
                    case.fault_type.clone(),
                ),
                &case.root_cause_service,
                None,
                &analysis.causes,
            )
        });
    }
    progress(selected.len(), selected.len(), "");
    Ok(EvalReport {
        signals,
        ..report(results, &config.ranker.source)
    })
}

pub(crate) fn report(cases: Vec<CaseResult>, model: &str) -> EvalReport {
    let group = |key: &dyn Fn(&CaseResult) -> String| {
        let mut ranks: BTreeMap<String, Vec<Option<usize>>> = BTreeMap::new();
        cases
            .iter()
            .for_each(|c| ranks.entry(key(c)).or_default().push(c.rank));
        ranks
            .into_iter()
            .map(|(k, r)| (k, Accuracy::of(&r)))
            .collect::<BTreeMap<_, _>>()
    };
    EvalReport {
        summary: Accuracy::of(&cases.iter().map(|c| c.rank).collect::<Vec<_>>()),
        per_system: group(&|c| c.system.clone()),
        per_fault_type: group(&|c| format!("{}/{}", c.system, c.fault_type)),
        per_fault: group(&|c| c.fault_type.clone()),
        per_condition: if varied_conditions(&cases) {
            group(&|c| format!("{}, {}", c.fault_type, c.condition.as_deref().unwrap_or("")))
        } else {
            BTreeMap::new()
        },
        model: model.to_owned(),
        cases,
        baselines: Vec::new(),
        signals: SignalSet::All,
        ablation: Vec::new(),
    }
}

/// Whether the cases' conditions (traffic, baseline length) differ: only then does the report
/// break the accuracy down by them.
fn varied_conditions(cases: &[CaseResult]) -> bool {
    cases
        .iter()
        .any(|c| c.condition.is_some() && c.condition != cases[0].condition)
}

/// Published service-level top-1 / top-3 accuracy on these systems (Nezha paper, Table 3).
const PUBLISHED: [(&str, &str, f64, f64); 4] = [
    ("online-boutique", "Nezha", 0.9286, 0.9643),
    (
        "online-boutique",
        "best other baseline (MicroRank, PDiagnose)",
        0.4107,
        f64::NAN,
    ),
    ("train-ticket", "Nezha", 0.8667, 0.9778),
    (
        "train-ticket",
        "best other baseline (MicroRCA)",
        0.20,
        f64::NAN,
    ),
];

/// loupe beside the baselines of the same run, per system: accuracy and mean time per case.
fn render_baselines(report: &EvalReport) -> String {
    let mut out = String::from(
        "\nside by side, this run (loupe: traces, logs and metrics; BARO and NSigma from RCAEval: \
         the pods' metric matrices):\n",
    );
    out.push_str(&format!(
        "  {:<16} {:<7} {:>5} {:>6} {:>6} {:>7} {:>6} {:>11}\n",
        "system", "method", "cases", "AC@1", "AC@3", "Avg@5", "MRR", "time/case"
    ));
    let row = |out: &mut String, system: &str, method: &str, a: &Accuracy, seconds: f64| {
        out.push_str(&format!(
            "  {system:<16} {method:<7} {:>5} {:>6.3} {:>6.3} {:>7.3} {:>6.3} {:>8.1} ms\n",
            a.cases,
            a.ac_at_1,
            a.ac_at_3,
            a.avg_at_5,
            a.mrr,
            seconds * 1e3
        ));
    };
    let baselines = baselines::summarize(&report.baselines);
    let mut failures = Vec::new();
    for (system, a) in &report.per_system {
        let of: Vec<&CaseResult> = report
            .cases
            .iter()
            .filter(|c| &c.system == system)
            .collect();
        let seconds = of.iter().map(|c| c.analysis_seconds).sum::<f64>() / of.len().max(1) as f64;
        row(&mut out, system, "loupe", a, seconds);
        for (s, method, a, seconds, failed) in &baselines {
            if s == system {
                row(&mut out, system, method, a, *seconds);
                if *failed > 0 {
                    failures.push(format!("{method} failed on {failed} {system} cases"));
                }
            }
        }
    }
    for f in failures {
        out.push_str(&format!("  ({f}; they count as misses)\n"));
    }
    out
}

/// The report as a table for people; `published` adds the Nezha paper's figures.
pub fn render_with(report: &EvalReport, published: bool) -> String {
    let mut out = String::new();
    let row = |out: &mut String, name: &str, a: &Accuracy| {
        out.push_str(&format!(
            "{name:<34} {:>5} {:>6.3} {:>6.3} {:>7.3} {:>6.3}\n",
            a.cases, a.ac_at_1, a.ac_at_3, a.avg_at_5, a.mrr
        ));
    };
    out.push_str(&format!(
        "{:<34} {:>5} {:>6} {:>6} {:>7} {:>6}\n",
        "scope", "cases", "AC@1", "AC@3", "Avg@5", "MRR"
    ));
    row(&mut out, "all", &report.summary);
    for (system, a) in &report.per_system {
        row(&mut out, system, a);
    }
    for (key, a) in &report.per_fault_type {
        row(&mut out, &format!("  {key}"), a);
    }
    if !published {
        out.push_str("\nper fault type, every system:\n");
        for (key, a) in &report.per_fault {
            row(&mut out, &format!("  {key}"), a);
        }
    }
    if !report.per_condition.is_empty() {
        out.push_str(
            "
per fault type and condition, every system:
",
        );
        for (key, a) in &report.per_condition {
            row(&mut out, &format!("  {key}"), a);
        }
    }
    let published = if published { &PUBLISHED[..] } else { &[] };
    if !published.is_empty() {
        out.push_str("\npublished (Nezha, FSE 2023, Table 3; service level):\n");
    }
    for &(system, method, top1, top3) in published {
        let top3 = if top3.is_nan() {
            "-".to_owned()
        } else {
            format!("{top3:.3}")
        };
        out.push_str(&format!(
            "  {system:<16} {method:<44} AC@1 {top1:.3}  AC@3 {top3}\n"
        ));
    }
    if report.signals != SignalSet::All {
        out.push_str(&format!("\nsignals fed: {}\n", report.signals.label()));
    }
    if !report.baselines.is_empty() {
        out.push_str(&render_baselines(report));
    }
    if !report.ablation.is_empty() {
        out.push_str(&ablation::render(&report.ablation));
    }
    let points: Vec<(f64, bool)> = report
        .cases
        .iter()
        .map(|c| (c.probability, c.rank == Some(1)))
        .collect();
    out.push_str(&format!(
        "\nreliability (model {}; top cause's probability against AC@1):\n{}",
        report.model,
        loupe_analysis::eval::render_reliability(&loupe_analysis::eval::reliability(&points, 5))
    ));
    let misses: Vec<&CaseResult> = report.cases.iter().filter(|c| c.rank != Some(1)).collect();
    if !misses.is_empty() {
        out.push_str("\nnot ranked first:\n");
        for c in misses {
            let rank = c
                .rank
                .map_or("unranked".to_owned(), |r| format!("rank {r}"));
            let top: Vec<&str> = c.ranking.iter().take(3).map(String::as_str).collect();
            out.push_str(&format!(
                "  {:<26} {:<15} truth {:<32} {rank:<9} top: {}\n",
                c.case_id,
                c.fault_type,
                c.truth,
                top.join(", ")
            ));
        }
    }
    out
}

/// Completes `report` (this run's arm) with the ablation's ([`ablation`]) other arms, each scored by `run`.
///
/// # Errors
/// The first arm whose run fails.
pub async fn complete_ablation<F, Fut>(report: &mut EvalReport, mut run: F) -> anyhow::Result<()>
where
    F: FnMut(SignalSet) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<EvalReport>>,
{
    report.ablation = vec![report.arm()];
    let this = report.signals;
    for arm in SignalSet::ARMS.into_iter().filter(|a| *a != this) {
        report.ablation.push(run(arm).await?.arm());
    }
    Ok(())
}

/// `loupe eval` arguments.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Dataset format.
    pub format: DatasetFormat,
    /// Dataset directory with ground_truth.json.
    pub dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Comma-separated case ids (default: every case usable for RCA).
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// Also run the published baselines BARO and NSigma (RCAEval) on the same cases' pod
    /// metrics, and print them beside loupe (nezha only; needs Python with `pip install
    /// rcaeval networkx causal-learn requests tqdm`).
    #[arg(long)]
    pub baselines: bool,
    /// The Python interpreter for --baselines.
    #[arg(long, env = "LOUPE_PYTHON", default_value = "python3")]
    pub python: PathBuf,
    /// The telemetry signals fed to the engine (change events are always fed).
    #[arg(long, value_enum, default_value = "all")]
    pub signals: SignalSet,
    /// Also score the cases with traces only, metrics only and logs only, and print the
    /// ablation table beside this run's figures.
    #[arg(long)]
    pub ablation: bool,
    #[command(flatten)]
    pub model: crate::config::ModelArgs,
}

/// Progress of an evaluation on stderr, unless JSON goes to a pipe.
pub fn eval_progress(json: bool) -> impl FnMut(usize, usize, &str) {
    let show = !json || std::io::IsTerminal::is_terminal(&std::io::stderr());
    move |done, total, id| {
        if show {
            eprint!("\r\x1b[Kevaluating {done}/{total} {id}");
        }
    }
}

/// Prints an evaluation as JSON or as a table (`published`: with the Nezha paper's figures).
pub fn print_report(report: &EvalReport, json: bool, published: bool) -> anyhow::Result<()> {
    eprintln!();
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", render_with(report, published));
    }
    Ok(())
}

/// `loupe eval`: scores the ranking on a Nezha dataset ([`run`], with the published baselines
/// on request) or a simulated case set ([`sim::run`]), with the ablation's arms on request,
/// and prints the report.
///
/// # Errors
/// A loupe data directory (it holds no labels), `--baselines` on a simulated set, an
/// unreadable dataset; or the baselines failing to run, after loupe's figures are printed.
pub async fn execute(args: EvalArgs) -> anyhow::Result<()> {
    let EvalArgs {
        format,
        dir,
        json,
        cases,
        baselines,
        python,
        model,
        signals,
        ablation,
    } = args;
    match format {
        DatasetFormat::Loupe => anyhow::bail!(
            "eval scores labelled datasets (nezha, sim); a loupe data directory holds no labels"
        ),
        DatasetFormat::Sim => {
            anyhow::ensure!(
                !baselines,
                "--baselines runs on the Nezha metric matrices; simulated sets have none yet"
            );
            let config = model.analysis_config()?;
            let mut report = sim::run(&dir, &cases, &config, signals, eval_progress(json)).await?;
            if ablation {
                complete_ablation(&mut report, |arm| {
                    sim::run(&dir, &cases, &config, arm, eval_progress(json))
                })
                .await?;
            }
            print_report(&report, json, false)?;
        }
        DatasetFormat::Nezha => {
            let config = model.analysis_config()?;
            let dataset = NezhaDataset::open(&dir)?;
            let mut report = run(&dataset, &cases, &config, signals, eval_progress(json)).await?;
            if ablation {
                complete_ablation(&mut report, |arm| {
                    run(&dataset, &cases, &config, arm, eval_progress(json))
                })
                .await?;
            }
            // A baseline that cannot run loses none of loupe's figures: they print first.
            let mut baseline_error = None;
            if baselines {
                let all = dataset.ground_truth()?;
                let selected = select(&all, &cases)?;
                match baselines::run(&dataset, &selected, &all, &python, eval_progress(json)) {
                    Ok(b) => report.baselines = b,
                    Err(e) => baseline_error = Some(e),
                }
            }
            print_report(&report, json, true)?;
            if let Some(e) = baseline_error {
                return Err(e.context("the baselines did not run; loupe's figures above stand"));
            }
        }
    }
    Ok(())
}
