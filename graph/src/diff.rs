//! The difference between the graph in two windows: what appeared and disappeared, which
//! versions changed, which changes happened in between, and how the RED figures of every
//! service and `calls` edge moved, each with a significance test.

use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeIndexable, NodeIndexable};
use serde::Serialize;

use crate::changes::{ChangeQuery, ChangeRecord};
use crate::graph::{EntityKind, KnowledgeGraph, RelationKind};
use crate::series::Series;
use crate::stats::{DurationSketch, RedStats};
use crate::view::{par_map, red_or_metrics, EntityId, RedSummary};

/// What [`KnowledgeGraph::diff`] compares: the windows `[from − window, from)` ("before") and
/// `[to − window, to)` ("after"), as known at `known_at`.
#[derive(Debug, Clone, Copy)]
pub struct DiffQuery {
    /// End of the first window, unix nanoseconds.
    pub from: u64,
    /// End of the second window, unix nanoseconds.
    pub to: u64,
    /// Length of both windows, nanoseconds.
    pub window: u64,
    /// Record time (`None`: now).
    pub known_at: Option<u64>,
}

/// An entity in a diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityRef {
    /// Entity id.
    pub id: EntityId,
    /// Its kind.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
}

/// A relation in a diff.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RelationRef {
    /// Relation kind.
    pub kind: &'static str,
    /// Source id.
    pub source: EntityId,
    /// Target id.
    pub target: EntityId,
}

/// The versions a service ran in each window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionChange {
    /// Service name.
    pub service: String,
    /// Versions seen in the first window.
    pub before: Vec<String>,
    /// Versions seen in the second window.
    pub after: Vec<String>,
}

/// One significance test: the statistic as a z-score (positive: the figure grew).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Test {
    /// z-score (or Welch's t, which is close to z at these sample sizes).
    pub z: f64,
    /// Whether `|z|` reaches [`SIGNIFICANT_Z`].
    pub significant: bool,
}

/// `|z|` at or above which a change is called significant: 3, a two-sided p of about 0.0027,
/// since a diff tests every service and edge at once.
pub const SIGNIFICANT_Z: f64 = 3.0;

impl Test {
    fn of(z: f64) -> Option<Self> {
        z.is_finite().then_some(Self {
            z,
            significant: z.abs() >= SIGNIFICANT_Z,
        })
    }
}

/// How a service's or edge's RED figures moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedChange {
    /// `service` or `calls`.
    pub kind: &'static str,
    /// The service's id, or the edge as `source>target` ids.
    pub id: String,
    /// Figures in the first window.
    pub before: RedSummary,
    /// Figures in the second window.
    pub after: RedSummary,
    /// Call count: the conditional binomial test of two Poisson counts over equal windows
    /// (Przyborowski & Wileński, 1940), `z = (after − before) / √(after + before)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_test: Option<Test>,
    /// Error ratio: the pooled two-proportion z-test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_ratio_test: Option<Test>,
    /// Latency: Welch's t-test on log durations (durations are close to log-normal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_test: Option<Test>,
    /// The largest `|z|` of the three: what the list is sorted by.
    pub strength: f64,
}

/// The difference between two windows of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphDiff {
    /// The first window, `[start, end)` unix nanoseconds.
    pub before: [u64; 2],
    /// The second window.
    pub after: [u64; 2],
    /// Entities valid in the second window and not the first.
    pub added_entities: Vec<EntityRef>,
    /// Entities valid in the first window and not the second.
    pub removed_entities: Vec<EntityRef>,
    /// Relations valid in the second window and not the first.
    pub added_relations: Vec<RelationRef>,
    /// Relations valid in the first window and not the second.
    pub removed_relations: Vec<RelationRef>,
    /// Services whose versions differ between the windows.
    pub version_changes: Vec<VersionChange>,
    /// Changes and events from the start of the first window to the end of the second.
    pub changes: Vec<ChangeRecord>,
    /// RED movement of every service and service-level `calls` edge active in either window,
    /// strongest first.
    pub red_changes: Vec<RedChange>,
}

fn calls_test(before: u64, after: u64) -> Option<Test> {
    let n = (before + after) as f64;
    (n > 0.0).then(|| Test::of((after as f64 - before as f64) / n.sqrt()))?
}

