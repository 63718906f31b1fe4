//! `loupe.toml`: the server's settings in a file, every key also a flag and an environment
//! variable. Precedence: flag, then environment variable, then file, then default.
//!
//! ```toml
//! data_dir = "./loupe-data"
//! otlp_grpc_addr = "127.0.0.1:4317"
//! otlp_http_addr = "127.0.0.1:4318"
//! http_addr = "127.0.0.1:8080"
//! slo_file = "slo.json"
//!
//! [store]
//! wal_sync = "batch"          # or "none"
//! flush_interval = "5m"
//! flush_bytes = 268435456
//! retention_age = "7d"        # or "off"
//! retention_bytes = 0         # 0: no size limit
//! compact_files = 8
//!
//! [query]
//! max_rows = 10000
//! timeout = "30s"
//! max_concurrent = 2          # queries and analyses at once (default: the CPUs)
//!
//! [mcp]
//! allow_writes = false        # let MCP agents record verdicts
//! allowed_hosts = []          # Host names /mcp answers besides loopback and the listen address
//!
//! [ingest]                    # admission control in front of the receivers' decoders
//! max_inflight_bytes = 268435456  # request bytes held at once (256 MiB)
//! max_waiters = 64            # requests that may wait for room; more are refused at once
//! max_wait = "250ms"          # longest wait for room before a retryable refusal
//! memory_limit_bytes = 0      # resident memory that stops ingest; 0: 80 % of RAM or cgroup
//!
//! [changes]
//! github_webhook_secret = "…" # GitHub deliveries signed with it need no token
//!
//! [server]                    # each listener's connections
//! max_connections = 1024      # open connections per listener
//! max_concurrent_streams = 100  # HTTP/2 streams (gRPC calls) per connection
//! read_header_timeout = "30s" # an HTTP/1 client's time to send its headers
//! body_timeout = "30s"        # a request body's time to arrive (408 after)
//!
//! [tls]                       # on all three listeners; reloaded when the files change
//! cert_file = "server.pem"
//! key_file = "server.key"
//! client_ca_file = "ca.pem"   # mutual TLS on the OTLP listeners
//!
//! [auth]
//! tokens_file = "tokens.txt"  # bearer tokens with scopes (`loupe token create`)
//! insecure_no_auth = false    # listen beyond loopback without tokens
//!
//! [slack]                     # the /loupe slash command; off without a signing secret
//! signing_secret = "…"        # better in LOUPE_SLACK_SIGNING_SECRET
//! time_zone = "Europe/Berlin" # clock times in questions; default UTC
//! public_url = "https://loupe.example.com"   # links in answers; default from the request
//! response_url_hosts = []     # hosts besides *.slack.com that replies may go to
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use loupe_store::{QueryLimits, StoreConfig, SyncPolicy};
use serde::Deserialize;

/// The file's contents; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address.
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address.
    pub otlp_http_addr: Option<SocketAddr>,
    /// REST API listen address.
    pub http_addr: Option<SocketAddr>,
    /// SLO file (JSON).
    pub slo_file: Option<PathBuf>,
    /// `[store]`.
    #[serde(default)]
    pub store: StoreSection,
    /// `[query]`.
    #[serde(default)]
    pub query: QuerySection,
    /// `[mcp]`.
    #[serde(default)]
    pub mcp: McpSection,
    /// `[slack]`.
    #[serde(default)]
    pub slack: SlackSection,
    /// `[auth]`.
    #[serde(default)]
    pub auth: AuthSection,
    /// `[tls]`.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[ingest]`.
    #[serde(default)]
    pub ingest: IngestSection,
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
    /// `[changes]`.
    #[serde(default)]
    pub changes: ChangesSection,
    /// `[[endpoints]]`: the services behind load balancers and API gateways.
    #[serde(default)]
    pub endpoints: Vec<loupe_analysis::EndpointService>,
}

/// `[changes]`: change intake.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesSection {
    /// The secret GitHub signs webhook deliveries with.
    pub github_webhook_secret: Option<String>,
}

