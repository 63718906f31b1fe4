//! Call-path shift: which calls an operation's spans make, and in what order, read from the
//! transitions between the direct children of each span ([`loupe_graph::call_paths`]). An
//! exception thrown, an early or a wrong return makes the faulty code skip calls it used to make
//! or make others: in Nezha's Online Boutique case 2022-08-23-04, an exception injected in the
//! frontend's order handler made 36 of 54 checkouts stop after placing the order, where all 32
//! before went on to render the confirmation page. Its callers, which see only the answer, keep
//! their paths. It is the log-path shift's counterpart for code that does not log: both read
//! which code paths a service runs, and the ranking takes the stronger of the two as its
//! `log_paths` feature.
//!
//! Per (service, operation, step `a`, next step `b`), with `n` spans that made a transition
//! from `a` and `x` of them to `b`, in the reference `R` (the baseline and the history) and the
//! window `F`: the share `x/n` of `a`'s successors that are `b` (the confidence of the pattern
//! `a → b`, as Nezha compares patterns: Yu et al., ESEC/FSE 2023) is compared by the
//! two-proportion z test of [`crate::features::log_paths`], with the same Bonferroni bound over all
//! elements of the analysis (α = 0.05) and [`MIN_CALLS`] spans from `a` on each side. A step
//! with one successor in both windows can not shift and is no element. A service's shift is the
//! largest `z·|x_F/n_F − x_R/n_R|` of its passing elements, halved when a service it calls,
//! directly or not, also shifted.

use std::collections::{BTreeMap, HashMap};

use loupe_graph::call_paths::{merge_transitions, CallTransition};
use loupe_graph::templates::Tally;
use loupe_graph::WindowStats;

use super::log_paths::{strongest_per_service, z_statistic, MIN_CALLS};
use super::Windows;
use crate::candidate::{Candidate, Feature};
use crate::evidence::{Evidence, EvidenceSignal};

/// The strongest call-path shift of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct PathShift {
    /// The operation whose spans changed paths.
    pub operation: String,
    /// The step the transition leaves (`None`: the span's start) and the one it reaches
    /// (`None`: the span's end), named by operation (`checkout PlaceOrder`).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Spans that went from `from` to `to`, and all that left `from`, in the reference.
    pub before: (u64, u64),
    /// The same in the window.
    pub now: (u64, u64),
    /// The z statistic.
    pub z: f64,
    /// `z·|Δ share|`, halved when a callee shifted too.
    pub score: f64,
    /// The service the `from` step calls, when it is a call into another service: the
    /// transition is what the span did after that service answered.
    pub after_callee: Option<String>,
}

fn share((x, n): (u64, u64)) -> f64 {
    x as f64 / n.max(1) as f64
}

impl PathShift {
    /// The shift as evidence of `service` (`call_path_shift`; baseline and current are the
    /// shares of `from`'s successors that are `to`; change is the score).
    pub fn evidence(&self, service: &str) -> Evidence {
        let (before, now) = (share(self.before), share(self.now));
        let what = match (&self.from, &self.to) {
            (None, None) => "made no call".to_owned(),
            (None, Some(to)) => format!("called {to} first"),
            (Some(from), None) => format!("called nothing more after {from}"),
            (Some(from), Some(to)) => format!("called {to} next after {from}"),
        };
        let summary = format!(
            "{service} {}: {:.0}% of spans {what} ({:.0}% of {} before)",
            self.operation,
            now * 100.0,
            before * 100.0,
            self.before.1
        );
        Evidence::new(
            EvidenceSignal::Traces,
            "call_path_shift",
            summary,
            before,
            now,
            self.score,
        )
    }
}

/// Spans that left each step, per step.
fn from_counts(paths: &[CallTransition]) -> HashMap<Option<&str>, (u64, usize)> {
    let mut out: HashMap<Option<&str>, (u64, usize)> = HashMap::new();
    for t in paths {
        let e = out.entry(t.from.as_deref()).or_default();
        e.0 += t.spans;
        e.1 += 1;
    }
    out
}