fn error_ratio_test(before: &RedStats, after: &RedStats) -> Option<Test> {
    let (n1, n2) = (before.calls as f64, after.calls as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return None;
    }
    let (p1, p2) = (before.errors as f64 / n1, after.errors as f64 / n2);
    let p = (before.errors + after.errors) as f64 / (n1 + n2);
    let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return None;
    }
    Test::of((p2 - p1) / se)
}

fn latency_test(before: &DurationSketch, after: &DurationSketch) -> Option<Test> {
    let (n1, m1, v1) = before.log_moments()?;
    let (n2, m2, v2) = after.log_moments()?;
    let se = (v1 / n1 + v2 / n2).sqrt();
    if se == 0.0 {
        return None;
    }
    Test::of((m2 - m1) / se)
}

fn red_change(kind: &'static str, id: String, before: &RedStats, after: &RedStats) -> RedChange {
    let calls_test = calls_test(before.calls, after.calls);
    let error_ratio_test = error_ratio_test(before, after);
    let latency_test = latency_test(&before.duration, &after.duration);
    let strength = [calls_test, error_ratio_test, latency_test]
        .iter()
        .flatten()
        .map(|t| t.z.abs())
        .fold(0.0, f64::max);
    RedChange {
        kind,
        id,
        before: RedSummary::from(before),
        after: RedSummary::from(after),
        calls_test,
        error_ratio_test,
        latency_test,
        strength,
    }
}

impl KnowledgeGraph {
    /// Validity flags by node index.
    fn valid_nodes(&self, start: u64, end: u64, known_at: Option<u64>) -> Vec<bool> {
        let w = self.config.widths();
        let mut out = vec![false; self.graph.node_bound()];
        for i in self.graph.node_indices() {
            out[i.index()] = self.graph[i].validity.valid_during(start, end, known_at, w);
        }
        out
    }

    /// Validity flags by edge index (both ends valid too).
    fn valid_edges(
        &self,
        nodes: &[bool],
        start: u64,
        end: u64,
        known_at: Option<u64>,
    ) -> Vec<bool> {
        let w = self.config.widths();
        let mut out = vec![false; self.graph.edge_bound()];
        for i in self.graph.edge_indices() {
            out[i.index()] = self
                .graph
                .edge_endpoints(i)
                .is_some_and(|(a, b)| nodes[a.index()] && nodes[b.index()])
                && self.graph[i].validity.valid_during(start, end, known_at, w);
        }
        out
    }

    fn entity_ref(&self, i: NodeIndex) -> EntityRef {
        let e = &self.graph[i];
        EntityRef {
            id: self.id_of(i),
            kind: e.kind.as_str(),
            name: e.display.clone().unwrap_or_else(|| e.name.clone()),
        }
    }

    fn relation_ref(&self, i: EdgeIndex) -> Option<RelationRef> {
        let (a, b) = self.graph.edge_endpoints(i)?;
        Some(RelationRef {
            kind: self.graph[i].kind.as_str(),
            source: self.id_of(a),
            target: self.id_of(b),
        })
    }

    /// The versions of a service seen in `[start, end)`.
    fn versions_in(&self, i: NodeIndex, start: u64, end: u64) -> Vec<String> {
        self.graph[i]
            .versions
            .iter()
            .filter(|(_, (first, last))| *first < end && *last >= start)
            .map(|(v, _)| v.clone())
            .collect()
    }

