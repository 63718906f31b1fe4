//! `loupe train`: fits the ranker's weights on labelled cases and reports, out of sample, how
//! the current weights and the fitted ones rank them.
//!
//! Every case is analysed once (as `loupe eval` does, every candidate kept) to get each
//! candidate's model inputs; fitting and scoring then work on those inputs alone. Two
//! out-of-sample measures per system:
//!
//! - **k-fold within the system**: the system's cases are shuffled (seeded) and cut into k
//!   folds; each fold is ranked by weights fitted on the system's other folds;
//! - **across systems**: the system's cases are ranked by weights fitted on every other
//!   system's cases only.
//!
//! A softmax temperature is fitted on the k-fold fits' out-of-fold scores (temperature
//! scaling) and written with the weights. The weights written to `--out` are fitted on every
//! case given. Fitting is deterministic: the
//! same cases, seed and settings give the same weights.

use std::collections::BTreeMap;
use std::path::PathBuf;

use loupe_analysis::eval::{reliability, render_reliability, Accuracy, Bin};
use loupe_analysis::ranker::{self, input_names, Ranker, TrainConfig, TrainingCase};
use loupe_analysis::AnalysisConfig;

use crate::cli::eval::ablation::SignalSet;
use loupe_ingest::nezha::NezhaDataset;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::ModelArgs;

/// `loupe train` arguments.
#[derive(clap::Args, Clone)]
pub struct TrainArgs {
    /// A Nezha dataset directory (both systems' usable cases).
    #[arg(long)]
    pub nezha: Option<PathBuf>,
    /// A simulated case set (`loupe simulate cases`); repeat for several.
    #[arg(long)]
    pub sim: Vec<PathBuf>,
    /// A verdict log (`verdicts.jsonl` in a server's data directory): each verdict that kept
    /// its incident's candidates is a case (system `verdicts`): an accepted cause is the
    /// answer; a rejected one says the answer is any other cause.
    #[arg(long)]
    pub verdicts: Option<PathBuf>,
    /// Folds of the cross-validation within each system (at least 2).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// AdamW steps per fit.
    #[arg(long, default_value_t = TrainConfig::default().steps)]
    pub steps: usize,
    /// L2 pull of each weight towards the current weights (larger keeps the fit closer to
    /// them; a guard against fitting one system's quirks).
    #[arg(long, default_value_t = TrainConfig::default().l2)]
    pub l2: f64,
    /// Start the fits from the hand weights instead of the current ones (the shipped weights
    /// are made this way, so that remaking them does not depend on what was shipped before).
    #[arg(long)]
    pub from_hand: bool,
    /// Where to write the weights fitted on every case (safetensors).
    #[arg(long, default_value = "ranker.safetensors")]
    pub out: PathBuf,
    /// The current rules and weights (the fit starts from these weights).
    #[command(flatten)]
    pub model: ModelArgs,
}

/// One labelled, analysed case.
#[derive(Debug, Clone)]
pub struct Example {
    /// `nezha/train-ticket`, `sim/shop`…
    pub system: String,
    /// Case id.
    pub case_id: String,
    /// Candidates' inputs and labels.
    pub case: TrainingCase,
}

/// Accuracy of one set of weights on one system.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// System, or `all`.
    pub system: String,
    /// `current`, `fitted, k-fold within`, `fitted on the other systems`.
    pub weights: String,
    /// The figures.
    pub accuracy: Accuracy,
}

/// What `loupe train` prints.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Accuracy rows.
    pub rows: Vec<Row>,
    /// Reliability of the k-fold fitted weights' top probabilities, at temperature 1.
    pub reliability_raw: Vec<Bin>,
    /// The same with the fitted temperature.
    pub reliability: Vec<Bin>,
    /// Temperature fitted on the out-of-fold scores (written with the weights).
    pub temperature: f64,
    /// Cases whose root cause was no candidate at all (no weights can rank it).
    pub unreachable: Vec<String>,
    /// The weights written, by input name.
    pub weights: Vec<(String, f32)>,
    /// Mean training loss before and after the final fit.
    pub loss: (f64, f64),
    /// Where they were written.
    pub out: PathBuf,
}

