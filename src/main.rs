//! The `loupe` command line: `serve`, `demo`, `simulate`, `replay`, `eval`, `query`, `bench`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use loupe::replay::{self, ReplaySelection};
use loupe::server::{self, ServeConfig};
use loupe_ingest::nezha::NezhaDataset;

/// mimalloc: its per-page free lists keep a graph's many small buckets near each other in
/// memory, which is most of what a window query waits on (see README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// loupe: a temporal knowledge-graph observability engine. OTLP in, ranked root causes out.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve OTLP (gRPC and HTTP) and the REST API until interrupted.
    Serve(ServeArgs),
    /// Serve (data in a temporary directory, removed at the end) with the simulated
    /// OpenTelemetry Demo streaming live into it, a fault every few minutes, and print the
    /// incidents loupe opens; or, with --replay nezha, replay a real labelled fault case.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Replay a real dataset instead of the live simulation (the vendored Nezha case).
        #[arg(long, value_enum)]
        replay: Option<DemoDataset>,
        /// Seed of the simulation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Time to the first fault.
        #[arg(long, default_value = "90s")]
        first_fault: humantime::Duration,
        /// Time between the starts of two faults.
        #[arg(long, default_value = "5m")]
        fault_every: humantime::Duration,
        /// How long each fault lasts.
        #[arg(long, default_value = "3m")]
        fault_duration: humantime::Duration,
        /// Stop after this long (default: at ctrl-c).
        #[arg(long)]
        duration: Option<humantime::Duration>,
    },
    /// Simulate a microservice system with a fault library: stream its telemetry live to an
    /// OTLP endpoint, or write a labelled case set for `loupe eval sim`.
    Simulate {
        #[command(subcommand)]
        mode: SimulateMode,
    },
    /// Send a dataset to an OTLP/gRPC endpoint with its original timestamps (a simulated case
    /// set's change webhooks go to --api).
    Replay {
        /// Dataset format.
        format: DatasetFormat,
        /// Dataset directory.
        dir: PathBuf,
        /// OTLP/gRPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:4317")]
        endpoint: String,
        /// loupe's REST API, where a simulated case set's change webhooks go (sim only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// Comma-separated case ids to replay (default: every case).
        #[arg(long, value_delimiter = ',')]
        cases: Vec<String>,
        /// Start of a time range to replay instead of cases (RFC 3339 or unix nanoseconds; for
        /// a simulated case set, within the selected cases).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// End of that time range.
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Measure a component on synthetic data (build with --release for meaningful numbers).
    Bench {
        /// What to measure.
        target: BenchTarget,
        /// Services of the synthetic system [default: 1000 for graph, 50 for store].
        #[arg(long)]
        services: Option<usize>,
        /// Spans to store for the query measures (store).
        #[arg(long, default_value_t = 5_000_000)]
        spans: usize,
        /// Directory for the store's files (store; emptied first, removed after).
        #[arg(long, default_value = "./loupe-bench-data")]
        dir: PathBuf,
        /// Caller → callee edges.
        #[arg(long, default_value_t = 20_000)]
        edges: usize,
        /// Minutes of 10-second buckets to fill, every edge in every bucket.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run SQL over a running server's stored telemetry and print the rows as a table
    /// (tables: spans, logs, metric_points, changes, service_edges; see README, "SQL").
    Query {
        /// One read-only SQL statement.
        sql: String,
        /// The server's REST API.
        #[arg(long, env = "LOUPE_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        /// Rows to return at most (the server's limit caps it).
        #[arg(long)]
        max_rows: Option<usize>,
    },
    /// Ask a running server a question in plain English ("why is checkout slow since 14:00?",
    /// "what changed in the last hour?", "help") and print its answer.
    Ask {
        /// The question.
        question: String,
        /// The server's REST API.
        #[arg(long, env = "LOUPE_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Your IANA time zone, for the times you type and read (default: UTC).
        #[arg(long, env = "LOUPE_TIME_ZONE")]
        time_zone: Option<String>,
        /// Who asks (the author of a verdict) [default: $USER].
        #[arg(long)]
        by: Option<String>,
        /// Read the question as if asked at this time (RFC 3339 or unix nanoseconds; for
        /// replayed data) [default: the server's now].
        #[arg(long)]
        now: Option<String>,
        /// Print the JSON answer instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve loupe's MCP tools over stdio for an agent that spawns a process (Claude Code,
    /// Cursor…), each tool a call to a running server's API.
    Mcp {
        /// The server's REST API.
        #[arg(long, env = "LOUPE_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Let the agent record verdicts (`record_verdict`).
        #[arg(long)]
        allow_writes: bool,
    },
    /// Bearer tokens for a server beyond loopback (`--auth-tokens-file`).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Score the root-cause ranking on a labelled dataset (AC@1, AC@3, Avg@5).
    Eval {
        /// Dataset format.
        format: DatasetFormat,
        /// Dataset directory with ground_truth.json.
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Comma-separated case ids (default: every case usable for RCA).
        #[arg(long, value_delimiter = ',')]
        cases: Vec<String>,
        /// Also run the published baselines BARO and NSigma (RCAEval) on the same cases' pod
        /// metrics, and print them beside loupe (nezha only; needs Python with `pip install
        /// rcaeval networkx causal-learn requests tqdm`).
        #[arg(long)]
        baselines: bool,
        /// The Python interpreter for --baselines.
        #[arg(long, env = "LOUPE_PYTHON", default_value = "python3")]
        python: PathBuf,
        /// The telemetry signals fed to the engine (change events are always fed).
        #[arg(long, value_enum, default_value = "all")]
        signals: loupe::ablation::SignalSet,
        /// Also score the cases with traces only, metrics only and logs only, and print the
        /// ablation table beside this run's figures.
        #[arg(long)]
        ablation: bool,
        #[command(flatten)]
        model: loupe::config::ModelArgs,
    },
    /// Fit the ranker on labelled cases (Nezha, simulated sets): accuracy of the current and
    /// the fitted weights out of sample (k-fold within each system, and across systems), a
    /// reliability table, then the weights fitted on every case written to --out.
    Train(loupe::train::TrainArgs),
}

#[derive(Subcommand)]
enum SimulateMode {
    /// Stream live, in real time, until interrupted (or --duration passes).
    Stream {
        /// OTLP endpoint (gRPC: http://HOST:4317; HTTP: http://HOST:4318).
        #[arg(long, default_value = "http://127.0.0.1:4317")]
        endpoint: String,
        /// OTLP transport.
        #[arg(long, value_enum, default_value = "grpc")]
        protocol: OtlpProtocol,
        /// loupe's REST API, where change webhooks go (`none` to send none).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        #[command(flatten)]
        system: SystemArgs,
        /// Fault types injected in turn (`none` for none) [default: every type].
        #[arg(long, value_delimiter = ',')]
        faults: Vec<String>,
        /// Time to the first fault.
        #[arg(long, default_value = "2m")]
        first_fault: humantime::Duration,
        /// Time between the starts of two faults.
        #[arg(long, default_value = "5m")]
        fault_every: humantime::Duration,
        /// How long each fault lasts.
        #[arg(long, default_value = "3m")]
        fault_duration: humantime::Duration,
        /// No red herrings.
        #[arg(long)]
        no_herrings: bool,
        /// Stop after this long.
        #[arg(long)]
        duration: Option<humantime::Duration>,
    },
    /// Write a labelled case set (ground_truth.json and OTLP files per case) to a directory.
    Cases {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Number of cases.
        #[arg(long, default_value_t = 300)]
        cases: usize,
        /// Seed of the whole set.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Systems, used in turn: built-in names or topology files.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "otel-demo,random-small,random-large"
        )]
        topologies: Vec<String>,
        /// Fault types, used in turn [default: every type].
        #[arg(long, value_delimiter = ',')]
        faults: Vec<String>,
        /// Chance of each kind of red herring in a case.
        #[arg(long, default_value_t = 0.5)]
        herring_chance: f64,
        /// Fault-free time before each fault.
        #[arg(long, default_value = "6m")]
        baseline: humantime::Duration,
        /// Length of each fault.
        #[arg(long, default_value = "4m")]
        fault_duration: humantime::Duration,
    },
}

