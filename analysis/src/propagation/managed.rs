//! The explain-away rules of systems on a cloud's managed services, where what is not
//! instrumented (a load balancer, a managed table) is known from its callers' client metrics:
//! the service behind an endpoint explains the path into it, a shared dependency is the cause
//! only when its callers felt it together, and a slowdown every database shares is the
//! system's. Methods of [`super::Damping`], run by [`super::explain_away`].

use std::collections::{BTreeMap, HashMap};

use loupe_graph::{DurationSketch, WindowStats};

use super::{Damping, FAILURE_FEATURES};
use crate::candidate::{Feature, FEATURES};
use crate::cause::{path_ends, CauseKind};
use crate::evidence::{median_shift, SELF_TIME_OFFSET_SECONDS};
use crate::window::{behind, queries_by_database};

use CauseKind::{Database as DATABASE, Edge as EDGE, Service as SERVICE};

/// Fewest databases measured by metrics for their common shift to mean anything: with
/// fewer, one slow database is half of them.
const MIN_COMMON: usize = 3;

/// Fewest metric points of a database's queries in the window for it to count in the common
/// shift.
const MIN_POINTS: u64 = 2;

/// The log shift of the median request duration of each service measured by its server
/// metrics, and of each database's queries measured by its callers' client metrics (at least
/// [`MIN_POINTS`] in `current`), from `baseline` to `current`: the log ratio of medians the
/// evidence reads (`evidence::median_shift`), for every one with durations on both sides,
/// significant or not; keyed by (kind, name).
fn metric_shifts([baseline, current]: [&WindowStats; 2]) -> Vec<((CauseKind, &str), f64)> {
    fn shift(now: &DurationSketch, before: &DurationSketch) -> Option<f64> {
        median_shift(now, before, 1, SELF_TIME_OFFSET_SECONDS).map(|(_, _, x)| x)
    }
    let mut out = Vec::new();
    for s in current
        .services
        .iter()
        .filter(|s| s.red_source == loupe_graph::RedSource::Metrics)
    {
        if let Some(x) = baseline
            .service(&s.name)
            .and_then(|b| shift(&s.red.duration, &b.red.duration))
        {
            out.push(((SERVICE, s.name.as_str()), x));
        }
    }
    let before = queries_by_database(baseline);
    for (db, now) in queries_by_database(current) {
        if now.points < MIN_POINTS {
            continue;
        }
        if let Some(x) = before
            .get(db)
            .and_then(|b| shift(&now.duration, &b.duration))
        {
            out.push(((DATABASE, db), x));
        }
    }
    out
}

/// A kind of evidence a dependency can show: what its callers then did, whether a caller
/// (by index) shows the same kind, and the features it is read from.
type Kind<'a> = (&'a str, &'a dyn Fn(usize) -> bool, Vec<usize>);

