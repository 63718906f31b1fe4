//! One request through the simulated system: the SERVER span of each operation it reaches,
//! the CLIENT, PRODUCER and CONSUMER spans of its calls, the log lines its spans write, and
//! the request-duration measurements of every hop. Times nest as real ones do: a span ends
//! after its self time and its calls, one after the other.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use opentelemetry_semantic_conventions::attribute as sc;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};

use crate::otlp::{self, kv};
use crate::sim::{Simulation, SECOND};
use crate::topology::{CallSpec, Protocol, ServiceKind, ServiceSpec};

const MS: f64 = 1_000_000.0;
/// `SeverityNumber` of INFO and of ERROR (OpenTelemetry logs data model, "Field:
/// SeverityNumber": 9–12 INFO, 17–20 ERROR).
const SEVERITY_INFO: i32 = 9;
const SEVERITY_ERROR: i32 = loupe_model::semconv::SEVERITY_NUMBER_ERROR;
/// A call that gets no answer fails after this long.
const CLIENT_TIMEOUT: u64 = SECOND;
/// Deepest call chain followed (topologies are acyclic; this only bounds a pathological one).
const MAX_DEPTH: usize = 32;
/// Median milliseconds and spread of an operation a topology calls but does not list.
const UNKNOWN_OPERATION: (f64, f64) = (1.0, 0.3);

/// Where a span hangs in its trace.
#[derive(Clone, Copy)]
struct Context {
    trace_id: [u8; 16],
    parent: Option<[u8; 8]>,
    depth: usize,
}

/// How a served operation ended.
struct Served {
    end: u64,
    failed: bool,
}

impl Simulation {
    /// One request entering at operation `o` of service `s` at `start`.
    pub(crate) fn request(&mut self, s: usize, o: usize, start: u64) {
        let trace_id = self.next_id::<16>();
        let cx = Context {
            trace_id,
            parent: None,
            depth: 0,
        };
        // An entry with no serving pod is a request the load balancer refuses: no span.
        let _ = self.serve(s, o, cx, start, SpanKind::Server);
    }

    fn draw_ms(&mut self, median_ms: f64, sigma: f64) -> f64 {
        LogNormal::new(median_ms.max(1e-3).ln(), sigma.max(1e-6))
            .map_or(median_ms, |d| d.sample(&mut self.rng))
    }

    /// Picks a serving pod of `s` at `t`, if any.
    fn pick_pod(&mut self, s: usize, t: u64) -> Option<usize> {
        let serving: Vec<usize> = (0..self.pods.len())
            .filter(|&p| self.pods[p].service == s && self.serving(p, t))
            .collect();
        match serving.len() {
            0 => None,
            n => Some(serving[self.rng.random_range(0..n)]),
        }
    }

