//! Detection and incidents: service-level objectives on the user-facing services (those that
//! receive root spans), multiwindow, multi-burn-rate alerts on them, and incidents that open
//! when an alert fires, gather the alerts that fire while they are open, get their causes
//! ranked, and resolve when every alert has been quiet for a while.
//!
//! Burn rate is the rate at which a window spends the error budget: the bad share of requests
//! divided by `1 − objective`. An alert fires when both a long and a short window burn faster
//! than a threshold: 14.4 over 1 h and 5 min (2% of a 30-day budget in an hour), or 6 over
//! 6 h and 30 min (5% in six hours), as Google's "The Site Reliability Workbook", chapter 5
//! ("Alerting on SLOs", multiwindow, multi-burn-rate alerts) recommends for paging.

use std::collections::BTreeMap;

use loupe_graph::KnowledgeGraph;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::investigate::investigate;
use crate::rank::{Analysis, AnalysisConfig};
use crate::verdict::Verdicts;

const MINUTE: u64 = 60 * 1_000_000_000;

/// A service-level objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Share of requests that must succeed (not end in an error span), e.g. 0.999.
    pub availability: f64,
    /// A request slower than this many seconds is bad for the latency objective; no latency
    /// objective when absent.
    #[serde(default)]
    pub latency_threshold_seconds: Option<f64>,
    /// Share of requests that must be faster than the threshold, e.g. 0.99.
    #[serde(default = "default_latency_target")]
    pub latency_target: f64,
}

fn default_latency_target() -> f64 {
    0.99
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            availability: 0.999,
            latency_threshold_seconds: None,
            latency_target: default_latency_target(),
        }
    }
}

/// Settings of detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectConfig {
    /// The objective of services without their own.
    #[serde(default)]
    pub default_slo: Slo,
    /// Objectives by service name.
    #[serde(default)]
    pub slos: BTreeMap<String, Slo>,
    /// Baseline detection of latency and traffic (see [`crate::anomaly`]).
    #[serde(default)]
    pub baseline: crate::anomaly::BaselineConfig,
    /// Fewest requests in a short window for its burn rate (or a baseline window's latency)
    /// to count.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Fewest bad requests in a short window for an alert: at low traffic one failure can
    /// exceed a 99.9% objective on its own (the workbook's low-traffic caveat).
    #[serde(default = "default_min_bad_requests")]
    pub min_bad_requests: u64,
    /// An incident resolves after this long without a firing alert, nanoseconds (10 min).
    #[serde(default = "default_resolve_after")]
    pub resolve_after_nanos: u64,
}

fn default_min_requests() -> u64 {
    20
}

fn default_min_bad_requests() -> u64 {
    3
}

fn default_resolve_after() -> u64 {
    10 * MINUTE
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            default_slo: Slo::default(),
            slos: BTreeMap::new(),
            baseline: crate::anomaly::BaselineConfig::default(),
            min_requests: default_min_requests(),
            min_bad_requests: default_min_bad_requests(),
            resolve_after_nanos: default_resolve_after(),
        }
    }
}

/// The paging alert windows: (long window, short window, burn-rate threshold).
pub const BURN_RATE_ALERTS: [(u64, u64, f64); 2] = [
    (60 * MINUTE, 5 * MINUTE, 14.4),
    (360 * MINUTE, 30 * MINUTE, 6.0),
];

/// What raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// A service-level objective's multiwindow burn rate ([`detect`]).
    #[default]
    BurnRate,
    /// A figure against its own baseline ([`crate::anomaly::detect`]).
    Baseline,
}

/// An alert that fired: what degraded, and how fast it burns its budget (an objective's alert)
/// or how far it stands from its baseline (a baseline alert).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symptom {
    /// The user-facing service.
    pub service: String,
    /// The root operation (span name) it concerns, when it is one operation's alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// `error_ratio` or `latency` for an objective; `latency` or `traffic` for a baseline.
    pub objective: Cow<'static, str>,
    /// What raised it (`burn_rate` when absent, as in files written before there was another).
    #[serde(default)]
    pub detector: Detector,
    /// Bad share of requests in the short window (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_ratio: Option<f64>,
    /// Burn rate over the long window (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_burn_rate: Option<f64>,
    /// Burn rate over the short window (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_burn_rate: Option<f64>,
    /// The alert's burn-rate threshold (burn-rate alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Long and short window, nanoseconds (for a baseline alert: the recent baseline's span
    /// and the window read).
    pub windows: [u64; 2],
    /// When it was seen firing (valid time), unix nanoseconds.
    pub at_unix_nano: u64,
    /// How the figure stood against its baseline (baseline alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<crate::anomaly::Deviation>,
}

impl Symptom {
    /// Whether `other` is the same alert (entity, objective and detector) at another time.
    fn same_alert(&self, other: &Self) -> bool {
        (
            &self.service,
            &self.operation,
            &self.objective,
            self.detector,
        ) == (
            &other.service,
            &other.operation,
            &other.objective,
            other.detector,
        )
    }
}

