//! Change candidates: the nearest change to each service or node with evidence, weighed by its
//! distance before the window, rollbacks recognised, and Kubernetes events that say a pod
//! stopped serving.

use std::collections::HashSet;

use loupe_model::{ChangeEvent, ChangeKind};

use crate::cause::{change_name, Cause, CauseKind, EntityRef};
use crate::config::AnalysisConfig;
use crate::evidence::{Evidence, EvidenceSignal};

use CauseKind::{Change as CHANGE, Node as NODE, Service as SERVICE};

/// A change near the window that weighs in on a candidate.
#[derive(Debug)]
pub(crate) struct Nearby {
    /// Proximity weight, 0–1.
    pub(crate) weight: f64,
    /// When, in words.
    pub(crate) when: String,
    /// What, in words (its summary, else its kind).
    pub(crate) what: String,
}

/// Reasons of Kubernetes events that say a pod of the service stopped answering: killed for
/// memory (`OOMKilling` as the kernel's OOM killer reports it through the node, `OOMKilled` as
/// the container's last state), a crash loop, an eviction, failed probes. `Killing` is left
/// out: a rollout kills the old pods on purpose.
const STOPPED_SERVING_REASONS: &[&str] = &[
    "OOMKilling",
    "OOMKilled",
    "BackOff",
    "CrashLoopBackOff",
    "Evicted",
    "Unhealthy",
];

/// The services one of whose pods stopped answering between `start` and `end` (unix ns): a
/// Kubernetes event with one of [`STOPPED_SERVING_REASONS`].
pub(crate) fn stopped_serving(changes: &[ChangeEvent], start: u64, end: u64) -> HashSet<&str> {
    changes
        .iter()
        .filter(|c| {
            c.kind == ChangeKind::KubernetesEvent
                && (start..end).contains(&c.time_unix_nano)
                && c.reason
                    .as_deref()
                    .is_some_and(|r| STOPPED_SERVING_REASONS.contains(&r))
        })
        .filter_map(|c| c.service.as_deref())
        .collect()
}

/// The rollback of deployment `change`: the last deployment of its service after it and
/// before `end`, when that one goes back to the version `change` replaced (`version_to` = its
/// `version_from`); `None` when there is none, or when a later deployment rolled forward again.
fn rollback_of<'a>(
    change: &ChangeEvent,
    changes: &'a [ChangeEvent],
    end: u64,
) -> Option<&'a ChangeEvent> {
    let from = change.version_from.as_deref()?;
    if change.kind != ChangeKind::Deployment {
        return None;
    }
    changes
        .iter()
        .filter(|c| {
            c.kind == ChangeKind::Deployment
                && c.service == change.service
                && (change.time_unix_nano + 1..end).contains(&c.time_unix_nano)
        })
        .max_by_key(|c| c.time_unix_nano)
        .filter(|last| last.version_to.as_deref() == Some(from))
}

/// Whether deployment `change` undoes an earlier deployment of its service in `changes` (it
/// goes from that one's new version back to its old one): a response, not a cause.
fn is_rollback(change: &ChangeEvent, changes: &[ChangeEvent]) -> bool {
    change.kind == ChangeKind::Deployment
        && change.version_to.is_some()
        && changes.iter().any(|c| {
            c.kind == ChangeKind::Deployment
                && c.service == change.service
                && c.time_unix_nano < change.time_unix_nano
                && c.version_from == change.version_to
                && c.version_to == change.version_from
        })
}

/// What a change changed: its service, else the node of a Kubernetes event about a Node object
/// (`NodeNotReady`, disk pressure).
fn changed_entity(change: &ChangeEvent) -> Option<(CauseKind, &str)> {
    match (&change.service, &change.object) {
        (Some(service), _) => Some((SERVICE, service)),
        (None, Some(o)) if o.kind == "Node" => Some((NODE, &o.name)),
        _ => None,
    }
}

