//! The graph itself: entity and relation storage on a petgraph `StableDiGraph`, and the
//! application of decoded telemetry batches.

use std::collections::{BTreeMap, HashMap};

use loupe_model::time::{SharedClock, SystemClock};
use loupe_model::{PointValue, ResourceLogs, ResourceMetrics, ResourceSpans, SpanKind, StatusCode};
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};

use crate::call_paths::{transitions, CallPaths, PathSpan};
use crate::join::{JoinBuffer, JoinConfig, JoinEvent, SpanFacts};
use crate::request_metrics::{Callee, CumulativeState, Side};
use crate::series::{Retention, Series};
use crate::span_logs::SpanLogIndex;
use crate::stats::{GaugeStats, LogStats, RedStats};
use crate::templates::{template_of, Tally, TemplateCounts};
use crate::temporal::{Validity, Widths};
use crate::traces::{ClosedTrace, TraceStats, TraceTable};

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A logical service (`service.name`).
    Service,
    /// A service's operation (span name).
    Operation,
    /// One running instance of a service (`service.instance.id`).
    ServiceInstance,
    /// A Kubernetes pod (`k8s.pod.uid`, else namespace and `k8s.pod.name`).
    Pod,
    /// A host (`k8s.node.name`, else `host.name`).
    Node,
    /// A Kubernetes namespace (`k8s.namespace.name`).
    Namespace,
    /// A Kubernetes workload: deployment, statefulset, daemonset, job, cronjob (`k8s.<kind>.name`).
    Workload,
    /// A database (`db.system.name`, `db.namespace`, `server.address` of client spans).
    Database,
    /// A messaging destination (`messaging.system`, `messaging.destination.name`).
    MessagingDestination,
    /// An uninstrumented endpoint (`peer.service` or `server.address` of client spans).
    External,
    /// A deployment, configuration, feature-flag or scaling change.
    Change,
    /// An event such as a Kubernetes event.
    Event,
}

impl EntityKind {
    /// The lowercase name used in ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Operation => "operation",
            Self::ServiceInstance => "service_instance",
            Self::Pod => "pod",
            Self::Node => "node",
            Self::Namespace => "namespace",
            Self::Workload => "workload",
            Self::Database => "database",
            Self::MessagingDestination => "messaging_destination",
            Self::External => "external",
            Self::Change => "change",
            Self::Event => "event",
        }
    }
}

/// What a relation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationKind {
    /// Caller → callee, from a parent span and a child span of different services.
    Calls,
    /// Service → pod, instance → pod, pod → node.
    RunsOn,
    /// Operation → service, instance → service, pod → workload → namespace.
    PartOf,
    /// Service → database.
    Queries,
    /// Service → messaging destination.
    Publishes,
    /// Service → messaging destination it reads from.
    Consumes,
    /// Change → the service (or workload) it changed.
    Changed,
    /// Event → the entity it is about.
    Affects,
}

impl RelationKind {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calls => "calls",
            Self::RunsOn => "runs_on",
            Self::PartOf => "part_of",
            Self::Queries => "queries",
            Self::Publishes => "publishes",
            Self::Consumes => "consumes",
            Self::Changed => "changed",
            Self::Affects => "affects",
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
    /// How long an entity or relation stays valid after its last observation's bucket,
    /// nanoseconds (default 5 min): telemetry is sampled, so silence shorter than this is not
    /// absence.
    pub liveness_nanos: u64,
    /// How long statistics are kept at 10 s, 1 min and 10 min resolution behind the newest
    /// data (default 1 h, 5 h more, 30 days more).
    pub retention: Retention,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            bucket_nanos: 10 * 1_000_000_000,
            join: JoinConfig::default(),
            liveness_nanos: 5 * 60 * 1_000_000_000,
            retention: Retention::default(),
        }
    }
}