    /// Serves operation `o` of instrumented service `s`: `None` when no pod serves.
    fn serve(
        &mut self,
        s: usize,
        o: usize,
        cx: Context,
        start: u64,
        kind: SpanKind,
    ) -> Option<Served> {
        let pod = self.pick_pod(s, start)?;
        let topology = self.topology.clone();
        let op = &topology.services[s].operations[o];
        let impact = self.impact(pod, start);
        let self_ms =
            self.draw_ms(op.self_ms, op.sigma) * impact.latency_factor + impact.latency_add_ms;
        let self_ns = (self_ms * MS) as u64;
        let span_id = self.next_id::<8>();
        let inner = Context {
            trace_id: cx.trace_id,
            parent: Some(span_id),
            depth: cx.depth + 1,
        };
        let mut cursor = start + self_ns * 2 / 5;
        let mut failed_call: Option<String> = None;
        if cx.depth < MAX_DEPTH {
            for call in &op.calls {
                if !self.rng.random_bool(call.p.clamp(0.0, 1.0)) {
                    continue;
                }
                for _ in 0..call.n {
                    let (end, ok) = self.call(s, pod, call, inner, cursor);
                    cursor = end;
                    if !ok && !call.optional {
                        failed_call.get_or_insert_with(|| call.to.clone());
                    }
                }
            }
        }
        let rate = (op.error_rate + impact.error_rate).clamp(0.0, 1.0);
        let own_failure = self.rng.random_bool(rate);
        let end = cursor + self_ns - self_ns * 2 / 5;
        let failed = own_failure || failed_call.is_some();
        let spec = &topology.services[s];
        let mut attributes = server_attributes(spec.protocol, &op.name, failed);
        let mut events = Vec::new();
        let mut status = Status::default();
        if own_failure {
            let (ty, message) = exception(&spec.language, &op.name);
            events.push(Event {
                time_unix_nano: end,
                name: "exception".into(),
                attributes: vec![
                    kv(sc::EXCEPTION_TYPE, ty),
                    kv(sc::EXCEPTION_MESSAGE, &message),
                ],
                ..Default::default()
            });
            attributes.push(kv(sc::ERROR_TYPE, ty));
            status = Status {
                code: StatusCode::Error as i32,
                message: message.clone(),
            };
            self.log(
                pod,
                cx.trace_id,
                span_id,
                end,
                SEVERITY_ERROR,
                format!("{}: {message}", op.name),
            );
        } else if let Some(callee) = &failed_call {
            status = Status {
                code: StatusCode::Error as i32,
                message: format!("call to {callee} failed"),
            };
            attributes.push(kv(sc::ERROR_TYPE, "upstream_error"));
            self.log(
                pod,
                cx.trace_id,
                span_id,
                end,
                SEVERITY_ERROR,
                format!("request failed: call to {callee} failed"),
            );
        }
        if !op.logs.is_empty() && self.rng.random_bool(op.log_probability.clamp(0.0, 1.0)) {
            let template = &op.logs[self.rng.random_range(0..op.logs.len())];
            let line = self.fill(template, (end - start) as f64 / MS);
            self.log(
                pod,
                cx.trace_id,
                span_id,
                (start + end) / 2,
                SEVERITY_INFO,
                line,
            );
        }
        self.flag_evaluations(pod, s, cx.trace_id, span_id, start);
        let protocol = crate::metrics::server_protocol(spec);
        self.meters
            .server(pod, o, protocol, failed, (end - start) as f64 / MS);
        self.spans.entry(pod).or_default().push(Span {
            trace_id: cx.trace_id.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: cx.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: op.name.clone(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            events,
            status: Some(status),
            ..Default::default()
        });
        Some(Served { end, failed })
    }

    /// One call from pod `pod` of service `s`; returns when it ended and whether it succeeded.
    fn call(
        &mut self,
        s: usize,
        pod: usize,
        call: &CallSpec,
        cx: Context,
        start: u64,
    ) -> (u64, bool) {
        let topology = self.topology.clone();
        let Some((target, operation)) = call.to.split_once('/') else {
            return (start, true);
        };
        let Some(ts) = topology.services.iter().position(|x| x.name == target) else {
            return (start, true);
        };
        let spec = &topology.services[ts];
        let client_id = self.next_id::<8>();
        let inner = Context {
            trace_id: cx.trace_id,
            parent: Some(client_id),
            depth: cx.depth,
        };
        let network = (self.draw_ms(0.3, 0.3) * MS) as u64;
        let (end, ok, kind, name, attributes) = match spec.kind {
            ServiceKind::Service => {
                let o = spec
                    .operations
                    .iter()
                    .position(|x| x.name == operation)
                    .unwrap_or(0);
                let (end, ok, error) = if self.partitioned(s, ts, start) {
                    (start + CLIENT_TIMEOUT, false, "timeout")
                } else {
                    match self.serve(ts, o, inner, start + network / 2, SpanKind::Server) {
                        Some(sv) => (sv.end + network / 2, !sv.failed, "500"),
                        None => (start + network, false, "connection_refused"),
                    }
                };
                let mut attributes = client_attributes(spec.protocol, target, operation, ok);
                if !ok {
                    attributes.push(kv(sc::ERROR_TYPE, error));
                }
                self.meters
                    .client(pod, ts, spec.protocol, !ok, (end - start) as f64 / MS);
                let name = match spec.protocol {
                    Protocol::Grpc => operation.to_owned(),
                    Protocol::Http => operation.split(' ').next().unwrap_or("GET").to_owned(),
                };
                (end, ok, SpanKind::Client, name, attributes)
            }
            ServiceKind::Database | ServiceKind::Cache => {
                let (end, ok, attributes) = self.query(pod, ts, operation, start, network);
                (end, ok, SpanKind::Client, operation.to_owned(), attributes)
            }
            ServiceKind::Endpoint => {
                let (end, ok) = self.through_endpoint(ts, operation, inner, start, network);
                let mut attributes = endpoint_attributes(spec, operation, ok);
                if !ok {
                    attributes.push(kv(sc::ERROR_TYPE, "500"));
                }
                let protocol = crate::metrics::client_protocol(spec);
                self.meters
                    .client(pod, ts, protocol, !ok, (end - start) as f64 / MS);
                let name = match &spec.rpc_service {
                    Some(service) => format!("{service}.{operation}"),
                    None => operation.split(' ').next().unwrap_or("GET").to_owned(),
                };
                (end, ok, SpanKind::Client, name, attributes)
            }
            ServiceKind::Topic => {
                let end = start + network;
                let system = spec.system.clone().unwrap_or_else(|| "kafka".into());
                let attributes = vec![
                    kv(sc::MESSAGING_SYSTEM, system),
                    kv(sc::MESSAGING_DESTINATION_NAME, target),
                    kv(sc::MESSAGING_OPERATION_TYPE, "send"),
                    kv(sc::SERVER_ADDRESS, target),
                ];
                let protocol = crate::metrics::client_protocol(spec);
                self.meters
                    .client(pod, ts, protocol, false, (end - start) as f64 / MS);
                // Consumers read the message after the send, in their own time: they are
                // children of the PRODUCER span and do not delay the caller.
                for consumer in &spec.consumers {
                    if let Some((cs, co)) = topology.resolve(consumer) {
                        let lag = (self.draw_ms(5.0, 0.6) * MS) as u64;
                        let _ = self.serve(cs, co, inner, end + lag, SpanKind::Consumer);
                    }
                }
                (
                    end,
                    true,
                    SpanKind::Producer,
                    format!("{target} publish"),
                    attributes,
                )
            }
        };
        let status = if ok {
            Status::default()
        } else {
            Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            }
        };
        self.spans.entry(pod).or_default().push(Span {
            trace_id: cx.trace_id.to_vec(),
            span_id: client_id.to_vec(),
            parent_span_id: cx.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: Some(status),
            ..Default::default()
        });
        (end, ok)
    }

