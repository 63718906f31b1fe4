//! Trace search: `GET /api/v1/traces?service=S&from=T&to=T[&operation=O][&status=…]
//! [&min_duration=D][&sort=newest|slowest][&limit=N]`, the traces that went through a service
//! in a time range, as Jaeger's and Tempo's search list them: one line per trace with its root,
//! duration, span count and errors, each to open with `GET /api/v1/traces/{trace_id}`.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::params::{parse_duration, parse_time_str};

/// Traces returned when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 20;
/// Most traces one search returns.
pub const MAX_LIMIT: usize = 1000;
/// How far before and after the searched range a found trace's other spans are read: a
/// trace longer than an hour is summed from the spans within it.
pub const TRACE_SPREAD_NANOS: u64 = 3600 * 1_000_000_000;
/// Range searched when `from` is absent: the hour before `to`.
const DEFAULT_RANGE_NANOS: u64 = 3600 * 1_000_000_000;

/// Which spans of the service select a trace, by their OTLP status code
/// (`Status.code`: `unset`, `ok`, `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Any span.
    Any,
    /// A span with one status code.
    Is(&'static str),
}

/// How the traces found are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// The latest matching span first.
    Newest,
    /// The longest matching span first.
    Slowest,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSearch {
    /// `service.name` of the spans that select a trace.
    pub service: String,
    /// Span name (operation) they must have, if any.
    pub operation: Option<String>,
    /// Their start in `[from, to)`, unix nanoseconds.
    pub from: u64,
    /// End of the range, unix nanoseconds.
    pub to: u64,
    /// Their status.
    pub status: StatusFilter,
    /// Their least duration, nanoseconds.
    pub min_duration: Option<u64>,
    /// Order of the traces.
    pub sort: Sort,
    /// Most traces returned.
    pub limit: usize,
}

/// One trace found.
#[derive(Debug, Serialize)]
pub struct TraceSummary {
    /// 32 hex digits.
    pub trace_id: String,
    /// Service of the root span (the span without a parent; the earliest span when none is
    /// stored).
    pub root_service: String,
    /// Name of the root span.
    pub root_name: String,
    /// Start of its earliest span, unix nanoseconds.
    pub start_time_unix_nano: i64,
    /// From its earliest start to its latest end, nanoseconds.
    pub duration_nano: i64,
    /// Spans stored.
    pub span_count: u64,
    /// Spans whose status is `error`.
    pub error_count: u64,
}

impl TraceSearch {
    /// Reads a search from query parameters; `now` is the default `to`.
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] naming the parameter: `service` missing or empty, a
    /// time or duration that does not parse, `from` not before `to`, an unknown `status` or
    /// `sort`, a `limit` outside 1..=[`MAX_LIMIT`], or a parameter this search does not take.
    pub fn parse(query: &HashMap<String, String>, now: u64) -> Result<Self> {
        const KNOWN: [&str; 8] = [
            "service",
            "operation",
            "from",
            "to",
            "status",
            "min_duration",
            "sort",
            "limit",
        ];
        if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::invalid(
                unknown,
                format!(
                    "not a parameter of the trace search (it takes {})",
                    KNOWN.join(", ")
                ),
            ));
        }
        let service = match query.get("service").map(|s| s.trim()) {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => {
                return Err(ApiError::invalid(
                    "service",
                    "required: the service.name to search",
                ))
            }
        };
        let operation = match query.get("operation").map(|s| s.trim()) {
            Some("") => {
                return Err(ApiError::invalid(
                    "operation",
                    "empty: leave it out instead",
                ))
            }
            other => other.map(str::to_owned),
        };
        let to = match query.get("to") {
            Some(s) => parse_time_str("to", s)?,
            None => now,
        };
        let from = match query.get("from") {
            Some(s) => parse_time_str("from", s)?,
            None => to.saturating_sub(DEFAULT_RANGE_NANOS),
        };
        if from >= to {
            return Err(ApiError::invalid("to", "must be after from"));
        }
        let status = match query.get("status").map(String::as_str) {
            None | Some("any") => StatusFilter::Any,
            Some("error") => StatusFilter::Is("error"),
            Some("ok") => StatusFilter::Is("ok"),
            Some("unset") => StatusFilter::Is("unset"),
            Some(other) => {
                return Err(ApiError::invalid(
                    "status",
                    format!("{other:?}: use error, ok, unset or any"),
                ))
            }
        };
        let min_duration = query
            .get("min_duration")
            .map(|s| parse_duration("min_duration", s))
            .transpose()?;
        let sort = match query.get("sort").map(String::as_str) {
            None | Some("newest") => Sort::Newest,
            Some("slowest") => Sort::Slowest,
            Some(other) => {
                return Err(ApiError::invalid(
                    "sort",
                    format!("{other:?}: use newest or slowest"),
                ))
            }
        };
        let limit = match query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("{s:?}: a whole number from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
        };
        Ok(Self {
            service,
            operation,
            from,
            to,
            status,
            min_duration,
            sort,
            limit,
        })
    }

    /// The SQL that finds the traces: the matching spans grouped by trace, ordered and cut to
    /// `limit`, then the stored spans of those traces that started within
    /// [`TRACE_SPREAD_NANOS`] of the range summed up (the bound lets the store prune its
    /// segments by time instead of reading every span).
    pub fn sql(&self) -> String {
        let mut filters = vec![
            format!("service_name = {}", literal(&self.service)),
            format!("start_time_unix_nano >= {}", timestamp(self.from)),
            format!("start_time_unix_nano < {}", timestamp(self.to)),
        ];
        if let Some(op) = &self.operation {
            filters.push(format!("name = {}", literal(op)));
        }
        if let StatusFilter::Is(code) = self.status {
            filters.push(format!("status_code = '{code}'"));
        }
        if let Some(d) = self.min_duration {
            filters.push(format!("duration_nano >= {d}"));
        }
        let order = match self.sort {
            Sort::Newest => "max(start_time_unix_nano)",
            Sort::Slowest => "max(duration_nano)",
        };
        format!(
            "WITH found AS (SELECT trace_id, {order_key} AS sort_key FROM spans WHERE {filters} \
             GROUP BY trace_id ORDER BY sort_key DESC, trace_id LIMIT {limit}) \
             SELECT s.trace_id, \
             first_value(s.service_name ORDER BY (s.parent_span_id IS NULL OR s.parent_span_id = '') DESC, s.start_time_unix_nano) AS root_service, \
             first_value(s.name ORDER BY (s.parent_span_id IS NULL OR s.parent_span_id = '') DESC, s.start_time_unix_nano) AS root_name, \
             CAST(min(s.start_time_unix_nano) AS BIGINT) AS start_time_unix_nano, \
             CAST(max(s.end_time_unix_nano) AS BIGINT) - CAST(min(s.start_time_unix_nano) AS BIGINT) AS duration_nano, \
             count(*) AS span_count, \
             sum(CASE WHEN s.status_code = 'error' THEN 1 ELSE 0 END) AS error_count, \
             max(f.sort_key) AS sort_key \
             FROM spans s JOIN found f ON s.trace_id = f.trace_id \
             WHERE s.start_time_unix_nano >= {spread_from} AND s.start_time_unix_nano < {spread_to} \
             GROUP BY s.trace_id ORDER BY sort_key DESC, s.trace_id",
            order_key = order,
            filters = filters.join(" AND "),
            spread_from = timestamp(self.from.saturating_sub(TRACE_SPREAD_NANOS)),
            spread_to = timestamp(self.to.saturating_add(TRACE_SPREAD_NANOS)),
            limit = self.limit,
        )
    }
}

