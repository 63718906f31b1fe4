//! Changes and events in the graph: each a `change` or `event` entity with a `changed` or
//! `affects` relation to what it concerns, from posted changes, change events in log records,
//! feature-flag variants that flip, and `service.version`s that change (inferred deployments).

use loupe_model::{ChangeEvent, ChangeKind, LogRecord, Resource};
use petgraph::stable_graph::NodeIndex;
use serde::Serialize;

use crate::graph::{EntityKind, KnowledgeGraph, RelationKind};
use crate::view::EntityId;

/// A change or event as the graph holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRecord {
    /// Entity id, `change:<n>` or `event:<n>`.
    pub id: EntityId,
    /// The change.
    #[serde(flatten)]
    pub change: ChangeEvent,
    /// When loupe learned of it, unix nanoseconds.
    pub recorded_at: u64,
    /// The entities it changed or affected.
    pub targets: Vec<EntityId>,
}

/// What [`KnowledgeGraph::changes`] selects.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    /// Changes at or after this valid time, unix nanoseconds.
    pub from: u64,
    /// Changes before this valid time, unix nanoseconds.
    pub to: u64,
    /// Only changes whose targets include `service:<this>`.
    pub service: Option<String>,
    /// What loupe knew then (`None`: now).
    pub known_at: Option<u64>,
}

impl KnowledgeGraph {
    /// Records changes and events (posted, or from a webhook), each linked to the service and
    /// Kubernetes object it names. A change whose `external_id` was recorded before from the same
    /// source is a repeat and is dropped. Returns the ids, a repeat's the first one's.
    pub fn apply_changes(&mut self, changes: &[ChangeEvent]) -> Vec<EntityId> {
        self.stamp();
        changes
            .iter()
            .map(|c| self.record_change(c.clone()))
            .collect()
    }

    pub(crate) fn record_change(&mut self, change: ChangeEvent) -> EntityId {
        if let Some(external) = &change.external_id {
            let key = (change.source.clone(), external.clone());
            if let Some(&i) = self.change_ids.get(&key) {
                return self.change_log[i].id.clone();
            }
            self.change_ids.insert(key, self.change_log.len());
        }
        let t = change.time_unix_nano;
        let kind = if change.kind.is_event() {
            EntityKind::Event
        } else {
            EntityKind::Change
        };
        let relation = if change.kind.is_event() {
            RelationKind::Affects
        } else {
            RelationKind::Changed
        };
        let name = (self.change_log.len() + 1).to_string();
        let node = self.entity(kind, &name, change.service.as_deref(), t);
        let summary = if change.summary.is_empty() {
            describe(&change)
        } else {
            change.summary.clone()
        };
        self.graph[node].display = Some(summary);
        let mut targets = Vec::new();
        let mut service = change.service.clone();
        if let Some(object) = &change.object {
            if let Some((target, owner)) = self.object_entity(object, t) {
                self.relation(node, target, relation, t);
                targets.push(self.id_of(target));
                service = service.or(owner);
            }
        }
        if let Some(s) = &service {
            let target = self.entity(EntityKind::Service, s, None, t);
            self.relation(node, target, relation, t);
            targets.push(self.id_of(target));
        }
        let record = ChangeRecord {
            id: self.id_of(node),
            change: ChangeEvent {
                service,
                summary: self.graph[node].display.clone().unwrap_or_default(),
                ..change
            },
            recorded_at: self.recorded,
            targets,
        };
        let id = record.id.clone();
        self.change_log.push(record);
        id
    }

    /// The entity a Kubernetes object reference names, and its owning service when known:
    /// pods by namespace and name (the newest pod of that name), nodes, and workloads.
    fn object_entity(
        &mut self,
        object: &loupe_model::ObjectRef,
        t: u64,
    ) -> Option<(NodeIndex, Option<String>)> {
        let qualified = match &object.namespace {
            Some(ns) => format!("{ns}/{}", object.name),
            None => object.name.clone(),
        };
        match object.kind.as_str() {
            "Pod" => {
                let pod = self
                    .pods_by_name
                    .get(&qualified)
                    .or_else(|| self.pods_by_name.get(&object.name))
                    .copied();
                let pod = match pod {
                    Some(p) => p,
                    None => self.entity(EntityKind::Pod, &qualified, None, t),
                };
                Some((pod, self.graph[pod].service.clone()))
            }
            "Node" => Some((self.entity(EntityKind::Node, &object.name, None, t), None)),
            kind => {
                let kind = kind.to_ascii_lowercase();
                let key = match &object.namespace {
                    Some(ns) => format!("{ns}/{kind}/{}", object.name),
                    None => format!("{kind}/{}", object.name),
                };
                Some((self.entity(EntityKind::Workload, &key, None, t), None))
            }
        }
    }

