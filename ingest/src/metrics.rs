//! The receivers' self-telemetry, named after the OpenTelemetry Collector's receiver metrics
//! (`otelcol_receiver_accepted_spans` and its kin, `receiver/receiverhelper/documentation.md`):
//! items accepted and refused per signal and transport, refused requests by reason, and the
//! admission budget's bytes in flight. Registered in a caller's [`Registry`], which `/metrics`
//! renders.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::sink::Signal;

/// How a request arrived.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Transport {
    /// OTLP/gRPC (port 4317).
    grpc,
    /// OTLP/HTTP (port 4318).
    http,
    /// `POST /api/v1/changes` and the change webhooks.
    changes,
    /// Fed in process (the demo, dataset imports).
    in_process,
}

/// Why items or a request were refused.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Reason {
    /// The bytes-in-flight budget stayed full for the longest wait.
    overloaded,
    /// Too many requests were already waiting for the budget.
    queue_full,
    /// The process's resident memory was over its watermark.
    memory,
    /// The body or its decompressed form was over the size limit.
    too_large,
    /// The body was not valid OTLP (or the items failed validation: partial success).
    invalid,
    /// The body did not arrive in time.
    timeout,
    /// The sink could not take the items (store not ready, write-ahead log error).
    unavailable,
    /// Another failure.
    internal,
}

/// The labels of item counts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemLabels {
    /// The transport.
    pub transport: Transport,
}

/// The labels of refused items and requests.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// The transport.
    pub transport: Transport,
    /// Why.
    pub reason: Reason,
}

/// Counters of one signal's items.
#[derive(Debug, Clone, Default)]
struct SignalCounters {
    accepted: Family<ItemLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

/// The receivers' metrics; cheap to clone (every clone counts into the same series).
#[derive(Debug, Clone, Default)]
pub struct ReceiverMetrics {
    spans: SignalCounters,
    metric_points: SignalCounters,
    log_records: SignalCounters,
    refused_requests: Family<RefusedLabels, Counter>,
    pub(crate) inflight_bytes: Gauge,
    pub(crate) inflight_limit: Gauge,
    pub(crate) waiting: Gauge,
}

impl ReceiverMetrics {
    /// New metrics registered in `registry` as `loupe_receiver_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        for (item, counters) in [
            ("spans", &metrics.spans),
            ("metric_points", &metrics.metric_points),
            ("log_records", &metrics.log_records),
        ] {
            registry.register(
                format!("loupe_receiver_accepted_{item}"),
                format!("OTLP {item} written to the log and acknowledged"),
                counters.accepted.clone(),
            );
            registry.register(
                format!("loupe_receiver_refused_{item}"),
                format!("OTLP {item} decoded but not acknowledged, by reason (invalid: rejected in a partial success)"),
                counters.refused.clone(),
            );
        }
        registry.register(
            "loupe_receiver_refused_requests",
            "Requests refused before their items were decoded, by reason",
            metrics.refused_requests.clone(),
        );
        registry.register(
            "loupe_receiver_inflight_bytes",
            "Request bytes (wire and decompressed) admitted and not yet acknowledged",
            metrics.inflight_bytes.clone(),
        );
        registry.register(
            "loupe_receiver_inflight_limit_bytes",
            "The bytes-in-flight budget (--ingest-max-inflight-bytes)",
            metrics.inflight_limit.clone(),
        );
        registry.register(
            "loupe_receiver_waiting_requests",
            "Requests waiting for room in the bytes-in-flight budget",
            metrics.waiting.clone(),
        );
        metrics
    }

    fn signal(&self, signal: Signal) -> &SignalCounters {
        match signal {
            Signal::Traces => &self.spans,
            Signal::Metrics => &self.metric_points,
            Signal::Logs => &self.log_records,
        }
    }

    /// Counts `n` items of `signal` acknowledged.
    pub fn accepted(&self, signal: Signal, transport: Transport, n: u64) {
        if n > 0 {
            self.signal(signal)
                .accepted
                .get_or_create(&ItemLabels { transport })
                .inc_by(n);
        }
    }

    /// Counts `n` items of `signal` refused for `reason`.
    pub fn refused(&self, signal: Signal, transport: Transport, reason: Reason, n: u64) {
        if n > 0 {
            self.signal(signal)
                .refused
                .get_or_create(&RefusedLabels { transport, reason })
                .inc_by(n);
        }
    }

    /// Counts one request refused before decoding.
    pub fn refused_request(&self, transport: Transport, reason: Reason) {
        self.refused_requests
            .get_or_create(&RefusedLabels { transport, reason })
            .inc();
    }
}
