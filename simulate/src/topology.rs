//! A simulated system described as data: its services (instrumented ones, databases, caches,
//! message topics), their operations, the calls between them, the traffic that enters it, the
//! nodes it runs on and its feature flags. Read from TOML (`Topology::parse`), built in
//! (`Topology::builtin`), or generated at random for a seed (`Topology::random`).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The OpenTelemetry Demo (opentelemetry.io/docs/demo/architecture), as a topology file.
const OTEL_DEMO: &str = include_str!("../topologies/otel-demo.toml");

/// A shop on a cloud's managed services, instrumented only in its containers and functions.
const CLOUD_SHOP: &str = include_str!("../topologies/cloud-shop.toml");

/// Names of the built-in topologies, for `--topology`.
pub const BUILTIN: [&str; 4] = ["otel-demo", "cloud-shop", "random-small", "random-large"];

/// A system to simulate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The system's name (the ground truth's `system`).
    pub name: String,
    /// `k8s.namespace.name` of every pod.
    #[serde(default = "default_namespace")]
    pub k8s_namespace: String,
    /// `k8s.node.name` of the nodes; pods are spread over them in turn.
    pub nodes: Vec<String>,
    /// Mean rate of requests entering the system, per second.
    pub requests_per_second: f64,
    /// Daily swing of that rate: the rate is `1 + a·sin(2π·(hour − 6)/24)` times the mean
    /// (lowest at midnight, highest at noon, UTC).
    #[serde(default)]
    pub daily_amplitude: f64,
    /// Where requests enter, with weights.
    pub entries: Vec<Entry>,
    /// Services, databases, caches and topics.
    pub services: Vec<ServiceSpec>,
    /// Feature flags the services evaluate.
    #[serde(default)]
    pub flags: Vec<FlagSpec>,
}

fn default_namespace() -> String {
    "default".into()
}

/// An entry operation and its share of the traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `service/operation`.
    pub operation: String,
    /// Relative weight.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// What a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// An instrumented service with pods: it writes spans, logs and metrics.
    #[default]
    Service,
    /// A database its callers reach with CLIENT spans carrying `db.system.name`.
    Database,
    /// A cache, reached as a database is.
    Cache,
    /// A message topic: callers publish with PRODUCER spans, its consumers receive.
    Topic,
    /// An endpoint that sends no telemetry of its own, known only from its callers' client
    /// spans and metrics (by its `address`): a load balancer or API gateway (whose operations
    /// forward to the service behind it), a cloud API called through the cloud's SDK (with
    /// `rpc_service`), a third-party HTTP API, the cloud's metadata endpoint.
    Endpoint,
}

/// How an instrumented service is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP: `http.server.request.duration` in seconds, `http.response.status_code`.
    #[default]
    Http,
    /// gRPC: `rpc.server.duration` in milliseconds, `rpc.grpc.status_code`.
    Grpc,
}

/// One service, database, cache or topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// `service.name` (or the database, cache or topic name).
    pub name: String,
    /// What it is.
    #[serde(default)]
    pub kind: ServiceKind,
    /// `telemetry.sdk.language`.
    #[serde(default = "default_language")]
    pub language: String,
    /// How it is called.
    #[serde(default)]
    pub protocol: Protocol,
    /// Pods.
    #[serde(default = "one_u32")]
    pub replicas: u32,
    /// `service.version` at the start.
    #[serde(default = "default_version")]
    pub version: String,
    /// `db.system.name` of a database or cache, `messaging.system` of a topic.
    #[serde(default)]
    pub system: Option<String>,
    /// A topic's consumers, `service/operation` each.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// The host name callers put in `server.address`, when not the name: a load balancer's
    /// (`internal-orders-1234.us-east-1.elb.amazonaws.com`), a cloud API's regional endpoint,
    /// a managed database's.
    #[serde(default)]
    pub address: Option<String>,
    /// A cloud API's service as the cloud SDK's instrumentation names it (`rpc.system` =
    /// `aws-api`, `rpc.service` = `SQS`); the endpoint's callers then send RPC client metrics.
    #[serde(default)]
    pub rpc_service: Option<String>,
    /// The managed runtime an instrumented service runs on (`cloud.platform`: `aws_ecs`,
    /// `aws_lambda`), instead of Kubernetes pods: its resource carries `cloud.*` (and a
    /// function's `faas.name`) and no `k8s.*`, and a function reports the FaaS metrics.
    #[serde(default)]
    pub cloud_platform: Option<String>,
    /// Pod CPU utilization (share of its limit) when idle.
    #[serde(default = "default_cpu_base")]
    pub cpu_base: f64,
    /// Added CPU utilization per request per second the pod serves.
    #[serde(default = "default_cpu_per_rps")]
    pub cpu_per_rps: f64,
    /// Pod memory utilization (share of its limit).
    #[serde(default = "default_memory_base")]
    pub memory_base: f64,
    /// Operations.
    pub operations: Vec<OperationSpec>,
}