fn spans_of(paths: &[CallTransition], from: Option<&str>, to: Option<&str>) -> u64 {
    paths
        .iter()
        .filter(|t| t.from.as_deref() == from && t.to.as_deref() == to)
        .map(|t| t.spans)
        .sum()
}

/// The other service that `step` (an operation's entity name, `frontend GetProduct`, of
/// `service`) calls: the service of the first child of its spans that belongs to another
/// service, found among the window's services by name; `None` when its spans call none.
fn callee_of(w: &WindowStats, service: &str, step: &str) -> Option<String> {
    let op = w.operations.iter().find(|o| {
        o.service == service
            && step
                .strip_prefix(o.service.as_str())
                .and_then(|rest| rest.strip_prefix(' '))
                == Some(o.name.as_str())
    })?;
    op.call_paths
        .iter()
        .filter_map(|t| t.to.as_deref())
        .find_map(|child| {
            w.services
                .iter()
                .map(|s| s.name.as_str())
                .filter(|s| *s != service)
                .find(|s| {
                    child
                        .strip_prefix(s)
                        .is_some_and(|rest| rest.starts_with(' '))
                })
        })
        .map(str::to_owned)
}

/// Every service's shift, for the services that have one; `reference` is the baseline and any
/// history windows, merged.
pub fn call_path_shift(
    reference: &[&WindowStats],
    current: &WindowStats,
) -> HashMap<String, PathShift> {
    let mut before: HashMap<(&str, &str), Vec<CallTransition>> = HashMap::new();
    for w in reference {
        for o in &w.operations {
            merge_transitions(
                before
                    .entry((o.service.as_str(), o.name.as_str()))
                    .or_default(),
                &o.call_paths,
            );
        }
    }
    let mut elements: Vec<(&str, PathShift)> = Vec::new();
    for now in &current.operations {
        let service = now.service.as_str();
        let Some(then) = before.get(&(service, now.name.as_str())) else {
            continue;
        };
        let (from_now, from_then) = (from_counts(&now.call_paths), from_counts(then));
        let mut transitions: Vec<(Option<&str>, Option<&str>)> = now
            .call_paths
            .iter()
            .chain(then)
            .map(|t| (t.from.as_deref(), t.to.as_deref()))
            .collect();
        transitions.sort_unstable();
        transitions.dedup();
        for (from, to) in transitions {
            let (Some(&(n_f, ways_f)), Some(&(n_r, ways_r))) =
                (from_now.get(&from), from_then.get(&from))
            else {
                continue;
            };
            if n_f < MIN_CALLS || n_r < MIN_CALLS || ways_f.max(ways_r) < 2 {
                continue;
            }
            let (x_r, x_f) = (
                spans_of(then, from, to),
                spans_of(&now.call_paths, from, to),
            );
            let once = |x: u64| Tally {
                spans: x,
                records: x,
                squares: x,
                errors: 0,
            };
            let z = z_statistic((once(x_r), n_r), (once(x_f), n_f));
            let change = (share((x_f, n_f)) - share((x_r, n_r))).abs();
            elements.push((
                service,
                PathShift {
                    operation: now.name.clone(),
                    from: from.map(str::to_owned),
                    to: to.map(str::to_owned),
                    before: (x_r, n_r),
                    now: (x_f, n_f),
                    z,
                    score: z * change,
                    after_callee: from.and_then(|f| callee_of(current, service, f)),
                },
            ));
        }
    }
    strongest_per_service(elements, current, |s| s.z, |s| &mut s.score)
}

/// Adds the call-path shift as the log-path feature of the services that write no log
/// records. Where a service logs, its log paths read its code paths at the resolution of its log
/// lines; reading its calls too would count one code path twice and widen the spread every
/// other service's shift is scored against. The service called right before the shift's
/// transition is kept for propagation ([`crate::propagation::explain_reactions`]).
pub(crate) fn add_call_paths(candidates: &mut BTreeMap<&str, Candidate>, w: &Windows) {
    for (name, shift) in call_path_shift(&w.references(), w.current) {
        let logs = w.current.service(&name).map_or(0, |s| s.logs.records);
        if let (Some(c), 0) = (candidates.get_mut(name.as_str()), logs) {
            c.add(Feature::LogPaths, Some(shift.evidence(&name)));
            c.after_callee = shift.after_callee;
        }
    }
}

