//! Scoring: what the rules see of each candidate, the hypotheses that hold, the model's inputs,
//! scores and probabilities, and the ranked list.

use loupe_graph::WindowStats;

use crate::candidate::{Candidate, Feature, FEATURES};
use crate::cause::{change_target, Analysis, Cause, CauseKind, EntityRef};
use crate::config::AnalysisConfig;
use crate::evidence::Evidence;
use crate::features::changes::Nearby;
use crate::ranker::{Inputs, CHANGE_WEIGHT, CHANGE_X_EVIDENCE, KIND, N_INPUTS, RULES};
use crate::rules::{ChangeFacts, Facts, Hypothesis};

use CauseKind::{
    Change as CHANGE, Database as DATABASE, Edge as EDGE, Node as NODE, Service as SERVICE,
};

/// What the rules see of one candidate.
fn facts_of(
    cause: &Cause,
    z: &[f64; FEATURES],
    raw: &[f64; FEATURES],
    near: Option<&Nearby>,
) -> Facts {
    // A change's sentences speak of the service (or node) it changed.
    let entity = match cause.entity.kind {
        CHANGE => change_target(&cause.entity.name)
            .unwrap_or_default()
            .to_owned(),
        _ => cause.entity.name.clone(),
    };
    Facts {
        entity,
        kind: cause.entity.kind.as_str().to_owned(),
        scores: *z,
        explained: z.iter().zip(raw).any(|(a, b)| a < b),
        change: cause.change.as_ref().zip(near).map(|(c, n)| ChangeFacts {
            kind: c.kind.as_str().to_owned(),
            summary: n.what.clone(),
            when: n.when.clone(),
            source: c.source.clone(),
            version_from: c.version_from.clone().unwrap_or_default(),
            version_to: c.version_to.clone().unwrap_or_default(),
            weight: n.weight,
        }),
        evidence: cause
            .evidence
            .iter()
            .map(|e| (e.feature.to_string(), e.summary.clone()))
            .collect(),
    }
}

/// The model's inputs of one candidate ([`crate::ranker::input_names`]) from its feature scores
/// `z` (after propagation).
fn inputs_of(
    kind: CauseKind,
    z: &[f64; FEATURES],
    change_weight: f64,
    hypotheses: &[Hypothesis],
) -> Inputs {
    let mut x = [0f32; N_INPUTS];
    for (x, z) in x.iter_mut().zip(z) {
        *x = *z as f32;
    }
    // The change times the evidence the hand weights sum (the trace spectrum, which they leave
    // out, included would let a red-herring change ride on a spectrum its service shares with
    // the cause).
    let summed: f64 = Feature::ALL
        .iter()
        .filter(|f| **f != Feature::TraceSpectrum)
        .map(|f| z[*f as usize])
        .sum();
    x[CHANGE_X_EVIDENCE] = (change_weight * summed) as f32;
    x[CHANGE_WEIGHT] = change_weight as f32;
    x[RULES] = hypotheses.iter().map(|h| h.weight).sum::<f64>() as f32;
    let kind = match kind {
        SERVICE => 0,
        DATABASE => 1,
        NODE => 2,
        EDGE => 3,
        CHANGE => 4,
    };
    x[KIND + kind] = 1.0;
    x
}

/// The causes of the gathered candidates (named by `keys`, in the same order), unranked: each
/// with its evidence scored by its feature's score in `z` (after propagation), the evidence
/// whose score is 0 left out, strongest first; its counter-evidence, the candidate's own then
/// propagation's (`counter`, taken).
pub(crate) fn causes_of(
    keys: &[(CauseKind, String)],
    gathered: &mut [Candidate],
    z: &[[f64; FEATURES]],
    counter: &mut [Vec<String>],
) -> Vec<Cause> {
    keys.iter()
        .zip(gathered.iter_mut())
        .zip(z)
        .zip(counter.iter_mut())
        .map(|((((kind, name), c), z), counter)| {
            let mut evidence: Vec<Evidence> = c
                .evidence
                .iter()
                .map(|(f, e)| Evidence {
                    score: z[*f as usize],
                    ..e.clone()
                })
                .filter(|e| e.score > 0.0)
                .collect();
            evidence.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(b.change.total_cmp(&a.change))
            });
            Cause {
                rank: 0,
                entity: EntityRef {
                    kind: *kind,
                    name: name.clone(),
                },
                score: z.iter().sum(),
                probability: 0.0,
                evidence,
                hypotheses: Vec::new(),
                counter_evidence: std::mem::take(&mut c.counter)
                    .into_iter()
                    .chain(std::mem::take(counter))
                    .collect(),
                onset: None,
                inputs: [0.0; N_INPUTS],
                change: None,
                rolled_back_by: None,
                remediation: Vec::new(),
            }
        })
        .collect()
}

/// Scores and ranks `causes`: the rules ([`crate::rules`]) applied to what they see of each
/// ([`facts_of`]), the model's inputs ([`inputs_of`]), its scores and probabilities; the causes
/// sorted best first (ties by name), cut to `max_causes` and numbered. `z` is
/// `(after propagation, before)` per cause; `nearby` the change each cause weighs in on, for
/// change candidates; `windows` is (baseline, analysed window).
pub(crate) fn rank(
    mut causes: Vec<Cause>,
    (z, undamped): (&[[f64; FEATURES]], &[[f64; FEATURES]]),
    nearby: &[Option<Nearby>],
    [baseline, current]: [&WindowStats; 2],
    config: &AnalysisConfig,
) -> Analysis {
    let facts: Vec<Facts> = causes
        .iter()
        .zip(z)
        .zip(undamped)
        .zip(nearby)
        .map(|(((c, z), raw), near)| facts_of(c, z, raw, near.as_ref()))
        .collect();
    let hypotheses = config.ranker.rules.apply(&facts);
    for (((cause, z), near), hypotheses) in causes.iter_mut().zip(z).zip(nearby).zip(hypotheses) {
        let weight = near.as_ref().map_or(0.0, |n| n.weight);
        cause.inputs = inputs_of(cause.entity.kind, z, weight, &hypotheses);
        cause.hypotheses = hypotheses;
    }
    let inputs: Vec<Inputs> = causes.iter().map(|c| c.inputs).collect();
    let scores = config.ranker.scores(&inputs);
    for ((cause, score), p) in causes
        .iter_mut()
        .zip(&scores)
        .zip(config.ranker.probabilities(&scores))
    {
        cause.score = *score;
        cause.probability = p;
    }
    causes.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.entity.name.cmp(&b.entity.name))
    });
    causes.truncate(config.max_causes);
    causes
        .iter_mut()
        .enumerate()
        .for_each(|(i, c)| c.rank = i + 1);
    let confident = causes
        .first()
        .is_some_and(|c| c.probability >= config.min_confidence);
    Analysis {
        window: [current.start, current.end],
        baseline: [baseline.start, baseline.end],
        causes,
        confident,
        model: config.ranker.source.clone(),
    }
}
