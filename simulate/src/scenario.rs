//! Scenarios: a fault of a given kind planned on a topology, with its red herrings, and the
//! ground truth it leaves. Targets are drawn among the parts of the system with enough traffic
//! to show anything, magnitudes from each kind's range; all from the scenario's seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::fault::{FaultKind, HerringKind, Impact, Planned, Target};
use crate::metrics::MetricExport;
use crate::sim::Simulation;
use crate::topology::{FlagEffect, ServiceKind, Topology};

/// Fewest expected requests per second for a part of the system to be a fault's target in a
/// case set: a fault on something nobody calls leaves no trace to find.
pub const MIN_TARGET_RATE: f64 = 0.3;

/// A red herring as the ground truth lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HerringTruth {
    /// What it is.
    pub kind: HerringKind,
    /// The service it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// The ground truth of a simulated case, in the fields of the Nezha `ground_truth.json`
/// (`case_id`, `system`, `fault_type`, `root_cause_service`, `root_cause_pod`,
/// `fault_start_unix_ns`) plus what a simulation knows besides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Case id.
    pub case_id: String,
    /// The topology's name.
    pub system: String,
    /// The fault kind.
    pub fault_type: FaultKind,
    /// The root cause's name: a service, the database or node for those fault kinds, the
    /// caller for a network partition (see `root_cause_kind`).
    pub root_cause_service: String,
    /// `service`, `database`, `node` or `edge`.
    pub root_cause_kind: String,
    /// The affected pod, for pod faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause_pod: Option<String>,
    /// Caller and callee, for a network partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause_edge: Option<[String; 2]>,
    /// The change that started it: `deployment`, `config` or `feature_flag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// The flag flipped, for a flag fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// When the fault starts, unix nanoseconds.
    pub fault_start_unix_ns: u64,
    /// When it ends (the case's end), unix nanoseconds.
    pub fault_end_unix_ns: u64,
    /// Start of the fault-free stretch before it, unix nanoseconds.
    pub baseline_start_unix_ns: u64,
    /// What happened beside it and caused nothing.
    pub red_herrings: Vec<HerringTruth>,
    /// The case's traffic.
    #[serde(default)]
    pub traffic: Traffic,
    /// The seed of the case's simulation.
    pub seed: u64,
    /// A sentence for people.
    pub description: String,
}

/// Expected requests per second reaching each operation, from the entries' weights and the
/// calls' probabilities and fan-out: `rates[service][operation]`.
pub fn expected_rates(t: &Topology) -> Vec<Vec<f64>> {
    fn visit(t: &Topology, s: usize, o: usize, rate: f64, out: &mut Vec<Vec<f64>>, depth: usize) {
        if depth > 32 {
            return;
        }
        out[s][o] += rate;
        for c in &t.services[s].operations[o].calls {
            let r = rate * c.p * f64::from(c.n);
            if let Some((cs, co)) = t.resolve(&c.to) {
                visit(t, cs, co, r, out, depth + 1);
            } else if let Some(topic) = t.topic(&c.to) {
                for consumer in &topic.consumers {
                    if let Some((cs, co)) = t.resolve(consumer) {
                        visit(t, cs, co, r, out, depth + 1);
                    }
                }
            }
        }
    }
    let mut out: Vec<Vec<f64>> = t
        .services
        .iter()
        .map(|s| vec![0.0; s.operations.len()])
        .collect();
    let total: f64 = t.entries.iter().map(|e| e.weight).sum();
    for e in &t.entries {
        if let Some((s, o)) = t.resolve(&e.operation) {
            visit(
                t,
                s,
                o,
                t.requests_per_second * e.weight / total,
                &mut out,
                0,
            );
        }
    }
    out
}

