//! RED figures from request-duration metrics, for services and `calls` relations that send
//! metrics and no spans: a metrics-only deployment still has calls, errors and latency.
//!
//! The metrics are those of the OpenTelemetry semantic conventions, as histograms,
//! exponential histograms or summaries:
//! - server side: `http.server.request.duration` (seconds), the older `http.server.duration`
//!   (milliseconds), `rpc.server.duration` (milliseconds) and `rpc.server.call.duration`
//!   (seconds);
//! - client side, with `server.address` naming the callee: `http.client.request.duration`,
//!   `http.client.duration`, `rpc.client.duration`, `rpc.client.call.duration`.
//!
//! A point's count is calls; the calls it marks failed (`error.type`, an HTTP status of 500
//! or more on the server and 400 or more on the client, a non-OK `rpc.grpc.status_code`) are
//! errors; its mean (sum / count) is recorded `count` times as the duration, and the point is
//! counted (`RedStats::points`), the sample size of that duration. Cumulative points
//! are turned into deltas against the previous point of the same series; a series' first
//! cumulative point only sets the start (what came before it is unknown), and a count that went
//! down is a reset, whose point counts whole.

use std::collections::HashMap;

use loupe_model::{DataPoint, PointValue};

use crate::stats::RedStats;

/// Which side of a call a request-duration metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The callee's: the service's own calls.
    Server,
    /// The caller's: a `calls` relation to `server.address`.
    Client,
}

/// Metric name → (side, seconds per unit when the point has no unit).
const METRICS: [(&str, Side, f64); 8] = [
    ("http.server.request.duration", Side::Server, 1.0),
    ("http.server.duration", Side::Server, 1e-3),
    ("rpc.server.duration", Side::Server, 1e-3),
    ("rpc.server.call.duration", Side::Server, 1.0),
    ("http.client.request.duration", Side::Client, 1.0),
    ("http.client.duration", Side::Client, 1e-3),
    ("rpc.client.duration", Side::Client, 1e-3),
    ("rpc.client.call.duration", Side::Client, 1.0),
];

/// The side a request-duration metric measures; `None` for any other metric.
pub(crate) fn side(metric: &str) -> Option<Side> {
    METRICS
        .iter()
        .find(|(name, _, _)| *name == metric)
        .map(|(_, side, _)| *side)
}

/// Seconds per unit of a duration point: its UCUM unit when it names one, else the
/// convention's unit for the metric.
fn seconds_per_unit(point: &DataPoint) -> f64 {
    match point.unit.as_str() {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        _ => METRICS
            .iter()
            .find(|(name, _, _)| *name == point.metric_name)
            .map_or(1.0, |(_, _, scale)| *scale),
    }
}

/// Whether a request-duration point counts failed calls.
pub(crate) fn failed(point: &DataPoint, side: Side) -> bool {
    let attrs = &point.attributes;
    if attrs.get_str("error.type").is_some() {
        return true;
    }
    let number = |key: &str| {
        attrs.get(key).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    if let Some(status) = number("http.response.status_code").or_else(|| number("http.status_code"))
    {
        return status >= if side == Side::Server { 500.0 } else { 400.0 };
    }
    // gRPC status codes (OpenTelemetry RPC conventions): any non-OK code fails a client call;
    // a server call fails on UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE
    // and DATA_LOSS only (the others are the caller's doing).
    if let Some(code) = number("rpc.grpc.status_code") {
        return match side {
            Side::Client => code != 0.0,
            Side::Server => [2.0, 4.0, 12.0, 13.0, 14.0, 15.0].contains(&code),
        };
    }
    false
}

/// The previous count and sum of each cumulative series, keyed by its owner (an entity index),
/// metric name and attributes, with the newest time the series was seen (unix nanoseconds), so
/// that series that stopped (pods that went away) are forgotten.
#[derive(Debug, Default)]
pub(crate) struct CumulativeState {
    last: HashMap<(usize, String, String), (u64, f64, u64)>,
}

impl CumulativeState {
    /// The calls, errors and durations a point adds, as one bucket's RED figures (only
    /// `calls`, `errors` and `duration` set); `None` for a point that adds nothing (not a
    /// distribution, no calls since the previous point, a series' first cumulative point).
    pub(crate) fn red(&mut self, owner: usize, point: &DataPoint, side: Side) -> Option<RedStats> {
        let PointValue::Distribution { count, sum } = point.value else {
            return None;
        };
        let (count, sum) = if point.cumulative {
            let key = (
                owner,
                point.metric_name.clone(),
                format!("{:?}", point.attributes.0),
            );
            let seen = point.time_unix_nano;
            match self.last.get(&key).copied() {
                None => {
                    self.last.insert(key, (count, sum, seen));
                    return None;
                }
                Some((c, s, at)) => {
                    self.last.insert(key, (count, sum, seen.max(at)));
                    if count < c {
                        (count, sum)
                    } else {
                        (count - c, sum - s)
                    }
                }
            }
        } else {
            (count, sum)
        };
        if count == 0 {
            return None;
        }
        let mut red = RedStats {
            calls: count,
            errors: if failed(point, side) { count } else { 0 },
            points: 1,
            ..RedStats::default()
        };
        // A point without a sum (OTLP makes it optional) gives calls and errors, no duration.
        if sum > 0.0 {
            red.duration
                .add_many(sum / count as f64 * seconds_per_unit(point), count);
        }
        Some(red)
    }

    /// Forgets the series last seen before `t` (unix nanoseconds): a series that comes back
    /// after that starts again from its next point.
    pub(crate) fn forget_before(&mut self, t: u64) {
        self.last.retain(|_, (_, _, seen)| *seen >= t);
    }

    /// Series remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last.len()
    }
}

