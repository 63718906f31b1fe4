//! Root-cause analysis (first cut): compare a window with a baseline window on all three
//! signals, score every service, account for propagation, and rank candidates with the
//! evidence behind each; plus the accuracy measures of the RCA literature (AC@k, Avg@k).

mod error;
pub mod eval;
mod evidence;
mod rank;

pub use error::{Error, Result};
pub use evidence::{Evidence, EvidenceSignal};
pub use rank::{analyze, Analysis, AnalysisConfig, Cause, EntityRef, History};