/// The simulated system.
#[derive(Args, Clone)]
struct SystemArgs {
    /// A built-in topology (otel-demo, random-small, random-large) or a topology file (TOML).
    #[arg(long, default_value = "otel-demo")]
    topology: String,
    /// Requests per second entering the system [default: the topology's].
    #[arg(long)]
    rate: Option<f64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum OtlpProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// A built-in topology by name, else a topology file.
fn topology(arg: &str) -> anyhow::Result<std::sync::Arc<loupe_simulate::Topology>> {
    use loupe_simulate::topology::BUILTIN;
    let t = if BUILTIN.contains(&arg) {
        loupe_simulate::Topology::builtin(arg)?
    } else {
        let text = std::fs::read_to_string(arg).with_context(|| {
            format!("{arg:?} is neither a built-in topology ({BUILTIN:?}) nor a readable file")
        })?;
        loupe_simulate::Topology::parse(&text, arg)?
    };
    Ok(std::sync::Arc::new(t))
}

/// Fault types from their names; every type when none is given, none for `none`.
fn fault_kinds(names: &[String]) -> anyhow::Result<Vec<loupe_simulate::FaultKind>> {
    if names.is_empty() {
        return Ok(loupe_simulate::FaultKind::ALL.to_vec());
    }
    if names == ["none"] {
        return Ok(Vec::new());
    }
    names
        .iter()
        .map(|n| n.parse().map_err(|e: String| anyhow::anyhow!(e)))
        .collect()
}

#[derive(Clone, Copy, ValueEnum)]
enum DatasetFormat {
    /// The Nezha layout (rca_data/, construct_data/, ground_truth.json).
    Nezha,
    /// A loupe data directory's Parquet segments (replay only).
    Loupe,
    /// A simulated case set (`loupe simulate cases`).
    Sim,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchTarget {
    /// The knowledge graph: update cost, as-of and diff latency, memory.
    Graph,
    /// The columnar store: ingest rate against the decode-only floor, memory per hot span,
    /// bytes on disk per span, query latency.
    Store,
}

#[derive(Clone, Copy, ValueEnum)]
enum DemoDataset {
    /// The vendored Nezha Train-Ticket case.
    Nezha,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Make a token, append its SHA-256 digest to the tokens file (created, mode 0600, when
    /// missing) and print the token once: it is kept nowhere else.
    Create {
        /// The token's name, recorded with what it does (one word, unique in the file).
        #[arg(long)]
        name: String,
        /// Its scopes, comma-separated: ingest (OTLP, changes), read (API, SQL, UI, MCP),
        /// admin (verdicts, manual incidents; includes read).
        #[arg(long, value_parser = parse_scope_list)]
        scope: ScopeList,
        /// The tokens file the server reads (`--auth-tokens-file`).
        #[arg(long, env = "LOUPE_AUTH_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
}

#[derive(Clone)]
struct ScopeList(Vec<loupe_api::auth::Scope>);

fn parse_scope_list(s: &str) -> Result<ScopeList, String> {
    loupe_api::auth::parse_scopes(s).map(ScopeList)
}

/// Server settings. Each is also a key of the config file (`--config`, default `./loupe.toml`
/// when present) and an environment variable; a flag wins over the variable, the variable over
/// the file.
#[derive(Args, Clone)]
struct ServeArgs {
    /// Config file (TOML; see README, "Configuration").
    #[arg(long, env = "LOUPE_CONFIG")]
    config: Option<PathBuf>,
    /// OTLP/gRPC listen address (port 0 picks a free port) [default: 127.0.0.1:4317].
    #[arg(long, env = "LOUPE_OTLP_GRPC_ADDR")]
    otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "LOUPE_OTLP_HTTP_ADDR")]
    otlp_http_addr: Option<SocketAddr>,
    /// REST API and web page listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "LOUPE_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Data directory: write-ahead log, Parquet segments, verdicts [default: ./loupe-data].
    #[arg(long, env = "LOUPE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Service-level objectives for automatic incidents, a JSON file:
    /// `{"default_slo": {"availability": 0.999}, "slos": {"checkout": {"availability": 0.995,
    /// "latency_threshold_seconds": 0.5, "latency_target": 0.99}}}`.
    #[arg(long, env = "LOUPE_SLO_FILE")]
    slo_file: Option<PathBuf>,
    /// Let MCP agents record verdicts (`/mcp`'s `record_verdict`; config `mcp.allow_writes`).
    #[arg(long, env = "LOUPE_MCP_ALLOW_WRITES")]
    mcp_allow_writes: bool,
    /// A host name (with or without `:port`) that MCP clients may reach `/mcp` by, besides
    /// loopback and the listen address, such as the name of a reverse proxy in front of
    /// loupe; repeatable (config `mcp.allowed_hosts`). Other `Host` headers are refused,
    /// against DNS rebinding.
    #[arg(
        long = "mcp-allowed-host",
        env = "LOUPE_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    mcp_allowed_hosts: Vec<String>,
    /// Tokens file: one `sha256:<digest> <name> <scopes>` line per token (`loupe token
    /// create`); every listener then requires a bearer token (config `auth.tokens_file`).
    #[arg(long, env = "LOUPE_AUTH_TOKENS_FILE")]
    auth_tokens_file: Option<PathBuf>,
    /// Listen beyond loopback without tokens (refused otherwise; config
    /// `auth.insecure_no_auth`).
    #[arg(long, env = "LOUPE_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,
    /// TLS certificate chain (PEM) for all three listeners (config `tls.cert_file`).
    #[arg(long, env = "LOUPE_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM) (config `tls.key_file`).
    #[arg(long, env = "LOUPE_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that OTLP clients' certificates must chain to: mutual TLS on the
    /// receivers (config `tls.client_ca_file`).
    #[arg(long, env = "LOUPE_TLS_CLIENT_CA_FILE")]
    tls_client_ca_file: Option<PathBuf>,
    /// The Slack app's signing secret: turns on `/slack/commands` and `/slack/interactions`
    /// (config `slack.signing_secret`; prefer the variable to the flag, which `ps` shows).
    #[arg(long, env = "LOUPE_SLACK_SIGNING_SECRET", hide_env_values = true)]
    slack_signing_secret: Option<String>,
    #[command(flatten)]
    model: loupe::config::ModelArgs,
    /// When the write-ahead log reaches the disk: `batch` (fsync before each acknowledgement)
    /// or `none` (the OS decides) [default: batch].
    #[arg(long, env = "LOUPE_WAL_SYNC")]
    wal_sync: Option<loupe_store::SyncPolicy>,
    /// Flush hot data to Parquet at least this often [default: 5m].
    #[arg(long, env = "LOUPE_FLUSH_INTERVAL")]
    flush_interval: Option<String>,
    /// Delete segments older than this, or `off` [default: 7d].
    #[arg(long, env = "LOUPE_RETENTION_AGE")]
    retention_age: Option<String>,
    /// Delete the oldest segments while they take more than this many bytes (0: no limit).
    #[arg(long, env = "LOUPE_RETENTION_BYTES")]
    retention_bytes: Option<u64>,
    /// Rows one SQL query returns at most [default: 10000].
    #[arg(long, env = "LOUPE_QUERY_MAX_ROWS")]
    query_max_rows: Option<usize>,
    /// Time one SQL query may run before it is cancelled [default: 30s].
    #[arg(long, env = "LOUPE_QUERY_TIMEOUT")]
    query_timeout: Option<String>,
    /// SQL queries, analyses, asks, diffs and trace searches running at once; up to 64 more
    /// wait 30 s for a turn, the rest get 503 with Retry-After [default: the CPUs, at least 2].
    #[arg(long, env = "LOUPE_QUERY_MAX_CONCURRENT")]
    query_max_concurrent: Option<usize>,
    /// Request bytes (wire plus decompressed) the receivers hold at once; past it requests wait
    /// up to 250 ms, then get gRPC UNAVAILABLE with RetryInfo / HTTP 503 with Retry-After
    /// [default: 268435456 (256 MiB)].
    #[arg(long, env = "LOUPE_INGEST_MAX_INFLIGHT_BYTES")]
    ingest_max_inflight_bytes: Option<usize>,
    /// The secret of a GitHub webhook posting deployment_status events to /api/v1/changes:
    /// deliveries signed with it (X-Hub-Signature-256) need no bearer token.
    #[arg(long, env = "LOUPE_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    github_webhook_secret: Option<String>,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<ServeConfig> {
        let mut file = loupe::config::read(self.config.as_deref())?;
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
            store: Some(loupe::config::store_config(data_dir, &file.store)?),
            query_limits: loupe::config::query_limits(&file.query)?,
            gate: loupe_api::gate::GateConfig {
                max_concurrent: match file.query.max_concurrent {
                    Some(0) => anyhow::bail!("query.max_concurrent must be at least 1"),
                    Some(n) => n,
                    None => loupe_api::gate::GateConfig::default().max_concurrent,
                },
                ..Default::default()
            },
            detect,
            analysis: self.model.analysis_config()?,
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
                loupe::config::tls_files(std::mem::take(t))?
            },
            insecure_no_auth: self.insecure_no_auth || file.auth.insecure_no_auth.unwrap_or(false),
            slack: loupe::config::slack_config(
                self.slack_signing_secret.clone(),
                std::mem::take(&mut file.slack),
            )?,
            admission: loupe::config::admission(&file.ingest, self.ingest_max_inflight_bytes)?,
            listen: loupe::config::listen(&file.server)?,
            github_webhook_secret: loupe::config::github_secret(
                self.github_webhook_secret.clone(),
                file.changes.github_webhook_secret.take(),
            )?,
            ..defaults
        })
    }
}

