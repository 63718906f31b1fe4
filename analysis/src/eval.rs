//! Accuracy of a ranking against a labelled root cause, as the RCA literature reports it.
//!
//! AC@k: share of cases whose true cause is among the top k. Avg@k: the mean of AC@1..AC@k
//! (Yu et al., "MicroRank", WWW 2021, §5.1; used by Nezha, FSE 2023, Table 3).

use crate::cause::{path_ends, Cause, CauseKind, EntityRef};

/// Whether `entity` is the labelled root cause:
/// - a service or node of that name;
/// - a change to a service of that name (the label names where the fault is; the change is
///   what put it there);
/// - a database whose name (`<db.system.name>/<db.namespace>`) ends in `/<truth>`, or is
///   `truth`;
/// - a network path (`caller->callee`) whose ends are the labelled `edge` (a label names a
///   partition's caller as its service, so the caller service matches too).
pub fn names_root_cause(entity: &EntityRef, truth: &str, edge: Option<&[String; 2]>) -> bool {
    match entity.kind {
        CauseKind::Database => {
            entity.name == truth
                || entity
                    .name
                    .rsplit_once('/')
                    .is_some_and(|(_, namespace)| namespace == truth)
        }
        CauseKind::Edge => {
            edge.is_some_and(|[a, b]| path_ends(&entity.name) == Some((a.as_str(), b.as_str())))
        }
        CauseKind::Service | CauseKind::Node => entity.name == truth,
        CauseKind::Change => crate::cause::change_target(&entity.name) == Some(truth),
    }
}

/// The 1-based rank of the first of `causes` that [`names_root_cause`].
pub fn rank_of_cause(causes: &[Cause], truth: &str, edge: Option<&[String; 2]>) -> Option<usize> {
    causes
        .iter()
        .position(|c| names_root_cause(&c.entity, truth, edge))
        .map(|i| i + 1)
}

/// Accuracy figures over a set of cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// Number of cases.
    pub cases: usize,
    /// AC@1.
    pub ac_at_1: f64,
    /// AC@3.
    pub ac_at_3: f64,
    /// AC@5.
    pub ac_at_5: f64,
    /// Avg@5.
    pub avg_at_5: f64,
    /// Mean reciprocal rank (a cause not ranked counts 0).
    pub mrr: f64,
}

impl Accuracy {
    /// Accuracy of the given ranks (1-based; `None` when the cause was not ranked at all).
    pub fn of(ranks: &[Option<usize>]) -> Self {
        let n = ranks.len();
        if n == 0 {
            return Self::default();
        }
        let ac =
            |k: usize| ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count() as f64 / n as f64;
        Self {
            cases: n,
            ac_at_1: ac(1),
            ac_at_3: ac(3),
            ac_at_5: ac(5),
            avg_at_5: (1..=5).map(ac).sum::<f64>() / 5.0,
            mrr: ranks
                .iter()
                .map(|r| r.map_or(0.0, |r| 1.0 / r as f64))
                .sum::<f64>()
                / n as f64,
        }
    }
}

/// One bin of a reliability table: cases whose top cause's probability fell in `[lo, hi)` (the
/// last bin includes 1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Bin {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Cases in the bin.
    pub cases: usize,
    /// Their mean top probability (0 when empty).
    pub confidence: f64,
    /// Share of them whose top cause was right (0 when empty).
    pub accuracy: f64,
}

/// Reliability table (DeGroot & Fienberg, "The Comparison and Evaluation of Forecasters",
/// 1983; Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): `points` are
/// (top cause's probability, whether it was right), cut into `bins` equal-width bins. A
/// calibrated ranker's accuracy in each bin is close to its mean confidence.
pub fn reliability(points: &[(f64, bool)], bins: usize) -> Vec<Bin> {
    (0..bins)
        .map(|b| {
            let (lo, hi) = (b as f64 / bins as f64, (b + 1) as f64 / bins as f64);
            let inside: Vec<&(f64, bool)> = points
                .iter()
                .filter(|(p, _)| *p >= lo && (*p < hi || (b + 1 == bins && *p <= hi)))
                .collect();
            let n = inside.len().max(1) as f64;
            Bin {
                lo,
                hi,
                cases: inside.len(),
                // fold from +0: an empty bin's sum would be -0 and print as "-0.000".
                confidence: inside.iter().fold(0.0, |sum, (p, _)| sum + p) / n,
                accuracy: inside.iter().filter(|(_, ok)| *ok).count() as f64 / n,
            }
        })
        .collect()
}

