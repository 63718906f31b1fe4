//! The investigation web page: one static HTML page, embedded in the binary, that lists the
//! services of the last window, draws nothing it cannot fetch, and runs an analysis on a chosen
//! window through the REST API.

use axum::response::Html;
use axum::routing::get;
use axum::Router;

/// The page, compiled in.
const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Serves the page at `/`.
pub fn router() -> Router {
    Router::new().route("/", get(|| async { Html(INDEX_HTML) }))
}
