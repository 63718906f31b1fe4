//! The write-ahead log: a directory of numbered append-only files of framed records.
//!
//! Frame: `len: u32 LE` (payload bytes) · `crc: u32 LE` (CRC-32/ISO-HDLC of tag and payload) ·
//! `tag: u8` · `payload`. Reading a file stops at the first frame that is short or fails its
//! CRC; the file is truncated there so later appends follow the last good record.
//!
//! Files are `wal/<seq>.log`. The store [rotates](Wal::rotate) to a new file when it seals its
//! hot data for a flush, and [removes](Wal::remove_through) the old files once the Parquet
//! segments holding their records are durable.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest payload read back (guards against a corrupt length field), bytes.
const MAX_PAYLOAD_BYTES: u32 = 256 << 20;

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// `fdatasync` after every appended request, before it is acknowledged (default): an
    /// acknowledged request survives a crash of the process or of the machine.
    #[default]
    Batch,
    /// Leave it to the operating system: an acknowledged request survives a crash of the
    /// process, not a power loss.
    None,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "batch" => Ok(Self::Batch),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown WAL sync policy {other:?} (expected batch or none)"
            )),
        }
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// The caller's tag (the signal).
    pub tag: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// What [`Wal::open`] read back.
#[derive(Debug, Default)]
pub struct WalContents {
    /// Every intact record, oldest first.
    pub records: Vec<WalRecord>,
    /// Bytes cut from torn or corrupt tails.
    pub torn_bytes: u64,
    /// The files read.
    pub files: usize,
}

/// An open write-ahead log.
pub struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    seq: u64,
    sync: SyncPolicy,
    /// How long the last append's sync took (taken by the store for its metrics).
    pub(crate) last_sync: Option<std::time::Duration>,
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

fn checksum(tag: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[tag]);
    h.update(payload);
    h.finalize()
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