/// Change candidates. A change to a candidate service (or a Kubernetes event about a candidate
/// node, [`changed_entity`]) in `[start − lookback, end)` weighs `0.5^(Δ / half-life)`, `Δ` its
/// distance before `start` (0 inside the window); the strongest change to each service or node
/// with evidence (a positive summed score) becomes a candidate of kind [`CauseKind::Change`],
/// returned with the index of the changed candidate in `causes`. Its evidence is the change
/// (first) and the changed candidate's evidence; its proximity weight is an input of the
/// ranker (alone and times the service's evidence), so the change competes with the service it
/// changed: it outranks it when the evidence began near the change. Most incidents follow a
/// change (Google SRE book, "Managing Incidents"; DORA's change failure rate), but a change
/// alone is not an anomaly: a service without evidence yields no change candidate.
/// A deployment that rolls back an earlier one is never the change: the earlier one is, with
/// the rollback recorded (`Cause::rolled_back_by`).
pub(crate) fn change_candidates(
    causes: &[Cause],
    changes: &[ChangeEvent],
    start: u64,
    end: u64,
    config: &AnalysisConfig,
) -> Vec<(usize, Cause, Nearby)> {
    let from = start.saturating_sub(config.change_lookback_nanos);
    causes
        .iter()
        .enumerate()
        .filter_map(|(target, service)| {
            if service.score <= 0.0 || !matches!(service.entity.kind, SERVICE | NODE) {
                return None;
            }
            let (weight, before, change) = changes
                .iter()
                .filter(|c| changed_entity(c) == Some((service.entity.kind, &service.entity.name)))
                .filter(|c| (from..end).contains(&c.time_unix_nano))
                .filter(|c| !is_rollback(c, changes))
                .map(|c| {
                    let before = start.saturating_sub(c.time_unix_nano);
                    let weight =
                        0.5f64.powf(before as f64 / config.change_half_life_nanos.max(1) as f64);
                    (weight, before, c)
                })
                // Of equally near changes (all inside the window weigh 1), the earliest: a
                // later one is more likely a response (a rollback) than the cause.
                .max_by(|a, b| {
                    a.0.total_cmp(&b.0)
                        .then(b.2.time_unix_nano.cmp(&a.2.time_unix_nano))
                })?;
            let when = if before == 0 {
                "during the window".to_owned()
            } else {
                format!("{:.0} s before the window", before as f64 / 1e9)
            };
            let what = if change.summary.is_empty() {
                change.kind.as_str().replace('_', " ")
            } else {
                change.summary.clone()
            };
            let mut e = Evidence::new(
                EvidenceSignal::Changes,
                "change_proximity",
                format!("{what} ({when}; {})", change.source),
                0.0,
                weight,
                weight,
            );
            e.score = weight;
            let rolled_back_by = rollback_of(change, changes, end).cloned();
            if let Some(r) = &rolled_back_by {
                e.summary.push_str(&format!(
                    "; rolled back to {} {:.0} s later",
                    r.version_to.as_deref().unwrap_or("the previous version"),
                    r.time_unix_nano.saturating_sub(change.time_unix_nano) as f64 / 1e9
                ));
            }
            let mut evidence = vec![e];
            evidence.extend(service.evidence.iter().cloned());
            let cause = Cause {
                entity: EntityRef {
                    kind: CHANGE,
                    name: change_name(&service.entity.name, change),
                },
                evidence,
                change: Some(change.clone()),
                rolled_back_by,
                ..service.clone()
            };
            Some((target, cause, Nearby { weight, when, what }))
        })
        .collect()
}

#[cfg(test)]
mod tests {

    use loupe_model::{ChangeEvent, ChangeKind};

    use super::*;
    use crate::cause::change_target;
    use crate::ranker::N_INPUTS;

    const MIN: i64 = 60;

    /// A service cause of `score` with nothing else yet.
    fn service_cause(name: &str, score: f64) -> Cause {
        Cause {
            rank: 0,
            entity: EntityRef {
                kind: CauseKind::Service,
                name: name.to_owned(),
            },
            score,
            probability: 0.0,
            evidence: Vec::new(),
            hypotheses: Vec::new(),
            counter_evidence: Vec::new(),
            onset: None,
            inputs: [0.0; N_INPUTS],
            change: None,
            rolled_back_by: None,
            remediation: Vec::new(),
        }
    }