/// The GitHub webhook secret: `flag` over the file.
///
/// # Errors
/// An empty secret.
pub fn github_secret(flag: Option<String>, file: Option<String>) -> anyhow::Result<Option<String>> {
    match flag.or(file) {
        Some(s) if s.trim().is_empty() => anyhow::bail!(
            "changes.github_webhook_secret is empty: give the webhook's secret or leave it out"
        ),
        other => Ok(other),
    }
}

/// `[ingest]`: admission control.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// Request bytes held at once.
    pub max_inflight_bytes: Option<usize>,
    /// Requests that may wait for room.
    pub max_waiters: Option<usize>,
    /// Humantime duration.
    pub max_wait: Option<String>,
    /// Bytes of resident memory; 0 for the default.
    pub memory_limit_bytes: Option<u64>,
}

/// `[server]`: each listener's connection limits (the Collector's key names).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Open connections per listener.
    pub max_connections: Option<usize>,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: Option<u32>,
    /// Humantime duration.
    pub read_header_timeout: Option<String>,
    /// Humantime duration.
    pub body_timeout: Option<String>,
}

/// The admission settings: `flag` (`--ingest-max-inflight-bytes`) over the file over the
/// defaults.
///
/// # Errors
/// A zero budget, or a duration that does not parse.
pub fn admission(
    file: &IngestSection,
    flag: Option<usize>,
) -> anyhow::Result<loupe_ingest::AdmissionConfig> {
    let mut c = loupe_ingest::AdmissionConfig::default();
    if let Some(v) = flag.or(file.max_inflight_bytes) {
        anyhow::ensure!(
            v >= 1 << 16,
            "ingest.max_inflight_bytes ({v}) must be at least 65536: one request must fit"
        );
        c.max_inflight_bytes = v;
    }
    if let Some(v) = file.max_waiters {
        c.max_waiters = v;
    }
    if let Some(v) = &file.max_wait {
        c.max_wait = duration("ingest.max_wait", v)?;
    }
    c.memory_limit_bytes = file.memory_limit_bytes.filter(|v| *v > 0);
    Ok(c)
}

/// Each listener's limits from the file, over the defaults.
///
/// # Errors
/// A zero limit or a duration that does not parse.
pub fn listen(file: &ServerSection) -> anyhow::Result<crate::listen::ListenConfig> {
    let mut c = crate::listen::ListenConfig::default();
    if let Some(v) = file.max_connections {
        anyhow::ensure!(v > 0, "server.max_connections must be at least 1");
        c.max_connections = v;
    }
    if let Some(v) = file.max_concurrent_streams {
        anyhow::ensure!(v > 0, "server.max_concurrent_streams must be at least 1");
        c.max_concurrent_streams = v;
    }
    if let Some(v) = &file.read_header_timeout {
        c.read_header_timeout = duration("server.read_header_timeout", v)?;
    }
    if let Some(v) = &file.body_timeout {
        c.body_timeout = duration("server.body_timeout", v)?;
    }
    Ok(c)
}

/// `[tls]`: the OpenTelemetry Collector's key names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate chain, PEM.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM.
    pub key_file: Option<PathBuf>,
    /// CAs client certificates must chain to (mutual TLS on the OTLP listeners).
    pub client_ca_file: Option<PathBuf>,
}

/// The listeners' TLS files, or `None` for plain TCP.
///
/// # Errors
/// A key without a certificate or the reverse, or a client CA without both.
pub fn tls_files(file: TlsSection) -> anyhow::Result<Option<crate::tls::TlsFiles>> {
    match (file.cert_file, file.key_file) {
        (Some(cert_file), Some(key_file)) => Ok(Some(crate::tls::TlsFiles {
            cert_file,
            key_file,
            client_ca_file: file.client_ca_file,
        })),
        (None, None) if file.client_ca_file.is_none() => Ok(None),
        (None, None) => anyhow::bail!("tls.client_ca_file needs tls.cert_file and tls.key_file"),
        (Some(_), None) => anyhow::bail!("tls.cert_file needs tls.key_file (its private key)"),
        (None, Some(_)) => anyhow::bail!("tls.key_file needs tls.cert_file (its certificate)"),
    }
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// The tokens file (`loupe token create`).
    pub tokens_file: Option<PathBuf>,
    /// Listen beyond loopback without tokens.
    pub insecure_no_auth: Option<bool>,
}