/// A fault of `kind` on `topology` from `start` to `end`, and herrings of `herrings` around
/// it (none before `case_start`), with their ground truth; [`plan_case`] fills in the case id,
/// the pod and the seed. Targets receive at least `min_rate` requests per second (falling back
/// to [`MIN_TARGET_RATE`] when nothing does, then to every instrumented service).
pub fn plan_fault(
    topology: &Topology,
    kind: FaultKind,
    herrings: &[HerringKind],
    (case_start, start, end): (u64, u64, u64),
    min_rate: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<Planned>, GroundTruth) {
    let rates = expected_rates(topology);
    let busy_at = |min: f64| -> Vec<usize> {
        (0..topology.services.len())
            .filter(|&s| topology.services[s].kind == ServiceKind::Service)
            .filter(|&s| rates[s].iter().sum::<f64>() >= min)
            .collect()
    };
    // A validated topology has an entry, so at least one instrumented service.
    let busy = [min_rate, MIN_TARGET_RATE.min(min_rate), 0.0]
        .into_iter()
        .map(busy_at)
        .find(|b| !b.is_empty())
        .unwrap_or_default();
    let pick = |rng: &mut ChaCha8Rng, v: &[usize]| v[rng.random_range(0..v.len())];
    let name = |s: usize| topology.services[s].name.clone();
    let mut impact = Impact::NONE;
    let mut fault = Planned {
        fault: Some(kind),
        ..Planned::new(start, end)
    };
    let mut truth = GroundTruth {
        case_id: String::new(),
        system: topology.name.clone(),
        fault_type: kind,
        root_cause_service: String::new(),
        root_cause_kind: "service".into(),
        root_cause_pod: None,
        root_cause_edge: None,
        change: None,
        flag: None,
        fault_start_unix_ns: start,
        fault_end_unix_ns: end,
        baseline_start_unix_ns: case_start,
        red_herrings: Vec::new(),
        traffic: Traffic::Normal,
        seed: 0,
        description: String::new(),
    };
    let slow = |rng: &mut ChaCha8Rng, i: &mut Impact| {
        i.latency_factor = rng.random_range(1.5..3.0);
        i.latency_add_ms = rng.random_range(150.0..800.0);
    };
    let fail = |rng: &mut ChaCha8Rng, i: &mut Impact| i.error_rate = rng.random_range(0.15..0.5);
    let leak = |rng: &mut ChaCha8Rng, i: &mut Impact, base: f64| {
        i.leak_per_minute = (1.0 - base) / rng.random_range(1.0..2.0);
        i.latency_factor = 1.3;
    };
    let hog = |rng: &mut ChaCha8Rng, i: &mut Impact| {
        i.cpu = rng.random_range(0.5..0.8);
        i.latency_factor = rng.random_range(3.0..6.0);
    };
    let mut root_service: Option<usize> = None;
    match kind {
        FaultKind::Latency
        | FaultKind::Errors
        | FaultKind::BadDeployment
        | FaultKind::ConfigChange => {
            let s = pick(rng, &busy);
            root_service = Some(s);
            fault.target = Target::Service { service: name(s) };
            let errors = match kind {
                FaultKind::Latency => false,
                FaultKind::Errors => true,
                _ => rng.random_bool(0.5),
            };
            if errors {
                fail(rng, &mut impact);
            } else {
                slow(rng, &mut impact);
            }
            fault.rollout = kind == FaultKind::BadDeployment;
            fault.config_change = kind == FaultKind::ConfigChange;
            truth.change = match kind {
                FaultKind::BadDeployment => Some("deployment".into()),
                FaultKind::ConfigChange => Some("config".into()),
                _ => None,
            };
            truth.description = format!(
                "{}{} in {}",
                match kind {
                    FaultKind::BadDeployment => "a new version that brings ",
                    FaultKind::ConfigChange => "a configuration change that brings ",
                    _ => "",
                },
                if errors { "errors" } else { "latency" },
                name(s)
            );
        }
        FaultKind::Cpu | FaultKind::MemoryLeak => {
            let s = pick(rng, &busy);
            root_service = Some(s);
            let replica = rng.random_range(0..topology.services[s].replicas as usize);
            fault.target = Target::Pod {
                service: name(s),
                replica,
            };
            if kind == FaultKind::Cpu {
                hog(rng, &mut impact);
            } else {
                leak(rng, &mut impact, topology.services[s].memory_base);
            }
            truth.description = format!(
                "{} in one pod of {}",
                if kind == FaultKind::Cpu {
                    "CPU saturation"
                } else {
                    "a memory leak ending in OOMKilled restarts"
                },
                name(s)
            );
        }
        FaultKind::FeatureFlag => {
            let flags: Vec<_> = topology
                .flags
                .iter()
                .filter(|f| busy.iter().any(|&s| topology.services[s].name == f.service))
                .collect();
            let flag = match flags.len() {
                0 => None,
                n => Some(flags[rng.random_range(0..n)]),
            };
            let (service, key, effect) = match flag {
                Some(f) => (f.service.clone(), f.key.clone(), f.effect),
                // A topology without a flag on a busy service: a new one on a busy service.
                None => {
                    let s = pick(rng, &busy);
                    (
                        name(s),
                        format!("{}Failure", name(s).replace('-', "")),
                        FlagEffect::Errors,
                    )
                }
            };
            let s = topology
                .services
                .iter()
                .position(|x| x.name == service)
                .unwrap_or(0);
            root_service = Some(s);
            match effect {
                FlagEffect::Errors => fail(rng, &mut impact),
                FlagEffect::Latency => slow(rng, &mut impact),
                FlagEffect::Cpu => hog(rng, &mut impact),
                FlagEffect::MemoryLeak => leak(rng, &mut impact, topology.services[s].memory_base),
            }
            fault.target = Target::Service {
                service: service.clone(),
            };
            fault.flag = Some(key.clone());
            truth.change = Some("feature_flag".into());
            truth.description = format!("feature flag {key} turned on in {service}");
            truth.flag = Some(key);
        }
        FaultKind::DbSlowdown | FaultKind::DbErrors => {
            let stores: Vec<usize> = (0..topology.services.len())
                .filter(|&s| {
                    matches!(
                        topology.services[s].kind,
                        ServiceKind::Database | ServiceKind::Cache
                    ) && rates[s].iter().sum::<f64>() >= MIN_TARGET_RATE
                })
                .collect();
            let stores = if stores.is_empty() {
                busy.clone()
            } else {
                stores
            };
            let s = pick(rng, &stores);
            fault.target = Target::Service { service: name(s) };
            if kind == FaultKind::DbSlowdown {
                impact.latency_factor = rng.random_range(8.0..20.0);
                impact.latency_add_ms = rng.random_range(20.0..100.0);
            } else {
                impact.error_rate = rng.random_range(0.15..0.5);
            }
            truth.root_cause_service = name(s);
            truth.root_cause_kind = if topology.services[s].kind == ServiceKind::Service {
                "service".into()
            } else {
                "database".into()
            };
            truth.description = if kind == FaultKind::DbSlowdown {
                format!("{} answers slowly", name(s))
            } else {
                format!(
                    "{} refuses {:.0}% of its calls",
                    name(s),
                    impact.error_rate * 100.0
                )
            };
        }
        FaultKind::NoisyNeighbour => {
            let n = rng.random_range(0..topology.nodes.len());
            let node = topology.nodes[n].clone();
            fault.target = Target::Node { node: node.clone() };
            impact.latency_factor = rng.random_range(2.0..4.0);
            impact.cpu = 0.3;
            truth.root_cause_service = node.clone();
            truth.root_cause_kind = "node".into();
            truth.description = format!("a noisy neighbour eats the CPU of node {node}");
        }
        FaultKind::NetworkPartition => {
            let mut edges: Vec<(usize, usize)> = Vec::new();
            for &s in &busy {
                for op in &topology.services[s].operations {
                    for c in op.calls.iter().filter(|c| !c.optional) {
                        if let Some((cs, _)) = topology.resolve(&c.to) {
                            if busy.contains(&cs) && !edges.contains(&(s, cs)) {
                                edges.push((s, cs));
                            }
                        }
                    }
                }
            }
            let (a, b) = match edges.len() {
                0 => (busy[0], busy[busy.len() - 1]),
                n => edges[rng.random_range(0..n)],
            };
            fault.target = Target::Edge {
                from: name(a),
                to: name(b),
            };
            // The partition is applied to the caller's pods (as Chaos Mesh's NetworkChaos
            // partition is, from its source selector), so the caller is the root cause; the
            // edge names both ends.
            truth.root_cause_service = name(a);
            truth.root_cause_kind = "edge".into();
            truth.root_cause_edge = Some([name(a), name(b)]);
            truth.description = format!("calls from {} to {} time out", name(a), name(b));
        }
    }
    if let Some(s) = root_service {
        truth.root_cause_service = name(s);
    }
    fault.impact = impact;
    let mut plans = vec![fault];
    // Herrings stay off the root cause's service.
    let others: Vec<usize> = busy
        .iter()
        .copied()
        .filter(|&s| Some(s) != root_service && name(s) != truth.root_cause_service)
        .collect();
    for &h in herrings {
        if let Some((p, t)) = plan_herring(topology, h, &others, (case_start, start, end), rng) {
            truth.red_herrings.push(t);
            plans.push(p);
        }
    }
    (plans, truth)
}

