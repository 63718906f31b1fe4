//! Log-path shift: which code paths an operation's calls run, read from the log templates they
//! write. An exception thrown, an early or a wrong return makes the changed service's calls
//! start or stop writing some log line, or write it fewer or more times (a loop cut short),
//! while its callers, which only see the answer, keep theirs. Templates come from the graph's
//! Drain miner ([`loupe_graph::templates`]).
//!
//! Per (service, operation, template), with `n` calls, `S` records of the template and `Q` the
//! sum over calls of their record count squared, in the reference `R` (the baseline and the
//! history) and the window `F`: the records per call `m_R = (S_R + ½)/(n_R + 1)`,
//! `m_F = (S_F + ½)/(n_F + 1)`; pooled over both, `m = (S_R + S_F + 1)/(n_R + n_F + 2)`,
//! `q = (Q_R + Q_F + 1)/(n_R + n_F + 2)` and the variance `v = q − m²` of a call's count under
//! the hypothesis that nothing changed; and the two-sample z statistic with pooled variance
//! `z = |m_F − m_R| / √(v(1/(n_R+1) + 1/(n_F+1)))`. Where every call writes the template at
//! most once (`Q = S`, the common case) this is exactly the two-proportion z test of the share
//! of calls that wrote it, `v = m(1 − m)`. Only services with log records in both `R` and `F`,
//! and operations with at least [`MIN_CALLS`] calls in each, count. With `m` such elements in
//! the analysis, an element passes when `z ≥ Φ⁻¹(1 − α/(2m))`, α = 0.05 (a Bonferroni bound on
//! the family-wise error, so a quiet system yields nothing). A service's shift is the largest
//! `z·|S_F/n_F − S_R/n_R| / max(1, S_F/n_F, S_R/n_R)` of its passing elements (the change in
//! the share of calls, or relative to the records per call where calls write more than one),
//! halved when a service it calls, directly or not, also shifted (the caller's paths change
//! because the callee's answers did). A template whose records are mostly error reports and
//! that calls now write less is no element: a problem went away.

use std::collections::{BTreeMap, HashMap};

use loupe_graph::templates::{template_text, Tally, TemplateId};
use loupe_graph::{Merge, OperationWindow, WindowStats};

use super::Windows;
use crate::candidate::{Candidate, Feature};
use crate::evidence::{Evidence, EvidenceSignal};

/// Fewest calls of an operation, in the reference and in the window, for its templates to count.
pub const MIN_CALLS: u64 = 2;

/// Family-wise false-alarm rate of the test over all elements of one analysis.
pub(crate) const ALPHA: f64 = 0.05;

/// The strongest shift of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// The operation whose calls changed paths.
    pub operation: String,
    /// The template whose share of calls, or records per call, changed.
    pub template: TemplateId,
    /// What the calls wrote of the template, and all calls, in the reference.
    pub before: (Tally, u64),
    /// The same in the window.
    pub now: (Tally, u64),
    /// The z statistic.
    pub z: f64,
    /// `z·|Δ records per call| / max(1, records per call)`, halved when a callee shifted too.
    pub score: f64,
}

/// Records per call.
fn per_call((tally, n): (Tally, u64)) -> f64 {
    tally.records as f64 / n.max(1) as f64
}

impl Shift {
    /// The shift as evidence of `service` (`log_path_shift`; baseline and current are the
    /// template's records per call, the share of calls that wrote it where no call wrote it
    /// twice; change is the score).
    pub fn evidence(&self, service: &str) -> Evidence {
        let mut text = template_text(self.template).unwrap_or_else(|| "a log line".into());
        if text.chars().count() > 100 {
            text = text.chars().take(100).collect::<String>() + "…";
        }
        let (before, now) = (per_call(self.before), per_call(self.now));
        let once = |(t, _): (Tally, u64)| t.squares == t.records;
        let summary = if once(self.before) && once(self.now) {
            format!(
                "{service} {}: {:.0}% of calls wrote \"{text}\" ({:.0}% of {} before)",
                self.operation,
                now * 100.0,
                before * 100.0,
                self.before.1
            )
        } else {
            format!(
                "{service} {}: calls wrote \"{text}\" {now:.2} times each ({before:.2} times \
                 in {} calls before)",
                self.operation, self.before.1
            )
        };
        Evidence::new(
            EvidenceSignal::Logs,
            "log_path_shift",
            summary,
            before,
            now,
            self.score,
        )
    }
}

