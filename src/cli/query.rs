//! `loupe query "SQL"`: posts the SQL to a running server's `/api/v1/query`, asks for an Arrow
//! IPC stream, and prints the rows as a table (or the JSON answer with `--json`).

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use loupe_api::ARROW_STREAM;
use loupe_store::datafusion::arrow::ipc::reader::StreamReader;
use loupe_store::datafusion::arrow::util::pretty::pretty_format_batches;

/// Runs `sql` on the server at `server` (e.g. `http://127.0.0.1:8080`) and prints the answer.
///
/// # Errors
/// When the server cannot be reached or refuses the query; the message carries the server's.
pub async fn run(
    server: &str,
    sql: &str,
    json: bool,
    max_rows: Option<usize>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "sql": sql });
    if let Some(m) = max_rows {
        body["max_rows"] = m.into();
    }
    let accept = if json {
        "application/json"
    } else {
        ARROW_STREAM
    };
    let (headers, bytes) = post_api(server, "/api/v1/query", &body, accept).await?;
    let truncated = headers.get("loupe-truncated").is_some_and(|v| v == "true");
    if json {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(());
    }
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .context("the server's answer is not an Arrow stream")?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    println!("{}", pretty_format_batches(&batches)?);
    println!(
        "{rows} row(s){}",
        if truncated {
            " (cut at the row limit; use --max-rows or LIMIT)"
        } else {
            ""
        }
    );
    Ok(())
}

/// POSTs `body` as JSON to `path` on the server at `server`, asking for `accept`; returns the
/// answer's headers and body. The bearer token in `LOUPE_TOKEN`, if set, goes with it.
///
/// # Errors
/// When the server cannot be reached, or answers with an error (its `error.message`).
pub(crate) async fn post_api(
    server: &str,
    path: &str,
    body: &serde_json::Value,
    accept: &str,
) -> anyhow::Result<(hyper::HeaderMap, Bytes)> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut request = hyper::Request::post(&url)
        .header("content-type", "application/json")
        .header("accept", accept);
    if let Some(token) = token_from_env() {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(request)
        .await
        .with_context(|| format!("cannot reach loupe at {server} (is `loupe serve` running?)"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        anyhow::bail!("{status}: {message}");
    }
    Ok((headers, bytes))
}

/// The bearer token the client commands send (`LOUPE_TOKEN`), if set and not empty.
pub(crate) fn token_from_env() -> Option<String> {
    std::env::var("LOUPE_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}