/// A reliability table for people.
pub fn render_reliability(bins: &[Bin]) -> String {
    let mut out = format!(
        "{:<12} {:>5} {:>8} {:>6}\n",
        "probability", "cases", "mean p", "AC@1"
    );
    for b in bins {
        out.push_str(&format!(
            "{:.1}-{:.1}      {:>5} {:>8.3} {:>6.3}\n",
            b.lo, b.hi, b.cases, b.confidence, b.accuracy
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_follows_the_definitions() {
        let ranks = [Some(1), Some(2), Some(4), None];
        let a = Accuracy::of(&ranks);
        assert_eq!(a.cases, 4);
        assert_eq!(a.ac_at_1, 0.25);
        assert_eq!(a.ac_at_3, 0.5);
        assert_eq!(a.mrr, (1.0 + 0.5 + 0.25) / 4.0);
        assert_eq!(a.ac_at_5, 0.75);
        // AC@1..AC@5 = 0.25, 0.5, 0.5, 0.75, 0.75.
        assert!((a.avg_at_5 - 0.55).abs() < 1e-12);
    }

    #[test]
    fn reliability_bins_by_confidence() {
        let points = [
            (0.1, false),
            (0.15, true),
            (0.9, true),
            (1.0, true),
            (0.95, false),
        ];
        let bins = reliability(&points, 5);
        assert_eq!(
            bins.iter().map(|b| b.cases).collect::<Vec<_>>(),
            [2, 0, 0, 0, 3]
        );
        assert_eq!(bins[0].accuracy, 0.5);
        assert!((bins[4].confidence - 0.95).abs() < 1e-12);
        assert!((bins[4].accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!(bins[1].confidence == 0.0 && bins[1].confidence.is_sign_positive());
    }

    #[test]
    fn a_label_names_its_cause_by_kind() {
        let e = |kind, name: &str| EntityRef {
            kind,
            name: name.to_owned(),
        };
        let edge = ["checkout".to_owned(), "cart".to_owned()];
        // One line per case: entity, label, labelled path, whether it matches.
        let cases = [
            (e(CauseKind::Service, "cart"), "cart", None, true),
            (e(CauseKind::Service, "carts"), "cart", None, false),
            (
                e(CauseKind::Database, "postgresql/orders"),
                "orders",
                None,
                true,
            ),
            (
                e(CauseKind::Database, "postgresql/orders"),
                "postgresql/orders",
                None,
                true,
            ),
            (
                e(CauseKind::Database, "postgresql/orders"),
                "postgresql",
                None,
                false,
            ),
            (e(CauseKind::Node, "worker-1"), "worker-1", None, true),
            (
                e(CauseKind::Edge, "checkout->cart"),
                "checkout",
                Some(&edge),
                true,
            ),
            (
                e(CauseKind::Edge, "cart->checkout"),
                "checkout",
                Some(&edge),
                false,
            ),
            (
                e(CauseKind::Edge, "checkout->cart"),
                "checkout",
                None,
                false,
            ),
            (
                e(CauseKind::Change, "cart:deployment@2026-11-21T14:02:00Z"),
                "cart",
                None,
                true,
            ),
            (
                e(CauseKind::Change, "cart:deployment@2026-11-21T14:02:00Z"),
                "checkout",
                None,
                false,
            ),
        ];
        for (entity, truth, edge, expected) in cases {
            assert_eq!(
                names_root_cause(&entity, truth, edge),
                expected,
                "{entity:?} for {truth}"
            );
        }
        let cause = |rank, entity| Cause {
            rank,
            entity,
            score: 1.0,
            probability: 0.0,
            hypotheses: Vec::new(),
            counter_evidence: Vec::new(),
            onset: None,
            inputs: [0.0; crate::ranker::N_INPUTS],
            evidence: Vec::new(),
            change: None,
            rolled_back_by: None,
            remediation: Vec::new(),
        };
        let causes = [
            cause(1, e(CauseKind::Service, "frontend")),
            cause(2, e(CauseKind::Edge, "checkout->cart")),
        ];
        assert_eq!(rank_of_cause(&causes, "checkout", Some(&edge)), Some(2));
        assert_eq!(rank_of_cause(&causes, "cart", None), None);
    }
}
