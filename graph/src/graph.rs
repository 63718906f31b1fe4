//! The graph itself: entity and relation storage on a petgraph `StableDiGraph`, and the
//! application of decoded telemetry batches.

use std::collections::{BTreeMap, HashMap};

use loupe_model::{PointValue, ResourceLogs, ResourceMetrics, ResourceSpans, SpanKind, StatusCode};
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};

use crate::join::{JoinBuffer, JoinConfig, JoinEvent, SpanFacts};
use crate::span_logs::SpanLogIndex;
use crate::stats::{GaugeStats, LogStats, RedStats};

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A logical service (`service.name`).
    Service,
    /// A service's operation (span name).
    Operation,
    /// A Kubernetes pod (`k8s.pod.name`).
    Pod,
    /// A host (`k8s.node.name`, else `host.name`).
    Node,
}

impl EntityKind {
    /// The lowercase name used in ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Operation => "operation",
            Self::Pod => "pod",
            Self::Node => "node",
        }
    }
}

/// What a relation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationKind {
    /// Caller → callee, from a parent span and a child span of different services.
    Calls,
    /// Service → pod, pod → node.
    RunsOn,
    /// Operation → service.
    PartOf,
}

impl RelationKind {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calls => "calls",
            Self::RunsOn => "runs_on",
            Self::PartOf => "part_of",
        }
    }
}

