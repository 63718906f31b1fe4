//! SRE verdicts on ranked causes: stored durably (one JSON line each, with the incident's
//! candidates and their model inputs), exported as labels, and learned from twice: at once, a
//! cause whose entity and evidence match causes people rejected before ranks lower (and,
//! rejected again and again, stops raising incidents), one that matches accepted causes
//! higher; and by `loupe train --verdicts`, which refits the ranker on them
//! ([`Verdict::training_case`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cause::Cause;

/// Accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// The cause was right.
    Accepted,
    /// The cause was wrong (or "by design").
    Rejected,
}

/// One verdict, as stored and exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The incident.
    pub incident: u64,
    /// The cause's entity id (`service:payment`).
    pub cause: String,
    /// Accepted or rejected.
    pub verdict: Judgement,
    /// Why, in the person's words.
    #[serde(default)]
    pub comment: String,
    /// Who.
    pub by: String,
    /// The name of the bearer token the verdict came with, when the server requires tokens
    /// (the audit trail beside `by`, which the sender states).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When (wall clock), unix nanoseconds.
    pub at_unix_nano: u64,
    /// The incident's analysed window, `[start, end)` unix nanoseconds: the label's case.
    pub window: [u64; 2],
    /// The cause's evidence features when judged (the pattern the verdict is about).
    pub features: Vec<String>,
    /// The incident's ranked causes when judged, each entity id with its model inputs
    /// ([`crate::ranker::input_names`]): what `loupe train` learns the verdict from. Empty in
    /// verdicts recorded before loupe kept them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<(String, Vec<f32>)>,
}

impl Verdict {
    /// The verdict as a training case for the ranker: an accepted cause is the one that names
    /// the root cause; a rejected one says the cause is any of the others (the likelihood of
    /// "not this one"). `None` when the verdict kept no candidates, or their inputs are not
    /// this loupe's model's.
    pub fn training_case(&self) -> Option<crate::ranker::TrainingCase> {
        let inputs: Vec<crate::ranker::Inputs> = self
            .candidates
            .iter()
            .map(|(_, x)| x.as_slice().try_into().ok())
            .collect::<Option<_>>()?;
        let judged = |id: &str| id == self.cause;
        let truth: Vec<bool> = self
            .candidates
            .iter()
            .map(|(id, _)| match self.verdict {
                Judgement::Accepted => judged(id),
                Judgement::Rejected => !judged(id),
            })
            .collect();
        (truth.iter().any(|t| *t) && self.candidates.iter().any(|(id, _)| judged(id)))
            .then_some(crate::ranker::TrainingCase { inputs, truth })
    }
}

/// How strongly one verdict moves a matching cause's odds: ×e² (≈ 7.4) per acceptance, ÷e²
/// per rejection (an SRE who has looked is taken to be right about 7 times in 8), within
/// [e⁻⁶, e⁴]: three rejections bury a by-design pattern, two acceptances make a cause likely.
const STEP: f64 = std::f64::consts::E * std::f64::consts::E;
const FLOOR: f64 = STEP * STEP * STEP;
const CEILING: f64 = STEP * STEP;

/// Rejections of one pattern, never accepted, after which it no longer raises incidents.
pub const SUPPRESS_AFTER: usize = 3;

/// The verdicts, with the file that keeps them.
#[derive(Debug, Default)]
pub struct Verdicts {
    verdicts: Vec<Verdict>,
    path: Option<PathBuf>,
}

