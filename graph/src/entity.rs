//! One entity: its validity intervals, versions, relations and changes; its RED figures over
//! time; and its blast radius, everything that depends on it.

use std::collections::{BTreeMap, HashMap};

use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::Direction;
use serde::Serialize;

use crate::changes::ChangeRecord;
use crate::graph::{EntityKind, KnowledgeGraph, RelationKind};
use crate::series::Series;
use crate::stats::{LogStats, RedStats};
use crate::temporal::Interval;
use crate::view::{red_or_metrics, EntityId, RedSummary, UnknownEntity};

/// A version a service ran, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionSeen {
    /// `service.version`.
    pub version: String,
    /// First valid time seen, unix nanoseconds.
    pub first_seen_unix_nano: u64,
    /// Last valid time seen, unix nanoseconds.
    pub last_seen_unix_nano: u64,
}

/// A relation of the entity, seen from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelationOf {
    /// Relation kind.
    pub kind: &'static str,
    /// `out` (from this entity) or `in` (to it).
    pub direction: &'static str,
    /// The other end.
    pub other: EntityId,
    /// When the relation was valid, as known at the query's record time.
    pub intervals: Vec<Interval>,
}

/// `GET /api/v1/entities/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityDetail {
    /// Entity id.
    pub id: EntityId,
    /// Kind.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// Owning service, for operations, instances and pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// When it was valid, as known at the query's record time.
    pub intervals: Vec<Interval>,
    /// The versions a service ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionSeen>,
    /// Its relations.
    pub relations: Vec<RelationOf>,
    /// Changes and events that concern it.
    pub changes: Vec<ChangeRecord>,
}

/// One step of an entity's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// Step start, unix nanoseconds.
    pub start_unix_nano: u64,
    /// RED figures of the step.
    #[serde(flatten)]
    pub red: RedSummary,
    /// Log records.
    pub log_records: u64,
    /// Error log records.
    pub error_log_records: u64,
}

/// One dependent in a blast radius.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dependent {
    /// Entity id.
    pub id: EntityId,
    /// Relations between it and the entity (1: a direct dependent).
    pub distance: usize,
    /// Estimated share of its traffic that goes through the entity, 0..1.
    pub traffic_share: f64,
}

/// `GET /api/v1/entities/{id}/blast-radius`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlastRadius {
    /// The entity.
    pub id: EntityId,
    /// The window the traffic shares come from, `[start, end)` unix nanoseconds.
    pub window: [u64; 2],
    /// Everything that depends on it, nearest and most dependent first.
    pub dependents: Vec<Dependent>,
}

/// Where a service runs, for suggested commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Placement {
    /// Kubernetes namespace of its pods, when known.
    pub namespace: Option<String>,
    /// Its workloads as `(kind, name)`: `("deployment", "checkout")`.
    pub workloads: Vec<(String, String)>,
    /// Its pods' names.
    pub pods: Vec<String>,
}

impl KnowledgeGraph {
    /// Where `service` runs (pods, their workloads and namespace), from the `runs_on` and
    /// `part_of` relations; `None` for an unknown service.
    pub fn placement(&self, service: &str) -> Option<Placement> {
        use petgraph::visit::EdgeRef;
        let i = *self.entities.get(&EntityKind::Service)?.get(service)?;
        let mut out = Placement::default();
        for pod in self
            .graph
            .edges_directed(i, Direction::Outgoing)
            .filter(|e| e.weight().kind == RelationKind::RunsOn)
            .map(|e| e.target())
            .filter(|p| self.graph[*p].kind == EntityKind::Pod)
        {
            let p = &self.graph[pod];
            let name = p.display.clone().unwrap_or_else(|| p.name.clone());
            let (ns, short) = match name.split_once('/') {
                Some((ns, n)) => (Some(ns.to_owned()), n.to_owned()),
                None => (None, name),
            };
            let short = short.split('@').next().unwrap_or(&short).to_owned();
            out.pods.push(short);
            for w in self
                .graph
                .edges_directed(pod, Direction::Outgoing)
                .filter(|e| e.weight().kind == RelationKind::PartOf)
                .map(|e| e.target())
                .filter(|w| self.graph[*w].kind == EntityKind::Workload)
            {
                // Workload keys are `namespace/kind/name` or `kind/name`.
                let parts: Vec<&str> = self.graph[w].name.split('/').collect();
                let (ns, kind, name) = match parts.as_slice() {
                    [ns, kind, name] => (Some((*ns).to_owned()), *kind, *name),
                    [kind, name] => (None, *kind, *name),
                    _ => continue,
                };
                let workload = (kind.to_owned(), name.to_owned());
                if !out.workloads.contains(&workload) {
                    out.workloads.push(workload);
                }
                out.namespace = out.namespace.take().or(ns);
            }
            out.namespace = out.namespace.take().or(ns);
        }
        out.pods.sort();
        out.pods.dedup();
        Some(out)
    }