fn default_language() -> String {
    "go".into()
}
fn one_u32() -> u32 {
    1
}
fn default_version() -> String {
    "1.0.0".into()
}
fn default_cpu_base() -> f64 {
    0.08
}
fn default_cpu_per_rps() -> f64 {
    0.02
}
fn default_memory_base() -> f64 {
    0.35
}

/// One operation (a span name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationSpec {
    /// Span name: the route (`GET /api/cart`), the RPC (`oteldemo.CartService/GetCart`), the
    /// query (`SELECT products`) or the topic operation (`orders process`).
    pub name: String,
    /// Median self time (outside its calls), milliseconds.
    pub self_ms: f64,
    /// Spread of the self time: σ of its logarithm.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Share of calls that fail here.
    #[serde(default)]
    pub error_rate: f64,
    /// Calls it makes, in order.
    #[serde(default)]
    pub calls: Vec<CallSpec>,
    /// Templates of its INFO log lines; `{n}` becomes a number, `{id}` a hex id, `{ms}` the
    /// span's duration in milliseconds.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Share of its spans that write one INFO line.
    #[serde(default = "default_log_probability")]
    pub log_probability: f64,
}

fn default_sigma() -> f64 {
    0.35
}
fn default_log_probability() -> f64 {
    0.3
}

/// One call an operation makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// `service/operation`.
    pub to: String,
    /// Probability that a request makes the call.
    #[serde(default = "one")]
    pub p: f64,
    /// How many times, when it does (fan-out).
    #[serde(default = "one_u32")]
    pub n: u32,
    /// Whether a failure of the call leaves the caller fine (a best-effort call).
    #[serde(default)]
    pub optional: bool,
}

/// What a feature flag does when it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagEffect {
    /// Its service fails a share of its calls.
    Errors,
    /// Its service slows down.
    Latency,
    /// Its service's pods saturate their CPU.
    Cpu,
    /// Its service's pods leak memory.
    MemoryLeak,
}

/// A feature flag (OpenFeature), evaluated by one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagSpec {
    /// `feature_flag.key`.
    pub key: String,
    /// The service that evaluates it.
    pub service: String,
    /// What turning it on does.
    pub effect: FlagEffect,
}

impl Topology {
    /// A built-in topology by name (see [`BUILTIN`]).
    ///
    /// # Errors
    /// [`Error::Topology`] for an unknown name.
    pub fn builtin(name: &str) -> Result<Self> {
        match name {
            "otel-demo" => Self::parse(OTEL_DEMO, "otel-demo.toml"),
            "cloud-shop" => Self::parse(CLOUD_SHOP, "cloud-shop.toml"),
            "random-small" => Ok(Self::random(12, 11)),
            "random-large" => Ok(Self::random(40, 23)),
            other => Err(Error::Topology(format!(
                "no built-in topology {other:?}; choose one of {BUILTIN:?} or give a TOML file"
            ))),
        }
    }

