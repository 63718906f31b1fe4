//! `loupe serve`: its settings ([`ServeArgs`], merged with the config file and the
//! environment into a [`ServeConfig`]) and the command, which serves until ctrl-c.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::server::{self, ServeConfig};

/// Server settings. Each is also a key of the config file (`--config`, default `./loupe.toml`
/// when present) and an environment variable; a flag wins over the variable, the variable over
/// the file.
#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    /// Config file (TOML; see README, "Configuration").
    #[arg(long, env = "LOUPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// OTLP/gRPC listen address (port 0 picks a free port) [default: 127.0.0.1:4317].
    #[arg(long, env = "LOUPE_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "LOUPE_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<SocketAddr>,
    /// REST API and web page listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "LOUPE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Data directory: write-ahead log, Parquet segments, verdicts [default: ./loupe-data].
    #[arg(long, env = "LOUPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Service-level objectives for automatic incidents, a JSON file:
    /// `{"default_slo": {"availability": 0.999}, "slos": {"checkout": {"availability": 0.995,
    /// "latency_threshold_seconds": 0.5, "latency_target": 0.99}}}`.
    #[arg(long, env = "LOUPE_SLO_FILE")]
    pub slo_file: Option<PathBuf>,
    /// Let MCP agents record verdicts (`/mcp`'s `record_verdict`; config `mcp.allow_writes`).
    #[arg(long, env = "LOUPE_MCP_ALLOW_WRITES")]
    pub mcp_allow_writes: bool,
    /// A host name (with or without `:port`) that MCP clients may reach `/mcp` by, besides
    /// loopback and the listen address, such as the name of a reverse proxy in front of
    /// loupe; repeatable (config `mcp.allowed_hosts`). Other `Host` headers are refused,
    /// against DNS rebinding.
    #[arg(
        long = "mcp-allowed-host",
        env = "LOUPE_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub mcp_allowed_hosts: Vec<String>,
    /// Tokens file: one `sha256:<digest> <name> <scopes>` line per token (`loupe token
    /// create`); every listener then requires a bearer token (config `auth.tokens_file`).
    #[arg(long, env = "LOUPE_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,
    /// Listen beyond loopback without tokens (refused otherwise; config
    /// `auth.insecure_no_auth`).
    #[arg(long, env = "LOUPE_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// TLS certificate chain (PEM) for all three listeners (config `tls.cert_file`).
    #[arg(long, env = "LOUPE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM) (config `tls.key_file`).
    #[arg(long, env = "LOUPE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that OTLP clients' certificates must chain to: mutual TLS on the
    /// receivers (config `tls.client_ca_file`).
    #[arg(long, env = "LOUPE_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// The Slack app's signing secret: turns on `/slack/commands` and `/slack/interactions`
    /// (config `slack.signing_secret`; prefer the variable to the flag, which `ps` shows).
    #[arg(long, env = "LOUPE_SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<String>,
    #[command(flatten)]
    pub model: crate::config::ModelArgs,
    /// When the write-ahead log reaches the disk: `batch` (fsync before each acknowledgement)
    /// or `none` (the OS decides) [default: batch].
    #[arg(long, env = "LOUPE_WAL_SYNC")]
    pub wal_sync: Option<loupe_store::SyncPolicy>,
    /// Flush hot data to Parquet at least this often [default: 5m].
    #[arg(long, env = "LOUPE_FLUSH_INTERVAL")]
    pub flush_interval: Option<String>,
    /// Delete segments older than this, or `off` [default: 7d].
    #[arg(long, env = "LOUPE_RETENTION_AGE")]
    pub retention_age: Option<String>,
    /// Delete the oldest segments while they take more than this many bytes (0: no limit).
    #[arg(long, env = "LOUPE_RETENTION_BYTES")]
    pub retention_bytes: Option<u64>,
    /// Rows one SQL query returns at most [default: 10000].
    #[arg(long, env = "LOUPE_QUERY_MAX_ROWS")]
    pub query_max_rows: Option<usize>,
    /// Time one SQL query may run before it is cancelled [default: 30s].
    #[arg(long, env = "LOUPE_QUERY_TIMEOUT")]
    pub query_timeout: Option<String>,
    /// SQL queries, analyses, asks, diffs and trace searches running at once; up to 64 more
    /// wait 30 s for a turn, the rest get 503 with Retry-After [default: the CPUs, at least 2].
    #[arg(long, env = "LOUPE_QUERY_MAX_CONCURRENT")]
    pub query_max_concurrent: Option<usize>,
    /// Request bytes (wire plus decompressed) the receivers hold at once; past it requests wait
    /// up to 250 ms, then get gRPC UNAVAILABLE with RetryInfo / HTTP 503 with Retry-After
    /// [default: 268435456 (256 MiB)].
    #[arg(long, env = "LOUPE_INGEST_MAX_INFLIGHT_BYTES")]
    pub ingest_max_inflight_bytes: Option<usize>,
    /// The secret of a GitHub webhook posting deployment_status events to /api/v1/changes:
    /// deliveries signed with it (X-Hub-Signature-256) need no bearer token.
    #[arg(long, env = "LOUPE_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
}

