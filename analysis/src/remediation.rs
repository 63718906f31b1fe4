//! Suggested remediations: for each kind of cause, concrete actions with the exact command
//! where one exists. They are suggestions for a person to run; loupe never runs them.

use loupe_graph::Placement;
use loupe_model::{ChangeEvent, ChangeKind};

use crate::cause::{path_ends, Cause, CauseKind, Remediation};

fn suggest(action: String, command: Option<String>, why: &str) -> Remediation {
    Remediation {
        action,
        command,
        why: why.to_owned(),
        suggestion: true,
    }
}

/// The workload a deployment rolled out: the one the service's pods belong to, else
/// `deployment/<service>`.
fn deployed(workload: &Option<String>, service: &str) -> String {
    workload
        .clone()
        .unwrap_or_else(|| format!("deployment/{service}"))
}

/// Suggestions for one cause, given where its service runs (if known): for a change candidate
/// ([`Cause::change`]), roll back the deployment, revert the flag, undo the configuration
/// change; scale out or restart on resource saturation; read the logs of a failing service; for
/// a database, check it and fail it over; for a node, cordon and drain it; for a network path,
/// check its policies.
pub fn remediations(cause: &Cause, placement: Option<&Placement>) -> Vec<Remediation> {
    let change = cause.change.as_ref();
    // A change is remedied where it was made: the service it changed, or the node an event was
    // about.
    let (kind, name) = match (cause.entity.kind, change) {
        (CauseKind::Change, c) => (
            match c {
                Some(c) if c.service.is_none() => CauseKind::Node,
                _ => CauseKind::Service,
            },
            crate::cause::change_target(&cause.entity.name).unwrap_or(&cause.entity.name),
        ),
        (kind, _) => (kind, cause.entity.name.as_str()),
    };
    if let Some(out) = infrastructure_remediations(kind, name) {
        return out;
    }
    let service = name;
    let ns = placement
        .and_then(|p| p.namespace.as_deref())
        .map(|ns| format!(" -n {ns}"))
        .unwrap_or_default();
    let workload = placement
        .and_then(|p| p.workloads.first())
        .map(|(kind, name)| format!("{kind}/{name}"));
    let mut out = Vec::new();
    if let Some(c) = change {
        out.extend(change_remediations(cause, c, service, &workload, &ns));
    }
    out.extend(evidence_remediations(
        cause, service, placement, &workload, &ns,
    ));
    out
}

/// The suggestions for a database, a node or a network path named `name`; `None` for a
/// service or a change, whose suggestions depend on its evidence and placement.
fn infrastructure_remediations(kind: CauseKind, name: &str) -> Option<Vec<Remediation>> {
    match kind {
        CauseKind::Database => Some(vec![
            suggest(
                format!("Check {name}: slow queries, locks, connections, replication lag"),
                None,
                "queries to it slowed or failed for its callers",
            ),
            suggest(
                format!("Fail {name} over to a healthy replica if its primary is degraded"),
                None,
                "its callers wait on it; a failover restores them if the primary is at fault",
            ),
        ]),
        CauseKind::Node => Some(vec![
            suggest(
                format!("See what runs on node {name}"),
                Some(format!(
                    "kubectl get pods -A -o wide --field-selector spec.nodeName={name}"
                )),
                "the pods on it ran hot together: look for the neighbour that eats its CPU",
            ),
            suggest(
                format!("Cordon node {name} and move its pods elsewhere"),
                Some(format!(
                    "kubectl cordon {name} && kubectl drain {name} --ignore-daemonsets \
                         --delete-emptydir-data"
                )),
                "the services slowed on this node only",
            ),
        ]),
        CauseKind::Edge => {
            let (from, to) = path_ends(name).unwrap_or((name, name));
            Some(vec![suggest(
                format!(
                    "Check the network path from {from} to {to}: network policies, DNS, \
                     service mesh routes"
                ),
                Some("kubectl get networkpolicy -A".into()),
                "calls on this path failed while the callee answered others",
            )])
        }
        CauseKind::Service | CauseKind::Change => None,
    }
}

/// The suggestions that undo change `c` to `service`: roll back a deployment (or check that a
/// rollback recovered it), revert a flag or a configuration change.
fn change_remediations(
    cause: &Cause,
    c: &ChangeEvent,
    service: &str,
    workload: &Option<String>,
    ns: &str,
) -> Vec<Remediation> {
    let mut out = Vec::new();
    match c.kind {
        ChangeKind::Deployment if cause.rolled_back_by.is_some() => {
            let target = deployed(workload, service);
            let back = cause
                .rolled_back_by
                .as_ref()
                .and_then(|r| r.version_to.as_deref())
                .unwrap_or("the previous version");
            out.push(suggest(
                format!("Check that the rollback of {target} to {back} recovered it"),
                Some(format!("kubectl rollout status {target}{ns}")),
                "the deployment before the anomaly was already rolled back: rolling back \
                 again would bring the bad version back",
            ));
        }
        ChangeKind::Deployment => {
            let target = deployed(workload, service);
            let to = c
                .version_from
                .as_deref()
                .map(|v| format!(" (back to {v})"))
                .unwrap_or_default();
            out.push(suggest(
                format!("Roll back {target}{to}"),
                Some(format!("kubectl rollout undo {target}{ns}")),
                "the service was deployed shortly before the anomaly began",
            ));
            out.push(suggest(
                "Find the revision to roll back to".into(),
                Some(format!("kubectl rollout history {target}{ns}")),
                "`rollout undo --to-revision=N` picks a revision other than the previous one",
            ));
        }
        ChangeKind::FeatureFlag => {
            let flag = c.flag.as_deref().unwrap_or("the flag");
            let back = c.version_from.as_deref().unwrap_or("its previous variant");
            out.push(suggest(
                format!("Revert feature flag {flag} to {back} in your flag provider"),
                None,
                "the flag's variant flipped shortly before the anomaly began",
            ));
        }
        ChangeKind::Config => out.push(suggest(
            format!(
                "Revert the configuration change to {service}{}",
                c.commit
                    .as_deref()
                    .map(|x| format!(" (commit {x})"))
                    .unwrap_or_default()
            ),
            None,
            "its configuration changed shortly before the anomaly began",
        )),
        ChangeKind::Scaling | ChangeKind::KubernetesEvent => {}
    }

    out
}