/// A herring of kind `h` around a fault from `start` to `end`, on one of `others` (services
/// other than the root cause's) when it concerns a service; `None` when there is no such
/// service to pick.
fn plan_herring(
    topology: &Topology,
    h: HerringKind,
    others: &[usize],
    (case_start, start, end): (u64, u64, u64),
    rng: &mut ChaCha8Rng,
) -> Option<(Planned, HerringTruth)> {
    let mut p = Planned {
        herring: Some(h),
        ..Planned::new(start, end)
    };
    let mut service = None;
    if h == HerringKind::TrafficSpike {
        p.start_unix_nano = start.saturating_sub(rng.random_range(0..60) * 1_000_000_000);
        p.end_unix_nano = (p.start_unix_nano + 120_000_000_000).min(end);
        p.traffic_factor = rng.random_range(2.0..3.0);
        p.impact.latency_factor = 1.15;
    } else {
        if others.is_empty() {
            return None;
        }
        let name = topology.services[others[rng.random_range(0..others.len())]]
            .name
            .clone();
        p.target = Target::Service {
            service: name.clone(),
        };
        if h == HerringKind::UnrelatedDeployment {
            let offset = rng.random_range(0..120) * 1_000_000_000;
            p.start_unix_nano = (start + offset)
                .saturating_sub(60_000_000_000)
                .max(case_start);
            p.rollout = true;
        } else {
            p.start_unix_nano = case_start;
            p.impact.error_rate = rng.random_range(0.02..0.06);
            p.impact.latency_factor = rng.random_range(1.3..2.0);
        }
        service = Some(name);
    }
    Some((p, HerringTruth { kind: h, service }))
}

