//! The metrics of simulated pods, collected every 15 seconds by default ([`MetricExport`]):
//! request durations as the semantic conventions name them (histograms per operation and
//! status on the server side; on the client side per callee: HTTP and RPC durations with
//! `server.address`, a cloud SDK's RPC durations with `rpc.system` = `aws-api`,
//! `db.client.operation.duration` and `messaging.client.operation.duration`), a function's
//! FaaS metrics (`faas.invoke_duration`, `faas.invocations`, `faas.errors`) instead of its
//! server durations, and a Kubernetes pod's CPU and memory utilization and container restarts
//! as the Collector's `kubeletstats` and `k8s_cluster` receivers report them.
//!
//! Durations go out as delta or cumulative histograms, or as summaries with quantiles, each
//! point with the start of its own interval, as Prometheus-style and cloud-metric converters
//! send them ([`Temporality`]).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint,
};
use opentelemetry_semantic_conventions::{attribute as sc, metric as sm};
use rand::Rng;

use crate::otlp::{self, kv};
use crate::sim::{Simulation, SECOND};
use crate::topology::{Protocol, ServiceKind, ServiceSpec};

mod export;

use export::Series;
pub use export::{MetricExport, Temporality};

/// Bucket bounds of `http.*.request.duration`, seconds (HTTP metrics semantic conventions).
const HTTP_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Bucket bounds of `rpc.*.duration`, milliseconds (the SDKs' default explicit buckets).
const RPC_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

#[derive(Debug, Clone, Default)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
}

impl Hist {
    fn record(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
            self.min = value;
            self.max = value;
        }
        let i = bounds.partition_point(|b| *b < value);
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds another histogram of the same bounds.
    fn merge(&mut self, other: &Hist) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The `q` quantile, interpolated linearly within its bucket (bounded by the observed
    /// minimum and maximum), as a Prometheus `histogram_quantile` does.
    fn quantile(&self, bounds: &[f64], q: f64) -> f64 {
        let rank = q * self.count as f64;
        let mut seen = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            let next = seen + c as f64;
            if c > 0 && next >= rank {
                let lo = if i == 0 {
                    self.min
                } else {
                    bounds[i - 1].max(self.min)
                };
                let hi = bounds.get(i).copied().unwrap_or(self.max).min(self.max);
                return lo + (hi - lo) * ((rank - seen) / c as f64).clamp(0.0, 1.0);
            }
            seen = next;
        }
        self.max
    }
}

