//! The REST API on the knowledge graph, the analysis and the store: graph, diff, entities,
//! changes, incidents, verdicts, SQL, trace search and trace trees (`routes.rs`, `sql.rs`,
//! `traces.rs`), described in OpenAPI 3.1
//! at `GET /api/v1/openapi.json` (`api/openapi.json`); `/healthz`, `/readyz`, and the web page
//! at `/`.
//!
//! JSON in and out; timestamps are RFC 3339 strings or integer unix nanoseconds; durations are
//! humantime strings (`5m`, `90s`) or integer nanoseconds. Errors are
//! `{"error":{"code":…,"message":…}}` with the matching HTTP status.

pub mod ask;
pub mod auth;
mod error;
pub mod gate;
pub mod mcp;
mod params;
mod routes;
pub mod slack;
mod sql;
mod traces;

pub use ask::{ask_router, AskState};
pub use error::{ApiError, Result};
pub use params::{parse_duration, parse_time, parse_time_str};
pub use routes::{router, ApiState};
pub use sql::{sql_router, Readiness, SqlState, ARROW_STREAM};
