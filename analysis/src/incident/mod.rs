//! Incidents: they open when an alert of detection ([`crate::detect`]) fires, gather the
//! alerts that fire while they are open, get their causes ranked, and resolve when every alert
//! has been quiet for a while.

use std::borrow::Cow;

use loupe_graph::KnowledgeGraph;
use serde::{Deserialize, Serialize};

use crate::cause::Analysis;
use crate::config::AnalysisConfig;
use crate::detect::{DetectConfig, Detector, Symptom};
use crate::investigate::investigate;
use crate::verdict::Verdicts;

const MINUTE: u64 = 60 * 1_000_000_000;

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
    let unweighed = |c: &crate::cause::Cause| c.score - verdicts.prior(c).ln();
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
        let mut firing = crate::detect::slo::detect(graph, now, detect_config);
        firing.extend(crate::detect::baseline::detect(graph, now, detect_config));
        let open = self
            .incidents
            .iter()
            .rposition(|i| i.status != Status::Resolved && i.source == "detected");
        match (open, firing.is_empty()) {
            (None, true) => false,
            (None, false) => {
                self.open_detected(firing, graph, now, analysis);
                true
            }
            (Some(i), false) => {
                self.add_symptoms(i, firing, graph, now, analysis);
                true
            }
            (Some(i), true) => self.resolve_if_quiet(i, now, detect_config),
        }
    }

    /// Opens an incident on the alerts `firing` at `now`, and ranks its causes.
    fn open_detected(
        &mut self,
        firing: Vec<Symptom>,
        graph: &KnowledgeGraph,
        now: u64,
        analysis: &AnalysisConfig,
    ) {
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
    }

    /// Adds the alerts `firing` at `now` to the open incident at index `i` (a known alert's
    /// figures replaced, a new one on the timeline) and re-ranks its causes; saved when
    /// something a person reads changed.
    fn add_symptoms(
        &mut self,
        i: usize,
        firing: Vec<Symptom>,
        graph: &KnowledgeGraph,
        now: u64,
        analysis: &AnalysisConfig,
    ) {
        let incident = &mut self.incidents[i];
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
    }

    /// Resolves the open incident at index `i` when no alert has fired for
    /// `resolve_after_nanos`; returns whether it did.
    fn resolve_if_quiet(&mut self, i: usize, now: u64, detect_config: &DetectConfig) -> bool {
        let incident = &mut self.incidents[i];
        let last = incident
            .symptoms
            .iter()
            .map(|s| s.at_unix_nano)
            .max()
            .unwrap_or(incident.opened_unix_nano);
        if now < last + detect_config.resolve_after_nanos {
            return false;
        }
        incident.status = Status::Resolved;
        incident.resolved_unix_nano = Some(now);
        incident.timeline.push(TimelineEntry {
            at_unix_nano: now,
            event: "resolved: every alert quiet".into(),
        });
        let id = incident.id;
        self.save(id);
        true
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
mod tests;
