//! Nezha log files → OTLP log requests. Each row's `Log` column is a docker json-file line whose
//! `log` field holds the application line; its severity is parsed from that line.

use std::ops::Range;
use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

use super::csv_files::{bad_row, columns, records};
use super::{group_by_pod, minute_files, resource, BATCH};
use crate::error::Result;
use crate::request::{ExportRequest, Inner};

/// `SeverityNumber` and canonical `SeverityText` of a level word (OpenTelemetry logs data model,
/// "Mapping of SeverityNumber"; `WARNING`, `SEVERE`, `CRITICAL` as syslog and java.util.logging
/// name them).
fn severity_of_word(word: &str) -> Option<(i32, &'static str)> {
    Some(match word.to_ascii_uppercase().as_str() {
        "TRACE" | "FINEST" | "FINER" => (1, "TRACE"),
        "DEBUG" | "FINE" => (5, "DEBUG"),
        "INFO" => (9, "INFO"),
        "WARN" | "WARNING" => (13, "WARN"),
        "ERROR" | "SEVERE" | "ERR" => (17, "ERROR"),
        "FATAL" | "CRITICAL" | "PANIC" => (21, "FATAL"),
        _ => return None,
    })
}

/// The severity of an application log line: a `severity` or `level` field when the line is a
/// JSON object, else the first level word among the line's first six tokens (as logback,
/// log4j and Python's logging put it). `None` when the line names none.
pub fn parse_severity(line: &str) -> Option<(i32, &'static str)> {
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(trimmed)
        {
            let field = ["severity", "level", "levelname", "log.level"]
                .iter()
                .find_map(|k| map.get(*k).and_then(|v| v.as_str()));
            if let Some(word) = field {
                return severity_of_word(word);
            }
        }
    }
    trimmed
        .split_whitespace()
        .take(6)
        .map(|t| t.trim_matches(|c: char| !c.is_ascii_alphabetic()))
        .find_map(severity_of_word)
}

/// Unix nanoseconds of an RFC 3339 timestamp, a missing offset read as UTC.
fn rfc3339_nanos(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    u64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// The application line inside a docker json-file line, or the line itself.
fn application_line(docker: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(docker) {
        Ok(serde_json::Value::Object(map)) => match map.get("log").and_then(|v| v.as_str()) {
            Some(log) => log.trim_end().to_owned(),
            None => docker.to_owned(),
        },
        _ => docker.to_owned(),
    }
}

/// Log records of `dir/log` within `range`, as requests of at most [`BATCH`] records.
pub(super) fn load(dir: &Path, day: &str, range: &Range<u64>) -> Result<Vec<ExportRequest>> {
    let mut rows: Vec<(String, LogRecord)> = Vec::new();
    for path in minute_files(&dir.join("log"), day, range)? {
        let (headers, records) = records(&path)?;
        let [stamp, time, pod, trace, span, log] = columns(
            &path,
            &headers,
            [
                "Timestamp",
                "TimeUnixNano",
                "PodName",
                "TraceID",
                "SpanID",
                "Log",
            ],
        )?;
        for (i, r) in records.iter().enumerate() {
            let field = |k: usize| r.get(k).unwrap_or("");
            // Some rows carry an overflowed (negative) TimeUnixNano; their RFC 3339 Timestamp
            // column still holds the time.
            let t = match field(time).parse::<u64>() {
                Ok(t) => t,
                Err(e) => rfc3339_nanos(field(stamp)).ok_or_else(|| {
                    bad_row(
                        &path,
                        i + 1,
                        format!(
                            "TimeUnixNano {:?}: {e}, and no valid Timestamp",
                            field(time)
                        ),
                    )
                })?,
            };
            if !range.contains(&t) {
                continue;
            }
            let line = application_line(field(log));
            // A line with no level word that names an exception is an error report (a Java
            // stack trace's first line, a Python traceback).
            let (severity_number, severity_text) = parse_severity(&line)
                .or_else(|| {
                    (line.contains("Exception") || line.contains("Traceback"))
                        .then_some((17, "ERROR"))
                })
                .unwrap_or((0, ""));
            // Ids that are not valid hex of the right length are left out, not invented.
            let id = |k: usize, len: usize| {
                hex::decode(field(k))
                    .ok()
                    .filter(|b| b.len() == len)
                    .unwrap_or_default()
            };
            rows.push((
                field(pod).to_owned(),
                LogRecord {
                    time_unix_nano: t,
                    observed_time_unix_nano: t,
                    severity_number,
                    severity_text: severity_text.to_owned(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(line)),
                    }),
                    trace_id: id(trace, 16),
                    span_id: id(span, 8),
                    ..Default::default()
                },
            ));
        }
    }
    rows.sort_by_key(|(_, r)| r.time_unix_nano);
    let mut requests = Vec::new();
    for chunk in rows.chunks(BATCH) {
        let records = chunk
            .iter()
            .map(|(pod, record)| (pod.as_str(), record.clone()));
        let resource_logs = group_by_pod(records)
            .into_iter()
            .map(|(pod, log_records)| ResourceLogs {
                resource: Some(resource(pod)),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        requests.push(ExportRequest(Inner::Logs(ExportLogsServiceRequest {
            resource_logs,
        })));
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_parsed_from_common_layouts() {
        let cases: [(&str, Option<i32>); 6] = [
            (
                "16:43:17.120 ERROR  c.s.ContactsServiceImpl#37 TraceID: x [findContactsById]",
                Some(17),
            ),
            (
                "16:43:25.207 INFO  t.s.TravelServiceImpl#457 TraceID: 8f2f",
                Some(9),
            ),
            (
                r#"{"timestamp": "2022", "severity": "warning", "message": "m"}"#,
                Some(13),
            ),
            ("2022-08-22 05:18:42 [WARN] slow query", Some(13)),
            ("plain text that names no level word early on, ERROR", None),
            ("", None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_severity(line).map(|s| s.0), expected, "{line}");
        }
    }

    #[test]
    fn timestamps_without_offset_are_utc() {
        assert_eq!(
            rfc3339_nanos("2023-01-29T09:20:29.295"),
            Some(1_674_984_029_295_000_000)
        );
        assert_eq!(
            rfc3339_nanos("2023-01-29T09:20:29.295Z"),
            Some(1_674_984_029_295_000_000)
        );
        assert_eq!(rfc3339_nanos("-1"), None);
    }

    #[test]
    fn docker_lines_are_unwrapped() {
        let docker = r#"{"log":"16:43:17.120 ERROR x\n","stream":"stdout","time":"2023"}"#;
        assert_eq!(application_line(docker), "16:43:17.120 ERROR x");
        assert_eq!(application_line("not json"), "not json");
    }
}