/// A verdict file line that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    /// The file could not be read or written.
    #[error("verdict log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Verdicts {
    /// Verdicts kept in `path` (JSON lines), loading those already there. A line that does not
    /// parse (a torn last write) is skipped and counted in the second value.
    ///
    /// # Errors
    /// [`VerdictError::Io`] when the file exists but cannot be read.
    pub fn open(path: &Path) -> Result<(Self, usize), VerdictError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(VerdictError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let mut skipped = 0;
        let verdicts = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let v = serde_json::from_str(l).ok();
                skipped += usize::from(v.is_none());
                v
            })
            .collect();
        Ok((
            Self {
                verdicts,
                path: Some(path.to_owned()),
            },
            skipped,
        ))
    }

    /// Records a verdict: appended to the file and synced before it counts.
    ///
    /// # Errors
    /// [`VerdictError::Io`] when it cannot be written; nothing is recorded then.
    pub fn record(&mut self, verdict: Verdict) -> Result<(), VerdictError> {
        if let Some(path) = &self.path {
            let io = |source| VerdictError::Io {
                path: path.display().to_string(),
                source,
            };
            let mut line = serde_json::to_vec(&verdict).map_err(|e| io(e.into()))?;
            line.push(b'\n');
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io)?;
            file.write_all(&line).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        self.verdicts.push(verdict);
        Ok(())
    }

    /// Every verdict, oldest first.
    pub fn all(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// The verdicts on one incident.
    pub fn of_incident(&self, incident: u64) -> Vec<&Verdict> {
        self.verdicts
            .iter()
            .filter(|v| v.incident == incident)
            .collect()
    }

    /// The verdicts on `cause`'s pattern: the same entity, judged when its evidence shared a
    /// feature with `cause`'s.
    fn matching<'a>(&'a self, cause: &'a Cause) -> impl Iterator<Item = &'a Verdict> + 'a {
        let id = cause.entity.id();
        self.verdicts.iter().filter(move |v| {
            v.cause == id
                && cause
                    .evidence
                    .iter()
                    .any(|e| e.score > 0.0 && v.features.iter().any(|f| *f == e.feature))
        })
    }

    /// The factor verdicts give `cause`'s odds: ×[`STEP`] for each accepted and ÷[`STEP`] for
    /// each rejected verdict on the same entity whose evidence shared a feature with this
    /// cause's, within [e⁻⁶, e⁴].
    pub fn prior(&self, cause: &Cause) -> f64 {
        let exponent: i32 = self
            .matching(cause)
            .map(|v| match v.verdict {
                Judgement::Accepted => 1,
                Judgement::Rejected => -1,
            })
            .sum();
        STEP.powi(exponent).clamp(1.0 / FLOOR, CEILING)
    }

    /// Why an incident whose top cause is `cause` should not be raised: the same pattern (as
    /// [`Verdicts::prior`] matches it) was rejected at least [`SUPPRESS_AFTER`] times and
    /// never accepted, as people do with a by-design behaviour (a long poll, a batch job's
    /// nightly errors). `None` when it should be raised.
    pub fn suppresses(&self, cause: &Cause) -> Option<String> {
        let id = cause.entity.id();
        let matching: Vec<&Verdict> = self.matching(cause).collect();
        let rejected: Vec<&&Verdict> = matching
            .iter()
            .filter(|v| v.verdict == Judgement::Rejected)
            .collect();
        let accepted = matching.len() - rejected.len();
        if accepted > 0 || rejected.len() < SUPPRESS_AFTER {
            return None;
        }
        let why: Vec<String> = rejected
            .iter()
            .rev()
            .take(3)
            .map(|v| {
                if v.comment.is_empty() {
                    v.by.clone()
                } else {
                    format!("{}: {}", v.by, v.comment)
                }
            })
            .collect();
        Some(format!(
            "{id} was rejected {} times with the same evidence and never accepted ({})",
            rejected.len(),
            why.join("; ")
        ))
    }

    /// Applies the priors to a ranking and re-ranks it. The model's scores are log-odds (see
    /// [`crate::ranker`]), so a prior adds its logarithm to the score and multiplies the
    /// cause's odds; the probabilities are renormalized, the candidates not listed keeping
    /// their share.
    pub fn reweigh(&self, causes: &mut [Cause]) {
        if self.verdicts.is_empty() {
            return;
        }
        let listed: f64 = causes.iter().map(|c| c.probability).sum();
        let mut weighed = 0.0;
        for c in causes.iter_mut() {
            let prior = self.prior(c);
            c.score += prior.ln();
            c.probability *= prior;
            weighed += c.probability;
        }
        let total = (1.0 - listed).max(0.0) + weighed;
        if total > 0.0 {
            causes.iter_mut().for_each(|c| c.probability /= total);
        }
        rerank(causes);
    }
}