impl GraphConfig {
    /// The widths validity is read with.
    pub(crate) fn widths(&self) -> Widths {
        Widths {
            bucket: self.bucket_nanos,
            liveness: self.liveness_nanos,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entity {
    pub kind: EntityKind,
    /// Identity within the kind (the id is `kind:name`).
    pub name: String,
    /// A human name when it differs from the identity (a pod's name without its uid).
    pub display: Option<String>,
    /// The owning service of an operation, instance or pod.
    pub service: Option<String>,
    /// Valid and record time of the entity's observations.
    pub validity: Validity,
    /// A service's `service.version`s: first and last valid time each was seen.
    pub versions: BTreeMap<String, (u64, u64)>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub red: Series<RedStats>,
    /// A service's RED figures from its server-side request-duration metrics (see
    /// [`crate::request_metrics`]), read where it has no spans.
    pub metric_red: Series<RedStats>,
    pub logs: Series<LogStats>,
    /// An operation's spans per log template (see [`crate::templates`]).
    pub templates: Series<TemplateCounts>,
    /// An operation's spans per transition of their call paths (see [`crate::call_paths`]).
    pub call_paths: Series<CallPaths>,
    /// A service's traces: those that passed through it (see [`crate::traces`]).
    pub traces: Series<TraceStats>,
    pub gauges: BTreeMap<String, Series<GaugeStats>>,
}

#[derive(Debug)]
pub(crate) struct Relation {
    pub kind: RelationKind,
    /// Valid and record time of the relation's observations.
    pub validity: Validity,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Observations per bucket (spans, log records or points that showed the relation).
    pub seen: Series<u64>,
    pub red: Series<RedStats>,
    /// A `calls` relation's RED figures from the caller's client-side request-duration
    /// metrics, read where it has no spans.
    pub metric_red: Series<RedStats>,
}

/// The temporal knowledge graph. Not thread-safe by itself; the binary guards it with a lock.
pub struct KnowledgeGraph {
    pub(crate) config: GraphConfig,
    pub(crate) graph: StableDiGraph<Entity, Relation>,
    /// Entities by kind and name (operations are found through `operations`).
    pub(crate) entities: HashMap<EntityKind, HashMap<String, NodeIndex>>,
    /// Operations by service and span name, so the per-span lookup allocates nothing.
    operations: HashMap<NodeIndex, HashMap<String, NodeIndex>>,
    relations: HashMap<(NodeIndex, NodeIndex, RelationKind), EdgeIndex>,
    join: JoinBuffer,
    /// Whole traces being assembled, for the trace spectrum.
    trace_table: TraceTable,
    closed_traces: Vec<ClosedTrace>,
    /// The call-path transitions of the trace being counted (kept to reuse its memory).
    path_scratch: Vec<(u32, u64, (u32, u32))>,
    /// Every trace, per bucket of its start.
    pub(crate) all_traces: Series<TraceStats>,
    span_logs: SpanLogIndex,
    events: Vec<JoinEvent>,
    /// The record-time clock.
    clock: SharedClock,
    /// Record time of the batch being applied.
    pub(crate) recorded: u64,
    /// A record time that stands in for the clock (replaying a log of what was learned when).
    record_time: Option<u64>,
    /// The newest pod entity of each `namespace/name`, to end a pod replaced under its name.
    pub(crate) pods_by_name: HashMap<String, NodeIndex>,
    /// Changes and events in arrival order.
    pub(crate) change_log: Vec<crate::changes::ChangeRecord>,
    /// `(source, external id)` → index in `change_log`, to drop repeats.
    pub(crate) change_ids: HashMap<(String, String), usize>,
    /// The newest 10-second bucket with data, and the one at the last compaction.
    newest_bucket: u64,
    compacted_bucket: u64,
    /// Peers named by client spans (`name`, is a service name), numbered for span facts.
    peers: Vec<(String, bool)>,
    peer_ids: HashMap<(String, bool), usize>,
    /// The last variant evaluated per service and flag, and when.
    pub(crate) flags: HashMap<(NodeIndex, String), (String, u64)>,
    /// The previous point of each cumulative request-duration series.
    request_metrics: CumulativeState,
}

impl KnowledgeGraph {
    /// An empty graph whose record time is the system clock.
    pub fn new(config: GraphConfig) -> Self {
        Self::with_clock(config, std::sync::Arc::new(SystemClock))
    }

    /// An empty graph whose record time (when loupe learned a fact) comes from `clock`.
    pub fn with_clock(config: GraphConfig, clock: SharedClock) -> Self {
        Self {
            config,
            graph: StableDiGraph::new(),
            entities: HashMap::new(),
            operations: HashMap::new(),
            relations: HashMap::new(),
            join: JoinBuffer::new(config.join),
            trace_table: TraceTable::new(config.join.capacity, config.join.expiry_nanos),
            closed_traces: Vec::new(),
            path_scratch: Vec::new(),
            all_traces: Series::default(),
            span_logs: SpanLogIndex::new(config.join.capacity),
            events: Vec::new(),
            recorded: clock.now_unix_nano(),
            record_time: None,
            clock,
            pods_by_name: HashMap::new(),
            change_log: Vec::new(),
            change_ids: HashMap::new(),
            flags: HashMap::new(),
            peers: Vec::new(),
            peer_ids: HashMap::new(),
            newest_bucket: 0,
            compacted_bucket: 0,
            request_metrics: CumulativeState::default(),
        }
    }

    /// Reads the record-time clock for the batch about to be applied.
    pub(crate) fn stamp(&mut self) {
        self.recorded = self
            .record_time
            .unwrap_or_else(|| self.clock.now_unix_nano());
    }

    /// Makes the batches applied next count as learned at `recorded` (unix nanoseconds) rather
    /// than now, until set back to `None`: a write-ahead log replayed at start keeps the record
    /// times of its first arrival.
    pub fn set_record_time(&mut self, recorded: Option<u64>) {
        self.record_time = recorded;
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
            display: None,
            service: service.map(str::to_owned),
            validity: Validity::default(),
            versions: BTreeMap::new(),
            first_seen: t,
            last_seen: t,
            red: Series::default(),
            metric_red: Series::default(),
            logs: Series::default(),
            templates: Series::default(),
            call_paths: Series::default(),
            traces: Series::default(),
            gauges: BTreeMap::new(),
        })
    }

    /// Rolls statistics and validity up as they age (see [`Retention`]) and sums the minute
    /// that closed, each time the newest data enters a new minute.
    fn maybe_compact(&mut self) {
        if self.newest_bucket / 6 <= self.compacted_bucket / 6 {
            return;
        }
        let (newest, retention) = (self.newest_bucket, self.config.retention);
        for e in self.graph.node_weights_mut() {
            e.red.compact(newest, &retention);
            e.metric_red.compact(newest, &retention);
            e.logs.compact(newest, &retention);
            e.templates.compact(newest, &retention);
            e.call_paths.compact(newest, &retention);
            e.traces.compact(newest, &retention);
            e.gauges
                .values_mut()
                .for_each(|g| g.compact(newest, &retention));
            e.validity.compact(newest, &retention);
        }
        self.all_traces.compact(newest, &retention);
        for r in self.graph.edge_weights_mut() {
            r.red.compact(newest, &retention);
            r.metric_red.compact(newest, &retention);
            r.seen.compact(newest, &retention);
            r.validity.compact(newest, &retention);
        }
        // Cumulative request metrics not seen for as long as 10 s buckets are kept: their pods
        // went away.
        let horizon = newest.saturating_sub(retention.fine) * self.config.bucket_nanos;
        self.request_metrics.forget_before(horizon);
        self.compacted_bucket = newest;
    }

    /// Records an observation of an entity at valid time `t`.
    fn touch(&mut self, index: NodeIndex, t: u64) -> NodeIndex {
        let (bucket, recorded) = (self.bucket(t), self.recorded);
        self.newest_bucket = self.newest_bucket.max(bucket);
        let e = &mut self.graph[index];
        e.first_seen = e.first_seen.min(t);
        e.last_seen = e.last_seen.max(t);
        e.validity.observe(bucket, recorded);
        index
    }

    pub(crate) fn entity(
        &mut self,
        kind: EntityKind,
        name: &str,
        service: Option<&str>,
        t: u64,
    ) -> NodeIndex {
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

    pub(crate) fn relation(
        &mut self,
        a: NodeIndex,
        b: NodeIndex,
        kind: RelationKind,
        t: u64,
    ) -> EdgeIndex {
        let index = *self.relations.entry((a, b, kind)).or_insert_with(|| {
            self.graph.add_edge(
                a,
                b,
                Relation {
                    kind,
                    validity: Validity::default(),
                    first_seen: t,
                    last_seen: t,
                    seen: Series::default(),
                    red: Series::default(),
                    metric_red: Series::default(),
                },
            )
        });
        let bucket = t / self.config.bucket_nanos;
        let recorded = self.recorded;
        let r = &mut self.graph[index];
        r.first_seen = r.first_seen.min(t);
        r.last_seen = r.last_seen.max(t);
        *r.seen.entry(bucket) += 1;
        r.validity.observe(bucket, recorded);
        index
    }

    /// Resource entities: the service; its instance, pod, node, workload and namespace when the
    /// resource names them; their `runs_on` and `part_of` relations, all observed at `t`; and
    /// the service's version. Identity comes from resource attributes only (never addresses).
    fn resource_entities(
        &mut self,
        resource: &loupe_model::Resource,
        t: u64,
    ) -> (NodeIndex, Option<NodeIndex>) {
        let service_name = resource.service_key();
        let service = self.entity(EntityKind::Service, &service_name, None, t);
        if let Some(version) = resource.service_version() {
            self.observe_version(service, version, t);
        }
        let pod = resource
            .pod_key()
            .map(|key| self.pod(&key, resource, &service_name, t));
        let node = resource
            .node_name()
            .map(|n| self.entity(EntityKind::Node, n, None, t));
        let instance = resource.instance_id().map(|id| {
            let key = format!("{service_name}/{id}");
            let i = self.entity(EntityKind::ServiceInstance, &key, Some(&service_name), t);
            self.relation(i, service, RelationKind::PartOf, t);
            i
        });
        let host = pod.or(node);
        if let (Some(i), Some(h)) = (instance, host) {
            self.relation(i, h, RelationKind::RunsOn, t);
        }
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
        let namespace = resource
            .k8s_namespace()
            .map(|ns| self.entity(EntityKind::Namespace, ns, None, t));
        let workload = resource.workload().map(|(kind, name)| {
            let key = match resource.k8s_namespace() {
                Some(ns) => format!("{ns}/{kind}/{name}"),
                None => format!("{kind}/{name}"),
            };
            self.entity(EntityKind::Workload, &key, None, t)
        });
        match (pod, workload, namespace) {
            (Some(p), Some(w), ns) => {
                self.relation(p, w, RelationKind::PartOf, t);
                if let Some(ns) = ns {
                    self.relation(w, ns, RelationKind::PartOf, t);
                }
            }
            (Some(p), None, Some(ns)) => {
                self.relation(p, ns, RelationKind::PartOf, t);
            }
            _ => {}
        }
        (service, pod)
    }

    /// The pod `key`, created on first sight; a pod of the same namespace and name seen before
    /// under another uid was replaced, so its validity ends where this one's begins.
    fn pod(
        &mut self,
        key: &str,
        resource: &loupe_model::Resource,
        service: &str,
        t: u64,
    ) -> NodeIndex {
        let is_new = self
            .entities
            .get(&EntityKind::Pod)
            .is_none_or(|m| !m.contains_key(key));
        let index = self.entity(EntityKind::Pod, key, Some(service), t);
        if is_new {
            let name = resource.pod_name().unwrap_or(key);
            let by_name = match resource.k8s_namespace() {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_owned(),
            };
            if by_name != key {
                self.graph[index].display = Some(name.to_owned());
            }
            if let Some(old) = self.pods_by_name.insert(by_name, index) {
                let recorded = self.recorded;
                let old = &mut self.graph[old];
                if old.first_seen < t {
                    old.validity.end(t, recorded);
                }
            }
        }
        index
    }

    /// Notes that `service` ran `version` at `t`. A version first seen after every other
    /// version of the service started is a deployment from the version seen last.
    fn observe_version(&mut self, service: NodeIndex, version: &str, t: u64) {
        let versions = &mut self.graph[service].versions;
        if let Some((first, last)) = versions.get_mut(version) {
            *first = (*first).min(t);
            *last = (*last).max(t);
            return;
        }
        let newest_start = versions.values().map(|(first, _)| *first).max();
        let previous = versions
            .iter()
            .max_by_key(|(_, (_, last))| *last)
            .map(|(v, _)| v.clone());
        versions.insert(version.to_owned(), (t, t));
        if let (Some(start), Some(from)) = (newest_start, previous) {
            if t > start {
                self.infer_deployment(service, from, version, t);
            }
        }
    }

    /// Applies decoded spans: entities, RED per bucket, and parent/child joins.
    pub fn apply_spans(&mut self, batch: &[ResourceSpans]) {
        self.stamp();
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
                let recorded = self.recorded;
                for index in [Some(service), Some(operation), pod].into_iter().flatten() {
                    let e = &mut self.graph[index];
                    e.last_seen = e.last_seen.max(span.end_time_unix_nano);
                    e.validity.observe(bucket, recorded);
                    let red = e.red.entry(bucket);
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
                    peer: None,
                };
                let facts = self.dependency(service, span, bucket, t, facts);
                let waiting = self
                    .span_logs
                    .span((span.trace_id, span.span_id), operation.index());
                for (bucket, error, template) in waiting {
                    self.count_log(operation, bucket, error);
                    if let Some((t, prior)) = template {
                        let tally = Tally::record(prior, error);
                        self.graph[operation].templates.entry(bucket).add(t, tally);
                    }
                }
                self.join.insert(
                    span.trace_id,
                    span.span_id,
                    span.parent_span_id,
                    facts,
                    &mut self.events,
                );
                let path = PathSpan {
                    span: span.span_id,
                    parent: span.parent_span_id,
                    start: t,
                    operation: operation.index() as u32,
                };
                self.trace_table.span(
                    span.trace_id,
                    service.index() as u32,
                    span.end_time_unix_nano,
                    error,
                    path,
                );
            }
        }
        self.join.expire(&mut self.events);
        self.drain_join_events();
        self.trace_table.expire(&mut self.closed_traces);
        self.count_traces();
        self.maybe_compact();
    }