/// A histogram point of `name` (unit `unit`) at `t` with `count` and `sum` and string
/// attributes, for tests.
#[cfg(test)]
pub(crate) fn test_point(
    name: &str,
    unit: &str,
    t: u64,
    (count, sum): (u64, f64),
    attrs: &[(&str, &str)],
) -> DataPoint {
    use loupe_model::{AttributeValue, Attributes, MetricKind};
    DataPoint {
        metric_name: name.to_owned(),
        unit: unit.to_owned(),
        kind: MetricKind::Histogram,
        time_unix_nano: t,
        value: PointValue::Distribution { count, sum },
        attributes: Attributes(
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), AttributeValue::String(v.to_string())))
                .collect(),
        ),
        cumulative: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, unit: &str, count: u64, sum: f64, attrs: &[(&str, &str)]) -> DataPoint {
        test_point(name, unit, 0, (count, sum), attrs)
    }

    /// One line a case: metric, unit, count, sum, attribute, cumulative previous point →
    /// calls, errors, mean seconds.
    #[test]
    fn points_become_calls_errors_and_durations() {
        #[allow(clippy::type_complexity)]
        let cases: [(
            &str,
            &str,
            u64,
            f64,
            (&str, &str),
            Option<(u64, f64)>,
            Option<(u64, u64, f64)>,
        ); 10] = [
            (
                "http.server.request.duration",
                "s",
                10,
                1.0,
                ("", ""),
                None,
                Some((10, 0, 0.1)),
            ),
            (
                "rpc.server.duration",
                "ms",
                4,
                200.0,
                ("", ""),
                None,
                Some((4, 0, 0.05)),
            ),
            (
                "rpc.server.duration",
                "",
                4,
                200.0,
                ("", ""),
                None,
                Some((4, 0, 0.05)),
            ),
            (
                "http.server.request.duration",
                "s",
                5,
                1.0,
                ("http.response.status_code", "503"),
                None,
                Some((5, 5, 0.2)),
            ),
            (
                "http.server.request.duration",
                "s",
                5,
                1.0,
                ("http.response.status_code", "404"),
                None,
                Some((5, 0, 0.2)),
            ),
            (
                "http.client.request.duration",
                "s",
                5,
                1.0,
                ("http.response.status_code", "404"),
                None,
                Some((5, 5, 0.2)),
            ),
            (
                "http.client.request.duration",
                "s",
                2,
                1.0,
                ("error.type", "timeout"),
                None,
                Some((2, 2, 0.5)),
            ),
            (
                "rpc.server.duration",
                "ms",
                3,
                3.0,
                ("rpc.grpc.status_code", "5"),
                None,
                Some((3, 0, 0.001)),
            ),
            // Cumulative: the delta since the previous point, then a reset.
            (
                "http.server.request.duration",
                "s",
                30,
                5.0,
                ("", ""),
                Some((10, 1.0)),
                Some((20, 0, 0.2)),
            ),
            (
                "http.server.request.duration",
                "s",
                4,
                2.0,
                ("", ""),
                Some((10, 1.0)),
                Some((4, 0, 0.5)),
            ),
        ];
        for (name, unit, count, sum, attr, previous, expected) in cases {
            let attrs: Vec<(&str, &str)> =
                [attr].into_iter().filter(|(k, _)| !k.is_empty()).collect();
            let side = side(name).expect("a request-duration metric");
            let mut state = CumulativeState::default();
            let mut p = point(name, unit, count, sum, &attrs);
            if let Some((c, s)) = previous {
                p.cumulative = true;
                let first = point(name, unit, c, s, &attrs);
                let first = DataPoint {
                    cumulative: true,
                    ..first
                };
                assert!(
                    state.red(1, &first, side).is_none(),
                    "a first cumulative point adds nothing"
                );
            }
            let got = state.red(1, &p, side).map(|r| {
                (
                    r.calls,
                    r.errors,
                    r.duration.mean_seconds().unwrap_or(f64::NAN),
                )
            });
            match (got, expected) {
                (Some((c, e, m)), Some((ec, ee, em))) => {
                    assert_eq!((c, e), (ec, ee), "{name} {attr:?}");
                    assert!((m - em).abs() < 1e-9, "{name}: mean {m}, expected {em}");
                }
                (got, expected) => assert_eq!(got.is_some(), expected.is_some(), "{name}"),
            }
        }
        assert_eq!(side("k8s.pod.cpu.usage"), None);
    }

    #[test]
    fn series_that_stopped_are_forgotten() {
        let name = "http.server.request.duration";
        let at = |t: u64, count: u64, pod: &str| DataPoint {
            cumulative: true,
            ..test_point(name, "s", t, (count, count as f64 * 0.1), &[("pod", pod)])
        };
        let mut state = CumulativeState::default();
        assert!(state.red(1, &at(10, 5, "a"), Side::Server).is_none());
        assert!(state.red(1, &at(10, 7, "b"), Side::Server).is_none());
        assert_eq!(
            state.red(1, &at(20, 9, "b"), Side::Server).map(|r| r.calls),
            Some(2)
        );
        // A point older than the newest does not make a series look recent.
        assert!(state.red(1, &at(5, 9, "b"), Side::Server).is_none());
        state.forget_before(15);
        assert_eq!(state.len(), 1, "a, last seen at 10, is forgotten");
        assert!(
            state.red(1, &at(30, 8, "a"), Side::Server).is_none(),
            "a forgotten series starts again"
        );
        assert_eq!(
            state
                .red(1, &at(30, 12, "b"), Side::Server)
                .map(|r| r.calls),
            Some(3)
        );
    }
}
