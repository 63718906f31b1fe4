//! Argument values that several commands share: the dataset layouts (`loupe replay`, `loupe
//! eval`) and times typed on the command line (`loupe replay --from`, `loupe ask --now`).

/// A dataset's layout, as `loupe replay` and `loupe eval` read it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DatasetFormat {
    /// The Nezha layout (rca_data/, construct_data/, ground_truth.json).
    Nezha,
    /// A loupe data directory's Parquet segments (replay only).
    Loupe,
    /// A simulated case set (`loupe simulate cases`).
    Sim,
}

/// A time argument (`--from`, `--now`): RFC 3339 or unix nanoseconds.
///
/// # Errors
/// When it is neither.
pub fn time_arg(name: &str, value: &str) -> anyhow::Result<u64> {
    loupe_api::parse_time_str(name, value).map_err(|e| anyhow::anyhow!("{e}"))
}
