//! Opening Nezha CSV files, gzipped or plain, as `csv` readers with headers.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// A CSV reader over `path`, decompressing when the name ends in `.gz`.
pub(super) fn reader(path: &Path) -> Result<csv::Reader<Box<dyn Read>>> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let input: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(input))
}

/// The index of each wanted column in the header, or a dataset error naming the missing one.
pub(super) fn columns<const N: usize>(
    path: &Path,
    headers: &csv::StringRecord,
    wanted: [&str; N],
) -> Result<[usize; N]> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(wanted) {
        *slot = headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::Dataset {
                path: path.display().to_string(),
                message: format!("missing column {name:?}"),
            })?;
    }
    Ok(out)
}

/// A dataset error for row `row` of `path`.
pub(super) fn bad_row(path: &Path, row: usize, message: impl std::fmt::Display) -> Error {
    Error::Dataset {
        path: path.display().to_string(),
        message: format!("row {row}: {message}"),
    }
}

/// Reads every record, mapping csv errors to dataset errors.
pub(super) fn records(path: &Path) -> Result<(csv::StringRecord, Vec<csv::StringRecord>)> {
    let mut reader = reader(path)?;
    let headers = reader.headers().map_err(|e| bad_row(path, 0, e))?.clone();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        rows.push(record.map_err(|e| bad_row(path, i + 1, e))?);
    }
    Ok((headers, rows))
}