    /// Lets out of the join buffer the spans received more than `idle_nanos` before `now`
    /// (receive time, unix nanoseconds from the caller's clock). A server calls this about once
    /// a second so the last spans of a quiet stream get their self time.
    pub fn expire_idle(&mut self, now: u64, idle_nanos: u64) {
        self.stamp();
        self.join.expire_idle(now, idle_nanos, &mut self.events);
        self.drain_join_events();
        self.trace_table
            .expire_idle(now, idle_nanos, &mut self.closed_traces);
        self.count_traces();
    }

    /// Lets every span out of the join buffer, finalizing self times. Call at the end of a
    /// replay or evaluation case; a live server relies on expiry instead.
    pub fn flush(&mut self) {
        self.stamp();
        self.join.flush(&mut self.events);
        self.drain_join_events();
        self.trace_table.flush(&mut self.closed_traces);
        self.count_traces();
    }

    /// Counts the traces that left the trace table: in every service they passed through and
    /// among all traces, in the bucket of their start; and their spans' call paths on their
    /// operations, in the bucket of each span's start.
    fn count_traces(&mut self) {
        let mut paths = std::mem::take(&mut self.path_scratch);
        for mut t in self.closed_traces.drain(..) {
            paths.clear();
            transitions(&mut t.spans, &mut paths);
            for &(operation, start, transition) in &paths {
                let bucket = start / self.config.bucket_nanos;
                if let Some(e) = self
                    .graph
                    .node_weight_mut(NodeIndex::new(operation as usize))
                {
                    e.call_paths.entry(bucket).add(transition, 1);
                }
            }
            let bucket = t.start / self.config.bucket_nanos;
            let seconds = t.duration_nanos as f64 / 1e9;
            self.all_traces.entry(bucket).add(seconds, t.error);
            for s in t.services {
                if let Some(e) = self.graph.node_weight_mut(NodeIndex::new(s as usize)) {
                    e.traces.entry(bucket).add(seconds, t.error);
                }
            }
        }
        self.path_scratch = paths;
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
                        let red = self.graph[e].red.entry(bucket);
                        red.calls += 1;
                        red.errors += u64::from(child.error);
                        red.duration.add_nanos(child.end - child.start);
                    }
                }
                JoinEvent::Link { .. } => {}
                JoinEvent::Unanswered { client, peer } => {
                    let t = client.start;
                    let bucket = self.bucket(t);
                    let (name, is_service) = self.peers[*peer].clone();
                    let target = if is_service {
                        self.entity(EntityKind::Service, &name, None, t)
                    } else {
                        self.endpoint(&name, t)
                    };
                    let e = self.relation(
                        NodeIndex::new(client.service),
                        target,
                        RelationKind::Calls,
                        t,
                    );
                    let red = self.graph[e].red.entry(bucket);
                    red.calls += 1;
                    red.errors += u64::from(client.error);
                    red.duration.add_nanos(client.end - client.start);
                }
                JoinEvent::VisitSelfTime {
                    entry,
                    self_time_nanos,
                } => {
                    let bucket = self.bucket(entry.start);
                    for i in [entry.service, entry.operation] {
                        let red = self.graph[NodeIndex::new(i)].red.entry(bucket);
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
                            .self_time
                            .add_nanos(*gap_nanos);
                    }
                }
            }
        }
        self.events = events;
        self.events.clear();
    }

    /// The dependency a client, producer or consumer span names: a database (`db.system.name`)
    /// gets a `queries` relation and a messaging destination (`messaging.destination.name`) a
    /// `publishes` or `consumes` one at once, with the span's RED figures; a peer
    /// (`service.peer.name`/`peer.service`, else `server.address`) is returned in the facts, to
    /// become a `calls` relation if no instrumented service answers the call (client-span
    /// semantic conventions: database, messaging, RPC and HTTP).
    fn dependency(
        &mut self,
        service: NodeIndex,
        span: &loupe_model::Span,
        bucket: u64,
        t: u64,
        mut facts: SpanFacts,
    ) -> SpanFacts {
        use loupe_model::semconv as sc;
        // Server and internal spans (most of them) name no dependency: no attribute lookups.
        if !matches!(
            span.kind,
            SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
        ) {
            return facts;
        }
        let attr = |k: &str| span.attributes.get_str(k);
        let (target, kind) = if let Some(system) = attr(sc::DB_SYSTEM_NAME).or(attr("db.system")) {
            if span.kind != SpanKind::Client {
                return facts;
            }
            let key = database_key(system, &span.attributes);
            (
                self.entity(EntityKind::Database, &key, None, t),
                RelationKind::Queries,
            )
        } else if let Some(destination) = attr(sc::MESSAGING_DESTINATION_NAME) {
            let kind = match span.kind {
                SpanKind::Producer | SpanKind::Client => RelationKind::Publishes,
                SpanKind::Consumer => RelationKind::Consumes,
                _ => return facts,
            };
            let key = destination_key(destination, &span.attributes);
            (
                self.entity(EntityKind::MessagingDestination, &key, None, t),
                kind,
            )
        } else {
            if span.kind != SpanKind::Client {
                return facts;
            }
            let peer = attr(sc::SERVICE_PEER_NAME)
                .or(attr(sc::PEER_SERVICE))
                .map(|p| (p, true))
                .or_else(|| attr(sc::SERVER_ADDRESS).map(|a| (a, false)));
            facts.peer = peer.map(|(name, is_service)| self.intern_peer(name, is_service));
            return facts;
        };
        let e = self.relation(service, target, kind, t);
        let red = self.graph[e].red.entry(bucket);
        red.calls += 1;
        red.errors += u64::from(span.status == StatusCode::Error);
        red.duration.add_nanos(span.duration_nano());
        facts
    }

    /// A peer's number, for span facts that must stay small: `(name, is a service name)`.
    fn intern_peer(&mut self, name: &str, is_service: bool) -> usize {
        if let Some(&i) = self.peer_ids.get(&(name.to_owned(), is_service)) {
            return i;
        }
        let i = self.peers.len();
        self.peers.push((name.to_owned(), is_service));
        self.peer_ids.insert((name.to_owned(), is_service), i);
        i
    }

    /// The entity behind a `server.address`: the service of that name when one is known (also
    /// as the first label of a cluster DNS name, `cart.shop.svc.cluster.local`), else an
    /// external endpoint.
    fn endpoint(&mut self, address: &str, t: u64) -> NodeIndex {
        let services = self.entities.get(&EntityKind::Service);
        let label = address.split('.').next().unwrap_or(address);
        let known = services.and_then(|m| m.get(address).or_else(|| m.get(label)).copied());
        match known {
            Some(i) => self.touch(i, t),
            None => self.entity(EntityKind::External, address, None, t),
        }
    }

    /// Applies decoded log records: record and error-record counts per bucket on the service and
    /// the pod.
    pub fn apply_logs(&mut self, batch: &[ResourceLogs]) {
        self.stamp();
        for rl in batch {
            let Some(first) = rl.records.first() else {
                continue;
            };
            let (service, pod) = self.resource_entities(&rl.resource, first.time_unix_nano);
            for record in &rl.records {
                let bucket = self.bucket(record.time_unix_nano);
                let error = record.is_error();
                let about_other = error && self.names_other_service(service, record);
                let recorded = self.recorded;
                for index in [Some(service), pod].into_iter().flatten() {
                    let e = &mut self.graph[index];
                    e.last_seen = e.last_seen.max(record.time_unix_nano);
                    e.validity.observe(bucket, recorded);
                    let logs = e.logs.entry(bucket);
                    logs.records += 1;
                    logs.error_records += u64::from(error);
                    logs.foreign_error_records += u64::from(about_other);
                }
                self.log_record_changes(&rl.resource, service, record);
                if let (Some(trace), Some(span)) = (record.trace_id, record.span_id) {
                    // A record about another service's failure is no step of the writer's own
                    // code path: it counts on the operation but in no template tally.
                    let template = (!about_other).then(|| template_of(&record.body)).flatten();
                    if let Some((operation, prior)) =
                        self.span_logs.log((trace, span), bucket, error, template)
                    {
                        let operation = NodeIndex::new(operation);
                        self.count_log(operation, bucket, error);
                        if let (Some(t), Some(prior)) = (template, prior) {
                            let tally = Tally::record(prior, error);
                            self.graph[operation].templates.entry(bucket).add(t, tally);
                        }
                    }
                }
            }
        }
        self.maybe_compact();
    }

    /// Whether an error record's message (its body or its `exception.message`) names another
    /// known service: a token of it, or the first DNS label of a token
    /// (`cart.shop.svc.cluster.local`), is the `service.name` of a service other than the
    /// writer's. Such a record reports a failure of that service as the writer met it (`No
    /// instances available for ts-payment-service`, `dial tcp: lookup cartservice: no such
    /// host`, `call to payment/Charge failed`): the error did not originate in the writer's
    /// code. Any known service counts, not only those it was seen calling: a callee that was
    /// never reachable has no `calls` relation. Tokens are split at characters other than ASCII
    /// letters, digits, `-`, `_` and `.`; tokens shorter than 3 bytes name nothing.
    fn names_other_service(&self, service: NodeIndex, record: &loupe_model::LogRecord) -> bool {
        let Some(services) = self.entities.get(&EntityKind::Service) else {
            return false;
        };
        let exception = record
            .attributes
            .get_str(loupe_model::semconv::EXCEPTION_MESSAGE);
        std::iter::once(record.body.as_str())
            .chain(exception)
            .flat_map(|text| {
                text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            })
            .map(|token| token.trim_matches('.'))
            .filter(|token| token.len() >= 3)
            .flat_map(|token| [Some(token), token.split_once('.').map(|(label, _)| label)])
            .flatten()
            .filter_map(|name| services.get(name).copied())
            .any(|named| named != service)
    }

    /// Counts a log record on the operation whose span wrote it.
    fn count_log(&mut self, operation: NodeIndex, bucket: u64, error: bool) {
        let logs = self.graph[operation].logs.entry(bucket);
        logs.records += 1;
        logs.error_records += u64::from(error);
    }

    /// Applies decoded metric points: per bucket means of each metric on the pod when the
    /// resource names one, else on the service. Distributions contribute their mean.
    pub fn apply_metrics(&mut self, batch: &[ResourceMetrics]) {
        self.stamp();
        // Every service of the batch first, so that a client metric's `server.address` finds
        // a callee whose own points come later in the batch (not an external endpoint).
        for rm in batch {
            if let Some(first) = rm.points.first() {
                let name = rm.resource.service_key();
                self.entity(EntityKind::Service, &name, None, first.time_unix_nano);
            }
        }
        for rm in batch {
            let Some(first) = rm.points.first() else {
                continue;
            };
            let (service, pod) = self.resource_entities(&rm.resource, first.time_unix_nano);
            let target = pod.unwrap_or(service);
            let instance = rm
                .resource
                .attributes
                .get_str(loupe_model::semconv::SERVICE_INSTANCE_ID)
                .unwrap_or("");
            let mut service_bucket = self.bucket(first.time_unix_nano);
            for point in &rm.points {
                // A pod's points keep its service valid too (a metrics-only service has
                // nothing else), once a bucket.
                if self.bucket(point.time_unix_nano) != service_bucket {
                    service_bucket = self.bucket(point.time_unix_nano);
                    self.touch(service, point.time_unix_nano);
                }
                self.request_metric(service, (target, instance), point);
                let value = match point.value {
                    PointValue::Number(v) => v,
                    PointValue::Distribution { count: 0, .. } => continue,
                    PointValue::Distribution { count, sum } => sum / count as f64,
                };
                if !value.is_finite() {
                    continue;
                }
                let bucket = self.bucket(point.time_unix_nano);
                let recorded = self.recorded;
                let e = &mut self.graph[target];
                e.last_seen = e.last_seen.max(point.time_unix_nano);
                e.validity.observe(bucket, recorded);
                let g = e
                    .gauges
                    .entry(point.metric_name.clone())
                    .or_default()
                    .entry(bucket);
                g.max = if g.count == 0 {
                    value
                } else {
                    g.max.max(value)
                };
                g.sum += value;
                g.count += 1;
            }
        }
        self.maybe_compact();
    }

    /// RED figures from a request-duration metric point (see [`crate::request_metrics`]): a
    /// server-side point on the service (an error counter's point adds to its errors); a
    /// client-side point on the relation to the callee it names, an endpoint, a database or a
    /// messaging destination (HTTP, RPC, database and messaging client metric semantic
    /// conventions), which it also observes, so that a deployment with metrics and no traces
    /// still has its dependency graph, uninstrumented dependencies included. `series` owns the
    /// point's cumulative series (the pod, else the service), with the sending `instance`
    /// (`service.instance.id`).
    fn request_metric(
        &mut self,
        service: NodeIndex,
        (series, instance): (NodeIndex, &str),
        point: &loupe_model::DataPoint,
    ) {
        let t = point.time_unix_nano;
        let bucket = self.bucket(t);
        if crate::request_metrics::is_error_counter(&point.metric_name) {
            if let Some(errors) = self
                .request_metrics
                .errors((series.index(), instance), point)
            {
                self.graph[service].metric_red.entry(bucket).errors += errors;
            }
            return;
        }
        let Some(side) = crate::request_metrics::side(&point.metric_name) else {
            return;
        };
        let (target, kind) = match side {
            Side::Server => {
                if let Some(red) = self
                    .request_metrics
                    .red((series.index(), instance), point, side)
                {
                    self.graph[service].metric_red.entry(bucket).merge(&red);
                }
                return;
            }
            Side::Client(callee) => match self.callee(callee, &point.attributes, t) {
                Some(callee) => callee,
                None => return,
            },
        };
        if target == service {
            return;
        }
        let relation = self.relation(service, target, kind, t);
        // The point's attributes name the callee: one series per pod and callee.
        if let Some(red) = self
            .request_metrics
            .red((series.index(), instance), point, side)
        {
            self.graph[relation].metric_red.entry(bucket).merge(&red);
        }
    }

    /// The entity a client metric's point names, and the relation its caller has with it;
    /// `None` when the point names none.
    fn callee(
        &mut self,
        callee: Callee,
        attrs: &loupe_model::Attributes,
        t: u64,
    ) -> Option<(NodeIndex, RelationKind)> {
        use loupe_model::semconv as sc;
        match callee {
            Callee::Address => {
                let system = attrs
                    .get_str(sc::RPC_SYSTEM_NAME)
                    .or_else(|| attrs.get_str(sc::RPC_SYSTEM));
                let cloud_api = (system == Some(sc::RPC_SYSTEM_AWS_API))
                    .then(|| attrs.get_str(sc::RPC_SERVICE))
                    .flatten();
                let address = attrs
                    .get_str(sc::SERVER_ADDRESS)
                    .or_else(|| attrs.get_str("net.peer.name"))
                    .or(cloud_api)?;
                Some((self.endpoint(address, t), RelationKind::Calls))
            }
            Callee::Database => {
                let system = attrs
                    .get_str(sc::DB_SYSTEM_NAME)
                    .or_else(|| attrs.get_str("db.system"))
                    .unwrap_or("other_sql");
                let key = database_key(system, attrs);
                Some((
                    self.entity(EntityKind::Database, &key, None, t),
                    RelationKind::Queries,
                ))
            }
            Callee::Messaging => {
                let destination = attrs.get_str(sc::MESSAGING_DESTINATION_NAME)?;
                let key = destination_key(destination, attrs);
                let kind = match attrs.get_str(sc::MESSAGING_OPERATION_TYPE) {
                    Some("receive" | "process" | "settle") => RelationKind::Consumes,
                    _ => RelationKind::Publishes,
                };
                Some((
                    self.entity(EntityKind::MessagingDestination, &key, None, t),
                    kind,
                ))
            }
        }
    }

    /// The end of the newest 10-second bucket with data, unix nanoseconds (0 when empty): the
    /// graph's own "now" in valid time, which replayed data moves as live data does.
    pub fn watermark(&self) -> u64 {
        if self.graph.node_count() == 0 {
            return 0;
        }
        (self.newest_bucket + 1) * self.config.bucket_nanos
    }

    /// The services that received root spans in `[start, end)` (requests entering the system:
    /// the user-facing ones), by name; and, among services with request-duration metrics and
    /// no spans there, those no service called in the window.
    pub fn entry_services(&self, start: u64, end: u64) -> Vec<String> {
        let r = self.buckets(start, end);
        let called: std::collections::HashSet<NodeIndex> = self
            .graph
            .edge_indices()
            .filter_map(|i| {
                let (a, b) = self.graph.edge_endpoints(i)?;
                let rel = &self.graph[i];
                (rel.kind == RelationKind::Calls
                    && self.graph[a].kind == EntityKind::Service
                    && rel.seen.merged(r.start, r.end) > 0)
                    .then_some(b)
            })
            .collect();
        let mut out: Vec<String> = self
            .graph
            .node_indices()
            .filter(|i| self.graph[*i].kind == EntityKind::Service)
            .filter(|i| {
                let e = &self.graph[*i];
                let spans = e.red.merged(r.start, r.end);
                spans.root_calls > 0
                    || (spans.calls == 0
                        && !called.contains(i)
                        && e.metric_red.merged(r.start, r.end).calls > 0)
            })
            .map(|i| self.graph[i].name.clone())
            .collect();
        out.sort();
        out
    }

    /// A service's RED figures over `[start, end)` (from its request-duration metrics where
    /// it has no spans); `None` when there is no such service.
    pub fn service_red(&self, service: &str, start: u64, end: u64) -> Option<RedStats> {
        let r = self.buckets(start, end);
        let i = self.entities.get(&EntityKind::Service)?.get(service)?;
        let e = &self.graph[*i];
        let spans = e.red.merged(r.start, r.end);
        if spans.calls > 0 {
            return Some(spans);
        }
        Some(e.metric_red.merged(r.start, r.end))
    }

    /// The operations that received root spans in `[start, end)` (the endpoints requests
    /// enter by), as `(service, span name)`, busiest first, at most `limit`.
    pub fn entry_operations(&self, start: u64, end: u64, limit: usize) -> Vec<(String, String)> {
        let r = self.buckets(start, end);
        let mut out: Vec<(u64, String, String)> = Vec::new();
        for (service, ops) in &self.operations {
            for (span_name, i) in ops {
                let red = self.graph[*i].red.merged_with(r.start, r.end, |a, b| {
                    a.calls += b.calls;
                    a.root_calls += b.root_calls;
                });
                if red.root_calls > 0 {
                    out.push((
                        red.calls,
                        self.graph[*service].name.clone(),
                        span_name.clone(),
                    ));
                }
            }
        }
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (&a.1, &a.2).cmp(&(&b.1, &b.2))));
        out.truncate(limit);
        out.into_iter().map(|(_, s, o)| (s, o)).collect()
    }

    /// The RED figures of `service`'s operation `span_name` over `[start, end)`; `None` when
    /// there is no such operation.
    pub fn operation_red(
        &self,
        service: &str,
        span_name: &str,
        start: u64,
        end: u64,
    ) -> Option<RedStats> {
        let r = self.buckets(start, end);
        let s = self.entities.get(&EntityKind::Service)?.get(service)?;
        let i = self.operations.get(s)?.get(span_name)?;
        Some(self.graph[*i].red.merged(r.start, r.end))
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

/// The key of the database a client span or metric names (database client semantic
/// conventions): `{db.system.name}/{scope}`, the scope being `db.namespace` (the older
/// `db.name`), else `db.collection.name` (a managed table such as DynamoDB's has no namespace),
/// else `server.address`, else `default`.
fn database_key(system: &str, attrs: &loupe_model::Attributes) -> String {
    use loupe_model::semconv as sc;
    let scope = attrs
        .get_str(sc::DB_NAMESPACE)
        .or_else(|| attrs.get_str("db.name"))
        .or_else(|| attrs.get_str(sc::DB_COLLECTION_NAME))
        .or_else(|| attrs.get_str(sc::SERVER_ADDRESS))
        .unwrap_or("default");
    format!("{system}/{scope}")
}

/// The key of a messaging destination: `{messaging.system}/{messaging.destination.name}`
/// (`messaging` when the system is not named).
fn destination_key(destination: &str, attrs: &loupe_model::Attributes) -> String {
    let system = attrs
        .get_str(loupe_model::semconv::MESSAGING_SYSTEM)
        .unwrap_or("messaging");
    format!("{system}/{destination}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loupe_model::{AttributeValue, Attributes, LogRecord, Resource, Span, SpanId, TraceId};

    use super::*;
    use crate::view::RedSource;

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

    /// Error records that name another known service are counted apart (its failure as the
    /// writer met it) and join no template tally; one line per record: body, exception
    /// message, whether it reports an error, whether it names another service.
    #[test]
    fn error_records_naming_another_service_are_counted_apart() {
        type Line = (&'static str, Option<&'static str>, bool, bool);
        let cases: [Line; 9] = [
            ("No instances available for payment", None, true, true),
            (
                "dial tcp: lookup payment.shop.svc.cluster.local: no such host",
                None,
                true,
                true,
            ),
            ("call to payment/Charge failed", None, true, true),
            (
                "Request failed [nested: payment] with root cause",
                None,
                true,
                true,
            ),
            (
                "RPC failed",
                Some("connection refused by payment:8080"),
                true,
                true,
            ),
            ("checkout failed: invalid card", None, true, false),
            ("paymentservice is down", None, true, false),
            ("NullPointerException in CardValidator", None, true, false),
            ("called payment", None, false, false),
        ];
        let mut g = KnowledgeGraph::new(GraphConfig::default());
        g.apply_spans(&[ResourceSpans {
            resource: resource("checkout", "checkout-1"),
            spans: vec![span(1, 1, None, 10, 90, false)],
        }]);
        g.apply_spans(&[ResourceSpans {
            resource: resource("payment", "payment-1"),
            spans: vec![span(1, 2, Some(1), 20, 30, false)],
        }]);
        let records = cases
            .iter()
            .map(|(body, exception, error, _)| LogRecord {
                time_unix_nano: 50,
                severity_number: if *error { 17 } else { 9 },
                severity_text: String::new(),
                body: (*body).to_owned(),
                event_name: String::new(),
                attributes: Attributes(
                    exception
                        .iter()
                        .map(|m| {
                            (
                                "exception.message".to_owned(),
                                AttributeValue::String((*m).to_owned()),
                            )
                        })
                        .collect(),
                ),
                trace_id: Some(TraceId([1; 16])),
                span_id: Some(SpanId([1; 8])),
            })
            .collect();
        g.apply_logs(&[ResourceLogs {
            resource: resource("checkout", "checkout-1"),
            records,
        }]);
        g.flush();
        let w = g.window(0, 60_000_000_000);
        let logs = w.service("checkout").map(|s| s.logs).unwrap_or_default();
        let count = |f: fn(&Line) -> bool| cases.iter().filter(|c| f(c)).count() as u64;
        assert_eq!(logs.records, cases.len() as u64);
        assert_eq!(logs.error_records, count(|c| c.2));
        assert_eq!(logs.foreign_error_records, count(|c| c.3));
        assert_eq!(logs.own_error_records(), count(|c| c.2 && !c.3));
        let tallied: u64 = w
            .operation("checkout", "op1")
            .map(|o| o.templates.0.iter().map(|(_, t)| t.records).sum())
            .unwrap_or(0);
        assert_eq!(
            tallied,
            count(|c| !c.3),
            "records naming another service join no template"
        );
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
        // Each trace counts once overall and once in every service it passed through, with
        // its end-to-end duration (3 ns, the entry span's), in the bucket of its start.
        let traces = |s: &str| merged.service(s).map(|s| s.traces.traces);
        assert_eq!(merged.traces.traces, 2);
        assert_eq!(
            (traces("payment"), traces("cart"), traces("checkout")),
            (Some(2), Some(1), Some(1))
        );
        let mean = merged.traces.ln_mean().unwrap();
        assert!(
            (mean - 1e-6f64.ln()).abs() < 1e-9,
            "durations under 1 µs count as 1 µs"
        );
        assert_eq!(g.window(10 * second, 20 * second).traces.traces, 0);
    }

    /// Two instances of a service without pods (containers on a managed runtime) send series
    /// of the same name and attributes: each instance's cumulative series is its own, so the
    /// calls add up. (Per-interval summaries of 7 and 10 calls, then cumulative histograms.)
    #[test]
    fn instances_without_pods_keep_their_own_series() {
        let s = 1_000_000_000u64;
        let instance = |id: &str| {
            Arc::new(Resource {
                attributes: Attributes(
                    [("service.name", "orders"), ("service.instance.id", id)]
                        .iter()
                        .map(|(k, v)| (k.to_string(), AttributeValue::String(v.to_string())))
                        .collect(),
                ),
            })
        };
        let point = |start: u64, t: u64, count: u64| loupe_model::DataPoint {
            cumulative: true,
            start_time_unix_nano: start,
            ..crate::request_metrics::test_point(
                "http.server.request.duration",
                "s",
                t,
                (count, count as f64 * 0.1),
                &[],
            )
        };
        let mut g = KnowledgeGraph::new(GraphConfig::default());
        for (id, count) in [("a", 7), ("b", 10)] {
            g.apply_metrics(&[ResourceMetrics {
                resource: instance(id),
                points: vec![point(600 * s, 660 * s, count)],
            }]);
        }
        let calls = |g: &KnowledgeGraph, from: u64, to: u64| {
            g.window(from * s, to * s)
                .service("orders")
                .map(|o| o.red.calls)
        };
        assert_eq!(calls(&g, 650, 670), Some(17));
        // Cumulative series from 600 s: each instance's next point adds its own delta.
        for (id, count) in [("a", 9), ("b", 15)] {
            g.apply_metrics(&[ResourceMetrics {
                resource: instance(id),
                points: vec![point(600 * s, 720 * s, count)],
            }]);
        }
        assert_eq!(calls(&g, 710, 730), Some(2 + 5));
    }

    /// What is not instrumented becomes an entity from its callers' client metrics: a managed
    /// table from `db.client.operation.duration` (named by its collection), a queue from
    /// `messaging.client.operation.duration`, a cloud API from `rpc.client.duration` with
    /// `rpc.system` = `aws-api`; and a function's calls and failures from
    /// `faas.invoke_duration` and `faas.errors`.
    #[test]
    fn client_metrics_make_uninstrumented_dependencies_entities() {
        let s = 1_000_000_000u64;
        let point = |name: &str, count: u64, attrs: &[(&str, &str)]| {
            crate::request_metrics::test_point(
                name,
                "s",
                5 * s,
                (count, count as f64 * 0.02),
                attrs,
            )
        };
        let mut g = KnowledgeGraph::new(GraphConfig::default());
        let table = [
            ("db.system.name", "aws.dynamodb"),
            ("db.collection.name", "orders"),
            ("db.operation.name", "PutItem"),
            ("server.address", "dynamodb.us-east-1.amazonaws.com"),
        ];
        let queue = [
            ("messaging.system", "aws_sqs"),
            ("messaging.destination.name", "order-events"),
            ("messaging.operation.type", "send"),
        ];
        let ssm = [
            ("rpc.system", loupe_model::semconv::RPC_SYSTEM_AWS_API),
            ("rpc.service", "SSM"),
            ("rpc.method", "GetParameter"),
        ];
        let errors = loupe_model::DataPoint {
            metric_name: "faas.errors".into(),
            value: PointValue::Number(2.0),
            ..point("faas.errors", 0, &[])
        };
        g.apply_metrics(&[ResourceMetrics {
            resource: resource("checkout", "checkout-1"),
            points: vec![
                point("db.client.operation.duration", 8, &table),
                point("messaging.client.operation.duration", 3, &queue),
                point("rpc.client.duration", 5, &ssm),
                point("faas.invoke_duration", 10, &[]),
                errors,
            ],
        }]);
        let w = g.window(0, 10 * s);
        let query = w
            .queries
            .iter()
            .find(|q| q.source == "checkout")
            .expect("the table");
        assert_eq!(
            (query.database.as_str(), query.red.calls),
            ("aws.dynamodb/orders", 8)
        );
        let edge = w
            .edge("checkout", "SSM")
            .expect("the cloud API, named by its service");
        assert_eq!(edge.red.calls, 5);
        let checkout = w.service("checkout").expect("checkout");
        assert_eq!((checkout.red.calls, checkout.red.errors), (10, 2));
        let snapshot = g
            .snapshot(&crate::GraphQuery {
                start: 0,
                end: 10 * s,
                ..Default::default()
            })
            .unwrap();
        let queue = "messaging_destination:aws_sqs/order-events";
        let publishes = snapshot
            .edges
            .iter()
            .find(|e| e.target == queue)
            .expect("checkout publishes to the queue");
        assert_eq!(
            (publishes.kind, publishes.red.as_ref().map(|r| r.calls)),
            ("publishes", Some(3))
        );
        assert!(
            snapshot.nodes.iter().any(|n| n.id == queue),
            "{:?}",
            snapshot.nodes.iter().map(|n| &n.id).collect::<Vec<_>>()
        );
    }

    /// A deployment with metrics and no traces: services' RED from their server-side
    /// request-duration histograms (delta and cumulative), the dependency and its RED from the
    /// caller's client-side histogram; spans, where there are any, take precedence.
    #[test]
    fn request_duration_metrics_give_red_where_there_are_no_spans() {
        let s = 1_000_000_000u64;
        let point =
            |name: &str, t: u64, count: u64, sum: f64, attrs: &[(&str, &str)], cumulative| {
                loupe_model::DataPoint {
                    cumulative,
                    ..crate::request_metrics::test_point(name, "s", t, (count, sum), attrs)
                }
            };
        let mut g = KnowledgeGraph::new(GraphConfig::default());
        // cart first, so that the frontend's client metric finds it by name.
        g.apply_metrics(&[ResourceMetrics {
            resource: resource("cart", "cart-1"),
            points: vec![
                point("http.server.request.duration", 5 * s, 10, 0.5, &[], false),
                point("http.server.request.duration", 15 * s, 20, 1.0, &[], false),
                point(
                    "http.server.request.duration",
                    15 * s,
                    4,
                    0.2,
                    &[("http.response.status_code", "503")],
                    false,
                ),
            ],
        }]);
        let client = [("server.address", "cart")];
        g.apply_metrics(&[ResourceMetrics {
            resource: resource("frontend", "frontend-1"),
            points: vec![
                // Cumulative: the first point sets the start, the next two add 30 calls.
                point("http.server.request.duration", 5 * s, 100, 10.0, &[], true),
                point("http.server.request.duration", 15 * s, 110, 11.0, &[], true),
                point("http.server.request.duration", 25 * s, 130, 13.0, &[], true),
                point(
                    "http.client.request.duration",
                    15 * s,
                    24,
                    1.2,
                    &client,
                    false,
                ),
            ],
        }]);
        let w = g.window(0, 30 * s);
        let cart = w.service("cart").expect("cart");
        assert_eq!((cart.red.calls, cart.red.errors), (34, 4));
        assert_eq!(cart.red_source, RedSource::Metrics);
        assert!((cart.red.duration.mean_seconds().unwrap() - 1.7 / 34.0).abs() < 1e-9);
        let frontend = w.service("frontend").expect("frontend");
        assert_eq!(frontend.red.calls, 30);
        assert!((frontend.red.duration.quantile_seconds(0.5).unwrap() - 0.1).abs() < 0.002);
        let edge = w
            .edge("frontend", "cart")
            .expect("the dependency from client metrics");
        assert_eq!((edge.red.calls, edge.red_source), (24, RedSource::Metrics));
        // Detection watches the frontend: nobody calls it.
        assert_eq!(g.entry_services(0, 30 * s), vec!["frontend".to_owned()]);
        assert_eq!(g.service_red("cart", 0, 30 * s).map(|r| r.errors), Some(4));
        // History, diff and blast radius read them too.
        let history = g.entity_history("service:cart", 0, 30 * s, 10 * s).unwrap();
        let calls: Vec<u64> = history.iter().map(|p| p.red.calls).collect();
        assert_eq!(calls, vec![10, 24, 0]);
        let diff = g.diff(&crate::DiffQuery {
            from: 10 * s,
            to: 20 * s,
            window: 10 * s,
            known_at: None,
        });
        let change = diff
            .red_changes
            .iter()
            .find(|c| c.id == "service:cart")
            .expect("cart's RED change");
        assert_eq!((change.before.calls, change.after.calls), (10, 24));
        assert_eq!(change.after.errors, 4);
        assert!(diff
            .red_changes
            .iter()
            .any(|c| c.id == "service:frontend>service:cart" && c.after.calls == 24));
        let radius = g.blast_radius("service:cart", 0, 30 * s).unwrap();
        let frontend = radius
            .dependents
            .iter()
            .find(|d| d.id == "service:frontend")
            .expect("the frontend depends on cart");
        // 24 of the frontend's 30 requests call cart.
        assert!((frontend.traffic_share - 0.8).abs() < 1e-9, "{frontend:?}");
        // One request holding an hour of a pod's points keeps its service valid throughout.
        g.apply_metrics(&[ResourceMetrics {
            resource: resource("ad", "ad-1"),
            points: (0..60u64)
                .map(|m| {
                    point(
                        "k8s.pod.cpu_limit_utilization",
                        m * 60 * s,
                        1,
                        0.1,
                        &[],
                        false,
                    )
                })
                .collect(),
        }]);
        assert!(g.window(50 * 60 * s, 55 * 60 * s).service("ad").is_some());
        // A span for cart: its RED comes from spans from then on.
        g.apply_spans(&[ResourceSpans {
            resource: resource("cart", "cart-1"),
            spans: vec![span(9, 1, None, 21 * s, 22 * s, false)],
        }]);
        g.flush();
        let cart = g.window(0, 30 * s).service("cart").cloned().expect("cart");
        assert_eq!((cart.red.calls, cart.red_source), (1, RedSource::Spans));
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
        let snapshot = g
            .snapshot(&crate::GraphQuery {
                start: 0,
                end: 20_000_000_000,
                ..Default::default()
            })
            .unwrap();
        let calls: Vec<(&str, &str, u64, u64)> = snapshot
            .edges
            .iter()
            .filter(|e| e.kind == "calls" && e.source.starts_with("service:"))
            .map(|e| {
                (
                    e.source.as_str(),
                    e.target.as_str(),
                    e.red.as_ref().map_or(0, |r| r.calls),
                    e.red.as_ref().map_or(0, |r| r.errors),
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

    #[test]
    fn aged_buckets_roll_up_without_losing_counts_or_validity() {
        let config = GraphConfig {
            retention: Retention {
                fine: 60,
                minute: 120,
                ten_minutes: 1_000_000,
            },
            ..GraphConfig::default()
        };
        let mut g = KnowledgeGraph::new(config);
        let second = 1_000_000_000u64;
        // Three hours of one call every 20 s from frontend to cart.
        for n in 0..540u64 {
            let t = n * 20 * second;
            let trace = (n % 250) as u8 + 1;
            g.apply_spans(&[ResourceSpans {
                resource: resource("frontend", "frontend-1"),
                spans: vec![Span {
                    trace_id: TraceId([trace; 16]),
                    span_id: SpanId((n * 2 + 1).to_be_bytes()),
                    ..span(trace, 1, None, t, t + 5_000_000, false)
                }],
            }]);
            g.apply_spans(&[ResourceSpans {
                resource: resource("cart", "cart-1"),
                spans: vec![Span {
                    trace_id: TraceId([trace; 16]),
                    span_id: SpanId((n * 2 + 2).to_be_bytes()),
                    parent_span_id: Some(SpanId((n * 2 + 1).to_be_bytes())),
                    ..span(trace, 2, None, t + 1_000_000, t + 3_000_000, false)
                }],
            }]);
        }
        g.flush();
        let hour = 3600 * second;
        // Every call is still counted, whatever the resolution it is now held at.
        let all = g.window(0, 3 * hour);
        assert_eq!(all.service("cart").map(|s| s.red.calls), Some(540));
        assert_eq!(all.edge("frontend", "cart").map(|e| e.red.calls), Some(540));
        // Ten-minute-aligned windows over rolled-up data are exact.
        let first_half_hour = g.window(0, hour / 2);
        assert_eq!(
            first_half_hour.service("cart").map(|s| s.red.calls),
            Some(90)
        );
        // Buckets are bounded: 10 s for the last 10 minutes, 1 min for 20 more, 10 min before.
        let cart = g.entities[&EntityKind::Service]["cart"];
        assert!(
            g.graph[cart].red.len() < 60 + 20 + 20,
            "{}",
            g.graph[cart].red.len()
        );
        // Validity is one interval from the first call to five minutes after the last.
        let intervals = g.graph[cart].validity.intervals(None, g.config.widths());
        assert_eq!(intervals.len(), 1, "{intervals:?}");
        assert_eq!(intervals[0].valid_from, 0);
        assert_eq!(
            intervals[0].valid_to,
            539 * 20 * second + 10 * second + 300 * second
        );
    }
}
