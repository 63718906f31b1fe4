//! Robust statistics the stages share: the median and the median absolute deviation, and the
//! band, in robust standard deviations, beyond which a departure counts.

/// Robust standard deviations from the baseline median at which a step is out of band, and
/// the standard errors at which a duration shift counts ([`crate::evidence`]).
pub const BAND: f64 = 3.0;

/// Median of `v` (reordered); 0 when empty.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median absolute deviation about the median of `values`; `None` when there are none.
pub(crate) fn median_abs_deviation(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let m = median(&mut values);
    Some(median(
        &mut values.iter().map(|x| (x - m).abs()).collect::<Vec<_>>(),
    ))
}