/// `bad / total / (1 − objective)`; 0 without requests.
pub fn burn_rate(bad: u64, total: u64, objective: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let budget = (1.0 - objective).max(1e-9);
    bad as f64 / total as f64 / budget
}

/// The objectives' alerts firing at `now` (valid time) on the graph's user-facing services.
pub fn detect(graph: &KnowledgeGraph, now: u64, config: &DetectConfig) -> Vec<Symptom> {
    let mut out = Vec::new();
    for service in graph.entry_services(now.saturating_sub(60 * MINUTE), now) {
        let slo = config.slos.get(&service).unwrap_or(&config.default_slo);
        for (long, short, threshold) in BURN_RATE_ALERTS {
            let (Some(l), Some(s)) = (
                graph.service_red(&service, now.saturating_sub(long), now),
                graph.service_red(&service, now.saturating_sub(short), now),
            ) else {
                continue;
            };
            if s.calls < config.min_requests {
                continue;
            }
            let mut objectives = vec![("error_ratio", slo.availability, l.errors, s.errors)];
            if let Some(threshold_s) = slo.latency_threshold_seconds {
                objectives.push((
                    "latency",
                    slo.latency_target,
                    l.duration.count_above(threshold_s),
                    s.duration.count_above(threshold_s),
                ));
            }
            for (objective, target, long_bad, short_bad) in objectives {
                let long_burn_rate = burn_rate(long_bad, l.calls, target);
                let short_burn_rate = burn_rate(short_bad, s.calls, target);
                let firing = long_burn_rate >= threshold
                    && short_burn_rate >= threshold
                    && short_bad >= config.min_bad_requests;
                let already = out
                    .iter()
                    .any(|x: &Symptom| x.service == service && x.objective == objective);
                if firing && !already {
                    out.push(Symptom {
                        service: service.clone(),
                        operation: None,
                        objective: Cow::Borrowed(objective),
                        detector: Detector::BurnRate,
                        bad_ratio: Some(short_bad as f64 / s.calls as f64),
                        long_burn_rate: Some(long_burn_rate),
                        short_burn_rate: Some(short_burn_rate),
                        threshold: Some(threshold),
                        windows: [long, short],
                        at_unix_nano: now,
                        deviation: None,
                    });
                }
            }
        }
    }
    out
}

/// Whether an incident is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Alerts fired within the resolve delay (or it was opened by hand).
    Open,
    /// Every alert has been quiet for the resolve delay.
    Resolved,
    /// Alerts fire, but the top cause is a pattern people rejected again and again (see
    /// [`crate::Verdicts::suppresses`]): kept for the record, not raised. It becomes open
    /// when another cause comes first.
    Suppressed,
}

/// Suppresses a detected incident whose top cause, as the model ranks it before verdicts
/// reweigh it, is a pattern people keep rejecting, and raises a suppressed one whose top cause
/// changed; either way says so in the timeline.
fn suppress_or_raise(incident: &mut Incident, verdicts: &Verdicts, now: u64) {
    let unweighed = |c: &crate::rank::Cause| c.score - verdicts.prior(c).ln();
    let top = incident.analysis.as_ref().and_then(|a| {
        a.causes
            .iter()
            .max_by(|a, b| unweighed(a).total_cmp(&unweighed(b)))
    });
    let why = top.and_then(|c| verdicts.suppresses(c));
    let event = match (&incident.status, why) {
        (Status::Open, Some(why)) => {
            incident.status = Status::Suppressed;
            format!("suppressed: {why}")
        }
        (Status::Suppressed, None) => {
            incident.status = Status::Open;
            let top = top.map_or_else(|| "no cause".to_owned(), |c| c.entity.id());
            format!("raised: the top cause is now {top}")
        }
        _ => return,
    };
    incident.timeline.push(TimelineEntry {
        at_unix_nano: now,
        event,
    });
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (valid time), unix nanoseconds.
    pub at_unix_nano: u64,
    /// What happened.
    pub event: String,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Id, from 1.
    pub id: u64,
    /// A title for people.
    pub title: String,
    /// Open, resolved, or suppressed (its top cause is a pattern people kept rejecting).
    pub status: Status,
    /// `detected` or `manual`.
    pub source: Cow<'static, str>,
    /// When the degradation began (valid time), unix nanoseconds: the start of the shortest
    /// alert window that fired, or the window's start for an incident opened by hand.
    pub onset_unix_nano: u64,
    /// When the symptoms' own signals left their baselines ([`crate::onset::symptom_onset`],
    /// the earliest over the symptoms), unix nanoseconds; what the causes' onsets count from.
    /// `None` until an analysis finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom_onset_unix_nano: Option<u64>,
    /// When loupe opened it (valid time), unix nanoseconds.
    pub opened_unix_nano: u64,
    /// When it resolved, unix nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_unix_nano: Option<u64>,
    /// The alerts that fired, the latest per service and objective.
    pub symptoms: Vec<Symptom>,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
    /// The ranked causes of the latest analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// Why the analysis could not run, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_error: Option<String>,
}

