//! The REST API on the knowledge graph and the analysis: `GET /api/v1/services`,
//! `GET /api/v1/graph`, `POST /api/v1/analyze`, `GET /healthz`, and the web page at `/`.
//!
//! JSON in and out; timestamps are RFC 3339 strings or integer unix nanoseconds; durations are
//! humantime strings (`5m`, `90s`) or integer nanoseconds. Errors are
//! `{"error":{"code":…,"message":…}}` with the matching HTTP status.

mod error;
mod params;
mod routes;
mod sql;

pub use error::{ApiError, Result};
pub use params::{parse_duration, parse_time, parse_time_str};
pub use routes::{router, ApiState};
pub use sql::{sql_router, Readiness, SqlState, ARROW_STREAM};
