//! The ranker: a linear scoring model, run with candle, over each candidate's inputs (its
//! feature scores, its nearby change, the weight of the rules that held, its kind), whose
//! scores become probabilities by a softmax over the analysis's candidates: `P(candidate i is
//! the root cause) = exp(s_i) / Σ_j exp(s_j)`, `s = w · x`.
//!
//! Fitting (`loupe train`, [`train`]) maximizes the likelihood of the labelled root cause under
//! that softmax (the listwise loss of ListNet with one relevant item: Cao et al., "Learning to
//! Rank: From Pairwise Approach to Listwise Approach", ICML 2007), with an L2 pull towards the
//! starting weights, by full-batch AdamW (Loshchilov & Hutter, ICLR 2019) for a fixed number of
//! steps from fixed starting weights: the same cases give the same weights. Maximum likelihood
//! under a softmax is also what calibrates the probabilities (a proper scoring rule), which the
//! eval checks with a reliability table.
//!
//! Maximum likelihood on one set of cases can still be overconfident on others; `loupe train`
//! therefore also fits a temperature `T` on out-of-fold scores (temperature scaling: Guo et
//! al., "On Calibration of Modern Neural Networks", ICML 2017), and probabilities are
//! `softmax(s / T)`; the ranking does not depend on `T`.
//!
//! The weights loupe ships (`analysis/ranker.safetensors`) are embedded at build time; a
//! server can load others (`loupe serve --model FILE`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;

use crate::rules::{Rules, SCORE_VARIABLES};

/// The inputs of the model after the seven feature scores (robust z after propagation,
/// [`SCORE_VARIABLES`]): the nearby change's proximity weight times the sum of the feature
/// scores, the proximity weight alone, the summed weight of the rules that held, and the
/// candidate's kind as one-hot (service, database, node, edge, change).
pub const EXTRA_INPUTS: [&str; 8] = [
    "change_x_evidence",
    "change_weight",
    "rules",
    "kind_service",
    "kind_database",
    "kind_node",
    "kind_edge",
    "kind_change",
];

/// Position of `trace_spectrum` among the inputs.
pub const TRACE_SPECTRUM: usize = 8;

/// Position of `change_x_evidence` among the inputs.
pub const CHANGE_X_EVIDENCE: usize = SCORE_VARIABLES.len();
/// Position of `change_weight`.
pub const CHANGE_WEIGHT: usize = CHANGE_X_EVIDENCE + 1;
/// Position of `rules`.
pub const RULES: usize = CHANGE_WEIGHT + 1;
/// Position of the first kind input (`kind_service`; then database, node, edge, change).
pub const KIND: usize = RULES + 1;

/// Number of model inputs: [`SCORE_VARIABLES`] then [`EXTRA_INPUTS`].
pub const N_INPUTS: usize = SCORE_VARIABLES.len() + EXTRA_INPUTS.len();

/// The model's input names, in order ([`SCORE_VARIABLES`] then [`EXTRA_INPUTS`]).
pub fn input_names() -> impl Iterator<Item = &'static str> {
    SCORE_VARIABLES.iter().chain(&EXTRA_INPUTS).copied()
}

/// One candidate's inputs.
pub type Inputs = [f32; N_INPUTS];

/// The weights shipped with loupe.
const SHIPPED: &[u8] = include_bytes!("../ranker.safetensors");

/// Name of the weight tensor in the safetensors file.
const TENSOR: &str = "ranker.weight";
/// Name of the temperature tensor (optional: 1 when absent).
const TEMPERATURE: &str = "ranker.temperature";

/// A model file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not a safetensors file with the expected tensor.
    #[error("{origin}: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

/// The ranking model plus the rules whose hypotheses feed it.
#[derive(Debug, Clone)]
pub struct Ranker {
    /// Correlation rules.
    pub rules: Rules,
    /// Linear weights, one per input ([`input_names`]).
    pub weights: Inputs,
    /// Softmax temperature of the probabilities (> 0; 1 when not calibrated).
    pub temperature: f64,
    /// Where the weights came from (`shipped`, `hand`, a file).
    pub source: String,
}

