//! Read-side views of the graph over a time window: summaries for the API and merged
//! statistics for the analysis. Windows are half-open, `[start, end)` in unix nanoseconds, and
//! cover the buckets from the one holding `start` up to, not including, the one holding `end`:
//! two adjacent windows never share a bucket.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeRef, NodeIndexable};

use serde::Serialize;

use crate::call_paths::{merge_transitions, CallTransition, PATH_END, PATH_START};
use crate::graph::{Entity, EntityKind, KnowledgeGraph, Relation, RelationKind};
use crate::series::{Merge, Series};
use crate::stats::{GaugeStats, LogStats, RedStats};
use crate::templates::TemplateCounts;
use crate::traces::TraceStats;

/// A stable entity id: `<kind>:<name>`, e.g. `service:checkout`, `pod:checkout-7d9f-x2x`,
/// `operation:checkout POST /cart`.
pub type EntityId = String;

fn entity_id(e: &Entity) -> EntityId {
    format!("{}:{}", e.kind.as_str(), e.name)
}

/// RED figures of a window, JSON-ready. Durations in seconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RedSummary {
    /// Spans (calls counted by request-duration metrics where there are no spans).
    pub calls: u64,
    /// Spans with status `Error` (failed calls, by the metrics' attributes, where there are no
    /// spans).
    pub errors: u64,
    /// `errors / calls`, 0 when there are no calls.
    pub error_ratio: f64,
    /// Median duration, seconds.
    pub duration_p50_seconds: Option<f64>,
    /// 90th percentile duration, seconds.
    pub duration_p90_seconds: Option<f64>,
    /// 99th percentile duration, seconds.
    pub duration_p99_seconds: Option<f64>,
    /// Mean self time, seconds.
    pub self_time_mean_seconds: Option<f64>,
}

impl From<&RedStats> for RedSummary {
    fn from(r: &RedStats) -> Self {
        Self {
            calls: r.calls,
            errors: r.errors,
            error_ratio: if r.calls > 0 {
                r.errors as f64 / r.calls as f64
            } else {
                0.0
            },
            duration_p50_seconds: r.duration.quantile_seconds(0.5),
            duration_p90_seconds: r.duration.quantile_seconds(0.9),
            duration_p99_seconds: r.duration.quantile_seconds(0.99),
            self_time_mean_seconds: r.self_time.mean_seconds(),
        }
    }
}

/// One service over a window, for `GET /api/v1/services`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceSummary {
    /// `service.name`.
    pub name: String,
    /// RED figures.
    #[serde(flatten)]
    pub red: RedSummary,
    /// Log records.
    pub log_records: u64,
    /// Error log records.
    pub error_log_records: u64,
}

/// A graph node, for `GET /api/v1/graph`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeView {
    /// Entity id.
    pub id: EntityId,
    /// Its kind ([`crate::EntityKind`]): `service`, `operation`, `pod`, `node`, `database`….
    pub kind: &'static str,
    /// Entity name.
    pub name: String,
    /// The owning service of an operation or pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// First observation ever, unix nanoseconds.
    pub first_seen_unix_nano: u64,
    /// Last observation ever, unix nanoseconds.
    pub last_seen_unix_nano: u64,
    /// RED figures within the window (services, operations, pods); absent when the query
    /// asked for the structure only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub red: Option<RedSummary>,
}

/// A graph edge, for `GET /api/v1/graph`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgeView {
    /// Its kind ([`crate::RelationKind`]): `calls`, `runs_on`, `part_of`, `queries`….
    pub kind: &'static str,
    /// Source entity id.
    pub source: EntityId,
    /// Target entity id.
    pub target: EntityId,
    /// Observations of the relation within the window; absent for the structure only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observations: Option<u64>,
    /// RED figures over the window (on a `calls` edge, of the callee's spans or the client's
    /// request-duration metrics); absent for the structure only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub red: Option<RedSummary>,
}