    /// Compares the graph in two windows (see [`DiffQuery`]).
    pub fn diff(&self, q: &DiffQuery) -> GraphDiff {
        let a = (q.from.saturating_sub(q.window), q.from);
        let b = (q.to.saturating_sub(q.window), q.to);
        let nodes_a = self.valid_nodes(a.0, a.1, q.known_at);
        let nodes_b = self.valid_nodes(b.0, b.1, q.known_at);
        let edges_a = self.valid_edges(&nodes_a, a.0, a.1, q.known_at);
        let edges_b = self.valid_edges(&nodes_b, b.0, b.1, q.known_at);
        // The graph holds one relation per (source, target, kind), so the same index is the
        // same relation in both windows.
        let entities = |only: &[bool], not: &[bool]| {
            let mut v: Vec<EntityRef> = self
                .graph
                .node_indices()
                .filter(|i| only[i.index()] && !not[i.index()])
                .map(|i| self.entity_ref(i))
                .collect();
            v.sort_by(|x, y| x.id.cmp(&y.id));
            v
        };
        let relations = |only: &[bool], not: &[bool]| {
            let mut v: Vec<RelationRef> = self
                .graph
                .edge_indices()
                .filter(|i| only[i.index()] && !not[i.index()])
                .filter_map(|i| self.relation_ref(i))
                .collect();
            v.sort();
            v
        };
        let services: Vec<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|i| {
                (nodes_a[i.index()] || nodes_b[i.index()])
                    && self.graph[*i].kind == EntityKind::Service
            })
            .collect();
        let mut version_changes: Vec<VersionChange> = services
            .iter()
            .filter_map(|i| {
                let before = self.versions_in(*i, a.0, a.1);
                let after = self.versions_in(*i, b.0, b.1);
                (before != after && !(before.is_empty() && after.is_empty())).then(|| {
                    VersionChange {
                        service: self.graph[*i].name.clone(),
                        before,
                        after,
                    }
                })
            })
            .collect();
        version_changes.sort_by(|x, y| x.service.cmp(&y.service));
        let (ra, rb) = (self.buckets(a.0, a.1), self.buckets(b.0, b.1));
        // Span figures, or request-duration metrics where a window has no spans.
        let merged =
            |spans: &Series<RedStats>, metrics: &Series<RedStats>, r: &std::ops::Range<u64>| {
                red_or_metrics(spans, metrics, r.start, r.end, RedStats::merge).0
            };
        let service_edges: Vec<EdgeIndex> = self
            .graph
            .edge_indices()
            .filter(|i| {
                (edges_a[i.index()] || edges_b[i.index()])
                    && self.graph.edge_endpoints(*i).is_some_and(|(s, _)| {
                        self.graph[*i].kind == RelationKind::Calls
                            && self.graph[s].kind == EntityKind::Service
                    })
            })
            .collect();
        let mut red_changes: Vec<RedChange> = par_map(&services, |i| {
            let e = &self.graph[*i];
            red_change(
                "service",
                self.id_of(*i),
                &merged(&e.red, &e.metric_red, &ra),
                &merged(&e.red, &e.metric_red, &rb),
            )
        });
        red_changes.extend(par_map(&service_edges, |i| {
            let (s, t) = self.graph.edge_endpoints(*i).unwrap_or_default();
            let rel = &self.graph[*i];
            red_change(
                "calls",
                format!("{}>{}", self.id_of(s), self.id_of(t)),
                &merged(&rel.red, &rel.metric_red, &ra),
                &merged(&rel.red, &rel.metric_red, &rb),
            )
        }));
        red_changes.retain(|c| c.before.calls + c.after.calls > 0);
        red_changes.sort_by(|x, y| y.strength.total_cmp(&x.strength).then(x.id.cmp(&y.id)));
        GraphDiff {
            before: [a.0, a.1],
            after: [b.0, b.1],
            added_entities: entities(&nodes_b, &nodes_a),
            removed_entities: entities(&nodes_a, &nodes_b),
            added_relations: relations(&edges_b, &edges_a),
            removed_relations: relations(&edges_a, &edges_b),
            version_changes,
            changes: self.changes(&ChangeQuery {
                from: a.0.min(b.0),
                to: a.1.max(b.1),
                service: None,
                known_at: q.known_at,
            }),
            red_changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_follow_their_formulas() {
        let t = calls_test(100, 160).unwrap();
        assert!((t.z - 60.0 / 260f64.sqrt()).abs() < 1e-12);
        assert!(!calls_test(100, 144).unwrap().significant, "z 2.8");
        assert!(t.significant);
        assert!(calls_test(0, 0).is_none());
        let before = RedStats {
            calls: 1000,
            errors: 10,
            ..Default::default()
        };
        let after = RedStats {
            calls: 1000,
            errors: 60,
            ..Default::default()
        };
        let z = error_ratio_test(&before, &after).unwrap().z;
        let p: f64 = 70.0 / 2000.0;
        let expected = (0.06 - 0.01) / (p * (1.0 - p) * (2.0 / 1000.0)).sqrt();
        assert!((z - expected).abs() < 1e-9);
        let mut slow = DurationSketch::default();
        let mut fast = DurationSketch::default();
        for i in 0..200u64 {
            fast.add_nanos(10_000_000 + i * 10_000);
            slow.add_nanos(20_000_000 + i * 10_000);
        }
        let t = latency_test(&fast, &slow).unwrap();
        assert!(t.z > 10.0 && t.significant, "{t:?}");
        assert!(latency_test(&fast, &fast).unwrap().z.abs() < 1e-9);
    }
}
