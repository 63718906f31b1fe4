//! RED figures from request-duration metrics, for services and their dependencies that send
//! metrics and no spans: a metrics-only deployment still has calls, errors and latency, and
//! what is not instrumented (a load balancer, a managed table, a cloud API) is still an entity,
//! known from its callers' client metrics.
//!
//! The metrics are those of the OpenTelemetry semantic conventions, as histograms,
//! exponential histograms or summaries:
//! - server side: `http.server.request.duration` (seconds), the older `http.server.duration`
//!   (milliseconds), `rpc.server.duration` (milliseconds), `rpc.server.call.duration`
//!   (seconds), and a function's `faas.invoke_duration` (seconds; FaaS metrics conventions),
//!   whose failures come from the `faas.errors` counter;
//! - client side: `http.client.request.duration`, `http.client.duration`,
//!   `rpc.client.duration` and `rpc.client.call.duration` name the callee by `server.address`
//!   (a cloud SDK's call, `rpc.system` = `aws-api`, by `rpc.service` when it has no address);
//!   `db.client.operation.duration` names a database (`db.system.name` and `db.namespace`,
//!   else `db.collection.name`, else `server.address`), and
//!   `messaging.client.operation.duration` a messaging destination
//!   (`messaging.destination.name`).
//!
//! A point's count is calls; the calls it marks failed (`error.type`, an HTTP status of 500
//! or more on the server and 400 or more on the client, a non-OK `rpc.grpc.status_code`) are
//! errors; its mean (sum / count) is recorded `count` times as the duration, and the point is
//! counted (`RedStats::points`), the sample size of that duration.
//!
//! Cumulative points (cumulative histograms and sums, and summaries, which OTLP makes
//! cumulative) are turned into deltas against the previous point of the same series, as the
//! OTLP metrics data model's "Temporality" and "Resets and Gaps" sections define them: a point
//! whose `start_time_unix_nano` differs from the previous point's starts a new count (a reset:
//! it counts whole, as do the per-interval summaries of cloud-metric converters, each with its
//! own start), as does a count that went down. A series' first point counts whole when its
//! start time is known and at most [`FIRST_POINT_MAX_INTERVAL_NANOS`] before it (a series that
//! started in that interval); otherwise it only sets the start (what came before is unknown).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use loupe_model::semconv as sc;
use loupe_model::{DataPoint, PointValue};

use crate::stats::RedStats;

/// Which side of a call a request-duration metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The callee's: the service's own calls.
    Server,
    /// The caller's: a relation to the callee the point names.
    Client(Callee),
}

/// How a client-side metric names its callee, and so what entity the callee is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callee {
    /// `server.address` (else `net.peer.name`, else a cloud API's `rpc.service`): a known
    /// service of that name, else an external endpoint; a `calls` relation.
    Address,
    /// A database: a `queries` relation.
    Database,
    /// A messaging destination: a `publishes` or `consumes` relation by
    /// `messaging.operation.type`.
    Messaging,
}

/// Metric name → (side, seconds per unit when the point has no unit).
const METRICS: [(&str, Side, f64); 11] = [
    ("http.server.request.duration", Side::Server, 1.0),
    ("http.server.duration", Side::Server, 1e-3),
    ("rpc.server.duration", Side::Server, 1e-3),
    ("rpc.server.call.duration", Side::Server, 1.0),
    (sc::FAAS_INVOKE_DURATION, Side::Server, 1.0),
    (
        "http.client.request.duration",
        Side::Client(Callee::Address),
        1.0,
    ),
    ("http.client.duration", Side::Client(Callee::Address), 1e-3),
    ("rpc.client.duration", Side::Client(Callee::Address), 1e-3),
    (
        "rpc.client.call.duration",
        Side::Client(Callee::Address),
        1.0,
    ),
    (
        sc::DB_CLIENT_OPERATION_DURATION,
        Side::Client(Callee::Database),
        1.0,
    ),
    (
        sc::MESSAGING_CLIENT_OPERATION_DURATION,
        Side::Client(Callee::Messaging),
        1.0,
    ),
];

/// Counters of a service's failed calls, for metrics whose duration carries no outcome:
/// `faas.errors` beside `faas.invoke_duration`.
const ERROR_COUNTERS: [&str; 1] = [sc::FAAS_ERRORS];

/// The longest interval a series' first cumulative point may cover and still count whole,
/// nanoseconds: five minutes, the longest of the usual collection intervals (the cloud
/// providers' basic monitoring).
pub(crate) const FIRST_POINT_MAX_INTERVAL_NANOS: u64 = 300_000_000_000;

/// The side a request-duration metric measures; `None` for any other metric.
pub(crate) fn side(metric: &str) -> Option<Side> {
    METRICS
        .iter()
        .find(|(name, _, _)| *name == metric)
        .map(|(_, side, _)| *side)
}

