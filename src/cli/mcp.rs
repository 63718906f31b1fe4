//! `loupe mcp --server URL`: loupe's MCP tools over stdio, for agents that spawn a process;
//! each tool calls a running server's REST API over HTTP (the server's own `/mcp` calls it in
//! process instead).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use loupe_api::mcp::{answer, Backend, LoupeMcp};
use loupe_model::time::SystemClock;
use rmcp::ServiceExt;

/// A backend that calls a running server's API over HTTP.
struct HttpBackend {
    server: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Backend for HttpBackend {
    fn call(
        &self,
        method: &'static str,
        path_and_query: String,
        body: Option<serde_json::Value>,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + '_>> {
        Box::pin(async move {
            let url = format!("{}{path_and_query}", self.server);
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let mut request = hyper::Request::builder()
                .method(method)
                .uri(&url)
                .header("content-type", "application/json");
            if let Some(token) = crate::cli::query::token_from_env() {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let request = request
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| format!("{url}: {e}"))?;
            let response = self.client.request(request).await.map_err(|e| {
                format!(
                    "cannot reach loupe at {} (is `loupe serve` running?): {e}",
                    self.server
                )
            })?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the answer: {e}"))?
                .to_bytes();
            answer(status, &bytes)
        })
    }
}

/// Serves the MCP tools on stdin/stdout until the client closes them.
///
/// # Errors
/// When the MCP session cannot start or ends in error.
pub async fn serve_stdio(server: &str, allow_writes: bool) -> anyhow::Result<()> {
    let backend = HttpBackend {
        server: server.trim_end_matches('/').to_owned(),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let tools = LoupeMcp::new(Arc::new(backend), Arc::new(SystemClock), allow_writes);
    let running = tools
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("starting the MCP session on stdio: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| anyhow::anyhow!("the MCP session ended in error: {e}"))?;
    Ok(())
}
