//! Propagation, "explained away": evidence that a deeper candidate accounts for counts less.
//! Every rule that damps a candidate's evidence because of another candidate's lives here, and
//! each leaves a sentence of counter-evidence naming that candidate. (A code-path shift halved
//! because a callee shifted too is part of the code-path feature itself,
//! [`crate::features::log_paths`], and leaves no counter-evidence.)

use std::collections::{BTreeMap, HashMap};

use loupe_graph::WindowStats;

use crate::candidate::{Candidate, Feature, FEATURES};
use crate::cause::{path_ends, CauseKind};
use crate::config::AnalysisConfig;
use crate::window::Callees;

use CauseKind::{Database as DATABASE, Edge as EDGE, Node as NODE, Service as SERVICE};

mod managed;

/// Discounts the request-duration shift of metrics-only services by their callees': a
/// request's duration includes its calls, so a caller slows with its callee. A service whose
/// shift some service downstream of it (along the window's `calls` edges, and through an
/// endpoint known only from its callers to the service behind it) matches to at least
/// `explained_share` has its shift multiplied by `explained_factor`, as failures are (see
/// `explain_away`). Spans need no such step: self time leaves the callees out.
pub(crate) fn discount_callers_latency(
    candidates: &mut BTreeMap<&str, Candidate>,
    metrics_only: &[&str],
    windows: [&WindowStats; 2],
    config: &AnalysisConfig,
) {
    let callees = Callees::through_endpoints(windows, &config.endpoints);
    let shift = |c: &BTreeMap<&str, Candidate>, name: &str| {
        c.get(name)
            .and_then(|c| c.raw.get(&Feature::SelfTime).copied())
            .unwrap_or(0.0)
    };
    // Decided, and the figures quoted, before any discount.
    let explained: Vec<(&str, f64, &str, f64)> = metrics_only
        .iter()
        .copied()
        .filter_map(|name| {
            let own = shift(candidates, name);
            let by = callees.find_downstream(name, |d| {
                shift(candidates, d) >= config.explained_share * own
            });
            by.filter(|_| own > 0.0)
                .map(|d| (name, own, d, shift(candidates, d)))
        })
        .collect();
    for (name, own, by, theirs) in explained {
        if let Some(c) = candidates.get_mut(name) {
            if let Some(x) = c.raw.get_mut(&Feature::SelfTime) {
                *x *= config.explained_factor;
            }
            c.counter.push(format!(
                "its request duration (×{:.2}) is explained away by service {by} downstream \
                 of it (×{:.2}), and counts ×{}: a request waits on its calls",
                own.exp(),
                theirs.exp(),
                config.explained_factor
            ));
        }
    }
}

/// The features through which a failure shows in its callers too: a failing call makes the
/// caller fail or log errors, or cut its work short and log less.
const FAILURE_FEATURES: [Feature; 3] =
    [Feature::ErrorSpans, Feature::ErrorLogs, Feature::LogDeficit];

/// A caller's call-path shift whose transition leaves a call into another service (it did
/// something else right after that service answered: stopped, skipped the next call) is its
/// reaction to the answer when that service shows evidence of its own: at least
/// `explained_share` of the shift, over all its features (before any damping). The shift is
/// then scaled by `explained_factor`, as propagated failures are ([`explain_away`]). A callee
/// that looks as usual leaves it whole: the caller's own code changed its path.
pub(crate) fn explain_reactions(
    gathered: &[Candidate],
    index: &HashMap<(CauseKind, &str), usize>,
    undamped: &[[f64; FEATURES]],
    z: &mut [[f64; FEATURES]],
    counter: &mut [Vec<String>],
    config: &AnalysisConfig,
) {
    let paths = Feature::LogPaths as usize;
    for (i, c) in gathered.iter().enumerate() {
        let Some(callee) = c.after_callee.as_deref() else {
            continue;
        };
        let Some(&j) = index.get(&(SERVICE, callee)) else {
            continue;
        };
        let (own, theirs) = (z[i][paths], undamped[j].iter().sum::<f64>());
        if own > 0.0 && theirs >= config.explained_share * own {
            z[i][paths] *= config.explained_factor;
            counter[i].push(format!(
                "its call-path shift ({own:.1}) is explained away by service {callee}, whose \
                 answer it reacted to ({theirs:.1}), and counts ×{}: a caller changes its path \
                 when its callee answers differently",
                config.explained_factor
            ));
        }
    }
}

/// Candidates reachable from `from` along `explains` links, `from` excluded.
fn downstream(from: usize, explains: &[Vec<usize>]) -> Vec<usize> {
    let mut seen: Vec<usize> = Vec::new();
    let mut stack: Vec<usize> = explains[from].clone();
    while let Some(s) = stack.pop() {
        if s == from || seen.contains(&s) {
            continue;
        }
        seen.push(s);
        stack.extend(explains[s].iter().copied());
    }
    seen
}

