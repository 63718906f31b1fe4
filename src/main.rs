//! The `loupe` command line: `serve`, `demo`, `replay`, `eval`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use loupe::replay::{self, ReplaySelection};
use loupe::server::{self, ServeConfig};
use loupe_ingest::nezha::NezhaDataset;

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
    /// Serve (in memory), replay a real labelled fault case into the server over OTLP, print its
    /// ranked causes, and keep serving.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Dataset to replay (only the vendored Nezha case is bundled).
        #[arg(long, value_enum, default_value = "nezha")]
        replay: DemoDataset,
    },
    /// Send a dataset to an OTLP/gRPC endpoint with its original timestamps.
    Replay {
        /// Dataset format.
        format: DatasetFormat,
        /// Dataset directory.
        dir: PathBuf,
        /// OTLP/gRPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:4317")]
        endpoint: String,
        /// Comma-separated case ids to replay (default: every case).
        #[arg(long, value_delimiter = ',')]
        cases: Vec<String>,
        /// Start of a time range to replay instead of cases (RFC 3339 or unix nanoseconds).
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
        /// Services of the synthetic system.
        #[arg(long, default_value_t = 1000)]
        services: usize,
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
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DatasetFormat {
    /// The Nezha layout (rca_data/, construct_data/, ground_truth.json).
    Nezha,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchTarget {
    /// The knowledge graph: update cost, as-of and diff latency, memory.
    Graph,
}

#[derive(Clone, Copy, ValueEnum)]
enum DemoDataset {
    /// The vendored Nezha Train-Ticket case.
    Nezha,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// OTLP/gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "LOUPE_OTLP_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    #[arg(long, env = "LOUPE_OTLP_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    otlp_http_addr: SocketAddr,
    /// REST API and web page listen address.
    #[arg(long, env = "LOUPE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Data directory (write-ahead log).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value = "./loupe-data")]
    data_dir: PathBuf,
    /// Service-level objectives for automatic incidents, a JSON file:
    /// `{"default_slo": {"availability": 0.999}, "slos": {"checkout": {"availability": 0.995,
    /// "latency_threshold_seconds": 0.5, "latency_target": 0.99}}}`.
    #[arg(long, env = "LOUPE_SLO_FILE")]
    slo_file: Option<PathBuf>,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<ServeConfig> {
        let detect = match &self.slo_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not an SLO file", path.display()))?
            }
            None => Default::default(),
        };
        Ok(ServeConfig {
            otlp_grpc_addr: self.otlp_grpc_addr,
            otlp_http_addr: self.otlp_http_addr,
            http_addr: self.http_addr,
            data_dir: Some(self.data_dir.clone()),
            detect,
            ..Default::default()
        })
    }
}

fn time_arg(name: &str, value: &str) -> anyhow::Result<u64> {
    loupe_api::parse_time_str(name, value).map_err(|e| anyhow::anyhow!("{e}"))
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
            replay: DemoDataset::Nezha,
        } => {
            // The demo replays the same case on every run: it keeps its data in memory so a
            // second run does not count the case twice.
            let config = ServeConfig {
                data_dir: None,
                ..serve.config()?
            };
            loupe::demo::run(config).await?
        }
        Command::Replay {
            format: DatasetFormat::Nezha,
            dir,
            endpoint,
            cases,
            from,
            to,
        } => {
            let dataset = NezhaDataset::open(&dir)?;
            let range = match (from, to) {
                (Some(f), Some(t)) => Some(time_arg("from", &f)?..time_arg("to", &t)?),
                _ => None,
            };
            let requests = replay::requests(&dataset, &ReplaySelection { cases, range })?;
            let totals = replay::send(&endpoint, requests, false).await?;
            println!(
                "sent {} items in {} requests to {endpoint}; rejected {}",
                totals.items, totals.requests, totals.rejected
            );
        }
        Command::Eval {
            format: DatasetFormat::Nezha,
            dir,
            json,
            cases,
        } => {
            let dataset = NezhaDataset::open(&dir)?;
            let report = loupe::eval::run(&dataset, &cases, |done, total, id| {
                if !json || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    eprint!("\r\x1b[Kevaluating {done}/{total} {id}");
                }
            })
            .await?;
            eprintln!();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", loupe::eval::render(&report));
            }
        }
        Command::Bench {
            target: BenchTarget::Graph,
            services,
            edges,
            minutes,
            seed,
            json,
        } => {
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
                println!(
                    "memory: {:.0} MiB resident ({:.0} bytes per relation-bucket)",
                    r.memory_mib, r.bytes_per_relation_bucket
                );
                println!(
                    "as-of (5 min window): {:.1} ms; with known_at: {:.1} ms; structure only: {:.1} ms",
                    r.as_of_ms, r.as_of_known_at_ms, r.as_of_structure_ms
                );
                println!("diff (two 5 min windows 30 min apart): {:.1} ms", r.diff_ms);
            }
        }
    }
    Ok(())
}