/// Progress of an evaluation on stderr, unless JSON goes to a pipe.
fn eval_progress(json: bool) -> impl FnMut(usize, usize, &str) {
    let show = !json || std::io::IsTerminal::is_terminal(&std::io::stderr());
    move |done, total, id| {
        if show {
            eprint!("\r\x1b[Kevaluating {done}/{total} {id}");
        }
    }
}

/// Prints an evaluation as JSON or as a table (`published`: with the Nezha paper's figures).
fn print_report(
    report: &loupe::eval::EvalReport,
    json: bool,
    published: bool,
) -> anyhow::Result<()> {
    eprintln!();
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", loupe::eval::render_with(report, published));
    }
    Ok(())
}

fn time_arg(name: &str, value: &str) -> anyhow::Result<u64> {
    loupe_api::parse_time_str(name, value).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `--from`/`--to` as a range of unix nanoseconds (clap makes them come together).
fn range_args(
    from: Option<String>,
    to: Option<String>,
) -> anyhow::Result<Option<std::ops::Range<u64>>> {
    Ok(match (from, to) {
        (Some(f), Some(t)) => Some(time_arg("from", &f)?..time_arg("to", &t)?),
        _ => None,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => {
            let server = server::start(args.config()?).await?;
            tokio::signal::ctrl_c()
                .await
                .context("waiting for ctrl-c")?;
            tracing::info!("shutting down");
            server.shutdown().await;
        }
        Command::Demo {
            serve,
            replay,
            seed,
            first_fault,
            fault_every,
            fault_duration,
            duration,
        } => {
            // The demo replays the same case on every run: it keeps its data in a fresh
            // temporary directory (removed when it ends) so a second run does not count the
            // case twice.
            let mut config = serve.config()?;
            let dir = std::env::temp_dir().join(format!("loupe-demo-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            config.store = config.store.map(|mut s| {
                s.dir = dir.clone();
                s
            });
            let result = match replay {
                Some(DemoDataset::Nezha) => loupe::demo::run(config).await,
                None => {
                    let demo = loupe::demo::LiveDemo {
                        seed,
                        first_fault: first_fault.into(),
                        fault_every: fault_every.into(),
                        fault_duration: fault_duration.into(),
                        duration: duration.map(Into::into),
                    };
                    loupe::demo::run_live(config, demo).await
                }
            };
            let _ = std::fs::remove_dir_all(&dir);
            result?
        }
        Command::Simulate {
            mode:
                SimulateMode::Stream {
                    endpoint,
                    protocol,
                    api,
                    system,
                    faults,
                    first_fault,
                    fault_every,
                    fault_duration,
                    no_herrings,
                    duration,
                },
        } => {
            let mut t = (*topology(&system.topology)?).clone();
            if let Some(rate) = system.rate {
                anyhow::ensure!(rate > 0.0, "--rate must be positive");
                t.requests_per_second = rate;
            }
            let config = loupe::simulate::StreamConfig {
                endpoint: endpoint.clone(),
                transport: match protocol {
                    OtlpProtocol::Grpc => loupe::simulate::Transport::Grpc,
                    OtlpProtocol::Http => loupe::simulate::Transport::Http,
                },
                api: (api != "none").then_some(api),
                topology: std::sync::Arc::new(t),
                seed: system.seed,
                faults: fault_kinds(&faults)?,
                first_fault: first_fault.into(),
                fault_every: fault_every.into(),
                fault_duration: fault_duration.into(),
                herrings: !no_herrings,
                min_target_rate: loupe_simulate::scenario::MIN_TARGET_RATE,
                duration: duration.map(Into::into),
            };
            eprintln!(
                "streaming {} to {endpoint}; ctrl-c to stop",
                system.topology
            );
            let stream = loupe::simulate::stream(config, |event| {
                use loupe::simulate::StreamEvent;
                match event {
                    StreamEvent::FaultStarted(t) => println!(
                        "{}",
                        serde_json::to_string(
                            &serde_json::json!({"event": "fault_started", "truth": t})
                        )
                        .unwrap_or_default()
                    ),
                    StreamEvent::FaultEnded(t) => println!(
                        "{}",
                        serde_json::to_string(
                            &serde_json::json!({"event": "fault_ended", "case_id": t.case_id})
                        )
                        .unwrap_or_default()
                    ),
                    StreamEvent::Progress(p) => eprintln!(
                        "sent {} items in {} requests ({} rejected), {} changes",
                        p.items, p.requests, p.rejected, p.notices
                    ),
                }
            });
            tokio::select! {
                r = stream => { r?; }
                r = tokio::signal::ctrl_c() => r?,
            }
        }
        Command::Simulate {
            mode:
                SimulateMode::Cases {
                    out,
                    cases,
                    seed,
                    topologies,
                    faults,
                    herring_chance,
                    baseline,
                    fault_duration,
                },
        } => {
            anyhow::ensure!(cases > 0, "--cases must be at least 1");
            let faults = fault_kinds(&faults)?;
            anyhow::ensure!(!faults.is_empty(), "--faults names no fault type");
            let spec = loupe_simulate::cases::SuiteSpec {
                topologies: topologies
                    .iter()
                    .map(|t| topology(t))
                    .collect::<anyhow::Result<_>>()?,
                faults,
                cases,
                seed,
                herring_chance,
                baseline_nanos: baseline.as_nanos() as u64,
                fault_nanos: fault_duration.as_nanos() as u64,
            };
            let bar = indicatif::ProgressBar::new(cases as u64);
            let dir = out.clone();
            let truths = tokio::task::spawn_blocking(move || {
                loupe_simulate::cases::write_suite(&dir, &spec, |done, _, _| {
                    bar.set_position(done as u64)
                })
            })
            .await??;
            println!("wrote {} labelled cases to {}", truths.len(), out.display());
        }
        Command::Query {
            sql,
            server,
            json,
            max_rows,
        } => loupe::query::run(&server, &sql, json, max_rows).await?,
        Command::Mcp {
            server,
            allow_writes,
        } => loupe::mcp::serve_stdio(&server, allow_writes).await?,
        Command::Token {
            action:
                TokenAction::Create {
                    name,
                    scope,
                    tokens_file,
                },
        } => {
            let token = loupe_api::auth::create_token(&tokens_file, &name, &scope.0)?;
            let scopes: Vec<&str> = scope.0.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "token {name:?} ({}) added to {}; it is shown once, here:",
                scopes.join(","),
                tokens_file.display()
            );
            println!("{token}");
            eprintln!(
                "send it as `Authorization: Bearer <token>`: OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer%20<token>\" for exporters, LOUPE_TOKEN=<token> for loupe ask/query/mcp; a running server reads the file again within a second"
            );
        }
        Command::Ask {
            question,
            server,
            time_zone,
            by,
            now,
            json,
        } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "loupe ask".into());
            let now = now.map(|t| time_arg("now", &t)).transpose()?;
            let asked = loupe::ask::Asked {
                time_zone: time_zone.as_deref(),
                by: &by,
                now,
            };
            loupe::ask::run(&server, &question, &asked, json).await?
        }
        Command::Replay {
            format: DatasetFormat::Sim,
            dir,
            endpoint,
            api,
            cases,
            from,
            to,
        } => {
            let range = range_args(from, to)?;
            let totals = replay::send_sim_cases(&dir, &cases, range, &endpoint, &api).await?;
            println!(
                "sent {} items in {} requests to {endpoint} and the change webhooks to {api}; rejected {}",
                totals.items, totals.requests, totals.rejected
            );
        }
        Command::Replay {
            format: DatasetFormat::Loupe,
            dir,
            endpoint,
            from,
            to,
            ..
        } => {
            let range = range_args(from, to)?;
            let totals = replay::send_stored(&endpoint, &dir, range).await?;
            println!(
                "sent {} items in {} requests to {endpoint}; rejected {}",
                totals.items, totals.requests, totals.rejected
            );
        }
        Command::Replay {
            format: DatasetFormat::Nezha,
            dir,
            endpoint,
            cases,
            from,
            to,
            ..
        } => {
            let dataset = NezhaDataset::open(&dir)?;
            let range = range_args(from, to)?;
            let requests = replay::requests(&dataset, &ReplaySelection { cases, range })?;
            let totals = replay::send(&endpoint, requests, false).await?;
            println!(
                "sent {} items in {} requests to {endpoint}; rejected {}",
                totals.items, totals.requests, totals.rejected
            );
        }
        Command::Train(args) => {
            let config = args.model.analysis_config()?;
            let report = loupe::train::run(&args, &config, eval_progress(false)).await?;
            eprintln!();
            print!("{}", loupe::train::render(&report));
        }
        Command::Eval {
            format: DatasetFormat::Loupe,
            ..
        } => anyhow::bail!(
            "eval scores labelled datasets (nezha, sim); a loupe data directory holds no labels"
        ),
        Command::Eval {
            format: DatasetFormat::Sim,
            dir,
            json,
            cases,
            baselines,
            model,
            signals,
            ablation,
            ..
        } => {
            anyhow::ensure!(
                !baselines,
                "--baselines runs on the Nezha metric matrices; simulated sets have none yet"
            );
            let config = model.analysis_config()?;
            let mut report =
                loupe::eval_sim::run(&dir, &cases, &config, signals, eval_progress(json)).await?;
            if ablation {
                loupe::ablation::complete(&mut report, |arm| {
                    loupe::eval_sim::run(&dir, &cases, &config, arm, eval_progress(json))
                })
                .await?;
            }
            print_report(&report, json, false)?;
        }
        Command::Eval {
            format: DatasetFormat::Nezha,
            dir,
            json,
            cases,
            baselines,
            python,
            model,
            signals,
            ablation,
        } => {
            let config = model.analysis_config()?;
            let dataset = NezhaDataset::open(&dir)?;
            let mut report =
                loupe::eval::run(&dataset, &cases, &config, signals, eval_progress(json)).await?;
            if ablation {
                loupe::ablation::complete(&mut report, |arm| {
                    loupe::eval::run(&dataset, &cases, &config, arm, eval_progress(json))
                })
                .await?;
            }
            // A baseline that cannot run loses none of loupe's figures: they print first.
            let mut baseline_error = None;
            if baselines {
                let all = dataset.ground_truth()?;
                let selected = loupe::eval::select(&all, &cases)?;
                match loupe::baselines::run(&dataset, &selected, &all, &python, eval_progress(json))
                {
                    Ok(b) => report.baselines = b,
                    Err(e) => baseline_error = Some(e),
                }
            }
            print_report(&report, json, true)?;
            if let Some(e) = baseline_error {
                return Err(e.context("the baselines did not run; loupe's figures above stand"));
            }
        }
        Command::Bench {
            target: BenchTarget::Store,
            services,
            spans,
            dir,
            seed,
            json,
            ..
        } => {
            let config = loupe::bench_store::StoreBenchConfig {
                spans_total: spans,
                services: services.unwrap_or(50),
                dir,
                seed,
            };
            let r = loupe::bench_store::run(config, |m| eprintln!("{m}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "ingest ({} spans per request, {:.0} bytes per span):",
                    r.spans_per_request, r.span_bytes
                );
                println!(
                    "  decode only:        {:>10.0} spans per CPU-second",
                    r.decode_spans_per_cpu_second
                );
                println!(
                    "  decode and store:   {:>10.0} spans per CPU-second ({:.0}% of decode only)",
                    r.store_spans_per_cpu_second,
                    r.store_share_of_decode * 100.0
                );
                println!(
                    "memory: {:.0} MiB resident per million hot spans ({:.0} MiB of Arrow arrays)",
                    r.rss_mib_per_million_hot_spans, r.arrow_mib_per_million_hot_spans
                );
                println!("load: {} spans and {} log records; flush {:.1} s, compaction {:.1} s, {} segment files", r.spans_total, r.logs_total, r.flush_seconds, r.compact_seconds, r.segments);
                println!(
                    "disk: {:.1} bytes per span after compaction",
                    r.disk_bytes_per_span
                );
                println!("query: trace by id {:.1} ms; RED per service over 1 h {:.1} ms; error logs of one pod over 1 h {:.1} ms", r.trace_by_id_ms, r.red_per_service_ms, r.pod_error_logs_ms);
            }
        }
        Command::Bench {
            target: BenchTarget::Graph,
            services,
            edges,
            minutes,
            seed,
            json,
            ..
        } => {
            let services = services.unwrap_or(1000);
            anyhow::ensure!(services >= 10, "--services must be at least 10");
            anyhow::ensure!(
                minutes >= 35,
                "--minutes must be at least 35 (the diff looks 30 minutes back)"
            );
            let config = loupe::bench::BenchConfig {
                services,
                edges,
                minutes,
                seed,
            };
            let result = tokio::task::spawn_blocking(move || {
                loupe::bench::run(config, |m| eprintln!("{m}"))
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                let r = &result;
                println!("graph: {} services, {} edges, {} entities, {} relations, {} minutes of 10 s buckets", r.services, r.edges, r.entities, r.relations, r.minutes);
                println!(
                    "fill: {} spans in {:.1} s ({:.0} spans/s)",
                    r.fill_spans,
                    r.fill_seconds,
                    r.fill_spans as f64 / r.fill_seconds
                );
                println!(
                    "update: {:.1} ms per 10 000 spans of realistic traces",
                    r.update_ms_per_10k_spans
                );
                if r.memory_mib > 0.0 {
                    println!(
                        "memory: {:.0} MiB resident ({:.0} bytes per bucket held)",
                        r.memory_mib, r.bytes_per_bucket_held
                    );
                } else {
                    // The allocator handed back the first graph's pages during the fill.
                    println!("memory: too small to measure against the freed update graph");
                }
                println!(
                    "as-of (5 min window): {:.1} ms (the first after the fill: {:.1} ms); with known_at: {:.1} ms; structure only: {:.1} ms",
                    r.as_of_ms, r.as_of_first_ms, r.as_of_known_at_ms, r.as_of_structure_ms
                );
                println!("diff (two 5 min windows 30 min apart): {:.1} ms", r.diff_ms);
                println!(
                    "analysis of the last 5 min ({} candidates ranked): {:.1} ms",
                    r.analysis_candidates, r.analysis_ms
                );
                println!(
                    "the same through the API: POST /api/v1/analyze {:.1} ms; POST /api/v1/ask {:.1} ms, of which reading the question {:.2} ms ({})",
                    r.analyze_api_ms, r.ask_ms, r.ask_parse_ms, r.ask_reading
                );
            }
        }
    }
    Ok(())
}
