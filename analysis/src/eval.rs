//! Accuracy of a ranking against a labelled root cause, as the RCA literature reports it.
//!
//! AC@k: share of cases whose true cause is among the top k. Avg@k: the mean of AC@1..AC@k
//! (Yu et al., "MicroRank", WWW 2021, §5.1; used by Nezha, FSE 2023, Table 3).

use crate::rank::{Cause, EntityRef, EDGE_ARROW};

/// The 1-based rank of `truth` in `ranking`, if present.
pub fn rank_of(ranking: &[String], truth: &str) -> Option<usize> {
    ranking.iter().position(|r| r == truth).map(|i| i + 1)
}

/// Whether `entity` is the labelled root cause: a service or node of that name; a database whose
/// name (`<db.system.name>/<db.namespace>`) ends in `/<truth>`, or is `truth`; a network path
/// (`caller->callee`) whose ends are the labelled `edge` (a label names a partition's caller as
/// its service, so the caller service matches too).
pub fn names_root_cause(entity: &EntityRef, truth: &str, edge: Option<&[String; 2]>) -> bool {
    match entity.kind {
        "database" => {
            entity.name == truth
                || entity
                    .name
                    .rsplit_once('/')
                    .is_some_and(|(_, namespace)| namespace == truth)
        }
        "edge" => edge.is_some_and(|[a, b]| {
            entity.name.split_once(EDGE_ARROW) == Some((a.as_str(), b.as_str()))
        }),
        _ => entity.name == truth,
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
        let ranking: Vec<String> = ["a", "b"].map(String::from).to_vec();
        assert_eq!(rank_of(&ranking, "b"), Some(2));
        assert_eq!(rank_of(&ranking, "c"), None);
    }
}