/// The suggestions that follow from `cause`'s evidence on `service`: scale out or restart on
/// resource saturation, read the logs of a failing service.
fn evidence_remediations(
    cause: &Cause,
    service: &str,
    placement: Option<&Placement>,
    workload: &Option<String>,
    ns: &str,
) -> Vec<Remediation> {
    let mut out = Vec::new();
    let has = |feature: &str| {
        cause
            .evidence
            .iter()
            .any(|e| e.feature == feature && e.score > 0.0)
    };
    if has("cpu_utilization") || has("memory_utilization") || has("self_time_p50") {
        if let Some(w) = workload {
            out.push(suggest(
                format!("Scale {w} out"),
                Some(format!("kubectl scale {w}{ns} --replicas=<current + 1>")),
                "its own work slowed or its pods ran hot",
            ));
        }
        if has("memory_utilization") {
            if let Some(w) = workload {
                out.push(suggest(
                    format!("Restart {w} to reclaim memory"),
                    Some(format!("kubectl rollout restart {w}{ns}")),
                    "its pods' memory grew",
                ));
            }
        }
        if let Some(pod) = placement.and_then(|p| p.pods.first()) {
            out.push(suggest(
                format!("See what {pod} is using"),
                Some(format!("kubectl top pod {pod}{ns} --containers")),
                "resource use shows which container saturates",
            ));
        }
    }
    if has("error_spans") || has("error_log_records") || has("log_records_per_request") {
        let target = workload
            .clone()
            .unwrap_or_else(|| format!("deployment/{service}"));
        out.push(suggest(
            format!("Read {service}'s recent logs"),
            Some(format!(
                "kubectl logs {target}{ns} --since=15m --all-containers"
            )),
            "the failures originate in it",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::EntityRef;
    use crate::evidence::{Evidence, EvidenceSignal};
    use loupe_model::ChangeEvent;

    fn cause(features: &[&'static str]) -> Cause {
        Cause {
            rank: 1,
            entity: EntityRef {
                kind: CauseKind::Service,
                name: "checkout".into(),
            },
            score: 5.0,
            probability: 0.0,
            hypotheses: Vec::new(),
            counter_evidence: Vec::new(),
            onset: None,
            inputs: [0.0; crate::ranker::N_INPUTS],
            evidence: features
                .iter()
                .map(|f| {
                    let mut e =
                        Evidence::new(EvidenceSignal::Traces, f, String::new(), 0.0, 1.0, 1.0);
                    e.score = 1.0;
                    e
                })
                .collect(),
            change: None,
            rolled_back_by: None,
            remediation: Vec::new(),
        }
    }

    fn placement() -> Placement {
        Placement {
            namespace: Some("shop".into()),
            workloads: vec![("deployment".into(), "checkout".into())],
            pods: vec!["checkout-7d9f-x2x9z".into()],
        }
    }

    /// One line per case: evidence features, change, expected commands.
    #[test]
    fn commands_per_cause_type() {
        let deploy = {
            let mut c = ChangeEvent::new(ChangeKind::Deployment, 0, "argocd");
            c.version_from = Some("1.14.1".into());
            c
        };
        let flag = {
            let mut c = ChangeEvent::new(ChangeKind::FeatureFlag, 0, "openfeature");
            c.flag = Some("paymentFailure".into());
            c.version_from = Some("off".into());
            c
        };
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            &[&'static str],
            Option<&ChangeEvent>,
            &[&str],
            &[&str],
        )] = &[
            (
                "deployment",
                &["error_spans"],
                Some(&deploy),
                &[
                    "kubectl rollout undo deployment/checkout -n shop",
                    "kubectl rollout history deployment/checkout -n shop",
                    "kubectl logs deployment/checkout -n shop --since=15m --all-containers",
                ],
                &["Roll back deployment/checkout (back to 1.14.1)"],
            ),
            (
                "flag",
                &[],
                Some(&flag),
                &[],
                &["Revert feature flag paymentFailure to off in your flag provider"],
            ),
            (
                "memory",
                &["memory_utilization"],
                None,
                &[
                    "kubectl scale deployment/checkout -n shop --replicas=<current + 1>",
                    "kubectl rollout restart deployment/checkout -n shop",
                    "kubectl top pod checkout-7d9f-x2x9z -n shop --containers",
                ],
                &[],
            ),
            ("nothing to say", &[], None, &[], &[]),
        ];
        for (name, features, change, commands, actions) in cases {
            let mut c = cause(features);
            c.change = change.cloned();
            let got = remediations(&c, Some(&placement()));
            let got_commands: Vec<&str> = got.iter().filter_map(|r| r.command.as_deref()).collect();
            assert_eq!(&got_commands, commands, "{name}");
            for a in *actions {
                assert!(
                    got.iter().any(|r| r.action == *a),
                    "{name}: {a} not in {got:#?}"
                );
            }
            assert!(got.iter().all(|r| r.suggestion));
        }
    }
}
