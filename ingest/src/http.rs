//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON
//! bodies, optionally gzip-compressed (OTLP specification, "OTLP/HTTP").
//!
//! Success is 200 with the `Export*ServiceResponse` in the request's encoding; a malformed body
//! is 400 with a `google.rpc.Status` body; an unsupported content type 415; a body or
//! decompressed body past its limit 413; an overloaded sink 503 with `Retry-After`.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::admission::Ticket;
use crate::error::{Error, Result};
use crate::metrics::Transport;
use crate::receiver::{Limits, Receiver};
use crate::signal::OtlpExport;
use crate::sink::TelemetrySink;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The body encoding of a request, and so of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the error body OTLP/HTTP prescribes (details omitted).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        PROTOBUF => Ok(Encoding::Protobuf),
        JSON => Ok(Encoding::Json),
        _ => Err(Error::UnsupportedContentType(raw.to_owned())),
    }
}

/// 413 when reading stopped at the body limit, else 400 (a broken or cut-off upload).
fn body_error(error: &axum::Error, limit_bytes: usize) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return Error::TooLarge {
                what: "body",
                limit_bytes,
            };
        }
        source = e.source();
    }
    Error::Body(error.to_string())
}

/// Refuses a body whose declared `Content-Length` is over the limit before reading any of it,
/// so a client that sent `Expect: 100-continue` (curl does above 1 MiB) never uploads it.
fn declared_length_fits(headers: &HeaderMap, limit_bytes: usize) -> Result<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit_bytes as u64 => Err(Error::TooLarge {
            what: "body",
            limit_bytes,
        }),
        _ => Ok(()),
    }
}

/// Decodes an OTLP/HTTP body as the receiver does (content type, then `Content-Encoding`
/// bounded by the decompressed limit, then protobuf or JSON), without its items' validation,
/// which [`OtlpExport::decode_items`] does.
///
/// # Errors
/// As the receiver answers: 415 for a content type or encoding it does not take, 413 past a
/// limit, 400 for a body that does not decode.
pub(crate) fn decode_body<R: OtlpExport>(
    headers: &HeaderMap,
    body: Bytes,
    limits: &Limits,
) -> Result<R> {
    let enc = encoding(headers)?;
    if body.len() > limits.max_body_bytes {
        return Err(Error::TooLarge {
            what: "body",
            limit_bytes: limits.max_body_bytes,
        });
    }
    let body = decompress(headers, body, limits)?;
    decode(enc, &body)
}

/// Undoes `Content-Encoding`, bounded by the decompressed-size limit.
fn decompress(headers: &HeaderMap, body: Bytes, limits: &Limits) -> Result<Bytes> {
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match coding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(body),
        "gzip" => {
            let limit = limits.max_decompressed_bytes;
            let mut out = Vec::new();
            let decoder = flate2::read::GzDecoder::new(&body[..]);
            decoder
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(Error::Gzip)?;
            if out.len() > limit {
                return Err(Error::TooLarge {
                    what: "decompressed body",
                    limit_bytes: limit,
                });
            }
            Ok(out.into())
        }
        other => Err(Error::UnsupportedContentEncoding(other.to_owned())),
    }
}

fn decode<T: Message + Default + DeserializeOwned>(encoding: Encoding, body: &[u8]) -> Result<T> {
    Ok(match encoding {
        Encoding::Protobuf => T::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    })
}

/// Brings serde's rendering of a response to the proto3 JSON mapping OTLP/JSON uses: absent
/// messages are left out rather than `null`, and 64-bit integers are decimal strings.
fn proto3_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            for (key, v) in map.iter_mut() {
                if key.starts_with("rejected") && v.is_number() {
                    *v = serde_json::Value::String(v.to_string());
                } else {
                    proto3_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(proto3_json),
        _ => {}
    }
}

fn respond<T: Message + Serialize>(
    encoding: Encoding,
    status: StatusCode,
    message: &T,
) -> Response {
    let (content_type, body) = match encoding {
        Encoding::Protobuf => (PROTOBUF, message.encode_to_vec()),
        Encoding::Json => {
            let mut value = serde_json::to_value(message).unwrap_or_default();
            proto3_json(&mut value);
            (JSON, value.to_string().into_bytes())
        }
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The OTLP/HTTP error response to a request with `headers` (its encoding from its content
/// type, JSON when that is neither).
pub(crate) fn refusal(headers: &HeaderMap, error: &Error) -> Response {
    error_response(encoding(headers).unwrap_or(Encoding::Json), error)
}

fn error_response(encoding: Encoding, error: &Error) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let rpc = RpcStatus {
        code: error.grpc_status().code() as i32,
        message: error.to_string(),
    };
    let mut response = respond(encoding, status, &rpc);
    if matches!(error, Error::Overloaded(_)) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, crate::error::retry_after_header());
    }
    response
}

async fn handle<S, R>(
    State(receiver): State<Receiver<S>>,
    ticket: Option<axum::Extension<Arc<Ticket>>>,
    headers: HeaderMap,
    body: Body,
) -> Response
where
    S: TelemetrySink + ?Sized,
    R: OtlpExport,
{
    let enc = match encoding(&headers) {
        Ok(e) => e,
        Err(e) => return error_response(Encoding::Json, &e),
    };
    let limits = receiver.limits();
    let result = async {
        declared_length_fits(&headers, limits.max_body_bytes)?;
        let body = axum::body::to_bytes(body, limits.max_body_bytes)
            .await
            .map_err(|e| body_error(&e, limits.max_body_bytes))?;
        let wire = body.len();
        let body = decompress(&headers, body, &limits)?;
        if let Some(axum::Extension(ticket)) = &ticket {
            if body.len() != wire {
                ticket.grow(body.len(), Transport::http).await?;
            }
        }
        let request: R = decode(enc, &body)?;
        receiver.export(request, Transport::http).await
    }
    .await;
    match result {
        Ok(response) => respond(enc, StatusCode::OK, &response),
        Err(e) => {
            tracing::warn!(error = %e, "otlp/http request refused");
            error_response(enc, &e)
        }
    }
}

/// The OTLP/HTTP routes.
pub fn http_router<S: TelemetrySink + ?Sized>(receiver: Receiver<S>) -> Router {
    let limit = receiver.limits().max_body_bytes;
    Router::new()
        .route("/v1/traces", post(handle::<S, ExportTraceServiceRequest>))
        .route(
            "/v1/metrics",
            post(handle::<S, ExportMetricsServiceRequest>),
        )
        .route("/v1/logs", post(handle::<S, ExportLogsServiceRequest>))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn responses_follow_the_proto3_json_mapping() {
        let cases = [
            (serde_json::json!({"partialSuccess": null}), "{}"),
            (
                serde_json::json!({"partialSuccess": {"rejectedSpans": 2, "errorMessage": "x"}}),
                r#"{"partialSuccess":{"errorMessage":"x","rejectedSpans":"2"}}"#,
            ),
        ];
        for (mut value, expected) in cases {
            proto3_json(&mut value);
            assert_eq!(value.to_string(), expected);
        }
    }

    #[test]
    fn content_types_are_matched_on_their_essence() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert_eq!(encoding(&headers).unwrap(), Encoding::Json);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        assert!(matches!(
            encoding(&headers),
            Err(Error::UnsupportedContentType(_))
        ));
    }
}
