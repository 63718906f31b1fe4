//! The temporal knowledge graph (first cut): services, operations, pods and nodes taken from
//! OpenTelemetry resource attributes, `calls`, `runs_on` and `part_of` relations, and per time
//! bucket RED statistics on every entity and `calls` relation.
//!
//! The graph knows nothing of OTLP wire types: it consumes `loupe_model` batches. petgraph
//! indices stay inside this crate; callers name entities by their [`EntityId`] strings.

pub mod call_paths;
mod changes;
mod diff;
mod entity;
mod graph;
mod id_hash;
mod join;
mod request_metrics;
mod series;
mod span_logs;
mod stats;
pub mod templates;
mod temporal;
mod traces;
mod view;

pub use changes::{ChangeQuery, ChangeRecord};
pub use diff::{
    DiffQuery, EntityRef, GraphDiff, RedChange, RelationRef, Test, VersionChange, SIGNIFICANT_Z,
};
pub use entity::{
    BlastRadius, Dependent, EntityDetail, HistoryPoint, Placement, RelationOf, VersionSeen,
};
pub use graph::{EntityKind, GraphConfig, KnowledgeGraph, RelationKind};
pub use join::JoinConfig;
pub use series::{Merge, Retention};
pub use stats::{DurationSketch, GaugeStats, LogStats, RedStats};
pub use temporal::Interval;
pub use traces::TraceStats;
pub use view::{
    EdgeBucket, EdgeView, EdgeWindow, EntityId, GraphQuery, GraphSnapshot, NodeView,
    OperationWindow, PodWindow, QueryWindow, RedSource, RedSummary, ServiceSummary, ServiceWindow,
    UnknownEntity, WindowStats,
};