/// Summary of a model for the API and logs.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Where the weights came from.
    pub source: String,
    /// Input name → weight.
    pub weights: Vec<(String, f32)>,
    /// Number of rules.
    pub rules: usize,
}

impl Ranker {
    /// The hand-set weights loupe used before it learned: the sum of the feature scores, times
    /// `1 + proximity` of a nearby change; rules and kinds count for nothing. The trace
    /// spectrum, added after loupe learned, starts at 0: only a fit gives it weight.
    pub fn hand() -> Self {
        let mut weights = [0.0; N_INPUTS];
        weights[..SCORE_VARIABLES.len()].fill(1.0);
        weights[TRACE_SPECTRUM] = 0.0;
        weights[CHANGE_X_EVIDENCE] = 1.0;
        Self {
            rules: Rules::defaults(),
            weights,
            temperature: 1.0,
            source: "hand".into(),
        }
    }

    /// The shipped model with the shipped rules, loaded once.
    pub fn shipped() -> Arc<Self> {
        static SHIPPED_RANKER: OnceLock<Arc<Ranker>> = OnceLock::new();
        SHIPPED_RANKER
            .get_or_init(|| {
                let (weights, temperature) = weights_from(SHIPPED, "shipped")
                    .expect("the shipped weights load (checked by a test)");
                Arc::new(Self {
                    rules: Rules::defaults(),
                    weights,
                    temperature,
                    source: "shipped".into(),
                })
            })
            .clone()
    }

    /// Weights from the safetensors file at `path`, with `rules`.
    ///
    /// # Errors
    /// [`ModelError`] when the file cannot be read or is not a model of [`N_INPUTS`] inputs.
    pub fn load(path: &Path, rules: Rules) -> Result<Self, ModelError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ModelError::Invalid {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        let (weights, temperature) = weights_from(&bytes, &origin)?;
        Ok(Self {
            rules,
            weights,
            temperature,
            source: origin,
        })
    }

    /// Writes the weights as safetensors: f32 tensors `ranker.weight` ([`N_INPUTS`]) and
    /// `ranker.temperature` (1).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let invalid = |e: candle_core::Error| ModelError::Invalid {
            origin: path.display().to_string(),
            reason: e.to_string(),
        };
        let t = Tensor::from_slice(&self.weights, N_INPUTS, &Device::Cpu).map_err(invalid)?;
        let temperature =
            Tensor::from_slice(&[self.temperature as f32], 1, &Device::Cpu).map_err(invalid)?;
        let tensors = std::collections::HashMap::from([(TENSOR, t), (TEMPERATURE, temperature)]);
        candle_core::safetensors::save(&tensors, path).map_err(invalid)
    }

    /// Summary for the API.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            source: self.source.clone(),
            weights: input_names()
                .zip(self.weights)
                .map(|(n, w)| (n.to_string(), w))
                .collect(),
            rules: self.rules.rules().len(),
        }
    }

    /// Scores `s = w · x` of each candidate (an `n × N_INPUTS` by `N_INPUTS` product on
    /// candle's CPU device).
    pub fn scores(&self, inputs: &[Inputs]) -> Vec<f64> {
        let run = || -> candle_core::Result<Vec<f64>> {
            if inputs.is_empty() {
                return Ok(Vec::new());
            }
            let x = Tensor::from_slice(
                inputs.as_flattened(),
                (inputs.len(), N_INPUTS),
                &Device::Cpu,
            )?;
            let w = Tensor::from_slice(&self.weights, (N_INPUTS, 1), &Device::Cpu)?;
            let s: Vec<f32> = x.matmul(&w)?.squeeze(1)?.to_vec1()?;
            Ok(s.into_iter().map(f64::from).collect())
        };
        // Shapes are fixed above; a failure here would be a candle fault: fall back to the
        // same product in plain arithmetic rather than lose the analysis.
        run().unwrap_or_else(|_| {
            inputs
                .iter()
                .map(|x| {
                    x.iter()
                        .zip(&self.weights)
                        .map(|(a, b)| f64::from(a * b))
                        .sum()
                })
                .collect()
        })
    }
}