/// What a graph snapshot asks for.
#[derive(Debug, Clone, Default)]
pub struct GraphQuery {
    /// Window start, unix nanoseconds.
    pub start: u64,
    /// Window end (exclusive), unix nanoseconds; equal to `start` for the instant.
    pub end: u64,
    /// Record time: what loupe knew then (`None`: everything recorded so far).
    pub known_at: Option<u64>,
    /// Restrict to the neighbourhood of this entity id (`service:checkout`).
    pub focus: Option<EntityId>,
    /// Relations to follow from the focus, in either direction.
    pub depth: usize,
    /// Leave out the window's statistics: the structure only, which is much cheaper.
    pub structure_only: bool,
}

/// A query named an entity the graph does not hold (at that time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no entity {0} in the graph at that time")]
pub struct UnknownEntity(pub EntityId);

/// The graph as seen in a window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GraphSnapshot {
    /// Entities active in the window.
    pub nodes: Vec<NodeView>,
    /// Relations observed in the window.
    pub edges: Vec<EdgeView>,
}

/// Where a window's RED figures come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedSource {
    /// Spans (the figures include self time).
    #[default]
    Spans,
    /// Request-duration metrics, where the window has no spans: calls, errors and durations
    /// (each point's mean), no self time.
    Metrics,
}

/// Span RED figures over `[start, end)` of `spans`, or those of `metrics` when there are none.
pub(crate) fn red_or_metrics(
    spans: &Series<RedStats>,
    metrics: &Series<RedStats>,
    start: u64,
    end: u64,
    merge: impl Fn(&mut RedStats, &RedStats) + Copy,
) -> (RedStats, RedSource) {
    let red = spans.merged_with(start, end, merge);
    if red.calls > 0 {
        return (red, RedSource::Spans);
    }
    let from_metrics = metrics.merged_with(start, end, merge);
    if from_metrics.calls > 0 {
        (from_metrics, RedSource::Metrics)
    } else {
        (red, RedSource::Spans)
    }
}

/// A service's merged statistics over a window, for the analysis.
#[derive(Debug, Clone, Default)]
pub struct ServiceWindow {
    /// `service.name`.
    pub name: String,
    /// Merged RED figures.
    pub red: RedStats,
    /// Where `red` comes from.
    pub red_source: RedSource,
    /// Merged log counts.
    pub logs: LogStats,
    /// The traces that passed through it, by the bucket of their start.
    pub traces: TraceStats,
}

/// An operation's merged statistics over a window, for the analysis.
#[derive(Debug, Clone, Default)]
pub struct OperationWindow {
    /// Owning service.
    pub service: String,
    /// Operation (span) name.
    pub name: String,
    /// Merged RED figures.
    pub red: RedStats,
    /// Log records written within the operation's spans (by their span id).
    pub logs: LogStats,
    /// The operation's spans per log template: how many wrote at least one record of each.
    pub templates: TemplateCounts,
    /// The transitions of its spans' call paths (see [`crate::call_paths`]).
    pub call_paths: Vec<CallTransition>,
}

/// A `calls` relation's merged statistics over a window.
#[derive(Debug, Clone, Default)]
pub struct EdgeWindow {
    /// Caller service.
    pub source: String,
    /// Callee service.
    pub target: String,
    /// Callee spans' RED figures (or the caller's client-side metrics', see `source`).
    pub red: RedStats,
    /// Where `red` comes from.
    pub red_source: RedSource,
}

/// A service's queries to a database over a window, as its client spans (or client metrics)
/// measured them.
#[derive(Debug, Clone, Default)]
pub struct QueryWindow {
    /// Calling service.
    pub source: String,
    /// The database entity's name, `<db.system.name>/<db.namespace>` (see the graph's
    /// database key: else the collection or the server address).
    pub database: String,
    /// The client spans' RED figures, or the caller's `db.client.operation.duration` metrics'
    /// where it sent no spans (duration: the query as the caller waited for it).
    pub red: RedStats,
}