impl ServeArgs {
    /// The server's configuration: these flags over the environment over the config file.
    ///
    /// # Errors
    /// An unreadable or invalid config file, SLO file, model or tokens file.
    pub fn config(&self) -> anyhow::Result<ServeConfig> {
        // Long: a flat table, each setting's flag or variable over its key in the file.
        let mut file = crate::config::read(self.config.as_deref())?;
        // Flags and variables over the file.
        let s = &mut file.store;
        s.wal_sync = self.wal_sync.or(s.wal_sync);
        s.flush_interval = self.flush_interval.clone().or(s.flush_interval.take());
        s.retention_age = self.retention_age.clone().or(s.retention_age.take());
        s.retention_bytes = self.retention_bytes.or(s.retention_bytes);
        let q = &mut file.query;
        q.max_rows = self.query_max_rows.or(q.max_rows);
        q.timeout = self.query_timeout.clone().or(q.timeout.take());
        q.max_concurrent = self.query_max_concurrent.or(q.max_concurrent);
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir.take())
            .unwrap_or_else(|| PathBuf::from("./loupe-data"));
        let defaults = ServeConfig::default();
        let slo_file = self.slo_file.clone().or(file.slo_file.take());
        let detect = match &slo_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not an SLO file", path.display()))?
            }
            None => Default::default(),
        };
        Ok(ServeConfig {
            otlp_grpc_addr: self
                .otlp_grpc_addr
                .or(file.otlp_grpc_addr)
                .unwrap_or(defaults.otlp_grpc_addr),
            otlp_http_addr: self
                .otlp_http_addr
                .or(file.otlp_http_addr)
                .unwrap_or(defaults.otlp_http_addr),
            http_addr: self
                .http_addr
                .or(file.http_addr)
                .unwrap_or(defaults.http_addr),
            store: Some(crate::config::store_config(data_dir, &file.store)?),
            query_limits: crate::config::query_limits(&file.query)?,
            gate: loupe_api::gate::GateConfig {
                max_concurrent: match file.query.max_concurrent {
                    Some(0) => anyhow::bail!("query.max_concurrent must be at least 1"),
                    Some(n) => n,
                    None => loupe_api::gate::GateConfig::default().max_concurrent,
                },
                ..Default::default()
            },
            detect,
            analysis: loupe_analysis::AnalysisConfig {
                endpoints: std::mem::take(&mut file.endpoints),
                ..self.model.analysis_config()?
            },
            mcp_allow_writes: self.mcp_allow_writes || file.mcp.allow_writes.unwrap_or(false),
            mcp_allowed_hosts: match self.mcp_allowed_hosts.is_empty() {
                true => std::mem::take(&mut file.mcp.allowed_hosts),
                false => self.mcp_allowed_hosts.clone(),
            },
            tokens: match self
                .auth_tokens_file
                .clone()
                .or(file.auth.tokens_file.take())
            {
                Some(path) => Some(std::sync::Arc::new(
                    loupe_api::auth::Tokens::open(&path)
                        .with_context(|| "reading the tokens file (--auth-tokens-file)")?,
                )),
                None => None,
            },
            tls: {
                let t = &mut file.tls;
                t.cert_file = self.tls_cert_file.clone().or(t.cert_file.take());
                t.key_file = self.tls_key_file.clone().or(t.key_file.take());
                t.client_ca_file = self.tls_client_ca_file.clone().or(t.client_ca_file.take());
                crate::config::tls_files(std::mem::take(t))?
            },
            insecure_no_auth: self.insecure_no_auth || file.auth.insecure_no_auth.unwrap_or(false),
            slack: crate::config::slack_config(
                self.slack_signing_secret.clone(),
                std::mem::take(&mut file.slack),
            )?,
            admission: crate::config::admission(&file.ingest, self.ingest_max_inflight_bytes)?,
            listen: crate::config::listen(&file.server)?,
            github_webhook_secret: crate::config::github_secret(
                self.github_webhook_secret.clone(),
                file.changes.github_webhook_secret.take(),
            )?,
            ..defaults
        })
    }
}

/// `loupe serve`: starts the server and serves until ctrl-c, then shuts it down gracefully.
///
/// # Errors
/// The configuration invalid, or the server failing to start.
pub async fn execute(args: ServeArgs) -> anyhow::Result<()> {
    let server = server::start(args.config()?).await?;
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
