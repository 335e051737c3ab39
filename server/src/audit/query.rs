//! "Who looked me up?": every access about one subject, from the index of
//! each rotated file and a scan of the live file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::index;
use super::Outcome;
use crate::Error;

/// One access, as read back: a single-access line, or one item of a batch
/// line. Serializes to the single-access line format (without the chain).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Line {
    /// Sequence number of the line it was read from.
    pub seq: u64,
    /// RFC 3339 UTC time with microseconds.
    pub time: String,
    /// Client name.
    pub client: Option<String>,
    /// Operation word.
    pub operation: String,
    /// The caller's address.
    pub source: Option<String>,
    /// Request ID.
    pub request: Option<String>,
    /// Fields returned or claimed.
    pub fields: Vec<String>,
    /// Personal ID of the subject.
    pub subject: Option<String>,
    /// Legacy ID asked for.
    pub legacy_id: Option<String>,
    /// Outcome word.
    pub outcome: String,
}

/// A line of the file, of either kind (event lines have no `operation`).
#[derive(Deserialize)]
struct Record {
    seq: u64,
    time: String,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    legacy_id: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    found: Option<Vec<Option<String>>>,
    #[serde(default)]
    not_found: Option<Vec<Option<String>>>,
    #[serde(default, rename = "match")]
    matched: Option<Vec<Option<String>>>,
    #[serde(default)]
    mismatch: Option<Vec<Option<String>>>,
}

/// Calls `found` with every access whose subject (or legacy ID, for a
/// 9-digit `subject`) is `subject` in the log whose live file is `path`
/// (its rotated files first, through their indexes), in log order (a batch
/// line gives one call per matching item). Returns how many accesses
/// matched, and how many candidate lines did not parse (e.g. a torn last
/// line after a crash).
pub fn query(
    path: &Path,
    subject: &str,
    mut found: impl FnMut(&Line),
) -> Result<(u64, u64), Error> {
    let key = index::query_key(subject).ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{subject:?} is neither a 12-digit personal ID nor a 9-digit legacy ID"),
        ),
    })?;
    let files = index::log_files(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (mut matched, mut skipped) = (0, 0);
    for file in files {
        let io_err = |source| Error::Io {
            path: file.clone(),
            source,
        };
        let idx = index::index_name(&file);
        let mut per_line = |line: &[u8]| match expand(line, subject, &mut found) {
            Some(n) => matched += n,
            None => skipped += 1,
        };
        if idx.exists() {
            let offsets = index::lookup(&idx, key).map_err(io_err)?;
            let f = File::open(&file).map_err(io_err)?;
            for offset in offsets {
                per_line(&read_line_at(&f, offset).map_err(io_err)?);
            }
        } else {
            let bytes = std::fs::read(&file).map_err(io_err)?;
            let needle = format!("\"{subject}\"");
            let mut last_line = usize::MAX;
            for at in memchr::memmem::find_iter(&bytes, needle.as_bytes()) {
                let start = bytes[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                if start == last_line {
                    continue;
                }
                last_line = start;
                let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |p| at + p);
                per_line(&bytes[start..end]);
            }
        }
    }
    Ok((matched, skipped))
}

fn read_line_at(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut chunk = vec![0; 4096];
    loop {
        let n = file.read_at(&mut chunk, offset + line.len() as u64)?;
        if n == 0 {
            return Ok(line);
        }
        if let Some(nl) = memchr::memchr(b'\n', &chunk[..n]) {
            line.extend_from_slice(&chunk[..nl]);
            return Ok(line);
        }
        line.extend_from_slice(&chunk[..n]);
    }
}

/// Reports the accesses about `subject` in one line; `None` when the line
/// does not parse.
fn expand(line: &[u8], subject: &str, found: &mut impl FnMut(&Line)) -> Option<u64> {
    let record: Record = serde_json::from_slice(line).ok()?;
    let Some(operation) = record.operation else {
        return Some(0); // An event of the log itself.
    };
    let line_of = |subject: Option<String>, legacy_id, outcome: &str| Line {
        seq: record.seq,
        time: record.time.clone(),
        client: record.client.clone(),
        operation: operation.clone(),
        source: record.source.clone(),
        request: record.request.clone(),
        fields: record.fields.clone(),
        subject,
        legacy_id,
        outcome: outcome.to_string(),
    };
    let mut n = 0;
    if let Some(outcome) = &record.outcome {
        let hit = record.subject.as_deref() == Some(subject)
            || record.legacy_id.as_deref() == Some(subject);
        if hit {
            n += 1;
            found(&line_of(
                record.subject.clone(),
                record.legacy_id.clone(),
                outcome,
            ));
        }
        return Some(n);
    }
    let groups = [
        (Outcome::Found, &record.found),
        (Outcome::NotFound, &record.not_found),
        (Outcome::Match, &record.matched),
        (Outcome::Mismatch, &record.mismatch),
    ];
    for (outcome, subjects) in groups {
        // A bulk-match row without an ID is listed as `null`: no subject.
        for s in subjects
            .iter()
            .flatten()
            .flatten()
            .filter(|s| *s == subject)
        {
            n += 1;
            found(&line_of(Some(s.clone()), None, outcome.as_str()));
        }
    }
    Some(n)
}
