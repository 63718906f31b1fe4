//! The simulation: a system's pods on their nodes, the faults and herrings planned for it, and
//! the clock that advances it. [`Simulation::advance`] runs it up to a time and returns the
//! OTLP requests (traces, logs, metrics) and the change notices (webhooks a CI/CD system
//! sends) of that stretch. Everything random comes from one seeded ChaCha8 stream, consumed in
//! a fixed order, so a seed gives the same output byte for byte.

use std::collections::BTreeMap;
use std::sync::Arc;

use loupe_ingest::ExportRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_semantic_conventions::attribute as sc;
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::fault::{Impact, Planned, Target};
use crate::metrics::{Meters, MetricExport};
use crate::otlp::{self, kv};
use crate::topology::{ServiceKind, Topology};

pub(crate) const SECOND: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * SECOND;
/// How long an OOMKilled container stays down before it is back.
const RESTART_DELAY: u64 = 20 * SECOND;
/// How long the old pods of a rollout keep serving beside the new ones.
const ROLLOUT_OVERLAP: u64 = 20 * SECOND;

/// A change announced the way a CI/CD system or a person announces it: a request to
/// `POST /api/v1/changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// When it is sent, unix nanoseconds.
    pub at_unix_nano: u64,
    /// HTTP headers beyond `content-type: application/json` (`x-github-event` for GitHub).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// What one stretch of simulated time produced.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// OTLP export requests: traces, then logs, then metrics.
    pub requests: Vec<ExportRequest>,
    /// Changes to announce.
    pub notices: Vec<Notice>,
}

/// One pod.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub service: usize,
    pub replica: usize,
    pub name: String,
    pub uid: String,
    pub node: usize,
    pub version: String,
    /// Created by a rollout still in force.
    pub new_version: bool,
    pub started: u64,
    pub ended: Option<u64>,
    pub restarts: u32,
    pub memory: f64,
    pub down_until: u64,
    pub resource: Arc<Vec<KeyValue>>,
}

/// A running simulation.
pub struct Simulation {
    pub(crate) topology: Arc<Topology>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now: u64,
    pub(crate) pods: Vec<Pod>,
    pub(crate) plans: Vec<Planned>,
    /// Per plan: (start actions done, end actions done).
    done: Vec<(bool, bool)>,
    /// Feature flag variants by key.
    pub(crate) flags: BTreeMap<String, String>,
    /// Spans and log records of the current stretch, by pod.
    pub(crate) spans: BTreeMap<usize, Vec<Span>>,
    pub(crate) logs: BTreeMap<usize, Vec<LogRecord>>,
    /// Kubernetes events of the current stretch, as the `k8s_events` receiver sends them.
    events: Vec<(Vec<KeyValue>, LogRecord)>,
    notices: Vec<Notice>,
    pub(crate) meters: Meters,
    next_metrics: u64,
    entries: (WeightedIndex<f64>, Vec<(usize, usize)>),
    /// Per-minute traffic noise.
    noise: (u64, f64),
    serial: u64,
}

