//! The metrics of simulated pods, collected every 15 seconds: request durations as the HTTP
//! and RPC semantic conventions name them (delta-temporality histograms per operation and
//! status, on the server and on the client side with `server.address`), and CPU and memory
//! utilization and container restarts as the Collector's `kubeletstats` and `k8s_cluster`
//! receivers report them.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint,
};
use opentelemetry_semantic_conventions::{attribute as sc, metric as sm};
use rand::Rng;

use crate::otlp::{self, kv};
use crate::sim::{Simulation, METRIC_INTERVAL};
use crate::topology::Protocol;

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
}

/// Measurements since the last collection.
#[derive(Debug, Default)]
pub(crate) struct Meters {
    /// (pod, operation, failed) → server durations.
    server: ByPod,
    /// (pod, callee service, failed) → client durations.
    client: ByPod,
    /// Requests each pod served.
    served: BTreeMap<usize, u64>,
    /// Collected metrics with their resources, waiting to be sent.
    ready: Vec<(Vec<KeyValue>, Vec<Metric>)>,
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

fn histogram(
    name: &str,
    unit: &str,
    (start, t): (u64, u64),
    points: Vec<(Vec<KeyValue>, Hist)>,
    bounds: &[f64],
) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(metric::Data::Histogram(Histogram {
            aggregation_temporality: AggregationTemporality::Delta as i32,
            data_points: points
                .into_iter()
                .map(|(attributes, h)| HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: t,
                    count: h.count,
                    sum: Some(h.sum),
                    bucket_counts: h.counts,
                    explicit_bounds: bounds.to_vec(),
                    min: Some(h.min),
                    max: Some(h.max),
                    ..Default::default()
                })
                .collect(),
        })),
        ..Default::default()
    }
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

/// One histogram metric per protocol of one pod's measurements, named `names` (HTTP in
/// seconds, RPC in milliseconds).
fn durations(
    points: Vec<(Protocol, Vec<KeyValue>, Hist)>,
    [http, rpc]: [&str; 2],
    interval: (u64, u64),
) -> Vec<Metric> {
    let mut by_protocol: BTreeMap<Protocol, Vec<(Vec<KeyValue>, Hist)>> = BTreeMap::new();
    for (protocol, attributes, h) in points {
        by_protocol
            .entry(protocol)
            .or_default()
            .push((attributes, h));
    }
    by_protocol
        .into_iter()
        .map(|(protocol, points)| match protocol {
            Protocol::Http => histogram(http, "s", interval, points, &HTTP_BOUNDS),
            Protocol::Grpc => histogram(rpc, "ms", interval, points, &RPC_BOUNDS),
        })
        .collect()
}

impl Simulation {
    /// Collects every serving pod's metrics at `t`, over the interval that ends there.
    // The gRPC instrumentations in use (and the OpenTelemetry Demo's) still emit the RPC
    // conventions before their 1.37 renames (`rpc.system`, `rpc.grpc.status_code`, durations in ms).
    #[allow(deprecated)]
    pub(crate) fn collect_metrics(&mut self, t: u64) {
        let start = t.saturating_sub(METRIC_INTERVAL);
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
            let impact = self.impact(p, t);
            let rps = served.get(&p).copied().unwrap_or(0) as f64 / 15.0;
            let noise: f64 = self.rng.random_range(-0.02..0.02);
            let cpu = (spec.cpu_base + spec.cpu_per_rps * rps + impact.cpu + noise).clamp(0.0, 1.0);
            let memory = (pod.memory + self.rng.random_range(-0.01..0.01)).clamp(0.0, 1.0);
            let mut metrics = vec![
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
                gauge(
                    sm::K8S_CONTAINER_RESTART_COUNT,
                    "{restart}",
                    t,
                    f64::from(pod.restarts),
                ),
            ];
            let served_here =
                drain_pod(&mut server, p)
                    .into_iter()
                    .map(|((_, op, failed), (protocol, h))| {
                        // The metric carries the span's attributes (the conventions share them).
                        let op = &spec.operations[op].name;
                        (
                            protocol,
                            crate::trace::server_attributes(protocol, op, failed),
                            h,
                        )
                    });
            metrics.extend(durations(
                served_here.collect(),
                [sm::HTTP_SERVER_REQUEST_DURATION, sm::RPC_SERVER_DURATION],
                (start, t),
            ));
            let called = drain_pod(&mut client, p).into_iter().map(
                |((_, callee, failed), (protocol, h))| {
                    let mut attributes =
                        vec![kv(sc::SERVER_ADDRESS, &topology.services[callee].name)];
                    if failed {
                        attributes.push(kv(sc::ERROR_TYPE, "500"));
                    }
                    (protocol, attributes, h)
                },
            );
            metrics.extend(durations(
                called.collect(),
                [sm::HTTP_CLIENT_REQUEST_DURATION, sm::RPC_CLIENT_DURATION],
                (start, t),
            ));
            self.meters.ready.push(((*pod.resource).clone(), metrics));
        }
        // Measurements of pods gone before the collection are lost, as an SDK's are.
        server.clear();
        client.clear();
    }
}
