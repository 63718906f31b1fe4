//! Root-cause analysis: compare a window with a baseline window (and a longer history) on all
//! three signals, score every service, account for propagation and nearby changes, and rank
//! candidates with the evidence behind each; detect SLO burn and departures from baselines on
//! user-facing services and operations, and keep incidents; plus the accuracy measures of the
//! RCA literature (AC@k, Avg@k).
//!
//! The modules form a pipeline whose imports point one way, down this list (ARCHITECTURE.md,
//! "analysis"):
//!
//! 1. shared types and statistics: [`error`](Error), `stats`, `evidence`, `rules`, `ranker`,
//!    `cause`, `config`, `window`, `history`, `candidate`;
//! 2. the features ([`features`]), one module per signal family;
//! 3. `normalize`, `propagation` (explain-away), `score`;
//! 4. `analyze`, which runs the stages in order; then `onset`, `remediation`, `verdict`,
//!    `investigate`;
//! 5. detection ([`detect`]) and incidents ([`incident`]) on top; `eval` beside them.

mod analyze;
mod candidate;
mod cause;
mod config;
pub mod detect;
mod error;
pub mod eval;
mod evidence;
pub mod features;
mod history;
pub mod incident;
mod investigate;
mod normalize;
pub mod onset;
mod propagation;
pub mod ranker;
pub mod remediation;
pub mod rules;
mod score;
mod stats;
pub mod verdict;
mod window;

pub use analyze::analyze;
pub use cause::{
    change_name, change_target, path_ends, Analysis, Cause, CauseKind, EntityRef, Onset,
    Remediation, EDGE_ARROW,
};
pub use config::{AnalysisConfig, EndpointService};
pub use detect::{BaselineConfig, DetectConfig, Detector, Deviation, Slo, Symptom};
pub use error::{Error, Result};
pub use evidence::{Evidence, EvidenceSignal};
pub use history::History;
pub use incident::{Incident, Incidents, Status};
pub use investigate::investigate;
pub use verdict::{Judgement, Verdict, Verdicts};
