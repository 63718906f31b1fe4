//! The fault library: what can go wrong in a simulated system, what each fault does to the
//! telemetry, and the ground truth it leaves; and the red herrings that happen beside a fault
//! without causing anything.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of fault, each with a ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A service's own work slows down (self time ×1.5–3, plus 150–800 ms).
    Latency,
    /// A service fails 15–50% of its calls with an exception.
    Errors,
    /// One pod of a service saturates its CPU and slows down 3–6×.
    Cpu,
    /// One pod of a service leaks memory until it is OOMKilled and restarts, again and again.
    MemoryLeak,
    /// A new version of a service rolls out (new pods, a deployment webhook), then fails or
    /// slows down.
    BadDeployment,
    /// A configuration change to a service is announced, then it fails or slows down.
    ConfigChange,
    /// A feature flag of a service flips on (OpenFeature evaluation events) and does what the
    /// flag does: errors, latency, CPU or a memory leak.
    FeatureFlag,
    /// A database or cache answers 8–20× slower.
    DbSlowdown,
    /// Something else on a node eats its CPU: every pod on it slows down 2–4×.
    NoisyNeighbour,
    /// Calls from one service to another time out after a second.
    NetworkPartition,
    /// A database or managed table refuses 15–50% of its calls: throttled, out of
    /// connections.
    DbErrors,
}

impl FaultKind {
    /// Every fault kind.
    pub const ALL: [Self; 11] = [
        Self::Latency,
        Self::Errors,
        Self::Cpu,
        Self::MemoryLeak,
        Self::BadDeployment,
        Self::ConfigChange,
        Self::FeatureFlag,
        Self::DbSlowdown,
        Self::NoisyNeighbour,
        Self::NetworkPartition,
        Self::DbErrors,
    ];

    /// The kinds a case set uses unless told otherwise: every kind but the last, `db_errors`,
    /// which came later, so that the case sets measured before it (seeds 1, 7, 42) are made again
    /// case for case.
    pub const DEFAULT: [Self; 10] = {
        let mut kinds = [Self::Latency; 10];
        let mut i = 0;
        while i < kinds.len() {
            kinds[i] = Self::ALL[i];
            i += 1;
        }
        kinds
    };

    /// The snake-case name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Errors => "errors",
            Self::Cpu => "cpu",
            Self::MemoryLeak => "memory_leak",
            Self::BadDeployment => "bad_deployment",
            Self::ConfigChange => "config_change",
            Self::FeatureFlag => "feature_flag",
            Self::DbSlowdown => "db_slowdown",
            Self::NoisyNeighbour => "noisy_neighbour",
            Self::NetworkPartition => "network_partition",
            Self::DbErrors => "db_errors",
        }
    }

    /// Whether a change someone made starts it (the types the change evidence should nail).
    pub fn is_change(self) -> bool {
        matches!(
            self,
            Self::BadDeployment | Self::ConfigChange | Self::FeatureFlag
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown fault type {s:?}; known: {}", names.join(", "))
            })
    }
}

/// Something that happens beside a fault and causes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HerringKind {
    /// Another, healthy service deploys a new version within a minute of the fault.
    UnrelatedDeployment,
    /// Another service fails 2–6% of its calls and varies in latency the whole time.
    NoisyService,
    /// Traffic rises 2–3× for two minutes around the fault.
    TrafficSpike,
}

impl HerringKind {
    /// Every red herring.
    pub const ALL: [Self; 3] = [
        Self::UnrelatedDeployment,
        Self::NoisyService,
        Self::TrafficSpike,
    ];
}

/// What a fault does, in numbers drawn when it is planned.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Impact {
    /// Multiplies self time.
    pub latency_factor: f64,
    /// Adds to self time, milliseconds.
    pub latency_add_ms: f64,
    /// Adds to the share of failing calls.
    pub error_rate: f64,
    /// Adds to CPU utilization.
    pub cpu: f64,
    /// Memory utilization gained per minute.
    pub leak_per_minute: f64,
}

impl Impact {
    /// No effect.
    pub const NONE: Self = Self {
        latency_factor: 1.0,
        latency_add_ms: 0.0,
        error_rate: 0.0,
        cpu: 0.0,
        leak_per_minute: 0.0,
    };

    /// Both effects at once.
    pub fn and(self, other: Self) -> Self {
        Self {
            latency_factor: self.latency_factor * other.latency_factor,
            latency_add_ms: self.latency_add_ms + other.latency_add_ms,
            error_rate: 1.0 - (1.0 - self.error_rate) * (1.0 - other.error_rate),
            cpu: self.cpu + other.cpu,
            leak_per_minute: self.leak_per_minute + other.leak_per_minute,
        }
    }
}

/// Where a fault or herring acts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Every pod of a service (or a database, cache).
    Service {
        /// Its name.
        service: String,
    },
    /// One pod of a service, by its replica number.
    Pod {
        /// The service.
        service: String,
        /// Replica index.
        replica: usize,
    },
    /// Every pod on a node.
    Node {
        /// `k8s.node.name`.
        node: String,
    },
    /// Calls from one service to another.
    Edge {
        /// Caller.
        from: String,
        /// Callee.
        to: String,
    },
    /// The whole system.
    System,
}

/// A planned fault or herring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// The fault kind, or `None` for a herring.
    pub fault: Option<FaultKind>,
    /// The herring kind, for a herring.
    pub herring: Option<HerringKind>,
    /// Where it acts.
    pub target: Target,
    /// Start, unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, unix nanoseconds.
    pub end_unix_nano: u64,
    /// What it does while active.
    pub impact: Impact,
    /// The feature flag flipped, for a flag fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// Whether it comes with a rollout to a new version (a deployment).
    #[serde(default)]
    pub rollout: bool,
    /// Whether it comes with an announced configuration change.
    #[serde(default)]
    pub config_change: bool,
    /// Multiplies the traffic while active (a spike).
    #[serde(default = "one")]
    pub traffic_factor: f64,
}

fn one() -> f64 {
    1.0
}

impl Planned {
    /// A plan that does nothing from `start` to `end` (unix nanoseconds) on the whole system,
    /// to be given its kind, target and impact.
    pub fn new(start_unix_nano: u64, end_unix_nano: u64) -> Self {
        Self {
            fault: None,
            herring: None,
            target: Target::System,
            start_unix_nano,
            end_unix_nano,
            impact: Impact::NONE,
            flag: None,
            rollout: false,
            config_change: false,
            traffic_factor: 1.0,
        }
    }

    /// Whether it acts at `t`.
    pub fn active(&self, t: u64) -> bool {
        (self.start_unix_nano..self.end_unix_nano).contains(&t)
    }

    /// Its impact on a call served by `service`'s pod `replica` on `node` at `t`, `new_version`
    /// telling whether that pod runs a rollout's new version (a rollout's fault acts only on
    /// those).
    pub fn impact_on(
        &self,
        service: &str,
        replica: usize,
        node: &str,
        new_version: bool,
        t: u64,
    ) -> Impact {
        if !self.active(t) || (self.rollout && !new_version) {
            return Impact::NONE;
        }
        let hit = match &self.target {
            Target::Service { service: s } => s == service,
            Target::Pod {
                service: s,
                replica: r,
            } => s == service && *r == replica,
            Target::Node { node: n } => n == node,
            Target::Edge { .. } => false,
            Target::System => true,
        };
        if hit {
            self.impact
        } else {
            Impact::NONE
        }
    }
}
