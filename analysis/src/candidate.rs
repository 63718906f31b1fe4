//! A candidate while its evidence is gathered: each feature's raw value and evidence, its
//! counter-evidence so far; and the features themselves ([`Feature`]), each on its own scale.
//! Features write candidates; explain-away ([`crate::propagation`]) weighs candidates' scores
//! against each other.

use std::collections::BTreeMap;

use crate::evidence::Evidence;

/// The features, each normalized on its own scale. The floor bounds the robust spread from
/// below, in the feature's unit, so that a feature every service shares nearly equally does not
/// turn noise into large scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Feature {
    SelfTime = 0,
    CallGap = 1,
    ErrorSpans = 2,
    ErrorLogs = 3,
    LogDeficit = 4,
    Cpu = 5,
    Memory = 6,
    LogPaths = 7,
    TraceSpectrum = 8,
}

/// Number of [`Feature`]s.
pub(crate) const FEATURES: usize = Feature::ALL.len();

impl Feature {
    pub(crate) const ALL: [Feature; 9] = [
        Self::SelfTime,
        Self::CallGap,
        Self::ErrorSpans,
        Self::ErrorLogs,
        Self::LogDeficit,
        Self::Cpu,
        Self::Memory,
        Self::LogPaths,
        Self::TraceSpectrum,
    ];

    /// Floor of the spread: log ratios 0.1 (≈10%), z-scores 1, utilization 5 percentage points.
    pub(crate) fn floor(self) -> f64 {
        match self {
            Self::SelfTime | Self::CallGap | Self::TraceSpectrum => 0.1,
            Self::ErrorSpans | Self::ErrorLogs | Self::LogDeficit | Self::LogPaths => 1.0,
            Self::Cpu | Self::Memory => 5.0,
        }
    }
}

/// One service's evidence while it is being gathered.
#[derive(Default)]
pub(crate) struct Candidate {
    pub(crate) raw: BTreeMap<Feature, f64>,
    pub(crate) evidence: Vec<(Feature, Evidence)>,
    /// Counter-evidence sentences ([`crate::Cause::counter_evidence`]).
    pub(crate) counter: Vec<String>,
    /// The service called right before the transition of its call-path shift, when that is
    /// its code-path evidence (see `explain_reactions`).
    pub(crate) after_callee: Option<String>,
}

impl Candidate {
    pub(crate) fn add(&mut self, feature: Feature, e: Option<Evidence>) {
        if let Some(e) = e {
            self.raw.insert(feature, e.change);
            self.evidence.push((feature, e));
        }
    }
}
