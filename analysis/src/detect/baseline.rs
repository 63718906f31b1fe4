//! Baseline detection: the RED figures of user-facing entities (services and the operations
//! that receive root spans) against their own robust, seasonally adjusted baselines, so that a
//! latency regression or a fall in traffic opens an incident without anyone writing an
//! objective for it. Error ratios are the objectives' job ([`super::slo`]).
//!
//! At each evaluation, for each entity, the current window (5 min) is read against the
//! `recent_windows` windows of the same length before it (12: the hour before):
//!
//! - **Level and spread.** The recent windows' median and 1.4826 × their median absolute
//!   deviation (a robust standard deviation, Hampel's), with a floor: Poisson (√level) for
//!   request counts, 10% of the level for the 90th-percentile duration.
//! - **Seasonality, where the data allows.** The graph keeps 30 days of 10-minute figures. When
//!   it holds the same hour one week earlier (else one day earlier), the level and spread are
//!   scaled by how the figure moved then: the 20 minutes around that time against the hour
//!   before them, bounded to ×¼–×4. A morning ramp that happened yesterday at this time is
//!   expected today; the same ramp missing today is a fall. This is the ratio form of a
//!   seasonal naive forecast (Hyndman and Athanasopoulos, "Forecasting: Principles and
//!   Practice", 3rd ed., §5.2), anchored on the recent level so that growth since last week is
//!   not an anomaly.
//! - **History needed.** A latency baseline needs `min_windows` (6) recent windows with
//!   `min_requests` requests; a traffic baseline a median of `min_requests`, so at least half
//!   the recent windows with that many. A service younger than half an hour raises nothing.
//! - **Alerts.** `latency`: the window's 90th-percentile duration is more than `z` robust
//!   standard deviations above the expected level and at least `latency_ratio` times it, over at
//!   least `min_requests` requests. `traffic`: the window's requests are more than `z` robust
//!   standard deviations below the expected level and at most `1 − traffic_drop` of it, the
//!   expected level being at least `min_requests`. A figure must clear both the statistical and
//!   the practical bar: a tight baseline makes small moves significant, and people are paged
//!   for moves that matter.

use std::borrow::Cow;

use loupe_graph::{KnowledgeGraph, RedStats};

use super::{BaselineConfig, DetectConfig, Detector, Deviation, Symptom};
use crate::stats::median;

const MINUTE: u64 = 60 * 1_000_000_000;

/// Which figure.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Statistic {
    LatencyP90,
    Requests,
}

impl Statistic {
    fn name(self) -> &'static str {
        match self {
            Self::LatencyP90 => "duration_p90_seconds",
            Self::Requests => "requests",
        }
    }

    fn objective(self) -> &'static str {
        match self {
            Self::LatencyP90 => "latency",
            Self::Requests => "traffic",
        }
    }

    /// The figure of `red` per `nanos` of window (requests are scaled to the window length so
    /// windows of different lengths compare); `None` below `min_requests` for latency.
    fn value(self, red: &RedStats, min_requests: u64, per: f64) -> Option<f64> {
        match self {
            Self::LatencyP90 => (red.calls >= min_requests.max(1))
                .then(|| red.duration.quantile_seconds(0.9))
                .flatten(),
            Self::Requests => Some(red.calls as f64 * per),
        }
    }
}

/// The alerts firing at `now` on the graph's user-facing services and root operations against
/// their baselines (see the module), one per entity and objective.
pub fn detect(graph: &KnowledgeGraph, now: u64, config: &DetectConfig) -> Vec<Symptom> {
    let b = &config.baseline;
    if !b.enabled || b.window_nanos == 0 || b.recent_windows == 0 {
        return Vec::new();
    }
    let hour = now.saturating_sub(60 * MINUTE);
    let mut out = Vec::new();
    for service in graph.entry_services(hour, now) {
        let red = |a: u64, z: u64| graph.service_red(&service, a, z);
        for (statistic, deviation) in deviations(&red, now, b, config.min_requests) {
            out.push(symptom(&service, None, statistic, deviation, now, b));
        }
    }
    for (service, operation) in graph.entry_operations(hour, now, b.max_operations) {
        let red = |a: u64, z: u64| graph.operation_red(&service, &operation, a, z);
        for (statistic, deviation) in deviations(&red, now, b, config.min_requests) {
            out.push(symptom(
                &service,
                Some(&operation),
                statistic,
                deviation,
                now,
                b,
            ));
        }
    }
    out
}