impl Ranker {
    /// How these weights rank a labelled case: the 1-based rank of its first candidate that
    /// names the root cause (ties keep the given order; `None` when none does), and the top
    /// candidate's probability.
    pub fn evaluate(&self, case: &TrainingCase) -> (Option<usize>, f64) {
        let scores = self.scores(&case.inputs);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
        let rank = order.iter().position(|&i| case.truth[i]).map(|r| r + 1);
        let top = self.probabilities(&scores).into_iter().fold(0.0, f64::max);
        (rank, top)
    }

    /// Each candidate's probability of being the root cause: `softmax(scores / T)`.
    pub fn probabilities(&self, scores: &[f64]) -> Vec<f64> {
        let t = self.temperature.max(1e-6);
        probabilities(&scores.iter().map(|s| s / t).collect::<Vec<_>>())
    }
}

/// The temperature `T` in [0.05, 20] that calibrates the top candidate's probability: it
/// minimizes the log loss of "the top candidate is the root cause" under the top's
/// `softmax(s / T)` probability, over `cases` (each: scores, and which candidates name the
/// root cause), by golden-section search on `ln T`. This targets what people read (the top
/// cause's confidence) rather than the likelihood of the labelled candidate, which a few
/// badly ranked cases would dominate. The ranking does not depend on `T`. 1 when `cases` is
/// empty.
pub fn fit_temperature(cases: &[(Vec<f64>, Vec<bool>)]) -> f64 {
    if cases.is_empty() {
        return 1.0;
    }
    let tops: Vec<(usize, bool)> = cases
        .iter()
        .filter_map(|(s, truth)| {
            let i = (0..s.len()).max_by(|a, b| s[*a].total_cmp(&s[*b]))?;
            Some((i, truth.get(i).copied().unwrap_or(false)))
        })
        .collect();
    let nll = |ln_t: f64| -> f64 {
        let t = ln_t.exp();
        cases
            .iter()
            .zip(&tops)
            .map(|((s, _), (i, right))| {
                let p = probabilities(&s.iter().map(|s| s / t).collect::<Vec<_>>())[*i]
                    .clamp(1e-12, 1.0 - 1e-12);
                -if *right { p.ln() } else { (1.0 - p).ln() }
            })
            .sum::<f64>()
            / cases.len() as f64
    };
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if nll(c) < nll(d) {
            b = d;
        } else {
            a = c;
        }
    }
    ((a + b) / 2.0).exp()
}

/// Softmax of `scores`: each candidate's probability of being the root cause.
pub fn probabilities(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn weights_from(bytes: &[u8], origin: &str) -> Result<(Inputs, f64), ModelError> {
    let invalid = |reason: String| ModelError::Invalid {
        origin: origin.to_owned(),
        reason,
    };
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    let t = tensors
        .get(TENSOR)
        .ok_or_else(|| invalid(format!("no tensor {TENSOR:?}")))?;
    let v: Vec<f32> = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(|e| invalid(e.to_string()))?;
    let weights: Inputs = v.as_slice().try_into().map_err(|_| {
        invalid(format!(
            "{} weights, this loupe's model has {N_INPUTS} inputs (retrain with `loupe train`)",
            v.len()
        ))
    })?;
    if weights.iter().any(|w| !w.is_finite()) {
        return Err(invalid("a weight is not finite".into()));
    }
    let temperature = match tensors.get(TEMPERATURE) {
        None => 1.0,
        Some(t) => t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| invalid(e.to_string()))?
            .first()
            .map(|t| f64::from(*t))
            .filter(|t| t.is_finite() && *t > 0.0)
            .ok_or_else(|| invalid("the temperature is not a positive number".into()))?,
    };
    Ok((weights, temperature))
}