    /// A query from pod `pod` to database or cache `ts`: its time (the operation's, shaped by
    /// the faults on it, plus the network), whether it succeeded, and its client span's
    /// attributes; the caller's client metric records it.
    fn query(
        &mut self,
        pod: usize,
        ts: usize,
        operation: &str,
        start: u64,
        network: u64,
    ) -> (u64, bool, Vec<KeyValue>) {
        let topology = self.topology.clone();
        let spec = &topology.services[ts];
        let o = spec.operations.iter().find(|x| x.name == operation);
        let (median, sigma) = o.map_or(UNKNOWN_OPERATION, |o| (o.self_ms, o.sigma));
        let impact = self.impact_on_backend(ts, start);
        let ms = self.draw_ms(median, sigma) * impact.latency_factor + impact.latency_add_ms;
        let ok = !self.rng.random_bool(impact.error_rate.clamp(0.0, 1.0));
        let end = start + network + (ms * MS) as u64;
        let mut attributes = database_attributes(spec, Some(operation));
        if !ok {
            attributes.push(kv(sc::ERROR_TYPE, "timeout"));
        }
        let protocol = crate::metrics::client_protocol(spec);
        self.meters
            .client(pod, ts, protocol, !ok, (end - start) as f64 / MS);
        (end, ok, attributes)
    }

    /// A call through endpoint `ts` (a load balancer, an API gateway, a cloud API): its own
    /// time, shaped by the faults on it, then the services its operation forwards to, in
    /// order, each once (a validated topology forwards only to instrumented services), until
    /// one fails; returns when the caller has its answer and whether it succeeded. The endpoint
    /// writes nothing: the services behind it see the caller's context.
    fn through_endpoint(
        &mut self,
        ts: usize,
        operation: &str,
        inner: Context,
        start: u64,
        network: u64,
    ) -> (u64, bool) {
        let topology = self.topology.clone();
        let spec = &topology.services[ts];
        let op = spec.operations.iter().find(|x| x.name == operation);
        let (median, sigma) = op.map_or(UNKNOWN_OPERATION, |o| (o.self_ms, o.sigma));
        let impact = self.impact_on_backend(ts, start);
        let ms = self.draw_ms(median, sigma) * impact.latency_factor + impact.latency_add_ms;
        let mut ok = !self.rng.random_bool(impact.error_rate.clamp(0.0, 1.0));
        let mut t = start + network / 2 + (ms * MS) as u64;
        for call in op.map(|o| o.calls.as_slice()).unwrap_or_default() {
            if !ok {
                break;
            }
            let Some((cs, co)) = topology.resolve(&call.to) else {
                continue;
            };
            if topology.services[cs].kind != ServiceKind::Service {
                continue;
            }
            match self.serve(cs, co, inner, t, SpanKind::Server) {
                Some(sv) => {
                    t = sv.end;
                    ok = !sv.failed;
                }
                None => ok = false,
            }
        }
        (t + network / 2, ok)
    }

