//! Normalization: each feature's raw values turned into robust z-scores across the candidates
//! of the analysis, the spread taken over the services.

use crate::candidate::{Candidate, Feature, FEATURES};
use crate::cause::CauseKind;
use crate::stats::median_abs_deviation;

/// Every candidate's feature scores, `[candidate][feature]`: each feature's raw values
/// ([`Candidate::raw`]) as robust z-scores ([`robust_z`]) with the feature's floor
/// ([`Feature::floor`]), the spread taken over the candidates of kind service. `keys` names the
/// candidates of `gathered`, in the same order.
pub(crate) fn scores(gathered: &[Candidate], keys: &[(CauseKind, String)]) -> Vec<[f64; FEATURES]> {
    let mut z: Vec<[f64; FEATURES]> = vec![[0.0; FEATURES]; keys.len()];
    let scale_from: Vec<bool> = keys
        .iter()
        .map(|(kind, _)| *kind == CauseKind::Service)
        .collect();
    for feature in Feature::ALL {
        let values: Vec<Option<f64>> = gathered
            .iter()
            .map(|c| c.raw.get(&feature).copied())
            .collect();
        for (i, score) in robust_z(&values, &scale_from, feature.floor())
            .into_iter()
            .enumerate()
        {
            z[i][feature as usize] = score;
        }
    }
    z
}

/// Scores of `values` in units of their robust spread across services: each value (a change,
/// whose "no change" is 0) divided by the MAD about the median, scaled by 1.4826 to estimate σ
/// under normality (Rousseeuw & Croux, "Alternatives to the Median Absolute Deviation", JASA
/// 1993), the spread floored; over the values present, negatives clipped to 0, a missing value
/// scoring 0. Changes are not centred on the median: when most services of a small system
/// change together (a failure that propagates everywhere), the change still counts, and
/// propagation is left to the explained-away rule.
///
/// The spread is taken over the values where `scale_from` is true (the services), else, when no
/// service has the feature or the services' MAD is 0 (two services with the same count), over
/// every value present. Nodes, databases and network paths are read from the services' own
/// telemetry (a path's failed calls are its callee's failed calls, a node's CPU its pods'), so
/// counting them in the spread would count one failure twice, and where few candidates show a
/// feature one such copy can move the spread tenfold. A MAD of 0 would leave only the floor,
/// turning raw counts (thousands of failed spans) into scores.
fn robust_z(values: &[Option<f64>], scale_from: &[bool], floor: f64) -> Vec<f64> {
    let from_services: Vec<f64> = values
        .iter()
        .zip(scale_from)
        .filter_map(|(v, s)| v.filter(|_| *s))
        .collect();
    let mad = match median_abs_deviation(from_services) {
        Some(mad) if mad > 0.0 => mad,
        _ => median_abs_deviation(values.iter().flatten().copied().collect()).unwrap_or(0.0),
    };
    let spread = (1.4826 * mad).max(floor);
    values
        .iter()
        .map(|x| x.map_or(0.0, |x| (x / spread).max(0.0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_z_floors_the_spread_and_clips() {
        let z = robust_z(
            &[Some(0.0), Some(0.0), Some(0.0), Some(1.0), Some(-1.0)],
            &[true; 5],
            0.1,
        );
        assert_eq!(z, vec![0.0, 0.0, 0.0, 10.0, 0.0]);
        let values = [
            Some(1.0),
            Some(2.0),
            None,
            Some(3.0),
            Some(4.0),
            Some(100.0),
        ];
        let z = robust_z(&values, &[true; 6], 0.1);
        // Over the five present values: median 3, MAD 1 → spread 1.4826; the missing one is 0.
        assert!((z[5] - 100.0 / 1.4826).abs() < 1e-9);
        assert_eq!(z[2], 0.0);
    }

    /// The spread is the services' (`true`); the other candidates are scored on it, unless no
    /// service has the feature or the services' spread is 0. (values, from services, the last value's score.)
    #[test]
    fn robust_z_takes_the_spread_over_services() {
        type Case = (&'static [Option<f64>], &'static [bool], f64);
        let cases: [Case; 6] = [
            // Three services 1, 2, 3 (spread 1.4826); a path copying the 100: 100 / 1.4826.
            (
                &[Some(1.0), Some(2.0), Some(3.0), Some(100.0)],
                &[true, true, true, false],
                100.0 / 1.4826,
            ),
            // A path's 100 and a node's 90 beside two services: the services' MAD 1.
            (
                &[Some(1.0), Some(3.0), Some(90.0), Some(100.0)],
                &[true, true, false, false],
                100.0 / 1.4826,
            ),
            // The same values all counted in the spread: median 46.5, MAD 44.5.
            (
                &[Some(1.0), Some(3.0), Some(90.0), Some(100.0)],
                &[true; 4],
                100.0 / (1.4826 * 44.5),
            ),
            // No service has the feature: the spread of every value present.
            (
                &[None, None, Some(2.0), Some(4.0)],
                &[true, true, false, false],
                4.0 / 1.4826,
            ),
            // Two services with the same count (MAD 0): every value's, median 5, MAD 2.
            (
                &[Some(5.0), Some(5.0), Some(1.0), Some(100.0)],
                &[true, true, false, false],
                100.0 / (1.4826 * 2.0),
            ),
            // Every value the same: the floor.
            (
                &[Some(5.0), Some(5.0), Some(5.0)],
                &[true, true, false],
                5.0 / 0.1,
            ),
        ];
        for (values, services, want) in cases {
            let z = robust_z(values, services, 0.1);
            let got = *z.last().unwrap();
            assert!(
                (got - want).abs() < 1e-9,
                "{values:?} {services:?}: {got} ≠ {want}"
            );
        }
    }
}