/// Whether `metric` counts a service's failed calls (see [`ERROR_COUNTERS`]).
pub(crate) fn is_error_counter(metric: &str) -> bool {
    ERROR_COUNTERS.contains(&metric)
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
            Side::Client(_) => code != 0.0,
            Side::Server => [2.0, 4.0, 12.0, 13.0, 14.0, 15.0].contains(&code),
        };
    }
    false
}

/// The last point of a cumulative series.
#[derive(Debug, Clone, Copy)]
struct Last {
    count: u64,
    sum: f64,
    start: u64,
    /// The newest time the series was seen, unix nanoseconds.
    seen: u64,
}

/// Who sends a series: the entity that owns it (an index: the pod, else the service) and the
/// sending instance (`service.instance.id`; empty when not sent), so that the instances of a
/// service without pods (containers on a managed runtime, hosts) keep series of their own.
pub(crate) type Owner<'a> = (usize, &'a str);

/// The previous point of each cumulative series, keyed by its owner, metric name and
/// attributes, with the newest time the series was seen, so that series that stopped (pods
/// that went away) are forgotten.
#[derive(Debug, Default)]
pub(crate) struct CumulativeState {
    last: HashMap<((usize, String), String, String), Last>,
}

impl CumulativeState {
    /// The `(count, sum)` a point adds since the previous point of its series (see the module
    /// documentation for resets and first points); a delta point's own figures; `None` for a
    /// series' first point of unknown start.
    fn delta(
        &mut self,
        (owner, instance): Owner,
        point: &DataPoint,
        (count, sum): (u64, f64),
    ) -> Option<(u64, f64)> {
        if !point.cumulative {
            return Some((count, sum));
        }
        let key = (
            (owner, instance.to_owned()),
            point.metric_name.clone(),
            format!("{:?}", point.attributes.0),
        );
        let (t, start) = (point.time_unix_nano, point.start_time_unix_nano);
        let now = Last {
            count,
            sum,
            start,
            seen: t,
        };
        match self.last.entry(key) {
            Entry::Vacant(v) => {
                v.insert(now);
                (start != 0 && start < t && t - start <= FIRST_POINT_MAX_INTERVAL_NANOS)
                    .then_some((count, sum))
            }
            Entry::Occupied(mut o) => {
                let previous = *o.get();
                // A point older than the newest (a late retry) adds nothing and changes nothing:
                // the newer one already counts it.
                if t < previous.seen {
                    return None;
                }
                o.insert(now);
                let restarted = start != 0 && previous.start != 0 && start != previous.start;
                if restarted || count < previous.count || sum < previous.sum {
                    Some((count, sum))
                } else {
                    Some((count - previous.count, sum - previous.sum))
                }
            }
        }
    }