/// Propagation, the "explained away" rules of the ranking. Each scales down (by
/// `explained_factor`) evidence that a deeper candidate accounts for, when that candidate shows
/// at least `explained_share` of it:
///
/// - failure evidence (errors, log deficit) of a service, by anything downstream of it: a
///   service it calls, a database it queries, a network path it or a callee of it uses
///   (failures propagate to callers, so the deepest failing candidate is the better one). The
///   downstream candidate's strength counts its log-path shift too: a callee that caught an
///   exception or returned early answers wrongly without failing, and its caller fails;
/// - the failed calls into a service, by the one network path they fail on;
/// - a service's self time, by a database it queries whose queries slowed (the caller waits on
///   its queries, which count in its self time when the database is not instrumented);
/// - a service's CPU and self time, by a node one of its pods runs on whose pods all ran hot
///   (a noisy neighbour: the node, not the service, changed);
/// - a network path into an endpoint known only from its callers, by the service behind it
///   ([`behind`]) showing as much on its own server side (`Damping::endpoints`);
/// - a database's evidence from client metrics, by its callers when those that felt it make at
///   most `explained_share` of its queries (`Damping::unfelt_dependencies`);
/// - a latency shift of a database or metrics-only service, by the shift every database
///   measured by metrics shared (`Damping::common_slowdown`).
///
/// Returns, per candidate, its counter-evidence: a sentence for each rule that damped it,
/// naming the candidate that accounts for its evidence (the strongest one that does).
pub(crate) fn explain_away(
    windows: [&WindowStats; 2],
    keys: &[(CauseKind, String)],
    index: &HashMap<(CauseKind, &str), usize>,
    z: &mut [[f64; FEATURES]],
    config: &AnalysisConfig,
) -> Vec<Vec<String>> {
    let links = Links::of(windows, keys, index);
    let mut counter: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    // Every rule reads the scores as they were before any damping.
    let before = z.to_vec();
    let damp = Damping {
        keys,
        before: &before,
        config,
    };
    damp.failures(&links, z, &mut counter);
    damp.slow_queries(&links, z, &mut counter);
    damp.noisy_neighbours(windows[1], index, z, &mut counter);
    damp.endpoints(windows, index, z, &mut counter);
    damp.unfelt_dependencies(windows[1], index, z, &mut counter);
    damp.common_slowdown(windows, index, z, &mut counter);
    counter
}

/// What lies downstream of each candidate, by index into the analysis's candidates.
struct Links {
    /// Per candidate, what it explains away by: a service's callees, databases and outgoing
    /// network paths; a network path's callee's (not the callee itself).
    explains: Vec<Vec<usize>>,
    /// Network paths, and the callee each leads to: (path, caller, callee).
    paths: Vec<(usize, Option<usize>, Option<usize>)>,
}

impl Links {
    /// The links of the candidates named by `keys` (indexed by `index`), from the `calls`
    /// edges and queries of both `windows`.
    fn of(
        windows: [&WindowStats; 2],
        keys: &[(CauseKind, String)],
        index: &HashMap<(CauseKind, &str), usize>,
    ) -> Self {
        let service = |name: &str| index.get(&(SERVICE, name)).copied();
        let mut explains: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        let link = |explains: &mut Vec<Vec<usize>>, from: Option<usize>, to: Option<usize>| {
            if let (Some(a), Some(b)) = (from, to) {
                if a != b && !explains[a].contains(&b) {
                    explains[a].push(b);
                }
            }
        };
        for w in windows {
            for e in &w.edges {
                link(&mut explains, service(&e.source), service(&e.target));
            }
            for q in &w.queries {
                let database = index.get(&(DATABASE, q.database.as_str())).copied();
                link(&mut explains, service(&q.source), database);
            }
        }
        let paths: Vec<(usize, Option<usize>, Option<usize>)> = keys
            .iter()
            .enumerate()
            .filter(|(_, (kind, _))| *kind == EDGE)
            .filter_map(|(i, (_, name))| {
                let (a, b) = path_ends(name)?;
                Some((i, service(a), service(b)))
            })
            .collect();
        for &(i, a, _) in &paths {
            link(&mut explains, a, Some(i));
        }
        for &(i, _, b) in &paths {
            let beyond = b.map(|b| explains[b].clone()).unwrap_or_default();
            for t in beyond {
                link(&mut explains, Some(i), Some(t));
            }
        }
        Self { explains, paths }
    }
}

/// The explain-away rules' common reading: the candidates, their scores before any damping,
/// and the share and factor of the rule.
struct Damping<'a> {
    keys: &'a [(CauseKind, String)],
    before: &'a [[f64; FEATURES]],
    config: &'a AnalysisConfig,
}

