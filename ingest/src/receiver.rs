//! The protocol-independent core of the OTLP receivers: decode a request, validate its items,
//! hand the accepted ones to the sink, and build the `Export*ServiceResponse` with
//! `partial_success` when items were rejected (OTLP specification, "Partial Success").

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::metrics::{Reason, ReceiverMetrics, Transport};
use crate::signal::OtlpExport;
use crate::sink::{Accepted, TelemetrySink};

/// Receiver limits, shared by gRPC and HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted on the wire, bytes (default 16 MiB).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, bytes (default 64 MiB).
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
        }
    }
}

/// Decodes requests and feeds a sink; cheap to clone.
pub struct Receiver<S: ?Sized> {
    sink: Arc<S>,
    limits: Limits,
    metrics: ReceiverMetrics,
}

impl<S: ?Sized> Clone for Receiver<S> {
    fn clone(&self) -> Self {
        Self {
            sink: self.sink.clone(),
            limits: self.limits,
            metrics: self.metrics.clone(),
        }
    }
}

impl<S: TelemetrySink + ?Sized> Receiver<S> {
    /// A receiver feeding `sink`.
    pub fn new(sink: Arc<S>, limits: Limits) -> Self {
        Self {
            sink,
            limits,
            metrics: ReceiverMetrics::default(),
        }
    }

    /// The same receiver counting into `metrics` (see [`ReceiverMetrics::register`]).
    pub fn with_metrics(self, metrics: ReceiverMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// The configured limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes one export request of any signal: decodes and validates its items, hands the
    /// accepted ones to the sink (with the request's protobuf encoding when the sink keeps it),
    /// and answers with `partial_success` when items were rejected.
    ///
    /// # Errors
    /// The sink's error; invalid items are not errors but `partial_success`.
    pub(crate) async fn export<R: OtlpExport>(
        &self,
        request: R,
        transport: Transport,
    ) -> Result<R::Response> {
        let decoded = request.decode_items();
        self.metrics
            .refused(R::SIGNAL, transport, Reason::invalid, decoded.rejected);
        if let Some(batch) = decoded.batch {
            let items = batch.len() as u64;
            let (protobuf, request) = match self.sink.wants_protobuf() {
                true => (Some(request.encode_to_vec()), Some(request.into_request())),
                false => (None, None),
            };
            let sink = self.sink.clone();
            let accepted = Accepted {
                signal: R::SIGNAL,
                batch,
                protobuf,
                request,
            };
            // The sink writes and updates the graph: CPU and disk work, off the async threads.
            let consumed = tokio::task::spawn_blocking(move || sink.consume(accepted))
                .await
                .map_err(|e| Error::Internal(format!("sink task failed: {e}")))
                .and_then(|r| r);
            match &consumed {
                Ok(()) => self.metrics.accepted(R::SIGNAL, transport, items),
                Err(Error::Overloaded(_)) => {
                    self.metrics
                        .refused(R::SIGNAL, transport, Reason::unavailable, items)
                }
                Err(_) => self
                    .metrics
                    .refused(R::SIGNAL, transport, Reason::internal, items),
            }
            consumed?;
        }
        if decoded.rejected == 0 {
            return Ok(R::Response::default());
        }
        let reason = decoded
            .first_error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let message = format!("{} item(s) rejected; first: {reason}", decoded.rejected);
        Ok(R::partial_success(decoded.rejected as i64, message))
    }
}
