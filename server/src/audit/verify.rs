//! `audit-verify`: follows the hash chain through the files of a log.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::format::{hex, line_hash, GENESIS};
use super::storage::parse_head;
use crate::Error;

/// The first line that breaks the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// The file.
    pub file: PathBuf,
    /// Line number in that file, from 1.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines that verified.
    pub lines: u64,
    /// Sequence number of the first line (1 when the log starts with its
    /// genesis line; more when older files were removed).
    pub first_seq: Option<u64>,
    /// Sequence number of the last line that verified.
    pub last_seq: Option<u64>,
    /// The first broken line, if any (verification stops there).
    pub broken: Option<Broken>,
}

/// Checks `files`, in the order given (rotated files oldest first, then
/// the live file), as one chain: every line parses, numbers follow each
/// other, and each `prev` is the SHA-256 of the line before. The first
/// line's `prev` is taken on trust unless its number is 1 (then it must be
/// the genesis hash): that is where a log whose oldest files were removed
/// begins. A last line without a newline is reported as torn.
pub fn verify(files: &[impl AsRef<Path>]) -> Result<VerifyReport, Error> {
    let mut report = VerifyReport::default();
    let mut expected: Option<(u64, [u8; 32])> = None;
    for file in files {
        let file = file.as_ref();
        let io_err = |source| Error::Io {
            path: file.to_path_buf(),
            source,
        };
        let mut reader = BufReader::with_capacity(1 << 20, File::open(file).map_err(io_err)?);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
                break;
            }
            if line.first() == Some(&0) && line.iter().all(|&b| b == 0) {
                // Preallocated space after the last line of a live file.
                break;
            }
            number += 1;
            let broken = |reason: String| Broken {
                file: file.to_path_buf(),
                line: number,
                reason,
            };
            if line.pop() != Some(b'\n') {
                report.broken = Some(broken(
                    "torn last line (no newline; cut when the log is next opened)".into(),
                ));
                return Ok(report);
            }
            let Some(head) = parse_head(&line) else {
                report.broken = Some(broken("not a chained audit line".into()));
                return Ok(report);
            };
            let check = match expected {
                Some((seq, prev)) => {
                    if head.seq != seq {
                        Err(format!("sequence number {} where {seq} was due", head.seq))
                    } else if head.prev != hex(&prev) {
                        Err(format!(
                            "seq {}: prev {} is not the hash of the line before ({})",
                            head.seq,
                            head.prev,
                            hex(&prev)
                        ))
                    } else {
                        Ok(())
                    }
                }
                None if head.seq == 1 && head.prev != hex(&GENESIS) => {
                    Err("the first line (seq 1) does not carry the genesis hash".into())
                }
                None => Ok(()),
            };
            if let Err(reason) = check {
                report.broken = Some(broken(reason));
                return Ok(report);
            }
            report.first_seq.get_or_insert(head.seq);
            report.last_seq = Some(head.seq);
            report.lines += 1;
            expected = Some((head.seq + 1, line_hash(&line)));
        }
    }
    Ok(report)
}