fn symptom(
    service: &str,
    operation: Option<&str>,
    statistic: Statistic,
    deviation: Deviation,
    now: u64,
    b: &BaselineConfig,
) -> Symptom {
    Symptom {
        service: service.to_owned(),
        operation: operation.map(str::to_owned),
        objective: Cow::Borrowed(statistic.objective()),
        detector: Detector::Baseline,
        bad_ratio: None,
        long_burn_rate: None,
        short_burn_rate: None,
        threshold: None,
        windows: [b.window_nanos * b.recent_windows as u64, b.window_nanos],
        at_unix_nano: now,
        deviation: Some(deviation),
    }
}

/// The figures of one entity (`red(start, end)`) that deviate from their baselines at `now`.
fn deviations(
    red: &dyn Fn(u64, u64) -> Option<RedStats>,
    now: u64,
    b: &BaselineConfig,
    min_requests: u64,
) -> Vec<(Statistic, Deviation)> {
    let w = b.window_nanos;
    let Some(current) = red(now.saturating_sub(w), now) else {
        return Vec::new();
    };
    let recent: Vec<RedStats> = (1..=b.recent_windows as u64)
        .filter_map(|k| {
            let end = now.checked_sub(k * w)?;
            red(end.checked_sub(w)?, end)
        })
        .collect();
    let mut out = Vec::new();
    for statistic in [Statistic::LatencyP90, Statistic::Requests] {
        let Some(expected) = expected(red, &recent, now, statistic, b, min_requests) else {
            continue;
        };
        let Some(value) = statistic.value(&current, min_requests, 1.0) else {
            continue;
        };
        let z = (value - expected.level) / expected.spread;
        let firing = match statistic {
            Statistic::LatencyP90 => {
                z > b.z && value >= b.latency_ratio * expected.level && expected.level > 0.0
            }
            Statistic::Requests => {
                expected.level >= min_requests as f64
                    && z < -b.z
                    && value <= (1.0 - b.traffic_drop) * expected.level
            }
        };
        if firing {
            out.push((
                statistic,
                Deviation {
                    statistic: Cow::Borrowed(statistic.name()),
                    current: value,
                    expected: expected.level,
                    spread: expected.spread,
                    z,
                    seasonal_lag_nanos: expected.lag,
                    seasonal_factor: expected.factor,
                },
            ));
        }
    }
    out
}

struct Expected {
    level: f64,
    spread: f64,
    lag: Option<u64>,
    factor: f64,
}