/// A pod's statistics over a window.
#[derive(Debug, Clone, Default)]
pub struct PodWindow {
    /// `k8s.pod.name`.
    pub name: String,
    /// Owning service.
    pub service: Option<String>,
    /// The node it ran on (`k8s.node.name`), when known.
    pub node: Option<String>,
    /// Merged log counts.
    pub logs: LogStats,
    /// Mean of each metric over the window.
    pub gauges: BTreeMap<String, GaugeStats>,
}

/// Everything the analysis reads from one window.
#[derive(Debug, Clone, Default)]
pub struct WindowStats {
    /// Window start, unix nanoseconds.
    pub start: u64,
    /// Window end, unix nanoseconds.
    pub end: u64,
    /// Time within the window that has any span or log record, nanoseconds (the number of
    /// buckets with data times the bucket width): rates are per observed time, so gaps in the
    /// data do not read as silence.
    pub observed_nanos: u64,
    /// Services with any activity in the window.
    pub services: Vec<ServiceWindow>,
    /// Operations with spans in the window.
    pub operations: Vec<OperationWindow>,
    /// Service-level `calls` relations with calls in the window.
    pub edges: Vec<EdgeWindow>,
    /// Pods with any activity in the window.
    pub pods: Vec<PodWindow>,
    /// Service → database `queries` relations with queries in the window.
    pub queries: Vec<QueryWindow>,
    /// Every trace that started in the window (see [`ServiceWindow::traces`]).
    pub traces: TraceStats,
}

/// `items` mapped by `f`, in order, on up to as many threads as the machine has cores when the
/// list is long enough to be worth it (window statistics of tens of thousands of relations).
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const MIN_PER_THREAD: usize = 2_048;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / MIN_PER_THREAD)
        .clamp(1, 8);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

impl KnowledgeGraph {
    pub(crate) fn buckets(&self, start: u64, end: u64) -> Range<u64> {
        let b = self.config.bucket_nanos;
        (start / b)..(end / b)
    }

    fn active(e: &Entity, start: u64, end: u64) -> bool {
        e.first_seen < end && e.last_seen >= start
    }

    /// Services active in `[start, end)`, with RED figures and log counts, by name.
    pub fn services(&self, start: u64, end: u64) -> Vec<ServiceSummary> {
        self.window(start, end)
            .services
            .iter()
            .map(|s| ServiceSummary {
                name: s.name.clone(),
                red: RedSummary::from(&s.red),
                log_records: s.logs.records,
                error_log_records: s.logs.error_records,
            })
            .collect()
    }

