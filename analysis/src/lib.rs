//! Root-cause analysis: compare a window with a baseline window (and a longer history) on all
//! three signals, score every service, account for propagation and nearby changes, and rank
//! candidates with the evidence behind each; detect SLO burn and departures from baselines on
//! user-facing services and operations, and keep incidents; plus the accuracy measures of the RCA literature (AC@k, Avg@k).

pub mod anomaly;
pub mod call_paths;
mod error;
pub mod eval;
mod evidence;
pub mod incident;
mod investigate;
pub mod log_paths;
pub mod onset;
mod rank;
pub mod ranker;
pub mod remediation;
pub mod rules;
pub mod verdict;

pub use anomaly::{BaselineConfig, Deviation};
pub use error::{Error, Result};
pub use evidence::{Evidence, EvidenceSignal};
pub use incident::{DetectConfig, Detector, Incident, Incidents, Slo, Status, Symptom};
pub use investigate::investigate;
pub use rank::{
    analyze, path_ends, Analysis, AnalysisConfig, Cause, CauseKind, EntityRef, History,
};
pub use remediation::Remediation;
pub use verdict::{Judgement, Verdict, Verdicts};