    /// Change events carried by one log record, and flag flips among evaluations.
    pub(crate) fn log_record_changes(
        &mut self,
        resource: &Resource,
        service: NodeIndex,
        record: &LogRecord,
    ) {
        if let Some(change) = loupe_model::change::from_log_record(resource, record) {
            self.record_change(change);
            return;
        }
        let Some((flag, variant)) = loupe_model::change::flag_evaluation(record) else {
            return;
        };
        let t = record.time_unix_nano;
        let previous = self
            .flags
            .insert((service, flag.to_owned()), (variant.to_owned(), t));
        if let Some((before, when)) = previous {
            if before != variant && when <= t {
                let name = self.graph[service].name.clone();
                let mut change = ChangeEvent::new(ChangeKind::FeatureFlag, t, "openfeature");
                change.summary =
                    format!("feature flag {flag} went from {before} to {variant} in {name}");
                change.flag = Some(flag.to_owned());
                change.version_from = Some(before);
                change.version_to = Some(variant.to_owned());
                change.service = Some(name);
                self.record_change(change);
            } else if when > t {
                // An older evaluation arriving late does not make a flip; keep the newest.
                self.flags
                    .insert((service, flag.to_owned()), (before, when));
            }
        }
    }

    /// An inferred deployment: `service` ran `from` and now runs `to`, first seen at `t`.
    pub(crate) fn infer_deployment(&mut self, service: NodeIndex, from: String, to: &str, t: u64) {
        let name = self.graph[service].name.clone();
        let mut change = ChangeEvent::new(ChangeKind::Deployment, t, "inferred");
        change.summary = format!("{name} went from version {from} to {to}");
        change.version_from = Some(from);
        change.version_to = Some(to.to_owned());
        change.service = Some(name);
        self.record_change(change);
    }

    /// Changes and events in `[query.from, query.to)`, oldest first. An inferred deployment's
    /// end is the last time its old version was seen.
    pub fn changes(&self, query: &ChangeQuery) -> Vec<ChangeRecord> {
        let wanted = query.service.as_ref().map(|s| format!("service:{s}"));
        let mut out: Vec<ChangeRecord> = self
            .change_log
            .iter()
            .filter(|c| (query.from..query.to).contains(&c.change.time_unix_nano))
            .filter(|c| query.known_at.is_none_or(|k| c.recorded_at <= k))
            .filter(|c| {
                wanted
                    .as_ref()
                    .is_none_or(|w| c.targets.iter().any(|t| t == w))
            })
            .cloned()
            .map(|mut c| {
                if c.change.source == "inferred" {
                    c.change.end_time_unix_nano = self.rollout_end(&c);
                }
                c
            })
            .collect();
        out.sort_by_key(|c| c.change.time_unix_nano);
        out
    }

    fn rollout_end(&self, c: &ChangeRecord) -> Option<u64> {
        let service = self
            .entities
            .get(&EntityKind::Service)?
            .get(c.change.service.as_deref()?)?;
        let (_, last_old) = self.graph[*service]
            .versions
            .get(c.change.version_from.as_deref()?)?;
        (*last_old > c.change.time_unix_nano).then_some(*last_old)
    }
}

/// A sentence for a change that came without one.
fn describe(c: &ChangeEvent) -> String {
    let what = c.kind.as_str().replace('_', " ");
    let on = c
        .service
        .clone()
        .or_else(|| c.object.as_ref().map(|o| format!("{} {}", o.kind, o.name)))
        .unwrap_or_else(|| "unknown target".into());
    match (&c.version_from, &c.version_to, &c.reason) {
        (_, _, Some(reason)) => format!("{reason} on {on}"),
        (Some(a), Some(b), _) => format!("{what} of {on}: {a} → {b}"),
        (None, Some(b), _) => format!("{what} of {on} to {b}"),
        _ => format!("{what} of {on}"),
    }
}