#[cfg(test)]
mod tests {
    use loupe_graph::{EdgeWindow, OperationWindow, RedStats};

    use super::*;

    /// A transition `(from, to, spans)`; "" is the span's start or end.
    type Step<'a> = (&'a str, &'a str, u64);

    /// A window of operations `(service, [transitions])`, each named `op`, and call edges.
    fn window(operations: &[(&str, Vec<Step>)], edges: &[(&str, &str)]) -> WindowStats {
        let step = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        WindowStats {
            start: 0,
            end: 1,
            operations: operations
                .iter()
                .map(|(service, steps)| OperationWindow {
                    service: (*service).into(),
                    name: "op".into(),
                    red: RedStats {
                        calls: 100,
                        ..Default::default()
                    },
                    call_paths: steps
                        .iter()
                        .map(|(from, to, spans)| CallTransition {
                            from: step(from),
                            to: step(to),
                            spans: *spans,
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            edges: edges
                .iter()
                .map(|(a, b)| EdgeWindow {
                    source: (*a).into(),
                    target: (*b).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Checkouts that place an order, then render the confirmation page (`recs`), or not.
    fn checkout(rendered: u64, stopped: u64) -> Vec<Step<'static>> {
        vec![
            ("", "cart", 40),
            ("cart", "place", 40),
            ("place", "recs", rendered),
            ("place", "", stopped),
            ("recs", "", rendered),
        ]
    }

    /// The services that shifted from `reference` to `current`, strongest first.
    fn check(
        reference: &[(&str, Vec<Step>)],
        current: &[(&str, Vec<Step>)],
        edges: &[(&str, &str)],
        expected: &[&str],
    ) {
        let (r, c) = (window(reference, edges), window(current, edges));
        let shifts = call_path_shift(&[&r], &c);
        let mut got: Vec<(&str, f64)> = shifts.iter().map(|(s, x)| (s.as_str(), x.score)).collect();
        got.sort_by(|a, b| b.1.total_cmp(&a.1));
        let names: Vec<&str> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(names, expected, "{shifts:?}");
    }

    #[test]
    fn shifts_by_case() {
        // Two thirds of checkouts stop after placing the order: the frontend shifted.
        check(
            &[("frontend", checkout(40, 0))],
            &[("frontend", checkout(14, 26))],
            &[],
            &["frontend"],
        );
        // The same paths in both windows, and a blip of two: nothing.
        check(
            &[("frontend", checkout(40, 0))],
            &[("frontend", checkout(40, 0))],
            &[],
            &[],
        );
        check(
            &[("frontend", checkout(40, 0))],
            &[("frontend", checkout(38, 2))],
            &[],
            &[],
        );
        // Loops and leaves have one successor a step: no element, nothing to shift.
        let leaf = vec![("", "", 50)];
        check(&[("db", leaf.clone())], &[("db", leaf)], &[], &[]);
        // The frontend's callee changed its path too: the callee leads, the frontend halves.
        let payment = |ok: u64, failed: u64| vec![("", "charge", ok), ("", "", failed)];
        check(
            &[("frontend", checkout(40, 0)), ("payment", payment(40, 0))],
            &[("frontend", checkout(14, 26)), ("payment", payment(4, 36))],
            &[("frontend", "payment")],
            &["payment", "frontend"],
        );
    }

    #[test]
    fn the_evidence_says_what_the_spans_did() {
        let shift = PathShift {
            operation: "Recv".into(),
            from: Some("frontend PlaceOrder".into()),
            to: None,
            before: (0, 32),
            now: (36, 54),
            z: 6.0,
            score: 4.0,
            after_callee: Some("checkout".into()),
        };
        let e = shift.evidence("frontend");
        assert_eq!(
            e.summary,
            "frontend Recv: 67% of spans called nothing more after frontend PlaceOrder (0% of 32 before)"
        );
        assert_eq!((e.baseline, e.current, e.change), (0.0, 36.0 / 54.0, 4.0));
    }
}