/// The expected level of `statistic` in the current window and its robust spread (see the
/// module); `None` with fewer than `min_windows` recent windows that have the figure.
fn expected(
    red: &dyn Fn(u64, u64) -> Option<RedStats>,
    recent: &[RedStats],
    now: u64,
    statistic: Statistic,
    b: &BaselineConfig,
    min_requests: u64,
) -> Option<Expected> {
    let mut values: Vec<f64> = recent
        .iter()
        .filter_map(|r| statistic.value(r, min_requests, 1.0))
        .collect();
    if values.len() < b.min_windows.max(1) {
        return None;
    }
    let center = median(&mut values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    let mad = 1.4826 * median(&mut deviations);
    let (lag, factor) = seasonal_factor(red, now, statistic, b, min_requests)
        .map_or((None, 1.0), |(lag, f)| (Some(lag), f));
    let level = center * factor;
    let floor = match statistic {
        Statistic::LatencyP90 => 0.1 * level,
        Statistic::Requests => level.max(1.0).sqrt(),
    };
    Some(Expected {
        level,
        spread: (mad * factor).max(floor).max(f64::MIN_POSITIVE),
        lag,
        factor,
    })
}

/// How `statistic` moved at the same time one seasonal lag ago: its figure over the 20 minutes
/// around `now − lag` (aligned to the graph's 10-minute buckets) against the hour before them,
/// bounded to [¼, 4]; the first lag of `b.seasonal_lags_nanos` with `min_requests` requests in
/// both, with the lag.
fn seasonal_factor(
    red: &dyn Fn(u64, u64) -> Option<RedStats>,
    now: u64,
    statistic: Statistic,
    b: &BaselineConfig,
    min_requests: u64,
) -> Option<(u64, f64)> {
    const TEN_MINUTES: u64 = 10 * MINUTE;
    let span = b.window_nanos * b.recent_windows as u64;
    b.seasonal_lags_nanos.iter().find_map(|&lag| {
        let then = now.checked_sub(lag)? / TEN_MINUTES * TEN_MINUTES;
        let (at_start, at_end) = (then.checked_sub(TEN_MINUTES)?, then + TEN_MINUTES);
        let before_start = at_start.checked_sub(span)?;
        let at = red(at_start, at_end)?;
        let before = red(before_start, at_start)?;
        if at.calls < min_requests.max(1) || before.calls < min_requests.max(1) {
            return None;
        }
        // Requests per window length, so that 20 minutes and an hour compare.
        let per = |nanos: u64| b.window_nanos as f64 / nanos as f64;
        let now_then = statistic.value(&at, min_requests, per(at_end - at_start))?;
        let before_then = statistic.value(&before, min_requests, per(span))?;
        (before_then > 0.0).then(|| (lag, (now_then / before_then).clamp(0.25, 4.0)))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loupe_graph::GraphConfig;
    use loupe_model::{
        AttributeValue, Attributes, Resource, ResourceSpans, Span, SpanId, SpanKind, StatusCode,
        TraceId,
    };

    use super::*;
    use crate::{AnalysisConfig, Incidents};

    const SECOND: u64 = 1_000_000_000;
    const DAY: u64 = 24 * 60 * MINUTE;
    /// "Now" in the tests: two days and two hours into the epoch, so one day back is there.
    const NOW: u64 = 2 * DAY + 120 * MINUTE;

    /// Traffic into `shop`: per 10 s, `browse` requests to `GET /` and `cart` to `POST /cart`,
    /// taking `browse_ms` and `cart_ms` (each request a little slower than the one before, so
    /// the quantiles are not one value).
    #[derive(Clone, Copy)]
    struct Load {
        browse: u64,
        cart: u64,
        browse_ms: u64,
        cart_ms: u64,
    }

    const STEADY: Load = Load {
        browse: 4,
        cart: 1,
        browse_ms: 40,
        cart_ms: 80,
    };

    /// Applies `load(t)` to `graph` for every 10-s step in `[from, to)`.
    fn run(graph: &mut KnowledgeGraph, from: u64, to: u64, load: impl Fn(u64) -> Load) {
        let mut id = u64::from(graph.entity_count() as u32) << 32;
        for step in (from / (10 * SECOND))..(to / (10 * SECOND)) {
            let t = step * 10 * SECOND;
            let l = load(t);
            let mut spans = Vec::new();
            for (name, n, ms) in [
                ("GET /", l.browse, l.browse_ms),
                ("POST /cart", l.cart, l.cart_ms),
            ] {
                for i in 0..n {
                    id += 1;
                    let start = t + i * 10 * SECOND / n.max(1);
                    let nanos = (ms + i) * 1_000_000;
                    spans.push(Span {
                        trace_id: TraceId(u128::from(id).to_be_bytes()),
                        span_id: SpanId(id.to_be_bytes()),
                        parent_span_id: None,
                        name: name.into(),
                        kind: SpanKind::Server,
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + nanos,
                        status: StatusCode::Unset,
                        attributes: Attributes::default(),
                    });
                }
            }
            graph.apply_spans(&[ResourceSpans {
                resource: Arc::new(Resource {
                    attributes: Attributes(vec![(
                        "service.name".into(),
                        AttributeValue::String("shop".into()),
                    )]),
                }),
                spans,
            }]);
        }
    }

    /// What fires at `NOW` after an hour and a quarter of steady traffic whose last five
    /// minutes are `last`, optionally after the same span of yesterday's traffic `yesterday`.
    fn fired(last: Load, yesterday: Option<(Load, Load)>) -> Vec<String> {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        if let Some((before, at)) = yesterday {
            let then = NOW - DAY;
            run(&mut graph, then - 80 * MINUTE, then + 10 * MINUTE, |t| {
                if t >= then - 10 * MINUTE {
                    at
                } else {
                    before
                }
            });
        }
        run(&mut graph, NOW - 75 * MINUTE, NOW, |t| {
            if t >= NOW - 5 * MINUTE {
                last
            } else {
                STEADY
            }
        });
        assert_eq!(graph.watermark(), NOW);
        let mut out: Vec<String> = detect(&graph, NOW, &DetectConfig::default())
            .iter()
            .map(|s| {
                let d = s.deviation.as_ref().expect("a deviation");
                assert_eq!(s.detector, Detector::Baseline);
                format!(
                    "{}{} {}{}",
                    s.service,
                    s.operation
                        .as_ref()
                        .map(|o| format!(" {o}"))
                        .unwrap_or_default(),
                    s.objective,
                    if d.seasonal_lag_nanos.is_some() {
                        " (seasonal)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn latency_and_traffic_leave_their_baselines() {
        let slow = |browse_ms, cart_ms| Load {
            browse_ms,
            cart_ms,
            ..STEADY
        };
        let traffic = |browse, cart| Load {
            browse,
            cart,
            ..STEADY
        };
        // (what the last five minutes were, what fires)
        let cases: [(&str, Load, &[&str]); 7] = [
            ("steady", STEADY, &[]),
            ("a little slower (×1.2)", slow(48, 96), &[]),
            (
                "everything three times slower",
                slow(120, 240),
                &[
                    "shop GET / latency",
                    "shop POST /cart latency",
                    "shop latency",
                ],
            ),
            // The cart is a fifth of the requests: the service's p90 is the cart's time, so
            // it moves too, but the browse endpoint does not.
            (
                "the cart endpoint four times slower",
                slow(40, 320),
                &["shop POST /cart latency", "shop latency"],
            ),
            (
                "traffic down to a quarter",
                traffic(1, 0),
                &[
                    "shop GET / traffic",
                    "shop POST /cart traffic",
                    "shop traffic",
                ],
            ),
            ("traffic down to three quarters", traffic(3, 1), &[]),
            ("more traffic", traffic(8, 2), &[]),
        ];
        for (what, last, expected) in cases {
            assert_eq!(fired(last, None), expected, "{what}");
        }
    }

    #[test]
    fn a_seasonal_lag_scales_the_baseline() {
        let peak = Load {
            browse: 12,
            cart: 3,
            browse_ms: 100,
            cart_ms: 200,
        };
        // Today's peak without yesterday's: slower than the hour before.
        assert_eq!(
            fired(peak, None),
            [
                "shop GET / latency",
                "shop POST /cart latency",
                "shop latency"
            ]
        );
        // Yesterday had the same peak at this time: expected.
        assert_eq!(fired(peak, Some((STEADY, peak))), Vec::<String>::new());
        // Yesterday peaked and today did not: the requests that did not come are a fall.
        assert_eq!(
            fired(STEADY, Some((STEADY, peak))),
            [
                "shop GET / traffic (seasonal)",
                "shop POST /cart traffic (seasonal)",
                "shop traffic (seasonal)"
            ]
        );
    }

    #[test]
    fn nothing_fires_without_half_an_hour_of_history_or_when_disabled() {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        let slow = Load {
            browse_ms: 400,
            ..STEADY
        };
        run(&mut graph, NOW - 30 * MINUTE, NOW, |t| {
            if t >= NOW - 5 * MINUTE {
                slow
            } else {
                STEADY
            }
        });
        assert!(detect(&graph, NOW, &DetectConfig::default()).is_empty());
        run(&mut graph, NOW, NOW + 60 * MINUTE, |_| STEADY);
        run(&mut graph, NOW + 60 * MINUTE, NOW + 65 * MINUTE, |_| slow);
        let later = NOW + 65 * MINUTE;
        assert!(!detect(&graph, later, &DetectConfig::default()).is_empty());
        let off = DetectConfig {
            baseline: BaselineConfig {
                enabled: false,
                ..BaselineConfig::default()
            },
            ..DetectConfig::default()
        };
        assert!(detect(&graph, later, &off).is_empty());
    }

    /// Without any objective on latency, a regression opens an incident that says what moved.
    #[test]
    fn a_latency_regression_opens_an_incident() {
        let mut graph = KnowledgeGraph::new(GraphConfig::default());
        let mut incidents = Incidents::default();
        let (detect_config, analysis) = (DetectConfig::default(), AnalysisConfig::default());
        let slow = Load {
            browse_ms: 200,
            cart_ms: 400,
            ..STEADY
        };
        for minute in 0..80 {
            let (from, to) = (minute * MINUTE, (minute + 1) * MINUTE);
            run(&mut graph, from, to, |t| {
                if t >= 70 * MINUTE {
                    slow
                } else {
                    STEADY
                }
            });
            incidents.tick(&graph, &detect_config, &analysis);
        }
        let list = incidents.list();
        assert_eq!(list.len(), 1, "{list:#?}");
        let incident = list[0];
        assert!(
            (70 * MINUTE..74 * MINUTE).contains(&incident.opened_unix_nano),
            "opened at minute {}",
            incident.opened_unix_nano / MINUTE
        );
        assert_eq!(incident.title, "shop degraded");
        let s = incident
            .symptoms
            .iter()
            .find(|s| s.operation.is_none() && s.objective == "latency")
            .expect("the service's latency");
        assert_eq!(s.detector, Detector::Baseline);
        assert!(s.long_burn_rate.is_none());
        assert!(
            incident.timeline[0].event.starts_with("shop")
                && incident
                    .timeline
                    .iter()
                    .any(|e| e.event.contains("latency off its baseline: p90 duration")),
            "{:#?}",
            incident.timeline
        );
        // The symptom's own onset: the first slow step.
        assert_eq!(incident.symptom_onset_unix_nano, Some(70 * MINUTE));
    }
}