    /// The graph as of a window: the entities and relations valid at any time in
    /// `[query.start, query.end)` as loupe knew them at `query.known_at` (now when `None`), with
    /// their statistics over the window; around one entity when `query.focus` names it. Ids
    /// sorted.
    ///
    /// # Errors
    /// [`UnknownEntity`] when the focus entity does not exist.
    pub fn snapshot(&self, query: &GraphQuery) -> Result<GraphSnapshot, UnknownEntity> {
        let (start, end, known_at) = (query.start, query.end, query.known_at);
        let widths = self.config.widths();
        let r = self.buckets(start, end);
        // Flags by node index (a stable graph's indices are dense enough).
        let mut valid = vec![false; self.graph.node_bound()];
        for i in self.graph.node_indices() {
            valid[i.index()] = self.graph[i]
                .validity
                .valid_during(start, end, known_at, widths);
        }
        let edges: Vec<EdgeIndex> = self
            .graph
            .edge_indices()
            .filter(|i| {
                let Some((a, b)) = self.graph.edge_endpoints(*i) else {
                    return false;
                };
                valid[a.index()]
                    && valid[b.index()]
                    && self.graph[*i]
                        .validity
                        .valid_during(start, end, known_at, widths)
            })
            .collect();
        let reached: Vec<NodeIndex> = match &query.focus {
            None => self
                .graph
                .node_indices()
                .filter(|i| valid[i.index()])
                .collect(),
            Some(id) => {
                let from = self
                    .find(id)
                    .filter(|i| valid[i.index()])
                    .ok_or_else(|| UnknownEntity(id.clone()))?;
                self.neighbourhood(from, &edges, query.depth)
                    .into_iter()
                    .collect()
            }
        };
        // Ids once per node; edges sort by their ends' places in the sorted node list.
        let mut order: Vec<(EntityId, NodeIndex)> = reached
            .iter()
            .map(|i| (entity_id(&self.graph[*i]), *i))
            .collect();
        order.sort_unstable();
        let mut place = vec![usize::MAX; self.graph.node_bound()];
        order
            .iter()
            .enumerate()
            .for_each(|(p, (_, i))| place[i.index()] = p);
        let mut edges: Vec<(&'static str, usize, usize, EdgeIndex)> = edges
            .into_iter()
            .filter_map(|i| {
                let (source, target) = self.graph.edge_endpoints(i)?;
                let (a, b) = (place[source.index()], place[target.index()]);
                (a != usize::MAX && b != usize::MAX).then(|| (self.graph[i].kind.as_str(), a, b, i))
            })
            .collect();
        edges.sort_unstable();
        // Statistics are read in the order relations are stored (near the order their buckets
        // were allocated in, so reads that follow each other land near each other), then
        // placed by id.
        let mut stored: Vec<(EdgeIndex, usize)> =
            edges.iter().enumerate().map(|(p, e)| (e.3, p)).collect();
        stored.sort_unstable();
        let mut stats: Vec<Option<(u64, RedSummary)>> = vec![None; edges.len()];
        if !query.structure_only {
            let figures = par_map(&stored, |(i, _)| {
                let rel = &self.graph[*i];
                let merge = RedStats::merge_for_summary;
                (
                    rel.seen.merged(r.start, r.end),
                    RedSummary::from(
                        &red_or_metrics(&rel.red, &rel.metric_red, r.start, r.end, merge).0,
                    ),
                )
            });
            for ((_, p), f) in stored.iter().zip(figures) {
                stats[*p] = Some(f);
            }
        }
        let places: Vec<usize> = (0..edges.len()).collect();
        let edges: Vec<EdgeView> = par_map(&places, |&p| {
            let (kind, source, target, _) = edges[p];
            let (observations, red) = stats[p].clone().unzip();
            EdgeView {
                kind,
                source: order[source].0.clone(),
                target: order[target].0.clone(),
                observations,
                red,
            }
        });
        let nodes: Vec<NodeView> = par_map(&order, |(id, i)| {
            let e = &self.graph[*i];
            NodeView {
                id: id.clone(),
                kind: e.kind.as_str(),
                name: e.display.clone().unwrap_or_else(|| e.name.clone()),
                service: e.service.clone(),
                first_seen_unix_nano: e.first_seen,
                last_seen_unix_nano: e.last_seen,
                red: (!query.structure_only).then(|| {
                    let merge = RedStats::merge_for_summary;
                    RedSummary::from(
                        &red_or_metrics(&e.red, &e.metric_red, r.start, r.end, merge).0,
                    )
                }),
            }
        });
        Ok(GraphSnapshot { nodes, edges })
    }

    /// The id of the entity at `index`.
    pub(crate) fn id_of(&self, index: NodeIndex) -> EntityId {
        entity_id(&self.graph[index])
    }

    /// The entities of `kinds` valid at some time in `[start, end)`, as `(kind, id, name)`
    /// (the name a person reads: a pod's without its uid), in no order. Cheaper than a
    /// structure-only [`Self::snapshot`]: no relations, no operations unless asked for.
    pub fn names(
        &self,
        kinds: &[EntityKind],
        start: u64,
        end: u64,
    ) -> Vec<(&'static str, String, String)> {
        let widths = self.config.widths();
        let mut out = Vec::new();
        for kind in kinds {
            let Some(by_name) = self.entities.get(kind) else {
                continue;
            };
            for index in by_name.values() {
                let e = &self.graph[*index];
                if e.validity.valid_during(start, end, None, widths) {
                    out.push((
                        e.kind.as_str(),
                        entity_id(e),
                        e.display.clone().unwrap_or_else(|| e.name.clone()),
                    ));
                }
            }
        }
        out
    }

    /// The entity with id `kind:name`.
    pub(crate) fn find(&self, id: &str) -> Option<NodeIndex> {
        let (kind, name) = id.split_once(':')?;
        let indexed = self
            .entities
            .iter()
            .find(|(k, _)| k.as_str() == kind)
            .and_then(|(_, by_name)| by_name.get(name));
        if let Some(i) = indexed {
            return Some(*i);
        }
        // Operations are indexed by service, not by name.
        self.graph
            .node_indices()
            .find(|i| self.graph[*i].kind.as_str() == kind && self.graph[*i].name == name)
    }

    /// Entities within `depth` relations of `from` (either direction) along `edges`.
    fn neighbourhood(
        &self,
        from: NodeIndex,
        edges: &[EdgeIndex],
        depth: usize,
    ) -> HashSet<NodeIndex> {
        let mut adjacent: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
        for (a, b) in edges.iter().filter_map(|i| self.graph.edge_endpoints(*i)) {
            adjacent.entry(a).or_default().push(b);
            adjacent.entry(b).or_default().push(a);
        }
        let mut reached = HashSet::from([from]);
        let mut frontier = vec![from];
        for _ in 0..depth {
            let mut next = Vec::new();
            for n in frontier {
                for m in adjacent.get(&n).into_iter().flatten() {
                    if reached.insert(*m) {
                        next.push(*m);
                    }
                }
            }
            frontier = next;
        }
        reached
    }

    /// Merged statistics of `[start, end)` for the analysis: services, service-level `calls`
    /// edges and pods, each sorted by name.
    pub fn window(&self, start: u64, end: u64) -> WindowStats {
        let r = self.buckets(start, end);
        let bucket_nanos = self.config.bucket_nanos;
        let mut out = WindowStats {
            start,
            end,
            traces: self.all_traces.merged(r.start, r.end),
            ..Default::default()
        };
        for (i, e) in self
            .graph
            .node_indices()
            .map(|i| (i, &self.graph[i]))
            .filter(|(_, e)| Self::active(e, start, end))
        {
            match e.kind {
                EntityKind::Service => {
                    let (red, source) =
                        red_or_metrics(&e.red, &e.metric_red, r.start, r.end, RedStats::merge);
                    out.services.push(ServiceWindow {
                        name: e.name.clone(),
                        red,
                        red_source: source,
                        logs: e.logs.merged(r.start, r.end),
                        traces: e.traces.merged(r.start, r.end),
                    });
                }
                EntityKind::Pod => out.pods.push(PodWindow {
                    name: e.name.clone(),
                    service: e.service.clone(),
                    node: self
                        .graph
                        .edges(i)
                        .filter(|r| r.weight().kind == RelationKind::RunsOn)
                        .map(|r| &self.graph[r.target()])
                        .find(|n| n.kind == EntityKind::Node && Self::active(n, start, end))
                        .map(|n| n.name.clone()),
                    logs: e.logs.merged(r.start, r.end),
                    gauges: e
                        .gauges
                        .iter()
                        .map(|(name, series)| (name.clone(), series.merged(r.start, r.end)))
                        .filter(|(_, g)| g.count > 0)
                        .collect(),
                }),
                EntityKind::Operation => {
                    let red = e.red.merged(r.start, r.end);
                    if red.calls > 0 {
                        let service = e.service.clone().unwrap_or_default();
                        let name = e
                            .name
                            .strip_prefix(&format!("{service} "))
                            .unwrap_or(&e.name)
                            .to_owned();
                        let logs = e.logs.merged(r.start, r.end);
                        let templates = e.templates.merged(r.start, r.end);
                        let step = |id: u32| {
                            (id != PATH_START && id != PATH_END)
                                .then(|| self.graph.node_weight(NodeIndex::new(id as usize)))
                                .flatten()
                                .map(|e| e.name.clone())
                        };
                        let call_paths = e
                            .call_paths
                            .merged(r.start, r.end)
                            .0
                            .into_iter()
                            .map(|((from, to), spans)| CallTransition {
                                from: step(from),
                                to: step(to),
                                spans,
                            })
                            .collect();
                        out.operations.push(OperationWindow {
                            service,
                            name,
                            red,
                            logs,
                            templates,
                            call_paths,
                        });
                    }
                }
                _ => {}
            }
        }
        for (a, b, rel) in self.service_calls() {
            let (red, source) =
                red_or_metrics(&rel.red, &rel.metric_red, r.start, r.end, RedStats::merge);
            if red.calls > 0 {
                out.edges.push(EdgeWindow {
                    source: a.name.clone(),
                    target: b.name.clone(),
                    red,
                    red_source: source,
                });
            }
        }
        for i in self.graph.edge_indices() {
            let rel = &self.graph[i];
            if rel.kind != RelationKind::Queries {
                continue;
            }
            let Some((a, b)) = self.graph.edge_endpoints(i) else {
                continue;
            };
            let (red, _) =
                red_or_metrics(&rel.red, &rel.metric_red, r.start, r.end, RedStats::merge);
            if red.calls > 0 {
                out.queries.push(QueryWindow {
                    source: self.graph[a].name.clone(),
                    database: self.graph[b].name.clone(),
                    red,
                });
            }
        }
        let mut observed = std::collections::BTreeSet::new();
        for e in self
            .graph
            .node_weights()
            .filter(|e| e.kind == EntityKind::Service)
        {
            let mut add =
                |key: u64, width: u64| observed.extend(key.max(r.start)..(key + width).min(r.end));
            e.red.for_each_sized(r.start, r.end, |k, w, _| add(k, w));
            e.metric_red
                .for_each_sized(r.start, r.end, |k, w, _| add(k, w));
            e.logs.for_each_sized(r.start, r.end, |k, w, _| add(k, w));
        }
        out.observed_nanos = observed.len() as u64 * bucket_nanos;
        out.services.sort_by(|a, b| a.name.cmp(&b.name));
        out.pods.sort_by(|a, b| a.name.cmp(&b.name));
        out.operations
            .sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        out.edges
            .sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
        out.queries
            .sort_by(|a, b| (&a.source, &a.database).cmp(&(&b.source, &b.database)));
        out
    }
}

/// One time bucket of one service → service `calls` edge, as stored (10 s, or 1 min and
/// 10 min once rolled up).
#[derive(Debug, Clone)]
pub struct EdgeBucket {
    /// Bucket start, unix ns.
    pub start_unix_nano: u64,
    /// Bucket width, seconds.
    pub width_seconds: u64,
    /// Calling service.
    pub source: String,
    /// Called service (or external endpoint).
    pub target: String,
    /// RED statistics of the calls in the bucket.
    pub red: RedStats,
}

impl KnowledgeGraph {
    /// The `calls` relations whose caller is a service, with both ends.
    fn service_calls(&self) -> impl Iterator<Item = (&Entity, &Entity, &Relation)> {
        self.graph.edge_indices().filter_map(|i| {
            let (source, target) = self.graph.edge_endpoints(i)?;
            let (a, rel) = (&self.graph[source], &self.graph[i]);
            (rel.kind == RelationKind::Calls && a.kind == EntityKind::Service)
                .then(|| (a, &self.graph[target], rel))
        })
    }

