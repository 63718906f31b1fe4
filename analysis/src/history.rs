//! The longer past of an analysis ([`History`]): periods before the baseline believed normal,
//! read for usual rates (medians over periods) and pooled for thin series; and [`pick`], which
//! takes the pooled past where the baseline has too few samples.

use std::collections::HashMap;

use loupe_graph::{DurationSketch, WindowStats};

use crate::stats::median;
use crate::window::requests;

/// The longer past of an analysis: periods before the baseline believed normal (earlier
/// windows of the same length, say, or a known fault-free period), each kept apart so that
/// usual rates can be taken as medians over them, robust to a minority of periods a fault
/// touched, and pooled for series too thin to compare period by period.
#[derive(Debug, Clone, Default)]
pub struct History {
    periods: Vec<WindowStats>,
    /// Requests entering each service, per period (computed once).
    requests: Vec<HashMap<String, u64>>,
    pooled: WindowStats,
}

impl History {
    /// History from its periods, in any order.
    pub fn new(periods: Vec<WindowStats>) -> Self {
        let mut pooled = WindowStats::default();
        periods.iter().for_each(|p| pooled.merge_from(p));
        let requests = periods
            .iter()
            .map(|p| {
                requests(p)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            })
            .collect();
        Self {
            periods,
            requests,
            pooled,
        }
    }

    /// The periods pooled into one window: the stand-in for a baseline with too few samples.
    pub(crate) fn pooled(&self) -> &WindowStats {
        &self.pooled
    }

    /// Whether there is no period.
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

    /// The median over the periods of `rate(period, requests into it)` where it gives one, and
    /// how many periods gave one; `None` below [`MIN_HISTORY_PERIODS`].
    fn usual(
        &self,
        rate: impl Fn(&WindowStats, &HashMap<String, u64>) -> Option<f64>,
    ) -> Option<(f64, usize)> {
        let mut rates: Vec<f64> = self
            .periods
            .iter()
            .zip(&self.requests)
            .filter_map(|(p, r)| rate(p, r))
            .collect();
        (rates.len() >= MIN_HISTORY_PERIODS).then(|| (median(&mut rates), rates.len()))
    }

    /// The usual log records per call of `service`'s operation `operation`, error records left
    /// out, over the periods with at least `min_calls` calls of it, and the dispersion of the
    /// periods' record counts about it ([`dispersion`]).
    pub(crate) fn usual_operation_log_rate(
        &self,
        service: &str,
        operation: &str,
        min_calls: u64,
    ) -> Option<(f64, usize, f64)> {
        // Each period's (records, calls), read once: the rate is their median ratio.
        let counts: Vec<(f64, f64)> = self
            .periods
            .iter()
            .filter_map(|p| {
                let o = p.operation(service, operation)?;
                (o.red.calls >= min_calls).then(|| (o.logs.routine() as f64, o.red.calls as f64))
            })
            .collect();
        if counts.len() < MIN_HISTORY_PERIODS {
            return None;
        }
        let rate = median(&mut counts.iter().map(|(r, c)| r / c).collect::<Vec<_>>());
        Some((rate, counts.len(), dispersion(&counts, rate)))
    }

    /// `service`'s usual error log records per request, over the periods with at least
    /// `min_requests` requests entering it.
    pub(crate) fn usual_error_log_rate(
        &self,
        service: &str,
        min_requests: u64,
    ) -> Option<(f64, usize)> {
        self.usual(|p, requests| {
            let reqs = requests.get(service).copied().unwrap_or(0);
            (reqs >= min_requests).then(|| {
                let errors = p.service(service).map_or(0, |s| s.logs.own_error_records());
                errors as f64 / reqs as f64
            })
        })
    }
}

/// Robust quasi-Poisson dispersion of counts `(records, calls)` about `rate` records per call:
/// the median squared Pearson residual `(records − rate·calls)² / (rate·calls)` over the
/// periods, divided by 0.455 (the median of χ² with one degree of freedom), at least 1. Log
/// records come in bundles (a call writes several, or a loop writes many), so their counts
/// vary more than Poisson counts would; a deficit is measured in units of this spread
/// (McCullagh & Nelder, "Generalized Linear Models", 2nd ed., §4.5, the quasi-likelihood
/// dispersion; the median for robustness to a period a fault touched). 1 when no period has an
/// expected count. With few periods the median is biased low (the period nearest the median
/// rate has a residual near 0), so the estimate errs towards Poisson, the stricter score.
fn dispersion(counts: &[(f64, f64)], rate: f64) -> f64 {
    let mut residuals: Vec<f64> = counts
        .iter()
        .filter(|(_, calls)| rate * calls > 0.0)
        .map(|(records, calls)| (records - rate * calls).powi(2) / (rate * calls))
        .collect();
    if residuals.is_empty() {
        return 1.0;
    }
    (median(&mut residuals) / 0.455).max(1.0)
}

/// Fewest history periods for a usual rate: the median of three withstands one period a fault
/// touched; of one or two, it does not.
const MIN_HISTORY_PERIODS: usize = 3;

/// The baseline figures for one series: the baseline's when it has enough samples, else the
/// reference's.
pub(crate) fn pick<'a>(
    base: Option<&'a DurationSketch>,
    reference: Option<&'a DurationSketch>,
    min: u64,
) -> Option<&'a DurationSketch> {
    match (base, reference) {
        (Some(b), Some(r)) if b.count() < min && r.count() > b.count() => Some(r),
        (Some(b), _) => Some(b),
        (None, r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per case: the periods' (records, calls), the usual rate, the dispersion.
    #[test]
    fn dispersion_measures_bundled_records_robustly() {
        type Counts<'a> = &'a [(f64, f64)];
        let cases: [(Counts, f64, f64); 5] = [
            (&[(140.0, 10.0), (141.0, 10.0), (139.0, 10.0)], 14.0, 1.0), // Poisson or less: 1
            (
                &[
                    (140.0, 10.0),
                    (100.0, 10.0),
                    (180.0, 10.0),
                    (120.0, 10.0),
                    (160.0, 10.0),
                ],
                14.0,
                400.0 / 140.0 / 0.455,
            ), // bundles of records: the median squared residual
            (
                &[
                    (140.0, 10.0),
                    (142.0, 10.0),
                    (138.0, 10.0),
                    (140.0, 10.0),
                    (0.0, 10.0),
                ],
                14.0,
                1.0,
            ), // one period a fault touched: outvoted
            (&[], 14.0, 1.0),                                            // no period
            (&[(5.0, 10.0)], 0.0, 1.0),                                  // no usual rate
        ];
        for (counts, rate, expected) in cases {
            let d = dispersion(counts, rate);
            assert!((d - expected).abs() < 1e-9, "{counts:?} at {rate}: {d}");
        }
    }
}