/// Incidents, newest last, and the verdicts on their causes.
#[derive(Debug, Default)]
pub struct Incidents {
    incidents: Vec<Incident>,
    /// Valid time of the last evaluation.
    last_tick: u64,
    /// SRE verdicts, durable when opened on a file.
    pub verdicts: Verdicts,
    /// The file incidents are kept in (JSON lines, the newest line of an id wins), if any.
    path: Option<std::path::PathBuf>,
    /// Why the last save failed, until read with [`Incidents::take_save_error`].
    save_error: Option<String>,
    /// Whether the last save failed (it may have left a fragment of a line).
    save_failed: bool,
}

/// Why the incident file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("incident file {path}: {source}")]
pub struct IncidentFileError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

/// Why a verdict could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum VerdictRejected {
    /// No such incident.
    #[error("no incident {0}")]
    NoIncident(u64),
    /// The incident has no such cause.
    #[error("incident {0} has no cause {1}")]
    NoCause(u64, String),
    /// It could not be made durable.
    #[error(transparent)]
    Io(#[from] crate::verdict::VerdictError),
}

impl Incidents {
    /// Every incident, newest first.
    pub fn list(&self) -> Vec<&Incident> {
        self.incidents.iter().rev().collect()
    }

    /// One incident.
    pub fn get(&self, id: u64) -> Option<&Incident> {
        self.incidents.iter().find(|i| i.id == id)
    }

    /// Incidents whose verdicts are kept in `verdicts`.
    pub fn with_verdicts(verdicts: Verdicts) -> Self {
        Self {
            verdicts,
            ..Self::default()
        }
    }