    /// Every stored bucket of service → service `calls` edges that starts in `[start, end)`
    /// (unix ns), by edge then time: the graph's edge statistics as rows (SQL `service_edges`).
    pub fn edge_buckets(&self, start: u64, end: u64) -> Vec<EdgeBucket> {
        let r = self.buckets(start, end);
        let nanos = self.config.bucket_nanos;
        let mut out = Vec::new();
        for (a, b, rel) in self.service_calls() {
            rel.red.for_each_sized(r.start, r.end, |key, width, red| {
                out.push(EdgeBucket {
                    start_unix_nano: key * nanos,
                    width_seconds: width * nanos / 1_000_000_000,
                    source: a.name.clone(),
                    target: b.name.clone(),
                    red: red.clone(),
                })
            });
        }
        out.sort_by(|x, y| {
            (&x.source, &x.target, x.start_unix_nano).cmp(&(
                &y.source,
                &y.target,
                y.start_unix_nano,
            ))
        });
        out
    }
}

impl WindowStats {
    /// A service by name (binary search: the lists are kept sorted).
    pub fn service(&self, name: &str) -> Option<&ServiceWindow> {
        let i = self
            .services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()?;
        Some(&self.services[i])
    }

    /// The `calls` edge from `source` to `target`.
    pub fn edge(&self, source: &str, target: &str) -> Option<&EdgeWindow> {
        let key = (source, target);
        let i = self
            .edges
            .binary_search_by(|e| (e.source.as_str(), e.target.as_str()).cmp(&key))
            .ok()?;
        Some(&self.edges[i])
    }