/// One-sided standard-normal quantile: the `z` with `P(Z > z) = tail`, by bisection on `erfc`.
pub(crate) fn upper_quantile(tail: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if 0.5 * libm::erfc(mid / std::f64::consts::SQRT_2) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// The two-sample z statistic with pooled variance of the records per call, the reference's
/// `(tally, calls)` against the window's (see the module).
pub(crate) fn z_statistic((r, n_r): (Tally, u64), (f, n_f): (Tally, u64)) -> f64 {
    let (n_r, n_f) = (n_r as f64, n_f as f64);
    let m_r = (r.records as f64 + 0.5) / (n_r + 1.0);
    let m_f = (f.records as f64 + 0.5) / (n_f + 1.0);
    let m = (r.records + f.records + 1) as f64 / (n_r + n_f + 2.0);
    let q = (r.squares + f.squares + 1) as f64 / (n_r + n_f + 2.0);
    let se = ((q - m * m) * (1.0 / (n_r + 1.0) + 1.0 / (n_f + 1.0))).sqrt();
    if se > 0.0 {
        (m_f - m_r).abs() / se
    } else {
        0.0
    }
}

/// Every service's shift, for the services that have one; `reference` is the baseline and any
/// history windows, merged.
pub fn log_path_shift(reference: &[&WindowStats], current: &WindowStats) -> HashMap<String, Shift> {
    let logged = |w: &WindowStats, s: &str| w.service(s).is_some_and(|x| x.logs.records > 0);
    let mut before: HashMap<(&str, &str), OperationWindow> = HashMap::new();
    for w in reference {
        for o in &w.operations {
            let r = before
                .entry((o.service.as_str(), o.name.as_str()))
                .or_default();
            r.red.merge(&o.red);
            r.templates.merge_from(&o.templates);
        }
    }
    let mut elements: Vec<(&str, Shift)> = Vec::new();
    for now in &current.operations {
        let service = now.service.as_str();
        if !logged(current, service) || !reference.iter().any(|w| logged(w, service)) {
            continue;
        }
        let Some(then) = before.get(&(service, now.name.as_str())) else {
            continue;
        };
        let (n_f, n_r) = (now.red.calls, then.red.calls);
        if n_f < MIN_CALLS || n_r < MIN_CALLS {
            continue;
        }
        let mut templates: Vec<TemplateId> = now.templates.0.iter().map(|(t, _)| *t).collect();
        templates.extend(then.templates.0.iter().map(|(t, _)| *t));
        templates.sort_unstable();
        templates.dedup();
        for t in templates {
            // A span counted in one bucket and its calls in the next can make more spans
            // write a template than there are calls.
            let clamp = |mut tally: Tally, n: u64| {
                if tally.squares == tally.records {
                    // One record a span: records are spans.
                    tally.records = tally.records.min(n);
                    tally.squares = tally.records;
                }
                tally.spans = tally.spans.min(n);
                tally
            };
            let before = (clamp(then.templates.get(t), n_r), n_r);
            let after = (clamp(now.templates.get(t), n_f), n_f);
            let (m_r, m_f) = (per_call(before), per_call(after));
            if m_f < m_r && 2 * before.0.errors > before.0.records {
                // An error report that stopped or thinned out: a problem that went away.
                continue;
            }
            let z = z_statistic(before, after);
            let change = (m_f - m_r).abs() / m_f.max(m_r).max(1.0);
            elements.push((
                service,
                Shift {
                    operation: now.name.clone(),
                    template: t,
                    before,
                    now: after,
                    z,
                    score: z * change,
                },
            ));
        }
    }
    strongest_per_service(elements, current, |s| s.z, |s| &mut s.score)
}

/// What the log-path and the call-path shifts share once their elements are tested: the
/// elements past the Bonferroni bound for all of them (`z ≥ Φ⁻¹(1 − α/(2m))`), the
/// highest-scoring one per service, its score halved when a service it calls, directly or not,
/// also has one (the caller's paths change because the callee's answers did).
pub(crate) fn strongest_per_service<S>(
    elements: Vec<(&str, S)>,
    current: &WindowStats,
    z: impl Fn(&S) -> f64,
    score: impl Fn(&mut S) -> &mut f64,
) -> HashMap<String, S> {
    if elements.is_empty() {
        return HashMap::new();
    }
    let gate = upper_quantile(ALPHA / (2.0 * elements.len() as f64));
    let mut best: BTreeMap<&str, S> = BTreeMap::new();
    for (service, mut shift) in elements.into_iter().filter(|(_, s)| z(s) >= gate) {
        let stronger = best
            .get_mut(service)
            .is_none_or(|b| *score(b) < *score(&mut shift));
        if stronger {
            best.insert(service, shift);
        }
    }
    let callees = crate::window::Callees::of(current);
    let halved: Vec<&str> = best
        .keys()
        .copied()
        .filter(|s| callees.any_downstream(s, |d| best.contains_key(d)))
        .collect();
    best.into_iter()
        .map(|(s, mut shift)| {
            if halved.contains(&s) {
                *score(&mut shift) /= 2.0;
            }
            (s.to_owned(), shift)
        })
        .collect()
}

/// Adds the log-path feature: which code paths an operation's calls run, as the log templates
/// they write, each service's shift against the baseline and the pooled history.
pub(crate) fn add_log_paths(candidates: &mut BTreeMap<&str, Candidate>, w: &Windows) {
    for (name, shift) in log_path_shift(&w.references(), w.current) {
        if let Some(c) = candidates.get_mut(name.as_str()) {
            c.add(Feature::LogPaths, Some(shift.evidence(&name)));
        }
    }
}

#[cfg(test)]
mod tests {
    use loupe_graph::templates::TemplateCounts;
    use loupe_graph::{EdgeWindow, LogStats, RedStats, ServiceWindow};

    use super::*;

    /// An operation named `op`: its service, calls, and `(template, calls that wrote it once)`.
    type Op<'a> = (&'a str, u64, &'a [(u64, u64)]);

    /// A window of services `(name, log records)`, operations `(service, calls, [(template,
    /// calls that wrote it)])` named `op`, and call edges.
    fn window(services: &[(&str, u64)], operations: &[Op], edges: &[(&str, &str)]) -> WindowStats {
        let mut services = services.to_vec();
        services.sort(); // the window's services are in name order
        WindowStats {
            start: 0,
            end: 1,
            services: services
                .iter()
                .map(|(name, records)| ServiceWindow {
                    name: (*name).into(),
                    logs: LogStats {
                        records: *records,
                        error_records: 0,
                        foreign_error_records: 0,
                    },
                    ..Default::default()
                })
                .collect(),
            operations: operations
                .iter()
                .map(|(service, calls, templates)| OperationWindow {
                    service: (*service).into(),
                    name: "op".into(),
                    red: RedStats {
                        calls: *calls,
                        ..Default::default()
                    },
                    templates: TemplateCounts(
                        templates
                            .iter()
                            .map(|(t, n)| (*t, Tally::once(*n)))
                            .collect(),
                    ),
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

    #[test]
    fn a_code_path_that_starts_or_stops_is_a_shift() {
        // (reference calls, reference spans with the template, window calls, window spans,
        // shifts?) for one service with one operation and one template, among 5 quiet ones.
        let cases: [(u64, u64, u64, u64, bool); 6] = [
            (100, 0, 40, 30, true),   // a new line in three calls of four
            (100, 95, 40, 2, true),   // a line that stopped
            (100, 50, 40, 21, false), // the same share
            (100, 0, 40, 1, false),   // one call: not past the Bonferroni bound
            (1, 0, 40, 40, false),    // too few reference calls to compare
            (100, 10, 40, 6, false),  // 10% → 15%: noise
        ];
        for (n_r, k_r, n_f, k_f, expected) in cases {
            let reference = quiet_and_x(n_r, Tally::once(k_r));
            let current = quiet_and_x(n_f, Tally::once(k_f));
            let shifts = log_path_shift(&[&reference], &current);
            assert_eq!(
                shifts.contains_key("x"),
                expected,
                "{n_r}/{k_r} → {n_f}/{k_f}: {shifts:?}"
            );
            assert!(shifts.keys().all(|s| s == "x"), "{shifts:?}");
        }
    }

    /// Five quiet services with one operation each, and service `x` whose operation `op` had
    /// `calls` calls that wrote `tally` of template 1.
    fn quiet_and_x(calls: u64, tally: Tally) -> WindowStats {
        let quiet: Vec<Op> = ["a", "b", "c", "d", "e"]
            .into_iter()
            .map(|s| (s, 50, &[(9, 25)][..]))
            .collect();
        let services = [("x", 10), ("a", 5), ("b", 5), ("c", 5), ("d", 5), ("e", 5)];
        let mut w = window(&services, &quiet, &[]);
        w.operations.push(OperationWindow {
            service: "x".into(),
            name: "op".into(),
            red: RedStats {
                calls,
                ..Default::default()
            },
            templates: TemplateCounts(vec![(1, tally)]),
            ..Default::default()
        });
        w
    }

    /// A loop cut short by an exception: every call still writes the line, but fewer times.
    #[test]
    fn a_change_in_records_per_call_is_a_shift() {
        // (reference calls, records each; window calls and how many wrote 1, 2 or 3 records;
        // shifts?) for one service with one operation and one template, among 5 quiet ones.
        let cases: [(u64, u64, [u64; 3], bool); 5] = [
            (100, 2, [30, 10, 0], true), // 2 a call → 1.25
            (100, 2, [0, 40, 0], false), // the same
            (100, 2, [1, 39, 0], false), // one call of 40 short: noise
            (100, 1, [0, 0, 20], true),  // 1 → 3
            (1, 2, [20, 0, 0], false),   // one reference call: too few to compare
        ];
        for (n_r, each, [one, two, three], expected) in cases {
            let tally = |n: u64, c: u64| Tally {
                spans: n,
                records: n * c,
                squares: n * c * c,
                errors: 0,
            };
            let reference = quiet_and_x(n_r, tally(n_r, each));
            let mut now = tally(one, 1);
            now.add(tally(two, 2));
            now.add(tally(three, 3));
            let current = quiet_and_x(one + two + three, now);
            let shifts = log_path_shift(&[&reference], &current);
            assert_eq!(
                shifts.contains_key("x"),
                expected,
                "{n_r}×{each} → {one}×1 {two}×2 {three}×3: {shifts:?}"
            );
            assert!(shifts.keys().all(|s| s == "x"), "{shifts:?}");
            if let Some(shift) = shifts.get("x") {
                let e = shift.evidence("x");
                assert_eq!(e.baseline, each as f64);
                assert!(e.summary.contains("times each"), "{}", e.summary);
            }
        }
    }

    /// Errors that stop are a recovery, not a cause; errors that start are a shift.
    #[test]
    fn an_error_report_that_stops_is_no_shift() {
        let errors = |spans: u64| Tally {
            errors: spans,
            ..Tally::once(spans)
        };
        let (failing, fine) = (quiet_and_x(100, errors(95)), quiet_and_x(40, errors(0)));
        assert!(log_path_shift(&[&failing], &fine).is_empty());
        let shifts = log_path_shift(&[&fine], &quiet_and_x(40, errors(30)));
        assert!(shifts.contains_key("x"), "{shifts:?}");
    }

    #[test]
    fn a_caller_whose_paths_follow_its_callee_is_halved_and_silent_logs_count_nothing() {
        let services = [("front", 10), ("back", 10), ("mute", 0)];
        let reference = window(
            &services,
            &[
                ("front", 100, &[(1, 0)]),
                ("back", 100, &[(2, 0)]),
                ("mute", 100, &[]),
            ],
            &[("front", "back")],
        );
        let current = window(
            &services,
            &[
                ("front", 40, &[(1, 30)]),
                ("back", 40, &[(2, 30)]),
                ("mute", 40, &[(3, 40)]),
            ],
            &[("front", "back")],
        );
        let shifts = log_path_shift(&[&reference], &current);
        assert_eq!(shifts.len(), 2, "{shifts:?}");
        let (front, back) = (&shifts["front"], &shifts["back"]);
        assert!((front.score * 2.0 - back.score).abs() < 1e-9, "{shifts:?}");
        assert!(
            !shifts.contains_key("mute"),
            "no logs in the reference: {shifts:?}"
        );
        let e = back.evidence("back");
        assert_eq!(
            (e.feature.as_ref(), e.baseline, e.current),
            ("log_path_shift", 0.0, 0.75)
        );
    }
}