/// What a case needs: the system, the fault, the herrings and the times.
#[derive(Debug, Clone)]
pub struct CaseSpec {
    /// Case id.
    pub case_id: String,
    /// The system.
    pub topology: std::sync::Arc<Topology>,
    /// The fault.
    pub fault: FaultKind,
    /// Herrings beside it.
    pub herrings: Vec<HerringKind>,
    /// Seed of everything random in the case.
    pub seed: u64,
    /// Start of the case (and of its baseline), unix nanoseconds.
    pub start_unix_nano: u64,
    /// Fault-free stretch before the fault, nanoseconds.
    pub baseline_nanos: u64,
    /// Length of the fault, nanoseconds (the case ends with it).
    pub fault_nanos: u64,
    /// How its metrics are exported.
    pub metrics: MetricExport,
    /// Its traffic, relative to the topology's.
    pub traffic: Traffic,
}

/// A case's traffic, relative to its topology's `requests_per_second`: faults must be found
/// in a quiet system as in a busy one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    /// A quarter of the topology's rate.
    Low,
    /// The topology's rate.
    #[default]
    Normal,
    /// Four times the topology's rate.
    High,
}

impl Traffic {
    /// Every level.
    pub const ALL: [Self; 3] = [Self::Low, Self::Normal, Self::High];

    /// The factor on the topology's rate.
    pub fn factor(self) -> f64 {
        match self {
            Self::Low => 0.25,
            Self::Normal => 1.0,
            Self::High => 4.0,
        }
    }

    /// The snake-case name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

impl std::str::FromStr for Traffic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown traffic {s:?}; known: low, normal, high"))
    }
}

/// The simulation of a case, ready to run from its start, and its ground truth.
pub fn plan_case(spec: &CaseSpec) -> (Simulation, GroundTruth) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let start = spec.start_unix_nano + spec.baseline_nanos;
    let end = start + spec.fault_nanos;
    let (plans, mut truth) = plan_fault(
        &spec.topology,
        spec.fault,
        &spec.herrings,
        (spec.start_unix_nano, start, end),
        MIN_TARGET_RATE,
        &mut rng,
    );
    // Targets are chosen at the topology's own rate, so that a quiet case keeps the same
    // targets as a busy one; the simulation runs at the case's.
    let topology = if spec.traffic == Traffic::Normal {
        spec.topology.clone()
    } else {
        let mut t = (*spec.topology).clone();
        t.requests_per_second *= spec.traffic.factor();
        std::sync::Arc::new(t)
    };
    let sim = Simulation::new(topology, spec.start_unix_nano, plans, rng.random())
        .with_metric_export(spec.metrics);
    truth.traffic = spec.traffic;
    truth.case_id = spec.case_id.clone();
    truth.seed = spec.seed;
    if let Some(Target::Pod { service, replica }) = sim.plans().first().map(|p| &p.target) {
        truth.root_cause_pod = sim.pod_name(service, *replica);
    }
    (sim, truth)
}