/// Analyses every case of the given sets with `config`'s rules.
///
/// # Errors
/// When a set cannot be read or a case cannot be analysed.
pub async fn examples(
    args: &TrainArgs,
    config: &AnalysisConfig,
    mut progress: impl FnMut(usize, usize, &str),
) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    if let Some(dir) = &args.nezha {
        let dataset = NezhaDataset::open(dir)?;
        let report =
            crate::cli::eval::run(&dataset, &[], config, SignalSet::All, &mut progress).await?;
        out.extend(report.cases.into_iter().map(|c| Example {
            system: format!("nezha/{}", c.system),
            case_id: c.case_id,
            case: c.candidates,
        }));
    }
    for dir in &args.sim {
        let report =
            crate::cli::eval::sim::run(dir, &[], config, SignalSet::All, &mut progress).await?;
        out.extend(report.cases.into_iter().map(|c| Example {
            system: format!("sim/{}", c.system),
            case_id: c.case_id,
            case: c.candidates,
        }));
    }
    if let Some(path) = &args.verdicts {
        let (log, skipped) = loupe_analysis::Verdicts::open(path)?;
        if skipped > 0 {
            tracing::warn!(skipped, path = %path.display(), "verdict lines that do not parse were skipped");
        }
        let mut unusable = 0usize;
        for v in log.all() {
            match v.training_case() {
                Some(case) => out.push(Example {
                    system: "verdicts".into(),
                    case_id: format!("incident {} {} {:?}", v.incident, v.cause, v.verdict),
                    case,
                }),
                None => unusable += 1,
            }
        }
        if unusable > 0 {
            tracing::warn!(
                unusable,
                "verdicts without their incident's candidates (recorded by an older loupe, or of another model) were left out"
            );
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no cases: give --nezha DIR, --sim DIR and/or --verdicts FILE"
    );
    Ok(out)
}

fn fit(cases: &[&Example], start: &Ranker, config: &TrainConfig) -> anyhow::Result<Ranker> {
    let owned: Vec<TrainingCase> = cases.iter().map(|e| e.case.clone()).collect();
    let (r, _, _) = ranker::train(&owned, start, config).map_err(anyhow::Error::msg)?;
    Ok(r)
}

