//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz) and for their replay on stable Rust
//! (the tests below run every committed corpus input and a bounded random pass): outside input
//! through the same functions the receivers and the change intake use, with the properties
//! every input must keep. None may panic; every error must be one the receivers answer with.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::error::{Error, Result};
use crate::receiver::Limits;
use crate::signal::OtlpExport;
use crate::sink::Signal;

/// Limits small enough that a fuzzer's inputs exercise them (1 MiB body, 4 MiB decompressed).
pub const FUZZ_LIMITS: Limits = Limits {
    max_body_bytes: 1 << 20,
    max_decompressed_bytes: 4 << 20,
};

/// What an OTLP/HTTP body came to: items accepted and rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyOutcome {
    /// Items that passed validation.
    pub accepted: usize,
    /// Items rejected (a partial success).
    pub rejected: u64,
}

fn one<R: OtlpExport>(headers: &HeaderMap, body: Bytes) -> Result<BodyOutcome> {
    let request: R = crate::http::decode_body(headers, body, &FUZZ_LIMITS)?;
    // What decodes re-encodes to a message that decodes to the same request (the write-ahead
    // log keeps requests as protobuf and reads them back).
    let encoded = request.encode_to_vec();
    let again = R::decode(encoded.as_slice()).map_err(Error::Protobuf)?;
    assert!(
        again.encode_to_vec() == encoded,
        "a decoded request does not survive its own encoding"
    );
    let decoded = request.decode_items();
    Ok(BodyOutcome {
        accepted: decoded.batch.as_ref().map_or(0, |b| b.len()),
        rejected: decoded.rejected,
    })
}

/// An OTLP/HTTP body of `signal` with `content_type` and `content_encoding`, decoded and
/// validated as `POST /v1/{traces,metrics,logs}` does it.
///
/// # Errors
/// The receiver's error: its HTTP status is 400, 413 or 415.
pub fn otlp_http_body(
    signal: Signal,
    content_type: &str,
    content_encoding: &str,
    body: &[u8],
) -> Result<BodyOutcome> {
    let mut headers = HeaderMap::new();
    let value =
        |v: &str| HeaderValue::from_str(v).map_err(|_| Error::UnsupportedContentType(v.to_owned()));
    headers.insert(header::CONTENT_TYPE, value(content_type)?);
    if !content_encoding.is_empty() {
        headers.insert(header::CONTENT_ENCODING, value(content_encoding)?);
    }
    let body = Bytes::copy_from_slice(body);
    let outcome = match signal {
        Signal::Traces => one::<ExportTraceServiceRequest>(&headers, body),
        Signal::Metrics => one::<ExportMetricsServiceRequest>(&headers, body),
        Signal::Logs => one::<ExportLogsServiceRequest>(&headers, body),
    };
    if let Err(e) = &outcome {
        assert!(
            matches!(e.http_status(), 400 | 413 | 415),
            "a body error the receiver would answer with {}: {e}",
            e.http_status()
        );
    }
    outcome
}

/// A change webhook body (`POST /api/v1/changes`) parsed as the intake does, GitHub's when
/// `github_event` is given, else Argo CD's or loupe's schema; the number of changes.
///
/// # Errors
/// The intake's 400 message.
pub fn change_webhook(
    github_event: Option<&str>,
    source: Option<&str>,
    body: &[u8],
) -> std::result::Result<usize, String> {
    let mut headers = HeaderMap::new();
    if let Some(event) = github_event.and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert("x-github-event", event);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    crate::changes::parse(&headers, source, None, &value, 1_767_225_600_000_000_000)
        .map(|changes| changes.len())
        .map_err(|e| e.0)
}

/// One fuzz input split into the selector bytes a target needs and the rest.
fn split(data: &[u8], selectors: usize) -> (Vec<u8>, &[u8]) {
    let n = selectors.min(data.len());
    (data[..n].to_vec(), &data[n..])
}

/// The OTLP/HTTP target: byte 0 picks the signal, byte 1 the content type and encoding; the
/// rest is the body (gzip-compressed first when the encoding byte says so, so the fuzzer
/// reaches the decoders through gzip too).
pub fn otlp_http_target(data: &[u8]) {
    let (sel, body) = split(data, 2);
    let signal = match sel.first().copied().unwrap_or(0) % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    };
    let mode = sel.get(1).copied().unwrap_or(0);
    let content_type = match mode % 4 {
        0 | 1 => "application/x-protobuf",
        2 => "application/json",
        _ => "application/JSON; charset=utf-8",
    };
    let (encoding, body) = match mode / 4 % 4 {
        0 => ("", body.to_vec()),
        1 => ("gzip", gzip(body)),
        // Raw bytes labelled gzip: the decompressor's own errors.
        2 => ("gzip", body.to_vec()),
        _ => ("br", body.to_vec()),
    };
    let _ = otlp_http_body(signal, content_type, encoding, &body);
}