    /// OpenFeature `feature_flag.evaluation` events of the flags service `s` evaluates, for
    /// one request in five (an evaluation hook that logs a sample).
    fn flag_evaluations(&mut self, pod: usize, s: usize, trace: [u8; 16], span: [u8; 8], t: u64) {
        let topology = self.topology.clone();
        for flag in topology
            .flags
            .iter()
            .filter(|f| topology.services[s].name == f.service)
        {
            if !self.rng.random_bool(0.2) {
                continue;
            }
            let variant = self
                .flags
                .get(&flag.key)
                .cloned()
                .unwrap_or_else(|| "off".into());
            self.logs.entry(pod).or_default().push(LogRecord {
                time_unix_nano: t,
                observed_time_unix_nano: t,
                severity_number: SEVERITY_INFO,
                severity_text: "INFO".into(),
                event_name: loupe_model::change::keys::FEATURE_FLAG_EVALUATION.into(),
                trace_id: trace.to_vec(),
                span_id: span.to_vec(),
                attributes: vec![
                    kv(sc::FEATURE_FLAG_KEY, &flag.key),
                    kv(sc::FEATURE_FLAG_RESULT_VARIANT, variant),
                    kv(sc::FEATURE_FLAG_PROVIDER_NAME, "flagd"),
                ],
                ..Default::default()
            });
        }
    }

    fn log(
        &mut self,
        pod: usize,
        trace: [u8; 16],
        span: [u8; 8],
        t: u64,
        severity: i32,
        body: String,
    ) {
        let text = if severity >= SEVERITY_ERROR {
            "ERROR"
        } else {
            "INFO"
        };
        self.logs.entry(pod).or_default().push(LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t,
            severity_number: severity,
            severity_text: text.into(),
            body: otlp::text(body),
            trace_id: trace.to_vec(),
            span_id: span.to_vec(),
            ..Default::default()
        });
    }

    /// A template with its placeholders filled.
    fn fill(&mut self, template: &str, ms: f64) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("{n}") {
                out.push_str(&self.rng.random_range(1..100).to_string());
                rest = t;
            } else if let Some(t) = tail.strip_prefix("{id}") {
                out.push_str(&hex::encode(self.rng.random::<[u8; 4]>()));
                rest = t;
            } else if let Some(t) = tail.strip_prefix("{ms}") {
                out.push_str(&format!("{ms:.1}"));
                rest = t;
            } else {
                out.push('{');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }
}

/// Attributes of a SERVER span by protocol (HTTP and RPC semantic conventions).
// The gRPC instrumentations in use (and the OpenTelemetry Demo's) still emit the RPC
// conventions before their 1.37 renames (`rpc.system`, `rpc.grpc.status_code`, durations in ms).
#[allow(deprecated)]
pub(crate) fn server_attributes(
    protocol: Protocol,
    operation: &str,
    failed: bool,
) -> Vec<KeyValue> {
    match protocol {
        Protocol::Http => {
            let (method, route) = operation.split_once(' ').unwrap_or(("GET", operation));
            vec![
                kv(sc::HTTP_REQUEST_METHOD, method),
                kv(sc::HTTP_ROUTE, route),
                kv(
                    sc::HTTP_RESPONSE_STATUS_CODE,
                    if failed { 500_i64 } else { 200 },
                ),
            ]
        }
        Protocol::Grpc => {
            let (service, method) = operation.rsplit_once('/').unwrap_or(("", operation));
            vec![
                kv(sc::RPC_SYSTEM, "grpc"),
                kv(sc::RPC_SERVICE, service),
                kv(sc::RPC_METHOD, method),
                kv(sc::RPC_GRPC_STATUS_CODE, if failed { 13_i64 } else { 0 }),
            ]
        }
    }
}

