//! `loupe replay nezha DIR`: sends a Nezha-layout dataset to an OTLP/gRPC endpoint with its
//! original timestamps, case by case or over a time range, with a progress bar.

use std::ops::Range;

use indicatif::{ProgressBar, ProgressStyle};
use loupe_ingest::nezha::NezhaDataset;
use loupe_ingest::{ExportRequest, OtlpGrpcClient};

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

/// Sends `requests` to `endpoint` over OTLP/gRPC, showing progress unless `quiet`.
///
/// # Errors
/// When the endpoint cannot be reached or refuses a request.
pub async fn send(
    endpoint: &str,
    requests: Vec<ExportRequest>,
    quiet: bool,
) -> anyhow::Result<ReplayTotals> {
    let mut client = OtlpGrpcClient::connect(endpoint).await?;
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
        let items = request.item_count() as u64;
        totals.rejected += client.send(request).await?;
        totals.requests += 1;
        totals.items += items;
        bar.inc(items);
    }
    bar.finish_and_clear();
    Ok(totals)
}