/// `[slack]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSection {
    /// The Slack app's signing secret; the Slack routes answer 404 without one.
    pub signing_secret: Option<String>,
    /// IANA zone for clock times in questions (default UTC).
    pub time_zone: Option<String>,
    /// The web UI's address as Slack users reach it.
    pub public_url: Option<String>,
    /// Hosts besides `*.slack.com` that `response_url` may name.
    #[serde(default)]
    pub response_url_hosts: Vec<String>,
}

/// The Slack routes' settings, or `None` without a signing secret.
///
/// # Errors
/// An empty secret or an unknown time zone.
pub fn slack_config(
    secret: Option<String>,
    file: SlackSection,
) -> anyhow::Result<Option<loupe_api::slack::SlackConfig>> {
    let Some(secret) = secret.or(file.signing_secret) else {
        return Ok(None);
    };
    anyhow::ensure!(
        !secret.trim().is_empty(),
        "slack.signing_secret is empty: give the app's signing secret or leave it out"
    );
    let mut config = loupe_api::slack::SlackConfig::new(secret.trim());
    if let Some(zone) = file.time_zone {
        config.time_zone = zone.parse().map_err(|_| {
            anyhow::anyhow!(
                "slack.time_zone {zone:?} is not an IANA time zone such as Europe/Berlin"
            )
        })?;
    }
    config.public_url = file.public_url;
    config.response_url_hosts = file.response_url_hosts;
    Ok(Some(config))
}

/// `[mcp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSection {
    /// Whether MCP agents may record verdicts (`record_verdict`).
    pub allow_writes: Option<bool>,
    /// Host names `/mcp` may be reached by besides loopback and the listen address.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `batch` or `none`.
    pub wal_sync: Option<SyncPolicy>,
    /// Humantime duration.
    pub flush_interval: Option<String>,
    /// Bytes of hot Arrow memory that trigger a flush.
    pub flush_bytes: Option<usize>,
    /// Humantime duration, or `off`.
    pub retention_age: Option<String>,
    /// Bytes; 0 for no limit.
    pub retention_bytes: Option<u64>,
    /// Files of one table and hour that trigger a compaction.
    pub compact_files: Option<usize>,
}

/// `[query]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySection {
    /// Rows returned at most.
    pub max_rows: Option<usize>,
    /// Humantime duration.
    pub timeout: Option<String>,
    /// SQL queries, analyses, asks, diffs and trace searches running at once.
    pub max_concurrent: Option<usize>,
}

/// The default config file, read when present and no other is named.
pub const DEFAULT_FILE: &str = "loupe.toml";

