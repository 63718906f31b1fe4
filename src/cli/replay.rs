//! `loupe replay nezha DIR`: sends a Nezha-layout dataset to an OTLP/gRPC endpoint with its
//! original timestamps, case by case or over a time range, with a progress bar.
//! `loupe replay loupe DATA_DIR`: sends what a loupe data directory holds in its Parquet
//! segments, hour by hour, to another endpoint (to move data between servers or feed a
//! collector).

use std::ops::Range;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use loupe_ingest::nezha::NezhaDataset;
use loupe_ingest::{ExportRequest, OtlpGrpcClient};

use crate::cli::values::{time_arg, DatasetFormat};

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplaySelection {
    /// Case ids; empty means every case (unless a range is given).
    pub cases: Vec<String>,
    /// A time range over every day of `rca_data`, unix nanoseconds.
    pub range: Option<Range<u64>>,
}

/// Totals of a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayTotals {
    /// Requests sent.
    pub requests: u64,
    /// Spans, log records and points sent.
    pub items: u64,
    /// Items the server rejected (partial success).
    pub rejected: u64,
}

/// Builds the requests of the selection, in the order they are sent.
///
/// # Errors
/// When a case id is unknown or a file cannot be read.
pub fn requests(
    dataset: &NezhaDataset,
    selection: &ReplaySelection,
) -> anyhow::Result<Vec<ExportRequest>> {
    if let Some(range) = &selection.range {
        let mut out = Vec::new();
        let mut days: Vec<String> = std::fs::read_dir(dataset.root().join("rca_data"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        days.sort();
        for day in days {
            out.extend(dataset.load("rca_data", &day, range.clone())?);
        }
        return Ok(out);
    }
    let truth = dataset.ground_truth()?;
    for id in &selection.cases {
        anyhow::ensure!(
            truth.iter().any(|c| &c.case_id == id),
            "unknown case {id:?} in {}",
            dataset.root().display()
        );
    }
    let mut out = Vec::new();
    for case in truth
        .iter()
        .filter(|c| selection.cases.is_empty() || selection.cases.contains(&c.case_id))
    {
        out.extend(dataset.case(case, &truth)?.requests);
    }
    Ok(out)
}

/// Sends the spans, log records and points of the segments in `data_dir` whose event times may
/// overlap `range` (whole segments: an hour each) to `endpoint`, oldest hour first, in the order
/// they were received. Reads only; a server may be running on the directory (what it has not
/// flushed yet is not sent).
///
/// # Errors
/// When the directory cannot be read or the endpoint refuses a request; unreadable segments are
/// reported on stderr and skipped.
pub async fn send_stored(
    endpoint: &str,
    data_dir: &std::path::Path,
    range: Option<Range<u64>>,
) -> anyhow::Result<ReplayTotals> {
    let root = data_dir.join("segments");
    anyhow::ensure!(
        root.is_dir(),
        "{} holds no segments/ directory",
        data_dir.display()
    );
    let (segments, corrupt) = loupe_store::segment::scan(&root)?;
    for (path, reason) in corrupt {
        eprintln!("skipping unreadable segment {}: {reason}", path.display());
    }
    let segments: Vec<_> = segments
        .into_iter()
        .filter(|s| s.table != loupe_store::Table::Changes)
        .filter(|s| {
            range
                .as_ref()
                .is_none_or(|r| s.max_time >= r.start as i64 && s.min_time < r.end as i64)
        })
        .collect();
    let mut client = OtlpGrpcClient::connect(endpoint)
        .await?
        .with_bearer_token(crate::cli::query::token_from_env())?;
    let bar = ProgressBar::new(segments.iter().map(|s| s.rows).sum());
    let mut totals = ReplayTotals::default();
    for segment in &segments {
        let mut requests = Vec::new();
        for batch in loupe_store::segment::read(&segment.path)? {
            requests.extend(crate::columnar::requests_from_batch(segment.table, &batch)?);
        }
        requests.sort_by_key(|(received, _)| *received);
        for (_, request) in requests {
            send_one(&mut client, request, &mut totals, &bar).await?;
        }
    }
    bar.finish_and_clear();
    Ok(totals)
}

/// Sends `requests` to `endpoint` over OTLP/gRPC, showing progress unless `quiet`.
///
/// # Errors
/// When the endpoint cannot be reached or refuses a request.
pub async fn send(
    endpoint: &str,
    requests: Vec<ExportRequest>,
    quiet: bool,
) -> anyhow::Result<ReplayTotals> {
    let mut client = OtlpGrpcClient::connect(endpoint)
        .await?
        .with_bearer_token(crate::cli::query::token_from_env())?;
    let total_items: usize = requests.iter().map(ExportRequest::item_count).sum();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total_items as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replaying [{bar:40}] {pos}/{len} items ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut totals = ReplayTotals::default();
    for request in requests {
        send_one(&mut client, request, &mut totals, &bar).await?;
    }
    bar.finish_and_clear();
    Ok(totals)
}

/// Sends one request and counts it.
async fn send_one(
    client: &mut OtlpGrpcClient,
    request: ExportRequest,
    totals: &mut ReplayTotals,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let items = request.item_count() as u64;
    totals.rejected += client.send(request).await?;
    totals.requests += 1;
    totals.items += items;
    bar.inc(items);
    Ok(())
}

/// Sends the cases of a simulated case set (`loupe simulate cases`) to a running server, as its
/// fleet would have: every OTLP request to `endpoint` over OTLP/gRPC and every change webhook
/// (deployments, flag and config changes) to `api`'s `/api/v1/changes`, merged in the order
/// of their event times, with their original timestamps. Cases go in the order of the set's
/// `ground_truth.json`; `cases` selects some (empty: every case); `range` keeps the requests
/// whose earliest item and the webhooks whose time fall in it (to stop a case mid-fault, say).
///
/// # Errors
/// When a case id is unknown, a case's files cannot be read, or the endpoint or the API
/// cannot be reached or refuses a request.
pub async fn send_sim_cases(
    dir: &std::path::Path,
    cases: &[String],
    range: Option<Range<u64>>,
    endpoint: &str,
    api: &str,
) -> anyhow::Result<ReplayTotals> {
    use loupe_simulate::cases::{read_case, read_ground_truth};
    let truths = read_ground_truth(dir)?;
    for id in cases {
        anyhow::ensure!(
            truths.iter().any(|t| &t.case_id == id),
            "unknown case {id:?} in {}",
            dir.display()
        );
    }
    let selected: Vec<_> = truths
        .iter()
        .filter(|t| cases.is_empty() || cases.contains(&t.case_id))
        .collect();
    let mut client = OtlpGrpcClient::connect(endpoint)
        .await?
        .with_bearer_token(crate::cli::query::token_from_env())?;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let mut totals = ReplayTotals::default();
    for truth in selected {
        let telemetry = read_case(dir, &truth.case_id)?;
        let bar = ProgressBar::new(
            telemetry
                .requests
                .iter()
                .map(ExportRequest::item_count)
                .sum::<usize>() as u64,
        );
        bar.set_message(truth.case_id.clone());
        // One timeline of requests and webhooks; a stable sort keeps each signal's own order.
        enum Step {
            Request(ExportRequest),
            Notice(loupe_simulate::Notice),
        }
        let mut steps: Vec<(u64, Step)> = telemetry
            .requests
            .into_iter()
            .map(|r| (r.earliest_time_unix_nano().unwrap_or(0), Step::Request(r)))
            .chain(
                telemetry
                    .notices
                    .into_iter()
                    .map(|n| (n.at_unix_nano, Step::Notice(n))),
            )
            .collect();
        steps.retain(|(t, _)| range.as_ref().is_none_or(|r| r.contains(t)));
        steps.sort_by_key(|(t, _)| *t);
        for (_, step) in steps {
            match step {
                Step::Request(r) => send_one(&mut client, r, &mut totals, &bar).await?,
                Step::Notice(n) => crate::cli::simulate::post_notice(&http, api, &n).await?,
            }
        }
        bar.finish_and_clear();
    }
    Ok(totals)
}

/// `loupe replay` arguments.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Dataset format.
    pub format: DatasetFormat,
    /// Dataset directory.
    pub dir: PathBuf,
    /// OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub endpoint: String,
    /// loupe's REST API, where a simulated case set's change webhooks go (sim only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Comma-separated case ids to replay (default: every case).
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// Start of a time range to replay instead of cases (RFC 3339 or unix nanoseconds; for
    /// a simulated case set, within the selected cases).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// End of that time range.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
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

/// `loupe replay`: sends a simulated case set ([`send_sim_cases`]), a loupe data directory
/// ([`send_stored`]) or Nezha cases ([`send`]) and prints the totals.
///
/// # Errors
/// The dataset unreadable, or the endpoint refusing.
pub async fn execute(args: ReplayArgs) -> anyhow::Result<()> {
    let ReplayArgs {
        format,
        dir,
        endpoint,
        api,
        cases,
        from,
        to,
    } = args;
    match format {
        DatasetFormat::Sim => {
            let range = range_args(from, to)?;
            let totals = send_sim_cases(&dir, &cases, range, &endpoint, &api).await?;
            println!(
                "sent {} items in {} requests to {endpoint} and the change webhooks to {api}; rejected {}",
                totals.items, totals.requests, totals.rejected
            );
        }
        DatasetFormat::Loupe => {
            let range = range_args(from, to)?;
            let totals = send_stored(&endpoint, &dir, range).await?;
            println!(
                "sent {} items in {} requests to {endpoint}; rejected {}",
                totals.items, totals.requests, totals.rejected
            );
        }
        DatasetFormat::Nezha => {
            let dataset = NezhaDataset::open(&dir)?;
            let range = range_args(from, to)?;
            let requests = requests(&dataset, &ReplaySelection { cases, range })?;
            let totals = send(&endpoint, requests, false).await?;
            println!(
                "sent {} items in {} requests to {endpoint}; rejected {}",
                totals.items, totals.requests, totals.rejected
            );
        }
    }
    Ok(())
}