    /// Reads a topology file's text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Topology`] with the parser's line and column, or naming the first dangling
    /// reference or impossible value.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let t: Self =
            toml::from_str(text).map_err(|e| Error::Topology(format!("{origin}: {e}")))?;
        t.validate()
            .map_err(|e| Error::Topology(format!("{origin}: {e}")))?;
        Ok(t)
    }

    /// The index of each service by name.
    pub fn index(&self) -> BTreeMap<&str, usize> {
        self.services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect()
    }

    /// `(service, operation)` indices of `service/operation`.
    pub fn resolve(&self, reference: &str) -> Option<(usize, usize)> {
        let (service, operation) = reference.split_once('/')?;
        let s = self.services.iter().position(|s| s.name == service)?;
        let o = self.services[s]
            .operations
            .iter()
            .position(|o| o.name == operation)?;
        Some((s, o))
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.nodes.is_empty() {
            return Err("nodes: at least one node is needed".into());
        }
        if !(self.requests_per_second > 0.0 && self.requests_per_second.is_finite()) {
            return Err("requests_per_second must be positive".into());
        }
        if !(0.0..1.0).contains(&self.daily_amplitude) {
            return Err("daily_amplitude must be in [0, 1)".into());
        }
        if self.entries.is_empty() {
            return Err("entries: at least one entry operation is needed".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.services {
            if !names.insert(s.name.as_str()) {
                return Err(format!("service {:?} is defined twice", s.name));
            }
            if s.operations.is_empty() && s.kind != ServiceKind::Topic {
                return Err(format!("service {:?} has no operations", s.name));
            }
            if s.kind == ServiceKind::Service && s.replicas == 0 {
                return Err(format!("service {:?} has no replicas", s.name));
            }
            for o in &s.operations {
                if !(o.self_ms >= 0.0 && o.self_ms.is_finite()) || o.sigma < 0.0 {
                    return Err(format!(
                        "{}/{}: self_ms and sigma must be >= 0",
                        s.name, o.name
                    ));
                }
                if !(0.0..=1.0).contains(&o.error_rate) {
                    return Err(format!(
                        "{}/{}: error_rate must be in [0, 1]",
                        s.name, o.name
                    ));
                }
                for c in &o.calls {
                    if self.resolve(&c.to).is_none() && self.topic(&c.to).is_none() {
                        return Err(format!(
                            "{}/{} calls {:?}, which is not a service/operation",
                            s.name, o.name, c.to
                        ));
                    }
                }
            }
            for o in &s.operations {
                match s.kind {
                    ServiceKind::Service => {}
                    // An endpoint forwards each call, once, to the services behind it.
                    ServiceKind::Endpoint => {
                        if let Some(c) = o.calls.iter().find(|c| {
                            c.p != 1.0
                                || c.n != 1
                                || c.optional
                                || !self.resolve(&c.to).is_some_and(|(t, _)| {
                                    self.services[t].kind == ServiceKind::Service
                                })
                        }) {
                            return Err(format!(
                                "{}/{} forwards to {:?}: an endpoint forwards every call, once, \
                                 to an instrumented service (no p, n or optional)",
                                s.name, o.name, c.to
                            ));
                        }
                    }
                    _ if !o.calls.is_empty() => {
                        return Err(format!(
                            "{}/{}: only services and endpoints call on",
                            s.name, o.name
                        ));
                    }
                    _ => {}
                }
            }
            for c in &s.consumers {
                if self.resolve(c).is_none() {
                    return Err(format!("topic {:?} has an unknown consumer {c:?}", s.name));
                }
            }
        }
        for e in &self.entries {
            match self.resolve(&e.operation) {
                Some((s, _)) if self.services[s].kind == ServiceKind::Service => {}
                _ => {
                    return Err(format!(
                        "entry {:?} is not an operation of an instrumented service",
                        e.operation
                    ))
                }
            }
        }
        for f in &self.flags {
            if !self
                .services
                .iter()
                .any(|s| s.name == f.service && s.kind == ServiceKind::Service)
            {
                return Err(format!(
                    "flag {:?} names an unknown service {:?}",
                    f.key, f.service
                ));
            }
        }
        self.check_acyclic()
    }

    /// The topic a call publishes to: `topic/publish` names one.
    pub fn topic(&self, reference: &str) -> Option<&ServiceSpec> {
        let (name, op) = reference.split_once('/')?;
        self.services
            .iter()
            .find(|x| x.name == name && x.kind == ServiceKind::Topic && op == "publish")
    }

    /// Calls must not loop: a request must end.
    fn check_acyclic(&self) -> std::result::Result<(), String> {
        fn visit(
            t: &Topology,
            at: &str,
            path: &mut Vec<String>,
            done: &mut std::collections::BTreeSet<String>,
        ) -> std::result::Result<(), String> {
            if done.contains(at) {
                return Ok(());
            }
            if path.iter().any(|p| p == at) {
                return Err(format!("calls loop: {} -> {at}", path.join(" -> ")));
            }
            path.push(at.to_owned());
            let next: Vec<String> = match t.resolve(at) {
                Some((s, o)) => t.services[s].operations[o]
                    .calls
                    .iter()
                    .map(|c| c.to.clone())
                    .collect(),
                None => {
                    let topic = at.split_once('/').map_or(at, |(s, _)| s);
                    t.services
                        .iter()
                        .find(|s| s.name == topic)
                        .map(|s| s.consumers.clone())
                        .unwrap_or_default()
                }
            };
            for n in next {
                visit(t, &n, path, done)?;
            }
            path.pop();
            done.insert(at.to_owned());
            Ok(())
        }
        let mut done = std::collections::BTreeSet::new();
        for e in &self.entries {
            visit(self, &e.operation, &mut Vec::new(), &mut done)?;
        }
        Ok(())
    }

    /// A random layered system of `services` instrumented services (at least 4) for `seed`:
    /// an entry gateway, layers of services each calling a few in deeper layers, a database
    /// and a cache at the bottom, and a flag on a few services. The same seed gives the same
    /// system.
    pub fn random(services: usize, seed: u64) -> Self {
        let services = services.max(4);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        const WORDS: [&str; 24] = [
            "auth",
            "billing",
            "catalog",
            "search",
            "inventory",
            "pricing",
            "orders",
            "users",
            "reviews",
            "media",
            "profile",
            "session",
            "ledger",
            "notify",
            "geo",
            "quota",
            "ranking",
            "tokens",
            "audit",
            "export",
            "stock",
            "basket",
            "offers",
            "tax",
        ];
        let names: Vec<String> = (0..services)
            .map(|i| match i {
                0 => "gateway".to_owned(),
                i => {
                    let w = WORDS[(i - 1) % WORDS.len()];
                    match (i - 1) / WORDS.len() {
                        0 => w.to_owned(),
                        k => format!("{w}-{k}"),
                    }
                }
            })
            .collect();
        // Layers: the gateway alone, then the rest split into three.
        let layer = |i: usize| match i {
            0 => 0,
            i => 1 + (i - 1) * 3 / (services - 1),
        };
        let languages = ["go", "java", "python", "nodejs", "dotnet", "rust"];
        let mut specs: Vec<ServiceSpec> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ops = if i == 0 { 4 } else { rng.random_range(1..=3) };
            let operations = (0..ops)
                .map(|k| OperationSpec {
                    name: if i == 0 {
                        [
                            "GET /",
                            "GET /api/items",
                            "POST /api/orders",
                            "GET /api/account",
                        ][k]
                            .to_owned()
                    } else {
                        format!("{name}.{}", ["Get", "List", "Update"][k])
                    },
                    self_ms: rng.random_range(1.0..25.0),
                    sigma: rng.random_range(0.2..0.6),
                    error_rate: if rng.random_bool(0.3) { 0.0005 } else { 0.0 },
                    calls: Vec::new(),
                    logs: vec![format!("{name} handled request {{id}} in {{ms}} ms")],
                    log_probability: rng.random_range(0.1..0.5),
                })
                .collect();
            specs.push(ServiceSpec {
                name: name.clone(),
                kind: ServiceKind::Service,
                language: languages[rng.random_range(0..languages.len())].to_owned(),
                protocol: if i == 0 || rng.random_bool(0.5) {
                    Protocol::Http
                } else {
                    Protocol::Grpc
                },
                replicas: rng.random_range(1..=3),
                version: format!("1.{}.{}", rng.random_range(0..9), rng.random_range(0..20)),
                system: None,
                consumers: Vec::new(),
                address: None,
                rpc_service: None,
                cloud_platform: None,
                cpu_base: rng.random_range(0.03..0.15),
                cpu_per_rps: rng.random_range(0.005..0.04),
                memory_base: rng.random_range(0.2..0.5),
                operations,
            });
        }
        for (name, system, op) in [
            ("maindb", "postgresql", "SELECT rows"),
            ("cache", "redis", "GET"),
        ] {
            specs.push(ServiceSpec {
                name: name.into(),
                kind: if system == "redis" {
                    ServiceKind::Cache
                } else {
                    ServiceKind::Database
                },
                language: default_language(),
                protocol: Protocol::Http,
                replicas: 1,
                version: default_version(),
                system: Some(system.into()),
                consumers: Vec::new(),
                address: None,
                rpc_service: None,
                cloud_platform: None,
                cpu_base: default_cpu_base(),
                cpu_per_rps: default_cpu_per_rps(),
                memory_base: default_memory_base(),
                operations: vec![OperationSpec {
                    name: op.into(),
                    self_ms: if system == "redis" { 0.4 } else { 3.0 },
                    sigma: 0.3,
                    error_rate: 0.0,
                    calls: Vec::new(),
                    logs: Vec::new(),
                    log_probability: 0.0,
                }],
            });
        }
        // Calls: each operation calls up to three operations of deeper layers; services of
        // the deepest layer reach the database or the cache.
        let deepest = layer(services - 1);
        for i in 0..services {
            let deeper: Vec<usize> = (0..services).filter(|&j| layer(j) > layer(i)).collect();
            let next: Vec<usize> = deeper
                .iter()
                .copied()
                .filter(|&j| layer(j) == layer(i) + 1)
                .collect();
            for k in 0..specs[i].operations.len() {
                let mut calls = Vec::new();
                let fanout = if deeper.is_empty() {
                    0
                } else {
                    rng.random_range(1..=3)
                };
                for f in 0..fanout {
                    // The first call goes one layer down so every layer is reached.
                    let pool = if f == 0 && !next.is_empty() {
                        &next
                    } else {
                        &deeper
                    };
                    let j = pool[rng.random_range(0..pool.len())];
                    let target = &specs[j];
                    let op = &target.operations[rng.random_range(0..target.operations.len())];
                    let to = format!("{}/{}", target.name, op.name);
                    if calls.iter().any(|c: &CallSpec| c.to == to) {
                        continue;
                    }
                    calls.push(CallSpec {
                        to,
                        p: if f == 0 {
                            1.0
                        } else {
                            rng.random_range(0.3..1.0)
                        },
                        n: if rng.random_bool(0.15) {
                            rng.random_range(2..=4)
                        } else {
                            1
                        },
                        optional: f > 0 && rng.random_bool(0.3),
                    });
                }
                if layer(i) == deepest || (layer(i) > 1 && rng.random_bool(0.3)) {
                    let (store, op) = if rng.random_bool(0.6) {
                        ("maindb", "SELECT rows")
                    } else {
                        ("cache", "GET")
                    };
                    calls.push(CallSpec {
                        to: format!("{store}/{op}"),
                        p: 1.0,
                        n: rng.random_range(1..=2),
                        optional: false,
                    });
                }
                specs[i].operations[k].calls = calls;
            }
        }
        let flagged: Vec<usize> = (1..services).filter(|_| rng.random_bool(0.25)).collect();
        let effects = [
            FlagEffect::Errors,
            FlagEffect::Latency,
            FlagEffect::Cpu,
            FlagEffect::MemoryLeak,
        ];
        let flags = flagged
            .iter()
            .map(|&i| FlagSpec {
                key: format!("{}Experiment", names[i].replace('-', "")),
                service: names[i].clone(),
                effect: effects[rng.random_range(0..effects.len())],
            })
            .collect();
        let nodes = (0..(services / 5).clamp(2, 8))
            .map(|n| format!("worker-{n}"))
            .collect();
        Self {
            name: format!("random-{services}-{seed}"),
            k8s_namespace: "apps".into(),
            nodes,
            requests_per_second: 4.0,
            daily_amplitude: 0.3,
            entries: specs[0]
                .operations
                .iter()
                .enumerate()
                .map(|(k, o)| Entry {
                    operation: format!("gateway/{}", o.name),
                    weight: [5.0, 3.0, 1.0, 1.0][k],
                })
                .collect(),
            services: specs,
            flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_random_ones_repeat_for_a_seed() {
        for name in BUILTIN {
            let t = Topology::builtin(name).unwrap();
            t.validate().unwrap();
        }
        assert_eq!(Topology::random(20, 5), Topology::random(20, 5));
        assert_ne!(Topology::random(20, 5), Topology::random(20, 6));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let check = |text: &str, expected: &str| {
            let e = Topology::parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.contains(expected), "{e:?} lacks {expected:?}");
        };
        let head = "name = \"x\"\nnodes = [\"n\"]\nrequests_per_second = 1.0\n";
        check("name = 3", "t.toml");
        check(
            &format!("{head}entries = [{{ operation = \"a/x\" }}]\n[[services]]\nname = \"a\"\n[[services.operations]]\nname = \"x\"\nself_ms = 1\ncalls = [{{ to = \"b/y\" }}]\n"),
            "which is not a service/operation",
        );
        check(
            &format!("{head}entries = [{{ operation = \"a/x\" }}]\n[[services]]\nname = \"a\"\n[[services.operations]]\nname = \"x\"\nself_ms = 1\ncalls = [{{ to = \"a/x\" }}]\n"),
            "calls loop",
        );
        check(
            &format!("{head}entries = [{{ operation = \"a/x\" }}]\n[[services]]\nname = \"a\"\nbogus = 1\n"),
            "bogus",
        );
    }
}