    /// The calls, errors and durations a point adds, as one bucket's RED figures (only
    /// `calls`, `errors` and `duration` set); `None` for a point that adds nothing (not a
    /// distribution, no calls since the previous point, a series' first cumulative point).
    pub(crate) fn red(&mut self, owner: Owner, point: &DataPoint, side: Side) -> Option<RedStats> {
        let PointValue::Distribution { count, sum } = point.value else {
            return None;
        };
        let (count, sum) = self.delta(owner, point, (count, sum))?;
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

    /// The failed calls an error-counter point (see [`is_error_counter`]) adds; `None` for a
    /// point that adds nothing.
    pub(crate) fn errors(&mut self, owner: Owner, point: &DataPoint) -> Option<u64> {
        let PointValue::Number(value) = point.value else {
            return None;
        };
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        let (_, errors) = self.delta(owner, point, (0, value))?;
        Some(errors.round() as u64).filter(|&e| e > 0)
    }

    /// Forgets the series last seen before `t` (unix nanoseconds): a series that comes back
    /// after that starts again from its next point.
    pub(crate) fn forget_before(&mut self, t: u64) {
        self.last.retain(|_, last| last.seen >= t);
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
        start_time_unix_nano: 0,
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
                    state.red((1, ""), &first, side).is_none(),
                    "a first cumulative point adds nothing"
                );
            }
            let got = state.red((1, ""), &p, side).map(|r| {
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
        assert!(state.red((1, ""), &at(10, 5, "a"), Side::Server).is_none());
        assert!(state.red((1, ""), &at(10, 7, "b"), Side::Server).is_none());
        assert_eq!(
            state
                .red((1, ""), &at(20, 9, "b"), Side::Server)
                .map(|r| r.calls),
            Some(2)
        );
        // A point older than the newest does not make a series look recent.
        assert!(state.red((1, ""), &at(5, 9, "b"), Side::Server).is_none());
        state.forget_before(15);
        assert_eq!(state.len(), 1, "a, last seen at 10, is forgotten");
        assert!(
            state.red((1, ""), &at(30, 8, "a"), Side::Server).is_none(),
            "a forgotten series starts again"
        );
        assert_eq!(
            state
                .red((1, ""), &at(30, 12, "b"), Side::Server)
                .map(|r| r.calls),
            Some(3)
        );
    }

    /// OTLP metrics data model, "Resets and Gaps": a new start time is a new count, so the
    /// per-interval summaries of a cloud-metric converter (each point with its own start) count
    /// whole, a cumulative histogram restarted by its process counts from zero, and a series'
    /// first point counts whole only when its start is recent.
    #[test]
    fn start_times_mark_resets_and_recent_first_points() {
        let s = 1_000_000_000u64;
        let name = "http.server.request.duration";
        let at = |start: u64, t: u64, count: u64| DataPoint {
            cumulative: true,
            start_time_unix_nano: start,
            ..test_point(name, "s", t, (count, count as f64 * 0.1), &[])
        };
        let calls = |state: &mut CumulativeState, p: &DataPoint| {
            state.red((1, ""), p, Side::Server).map(|r| r.calls)
        };
        // Per-interval summaries: every point has a new start, every point counts whole,
        // though the second's count is higher than the first's.
        let mut state = CumulativeState::default();
        assert_eq!(calls(&mut state, &at(600 * s, 660 * s, 5)), Some(5));
        assert_eq!(calls(&mut state, &at(660 * s, 720 * s, 7)), Some(7));
        assert_eq!(calls(&mut state, &at(720 * s, 780 * s, 3)), Some(3));
        // A cumulative series from a process that started 15 s before its first point.
        let mut state = CumulativeState::default();
        assert_eq!(calls(&mut state, &at(1000 * s, 1015 * s, 4)), Some(4));
        assert_eq!(calls(&mut state, &at(1000 * s, 1030 * s, 10)), Some(6));
        // The process restarts: the new start counts from zero, even with a higher count.
        assert_eq!(calls(&mut state, &at(1035 * s, 1045 * s, 12)), Some(12));
        // A series that has counted for an hour: its first point only sets the start.
        let mut state = CumulativeState::default();
        assert_eq!(calls(&mut state, &at(0, 3600 * s, 900)), None);
        assert_eq!(calls(&mut state, &at(0, 3615 * s, 910)), Some(10));
        // No start time (older exporters): the first point sets the start.
        let mut state = CumulativeState::default();
        assert_eq!(calls(&mut state, &at(0, 15 * s, 900)), None);
        // A late point (a retried export) adds nothing, and the next counts from the newest.
        let mut state = CumulativeState::default();
        assert_eq!(calls(&mut state, &at(1000 * s, 1015 * s, 7)), Some(7));
        assert_eq!(calls(&mut state, &at(1000 * s, 1030 * s, 9)), Some(2));
        assert_eq!(calls(&mut state, &at(1000 * s, 1015 * s, 7)), None);
        assert_eq!(calls(&mut state, &at(1000 * s, 1045 * s, 12)), Some(3));
    }

    /// `faas.errors` is a counter of a function's failed invocations, delta or cumulative.
    #[test]
    fn error_counters_count_failed_calls() {
        let counter = |t: u64, value: f64, cumulative: bool| DataPoint {
            metric_name: sc::FAAS_ERRORS.to_owned(),
            value: PointValue::Number(value),
            cumulative,
            start_time_unix_nano: 1,
            ..test_point(sc::FAAS_ERRORS, "{error}", t, (0, 0.0), &[])
        };
        assert!(is_error_counter(sc::FAAS_ERRORS));
        assert!(!is_error_counter(sc::FAAS_INVOKE_DURATION));
        let mut state = CumulativeState::default();
        assert_eq!(state.errors((1, ""), &counter(10, 3.0, false)), Some(3));
        assert_eq!(state.errors((1, ""), &counter(20, 0.0, false)), None);
        assert_eq!(state.errors((1, ""), &counter(30, -1.0, false)), None);
        let mut state = CumulativeState::default();
        let hour = 3_600_000_000_000;
        let first = counter(hour, 2.0, true);
        assert_eq!(
            state.errors((2, ""), &first),
            None,
            "a start an hour before"
        );
        assert_eq!(
            state.errors((2, ""), &counter(hour + 10, 7.0, true)),
            Some(5)
        );
        assert_eq!(
            side(sc::FAAS_INVOKE_DURATION),
            Some(Side::Server),
            "the function's duration is its calls"
        );
        assert_eq!(
            side(sc::DB_CLIENT_OPERATION_DURATION),
            Some(Side::Client(Callee::Database))
        );
        assert_eq!(
            side(sc::MESSAGING_CLIENT_OPERATION_DURATION),
            Some(Side::Client(Callee::Messaging))
        );
    }
}