/// Reads the config file: `path` when given (it must exist), else `./loupe.toml` when present.
///
/// # Errors
/// When the file cannot be read or has an unknown key or a bad value (the message names the
/// line and the key).
pub fn read(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let path = match path {
        Some(p) => p.to_owned(),
        None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(FileConfig::default()),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A humantime duration (`90s`, `5m`, `7d`).
///
/// # Errors
/// When it does not parse; the message names `key`.
pub fn duration(key: &str, value: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(value)
        .map_err(|e| anyhow::anyhow!("{key}: {value:?} is not a duration ({e})"))
}

/// A retention age: a duration, or `off` for none.
///
/// # Errors
/// As [`duration`].
pub fn retention_age(value: &str) -> anyhow::Result<Option<Duration>> {
    match value {
        "off" | "none" => Ok(None),
        v => duration("retention_age", v).map(Some),
    }
}

/// The store and query settings of the file, over the defaults, for `dir`.
///
/// # Errors
/// When a duration does not parse.
pub fn store_config(dir: PathBuf, file: &StoreSection) -> anyhow::Result<StoreConfig> {
    let mut c = StoreConfig::new(dir);
    if let Some(s) = file.wal_sync {
        c.wal_sync = s;
    }
    if let Some(v) = &file.flush_interval {
        c.flush_interval = duration("store.flush_interval", v)?;
    }
    if let Some(v) = file.flush_bytes {
        c.flush_bytes = v;
    }
    if let Some(v) = &file.retention_age {
        c.retention_age = retention_age(v)?;
    }
    if let Some(v) = file.retention_bytes {
        c.retention_bytes = (v > 0).then_some(v);
    }
    if let Some(v) = file.compact_files {
        anyhow::ensure!(v >= 2, "store.compact_files must be at least 2");
        c.compact_files = v;
    }
    Ok(c)
}

/// The query limits of the file, over the defaults.
///
/// # Errors
/// When the timeout does not parse or a limit is zero.
pub fn query_limits(file: &QuerySection) -> anyhow::Result<QueryLimits> {
    let mut l = QueryLimits::default();
    if let Some(v) = file.max_rows {
        anyhow::ensure!(v > 0, "query.max_rows must be at least 1");
        l.max_rows = v;
    }
    if let Some(v) = &file.timeout {
        l.timeout = duration("query.timeout", v)?;
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_unknown_keys_are_refused_with_their_line() {
        let text = r#"
data_dir = "/var/lib/loupe"
http_addr = "0.0.0.0:8080"
[store]
wal_sync = "none"
flush_interval = "1m"
retention_age = "off"
retention_bytes = 1000
[query]
max_rows = 5
timeout = "2s"
[[endpoints]]
address = "internal-orders-1190273811.us-east-1.elb.amazonaws.com"
service = "orders"
[[endpoints]]
address = "k3x9v2m7qd.execute-api.us-east-1.amazonaws.com"
service = "payments"
"#;
        let file: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(file.endpoints.len(), 2);
        assert_eq!(
            (
                file.endpoints[1].address.as_str(),
                file.endpoints[1].service.as_str()
            ),
            ("k3x9v2m7qd.execute-api.us-east-1.amazonaws.com", "payments")
        );
        let store = store_config(file.data_dir.clone().unwrap(), &file.store).unwrap();
        assert_eq!(store.wal_sync, SyncPolicy::None);
        assert_eq!(store.flush_interval, Duration::from_secs(60));
        assert_eq!(store.retention_age, None);
        assert_eq!(store.retention_bytes, Some(1000));
        let limits = query_limits(&file.query).unwrap();
        assert_eq!(
            (limits.max_rows, limits.timeout),
            (5, Duration::from_secs(2))
        );

        let bad = "data_dir = \"x\"\n[store]\nretention = \"7d\"\n";
        let err = toml::from_str::<FileConfig>(bad).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("retention"), "{err}");
        let bad = "[[endpoints]]\naddress = \"lb\"\nservise = \"orders\"\n";
        let err = toml::from_str::<FileConfig>(bad).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("servise"), "{err}");
        let bad_duration = StoreSection {
            flush_interval: Some("soon".into()),
            ..Default::default()
        };
        let err = store_config("x".into(), &bad_duration)
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.flush_interval"), "{err}");
    }
}

/// The rules and model to rank with.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// A TOML file of correlation rules added to the shipped ones (a rule of the same name
    /// replaces the shipped one); a bad file stops loupe with its line and reason.
    #[arg(long, env = "LOUPE_RULES")]
    pub rules: Option<PathBuf>,
    /// Ranker weights (safetensors, as `loupe train` writes them) instead of the shipped ones.
    #[arg(long, env = "LOUPE_MODEL")]
    pub model: Option<PathBuf>,
}

impl ModelArgs {
    /// The default analysis settings with these rules and weights.
    ///
    /// # Errors
    /// When the rules file or the weights cannot be used (with the file, line and reason).
    pub fn analysis_config(&self) -> anyhow::Result<loupe_analysis::AnalysisConfig> {
        let rules = match &self.rules {
            Some(path) => loupe_analysis::rules::Rules::load(path)?,
            None => loupe_analysis::rules::Rules::defaults(),
        };
        let ranker = match &self.model {
            Some(path) => loupe_analysis::ranker::Ranker::load(path, rules)?,
            None => loupe_analysis::ranker::Ranker {
                rules,
                ..(*loupe_analysis::ranker::Ranker::shipped()).clone()
            },
        };
        Ok(loupe_analysis::AnalysisConfig {
            ranker: std::sync::Arc::new(ranker),
            ..Default::default()
        })
    }
}