    /// Incidents kept in `path` (JSON lines, one incident a line; the newest line of an id
    /// wins), loading those already there, with their verdicts in `verdicts`. A line that does
    /// not parse (a torn last write) is skipped and counted in the second value. The file is
    /// rewritten with one line per incident (through a temporary file and a rename), so it
    /// grows with what changed since the start only.
    ///
    /// # Errors
    /// [`IncidentFileError`] when the file exists but cannot be read or rewritten.
    pub fn open(
        path: &std::path::Path,
        verdicts: Verdicts,
    ) -> Result<(Self, usize), IncidentFileError> {
        let error = |source| IncidentFileError {
            path: path.display().to_string(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(error(e)),
        };
        let mut skipped = 0;
        let mut by_id: std::collections::BTreeMap<u64, Incident> = Default::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Incident>(line) {
                Ok(i) => {
                    by_id.insert(i.id, i);
                }
                Err(_) => skipped += 1,
            }
        }
        let incidents: Vec<Incident> = by_id.into_values().collect();
        let mut lines = String::new();
        for i in &incidents {
            lines.push_str(&serde_json::to_string(i).map_err(|e| error(e.into()))?);
            lines.push('\n');
        }
        let tmp = path.with_extension("jsonl.tmp");
        let rewritten = std::fs::File::create(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(lines.as_bytes())?;
            f.sync_all()
        });
        rewritten
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(error)?;
        // The rename itself is durable once the directory is.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(error)?;
        }
        Ok((
            Self {
                incidents,
                verdicts,
                path: Some(path.to_owned()),
                ..Self::default()
            },
            skipped,
        ))
    }

    /// Why the last save to the incident file failed, once (the incident stays in memory).
    pub fn take_save_error(&mut self) -> Option<String> {
        self.save_error.take()
    }

    /// Appends incident `id`'s current state to the incident file, if there is one (synced).
    fn save(&mut self, id: u64) {
        use std::io::Write;
        let (Some(path), Some(incident)) = (&self.path, self.incidents.iter().find(|i| i.id == id))
        else {
            return;
        };
        // After a failed write a fragment may end the file: start on a line of our own.
        let lead = if self.save_failed { "\n" } else { "" };
        let written = serde_json::to_string(incident)
            .map_err(std::io::Error::from)
            .and_then(|line| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                f.write_all(format!("{lead}{line}\n").as_bytes())?;
                f.sync_data()
            });
        self.save_failed = written.is_err();
        if let Err(e) = written {
            self.save_error = Some(format!(
                "incident {id} not saved to {}: {e}",
                path.display()
            ));
        }
    }

    /// The id of the next incident: past every incident kept and every incident a verdict
    /// names, so that a verdict never lands on another incident of the same number.
    fn next_id(&self) -> u64 {
        let kept = self.incidents.iter().map(|i| i.id).max().unwrap_or(0);
        let judged = self
            .verdicts
            .all()
            .iter()
            .map(|v| v.incident)
            .max()
            .unwrap_or(0);
        kept.max(judged) + 1
    }

    fn analyze(
        incident: &mut Incident,
        graph: &KnowledgeGraph,
        end: u64,
        verdicts: &Verdicts,
        config: &AnalysisConfig,
    ) {
        // The window: from the onset to now, at least five minutes.
        let start = incident.onset_unix_nano.min(end.saturating_sub(5 * MINUTE));
        match investigate(
            graph,
            (start, end.max(start + 1)),
            None,
            Some(verdicts),
            config,
        ) {
            Ok(mut a) => {
                // The causes' onsets against the symptoms', over the analysis's own windows.
                let (window, baseline) =
                    ((a.window[0], a.window[1]), (a.baseline[0], a.baseline[1]));
                incident.symptom_onset_unix_nano = incident
                    .symptoms
                    .iter()
                    .filter_map(|s| {
                        crate::onset::symptom_onset(
                            graph,
                            &s.service,
                            &s.objective,
                            baseline,
                            window,
                        )
                    })
                    .min();
                // Without a symptom onset (no baseline to read it against), the alert's.
                let (reference, what) = match incident.symptom_onset_unix_nano {
                    Some(t) => (t, "the symptoms began"),
                    None => (incident.onset_unix_nano, "the incident's onset"),
                };
                for onset in a.causes.iter_mut().filter_map(|c| c.onset.as_mut()) {
                    onset.measure_from(reference, what);
                }
                demote_rejected(&mut a, verdicts.of_incident(incident.id));
                incident.analysis = Some(a);
                incident.analysis_error = None;
            }
            Err(e) => incident.analysis_error = Some(e.to_string()),
        }
    }

    /// Records an SRE's verdict on one cause (`service:payment`) of an incident. A rejected
    /// cause drops below every other cause of that incident at once; every later analysis
    /// weighs causes that match earlier verdicts (see [`Verdicts::prior`]).
    ///
    /// # Errors
    /// [`VerdictRejected`] for an unknown incident or cause, or when the verdict cannot be
    /// made durable.
    pub fn judge(
        &mut self,
        incident: u64,
        cause: &str,
        verdict: (crate::verdict::Judgement, String, String),
        now: u64,
    ) -> Result<crate::verdict::Verdict, VerdictRejected> {
        self.judge_with_token(incident, cause, verdict, None, now)
    }

    /// [`Incidents::judge`], recording the name of the bearer token the verdict came with.
    ///
    /// # Errors
    /// As [`Incidents::judge`].
    pub fn judge_with_token(
        &mut self,
        incident: u64,
        cause: &str,
        (verdict, comment, by): (crate::verdict::Judgement, String, String),
        token: Option<String>,
        now: u64,
    ) -> Result<crate::verdict::Verdict, VerdictRejected> {
        let i = self
            .incidents
            .iter_mut()
            .find(|i| i.id == incident)
            .ok_or(VerdictRejected::NoIncident(incident))?;
        let analysis = i
            .analysis
            .as_mut()
            .ok_or_else(|| VerdictRejected::NoCause(incident, cause.to_owned()))?;
        let judged = analysis
            .causes
            .iter()
            .find(|c| c.entity.id() == cause)
            .ok_or_else(|| VerdictRejected::NoCause(incident, cause.to_owned()))?;
        let record = crate::verdict::Verdict {
            incident,
            cause: cause.to_owned(),
            verdict,
            comment,
            by,
            token,
            at_unix_nano: now,
            window: analysis.window,
            features: judged
                .evidence
                .iter()
                .filter(|e| e.score > 0.0)
                .map(|e| e.feature.to_string())
                .collect(),
            // An analysis read back from the incident file has no model inputs (they are not
            // kept): such a verdict is no training case.
            candidates: if analysis
                .causes
                .iter()
                .any(|c| c.inputs.iter().any(|x| *x != 0.0))
            {
                analysis
                    .causes
                    .iter()
                    .map(|c| (c.entity.id(), c.inputs.to_vec()))
                    .collect()
            } else {
                Vec::new()
            },
        };
        self.verdicts.record(record.clone())?;
        demote_rejected(analysis, self.verdicts.of_incident(incident));
        i.timeline.push(TimelineEntry {
            at_unix_nano: i.timeline.last().map_or(0, |t| t.at_unix_nano),
            event: format!(
                "{} {} {cause}",
                record.by,
                match verdict {
                    crate::verdict::Judgement::Accepted => "accepted",
                    crate::verdict::Judgement::Rejected => "rejected",
                }
            ),
        });
        self.save(incident);
        Ok(record)
    }

    /// Opens an incident by hand for `[start, end)` and analyses it.
    pub fn open_manual(
        &mut self,
        graph: &KnowledgeGraph,
        (start, end): (u64, u64),
        title: Option<String>,
        config: &AnalysisConfig,
    ) -> &Incident {
        let id = self.next_id();
        let mut incident = Incident {
            id,
            title: title.unwrap_or_else(|| format!("investigation #{id}")),
            status: Status::Open,
            source: Cow::Borrowed("manual"),
            onset_unix_nano: start,
            symptom_onset_unix_nano: None,
            opened_unix_nano: end,
            resolved_unix_nano: None,
            symptoms: Vec::new(),
            timeline: vec![TimelineEntry {
                at_unix_nano: end,
                event: "opened by hand".into(),
            }],
            analysis: None,
            analysis_error: None,
        };
        match investigate(graph, (start, end), None, Some(&self.verdicts), config) {
            Ok(a) => incident.analysis = Some(a),
            Err(e) => incident.analysis_error = Some(e.to_string()),
        }
        self.incidents.push(incident);
        self.save(id);
        &self.incidents[self.incidents.len() - 1]
    }

    /// Evaluates the alerts at the graph's watermark, once per 10-second bucket of valid time:
    /// opens an incident when alerts fire and none is open, adds new symptoms to the open one
    /// and re-ranks its causes, and resolves it after `resolve_after_nanos` without alerts.
    /// Returns whether anything changed.
    pub fn tick(
        &mut self,
        graph: &KnowledgeGraph,
        detect_config: &DetectConfig,
        analysis: &AnalysisConfig,
    ) -> bool {
        let now = graph.watermark();
        if now < self.last_tick + graph.config().bucket_nanos {
            return false;
        }
        self.last_tick = now;
        let mut firing = detect(graph, now, detect_config);
        firing.extend(crate::anomaly::detect(graph, now, detect_config));
        let open = self
            .incidents
            .iter_mut()
            .rev()
            .find(|i| i.status != Status::Resolved && i.source == "detected");
        match (open, firing.is_empty()) {
            (None, true) => false,
            (None, false) => {
                let id = self.next_id();
                // Onset: the start of the shortest window that fired.
                let onset = firing
                    .iter()
                    .map(|s| now.saturating_sub(s.windows[1]))
                    .max()
                    .unwrap_or(now);
                let mut services: Vec<&str> = firing.iter().map(|s| s.service.as_str()).collect();
                services.sort_unstable();
                services.dedup();
                let mut incident = Incident {
                    id,
                    title: format!("{} degraded", services.join(", ")),
                    status: Status::Open,
                    source: Cow::Borrowed("detected"),
                    onset_unix_nano: onset,
                    symptom_onset_unix_nano: None,
                    opened_unix_nano: now,
                    resolved_unix_nano: None,
                    timeline: firing
                        .iter()
                        .map(|s| TimelineEntry {
                            at_unix_nano: now,
                            event: describe(s),
                        })
                        .collect(),
                    symptoms: firing,
                    analysis: None,
                    analysis_error: None,
                };
                Self::analyze(&mut incident, graph, now, &self.verdicts, analysis);
                suppress_or_raise(&mut incident, &self.verdicts, now);
                self.incidents.push(incident);
                self.save(id);
                true
            }
            (Some(incident), false) => {
                let before = (
                    incident.timeline.len(),
                    top_causes(incident),
                    newest_symptom_minute(incident),
                );
                for s in firing {
                    let known = incident.symptoms.iter_mut().find(|x| x.same_alert(&s));
                    match known {
                        Some(x) => *x = s,
                        None => {
                            incident.timeline.push(TimelineEntry {
                                at_unix_nano: now,
                                event: describe(&s),
                            });
                            incident.symptoms.push(s);
                        }
                    }
                }
                Self::analyze(incident, graph, now, &self.verdicts, analysis);
                suppress_or_raise(incident, &self.verdicts, now);
                // Kept when something a person reads changed: a symptom, the top causes.
                // The symptoms' times once a minute, so that a restart does not resolve it early.
                let after = (
                    incident.timeline.len(),
                    top_causes(incident),
                    newest_symptom_minute(incident),
                );
                if before != after {
                    let id = incident.id;
                    self.save(id);
                }
                true
            }
            (Some(incident), true) => {
                let last = incident
                    .symptoms
                    .iter()
                    .map(|s| s.at_unix_nano)
                    .max()
                    .unwrap_or(incident.opened_unix_nano);
                if now >= last + detect_config.resolve_after_nanos {
                    incident.status = Status::Resolved;
                    incident.resolved_unix_nano = Some(now);
                    incident.timeline.push(TimelineEntry {
                        at_unix_nano: now,
                        event: "resolved: every alert quiet".into(),
                    });
                    let id = incident.id;
                    self.save(id);
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// The minute (valid time) of an incident's newest symptom.
fn newest_symptom_minute(incident: &Incident) -> u64 {
    incident
        .symptoms
        .iter()
        .map(|s| s.at_unix_nano / MINUTE)
        .max()
        .unwrap_or(0)
}

/// The ids of an incident's three best causes, best first.
fn top_causes(incident: &Incident) -> Vec<String> {
    incident
        .analysis
        .iter()
        .flat_map(|a| a.causes.iter().take(3))
        .map(|c| c.entity.id())
        .collect()
}

/// Rejected causes of this incident drop below the rest (score 0), in their order.
fn demote_rejected(analysis: &mut Analysis, verdicts: Vec<&crate::verdict::Verdict>) {
    let rejected: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.verdict == crate::verdict::Judgement::Rejected)
        .map(|v| v.cause.as_str())
        .collect();
    if rejected.is_empty() {
        return;
    }
    for c in &mut analysis.causes {
        if rejected.contains(&c.entity.id().as_str()) {
            c.score = 0.0;
        }
    }
    crate::verdict::rerank(&mut analysis.causes);
}

fn describe(s: &Symptom) -> String {
    let what = match &s.operation {
        Some(op) => format!("{} {op}", s.service),
        None => s.service.clone(),
    };
    match (s.detector, &s.deviation) {
        (Detector::Baseline, Some(d)) => {
            let seasonal = match d.seasonal_lag_nanos {
                Some(lag) => format!(
                    ", scaled ×{:.2} as it moved {} ago",
                    d.seasonal_factor,
                    if lag % (24 * 60 * MINUTE) == 0 {
                        format!("{} d", lag / (24 * 60 * MINUTE))
                    } else {
                        format!("{} min", lag / MINUTE)
                    }
                ),
                None => String::new(),
            };
            let minutes = s.windows[1] / MINUTE;
            let figures = if d.statistic == "requests" {
                format!(
                    "{:.0} requests in {minutes} min where {:.0} were expected",
                    d.current, d.expected
                )
            } else {
                format!(
                    "p90 duration {:.1} ms over {minutes} min where {:.1} ms was expected",
                    1e3 * d.current,
                    1e3 * d.expected
                )
            };
            format!(
                "{what} {} off its baseline: {figures} (robust z {:.1}, the median of the {} \
                 min before{seasonal})",
                s.objective,
                d.z,
                s.windows[0] / MINUTE
            )
        }
        _ => format!(
            "{what} {} burning its budget {:.1}× ({} min) and {:.1}× ({} min); {:.2}% bad",
            s.objective.replace('_', " "),
            s.long_burn_rate.unwrap_or(0.0),
            s.windows[0] / MINUTE,
            s.short_burn_rate.unwrap_or(0.0),
            s.windows[1] / MINUTE,
            100.0 * s.bad_ratio.unwrap_or(0.0)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loupe_graph::GraphConfig;
    use loupe_model::{
        AttributeValue, Attributes, Resource, ResourceSpans, Span, SpanId, SpanKind, StatusCode,
        TraceId,
    };

    use super::*;
    use crate::verdict::Judgement;

    const SECOND: u64 = 1_000_000_000;

    fn spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Arc::new(Resource {
                attributes: Attributes(vec![(
                    "service.name".into(),
                    AttributeValue::String(service.into()),
                )]),
            }),
            spans,
        }
    }

    /// One request through frontend → checkout → payment at `t`; every span fails when
    /// `failing` (payment fails and the failure propagates).
    fn request(n: u64, t: u64, failing: bool) -> Vec<ResourceSpans> {
        let status = if failing {
            StatusCode::Error
        } else {
            StatusCode::Unset
        };
        let span = |i: u64, parent: Option<u64>, offset: u64, ms: u64| Span {
            trace_id: TraceId(u128::from(n + 1).to_be_bytes()),
            span_id: SpanId((n * 4 + i).to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId((n * 4 + p).to_be_bytes())),
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: t + offset * 1_000_000,
            end_time_unix_nano: t + (offset + ms) * 1_000_000,
            status,
            attributes: Attributes::default(),
        };
        vec![
            spans("frontend", vec![span(1, None, 0, 30)]),
            spans("checkout", vec![span(2, Some(1), 2, 20)]),
            spans("payment", vec![span(3, Some(2), 4, 10)]),
        ]
    }

    #[test]
    fn burn_rate_is_the_bad_share_over_the_budget() {
        assert!((burn_rate(1, 100, 0.99) - 1.0).abs() < 1e-9);
        assert!((burn_rate(144, 10_000, 0.999) - 14.4).abs() < 1e-9);
        assert_eq!(burn_rate(5, 0, 0.999), 0.0);
    }

    #[test]
    fn an_incident_opens_on_burning_errors_ranks_payment_and_resolves() {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        let mut incidents = Incidents::default();
        let (detect_config, analysis) = (DetectConfig::default(), AnalysisConfig::default());
        let minute = 60 * SECOND;
        let (fault_start, fault_end) = (60 * minute, 66 * minute);
        let mut opened_at = None;
        // Two hours, a request every 2 s; payment fails for six minutes from minute 60. The
        // 6 h / 30 min alert keeps firing for 30 minutes after the failures stop (the short
        // window's reset time), then the incident resolves 10 minutes later.
        for n in 0..3_600u64 {
            let t = n * 2 * SECOND;
            let failing = (fault_start..fault_end).contains(&t);
            for batch in request(n, t, failing) {
                graph.apply_spans(&[batch]);
            }
            if incidents.tick(&graph, &detect_config, &analysis) && opened_at.is_none() {
                opened_at = incidents.list().first().map(|i| i.opened_unix_nano);
            }
        }
        let list = incidents.list();
        assert_eq!(list.len(), 1, "one incident: {list:#?}");
        let incident = list[0];
        let opened = opened_at.expect("opened");
        assert!(
            (fault_start..fault_start + 3 * minute).contains(&opened),
            "opened {} s after the fault began",
            (opened as i64 - fault_start as i64) / SECOND as i64
        );
        assert!(incident
            .symptoms
            .iter()
            .any(|s| s.service == "frontend" && s.objective == "error_ratio"));
        let top = &incident.analysis.as_ref().expect("analysed").causes[0];
        assert_eq!(top.entity.name, "payment", "{:#?}", incident.analysis);
        // The shipped rules explain it in words.
        assert!(
            top.hypotheses
                .iter()
                .any(|h| h.rule == "errors_originate_here" && h.sentence.contains("payment")),
            "{:#?}",
            top.hypotheses
        );
        // The alert's window began long before the fault; the symptom (frontend's error
        // ratio) and payment's errors both left their baselines in the fault's first step.
        assert!(incident.onset_unix_nano < fault_start);
        assert_eq!(incident.symptom_onset_unix_nano, Some(fault_start));
        let onset = top.onset.as_ref().expect("an onset");
        assert_eq!(
            (
                onset.signal.as_str(),
                onset.at_unix_nano,
                onset.seconds_from_onset
            ),
            ("error_ratio", fault_start, 0.0)
        );
        assert_eq!(
            onset.summary,
            "the error ratio of payment left its baseline as the symptoms began"
        );
        assert_eq!(incident.status, Status::Resolved);
        let resolved = incident.resolved_unix_nano.unwrap();
        let quiet = fault_end + 30 * minute + detect_config.resolve_after_nanos;
        assert!(
            (quiet - minute..quiet + minute).contains(&resolved),
            "resolved {} s after the failures stopped",
            (resolved - fault_end) / SECOND
        );
    }

    /// The payment failures again, after people rejected the failed calls into payment three times
    /// as by design: the incident is kept, suppressed, with the reason in its timeline. Two
    /// rejections are not enough.
    #[test]
    fn a_pattern_rejected_three_times_stops_raising_incidents() {
        let run = |rejections: usize| {
            let mut graph = KnowledgeGraph::new(GraphConfig::default());
            let mut incidents = Incidents::default();
            for _ in 0..rejections {
                incidents
                    .verdicts
                    .record(crate::verdict::Verdict {
                        incident: 0,
                        cause: "service:payment".into(),
                        verdict: Judgement::Rejected,
                        comment: "by design".into(),
                        by: "ana".into(),
                        token: None,
                        at_unix_nano: 0,
                        window: [0, 1],
                        features: vec!["failed_calls_into".into()],
                        candidates: Vec::new(),
                    })
                    .unwrap();
            }
            let (detect, analysis) = (DetectConfig::default(), AnalysisConfig::default());
            for n in 0..2_100u64 {
                let t = n * 2 * SECOND;
                let failing = (3_600 * SECOND..3_960 * SECOND).contains(&t);
                for batch in request(n, t, failing) {
                    graph.apply_spans(&[batch]);
                }
                incidents.tick(&graph, &detect, &analysis);
            }
            let list = incidents.list();
            assert_eq!(list.len(), 1, "{list:#?}");
            list[0].clone()
        };
        let raised = run(2);
        assert_eq!(raised.status, Status::Open);
        let suppressed = run(3);
        assert_eq!(suppressed.status, Status::Suppressed);
        let event = suppressed
            .timeline
            .iter()
            .find(|e| e.event.starts_with("suppressed"))
            .expect("the timeline says why");
        assert!(
            event.event.contains("service:payment was rejected 3 times")
                && event.event.contains("by design"),
            "{}",
            event.event
        );
    }

    #[test]
    fn a_healthy_system_opens_nothing_and_a_manual_incident_is_analysed() {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        let mut incidents = Incidents::default();
        for n in 0..600u64 {
            for batch in request(n, n * 2 * SECOND, n % 500 == 7) {
                graph.apply_spans(&[batch]);
            }
            incidents.tick(&graph, &DetectConfig::default(), &AnalysisConfig::default());
        }
        assert!(
            incidents.list().is_empty(),
            "a single failed request is no incident"
        );
        graph.flush();
        let id = incidents
            .open_manual(
                &graph,
                (600 * SECOND, 1_200 * SECOND),
                Some("checkout looked slow".into()),
                &AnalysisConfig::default(),
            )
            .id;
        let incident = incidents.get(id).unwrap();
        assert_eq!(incident.source, "manual");
        assert!(incident.analysis.is_some(), "{:?}", incident.analysis_error);
    }

    /// frontend calls checkout on even requests and cart on odd ones; from 10 minutes on,
    /// checkout fails 3 in 10 of its calls and cart 1 in 4.
    fn two_failing_branches() -> KnowledgeGraph {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        for n in 0..1_200u64 {
            let t = n * SECOND;
            let (callee, k) = if n % 2 == 0 {
                ("checkout", n / 2)
            } else {
                ("cart", n / 2)
            };
            let faulty = t >= 600 * SECOND;
            let failing = faulty
                && match callee {
                    "checkout" => k % 10 < 3,
                    _ => k % 4 == 0,
                };
            let span = |i: u64, parent: Option<u64>, error: bool| Span {
                trace_id: TraceId(u128::from(n + 1).to_be_bytes()),
                span_id: SpanId((n * 4 + i).to_be_bytes()),
                parent_span_id: parent.map(|p| SpanId((n * 4 + p).to_be_bytes())),
                name: "GET /".into(),
                kind: SpanKind::Server,
                start_time_unix_nano: t + i * 1_000_000,
                end_time_unix_nano: t + 20_000_000 - i * 1_000_000,
                status: if error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                attributes: Attributes::default(),
            };
            graph.apply_spans(&[spans("frontend", vec![span(1, None, false)])]);
            graph.apply_spans(&[spans(callee, vec![span(2, Some(1), failing)])]);
        }
        graph.flush();
        graph
    }

    /// Incidents and their verdicts survive a restart: the same incidents come back (the
    /// newest state of each), a torn last line is skipped, and new incidents are numbered past
    /// every incident kept and every incident a verdict names.
    #[test]
    fn incidents_survive_a_restart_and_ids_never_collide() {
        let dir = std::env::temp_dir().join(format!("loupe-incidents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (incidents_file, verdicts_file) =
            (dir.join("incidents.jsonl"), dir.join("verdicts.jsonl"));
        let _ = std::fs::remove_file(&incidents_file);
        let _ = std::fs::remove_file(&verdicts_file);
        let graph = two_failing_branches();
        let window = (600 * SECOND, 1_200 * SECOND);
        let config = AnalysisConfig::default();
        let open = || {
            let (verdicts, _) = Verdicts::open(&verdicts_file).unwrap();
            Incidents::open(&incidents_file, verdicts).unwrap()
        };
        let as_json = |i: &Incidents| serde_json::to_value(i.list()).unwrap();
        let (mut incidents, skipped) = open();
        assert_eq!((incidents.list().len(), skipped), (0, 0));
        let first = incidents.open_manual(&graph, window, None, &config).id;
        incidents
            .judge(
                first,
                "service:checkout",
                (Judgement::Rejected, "by design".into(), "ana".into()),
                1,
            )
            .unwrap();
        let second = incidents
            .open_manual(&graph, window, Some("again".into()), &config)
            .id;
        assert_eq!((first, second), (1, 2));
        assert_eq!(incidents.take_save_error(), None);
        let before = as_json(&incidents);
        // A torn write at the end of the file.
        let mut text = std::fs::read_to_string(&incidents_file).unwrap();
        text.push_str("{\"id\": 3, \"tit");
        std::fs::write(&incidents_file, text).unwrap();

        let (incidents, skipped) = open();
        assert_eq!(skipped, 1);
        assert_eq!(
            as_json(&incidents),
            before,
            "the same incidents, newest state each"
        );
        let top = incidents
            .get(first)
            .and_then(|i| i.analysis.as_ref())
            .map(|a| a.causes[0].entity.name.clone());
        assert_eq!(top.as_deref(), Some("cart"), "the rejection still holds");
        assert_eq!(
            std::fs::read_to_string(&incidents_file)
                .unwrap()
                .lines()
                .count(),
            2,
            "rewritten, a line each"
        );
        // A verdict on an analysis read back from the file: no model inputs, no training case.
        let (mut reloaded, _) = open();
        let verdict = reloaded
            .judge_with_token(
                second,
                "service:cart",
                (Judgement::Accepted, String::new(), "ana".into()),
                Some("oncall".into()),
                2,
            )
            .unwrap();
        assert!(verdict.candidates.is_empty() && verdict.training_case().is_none());
        drop(reloaded);
        // The token's name is kept with the verdict (the audit trail), the first one had none.
        let (kept, _) = Verdicts::open(&verdicts_file).unwrap();
        let tokens: Vec<Option<&str>> = kept.all().iter().map(|v| v.token.as_deref()).collect();
        assert_eq!(tokens, [None, Some("oncall")]);
        // A verdict on an incident the file does not hold (written before incidents were
        // kept): the next incident is numbered past it.
        let (mut verdicts, _) = Verdicts::open(&verdicts_file).unwrap();
        let mut v = verdicts.all()[0].clone();
        v.incident = 7;
        verdicts.record(v).unwrap();
        drop(incidents);
        let (verdicts, _) = Verdicts::open(&verdicts_file).unwrap();
        let (mut incidents, _) = Incidents::open(&incidents_file, verdicts).unwrap();
        assert_eq!(incidents.open_manual(&graph, window, None, &config).id, 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rejected_cause_drops_at_once_and_ranks_lower_in_a_repeated_case() {
        let graph = two_failing_branches();
        let window = (600 * SECOND, 1_200 * SECOND);
        let config = AnalysisConfig::default();
        let mut incidents = Incidents::default();
        let top = |i: &Incident| i.analysis.as_ref().unwrap().causes[0].entity.name.clone();
        let first = incidents.open_manual(&graph, window, None, &config).id;
        assert_eq!(top(incidents.get(first).unwrap()), "checkout");
        incidents
            .judge(
                first,
                "service:checkout",
                (Judgement::Rejected, "by design".into(), "ana".into()),
                1,
            )
            .unwrap();
        assert_eq!(
            top(incidents.get(first).unwrap()),
            "cart",
            "demoted at once"
        );
        assert_eq!(incidents.verdicts.of_incident(first).len(), 1);
        // The same case again: what was rejected weighs less.
        let again = incidents.open_manual(&graph, window, None, &config).id;
        assert_eq!(top(incidents.get(again).unwrap()), "cart");
        // An unknown cause or incident is refused.
        assert!(incidents
            .judge(
                again,
                "service:nope",
                (Judgement::Accepted, String::new(), "ana".into()),
                2
            )
            .is_err());
        assert!(incidents
            .judge(
                99,
                "service:cart",
                (Judgement::Accepted, String::new(), "ana".into()),
                2
            )
            .is_err());
    }
}