    fn lookup(&self, id: &str) -> Result<NodeIndex, UnknownEntity> {
        self.find(id).ok_or_else(|| UnknownEntity(id.to_owned()))
    }

    /// The entity `id` (`kind:name`) as known at `known_at` (`None`: now).
    ///
    /// # Errors
    /// [`UnknownEntity`] when there is no such entity.
    pub fn entity_detail(
        &self,
        id: &str,
        known_at: Option<u64>,
    ) -> Result<EntityDetail, UnknownEntity> {
        let i = self.lookup(id)?;
        let e = &self.graph[i];
        let w = self.config.widths();
        let intervals = e.validity.intervals(known_at, w);
        if intervals.is_empty() {
            return Err(UnknownEntity(id.to_owned()));
        }
        let mut relations: Vec<RelationOf> = [Direction::Outgoing, Direction::Incoming]
            .into_iter()
            .flat_map(|d| {
                self.graph
                    .edges_directed(i, d)
                    .map(move |edge| (d, edge))
                    .collect::<Vec<_>>()
            })
            .filter_map(|(d, edge)| {
                use petgraph::visit::EdgeRef;
                let other = if d == Direction::Outgoing {
                    edge.target()
                } else {
                    edge.source()
                };
                let intervals = edge.weight().validity.intervals(known_at, w);
                (!intervals.is_empty()).then(|| RelationOf {
                    kind: edge.weight().kind.as_str(),
                    direction: if d == Direction::Outgoing {
                        "out"
                    } else {
                        "in"
                    },
                    other: self.id_of(other),
                    intervals,
                })
            })
            .collect();
        relations
            .sort_by(|a, b| (a.kind, a.direction, &a.other).cmp(&(b.kind, b.direction, &b.other)));
        let changes = self
            .change_log
            .iter()
            .filter(|c| c.id == id || c.targets.iter().any(|t| t == id))
            .filter(|c| known_at.is_none_or(|k| c.recorded_at <= k))
            .cloned()
            .collect();
        Ok(EntityDetail {
            id: id.to_owned(),
            kind: e.kind.as_str(),
            name: e.display.clone().unwrap_or_else(|| e.name.clone()),
            service: e.service.clone(),
            intervals,
            versions: e
                .versions
                .iter()
                .map(|(v, (first, last))| VersionSeen {
                    version: v.clone(),
                    first_seen_unix_nano: *first,
                    last_seen_unix_nano: *last,
                })
                .collect(),
            relations,
            changes,
        })
    }

    /// The entity's RED figures and log counts in steps of `step` nanoseconds over
    /// `[start, end)` (steps are whole buckets; empty steps included).
    ///
    /// # Errors
    /// [`UnknownEntity`] when there is no such entity.
    pub fn entity_history(
        &self,
        id: &str,
        start: u64,
        end: u64,
        step: u64,
    ) -> Result<Vec<HistoryPoint>, UnknownEntity> {
        let i = self.lookup(id)?;
        let e = &self.graph[i];
        let b = self.config.bucket_nanos;
        let step_buckets = (step / b).max(1);
        let first = start / b;
        // Per step: span figures, request-duration metric figures and log counts.
        let mut points: BTreeMap<u64, (RedStats, RedStats, LogStats)> = BTreeMap::new();
        let mut s = first;
        while s < end.div_ceil(b) {
            points.insert(s, Default::default());
            s += step_buckets;
        }
        let slot = |bucket: u64| first + (bucket - first) / step_buckets * step_buckets;
        let r = self.buckets(start, end);
        e.red.for_each(r.start, r.end, |bucket, red| {
            if let Some(p) = points.get_mut(&slot(bucket.max(first))) {
                p.0.merge(red);
            }
        });
        e.metric_red.for_each(r.start, r.end, |bucket, red| {
            if let Some(p) = points.get_mut(&slot(bucket.max(first))) {
                p.1.merge(red);
            }
        });
        e.logs.for_each(r.start, r.end, |bucket, logs| {
            if let Some(p) = points.get_mut(&slot(bucket.max(first))) {
                p.2.merge(logs);
            }
        });
        Ok(points
            .into_iter()
            .map(|(bucket, (spans, metrics, logs))| HistoryPoint {
                start_unix_nano: bucket * b,
                // A step without spans shows the request-duration metrics (as a window does).
                red: RedSummary::from(if spans.calls == 0 && metrics.calls > 0 {
                    &metrics
                } else {
                    &spans
                }),
                log_records: logs.records,
                error_log_records: logs.error_records,
            })
            .collect())
    }