/// Measurements since the last collection.
#[derive(Debug, Default)]
pub(crate) struct Meters {
    /// How they are exported.
    pub(crate) export: MetricExport,
    /// (pod, operation, failed) → server durations.
    server: ByPod,
    /// (pod, callee service, failed) → client durations.
    client: ByPod,
    /// Requests each pod served.
    served: BTreeMap<usize, u64>,
    /// Cumulative series by (pod, metric, attributes): their start and totals.
    totals: BTreeMap<(usize, &'static str, String), (u64, Series)>,
    /// Cumulative counters by (pod, metric): their start and total.
    counters: BTreeMap<(usize, &'static str), (u64, f64)>,
    /// Collected metrics with their resources, waiting to be sent.
    ready: Vec<(Vec<KeyValue>, Vec<Metric>)>,
}

/// How a service's served requests are measured: a function's in seconds (its
/// `faas.invoke_duration`), others by how they are called.
pub(crate) fn server_protocol(spec: &ServiceSpec) -> Protocol {
    if spec.cloud_platform.as_deref() == Some("aws_lambda") {
        Protocol::Http
    } else {
        spec.protocol
    }
}

/// How calls to `callee` are measured: an instrumented service's by its protocol, a cloud
/// API's as RPC durations in milliseconds, every other dependency's in seconds.
pub(crate) fn client_protocol(callee: &ServiceSpec) -> Protocol {
    match callee.kind {
        ServiceKind::Service => callee.protocol,
        ServiceKind::Endpoint if callee.rpc_service.is_some() => Protocol::Grpc,
        _ => Protocol::Http,
    }
}

fn in_unit(protocol: Protocol, ms: f64) -> (f64, &'static [f64]) {
    match protocol {
        Protocol::Http => (ms / 1e3, &HTTP_BOUNDS),
        Protocol::Grpc => (ms, &RPC_BOUNDS),
    }
}

impl Meters {
    /// A served request of `ms` milliseconds.
    pub(crate) fn server(
        &mut self,
        pod: usize,
        op: usize,
        protocol: Protocol,
        failed: bool,
        ms: f64,
    ) {
        let (v, bounds) = in_unit(protocol, ms);
        let e = self
            .server
            .entry((pod, op, failed))
            .or_insert((protocol, Hist::default()));
        e.1.record(bounds, v);
        *self.served.entry(pod).or_default() += 1;
    }

    /// A call of `ms` milliseconds to `callee`.
    pub(crate) fn client(
        &mut self,
        pod: usize,
        callee: usize,
        protocol: Protocol,
        failed: bool,
        ms: f64,
    ) {
        let (v, bounds) = in_unit(protocol, ms);
        let e = self
            .client
            .entry((pod, callee, failed))
            .or_insert((protocol, Hist::default()));
        e.1.record(bounds, v);
    }

    /// The collected metrics as one request; `None` when nothing was collected.
    pub(crate) fn take_request(&mut self) -> Option<ExportMetricsServiceRequest> {
        otlp::metrics(std::mem::take(&mut self.ready))
    }
}

fn gauge(name: &str, unit: &str, t: u64, value: f64) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: t,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

/// The server-side durations metric of `protocol`, its unit and bounds.
// The gRPC instrumentations still emit `rpc.server.duration` in ms (before the 1.37 renames).
#[allow(deprecated)]
fn server_metric(protocol: Protocol) -> (&'static str, &'static str, &'static [f64]) {
    match protocol {
        Protocol::Http => (sm::HTTP_SERVER_REQUEST_DURATION, "s", &HTTP_BOUNDS),
        Protocol::Grpc => (sm::RPC_SERVER_DURATION, "ms", &RPC_BOUNDS),
    }
}

/// The client-side durations metric of calls to `callee`, its unit and bounds, and the
/// attributes that name the callee.
// The gRPC and AWS SDK instrumentations still emit the RPC conventions before their 1.37
// renames (`rpc.client.duration` in ms).
#[allow(deprecated)]
fn client_metric(
    callee: &ServiceSpec,
    failed: bool,
) -> (&'static str, &'static str, &'static [f64], Vec<KeyValue>) {
    let (name, unit, bounds, mut attributes): (_, _, &'static [f64], _) = match callee.kind {
        ServiceKind::Service => {
            let attributes = vec![kv(sc::SERVER_ADDRESS, &callee.name)];
            match callee.protocol {
                Protocol::Http => (
                    sm::HTTP_CLIENT_REQUEST_DURATION,
                    "s",
                    &HTTP_BOUNDS,
                    attributes,
                ),
                Protocol::Grpc => (sm::RPC_CLIENT_DURATION, "ms", &RPC_BOUNDS, attributes),
            }
        }
        ServiceKind::Database | ServiceKind::Cache => (
            sm::DB_CLIENT_OPERATION_DURATION,
            "s",
            &HTTP_BOUNDS,
            crate::trace::database_attributes(callee, None),
        ),
        ServiceKind::Topic => (
            sm::MESSAGING_CLIENT_OPERATION_DURATION,
            "s",
            &HTTP_BOUNDS,
            vec![
                kv(
                    sc::MESSAGING_SYSTEM,
                    callee.system.as_deref().unwrap_or("kafka"),
                ),
                kv(sc::MESSAGING_DESTINATION_NAME, &callee.name),
                kv(sc::MESSAGING_OPERATION_TYPE, "send"),
            ],
        ),
        ServiceKind::Endpoint => {
            let address = kv(
                sc::SERVER_ADDRESS,
                callee.address.as_ref().unwrap_or(&callee.name),
            );
            match &callee.rpc_service {
                Some(service) => (
                    sm::RPC_CLIENT_DURATION,
                    "ms",
                    &RPC_BOUNDS,
                    vec![
                        kv(sc::RPC_SYSTEM, loupe_model::semconv::RPC_SYSTEM_AWS_API),
                        kv(sc::RPC_SERVICE, service),
                        address,
                    ],
                ),
                None => (
                    sm::HTTP_CLIENT_REQUEST_DURATION,
                    "s",
                    &HTTP_BOUNDS,
                    vec![address],
                ),
            }
        }
    };
    if failed {
        attributes.push(kv(sc::ERROR_TYPE, "500"));
    }
    (name, unit, bounds, attributes)
}

/// Measurements keyed by (pod, operation or callee, failed).
type ByPod = BTreeMap<(usize, usize, bool), (Protocol, Hist)>;

/// Takes pod `p`'s measurements out of `map`.
fn drain_pod(map: &mut ByPod, p: usize) -> ByPod {
    let mut mine = map.split_off(&(p, 0, false));
    let mut rest = mine.split_off(&(p + 1, 0, false));
    map.append(&mut rest);
    mine
}

impl Simulation {
    /// A Kubernetes pod's utilization and restarts at `t`, as the Collector's `kubeletstats`
    /// and `k8s_cluster` receivers report them: CPU from its idle share, the `rps` requests per
    /// second it served and the faults on it; memory as it stands; each with a little noise.
    fn pod_gauges(&mut self, p: usize, t: u64, rps: f64) -> [Metric; 3] {
        let impact = self.impact(p, t);
        let pod = &self.pods[p];
        let spec = &self.topology.services[pod.service];
        let noise: f64 = self.rng.random_range(-0.02..0.02);
        let cpu = (spec.cpu_base + spec.cpu_per_rps * rps + impact.cpu + noise).clamp(0.0, 1.0);
        let memory = (pod.memory + self.rng.random_range(-0.01..0.01)).clamp(0.0, 1.0);
        let restarts = f64::from(pod.restarts);
        [
            gauge(
                loupe_model::semconv::K8S_POD_CPU_LIMIT_UTILIZATION,
                "1",
                t,
                cpu,
            ),
            gauge(
                loupe_model::semconv::K8S_POD_MEMORY_LIMIT_UTILIZATION,
                "1",
                t,
                memory,
            ),
            gauge(sm::K8S_CONTAINER_RESTART_COUNT, "{restart}", t, restarts),
        ]
    }

    /// Collects every serving pod's metrics at `t`, over the interval that ends there.
    // The gRPC instrumentations in use (and the OpenTelemetry Demo's) still emit the RPC
    // conventions before their 1.37 renames (`rpc.system`, `rpc.grpc.status_code`, durations in ms).
    #[allow(deprecated)]
    pub(crate) fn collect_metrics(&mut self, t: u64) {
        let interval = self.meters.export.interval_nanos();
        let start = t.saturating_sub(interval);
        let topology = self.topology.clone();
        let mut server = std::mem::take(&mut self.meters.server);
        let mut client = std::mem::take(&mut self.meters.client);
        let served = std::mem::take(&mut self.meters.served);
        for p in 0..self.pods.len() {
            if !self.serving(p, t) && !served.contains_key(&p) {
                continue;
            }
            let pod = &self.pods[p];
            let spec = &topology.services[pod.service];
            let function = spec.cloud_platform.as_deref() == Some("aws_lambda");
            let mut metrics = Vec::new();
            if spec.cloud_platform.is_none() {
                let rps =
                    served.get(&p).copied().unwrap_or(0) as f64 * SECOND as f64 / interval as f64;
                metrics.extend(self.pod_gauges(p, t, rps));
            }
            let mine = drain_pod(&mut server, p);
            let series: Vec<Series> = if function {
                self.meters
                    .function_series(p, &mine, (start, t), &mut metrics)
            } else {
                mine.into_iter()
                    .map(|((_, op, failed), (protocol, hist))| {
                        let (name, unit, bounds) = server_metric(protocol);
                        // The metric carries the span's attributes (the conventions share them).
                        let op = &spec.operations[op].name;
                        Series {
                            name,
                            unit,
                            bounds,
                            attributes: crate::trace::server_attributes(protocol, op, failed),
                            hist,
                        }
                    })
                    .collect()
            };
            let mut series = series;
            series.extend(drain_pod(&mut client, p).into_iter().map(
                |((_, callee, failed), (_, hist))| {
                    let (name, unit, bounds, attributes) =
                        client_metric(&topology.services[callee], failed);
                    Series {
                        name,
                        unit,
                        bounds,
                        attributes,
                        hist,
                    }
                },
            ));
            metrics.extend(self.meters.durations(p, series, (start, t)));
            let pod = &self.pods[p];
            self.meters.ready.push(((*pod.resource).clone(), metrics));
        }
        // Measurements of pods gone before the collection are lost, as an SDK's are.
        server.clear();
        client.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary's quantiles come from the histogram by linear interpolation within the bucket,
    /// bounded by the observed minimum and maximum, and are ordered.
    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let mut h = Hist::default();
        // 100 values: 0.001 s … 0.1 s, evenly.
        for i in 1..=100 {
            h.record(&HTTP_BOUNDS, f64::from(i) * 0.001);
        }
        let q = |p: f64| h.quantile(&HTTP_BOUNDS, p);
        // The median falls in the (0.05, 0.075] bucket's first share: 50 of 100 values are at
        // or under 0.05, so the 0.5 rank is that bucket's start.
        assert!((q(0.5) - 0.05).abs() < 1e-9, "{}", q(0.5));
        assert!(
            q(0.9) > q(0.5) && q(0.99) > q(0.9),
            "{} {} {}",
            q(0.5),
            q(0.9),
            q(0.99)
        );
        assert!(q(0.99) <= 0.1 && q(0.0) >= 0.001);
        // One value: every quantile is it.
        let mut one = Hist::default();
        one.record(&HTTP_BOUNDS, 0.3);
        assert!((one.quantile(&HTTP_BOUNDS, 0.5) - 0.3).abs() < 1e-9);
        assert!((one.quantile(&HTTP_BOUNDS, 0.99) - 0.3).abs() < 1e-9);
    }
}