impl Damping<'_> {
    /// A candidate's failure evidence: its strongest score among [`FAILURE_FEATURES`].
    fn failure(&self, i: usize) -> f64 {
        FAILURE_FEATURES
            .iter()
            .map(|f| self.before[i][*f as usize])
            .fold(0.0, f64::max)
    }

    /// A candidate named for people: `<kind> <name>`.
    fn what(&self, i: usize) -> String {
        format!("{} {}", self.keys[i].0.as_str(), self.keys[i].1)
    }

    /// Damps the failure evidence of services and network paths that something downstream
    /// accounts for: a failure as strong, or a code path that changed there (a callee that
    /// caught an exception or returned early answers wrongly without failing); or the path
    /// the calls into a service fail on.
    fn failures(&self, links: &Links, z: &mut [[f64; FEATURES]], counter: &mut [Vec<String>]) {
        let config = self.config;
        let strength = |i: usize| {
            self.failure(i)
                .max(self.before[i][Feature::LogPaths as usize])
        };
        for (i, (kind, _)) in self.keys.iter().enumerate() {
            if *kind != SERVICE && *kind != EDGE {
                continue;
            }
            let own = self.failure(i);
            if own <= 0.0 {
                continue;
            }
            // (candidate, its strength, whether it is the path the calls into `i` fail on)
            let path_into = links
                .paths
                .iter()
                .filter(|&&(_, _, b)| b == Some(i))
                .map(|&(p, _, _)| (p, true));
            let by = path_into
                .chain(
                    downstream(i, &links.explains)
                        .into_iter()
                        .map(|d| (d, false)),
                )
                .map(|(d, into)| (d, strength(d), into))
                .filter(|&(_, s, _)| s >= config.explained_share * own)
                // The strongest; on a tie the infrastructure candidate (listed after the
                // services), the more specific account.
                .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            let Some((d, s, into)) = by else {
                continue;
            };
            for f in FAILURE_FEATURES {
                z[i][f as usize] *= config.explained_factor;
            }
            let factor = config.explained_factor;
            counter[i].push(if into {
                format!(
                    "its failure evidence ({own:.1}) is explained away by {}, the path its \
                     failed calls fail on ({s:.1}), and counts ×{factor}",
                    self.what(d)
                )
            } else {
                let how = if self.failure(d) >= config.explained_share * own {
                    "fails"
                } else {
                    "changed its code path"
                };
                format!(
                    "its failure evidence ({own:.1}) is explained away by {} downstream of it, \
                     which {how} ({s:.1}), and counts ×{factor}: failures propagate to callers",
                    self.what(d)
                )
            });
        }
    }

    /// Slow queries: a database a service queries, whose queries slowed, explains the
    /// service's self time.
    fn slow_queries(&self, links: &Links, z: &mut [[f64; FEATURES]], counter: &mut [Vec<String>]) {
        let (before, config) = (self.before, self.config);
        let self_time = Feature::SelfTime as usize;
        for (i, targets) in links.explains.iter().enumerate() {
            let own = before[i][self_time];
            let by_database = targets
                .iter()
                .copied()
                .filter(|&d| {
                    self.keys[d].0 == DATABASE
                        && before[d][self_time] >= config.explained_share * own
                })
                .max_by(|&a, &b| before[a][self_time].total_cmp(&before[b][self_time]));
            if let (true, SERVICE, Some(d)) = (own > 0.0, self.keys[i].0, by_database) {
                z[i][self_time] *= config.explained_factor;
                counter[i].push(format!(
                    "its self time ({own:.1}) is explained away by {}, whose queries slowed \
                     ({:.1}), and counts ×{}",
                    self.what(d),
                    before[d][self_time],
                    config.explained_factor
                ));
            }
        }
    }

    /// Noisy neighbours: a node whose pods all ran hot explains the CPU and self time of the
    /// services with pods on it in `current`.
    fn noisy_neighbours(
        &self,
        current: &WindowStats,
        index: &HashMap<(CauseKind, &str), usize>,
        z: &mut [[f64; FEATURES]],
        counter: &mut [Vec<String>],
    ) {
        let (before, config) = (self.before, self.config);
        let (cpu, self_time) = (Feature::Cpu as usize, Feature::SelfTime as usize);
        let mut on_node: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in &current.pods {
            if let (Some(s), Some(n)) = (&p.service, &p.node) {
                on_node.entry(s.as_str()).or_default().push(n.as_str());
            }
        }
        for (s, nodes) in on_node {
            let Some(&i) = index.get(&(SERVICE, s)) else {
                continue;
            };
            let hot = nodes
                .iter()
                .filter_map(|n| index.get(&(NODE, *n)).copied())
                .filter(|&n| {
                    before[n][cpu] > 0.0
                        && before[n][cpu] >= config.explained_share * before[i][cpu]
                })
                .max_by(|&a, &b| before[a][cpu].total_cmp(&before[b][cpu]));
            if let Some(n) = hot {
                z[i][cpu] *= config.explained_factor;
                z[i][self_time] *= config.explained_factor;
                if before[i][cpu] > 0.0 || before[i][self_time] > 0.0 {
                    counter[i].push(format!(
                        "its CPU and self time are explained away by {}, whose pods ran hot \
                         together ({:.1}), and count ×{}",
                        self.what(n),
                        before[n][cpu],
                        config.explained_factor
                    ));
                }
            }
        }
    }
}
