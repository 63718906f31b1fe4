//! An alert that fired ([`Symptom`]), what raised it, and how a baseline alert's figure stood
//! against its baseline.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// A service-level objective's multiwindow burn rate ([`super::slo::detect`]).
    #[default]
    BurnRate,
    /// A figure against its own baseline ([`super::baseline::detect`]).
    Baseline,
}

/// An alert that fired: what degraded, and how fast it burns its budget (an objective's alert)
/// or how far it stands from its baseline (a baseline alert).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symptom {
    /// The user-facing service.
    pub service: String,
    /// The root operation (span name) it concerns, when it is one operation's alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// `error_ratio` or `latency` for an objective; `latency` or `traffic` for a baseline.
    pub objective: Cow<'static, str>,
    /// What raised it (`burn_rate` when absent, as in files written before there was another).
    #[serde(default)]
    pub detector: Detector,
    /// Bad share of requests in the short window (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_ratio: Option<f64>,
    /// Burn rate over the long window (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_burn_rate: Option<f64>,
    /// Burn rate over the short window (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_burn_rate: Option<f64>,
    /// The alert's burn-rate threshold (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Long and short window, nanoseconds (for a baseline alert: the recent baseline's span
    /// and the window read).
    pub windows: [u64; 2],
    /// When it was seen firing (valid time), unix nanoseconds.
    pub at_unix_nano: u64,
    /// How the figure stood against its baseline (baseline alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Deviation>,
}

impl Symptom {
    /// Whether `other` is the same alert (entity, objective and detector) at another time.
    pub(crate) fn same_alert(&self, other: &Self) -> bool {
        (
            &self.service,
            &self.operation,
            &self.objective,
            self.detector,
        ) == (
            &other.service,
            &other.operation,
            &other.objective,
            other.detector,
        )
    }
}

/// How a window's figure stood against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    /// The figure: `duration_p90_seconds` or `requests` (in the window).
    pub statistic: Cow<'static, str>,
    /// Its value in the current window.
    pub current: f64,
    /// Its expected value: the recent windows' median, seasonally scaled.
    pub expected: f64,
    /// The robust standard deviation it was measured in.
    pub spread: f64,
    /// `(current − expected) / spread`.
    pub z: f64,
    /// The seasonal lag whose movement scaled the baseline, nanoseconds; absent when the graph
    /// held no data that far back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasonal_lag_nanos: Option<u64>,
    /// The seasonal scale applied (1 without a lag).
    pub seasonal_factor: f64,
}
