//! What an analysis returns: its causes, each a candidate (a service, database, node, network
//! path or change) with its evidence, hypotheses, counter-evidence, onset and remediation, and
//! the names by which causes are referred to. The types every stage shares, at the bottom of the
//! pipeline: they import nothing above them.

use loupe_model::ChangeEvent;
use serde::{Deserialize, Serialize};

use crate::evidence::Evidence;
use crate::ranker::Inputs;
use crate::rules::Hypothesis;

/// What kind of entity a cause is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// A service (`service.name`).
    Service,
    /// A database, named `<db.system.name>/<db.namespace>` as its callers' client spans give it.
    Database,
    /// A node (`k8s.node.name`).
    Node,
    /// A network path between two services, named `caller->callee` (see [`path_ends`]).
    Edge,
    /// A change to a service shortly before or during the window (a deployment, a flag flip, a
    /// configuration change, a Kubernetes event), or a Kubernetes event about a node, named
    /// `<service or node>:<change kind>@<time>`
    /// (`checkout:deployment@2026-11-21T14:02:00Z`, the time in RFC 3339 to the second; see
    /// [`change_target`]).
    Change,
}

impl CauseKind {
    /// The lowercase name used in ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Database => "database",
            Self::Node => "node",
            Self::Edge => "edge",
            Self::Change => "change",
        }
    }
}

impl std::fmt::Display for CauseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a cause is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    /// The kind.
    pub kind: CauseKind,
    /// The entity's name.
    pub name: String,
}

impl EntityRef {
    /// The cause's id, `<kind>:<name>` (`service:cart`, `edge:checkout->cart`), as verdicts and
    /// the API name it.
    pub fn id(&self) -> String {
        format!("{}:{}", self.kind, self.name)
    }
}

/// Between the caller and the callee in a network path's name (`checkout->cart`).
pub const EDGE_ARROW: &str = "->";

/// The caller and callee of a network path's name, `caller->callee`.
pub fn path_ends(name: &str) -> Option<(&str, &str)> {
    name.split_once(EDGE_ARROW)
}

/// The name of a change candidate: `<service or node>:<change kind>@<time>`, the time in RFC
/// 3339 to the second (UTC).
pub fn change_name(service: &str, change: &ChangeEvent) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(change.time_unix_nano);
    format!(
        "{service}:{}@{}",
        change.kind.as_str(),
        humantime::format_rfc3339_seconds(at)
    )
}

/// The service (or node) a change candidate's name (`<service or node>:<change kind>@<time>`,
/// [`change_name`]) says was changed; `None` when the name is not of that form.
pub fn change_target(name: &str) -> Option<&str> {
    let (head, _time) = name.rsplit_once('@')?;
    let (service, kind) = head.rsplit_once(':')?;
    (!service.is_empty() && !kind.is_empty()).then_some(service)
}

/// One ranked candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// 1-based rank.
    pub rank: usize,
    /// The candidate.
    pub entity: EntityRef,
    /// The model's score `w · x` (larger is more likely).
    pub score: f64,
    /// Probability that it is the root cause: the softmax of the scores over every candidate
    /// of the analysis (see [`crate::ranker`]).
    pub probability: f64,
    /// The evidence, strongest first.
    pub evidence: Vec<Evidence>,
    /// The correlation rules that held for it, with their sentences ([`crate::rules`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hypotheses: Vec<Hypothesis>,
    /// Counter-evidence: why some of its evidence counts less, each a sentence naming the
    /// candidate that accounts for it (a callee that fails or whose code path changed, the
    /// network path its failed calls fail on, a database whose queries slowed, a node whose
    /// pods ran hot, a slower callee of a metrics-only service). A change candidate carries
    /// its service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counter_evidence: Vec<String>,
    /// When its own signal left its baseline, in seconds from the incident's symptom onset (from
    /// the window's start for an analysis opened by hand; see [`crate::onset`]); filled by
    /// analyses of the live graph for the first causes with such a signal, `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<Onset>,
    /// The model's inputs for it ([`crate::ranker::input_names`]), kept for training.
    #[serde(skip)]
    pub inputs: Inputs,
    /// For a change candidate, the change (`None` for every other kind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeEvent>,
    /// A later deployment of the service, before the window's end, back to the version that
    /// `change` replaced: the change was already rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<ChangeEvent>,
    /// Suggested actions (never run by loupe); filled when the analysis knows where the service
    /// runs (see [`crate::investigate()`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remediation: Vec<Remediation>,
}

/// The result of one analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Analysed window `[start, end)`, unix nanoseconds.
    pub window: [u64; 2],
    /// Baseline window `[start, end)`, unix nanoseconds.
    pub baseline: [u64; 2],
    /// Ranked causes, best first.
    pub causes: Vec<Cause>,
    /// Whether the top cause's probability reaches [`crate::AnalysisConfig::min_confidence`]; when
    /// not, the causes are best guesses ("no confident cause").
    pub confident: bool,
    /// The model that ranked (`shipped`, or a file).
    pub model: String,
}

/// What [`crate::onset::onset`] counts from until an incident's symptoms say otherwise.
pub const WINDOW_START: &str = "the window's start";

/// When a cause's signal left its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Onset {
    /// Start of the first step (one graph bucket, 10 s by default) of the window where the
    /// signal left its baseline band and stayed out, unix nanoseconds.
    pub at_unix_nano: u64,
    /// Seconds from the incident's symptom onset ([`crate::onset::symptom_onset`]; the incident's onset when
    /// the symptoms have no baseline to read it against; the window's start for an analysis
    /// opened by hand) to `at_unix_nano`: negative when the cause moved before the symptoms did.
    pub seconds_from_onset: f64,
    /// The service whose signal it is (a change's service for a change).
    pub service: String,
    /// The signal read: `error_ratio`, `error_log_records` (per step), `latency` (self time
    /// where spans give it, else the median duration, seconds) or `log_records_per_call`.
    pub signal: String,
    /// A sentence for people.
    pub summary: String,
}

impl Onset {
    pub(crate) fn new(at_unix_nano: u64, service: &str, signal: &str, reference: u64) -> Self {
        let mut onset = Self {
            at_unix_nano,
            seconds_from_onset: 0.0,
            service: service.to_owned(),
            signal: signal.to_owned(),
            summary: String::new(),
        };
        onset.measure_from(reference, WINDOW_START);
        onset
    }

    /// Counts [`Onset::seconds_from_onset`] from `reference` (unix ns), and says so, naming the
    /// reference `what` (`the symptoms began`).
    pub fn measure_from(&mut self, reference: u64, what: &str) {
        let seconds = (self.at_unix_nano as f64 - reference as f64) / 1e9;
        let when = if seconds.abs() < 0.5 {
            format!("as {what}")
        } else if seconds < 0.0 {
            format!("{:.0} s before {what}", -seconds)
        } else {
            format!("{seconds:.0} s after {what}")
        };
        self.seconds_from_onset = seconds;
        self.summary = format!(
            "the {} of {} left its baseline {when}",
            self.signal.replace('_', " "),
            self.service
        );
    }
}

/// One suggested action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// What to do, for people.
    pub action: String,
    /// The command, when there is one to run as is (`kubectl …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Why this action follows from the evidence.
    pub why: String,
    /// Always true: loupe suggests, people decide and run.
    pub suggestion: bool,
}