/// Settings of the graph.
#[derive(Debug, Clone, Copy)]
pub struct GraphConfig {
    /// Width of a statistics bucket, nanoseconds (default 10 s).
    pub bucket_nanos: u64,
    /// Bounds of the span join buffer.
    pub join: JoinConfig,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            bucket_nanos: 10 * 1_000_000_000,
            join: JoinConfig::default(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entity {
    pub kind: EntityKind,
    pub name: String,
    /// The owning service of an operation or pod.
    pub service: Option<String>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub red: BTreeMap<u64, RedStats>,
    pub logs: BTreeMap<u64, LogStats>,
    pub gauges: BTreeMap<String, BTreeMap<u64, GaugeStats>>,
}

#[derive(Debug)]
pub(crate) struct Relation {
    pub kind: RelationKind,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Observations per bucket (spans, log records or points that showed the relation).
    pub seen: BTreeMap<u64, u64>,
    pub red: BTreeMap<u64, RedStats>,
}

/// The temporal knowledge graph. Not thread-safe by itself; the binary guards it with a lock.
pub struct KnowledgeGraph {
    pub(crate) config: GraphConfig,
    pub(crate) graph: StableDiGraph<Entity, Relation>,
    /// Entities by kind and name (operations are found through `operations`).
    entities: HashMap<EntityKind, HashMap<String, NodeIndex>>,
    /// Operations by service and span name, so the per-span lookup allocates nothing.
    operations: HashMap<NodeIndex, HashMap<String, NodeIndex>>,
    relations: HashMap<(NodeIndex, NodeIndex, RelationKind), EdgeIndex>,
    join: JoinBuffer,
    span_logs: SpanLogIndex,
    events: Vec<JoinEvent>,
}

impl KnowledgeGraph {
    /// An empty graph.
    pub fn new(config: GraphConfig) -> Self {
        Self {
            config,
            graph: StableDiGraph::new(),
            entities: HashMap::new(),
            operations: HashMap::new(),
            relations: HashMap::new(),
            join: JoinBuffer::new(config.join),
            span_logs: SpanLogIndex::new(config.join.capacity),
            events: Vec::new(),
        }
    }

    /// The graph's settings.
    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    pub(crate) fn bucket(&self, time_unix_nano: u64) -> u64 {
        time_unix_nano / self.config.bucket_nanos
    }

    fn add_entity(
        &mut self,
        kind: EntityKind,
        name: String,
        service: Option<&str>,
        t: u64,
    ) -> NodeIndex {
        self.graph.add_node(Entity {
            kind,
            name,
            service: service.map(str::to_owned),
            first_seen: t,
            last_seen: t,
            red: BTreeMap::new(),
            logs: BTreeMap::new(),
            gauges: BTreeMap::new(),
        })
    }

    /// Widens an entity's seen interval to `t`.
    fn touch(&mut self, index: NodeIndex, t: u64) -> NodeIndex {
        let e = &mut self.graph[index];
        e.first_seen = e.first_seen.min(t);
        e.last_seen = e.last_seen.max(t);
        index
    }

    fn entity(&mut self, kind: EntityKind, name: &str, service: Option<&str>, t: u64) -> NodeIndex {
        let existing = self.entities.get(&kind).and_then(|m| m.get(name)).copied();
        let index = match existing {
            Some(i) => i,
            None => {
                let i = self.add_entity(kind, name.to_owned(), service, t);
                self.entities
                    .entry(kind)
                    .or_default()
                    .insert(name.to_owned(), i);
                i
            }
        };
        self.touch(index, t)
    }

    /// The operation `span_name` of `service`, created (named `<service> <span name>`, with its
    /// `part_of` relation) on first sight.
    fn operation(
        &mut self,
        service: NodeIndex,
        service_name: &str,
        span_name: &str,
        t: u64,
    ) -> NodeIndex {
        let existing = self
            .operations
            .get(&service)
            .and_then(|m| m.get(span_name))
            .copied();
        let index = match existing {
            Some(i) => i,
            None => {
                let name = format!("{service_name} {span_name}");
                let i = self.add_entity(EntityKind::Operation, name, Some(service_name), t);
                self.operations
                    .entry(service)
                    .or_default()
                    .insert(span_name.to_owned(), i);
                i
            }
        };
        self.relation(index, service, RelationKind::PartOf, t);
        self.touch(index, t)
    }

    fn relation(&mut self, a: NodeIndex, b: NodeIndex, kind: RelationKind, t: u64) -> EdgeIndex {
        let index = *self.relations.entry((a, b, kind)).or_insert_with(|| {
            self.graph.add_edge(
                a,
                b,
                Relation {
                    kind,
                    first_seen: t,
                    last_seen: t,
                    seen: BTreeMap::new(),
                    red: BTreeMap::new(),
                },
            )
        });
        let bucket = t / self.config.bucket_nanos;
        let r = &mut self.graph[index];
        r.first_seen = r.first_seen.min(t);
        r.last_seen = r.last_seen.max(t);
        *r.seen.entry(bucket).or_default() += 1;
        index
    }

    /// Resource entities: the service, and its pod and node when the resource names them, with
    /// `runs_on` relations observed at `t`.
    fn resource_entities(
        &mut self,
        resource: &loupe_model::Resource,
        t: u64,
    ) -> (NodeIndex, Option<NodeIndex>) {
        let service_name = resource.service_name().to_owned();
        let service = self.entity(EntityKind::Service, &service_name, None, t);
        let pod = resource
            .pod_name()
            .map(|p| self.entity(EntityKind::Pod, p, Some(&service_name), t));
        let node = resource
            .node_name()
            .map(|n| self.entity(EntityKind::Node, n, None, t));
        match (pod, node) {
            (Some(p), Some(n)) => {
                self.relation(service, p, RelationKind::RunsOn, t);
                self.relation(p, n, RelationKind::RunsOn, t);
            }
            (Some(p), None) => {
                self.relation(service, p, RelationKind::RunsOn, t);
            }
            (None, Some(n)) => {
                self.relation(service, n, RelationKind::RunsOn, t);
            }
            (None, None) => {}
        }
        (service, pod)
    }

    /// Applies decoded spans: entities, RED per bucket, and parent/child joins.
    pub fn apply_spans(&mut self, batch: &[ResourceSpans]) {
        for rs in batch {
            let Some(first) = rs.spans.first() else {
                continue;
            };
            let (service, pod) = self.resource_entities(&rs.resource, first.start_time_unix_nano);
            let service_name = rs.resource.service_name().to_owned();
            for span in &rs.spans {
                let t = span.start_time_unix_nano;
                let operation = self.operation(service, &service_name, &span.name, t);
                let error = span.status == StatusCode::Error;
                let bucket = self.bucket(t);
                for index in [Some(service), Some(operation), pod].into_iter().flatten() {
                    let e = &mut self.graph[index];
                    e.last_seen = e.last_seen.max(span.end_time_unix_nano);
                    let red = e.red.entry(bucket).or_default();
                    red.calls += 1;
                    red.errors += u64::from(error);
                    red.root_calls += u64::from(span.parent_span_id.is_none());
                    red.duration.add_nanos(span.duration_nano());
                }
                let facts = SpanFacts {
                    service: service.index(),
                    operation: operation.index(),
                    start: t,
                    end: span.end_time_unix_nano,
                    error,
                    client: matches!(span.kind, SpanKind::Client | SpanKind::Producer),
                };
                for (bucket, error) in self
                    .span_logs
                    .span((span.trace_id, span.span_id), operation.index())
                {
                    self.count_log(operation, bucket, error);
                }
                self.join.insert(
                    span.trace_id,
                    span.span_id,
                    span.parent_span_id,
                    facts,
                    &mut self.events,
                );
            }
        }
        self.join.expire(&mut self.events);
        self.drain_join_events();
    }

    /// Lets out of the join buffer the spans received more than `idle_nanos` before `now`
    /// (receive time, unix nanoseconds from the caller's clock). A server calls this about once
    /// a second so the last spans of a quiet stream get their self time.
    pub fn expire_idle(&mut self, now: u64, idle_nanos: u64) {
        self.join.expire_idle(now, idle_nanos, &mut self.events);
        self.drain_join_events();
    }

    /// Lets every span out of the join buffer, finalizing self times. Call at the end of a
    /// replay or evaluation case; a live server relies on expiry instead.
    pub fn flush(&mut self) {
        self.join.flush(&mut self.events);
        self.drain_join_events();
    }

    fn drain_join_events(&mut self) {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            match event {
                JoinEvent::Link { parent, child } if parent.service != child.service => {
                    let t = child.start;
                    let bucket = self.bucket(t);
                    let pairs = [
                        (parent.service, child.service),
                        (parent.operation, child.operation),
                    ];
                    for (a, b) in pairs {
                        let e = self.relation(
                            NodeIndex::new(a),
                            NodeIndex::new(b),
                            RelationKind::Calls,
                            t,
                        );
                        let red = self.graph[e].red.entry(bucket).or_default();
                        red.calls += 1;
                        red.errors += u64::from(child.error);
                        red.duration.add_nanos(child.end - child.start);
                    }
                }
                JoinEvent::Link { .. } => {}
                JoinEvent::VisitSelfTime {
                    entry,
                    self_time_nanos,
                } => {
                    let bucket = self.bucket(entry.start);
                    for i in [entry.service, entry.operation] {
                        let red = self.graph[NodeIndex::new(i)].red.entry(bucket).or_default();
                        red.self_time.add_nanos(*self_time_nanos);
                    }
                }
                JoinEvent::CallGap {
                    client,
                    callee,
                    gap_nanos,
                } => {
                    let bucket = self.bucket(client.start);
                    let key = (
                        NodeIndex::new(client.service),
                        NodeIndex::new(*callee),
                        RelationKind::Calls,
                    );
                    if let Some(&e) = self.relations.get(&key) {
                        self.graph[e]
                            .red
                            .entry(bucket)
                            .or_default()
                            .self_time
                            .add_nanos(*gap_nanos);
                    }
                }
            }
        }
        self.events = events;
        self.events.clear();
    }

    /// Applies decoded log records: record and error-record counts per bucket on the service and
    /// the pod.
    pub fn apply_logs(&mut self, batch: &[ResourceLogs]) {
        for rl in batch {
            let Some(first) = rl.records.first() else {
                continue;
            };
            let (service, pod) = self.resource_entities(&rl.resource, first.time_unix_nano);
            for record in &rl.records {
                let bucket = self.bucket(record.time_unix_nano);
                let error = record.is_error();
                for index in [Some(service), pod].into_iter().flatten() {
                    let e = &mut self.graph[index];
                    e.last_seen = e.last_seen.max(record.time_unix_nano);
                    let logs = e.logs.entry(bucket).or_default();
                    logs.records += 1;
                    logs.error_records += u64::from(error);
                }
                if let (Some(trace), Some(span)) = (record.trace_id, record.span_id) {
                    if let Some(operation) = self.span_logs.log((trace, span), bucket, error) {
                        self.count_log(NodeIndex::new(operation), bucket, error);
                    }
                }
            }
        }
    }

    /// Counts a log record on the operation whose span wrote it.
    fn count_log(&mut self, operation: NodeIndex, bucket: u64, error: bool) {
        let logs = self.graph[operation].logs.entry(bucket).or_default();
        logs.records += 1;
        logs.error_records += u64::from(error);
    }

    /// Applies decoded metric points: per bucket means of each metric on the pod when the
    /// resource names one, else on the service. Distributions contribute their mean.
    pub fn apply_metrics(&mut self, batch: &[ResourceMetrics]) {
        for rm in batch {
            let Some(first) = rm.points.first() else {
                continue;
            };
            let (service, pod) = self.resource_entities(&rm.resource, first.time_unix_nano);
            let target = pod.unwrap_or(service);
            for point in &rm.points {
                let value = match point.value {
                    PointValue::Number(v) => v,
                    PointValue::Distribution { count: 0, .. } => continue,
                    PointValue::Distribution { count, sum } => sum / count as f64,
                };
                if !value.is_finite() {
                    continue;
                }
                let bucket = self.bucket(point.time_unix_nano);
                let e = &mut self.graph[target];
                e.last_seen = e.last_seen.max(point.time_unix_nano);
                let g = e
                    .gauges
                    .entry(point.metric_name.clone())
                    .or_default()
                    .entry(bucket)
                    .or_default();
                g.max = if g.count == 0 {
                    value
                } else {
                    g.max.max(value)
                };
                g.sum += value;
                g.count += 1;
            }
        }
    }

    /// Number of entities.
    pub fn entity_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Number of spans waiting in the join buffer.
    pub fn pending_spans(&self) -> usize {
        self.join.len()
    }

    /// Number of relations.
    pub fn relation_count(&self) -> usize {
        self.graph.edge_count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loupe_model::{AttributeValue, Attributes, Resource, Span, SpanId, TraceId};

    use super::*;

    fn resource(service: &str, pod: &str) -> Arc<Resource> {
        let attrs = [
            ("service.name", service),
            ("k8s.pod.name", pod),
            ("k8s.node.name", "node-1"),
        ];
        Arc::new(Resource {
            attributes: Attributes(
                attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), AttributeValue::String(v.to_string())))
                    .collect(),
            ),
        })
    }

    fn span(trace: u8, id: u8, parent: Option<u8>, start: u64, end: u64, error: bool) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: format!("op{id}"),
            kind: SpanKind::Server,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            attributes: Attributes::default(),
        }
    }

    #[test]
    fn window_lookups_find_services_edges_and_operations_after_merging() {
        let mut g = KnowledgeGraph::new(GraphConfig::default());
        let second = 1_000_000_000;
        for (trace, t) in [(1u8, 0), (2, 20 * second)] {
            g.apply_spans(&[ResourceSpans {
                resource: resource("payment", "payment-1"),
                spans: vec![span(trace, 2, Some(1), t + 1, t + 2, false)],
            }]);
            g.apply_spans(&[ResourceSpans {
                resource: resource(if trace == 1 { "checkout" } else { "cart" }, "x-1"),
                spans: vec![span(trace, 1, None, t, t + 3, false)],
            }]);
        }
        g.flush();
        let mut merged = g.window(0, 10 * second);
        merged.merge_from(&g.window(20 * second, 30 * second));
        let names: Vec<&str> = merged.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cart", "checkout", "payment"], "kept sorted");
        assert_eq!(merged.service("payment").map(|s| s.red.calls), Some(2));
        assert_eq!(merged.edge("cart", "payment").map(|e| e.red.calls), Some(1));
        assert!(merged.edge("payment", "cart").is_none());
        let ops: Vec<&str> = merged
            .operations_of("payment")
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(ops, ["op2"]);
        assert_eq!(
            merged.operation("cart", "op1").map(|o| o.red.calls),
            Some(1)
        );
        assert!(merged.operation("cart", "op2").is_none());
    }

    #[test]
    fn calls_edges_join_across_batches_in_any_order() {
        let mut g = KnowledgeGraph::new(GraphConfig::default());
        for trace in 1..=3u8 {
            // The payment span arrives first, in its own request; frontend's root arrives last.
            let batches = [
                vec![ResourceSpans {
                    resource: resource("payment", "payment-1"),
                    spans: vec![span(trace, 3, Some(2), 20, 40, trace == 3)],
                }],
                vec![ResourceSpans {
                    resource: resource("checkout", "checkout-1"),
                    spans: vec![span(trace, 2, Some(1), 10, 60, false)],
                }],
                vec![ResourceSpans {
                    resource: resource("frontend", "frontend-1"),
                    spans: vec![span(trace, 1, None, 0, 100, false)],
                }],
            ];
            batches.iter().for_each(|b| g.apply_spans(b));
        }
        g.flush();
        let snapshot = g.snapshot(0, 20_000_000_000);
        let calls: Vec<(&str, &str, u64, u64)> = snapshot
            .edges
            .iter()
            .filter(|e| e.kind == "calls" && e.source.starts_with("service:"))
            .map(|e| {
                (
                    e.source.as_str(),
                    e.target.as_str(),
                    e.red.calls,
                    e.red.errors,
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("service:checkout", "service:payment", 3, 1),
                ("service:frontend", "service:checkout", 3, 0)
            ]
        );
        let window = g.window(0, 20_000_000_000);
        let checkout = window
            .services
            .iter()
            .find(|s| s.name == "checkout")
            .unwrap();
        // checkout lasts 50 ns of which payment covers 20.
        assert!((checkout.red.self_time.mean_seconds().unwrap() - 30e-9).abs() < 1e-9);
        assert!(snapshot.edges.iter().any(|e| e.kind == "runs_on"
            && e.source == "pod:payment-1"
            && e.target == "node:node-1"));
    }
}