/// Fits, measures and writes the weights (see the module docs).
///
/// # Errors
/// When the cases cannot be read, no case can be learned from, or the weights cannot be
/// written.
pub async fn run(
    args: &TrainArgs,
    config: &AnalysisConfig,
    progress: impl FnMut(usize, usize, &str),
) -> anyhow::Result<TrainReport> {
    anyhow::ensure!(args.folds >= 2, "--folds must be at least 2");
    let all = examples(args, config, progress).await?;
    let hand_start = Ranker {
        rules: config.ranker.rules.clone(),
        ..Ranker::hand()
    };
    let current = if args.from_hand {
        &hand_start
    } else {
        config.ranker.as_ref()
    };
    let train_config = TrainConfig {
        steps: args.steps,
        l2: args.l2,
        ..TrainConfig::default()
    };
    let mut by_system: BTreeMap<&str, Vec<&Example>> = BTreeMap::new();
    for e in &all {
        by_system.entry(&e.system).or_default().push(e);
    }
    let mut rows = Vec::new();
    let mut pooled: BTreeMap<&str, Vec<Option<usize>>> = BTreeMap::new();
    // Out-of-fold scores of the k-fold fits, for the temperature and the reliability tables.
    let mut out_of_fold: Vec<(Vec<f64>, Vec<bool>)> = Vec::new();
    let hand = Ranker::hand();
    for (system, cases) in &by_system {
        let mut row = |name: &'static str, ranks: Vec<Option<usize>>| {
            pooled.entry(name).or_default().extend(&ranks);
            rows.push(Row {
                system: (*system).to_owned(),
                weights: name.to_owned(),
                accuracy: Accuracy::of(&ranks),
            });
        };
        let ranks_of = |r: &Ranker| -> Vec<Option<usize>> {
            cases.iter().map(|e| r.evaluate(&e.case).0).collect()
        };
        row("hand", ranks_of(&hand));
        row("current", ranks_of(current));
        // k-fold within the system.
        let mut order: Vec<usize> = (0..cases.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(args.seed));
        let mut fold_ranks = vec![None; cases.len()];
        for f in 0..args.folds.min(cases.len()) {
            let held: Vec<usize> = order.iter().copied().skip(f).step_by(args.folds).collect();
            let train: Vec<&Example> = (0..cases.len())
                .filter(|i| !held.contains(i))
                .map(|i| cases[i])
                .collect();
            let Ok(fitted) = fit(&train, current, &train_config) else {
                continue;
            };
            for i in held {
                fold_ranks[i] = fitted.evaluate(&cases[i].case).0;
                out_of_fold.push((
                    fitted.scores(&cases[i].case.inputs),
                    cases[i].case.truth.clone(),
                ));
            }
        }
        row("fitted, k-fold within", fold_ranks);
        // Across systems.
        let others: Vec<&Example> = all.iter().filter(|e| e.system != *system).collect();
        if let Ok(fitted) = fit(&others, current, &train_config) {
            row("fitted on the other systems", ranks_of(&fitted));
        }
    }
    for (name, ranks) in pooled {
        rows.push(Row {
            system: "all".into(),
            weights: name.to_owned(),
            accuracy: Accuracy::of(&ranks),
        });
    }
    let temperature = ranker::fit_temperature(&out_of_fold);
    let table = |t: f64| {
        let r = Ranker {
            temperature: t,
            ..current.clone()
        };
        let points: Vec<(f64, bool)> = out_of_fold
            .iter()
            .map(|(s, truth)| {
                let p = r.probabilities(s);
                let top = (0..p.len()).max_by(|a, b| p[*a].total_cmp(&p[*b]));
                (top.map_or(0.0, |i| p[i]), top.is_some_and(|i| truth[i]))
            })
            .collect();
        reliability(&points, 5)
    };
    let (reliability_raw, reliability) = (table(1.0), table(temperature));
    let everything: Vec<&Example> = all.iter().collect();
    let owned: Vec<TrainingCase> = everything.iter().map(|e| e.case.clone()).collect();
    let (mut fitted, before, after) =
        ranker::train(&owned, current, &train_config).map_err(anyhow::Error::msg)?;
    fitted.temperature = temperature;
    fitted.save(&args.out)?;
    Ok(TrainReport {
        rows,
        reliability_raw,
        reliability,
        temperature,
        unreachable: all
            .iter()
            .filter(|e| !e.case.truth.iter().any(|t| *t))
            .map(|e| format!("{} {}", e.system, e.case_id))
            .collect(),
        weights: input_names()
            .zip(fitted.weights)
            .map(|(n, w)| (n.to_string(), w))
            .collect(),
        loss: (before, after),
        out: args.out.clone(),
    })
}

/// The report as tables for people.
pub fn render(report: &TrainReport) -> String {
    let mut out = format!(
        "{:<26} {:<28} {:>5} {:>6} {:>6} {:>6} {:>6}\n",
        "system", "weights", "cases", "AC@1", "AC@3", "Avg@5", "MRR"
    );
    for r in &report.rows {
        let a = &r.accuracy;
        out.push_str(&format!(
            "{:<26} {:<28} {:>5} {:>6.3} {:>6.3} {:>6.3} {:>6.3}\n",
            r.system, r.weights, a.cases, a.ac_at_1, a.ac_at_3, a.avg_at_5, a.mrr
        ));
    }
    out.push_str(
        "\nreliability of the k-fold fitted weights, out of fold (top cause's probability):\n",
    );
    out.push_str(&render_reliability(&report.reliability_raw));
    out.push_str(&format!(
        "\nthe same with the temperature fitted on these scores, T = {:.3}:\n",
        report.temperature
    ));
    out.push_str(&render_reliability(&report.reliability));
    if !report.unreachable.is_empty() {
        out.push_str(&format!(
            "\n{} cases have no candidate naming their root cause: {}\n",
            report.unreachable.len(),
            report.unreachable.join(", ")
        ));
    }
    out.push_str(&format!(
        "\nfitted on every case (mean loss {:.3} -> {:.3}), written to {}:\n",
        report.loss.0,
        report.loss.1,
        report.out.display()
    ));
    for (name, w) in &report.weights {
        out.push_str(&format!("  {name:<18} {w:>8.3}\n"));
    }
    out
}
