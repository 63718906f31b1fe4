//! Accuracy of a ranking against a labelled root cause, as the RCA literature reports it.
//!
//! AC@k: share of cases whose true cause is among the top k. Avg@k: the mean of AC@1..AC@k
//! (Yu et al., "MicroRank", WWW 2021, §5.1; used by Nezha, FSE 2023, Table 3).

use crate::rank::{path_ends, Cause, CauseKind, EntityRef};

/// Whether `entity` is the labelled root cause: a service or node of that name; a database whose
/// name (`<db.system.name>/<db.namespace>`) ends in `/<truth>`, or is `truth`; a network path
/// (`caller->callee`) whose ends are the labelled `edge` (a label names a partition's caller as
/// its service, so the caller service matches too).
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
        }
    }
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
        assert_eq!(a.ac_at_5, 0.75);
        // AC@1..AC@5 = 0.25, 0.5, 0.5, 0.75, 0.75.
        assert!((a.avg_at_5 - 0.55).abs() < 1e-12);
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
            inputs: [0.0; crate::ranker::N_INPUTS],
            evidence: Vec::new(),
            change: None,
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