    /// A deployment, then its rollback inside the window (the deployment itself inside the
    /// window, or 30 s before it, where it weighs less than the rollback): the deployment is
    /// the change that weighs in, its evidence says it was rolled back, and the suggestion is to
    /// check the rollback, never to undo it (which would bring the bad version back). Rolled
    /// forward again, it is the undo again.
    #[test]
    fn a_rolled_back_deployment_is_the_change_and_is_not_rolled_back_again() {
        let start: u64 = 3_600 * 1_000_000_000;
        let end = start + 5 * 60 * 1_000_000_000;
        let at = |seconds: i64| (start as i64 + seconds * 1_000_000_000) as u64;
        let deploy = |t: i64, from: &str, to: &str| {
            let mut c = ChangeEvent::new(ChangeKind::Deployment, at(t), "github");
            c.service = Some("cart".to_owned());
            c.version_from = Some(from.to_owned());
            c.version_to = Some(to.to_owned());
            c
        };
        // Deployments (seconds from the window's start, from, to) → the evidence's words
        // and the suggested command.
        #[allow(clippy::type_complexity)]
        let cases: [(&[(i64, &str, &str)], &str, &str); 4] = [
            (
                &[(60, "2.0.2", "2.0.3"), (180, "2.0.3", "2.0.2")],
                "rolled back to 2.0.2 120 s later",
                "kubectl rollout status deployment/cart",
            ),
            (
                &[(-30, "2.0.2", "2.0.3"), (180, "2.0.3", "2.0.2")],
                "rolled back to 2.0.2 210 s later",
                "kubectl rollout status deployment/cart",
            ),
            (
                &[(60, "2.0.2", "2.0.3")],
                "during the window",
                "kubectl rollout undo deployment/cart",
            ),
            (
                &[
                    (60, "2.0.2", "2.0.3"),
                    (120, "2.0.3", "2.0.2"),
                    (180, "2.0.2", "2.0.3"),
                ],
                "during the window",
                "kubectl rollout undo deployment/cart",
            ),
        ];
        for (deployments, words, command) in cases {
            let changes: Vec<ChangeEvent> = deployments
                .iter()
                .map(|(t, from, to)| deploy(*t, from, to))
                .collect();
            let causes = vec![service_cause("cart", 1.0)];
            let changed =
                change_candidates(&causes, &changes, start, end, &AnalysisConfig::default());
            let [(0, cause, _)] = changed.as_slice() else {
                panic!("{deployments:?}: one change candidate for cart, got {changed:?}");
            };
            assert_eq!(change_target(&cause.entity.name), Some("cart"));
            assert_eq!(
                cause.change.as_ref().and_then(|c| c.version_to.as_deref()),
                Some("2.0.3"),
                "{deployments:?}: the deployment, never its rollback"
            );
            let summary = &cause.evidence[0].summary;
            assert!(summary.contains(words), "{deployments:?}: {summary}");
            let commands: Vec<String> = crate::remediation::remediations(cause, None)
                .into_iter()
                .filter_map(|r| r.command)
                .collect();
            assert_eq!(
                commands.first().map(String::as_str),
                Some(command),
                "{deployments:?}: {commands:?}"
            );
            let undo = commands.iter().any(|c| c.contains("rollout undo"));
            assert_eq!(
                undo,
                cause.rolled_back_by.is_none(),
                "{deployments:?}: {commands:?}"
            );
        }
    }