impl Damping<'_> {
    /// Endpoints known only from their callers (a load balancer, an API gateway): a network
    /// path into one, whose evidence an instrumented service behind the endpoint ([`behind`])
    /// shows at least `explained_share` of on its own server side, in the same window, is
    /// explained by that service: the endpoint relays the service's answers. All the path's
    /// features are damped; the strongest such service is named. A path into an endpoint with
    /// nothing behind it (a cloud API, a third party) keeps its evidence.
    pub(super) fn endpoints(
        &self,
        windows: [&WindowStats; 2],
        index: &HashMap<(CauseKind, &str), usize>,
        z: &mut [[f64; FEATURES]],
        counter: &mut [Vec<String>],
    ) {
        let (before, config) = (self.before, self.config);
        let strength = |i: usize| before[i].iter().copied().fold(0.0, f64::max);
        for (i, (kind, name)) in self.keys.iter().enumerate() {
            let Some((_, address)) = path_ends(name).filter(|_| *kind == EDGE) else {
                continue;
            };
            let own = strength(i);
            if own <= 0.0 || windows[1].service(address).is_some() {
                continue;
            }
            let by = behind(windows, address, &config.endpoints)
                .into_iter()
                .filter_map(|s| index.get(&(SERVICE, s)).map(|&j| (s, j, strength(j))))
                .filter(|&(_, _, theirs)| theirs >= config.explained_share * own)
                .max_by(|a, b| a.2.total_cmp(&b.2));
            let Some((service, _, theirs)) = by else {
                continue;
            };
            for x in z[i].iter_mut() {
                *x *= config.explained_factor;
            }
            counter[i].push(format!(
                "its evidence ({own:.1}) is explained away by service {service} behind \
                 {address}, whose own server-side figures moved the same way ({theirs:.1}), \
                 and counts ×{}: an endpoint relays its service's answers",
                config.explained_factor
            ));
        }
    }

    /// Shared dependencies known from their callers' client metrics (a managed table, a
    /// database): a change in one is the cause only when its callers felt it, together and in
    /// proportion to how much they use it. For each kind of evidence the database shows
    /// (slower queries: self time; failed queries: failures), the share of its queries in
    /// `current` made by callers that show the same kind of evidence themselves is computed;
    /// at most `explained_share` of them (a lone caller among several, or none), the
    /// database's evidence of that kind counts ×`explained_factor`: the callers that did not
    /// slow or fail say the dependency served them as usual, and a caller that slowed alone is
    /// its own cause. Databases seen through spans keep their evidence (a span measures each
    /// query; a metric point's mean of a few calls wanders).
    pub(super) fn unfelt_dependencies(
        &self,
        current: &WindowStats,
        index: &HashMap<(CauseKind, &str), usize>,
        z: &mut [[f64; FEATURES]],
        counter: &mut [Vec<String>],
    ) {
        let (before, config) = (self.before, self.config);
        let self_time = Feature::SelfTime as usize;
        let mut callers: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
        for q in current.queries.iter().filter(|q| q.red.points > 0) {
            callers
                .entry(q.database.as_str())
                .or_default()
                .push((q.source.as_str(), q.red.calls));
        }
        for (database, callers) in callers {
            let Some(&d) = index.get(&(DATABASE, database)) else {
                continue;
            };
            let total: u64 = callers.iter().map(|(_, calls)| calls).sum();
            let felt = |shows: &dyn Fn(usize) -> bool| -> (f64, Vec<&str>) {
                let mut who = Vec::new();
                let mut calls = 0;
                for &(caller, n) in &callers {
                    if index.get(&(SERVICE, caller)).is_some_and(|&c| shows(c)) {
                        who.push(caller);
                        calls += n;
                    }
                }
                (calls as f64 / total.max(1) as f64, who)
            };
            let kinds: [Kind; 2] = [
                ("slowed", &|c| before[c][self_time] > 0.0, vec![self_time]),
                (
                    "failed",
                    &|c| self.failure(c) > 0.0,
                    FAILURE_FEATURES.iter().map(|f| *f as usize).collect(),
                ),
            ];
            for (how, shows, features) in kinds {
                let own = features.iter().map(|&f| before[d][f]).fold(0.0, f64::max);
                if own <= 0.0 {
                    continue;
                }
                let (share, who) = felt(shows);
                if share > config.explained_share {
                    continue;
                }
                for f in features {
                    z[d][f] *= config.explained_factor;
                }
                let felt_by = if who.is_empty() {
                    "none of its callers".to_owned()
                } else {
                    format!(
                        "only {} ({:.0}% of its queries)",
                        who.join(", "),
                        share * 100.0
                    )
                };
                counter[d].push(format!(
                    "its evidence ({own:.1}) is explained away by its callers: {felt_by} \
                     {how} with it, and counts ×{}: a shared dependency's change that its \
                     callers did not feel together is not theirs",
                    config.explained_factor
                ));
            }
        }
    }

    /// A slowdown every dependency shares: when the databases measured by their callers'
    /// client metrics (at least [`MIN_COMMON`], peers whose durations hold no one else's)
    /// slowed by a median shift above zero (a burst of traffic, a slower zone), a candidate's
    /// own latency shift (a database's queries, or a service's request duration from its
    /// metrics) counts only for what it adds to that common shift: when the common shift is
    /// more than `1 − explained_share` of its own, its latency evidence counts
    /// ×`explained_factor`. One slow database among several leaves the median where it was
    /// and keeps its evidence.
    pub(super) fn common_slowdown(
        &self,
        windows: [&WindowStats; 2],
        index: &HashMap<(CauseKind, &str), usize>,
        z: &mut [[f64; FEATURES]],
        counter: &mut [Vec<String>],
    ) {
        let shifts = metric_shifts(windows);
        let mut values: Vec<f64> = shifts
            .iter()
            .filter(|((kind, _), _)| *kind == DATABASE)
            .map(|(_, x)| *x)
            .collect();
        if values.len() < MIN_COMMON {
            return;
        }
        let common = crate::stats::median(&mut values);
        if common <= 0.0 {
            return;
        }
        let (before, config) = (self.before, self.config);
        let self_time = Feature::SelfTime as usize;
        for (key, own) in shifts {
            let Some(&i) = index.get(&key) else {
                continue;
            };
            if before[i][self_time] <= 0.0 || common <= (1.0 - config.explained_share) * own {
                continue;
            }
            z[i][self_time] *= config.explained_factor;
            counter[i].push(format!(
                "its latency shift (×{:.2}) is explained away by the shift the {} databases \
                 measured by metrics shared (a median ×{:.2}), and counts ×{}: a slowdown \
                 every dependency shows is the system's (load, a zone), not this one's",
                own.exp(),
                values.len(),
                common.exp(),
                config.explained_factor
            ));
        }
    }
}
