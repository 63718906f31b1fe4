//! The analysis's settings: bounds on the samples a comparison needs, the propagation rule's
//! share and factor, the change window, and the model that ranks.

use std::sync::Arc;

use serde::Serialize;

use crate::ranker::Ranker;

/// Bounds and constants of the ranking, and the model that ranks.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisConfig {
    /// Fewest self-time samples on each side for a self-time shift to count.
    pub min_self_time_samples: u64,
    /// Fewest gap samples on each side for an edge's gap shift to count.
    pub min_gap_samples: u64,
    /// Fewest requests on each side for a log deficit to count.
    pub min_requests: u64,
    /// Below this many baseline samples a service or edge is compared with the reference
    /// window instead, when one is given.
    pub min_baseline_samples: u64,
    /// A service's error evidence is explained away when a callee's is at least this share of
    /// it.
    pub explained_share: f64,
    /// Factor applied to explained-away error evidence.
    pub explained_factor: f64,
    /// Most causes returned.
    pub max_causes: usize,
    /// Periods of the baseline's length, back to back before it, that a server analysing its
    /// own graph takes as the [`crate::History`] (12 five-minute periods: the hour before).
    pub history_periods: usize,
    /// How long before the window a change still counts, nanoseconds (default 30 min).
    pub change_lookback_nanos: u64,
    /// Half-life of a change's weight with its distance before the window, nanoseconds (default
    /// 10 min): a deployment 10 minutes before counts half as much as one at the start.
    pub change_half_life_nanos: u64,
    /// Below this probability for the top cause, the analysis says "no confident cause" and
    /// lists its best guesses (default 0.5).
    pub min_confidence: f64,
    /// Endpoints known only from their callers (a load balancer, an API gateway) and the
    /// services behind them, as an operator states them (`[[endpoints]]` in the configuration):
    /// they come before what the analysis infers from names and traffic.
    pub endpoints: Vec<EndpointService>,
    /// The rules and the model (default: the shipped ones).
    #[serde(skip)]
    pub ranker: Arc<Ranker>,
}

/// An endpoint's address (`server.address` as its callers send it) and the instrumented
/// service behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointService {
    /// The endpoint's host name, as callers send it in `server.address`.
    pub address: String,
    /// The `service.name` of the service behind it.
    pub service: String,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            min_self_time_samples: 50,
            min_gap_samples: 5,
            min_requests: 5,
            min_baseline_samples: 20,
            explained_share: 0.5,
            explained_factor: 0.3,
            max_causes: 10,
            history_periods: 12,
            change_lookback_nanos: 30 * 60 * 1_000_000_000,
            change_half_life_nanos: 10 * 60 * 1_000_000_000,
            min_confidence: 0.5,
            endpoints: Vec::new(),
            ranker: Ranker::shipped(),
        }
    }
}
