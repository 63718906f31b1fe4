//! The write-ahead log: one append-only file of framed records.
//!
//! Frame: `len: u32 LE` (payload bytes) · `crc: u32 LE` (CRC-32/ISO-HDLC of tag and payload) ·
//! `tag: u8` · `payload`. Reading stops at the first frame that is short or fails its CRC; the
//! file is truncated there so later appends follow the last good record.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File name of the log inside the data directory.
const FILE_NAME: &str = "wal.log";

/// Largest payload read back (guards against a corrupt length field), bytes.
const MAX_PAYLOAD_BYTES: u32 = 256 << 20;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// The caller's tag (the signal).
    pub tag: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// An open write-ahead log.
pub struct Wal {
    file: File,
    path: PathBuf,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
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

impl Wal {
    /// Opens (creating if needed) the log in `dir`, returning it and every intact record, and
    /// the number of bytes cut from a torn tail.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory or file cannot be created, read or truncated.
    pub fn open(dir: &Path) -> Result<(Self, Vec<WalRecord>, u64)> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io("read", &path))?;
        let (records, good) = parse(&bytes);
        let torn = (bytes.len() - good) as u64;
        if torn > 0 {
            file.set_len(good as u64).map_err(io("truncate", &path))?;
            file.sync_all().map_err(io("sync", &path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io("seek", &path))?;
        Ok((Self { file, path }, records, torn))
    }

    /// Appends one record and syncs it to disk.
    ///
    /// # Errors
    /// [`Error::Io`] when the write or the sync fails; the record is then not durable.
    pub fn append(&mut self, tag: u8, payload: &[u8]) -> Result<()> {
        self.append_parts(tag, &[payload])
    }

    /// Appends one record whose payload is the concatenation of `parts` (a header and a body,
    /// say, without joining them first) and syncs it to disk.
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
        self.file.sync_data().map_err(io("sync", &self.path))
    }
}

/// Intact records of `bytes` and the length of the intact prefix.
fn parse(bytes: &[u8]) -> (Vec<WalRecord>, usize) {
    let mut records = Vec::new();
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
        records.push(WalRecord {
            tag,
            payload: payload.to_vec(),
        });
        at += 9 + len as usize;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loupe-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = temp_dir("torn");
        {
            let (mut wal, records, torn) = Wal::open(&dir).unwrap();
            assert!(records.is_empty() && torn == 0);
            wal.append(1, b"first").unwrap();
            wal.append(2, b"second").unwrap();
        }
        // A crash mid-append: half a frame at the end.
        let path = dir.join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[20, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let (mut wal, records, torn) = Wal::open(&dir).unwrap();
        assert_eq!(torn, 6);
        assert_eq!(
            records,
            vec![
                WalRecord {
                    tag: 1,
                    payload: b"first".to_vec()
                },
                WalRecord {
                    tag: 2,
                    payload: b"second".to_vec()
                }
            ]
        );
        wal.append(3, b"third").unwrap();
        drop(wal);
        let (_, records, torn) = Wal::open(&dir).unwrap();
        assert_eq!((records.len(), torn), (3, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_record_ends_the_log() {
        let dir = temp_dir("corrupt");
        {
            let (mut wal, _, _) = Wal::open(&dir).unwrap();
            wal.append(1, b"good").unwrap();
            wal.append(1, b"flipped").unwrap();
        }
        let path = dir.join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records, torn) = Wal::open(&dir).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(torn, 16);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
