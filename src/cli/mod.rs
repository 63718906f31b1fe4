//! The `loupe` command line: its arguments ([`Cli`]) and one module per command, each with
//! its arguments and an `execute` that runs it. Commands use the runtime (`engine`, `server`,
//! `config`); the runtime never uses a command.

pub mod ask;
pub mod bench;
pub mod demo;
pub mod eval;
pub mod mcp;
pub mod query;
pub mod replay;
pub mod serve;
pub mod simulate;
pub mod token;
pub mod train;
pub mod values;

use clap::{Parser, Subcommand};

/// loupe: a temporal knowledge-graph observability engine. OTLP in, ranked root causes out.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve OTLP (gRPC and HTTP) and the REST API until interrupted.
    Serve(serve::ServeArgs),
    /// Serve (data in a temporary directory, removed at the end) with the simulated
    /// OpenTelemetry Demo streaming live into it, a fault every few minutes, and print the
    /// incidents loupe opens; or, with --replay nezha, replay a real labelled fault case.
    Demo(demo::DemoArgs),
    /// Simulate a microservice system with a fault library: stream its telemetry live to an
    /// OTLP endpoint, or write a labelled case set for `loupe eval sim`.
    Simulate {
        #[command(subcommand)]
        mode: simulate::SimulateMode,
    },
    /// Send a dataset to an OTLP/gRPC endpoint with its original timestamps (a simulated case
    /// set's change webhooks go to --api).
    Replay(replay::ReplayArgs),
    /// Measure a component on synthetic data (build with --release for meaningful numbers).
    Bench(bench::BenchArgs),
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
    Ask(ask::AskArgs),
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
        action: token::TokenAction,
    },
    /// Score the root-cause ranking on a labelled dataset (AC@1, AC@3, Avg@5).
    Eval(eval::EvalArgs),
    /// Fit the ranker on labelled cases (Nezha, simulated sets): accuracy of the current and
    /// the fitted weights out of sample (k-fold within each system, and across systems), a
    /// reliability table, then the weights fitted on every case written to --out.
    Train(train::TrainArgs),
}

/// Runs `command`.
///
/// # Errors
/// The command's.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::execute(args).await,
        Command::Demo(args) => demo::execute(args).await,
        Command::Simulate { mode } => simulate::execute(mode).await,
        Command::Replay(args) => replay::execute(args).await,
        Command::Bench(args) => bench::execute(args).await,
        Command::Query {
            sql,
            server,
            json,
            max_rows,
        } => query::run(&server, &sql, json, max_rows).await,
        Command::Ask(args) => ask::execute(args).await,
        Command::Mcp {
            server,
            allow_writes,
        } => mcp::serve_stdio(&server, allow_writes).await,
        Command::Token { action } => token::execute(action),
        Command::Eval(args) => eval::execute(args).await,
        Command::Train(args) => {
            let config = args.model.analysis_config()?;
            let report = train::run(&args, &config, eval::eval_progress(false)).await?;
            eprintln!();
            print!("{}", train::render(&report));
            Ok(())
        }
    }
}