/// The change webhook target: byte 0 picks GitHub, Argo CD or loupe's schema.
pub fn change_webhook_target(data: &[u8]) {
    let (sel, body) = split(data, 1);
    let (event, source) = match sel.first().copied().unwrap_or(0) % 4 {
        0 => (Some("deployment_status"), None),
        1 => (None, Some("argocd")),
        2 => (Some("push"), None),
        _ => (None, None),
    };
    let _ = change_webhook(event, source, body);
}

/// The Nezha CSV target: byte 0 picks the file kind (trace, log, metric) and whether the
/// bytes are a gzip stream; the rest is the file. Every request the reader makes must be a
/// valid OTLP request whose items decode.
pub fn nezha_csv_target(data: &[u8]) {
    use crate::nezha::FileKind;
    let (sel, body) = split(data, 1);
    let sel = sel.first().copied().unwrap_or(0);
    let kind = match sel % 3 {
        0 => FileKind::Trace,
        1 => FileKind::Log,
        _ => FileKind::Metric,
    };
    let scratch = std::env::temp_dir().join(format!(
        "loupe-fuzz-nezha-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    if let Ok(requests) = crate::nezha::load_one_file(&scratch, kind, body, sel / 3 % 2 == 1) {
        for r in requests {
            let again = crate::ExportRequest::decode(r.signal(), &r.encode())
                .expect("a request the reader made decodes");
            assert!(
                again.encode() == r.encode(),
                "a request the reader made survives its encoding"
            );
            let _ = r.items();
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every committed input of `fuzz/corpus/<target>` (and the crashes fixed since, in
    /// `fuzz/regressions/<target>`), run through the target.
    fn replay(target: &str, run: fn(&[u8])) -> usize {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).unwrap();
                run(&data);
                n += 1;
            }
        }
        n
    }

    #[test]
    fn the_otlp_http_corpus_replays() {
        assert!(
            replay("otlp_http", otlp_http_target) > 0,
            "no corpus committed"
        );
    }

    #[test]
    fn the_change_webhook_corpus_replays() {
        assert!(
            replay("change_webhook", change_webhook_target) > 0,
            "no corpus committed"
        );
    }

    #[test]
    fn the_nezha_csv_corpus_replays() {
        assert!(
            replay("nezha_csv", nezha_csv_target) > 0,
            "no corpus committed"
        );
        // The seeds are real files' first lines: each reads into requests.
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/nezha_csv");
        let scratch =
            std::env::temp_dir().join(format!("loupe-nezha-seeds-{}", std::process::id()));
        for (seed, kind) in [
            ("trace", crate::nezha::FileKind::Trace),
            ("log", crate::nezha::FileKind::Log),
            ("metric", crate::nezha::FileKind::Metric),
        ] {
            let data = std::fs::read(corpus.join(seed)).unwrap();
            let requests = crate::nezha::load_one_file(&scratch, kind, &data[1..], false).unwrap();
            assert!(!requests.is_empty(), "{seed}: no request");
        }
        let _ = std::fs::remove_dir_all(scratch);
    }

    #[test]
    fn known_inputs_decode_as_the_receivers_take_them() {
        let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"},{"traceId":"00","spanId":"01","name":"bad ids"}]}]}]}"#;
        let outcome = otlp_http_body(Signal::Traces, "application/json", "", json).unwrap();
        assert_eq!(
            outcome,
            BodyOutcome {
                accepted: 1,
                rejected: 1
            }
        );
        let gz = gzip(json);
        let outcome = otlp_http_body(Signal::Traces, "application/json", "gzip", &gz).unwrap();
        assert_eq!(outcome.accepted, 1);
        let e = otlp_http_body(Signal::Logs, "text/plain", "", b"").unwrap_err();
        assert_eq!(e.http_status(), 415);
        let e =
            otlp_http_body(Signal::Logs, "application/x-protobuf", "gzip", b"nope").unwrap_err();
        assert_eq!(e.http_status(), 400);
        // A gzip bomb: 8 MiB of zeros in a few KiB stops at the 4 MiB limit.
        let bomb = gzip(&vec![0u8; 8 << 20]);
        let e =
            otlp_http_body(Signal::Metrics, "application/x-protobuf", "gzip", &bomb).unwrap_err();
        assert_eq!(e.http_status(), 413);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            otlp_http_target(&data);
            change_webhook_target(&data);
            nezha_csv_target(&data);
        }

        #[test]
        fn random_json_values_never_panic_the_change_intake(
            kind in "[a-z_]{0,12}", service in "\\PC{0,16}", time in any::<i64>(), sel in 0u8..4
        ) {
            let body = serde_json::json!({"kind": kind, "service": service, "time": time,
                "app": {"kind": "Application", "metadata": {"name": service}},
                "deployment_status": {"state": kind}, "deployment": {"environment": service}});
            let mut data = vec![sel];
            data.extend(serde_json::to_vec(&body).unwrap());
            change_webhook_target(&data);
        }
    }
}