    /// One line per case: services' summed scores, changes (service, seconds before the
    /// window's start; negative: after it), and the expected ranking under the hand weights
    /// (a change scores its service's evidence times 1 + its proximity weight) with its scores.
    /// `Δb` is the change to `b`.
    #[test]
    fn change_proximity_cases() {
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, &[(&str, f64)], &[(&str, i64)], &[&str], &[f64])] = &[
            (
                "no change, no effect",
                &[("a", 5.0), ("b", 4.0)],
                &[],
                &["a", "b"],
                &[5.0, 4.0],
            ),
            (
                "deployed at the start doubles",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 0)],
                &["Δb", "a", "b"],
                &[8.0, 5.0, 4.0],
            ),
            (
                "one half-life before: ×1.5",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 10 * MIN)],
                &["Δb", "a", "b"],
                &[6.0, 5.0, 4.0],
            ),
            (
                "during the window counts fully",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", -MIN)],
                &["Δb", "a", "b"],
                &[8.0, 5.0, 4.0],
            ),
            (
                "past the lookback: nothing",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 31 * MIN)],
                &["a", "b"],
                &[5.0, 4.0],
            ),
            (
                "after the window: nothing",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", -6 * MIN)],
                &["a", "b"],
                &[5.0, 4.0],
            ),
            (
                "a change without anomalies is no candidate",
                &[("a", 5.0), ("b", 0.0)],
                &[("b", 0)],
                &["a", "b"],
                &[5.0, 0.0],
            ),
            (
                "the nearest change counts, once",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 20 * MIN), ("b", 0)],
                &["Δb", "a", "b"],
                &[8.0, 5.0, 4.0],
            ),
            (
                "a far change ranks below a stronger service",
                &[("a", 5.0), ("b", 4.0)],
                &[("b", 20 * MIN)],
                &["a", "Δb", "b"],
                &[5.0, 5.0, 4.0],
            ),
        ];
        let start: u64 = 3_600 * 1_000_000_000;
        let end = start + 5 * 60 * 1_000_000_000;
        for (name, scores, changes, order, expected) in cases {
            let mut causes: Vec<Cause> = scores
                .iter()
                .map(|(s, score)| service_cause(s, *score))
                .collect();
            let changes: Vec<ChangeEvent> = changes
                .iter()
                .map(|(s, before)| {
                    let t = (start as i64 - before * 1_000_000_000) as u64;
                    let mut c = ChangeEvent::new(ChangeKind::Deployment, t, "api");
                    c.service = Some((*s).to_owned());
                    c
                })
                .collect();
            let changed =
                change_candidates(&causes, &changes, start, end, &AnalysisConfig::default());
            for (target, mut cause, near) in changed {
                assert_eq!(cause.evidence[0].feature, "change_proximity", "{name}");
                assert_eq!(
                    change_target(&cause.entity.name),
                    Some(causes[target].entity.name.as_str()),
                    "{name}"
                );
                cause.score *= 1.0 + near.weight;
                causes.push(cause);
            }
            // Stable: of equal scores, services first (the far change ties with `a`).
            causes.sort_by(|a, b| b.score.total_cmp(&a.score));
            let got: Vec<String> = causes
                .iter()
                .map(|c| match c.entity.kind {
                    CHANGE => format!("Δ{}", change_target(&c.entity.name).unwrap_or("?")),
                    _ => c.entity.name.clone(),
                })
                .collect();
            assert_eq!(&got, order, "{name}");
            for (c, e) in causes.iter().zip(*expected) {
                assert!(
                    (c.score - e).abs() < 1e-9,
                    "{name}: {} {} ≠ {e}",
                    c.entity.name,
                    c.score
                );
            }
        }
    }

    /// One line per case: a change's service and object, the candidates (kind, name) it can
    /// weigh on, and which of them gets a change candidate (and its first suggested command).
    #[test]
    fn events_about_a_node_are_changes_to_the_node() {
        let start: u64 = 3_600 * 1_000_000_000;
        let end = start + 5 * 60 * 1_000_000_000;
        let node = |name: &str| {
            let mut c = service_cause(name, 2.0);
            c.entity.kind = NODE;
            c
        };
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            Option<&str>,
            Option<(&str, &str)>,
            Option<&str>,
            Option<&str>,
        )] = &[
            (
                "NodeNotReady on worker-2",
                None,
                Some(("Node", "worker-2")),
                Some("worker-2"),
                Some("kubectl get pods -A -o wide --field-selector spec.nodeName=worker-2"),
            ),
            (
                "an event about another node",
                None,
                Some(("Node", "worker-9")),
                None,
                None,
            ),
            (
                "a pod event without its service",
                None,
                Some(("Pod", "worker-2")),
                None,
                None,
            ),
            (
                "a deployment of cart",
                Some("cart"),
                None,
                Some("cart"),
                Some("kubectl rollout undo deployment/cart"),
            ),
        ];
        for (name, service, object, expected, command) in cases {
            let mut c = ChangeEvent::new(ChangeKind::KubernetesEvent, start, "k8s_events");
            if service.is_some() {
                c.kind = ChangeKind::Deployment;
            }
            c.service = service.map(str::to_owned);
            c.object = object.map(|(kind, name)| loupe_model::ObjectRef {
                kind: kind.to_owned(),
                name: name.to_owned(),
                namespace: None,
            });
            let causes = vec![service_cause("cart", 2.0), node("worker-2")];
            let changed = change_candidates(&causes, &[c], start, end, &AnalysisConfig::default());
            let got: Vec<&str> = changed
                .iter()
                .filter_map(|(_, c, _)| change_target(&c.entity.name))
                .collect();
            assert_eq!(got, expected.as_slice(), "{name}");
            if let Some((_, cause, _)) = changed.first() {
                let commands: Vec<String> = crate::remediation::remediations(cause, None)
                    .into_iter()
                    .filter_map(|r| r.command)
                    .collect();
                assert_eq!(commands.first().map(String::as_str), *command, "{name}");
            }
        }
    }

    /// A change candidate's name says what changed, and when, and gives the service back.
    #[test]
    fn change_names_round_trip() {
        let mut c = ChangeEvent::new(ChangeKind::FeatureFlag, 1_763_733_720_000_000_000, "api");
        c.service = Some("shop/checkout".into());
        let name = change_name("shop/checkout", &c);
        assert_eq!(name, "shop/checkout:feature_flag@2025-11-21T14:02:00Z");
        assert_eq!(change_target(&name), Some("shop/checkout"));
        for not_a_change in ["checkout", "checkout@x", ":deployment@x", "a->b"] {
            assert_eq!(change_target(not_a_change), None, "{not_a_change}");
        }
    }
}