/// The k8s-safe alphabet of generated name suffixes.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Simulation {
    /// A simulation of `topology` from `start_unix_nano`, with `plans` (faults and herrings),
    /// random for `seed`.
    pub fn new(
        topology: Arc<Topology>,
        start_unix_nano: u64,
        plans: Vec<Planned>,
        seed: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let entry_ops: Vec<(usize, usize)> = topology
            .entries
            .iter()
            .filter_map(|e| topology.resolve(&e.operation))
            .collect();
        // Validated topologies have positive weights; a degenerate one falls back to equal.
        let weights: Vec<f64> = topology.entries.iter().map(|e| e.weight.max(0.0)).collect();
        let index = WeightedIndex::new(&weights)
            .or_else(|_| WeightedIndex::new(vec![1.0; weights.len()]))
            .expect("a validated topology has at least one entry");
        let mut pods = Vec::new();
        let mut node = rng.random_range(0..topology.nodes.len());
        for (service, spec) in topology.services.iter().enumerate() {
            if spec.kind != ServiceKind::Service {
                continue;
            }
            let rs = name_suffix(&mut rng, 10);
            for replica in 0..spec.replicas as usize {
                let slot = Slot {
                    service,
                    replica,
                    node,
                };
                pods.push(new_pod(
                    &topology,
                    &mut rng,
                    slot,
                    (&spec.version, &rs),
                    start_unix_nano,
                ));
                node = (node + 1) % topology.nodes.len();
            }
        }
        Self {
            topology: topology.clone(),
            rng,
            now: start_unix_nano,
            pods,
            done: vec![(false, false); plans.len()],
            plans,
            flags: topology
                .flags
                .iter()
                .map(|f| (f.key.clone(), "off".to_owned()))
                .collect(),
            spans: BTreeMap::new(),
            logs: BTreeMap::new(),
            events: Vec::new(),
            notices: Vec::new(),
            meters: Meters::default(),
            next_metrics: {
                let interval = MetricExport::default().interval_nanos();
                start_unix_nano.div_ceil(interval) * interval
            },
            entries: (index, entry_ops),
            noise: (u64::MAX, 1.0),
            serial: 0,
        }
    }

    /// The simulation with its metrics exported as `export` says (by default every 15 s, as
    /// delta histograms): the first collection is at the first whole interval after the start.
    pub fn with_metric_export(mut self, export: MetricExport) -> Self {
        let interval = export.interval_nanos();
        self.next_metrics = self.now.div_ceil(interval) * interval;
        self.meters.export = export;
        self
    }

    /// The current simulated time, unix nanoseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The plans (faults and herrings) still to come or under way.
    pub fn plans(&self) -> &[Planned] {
        &self.plans
    }

    /// The name of the pod serving as `replica` of `service` now, if any.
    pub fn pod_name(&self, service: &str, replica: usize) -> Option<String> {
        self.pods
            .iter()
            .find(|p| {
                self.topology.services[p.service].name == service
                    && p.replica == replica
                    && p.ended.is_none()
            })
            .map(|p| p.name.clone())
    }

    /// Adds a plan (a fault or herring to come).
    pub fn plan(&mut self, plan: Planned) {
        self.plans.push(plan);
        self.done.push((false, false));
    }

    /// Whether pod `p` serves at `t`.
    pub(crate) fn serving(&self, p: usize, t: u64) -> bool {
        let pod = &self.pods[p];
        pod.started <= t && pod.ended.is_none_or(|e| t < e) && pod.down_until <= t
    }

    /// The combined impact of every active plan on pod `p` at `t`, with the flags' effects.
    pub(crate) fn impact(&self, p: usize, t: u64) -> Impact {
        let pod = &self.pods[p];
        let service = &self.topology.services[pod.service].name;
        let node = &self.topology.nodes[pod.node];
        self.plans.iter().fold(Impact::NONE, |acc, plan| {
            acc.and(plan.impact_on(service, pod.replica, node, pod.new_version, t))
        })
    }

    /// The impact of active plans on a database, cache or topic `service` at `t`.
    pub(crate) fn impact_on_backend(&self, service: usize, t: u64) -> Impact {
        let name = &self.topology.services[service].name;
        self.plans.iter().fold(Impact::NONE, |acc, plan| {
            acc.and(plan.impact_on(name, 0, "", true, t))
        })
    }

    /// Whether calls from `from` to `to` are cut at `t`.
    pub(crate) fn partitioned(&self, from: usize, to: usize, t: u64) -> bool {
        let (a, b) = (
            &self.topology.services[from].name,
            &self.topology.services[to].name,
        );
        self.plans.iter().any(|p| {
            p.active(t) && matches!(&p.target, Target::Edge { from, to } if from == a && to == b)
        })
    }

    /// Runs the simulation up to `until` (unix nanoseconds) and returns what it produced.
    pub fn advance(&mut self, until: u64) -> Batch {
        while self.now < until {
            let next = until.min((self.now / SECOND + 1) * SECOND);
            self.actions();
            self.memory(next - self.now);
            self.traffic(self.now, next);
            while self.next_metrics <= next {
                let at = self.next_metrics;
                self.collect_metrics(at);
                self.next_metrics += self.meters.export.interval_nanos();
            }
            self.now = next;
        }
        self.actions();
        self.take_batch()
    }

    fn take_batch(&mut self) -> Batch {
        let pods = &self.pods;
        let spans = std::mem::take(&mut self.spans)
            .into_iter()
            .map(|(p, s)| ((*pods[p].resource).clone(), s))
            .collect();
        let mut logs: Vec<_> = std::mem::take(&mut self.logs)
            .into_iter()
            .map(|(p, r)| (((*pods[p].resource).clone(), otlp::scope()), r))
            .collect();
        logs.extend(
            std::mem::take(&mut self.events)
                .into_iter()
                .map(|(resource, record)| ((resource, events_scope()), vec![record])),
        );
        let mut requests: Vec<ExportRequest> = Vec::new();
        requests.extend(otlp::traces(spans).into_iter().map(Into::into));
        requests.extend(otlp::logs(logs).into_iter().map(Into::into));
        requests.extend(self.meters.take_request().map(Into::into));
        Batch {
            requests,
            notices: std::mem::take(&mut self.notices),
        }
    }

    /// Roots entering the system in `[from, to)`: a Poisson number at the topology's rate,
    /// shaped by the time of day, per-minute noise and active traffic spikes.
    fn traffic(&mut self, from: u64, to: u64) {
        let minute = from / MINUTE;
        if self.noise.0 != minute {
            self.noise = (minute, self.rng.random_range(0.85..1.15));
        }
        let t = &self.topology;
        let hour = (from / SECOND % 86_400) as f64 / 3_600.0;
        let daily = 1.0 + t.daily_amplitude * (std::f64::consts::TAU * (hour - 6.0) / 24.0).sin();
        let spike: f64 = self
            .plans
            .iter()
            .filter(|p| p.active(from))
            .map(|p| p.traffic_factor)
            .product();
        let mean = t.requests_per_second * daily * self.noise.1 * spike * (to - from) as f64
            / SECOND as f64;
        let n = rand_distr::Poisson::new(mean.max(1e-9)).map_or(0.0, |d| d.sample(&mut self.rng))
            as u64;
        let mut starts: Vec<u64> = (0..n).map(|_| self.rng.random_range(from..to)).collect();
        starts.sort_unstable();
        for start in starts {
            let (s, o) = self.entries.1[self.entries.0.sample(&mut self.rng)];
            self.request(s, o, start);
        }
    }

    /// Memory over `dt`: leaks grow, a pod at its limit is OOMKilled and restarts.
    fn memory(&mut self, dt: u64) {
        let now = self.now;
        for p in 0..self.pods.len() {
            if !self.serving(p, now) {
                continue;
            }
            let leak = self.impact(p, now).leak_per_minute;
            let pod = &mut self.pods[p];
            pod.memory += leak * dt as f64 / MINUTE as f64;
            if pod.memory >= 1.0 {
                let base = self.topology.services[pod.service].memory_base;
                pod.memory = base;
                pod.restarts += 1;
                pod.down_until = now + RESTART_DELAY;
                self.oom_events(p, now);
            }
        }
    }

    /// The events of an OOMKilled container, as the `k8s_events` receiver reports them.
    fn oom_events(&mut self, p: usize, t: u64) {
        let pod = &self.pods[p];
        let container = &self.topology.services[pod.service].name;
        let mut out = vec![(
            "OOMKilling",
            format!(
                "Memory cgroup out of memory: Killed process of container {container} in pod {}",
                pod.name
            ),
        )];
        if pod.restarts >= 2 {
            out.push((
                "BackOff",
                format!(
                    "Back-off restarting failed container {container} in pod {}_{}({})",
                    pod.name, self.topology.k8s_namespace, pod.uid
                ),
            ));
        }
        let resource = vec![
            kv(sc::K8S_NODE_NAME, &self.topology.nodes[pod.node]),
            kv(loupe_model::change::keys::K8S_OBJECT_KIND, "Pod"),
            kv(loupe_model::change::keys::K8S_OBJECT_NAME, &pod.name),
            kv("k8s.object.uid", &pod.uid),
        ];
        let (name, restarts) = (pod.name.clone(), pod.restarts);
        for (reason, message) in out {
            let uid = uuid(&mut self.rng);
            self.events.push((
                resource.clone(),
                LogRecord {
                    time_unix_nano: t,
                    observed_time_unix_nano: t,
                    // WARN (13), as Kubernetes Warning events are reported.
                    severity_number: 13,
                    severity_text: "Warning".into(),
                    body: otlp::text(message),
                    attributes: vec![
                        kv(loupe_model::change::keys::K8S_EVENT_REASON, reason),
                        kv(loupe_model::change::keys::K8S_EVENT_UID, uid),
                        kv("k8s.event.name", format!("{name}.{:x}", t)),
                        kv(sc::K8S_NAMESPACE_NAME, &self.topology.k8s_namespace),
                        kv("k8s.event.count", i64::from(restarts)),
                    ],
                    ..Default::default()
                },
            ));
        }
    }

    /// Starts and ends plans due by now: rollouts, flag flips, announced config changes. Plans
    /// whose end actions are done are dropped, so a stream that runs for days keeps only the
    /// faults still to come or under way (every span asks each plan for its impact).
    fn actions(&mut self) {
        for i in 0..self.plans.len() {
            let (start, end) = (self.plans[i].start_unix_nano, self.plans[i].end_unix_nano);
            if !self.done[i].0 && start <= self.now {
                self.done[i].0 = true;
                let plan = self.plans[i].clone();
                self.start_actions(&plan);
            }
            if !self.done[i].1 && end <= self.now {
                self.done[i].1 = true;
                let plan = self.plans[i].clone();
                self.end_actions(&plan);
            }
        }
        if self.done.iter().any(|d| d.1) {
            let kept: Vec<(Planned, (bool, bool))> = std::mem::take(&mut self.plans)
                .into_iter()
                .zip(std::mem::take(&mut self.done))
                .filter(|(_, done)| !done.1)
                .collect();
            (self.plans, self.done) = kept.into_iter().unzip();
        }
    }

    fn plan_service(&self, plan: &Planned) -> Option<usize> {
        let name = match &plan.target {
            Target::Service { service } | Target::Pod { service, .. } => service,
            _ => return None,
        };
        self.topology.services.iter().position(|s| &s.name == name)
    }

    fn start_actions(&mut self, plan: &Planned) {
        let t = plan.start_unix_nano;
        if let (true, Some(s)) = (plan.rollout, self.plan_service(plan)) {
            self.rollout(s, t, true);
        }
        if let (true, Some(s)) = (plan.config_change, self.plan_service(plan)) {
            self.config_notice(s, t);
        }
        if let Some(flag) = &plan.flag {
            self.flags.insert(flag.clone(), "on".into());
        }
    }

    fn end_actions(&mut self, plan: &Planned) {
        let t = plan.end_unix_nano;
        // A bad deployment ends with a rollback; an unrelated one stays.
        if plan.rollout && plan.herring.is_none() {
            if let Some(s) = self.plan_service(plan) {
                self.rollout(s, t, false);
            }
        }
        if let Some(flag) = &plan.flag {
            self.flags.insert(flag.clone(), "off".into());
        }
    }

    /// Replaces every pod of service `s` with pods of the next version (`forward`) or of the
    /// version before (a rollback), and sends the deployment webhook.
    fn rollout(&mut self, s: usize, t: u64, forward: bool) {
        let current: Vec<usize> = (0..self.pods.len())
            .filter(|&p| self.pods[p].service == s && self.pods[p].ended.is_none())
            .collect();
        let Some(&first) = current.first() else {
            return;
        };
        let from = self.pods[first].version.clone();
        let to = if forward { bump(&from) } else { unbump(&from) };
        let rs = name_suffix(&mut self.rng, 10);
        for &p in &current {
            let slot = Slot {
                service: s,
                replica: self.pods[p].replica,
                node: self.pods[p].node,
            };
            let mut pod = new_pod(&self.topology, &mut self.rng, slot, (&to, &rs), t);
            pod.new_version = forward;
            self.pods[p].ended = Some(t + ROLLOUT_OVERLAP);
            self.pods.push(pod);
        }
        self.serial += 1;
        let service = self.topology.services[s].name.clone();
        let sha: String = (0..20)
            .map(|_| format!("{:02x}", self.rng.random::<u8>()))
            .collect();
        let author = ["jane-doe", "sam-ops", "ci-bot", "lee-dev"][self.rng.random_range(0..4)];
        let when = rfc3339(t);
        self.notices.push(Notice {
            at_unix_nano: t,
            headers: vec![("x-github-event".into(), "deployment_status".into())],
            body: serde_json::json!({
                "action": "created",
                "deployment_status": {
                    "id": 3_900_000_000u64 + self.serial,
                    "state": "success",
                    "environment": "production",
                    "created_at": when,
                    "creator": { "login": author },
                    "description": format!("Deployed {service} {to} to production"),
                },
                "deployment": {
                    "id": 2_400_000_000u64 + self.serial,
                    "sha": sha,
                    "ref": format!("v{to}"),
                    "environment": "production",
                    "payload": { "service": service, "version": to, "previous_version": from },
                    "creator": { "login": author },
                    "created_at": when,
                },
                "repository": { "name": service, "full_name": format!("acme/{service}") },
                "sender": { "login": author },
            }),
        });
    }

    /// An announced configuration change of service `s`, in loupe's change schema.
    fn config_notice(&mut self, s: usize, t: u64) {
        self.serial += 1;
        let service = &self.topology.services[s].name;
        let revision = self.rng.random_range(10..400u32);
        let keys = [
            "TIMEOUT_MS",
            "POOL_SIZE",
            "RETRY_LIMIT",
            "CACHE_TTL_SECONDS",
        ];
        let key = keys[self.rng.random_range(0..keys.len())];
        self.notices.push(Notice {
            at_unix_nano: t,
            headers: Vec::new(),
            body: serde_json::json!({
                "kind": "config",
                "service": service,
                "time": rfc3339(t),
                "environment": "production",
                "version_from": format!("rev-{revision}"),
                "version_to": format!("rev-{}", revision + 1),
                "author": "sam-ops",
                "source": "api",
                "summary": format!("{service}: {key} changed in configmap {service}-config"),
                "id": format!("config-{}-{}", service, self.serial),
            }),
        });
    }

    pub(crate) fn next_id<const N: usize>(&mut self) -> [u8; N] {
        let mut id = [0u8; N];
        self.rng.fill(&mut id[..]);
        if id.iter().all(|&b| b == 0) {
            id[N - 1] = 1;
        }
        id
    }
}

