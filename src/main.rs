//! The `loupe` binary: parses the command line and runs the command ([`loupe::cli`]).

use clap::Parser;
use loupe::cli::Cli;

/// mimalloc: its per-page free lists keep a graph's many small buckets near each other in
/// memory, which is most of what a window query waits on (see README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    loupe::cli::run(Cli::parse().command).await
}