    /// The operations of `service`, by name.
    pub fn operations_of(&self, service: &str) -> &[OperationWindow] {
        let start = self
            .operations
            .partition_point(|o| o.service.as_str() < service);
        let end = self
            .operations
            .partition_point(|o| o.service.as_str() <= service);
        &self.operations[start..end]
    }

    /// One operation of `service`.
    pub fn operation(&self, service: &str, name: &str) -> Option<&OperationWindow> {
        let ops = self.operations_of(service);
        let i = ops.binary_search_by(|o| o.name.as_str().cmp(name)).ok()?;
        Some(&ops[i])
    }

    /// Adds another window's statistics to these (same services, edges and pods summed), for a
    /// reference made of several disjoint periods. The bounds become the hull of both.
    pub fn merge_from(&mut self, other: &WindowStats) {
        self.observed_nanos += other.observed_nanos;
        self.traces.merge(&other.traces);
        if self.services.is_empty()
            && self.edges.is_empty()
            && self.pods.is_empty()
            && self.queries.is_empty()
        {
            (self.start, self.end) = (other.start, other.end);
        } else {
            self.start = self.start.min(other.start);
            self.end = self.end.max(other.end);
        }
        for s in &other.services {
            match self.services.iter_mut().find(|x| x.name == s.name) {
                Some(x) => {
                    x.red.merge(&s.red);
                    x.logs.merge(&s.logs);
                    x.traces.merge(&s.traces);
                }
                None => self.services.push(s.clone()),
            }
        }
        for o in &other.operations {
            match self
                .operations
                .iter_mut()
                .find(|x| x.service == o.service && x.name == o.name)
            {
                Some(x) => {
                    x.red.merge(&o.red);
                    x.logs.merge(&o.logs);
                    x.templates.merge_from(&o.templates);
                    merge_transitions(&mut x.call_paths, &o.call_paths);
                }
                None => self.operations.push(o.clone()),
            }
        }
        for e in &other.edges {
            match self
                .edges
                .iter_mut()
                .find(|x| x.source == e.source && x.target == e.target)
            {
                Some(x) => x.red.merge(&e.red),
                None => self.edges.push(e.clone()),
            }
        }
        for q in &other.queries {
            match self
                .queries
                .iter_mut()
                .find(|x| x.source == q.source && x.database == q.database)
            {
                Some(x) => x.red.merge(&q.red),
                None => self.queries.push(q.clone()),
            }
        }
        for p in &other.pods {
            match self.pods.iter_mut().find(|x| x.name == p.name) {
                Some(x) => {
                    x.logs.merge(&p.logs);
                    if x.node.is_none() {
                        x.node.clone_from(&p.node);
                    }
                    for (metric, g) in &p.gauges {
                        x.gauges.entry(metric.clone()).or_default().merge(g);
                    }
                }
                None => self.pods.push(p.clone()),
            }
        }
        // Keep every list sorted, as `window` makes them, for the lookups above.
        self.services.sort_by(|a, b| a.name.cmp(&b.name));
        self.pods.sort_by(|a, b| a.name.cmp(&b.name));
        self.operations
            .sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        self.edges
            .sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
        self.queries
            .sort_by(|a, b| (&a.source, &a.database).cmp(&(&b.source, &b.database)));
    }
}