/// The sequence numbers of the log files in `dir`, ascending.
fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io("list", dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Syncs a directory so that a created, renamed or removed entry is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

impl Wal {
    /// Opens the log in `dir` (creating it if needed), returning it and every intact record of
    /// its files; files numbered `covered` or lower hold records already in durable segments and
    /// are removed unread. New records go to a new file after the last.
    ///
    /// A log written by an earlier loupe as one `wal.log` beside `dir` is moved in as the first
    /// file.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory or a file cannot be created, read or truncated.
    pub fn open(dir: &Path, covered: u64, sync: SyncPolicy) -> Result<(Self, WalContents)> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        if let Some(parent) = dir.parent() {
            let legacy = parent.join("wal.log");
            if legacy.exists() && list(dir)?.is_empty() {
                let target = dir.join(file_name(covered + 1));
                std::fs::rename(&legacy, &target).map_err(io("move", &legacy))?;
            }
        }
        let mut contents = WalContents::default();
        let mut last = covered;
        for seq in list(dir)? {
            let path = dir.join(file_name(seq));
            if seq <= covered {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
                continue;
            }
            last = last.max(seq);
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io("open", &path))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io("read", &path))?;
            let good = parse(&bytes, &mut contents.records);
            let torn = (bytes.len() - good) as u64;
            if torn > 0 {
                file.set_len(good as u64).map_err(io("truncate", &path))?;
                file.sync_all().map_err(io("sync", &path))?;
                contents.torn_bytes += torn;
            }
            contents.files += 1;
        }
        let seq = last + 1;
        let (file, path) = Self::create(dir, seq)?;
        let wal = Self {
            dir: dir.to_owned(),
            file,
            path,
            seq,
            sync,
            last_sync: None,
        };
        Ok((wal, contents))
    }

    fn create(dir: &Path, seq: u64) -> Result<(File, PathBuf)> {
        let path = dir.join(file_name(seq));
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("create", &path))?;
        file.seek(SeekFrom::End(0)).map_err(io("seek", &path))?;
        sync_dir(dir)?;
        Ok((file, path))
    }

    /// The number of the file being appended to.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Appends one record and, under [`SyncPolicy::Batch`], syncs it to disk.
    ///
    /// # Errors
    /// [`Error::Io`] when the write or the sync fails; the record is then not durable.
    pub fn append(&mut self, tag: u8, payload: &[u8]) -> Result<()> {
        self.append_parts(tag, &[payload])
    }

    /// Appends one record whose payload is the concatenation of `parts` (a header and a body,
    /// say, without joining them first).
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn append_parts(&mut self, tag: u8, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut h = crc32fast::Hasher::new();
        h.update(&[tag]);
        parts.iter().for_each(|p| h.update(p));
        let mut frame = Vec::with_capacity(len + 9);
        frame.extend_from_slice(&(len as u32).to_le_bytes());
        frame.extend_from_slice(&h.finalize().to_le_bytes());
        frame.push(tag);
        parts.iter().for_each(|p| frame.extend_from_slice(p));
        self.file
            .write_all(&frame)
            .map_err(io("append to", &self.path))?;
        if self.sync == SyncPolicy::Batch {
            let started = std::time::Instant::now();
            self.file.sync_data().map_err(io("sync", &self.path))?;
            self.last_sync = Some(started.elapsed());
        }
        Ok(())
    }

    /// Closes the current file (synced) and starts the next; returns the number of the closed
    /// file: every record appended so far is in files numbered up to it.
    ///
    /// # Errors
    /// [`Error::Io`] when the sync or the new file fails.
    pub fn rotate(&mut self) -> Result<u64> {
        self.file.sync_all().map_err(io("sync", &self.path))?;
        let closed = self.seq;
        let (file, path) = Self::create(&self.dir, closed + 1)?;
        self.file = file;
        self.path = path;
        self.seq = closed + 1;
        Ok(closed)
    }

    /// Removes the files numbered `seq` or lower (never the current one).
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be removed.
    pub fn remove_through(&self, seq: u64) -> Result<()> {
        for s in list(&self.dir)?
            .into_iter()
            .filter(|s| *s <= seq && *s < self.seq)
        {
            let path = self.dir.join(file_name(s));
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
        sync_dir(&self.dir)
    }

    /// Bytes in the log's files.
    pub fn bytes(&self) -> u64 {
        list(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| std::fs::metadata(self.dir.join(file_name(s))).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Appends the intact records of `bytes` to `out`; returns the length of the intact prefix.
fn parse(bytes: &[u8], out: &mut Vec<WalRecord>) -> usize {
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 9) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let tag = header[8];
        if len > MAX_PAYLOAD_BYTES {
            break;
        }
        let Some(payload) = bytes.get(at + 9..at + 9 + len as usize) else {
            break;
        };
        if checksum(tag, payload) != crc {
            break;
        }
        out.push(WalRecord {
            tag,
            payload: payload.to_vec(),
        });
        at += 9 + len as usize;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loupe-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn payloads(c: &WalContents) -> Vec<&[u8]> {
        c.records.iter().map(|r| r.payload.as_slice()).collect()
    }

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = temp_dir("torn");
        let seq = {
            let (mut wal, c) = Wal::open(&dir, 0, SyncPolicy::Batch).unwrap();
            assert!(c.records.is_empty() && c.torn_bytes == 0);
            wal.append(1, b"first").unwrap();
            wal.append(2, b"second").unwrap();
            wal.seq()
        };
        // A crash mid-append: half a frame at the end.
        let path = dir.join(file_name(seq));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[20, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let (mut wal, c) = Wal::open(&dir, 0, SyncPolicy::Batch).unwrap();
        assert_eq!(c.torn_bytes, 6);
        assert_eq!(payloads(&c), vec![&b"first"[..], b"second"]);
        assert_eq!(c.records[1].tag, 2);
        wal.append(3, b"third").unwrap();
        drop(wal);
        let (_, c) = Wal::open(&dir, 0, SyncPolicy::Batch).unwrap();
        assert_eq!((c.records.len(), c.torn_bytes), (3, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_record_ends_its_file() {
        let dir = temp_dir("corrupt");
        let seq = {
            let (mut wal, _) = Wal::open(&dir, 0, SyncPolicy::Batch).unwrap();
            wal.append(1, b"good").unwrap();
            wal.append(1, b"flipped").unwrap();
            wal.seq()
        };
        let path = dir.join(file_name(seq));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, c) = Wal::open(&dir, 0, SyncPolicy::Batch).unwrap();
        assert_eq!(payloads(&c), vec![&b"good"[..]]);
        assert_eq!(c.torn_bytes, 16);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_and_removal_keep_only_uncovered_files() {
        let dir = temp_dir("rotate");
        let (mut wal, _) = Wal::open(&dir, 0, SyncPolicy::None).unwrap();
        wal.append(1, b"a").unwrap();
        let closed = wal.rotate().unwrap();
        wal.append(1, b"b").unwrap();
        drop(wal);
        // Reopened as if the segment of `closed` were durable: only "b" remains.
        let (mut wal, c) = Wal::open(&dir, closed, SyncPolicy::None).unwrap();
        assert_eq!(payloads(&c), vec![&b"b"[..]]);
        let closed = wal.rotate().unwrap();
        wal.remove_through(closed).unwrap();
        drop(wal);
        let (_, c) = Wal::open(&dir, 0, SyncPolicy::None).unwrap();
        assert!(c.records.is_empty(), "{:?}", payloads(&c));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_legacy_single_file_log_is_moved_in() {
        let dir = temp_dir("legacy");
        std::fs::create_dir_all(&dir).unwrap();
        {
            let (mut wal, _) = Wal::open(&dir.join("tmp"), 0, SyncPolicy::Batch).unwrap();
            wal.append(7, b"old").unwrap();
            std::fs::rename(dir.join("tmp").join(file_name(1)), dir.join("wal.log")).unwrap();
        }
        let (_, c) = Wal::open(&dir.join("wal"), 0, SyncPolicy::Batch).unwrap();
        assert_eq!(payloads(&c), vec![&b"old"[..]]);
        assert!(!dir.join("wal.log").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The damage done to a log file in [`damaged_logs_recover_the_records_before_the_damage`].
    #[derive(Debug, Clone)]
    enum Damage {
        /// Cut the file at this fraction of its length (a crash mid-write).
        Truncate(f64),
        /// Flip the bits of `mask` in the byte at this fraction of the length.
        Flip(f64, u8),
        /// Append these bytes (a torn frame or foreign bytes).
        Garbage(Vec<u8>),
    }

    fn damage() -> impl proptest::strategy::Strategy<Value = Damage> {
        use proptest::prelude::*;
        prop_oneof![
            (0.0..1.0f64).prop_map(Damage::Truncate),
            (0.0..1.0f64, 1..=255u8).prop_map(|(at, mask)| Damage::Flip(at, mask)),
            proptest::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Garbage),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Whatever happens to the end or the middle of a log file, reopening it gives back
        /// exactly the records wholly before the damage, in order, and the log takes appends
        /// again.
        #[test]
        fn damaged_logs_recover_the_records_before_the_damage(
            records in proptest::collection::vec(
                (1..=3u8, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)),
                1..16,
            ),
            damage in damage(),
        ) {
            let dir = temp_dir(&format!("prop-{}", std::process::id()));
            let seq = {
                let (mut wal, _) = Wal::open(&dir, 0, SyncPolicy::None).unwrap();
                for (tag, payload) in &records {
                    wal.append(*tag, payload).unwrap();
                }
                wal.seq()
            };
            let path = dir.join(file_name(seq));
            let mut bytes = std::fs::read(&path).unwrap();
            // Where each frame ends.
            let ends: Vec<usize> = records
                .iter()
                .scan(0, |end, (_, p)| {
                    *end += 9 + p.len();
                    Some(*end)
                })
                .collect();
            let kept = match &damage {
                Damage::Truncate(at) => {
                    let cut = (*at * bytes.len() as f64) as usize;
                    bytes.truncate(cut);
                    ends.iter().filter(|e| **e <= cut).count()
                }
                Damage::Flip(at, mask) => {
                    let i = ((*at * bytes.len() as f64) as usize).min(bytes.len() - 1);
                    bytes[i] ^= mask;
                    ends.iter().filter(|e| **e <= i).count()
                }
                Damage::Garbage(extra) => {
                    bytes.extend_from_slice(extra);
                    records.len()
                }
            };
            std::fs::write(&path, &bytes).unwrap();
            let (mut wal, c) = Wal::open(&dir, 0, SyncPolicy::None).unwrap();
            let want: Vec<WalRecord> = records[..kept]
                .iter()
                .map(|(tag, payload)| WalRecord { tag: *tag, payload: payload.clone() })
                .collect();
            proptest::prop_assert_eq!(&c.records, &want);
            wal.append(9, b"after").unwrap();
            drop(wal);
            let (_, c) = Wal::open(&dir, 0, SyncPolicy::None).unwrap();
            proptest::prop_assert_eq!(c.records.len(), kept + 1);
            std::fs::remove_dir_all(&dir).unwrap();
        }

        /// Any bytes as a log file: opening never panics, and keeps only whole, checked frames.
        #[test]
        fn arbitrary_bytes_open_as_a_log(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let dir = temp_dir(&format!("bytes-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(file_name(1)), &bytes).unwrap();
            let (_, c) = Wal::open(&dir, 0, SyncPolicy::None).unwrap();
            let read: usize = c.records.iter().map(|r| 9 + r.payload.len()).sum();
            proptest::prop_assert_eq!(read as u64 + c.torn_bytes, bytes.len() as u64);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