/// The attributes that name a database or managed table in its callers' client spans and
/// metrics (database client semantic conventions): `db.system.name`, then `db.namespace`, or
/// for a key-value table (DynamoDB has no namespace) `db.collection.name`, and
/// `server.address`; a span's also `db.operation.name` and `db.query.summary` of its
/// `operation`.
pub(crate) fn database_attributes(spec: &ServiceSpec, operation: Option<&str>) -> Vec<KeyValue> {
    let system = spec.system.clone().unwrap_or_else(|| "other_sql".into());
    let scope = if system == "aws.dynamodb" {
        sc::DB_COLLECTION_NAME
    } else {
        sc::DB_NAMESPACE
    };
    let mut attributes = vec![kv(sc::DB_SYSTEM_NAME, system), kv(scope, &spec.name)];
    if let Some(operation) = operation {
        let verb = operation.split(' ').next().unwrap_or(operation);
        attributes.push(kv(sc::DB_OPERATION_NAME, verb));
        attributes.push(kv(sc::DB_QUERY_SUMMARY, operation));
    }
    attributes.push(kv(
        sc::SERVER_ADDRESS,
        spec.address.as_ref().unwrap_or(&spec.name),
    ));
    attributes
}

/// The attributes that name an endpoint in its callers' client spans and metrics: a cloud
/// API's as the cloud SDK's instrumentation writes them (`rpc.system` = `aws-api`,
/// `rpc.service`, `rpc.method`), an HTTP endpoint's method and status; both with
/// `server.address`.
// The AWS SDK instrumentations still emit the RPC conventions before their 1.37 renames.
#[allow(deprecated)]
pub(crate) fn endpoint_attributes(spec: &ServiceSpec, operation: &str, ok: bool) -> Vec<KeyValue> {
    let address = kv(
        sc::SERVER_ADDRESS,
        spec.address.as_ref().unwrap_or(&spec.name),
    );
    match &spec.rpc_service {
        Some(service) => vec![
            kv(sc::RPC_SYSTEM, loupe_model::semconv::RPC_SYSTEM_AWS_API),
            kv(sc::RPC_SERVICE, service),
            kv(sc::RPC_METHOD, operation),
            address,
        ],
        None => {
            let method = operation.split(' ').next().unwrap_or("GET");
            vec![
                kv(sc::HTTP_REQUEST_METHOD, method),
                kv(
                    sc::HTTP_RESPONSE_STATUS_CODE,
                    if ok { 200_i64 } else { 503 },
                ),
                address,
            ]
        }
    }
}

/// Attributes of a CLIENT span to an instrumented service.
// The gRPC instrumentations in use (and the OpenTelemetry Demo's) still emit the RPC
// conventions before their 1.37 renames (`rpc.system`, `rpc.grpc.status_code`, durations in ms).
#[allow(deprecated)]
fn client_attributes(protocol: Protocol, target: &str, operation: &str, ok: bool) -> Vec<KeyValue> {
    let mut out = vec![kv(sc::SERVER_ADDRESS, target)];
    match protocol {
        Protocol::Http => {
            let (method, route) = operation.split_once(' ').unwrap_or(("GET", operation));
            out.push(kv(sc::SERVER_PORT, 8080_i64));
            out.push(kv(sc::HTTP_REQUEST_METHOD, method));
            out.push(kv(sc::URL_PATH, route));
            if ok {
                out.push(kv(sc::HTTP_RESPONSE_STATUS_CODE, 200_i64));
            }
        }
        Protocol::Grpc => {
            let (service, method) = operation.rsplit_once('/').unwrap_or(("", operation));
            out.push(kv(sc::SERVER_PORT, 8080_i64));
            out.push(kv(sc::RPC_SYSTEM, "grpc"));
            out.push(kv(sc::RPC_SERVICE, service));
            out.push(kv(sc::RPC_METHOD, method));
        }
    }
    out
}

/// An exception type and message as a service in `language` would raise it.
fn exception(language: &str, operation: &str) -> (&'static str, String) {
    let ty = match language {
        "java" | "kotlin" => "java.lang.IllegalStateException",
        "dotnet" => "System.InvalidOperationException",
        "python" => "RuntimeError",
        "nodejs" => "Error",
        "ruby" => "StandardError",
        "php" => "RuntimeException",
        "rust" => "anyhow::Error",
        _ => "*errors.errorString",
    };
    (ty, format!("{operation} failed: internal error"))
}
