//! Nezha span files → OTLP trace requests. Span kinds are inferred from the services of parent
//! and children: a span whose parent is in another service (or that has no parent) is SERVER, a
//! span with a child in another service is CLIENT, others INTERNAL.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};

use super::csv_files::{bad_row, columns, records};
use super::{group_by_pod, minute_files, resource, service_of_pod, BATCH};
use crate::error::Result;
use crate::request::{ExportRequest, Inner};

const COLUMNS: [&str; 7] = [
    "TraceID",
    "SpanID",
    "ParentID",
    "PodName",
    "OperationName",
    "StartTimeUnixNano",
    "EndTimeUnixNano",
];

struct Row {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Option<Vec<u8>>,
    pod: String,
    name: String,
    start: u64,
    end: u64,
}

fn read(path: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let (headers, records) = records(path)?;
    let [t, s, p, pod, op, start, end] = columns(path, &headers, COLUMNS)?;
    for (i, r) in records.iter().enumerate() {
        let field = |k: usize| r.get(k).unwrap_or("");
        let hex = |k: usize| {
            hex::decode(field(k)).map_err(|e| bad_row(path, i + 1, format!("{}: {e}", COLUMNS[0])))
        };
        let number = |k: usize| {
            field(k)
                .parse::<u64>()
                .map_err(|e| bad_row(path, i + 1, format!("time: {e}")))
        };
        let parent = match field(p) {
            "" | "root" => None,
            _ => Some(hex(p)?),
        };
        rows.push(Row {
            trace_id: hex(t)?,
            span_id: hex(s)?,
            parent,
            pod: field(pod).to_owned(),
            name: field(op).to_owned(),
            start: number(start)?,
            end: number(end)?,
        });
    }
    Ok(())
}

/// Spans of `dir/trace` starting within `range`, as requests of at most [`BATCH`] spans.
pub(super) fn load(dir: &Path, day: &str, range: &Range<u64>) -> Result<Vec<ExportRequest>> {
    let mut rows = Vec::new();
    for path in minute_files(&dir.join("trace"), day, range)? {
        read(&path, &mut rows)?;
    }
    rows.retain(|r| range.contains(&r.start));
    rows.sort_by_key(|r| r.start);
    let service: HashMap<(&[u8], &[u8]), &str> = rows
        .iter()
        .map(|r| ((&r.trace_id[..], &r.span_id[..]), service_of_pod(&r.pod)))
        .collect();
    let mut calls_out: HashSet<(&[u8], &[u8])> = HashSet::new();
    for r in &rows {
        if let Some(parent) = &r.parent {
            let key = (&r.trace_id[..], &parent[..]);
            if service
                .get(&key)
                .is_some_and(|s| *s != service_of_pod(&r.pod))
            {
                calls_out.insert(key);
            }
        }
    }
    let kind = |r: &Row| {
        let own = service_of_pod(&r.pod);
        let parent_service = r
            .parent
            .as_ref()
            .and_then(|p| service.get(&(&r.trace_id[..], &p[..])));
        if r.parent.is_none() || parent_service.is_some_and(|s| *s != own) {
            SpanKind::Server
        } else if calls_out.contains(&(&r.trace_id[..], &r.span_id[..])) {
            SpanKind::Client
        } else {
            SpanKind::Internal
        }
    };
    let mut requests = Vec::new();
    for chunk in rows.chunks(BATCH) {
        let spans = chunk.iter().map(|r| {
            let span = Span {
                trace_id: r.trace_id.clone(),
                span_id: r.span_id.clone(),
                parent_span_id: r.parent.clone().unwrap_or_default(),
                name: r.name.clone(),
                kind: kind(r) as i32,
                start_time_unix_nano: r.start,
                end_time_unix_nano: r.end,
                ..Default::default()
            };
            (r.pod.as_str(), span)
        });
        let resource_spans = group_by_pod(spans)
            .into_iter()
            .map(|(pod, spans)| ResourceSpans {
                resource: Some(resource(pod)),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        requests.push(ExportRequest(Inner::Traces(ExportTraceServiceRequest {
            resource_spans,
        })));
    }
    Ok(requests)
}