/// One labelled case for training: every candidate's inputs and whether it names the root
/// cause (a case where none does teaches nothing and is skipped).
#[derive(Debug, Clone, Default)]
pub struct TrainingCase {
    /// Inputs per candidate.
    pub inputs: Vec<Inputs>,
    /// Per candidate, whether it names the labelled root cause.
    pub truth: Vec<bool>,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// AdamW steps over the full batch.
    pub steps: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// L2 pull towards the starting weights, per weight (default 0.3: chosen by `loupe train`'s
    /// cross-system figures; 0.01 let the simulated systems pull Train-Ticket from AC@1 0.714 to
    /// 0.536).
    pub l2: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 400,
            learning_rate: 0.05,
            l2: 0.3,
        }
    }
}

/// Fits the weights on `cases`, starting from `start`'s; returns the fitted ranker (with
/// `start`'s rules) and the mean loss before and after.
///
/// # Errors
/// When no case has a labelled candidate, or candle fails.
pub fn train(
    cases: &[TrainingCase],
    start: &Ranker,
    config: &TrainConfig,
) -> Result<(Ranker, f64, f64), String> {
    let usable: Vec<&TrainingCase> = cases
        .iter()
        .filter(|c| c.truth.iter().any(|t| *t) && c.inputs.len() == c.truth.len())
        .collect();
    if usable.is_empty() {
        return Err("no case has its root cause among the candidates".into());
    }
    let fit = || -> candle_core::Result<(Inputs, f64, f64)> {
        let dev = Device::Cpu;
        let k = usable.iter().map(|c| c.inputs.len()).max().unwrap_or(1);
        let n = usable.len();
        // Padded to k candidates per case; padding and non-root candidates get a large
        // negative bias where they must not count.
        const OFF: f32 = -1.0e4;
        let mut x = vec![0f32; n * k * N_INPUTS];
        let mut pad = vec![OFF; n * k];
        let mut pos = vec![OFF; n * k];
        for (i, c) in usable.iter().enumerate() {
            for (j, (inp, t)) in c.inputs.iter().zip(&c.truth).enumerate() {
                x[(i * k + j) * N_INPUTS..(i * k + j + 1) * N_INPUTS].copy_from_slice(inp);
                pad[i * k + j] = 0.0;
                if *t {
                    pos[i * k + j] = 0.0;
                }
            }
        }
        let x = Tensor::from_vec(x, (n * k, N_INPUTS), &dev)?;
        let pad = Tensor::from_vec(pad, (n, k), &dev)?;
        let pos = Tensor::from_vec(pos, (n, k), &dev)?;
        let w0 = Tensor::from_slice(&start.weights, (N_INPUTS, 1), &dev)?;
        let w = Var::from_tensor(&w0)?;
        let loss_of = |w: &Tensor| -> candle_core::Result<(Tensor, Tensor)> {
            let s = x.matmul(w)?.reshape((n, k))?.add(&pad)?;
            let lsm = candle_nn::ops::log_softmax(&s, D::Minus1)?;
            let nll = lsm.add(&pos)?.log_sum_exp(D::Minus1)?.neg()?.mean_all()?;
            let penalty = w.sub(&w0)?.sqr()?.sum_all()?.affine(config.l2, 0.0)?;
            Ok((nll.add(&penalty)?, nll))
        };
        let before = loss_of(w.as_tensor())?.1.to_scalar::<f32>()?;
        let mut opt = AdamW::new(
            vec![w.clone()],
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        for _ in 0..config.steps {
            let (loss, _) = loss_of(w.as_tensor())?;
            opt.backward_step(&loss)?;
        }
        let after = loss_of(w.as_tensor())?.1.to_scalar::<f32>()?;
        let v: Vec<f32> = w.as_tensor().flatten_all()?.to_vec1()?;
        let mut weights = [0f32; N_INPUTS];
        weights.copy_from_slice(&v);
        Ok((weights, f64::from(before), f64::from(after)))
    };
    let (weights, before, after) = fit().map_err(|e| format!("training failed: {e}"))?;
    Ok((
        Ranker {
            rules: start.rules.clone(),
            weights,
            temperature: start.temperature,
            source: "trained".into(),
        },
        before,
        after,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_weights_load_and_round_trip() {
        let shipped = Ranker::shipped();
        let dir = std::env::temp_dir().join(format!("loupe-ranker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.safetensors");
        shipped.save(&path).unwrap();
        let back = Ranker::load(&path, Rules::defaults()).unwrap();
        assert_eq!(back.weights, shipped.weights);
        std::fs::write(&path, b"not a model").unwrap();
        let e = Ranker::load(&path, Rules::defaults()).unwrap_err();
        assert!(e.to_string().contains("not a safetensors file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Cases where the cause is the candidate with high CPU, while the hand weights favour
    /// error spans: training moves the ranking to the CPU candidate, the same way every time.
    #[test]
    fn training_learns_from_labels_and_is_reproducible() {
        let candidate = |cpu: f32, errors: f32| {
            let mut x = [0f32; N_INPUTS];
            x[5] = cpu;
            x[2] = errors;
            x[10] = 1.0;
            x
        };
        let cases: Vec<TrainingCase> = (0..20)
            .map(|i| {
                let e = 2.0 + (i % 5) as f32;
                TrainingCase {
                    inputs: vec![candidate(3.0, 1.0), candidate(0.0, e), candidate(0.5, 0.5)],
                    truth: vec![true, false, false],
                }
            })
            .collect();
        let hand = Ranker::hand();
        let top = |r: &Ranker, c: &TrainingCase| {
            let s = r.scores(&c.inputs);
            (0..s.len()).max_by(|a, b| s[*a].total_cmp(&s[*b])).unwrap()
        };
        assert!(cases.iter().any(|c| top(&hand, c) != 0));
        let (trained, before, after) = train(&cases, &hand, &TrainConfig::default()).unwrap();
        assert!(after < before, "{before} -> {after}");
        assert!(cases.iter().all(|c| top(&trained, c) == 0));
        let (again, _, _) = train(&cases, &hand, &TrainConfig::default()).unwrap();
        assert_eq!(trained.weights, again.weights);
        let p = probabilities(&trained.scores(&cases[0].inputs));
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(p[0] > 0.5, "{p:?}");
        assert!(train(&[TrainingCase::default()], &hand, &TrainConfig::default()).is_err());
    }

    /// Scores that are right half the time at the top but say 0.98: the fitted temperature
    /// brings the top probability down to about a half; the ranking does not change.
    #[test]
    fn temperature_scaling_tempers_overconfidence() {
        let scores = vec![5.0, 1.0];
        let cases: Vec<(Vec<f64>, Vec<bool>)> = (0..10)
            .map(|i| (scores.clone(), vec![i % 2 == 0, i % 2 == 1]))
            .collect();
        let t = fit_temperature(&cases);
        assert!(t > 10.0, "{t}");
        let r = Ranker {
            temperature: t,
            ..Ranker::hand()
        };
        let p = r.probabilities(&scores);
        assert!((p[0] - 0.5).abs() < 0.1 && p[0] > p[1], "{p:?}");
        // Right every time: a cooler softmax (T below 1) fits better.
        let sure: Vec<(Vec<f64>, Vec<bool>)> = (0..10)
            .map(|_| (scores.clone(), vec![true, false]))
            .collect();
        assert!(fit_temperature(&sure) < 1.0);
        assert_eq!(fit_temperature(&[]), 1.0);
    }
}