    /// Everything that depends on `id`, transitively, along relations valid in `[start, end)`:
    /// the callers of a service (and their callers), the services that query a database or
    /// publish to a destination, the services running on a pod or node and their callers.
    ///
    /// The traffic share of a dependent `d` estimates the fraction of its requests that reach
    /// the entity, from the window's call counts, assuming calls are independent: a direct
    /// caller's share is `calls(d → x) / requests(d)` (capped at 1); a transitive one's is
    /// `Σ over its callees c on the way of calls(d → c) / requests(d) · share(c)`. A service
    /// running on an infrastructure entity has the share of its calls served there.
    ///
    /// # Errors
    /// [`UnknownEntity`] when there is no such entity in the window.
    pub fn blast_radius(
        &self,
        id: &str,
        start: u64,
        end: u64,
    ) -> Result<BlastRadius, UnknownEntity> {
        let target = self.lookup(id)?;
        let w = self.config.widths();
        if !self.graph[target]
            .validity
            .valid_during(start, end, None, w)
        {
            return Err(UnknownEntity(id.to_owned()));
        }
        let r = self.buckets(start, end);
        // Calls in the window: the spans', or the request-duration metrics' where there are no
        // spans (a metrics-only deployment).
        let calls_of = |spans: &Series<RedStats>, metrics: &Series<RedStats>| -> u64 {
            red_or_metrics(spans, metrics, r.start, r.end, RedStats::merge_for_summary)
                .0
                .calls
        };
        let valid = |e: EdgeIndex| self.graph[e].validity.valid_during(start, end, None, w);
        // Requests entering each service: its calls in the window.
        let requests = |n: NodeIndex| {
            let e = &self.graph[n];
            calls_of(&e.red, &e.metric_red).max(1) as f64
        };
        let mut share: HashMap<NodeIndex, f64> = HashMap::new();
        let mut distance: HashMap<NodeIndex, usize> = HashMap::new();
        share.insert(target, 1.0);
        distance.insert(target, 0);
        // Seed: what depends on the target directly, by its kind.
        let kind = self.graph[target].kind;
        let mut frontier: Vec<NodeIndex> = Vec::new();
        let service_level = matches!(
            kind,
            EntityKind::Service
                | EntityKind::Database
                | EntityKind::MessagingDestination
                | EntityKind::External
        );
        if service_level {
            frontier.push(target);
        } else {
            // Infrastructure: the services (and pods) running on it, transitively.
            let mut stack = vec![(target, 1.0)];
            while let Some((n, s)) = stack.pop() {
                for e in self.graph.edges_directed(n, Direction::Incoming) {
                    use petgraph::visit::EdgeRef;
                    if e.weight().kind != RelationKind::RunsOn || !valid(e.id()) {
                        continue;
                    }
                    let host = e.source();
                    let d = distance[&n] + 1;
                    let on_this = if self.graph[host].kind == EntityKind::Service {
                        (calls_of(&self.graph[n].red, &self.graph[n].metric_red) as f64
                            / requests(host))
                        .min(1.0)
                    } else {
                        1.0
                    };
                    let new_share = (s * on_this).min(1.0);
                    if share.get(&host).is_none_or(|old| *old < new_share) {
                        share.insert(host, new_share);
                        distance.entry(host).or_insert(d);
                        stack.push((host, new_share));
                        if self.graph[host].kind == EntityKind::Service {
                            frontier.push(host);
                        }
                    }
                }
            }
        }
        // Callers, breadth first: each level's shares from the one below.
        let dependency = |k: RelationKind| {
            matches!(
                k,
                RelationKind::Calls
                    | RelationKind::Queries
                    | RelationKind::Publishes
                    | RelationKind::Consumes
            )
        };
        while !frontier.is_empty() {
            let mut next: Vec<NodeIndex> = Vec::new();
            for n in frontier {
                for e in self.graph.edges_directed(n, Direction::Incoming) {
                    use petgraph::visit::EdgeRef;
                    let caller = e.source();
                    if !dependency(e.weight().kind)
                        || !valid(e.id())
                        || self.graph[caller].kind != EntityKind::Service
                        || caller == target
                    {
                        continue;
                    }
                    let through =
                        calls_of(&e.weight().red, &e.weight().metric_red) as f64 / requests(caller);
                    let add = through * share[&n];
                    let d = distance[&n] + 1;
                    let entry = share.entry(caller).or_insert(0.0);
                    *entry = (*entry + add).min(1.0);
                    if let std::collections::hash_map::Entry::Vacant(v) = distance.entry(caller) {
                        v.insert(d);
                        next.push(caller);
                    }
                }
            }
            frontier = next;
        }
        let mut dependents: Vec<Dependent> = distance
            .iter()
            .filter(|(n, _)| **n != target)
            .map(|(n, d)| Dependent {
                id: self.id_of(*n),
                distance: *d,
                traffic_share: share.get(n).copied().unwrap_or(0.0),
            })
            .collect();
        dependents.sort_by(|a, b| {
            a.distance
                .cmp(&b.distance)
                .then(b.traffic_share.total_cmp(&a.traffic_share))
                .then(a.id.cmp(&b.id))
        });
        Ok(BlastRadius {
            id: id.to_owned(),
            window: [start, end],
            dependents,
        })
    }
}