/// Where a new pod goes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    service: usize,
    replica: usize,
    node: usize,
}

/// A pod of `slot.service` running `version` in replica set `replicaset`, started at
/// `started`, with its resource as the OpenTelemetry Kubernetes setup describes it.
fn new_pod(
    topology: &Topology,
    rng: &mut ChaCha8Rng,
    slot: Slot,
    (version, replicaset): (&str, &str),
    started: u64,
) -> Pod {
    let t = topology;
    let spec = &t.services[slot.service];
    let name = format!("{}-{replicaset}-{}", spec.name, name_suffix(rng, 5));
    let uid = uuid(rng);
    let mut resource = vec![
        kv(sc::SERVICE_NAME, &spec.name),
        kv(sc::SERVICE_VERSION, version),
        kv(sc::SERVICE_INSTANCE_ID, &uid),
        kv(sc::TELEMETRY_SDK_NAME, "opentelemetry"),
        kv(sc::TELEMETRY_SDK_LANGUAGE, &spec.language),
        kv(sc::DEPLOYMENT_ENVIRONMENT_NAME, "production"),
    ];
    match spec.cloud_platform.as_deref() {
        // A managed runtime (cloud resource conventions): the cloud and zone, a function's
        // name and version; no Kubernetes.
        Some(platform) => {
            resource.extend([
                kv(sc::CLOUD_PROVIDER, "aws"),
                kv(sc::CLOUD_PLATFORM, platform),
                kv(sc::CLOUD_REGION, "us-east-1"),
                kv(sc::CLOUD_AVAILABILITY_ZONE, &t.nodes[slot.node]),
            ]);
            if platform == "aws_lambda" {
                resource.push(kv(sc::FAAS_NAME, &spec.name));
                resource.push(kv(sc::FAAS_VERSION, version));
            }
        }
        None => resource.extend([
            kv(sc::K8S_NAMESPACE_NAME, &t.k8s_namespace),
            kv(sc::K8S_POD_NAME, &name),
            kv(sc::K8S_POD_UID, &uid),
            kv(sc::K8S_NODE_NAME, &t.nodes[slot.node]),
            kv(sc::K8S_DEPLOYMENT_NAME, &spec.name),
            kv(
                sc::K8S_REPLICASET_NAME,
                format!("{}-{replicaset}", spec.name),
            ),
        ]),
    }
    Pod {
        service: slot.service,
        replica: slot.replica,
        name,
        uid,
        node: slot.node,
        version: version.to_owned(),
        new_version: false,
        started,
        ended: None,
        restarts: 0,
        memory: spec.memory_base,
        down_until: 0,
        resource: Arc::new(resource),
    }
}

fn events_scope() -> Option<opentelemetry_proto::tonic::common::v1::InstrumentationScope> {
    Some(opentelemetry_proto::tonic::common::v1::InstrumentationScope {
        name: "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/k8seventsreceiver"
            .into(),
        ..Default::default()
    })
}

fn name_suffix(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 16] = rng.random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The next patch version (`2.0.2` → `2.0.3`; anything else gets `-next`).
fn bump(v: &str) -> String {
    match v
        .rsplit_once('.')
        .and_then(|(a, b)| Some((a, b.parse::<u64>().ok()?)))
    {
        Some((head, patch)) => format!("{head}.{}", patch + 1),
        None => format!("{v}-next"),
    }
}

/// The version before a [`bump`].
fn unbump(v: &str) -> String {
    if let Some(v) = v.strip_suffix("-next") {
        return v.to_owned();
    }
    match v
        .rsplit_once('.')
        .and_then(|(a, b)| Some((a, b.parse::<u64>().ok()?)))
    {
        Some((head, patch)) if patch > 0 => format!("{head}.{}", patch - 1),
        _ => format!("{v}-previous"),
    }
}

/// RFC 3339 with seconds, UTC.
pub(crate) fn rfc3339(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t))
        .to_string()
}
