//! The settings of detection: the objectives (the SLO file) and baseline detection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const MINUTE: u64 = 60 * 1_000_000_000;

/// A service-level objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Share of requests that must succeed (not end in an error span), e.g. 0.999.
    pub availability: f64,
    /// A request slower than this many seconds is bad for the latency objective; no latency
    /// objective when absent.
    #[serde(default)]
    pub latency_threshold_seconds: Option<f64>,
    /// Share of requests that must be faster than the threshold, e.g. 0.99.
    #[serde(default = "default_latency_target")]
    pub latency_target: f64,
}

fn default_latency_target() -> f64 {
    0.99
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            availability: 0.999,
            latency_threshold_seconds: None,
            latency_target: default_latency_target(),
        }
    }
}

/// Settings of detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectConfig {
    /// The objective of services without their own.
    #[serde(default)]
    pub default_slo: Slo,
    /// Objectives by service name.
    #[serde(default)]
    pub slos: BTreeMap<String, Slo>,
    /// Baseline detection of latency and traffic (see [`super::baseline`]).
    #[serde(default)]
    pub baseline: BaselineConfig,
    /// Fewest requests in a short window for its burn rate (or a baseline window's latency)
    /// to count.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Fewest bad requests in a short window for an alert: at low traffic one failure can
    /// exceed a 99.9% objective on its own (the workbook's low-traffic caveat).
    #[serde(default = "default_min_bad_requests")]
    pub min_bad_requests: u64,
    /// An incident resolves after this long without a firing alert, nanoseconds (10 min).
    #[serde(default = "default_resolve_after")]
    pub resolve_after_nanos: u64,
}

fn default_min_requests() -> u64 {
    20
}

fn default_min_bad_requests() -> u64 {
    3
}

fn default_resolve_after() -> u64 {
    10 * MINUTE
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            default_slo: Slo::default(),
            slos: BTreeMap::new(),
            baseline: BaselineConfig::default(),
            min_requests: default_min_requests(),
            min_bad_requests: default_min_bad_requests(),
            resolve_after_nanos: default_resolve_after(),
        }
    }
}

/// Settings of baseline detection (the `baseline` section of the SLO file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineConfig {
    /// Whether it runs.
    pub enabled: bool,
    /// The window each figure is read over, nanoseconds (5 min).
    pub window_nanos: u64,
    /// Windows before the current one that make the recent baseline (12: the hour before).
    pub recent_windows: usize,
    /// Fewest recent windows with `min_requests` requests for a latency baseline (6).
    pub min_windows: usize,
    /// Robust standard deviations past which a window deviates (4).
    pub z: f64,
    /// Least ratio of the 90th-percentile duration to its expected level that alerts (1.5).
    pub latency_ratio: f64,
    /// Least share of the expected requests that must be missing for a traffic alert (0.5).
    pub traffic_drop: f64,
    /// Seasonal lags tried in order, nanoseconds (one week, one day); the first the graph
    /// holds data for is used.
    pub seasonal_lags_nanos: Vec<u64>,
    /// Most root operations watched, the busiest over the last hour (50).
    pub max_operations: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_nanos: 5 * MINUTE,
            recent_windows: 12,
            min_windows: 6,
            z: 4.0,
            latency_ratio: 1.5,
            traffic_drop: 0.5,
            seasonal_lags_nanos: vec![7 * 24 * 60 * MINUTE, 24 * 60 * MINUTE],
            max_operations: 50,
        }
    }
}