/// Sorts causes by score (name on ties) and numbers them from 1.
pub(crate) fn rerank(causes: &mut [Cause]) {
    causes.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.entity.name.cmp(&b.entity.name))
    });
    causes
        .iter_mut()
        .enumerate()
        .for_each(|(i, c)| c.rank = i + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::EntityRef;
    use crate::evidence::{Evidence, EvidenceSignal};

    fn cause(name: &str, score: f64, feature: &'static str) -> Cause {
        let mut e = Evidence::new(
            EvidenceSignal::Traces,
            feature,
            String::new(),
            0.0,
            1.0,
            1.0,
        );
        e.score = score;
        Cause {
            rank: 0,
            entity: EntityRef {
                kind: crate::cause::CauseKind::Service,
                name: name.into(),
            },
            score,
            probability: 0.0,
            hypotheses: Vec::new(),
            counter_evidence: Vec::new(),
            onset: None,
            inputs: [0.0; crate::ranker::N_INPUTS],
            evidence: vec![e],
            change: None,
            rolled_back_by: None,
            remediation: Vec::new(),
        }
    }

    fn verdict(cause: &str, verdict: Judgement, feature: &str) -> Verdict {
        Verdict {
            incident: 1,
            cause: cause.into(),
            verdict,
            comment: String::new(),
            by: "sre".into(),
            token: None,
            at_unix_nano: 0,
            window: [0, 1],
            features: vec![feature.into()],
            candidates: Vec::new(),
        }
    }

    #[test]
    fn a_verdict_with_its_candidates_is_a_training_case() {
        let x = |v: f32| vec![v; crate::ranker::N_INPUTS];
        let mut v = verdict("service:db", Judgement::Accepted, "error_spans");
        assert!(v.training_case().is_none(), "no candidates kept");
        v.candidates = vec![
            ("service:api".into(), x(2.0)),
            ("service:db".into(), x(1.0)),
            ("node:n1".into(), x(0.0)),
        ];
        let case = v.training_case().unwrap();
        assert_eq!(case.truth, [false, true, false]);
        assert_eq!(case.inputs[1][0], 1.0);
        v.verdict = Judgement::Rejected;
        assert_eq!(v.training_case().unwrap().truth, [true, false, true]);
        // Round trip through the log's JSON line.
        let back: Verdict = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        v.candidates[0].1.pop();
        assert!(v.training_case().is_none(), "inputs of another model");
    }

    /// A change is judged as itself: rejecting one deployment (the id names its time) demotes
    /// it wherever it is ranked again, never a later deployment of the same service. One line
    /// per ranked cause: its name, and the prior the rejection gives it.
    #[test]
    fn a_verdict_on_a_change_holds_for_that_change_only() {
        let rejected = "checkout:deployment@2026-11-21T14:02:00Z";
        let mut log = Verdicts::default();
        log.record(verdict(
            &format!("change:{rejected}"),
            Judgement::Rejected,
            "change_proximity",
        ))
        .unwrap();
        let cases: [(&str, f64); 3] = [
            (rejected, 1.0 / STEP),                              // the same change again
            ("checkout:deployment@2026-11-21T15:30:00Z", 1.0),   // a later deployment
            ("checkout:feature_flag@2026-11-21T14:02:00Z", 1.0), // another kind of change then
        ];
        for (name, expected) in cases {
            let mut c = cause(name, 1.0, "change_proximity");
            c.entity.kind = crate::cause::CauseKind::Change;
            assert!((log.prior(&c) - expected).abs() < 1e-12, "{name}");
        }
    }

    #[test]
    fn priors_follow_matching_verdicts_and_survive_a_reload() {
        let path =
            std::env::temp_dir().join(format!("loupe-verdicts-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (mut log, _) = Verdicts::open(&path).unwrap();
        log.record(verdict(
            "service:poller",
            Judgement::Rejected,
            "self_time_p50",
        ))
        .unwrap();
        // Scores are log-odds: 3 against 2 is e ≈ 2.7 to 1 for poller before any verdict.
        let poller = cause("poller", 3.0, "self_time_p50");
        assert!((log.prior(&poller) - (-2f64).exp()).abs() < 1e-12);
        // Another pattern on the same service is not what was rejected.
        assert_eq!(log.prior(&cause("poller", 3.0, "error_spans")), 1.0);
        log.record(verdict(
            "service:poller",
            Judgement::Rejected,
            "self_time_p50",
        ))
        .unwrap();
        log.record(verdict("service:db", Judgement::Accepted, "error_spans"))
            .unwrap();
        let mut causes = vec![poller.clone(), cause("db", 2.0, "error_spans")];
        log.reweigh(&mut causes);
        assert_eq!(causes[0].entity.name, "db", "{causes:#?}");
        assert!((causes[0].score - 4.0).abs() < 1e-12, "{causes:#?}");
        assert!((causes[1].score - -1.0).abs() < 1e-12, "{causes:#?}");
        // Durable: a torn last line is skipped, the rest reloads.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"incident": 3, "cau"#)
            .unwrap();
        let (reloaded, skipped) = Verdicts::open(&path).unwrap();
        assert_eq!((reloaded.all().len(), skipped), (3, 1));
        assert!((reloaded.prior(&poller) - (-4f64).exp()).abs() < 1e-12);
        std::fs::remove_file(&path).unwrap();
    }
}