/// A timestamp literal of unix nanoseconds, as RFC 3339 with nanoseconds (which the store
/// reads to prune segments by time).
fn timestamp(unix_nano: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_nano);
    format!("'{}'", humantime::format_rfc3339_nanos(t))
}

/// A SQL string literal: quotes doubled (the standard escape; DataFusion's parser reads no
/// backslash escapes in plain literals).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Reads the search's rows (as `sql.rs` turns them into JSON objects) into summaries.
///
/// # Errors
/// [`ApiError::Internal`] when a row lacks a column the SQL selects.
pub fn summaries(rows: Vec<Value>) -> Result<Vec<TraceSummary>> {
    rows.into_iter()
        .map(|row| {
            let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let int = |k: &str| {
                row.get(k)
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ApiError::Internal(format!("trace search: no {k} in {row}")))
            };
            Ok(TraceSummary {
                trace_id: text("trace_id"),
                root_service: text("root_service"),
                root_name: text("root_name"),
                start_time_unix_nano: int("start_time_unix_nano")?,
                duration_nano: int("duration_nano")?,
                span_count: int("span_count")?.max(0) as u64,
                error_count: int("error_count")?.max(0) as u64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn parse(query: &str) -> Result<TraceSearch> {
        let map = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        TraceSearch::parse(&map, NOW)
    }

    /// A bad parameter gets an error that names it.
    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            ("", "service"),
            ("service=", "service"),
            ("service=a&operation=", "operation"),
            ("service=a&from=yesterday", "from"),
            ("service=a&to=soon", "to"),
            ("service=a&from=2000&to=1000", "to"),
            ("service=a&status=failed", "status"),
            ("service=a&min_duration=fast", "min_duration"),
            ("service=a&limit=0", "limit"),
            ("service=a&limit=1001", "limit"),
            ("service=a&limit=ten", "limit"),
            ("service=a&sort=oldest", "sort"),
            ("service=a&servce=b", "servce"),
        ];
        for (query, name) in cases {
            let e = parse(query).unwrap_err();
            assert!(
                matches!(&e, ApiError::InvalidParameter { name: n, .. } if n == name),
                "{query}: {e}"
            );
        }
    }

    #[test]
    fn defaults_and_values_are_read() {
        let s = parse("service=cart").unwrap();
        assert_eq!(
            (s.from, s.to, s.limit, s.status, s.sort, s.min_duration),
            (
                NOW - DEFAULT_RANGE_NANOS,
                NOW,
                DEFAULT_LIMIT,
                StatusFilter::Any,
                Sort::Newest,
                None
            )
        );
        let s = parse(
            "service=cart&operation=GET /cart&from=1000&to=2000&status=error&min_duration=250ms&sort=slowest&limit=5",
        )
        .unwrap();
        assert_eq!(s.operation.as_deref(), Some("GET /cart"));
        assert_eq!((s.from, s.to), (1000, 2000));
        assert_eq!(s.status, StatusFilter::Is("error"));
        assert_eq!(s.min_duration, Some(250_000_000));
        assert_eq!((s.sort, s.limit), (Sort::Slowest, 5));
    }

    #[test]
    fn names_are_quoted_as_sql_literals() {
        let s = parse("service=o'brien' OR 1=1 --&operation=it's").unwrap();
        let sql = s.sql();
        assert!(
            sql.contains("service_name = 'o''brien'' OR 1=1 --'"),
            "{sql}"
        );
        assert!(sql.contains("name = 'it''s'"), "{sql}");
    }
}
