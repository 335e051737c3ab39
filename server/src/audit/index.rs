//! The per-subject index of a rotated file, and the names of the files.
//!
//! A live log `audit.log` rotates to `audit.log.<first seq, 20 digits>`, so
//! names sort in chain order. Beside each rotated file, `<file>.idx` holds
//! its sorted `(key, line offset)` pairs, sixteen bytes each after a
//! sixteen-byte header (`DANCUAI1`, then the pair count), little-endian. The
//! key of a personal ID is its value; of a legacy ID, its value with
//! [`LEGACY_TAG`] set. `audit-query` binary-searches each index (about
//! twenty reads for a file of a million lines) and reads only the lines it
//! points at; the live file, which has no index yet, is scanned, which costs
//! at most the rotation size (and so is `audit.log.next`, the file made
//! ahead for the next rotation).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::storage::FILE_MODE;

const MAGIC: &[u8; 8] = b"DANCUAI1";
const HEADER: u64 = 16;
const PAIR: u64 = 16;

/// Set in the key of a legacy ID.
pub const LEGACY_TAG: u64 = 1 << 62;

/// The name a live file gets when it rotates.
pub fn rotated_name(live: &Path, first_seq: u64) -> PathBuf {
    let mut name = live.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{first_seq:020}"));
    live.with_file_name(name)
}

/// The next live file, made ahead of a rotation (see `rotator`): it holds
/// lines only between a rotation and the renames that follow it.
pub fn next_name(live: &Path) -> PathBuf {
    let mut name = live.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    live.with_file_name(name)
}

/// The index beside a rotated file.
pub fn index_name(rotated: &Path) -> PathBuf {
    let mut name = rotated.file_name().unwrap_or_default().to_os_string();
    name.push(".idx");
    rotated.with_file_name(name)
}

/// The rotated files of the live log `live`, oldest first.
pub fn rotated_files(live: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(base) = live.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match live.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_rotated = name
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|seq| seq.len() == 20 && seq.bytes().all(|b| b.is_ascii_digit()));
        if is_rotated {
            found.push(dir.join(name));
        }
    }
    found.sort();
    Ok(found)
}

/// Every file of the log `live`, in chain order: the rotated ones, then the
/// live one and the next one (lines in it follow the live file's until a
/// rotation's renames are done; otherwise it holds only zeros) if they
/// exist.
pub fn log_files(live: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = rotated_files(live)?;
    for file in [live.to_path_buf(), next_name(live)] {
        if file.exists() {
            files.push(file);
        }
    }
    Ok(files)
}

/// Calls `key` with the key of every personal or legacy ID in `line` (every
/// JSON string of exactly 12 or 9 digits: no other field of a line is one).
pub fn line_keys(line: &[u8], mut key: impl FnMut(u64)) {
    let mut i = 0;
    while let Some(open) = memchr::memchr(b'"', &line[i..]) {
        let start = i + open + 1;
        // Find the closing quote, skipping escapes (client names may hold
        // any character).
        let mut j = start;
        while j < line.len() && line[j] != b'"' {
            j += if line[j] == b'\\' { 2 } else { 1 };
        }
        let Some(text) = line.get(start..j) else {
            return;
        };
        if (text.len() == 12 || text.len() == 9) && text.iter().all(u8::is_ascii_digit) {
            let value = text.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
            key(if text.len() == 12 {
                value
            } else {
                value | LEGACY_TAG
            });
        }
        i = j + 1;
        if i >= line.len() {
            return;
        }
    }
}

/// The key of a query: a 12-digit personal ID or a 9-digit legacy ID.
pub fn query_key(subject: &str) -> Option<u64> {
    let digits = subject.len() == 12 || subject.len() == 9;
    if !digits || !subject.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = subject.parse().ok()?;
    Some(if subject.len() == 12 {
        value
    } else {
        value | LEGACY_TAG
    })
}

/// Builds and writes the index of a rotated file (through a temporary name,
/// so a crash leaves no half index) at full speed, not paced. Returns its
/// path.
pub fn build(rotated: &Path) -> io::Result<PathBuf> {
    Builder::default().build(rotated, &mut || Ok(()))
}

/// Builds the index of every rotated file of `live` that has none, oldest
/// first, at full speed (`audit-gen`, whose log is closed before the
/// background builder has caught up). Returns how many it built.
pub fn build_missing(live: &Path) -> io::Result<usize> {
    let mut builder = Builder::default();
    let missing = unindexed_files(live)?;
    for rotated in &missing {
        builder.build(rotated, &mut || Ok(()))?;
    }
    Ok(missing.len())
}

/// The rotated files of `live` that have no index yet, oldest first: those
/// a shutdown left behind the deferred builder (see `indexer`), or a crash.
pub fn unindexed_files(live: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = rotated_files(live)?;
    files.retain(|f| !index_name(f).exists());
    Ok(files)
}

/// Builds indexes one after another, reusing its buffers.
///
/// Why: a 128 MiB file of batch lines holds about 8.5 million subjects.
/// Reading the whole file into a new buffer and growing a new pair vector
/// and output buffer faulted in and zeroed about 400 MB of fresh pages per
/// build: measured (perf, batchGet 1000 with the log buffered), the index
/// thread took 27 % of the server's CPU, most of it in `clear_page_erms`
/// and `memmove`. Streaming the file through a small buffer, sizing the
/// pair vector once (growing it by doubling re-faulted it at every step)
/// and keeping it between builds, and streaming the output leave the parse
/// and the sort once the first build has faulted the vector in.
#[derive(Default)]
pub struct Builder {
    pairs: Vec<(u64, u64)>,
    line: Vec<u8>,
}

/// How much of a rotated file is parsed, or of its index written, between
/// two calls of a build's `between`.
pub const SLICE: u64 = 4 << 20;

impl Builder {
    /// Builds the index of `rotated`, calling `between` after each
    /// [`SLICE`] parsed, before the sort, and after each slice written and
    /// flushed: the background builder paces itself and waits out the
    /// server's peaks there (see `indexer`). An error from `between`
    /// abandons the build (its temporary file is removed) and is returned.
    pub fn build(
        &mut self,
        rotated: &Path,
        between: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<PathBuf> {
        let file = File::open(rotated)?;
        // Each subject takes at least 15 bytes of a line (`"079089012345",`):
        // one allocation, of which only the pages used are ever touched.
        let most = usize::try_from(file.metadata()?.len() / 15).unwrap_or(usize::MAX);
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let pairs = &mut self.pairs;
        pairs.clear();
        pairs.reserve(most);
        let mut offset = 0u64;
        let mut next_pause = SLICE;
        loop {
            self.line.clear();
            let n = reader.read_until(b'\n', &mut self.line)?;
            if n == 0 {
                break;
            }
            line_keys(&self.line, |k| pairs.push((k, offset)));
            offset += n as u64;
            if offset >= next_pause {
                between()?;
                next_pause = offset + SLICE;
            }
        }
        between()?;
        pairs.sort_unstable();
        pairs.dedup();
        let path = index_name(rotated);
        let mut tmp_name = path.clone().into_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let written = write_pairs(&tmp, pairs, between);
        if let Err(e) = written {
            // Abandoned or failed: no half index is left to a later build
            // (which would truncate it anyway) or to the operator.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

/// Writes `pairs` as an index at `tmp` and syncs it.
fn write_pairs(
    tmp: &Path,
    pairs: &[(u64, u64)],
    between: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(tmp)?;
    let mut out = BufWriter::with_capacity(1 << 20, TrickleSync::new(file, between));
    out.write_all(MAGIC)?;
    out.write_all(&(pairs.len() as u64).to_le_bytes())?;
    for (k, o) in pairs {
        out.write_all(&k.to_le_bytes())?;
        out.write_all(&o.to_le_bytes())?;
    }
    out.into_inner()
        .map_err(|e| e.into_error())?
        .file
        .sync_all()
}

/// Writes an index to disk [`SLICE`] bytes at a time as it is made.
///
/// Why: the index of a 128 MiB file of batch lines is about 136 MB. Left
/// to one `fsync` at the end, it went to the disk in one burst, and the
/// audit writer's `fdatasync`s queued behind it: in the national-day runs
/// at scale 1 (issue 18), the second in which an index was written had a
/// singles p99 of 23–41 ms against ~3 ms around it, in both rotations of
/// each run. Written a few MiB at a time, and (see [`lower_priority`])
/// at the idle I/O priority, the commits' flushes pass between the
/// stretches.
struct TrickleSync<'a> {
    file: File,
    written: u64,
    synced: u64,
    between: &'a mut dyn FnMut() -> io::Result<()>,
}

impl<'a> TrickleSync<'a> {
    fn new(file: File, between: &'a mut dyn FnMut() -> io::Result<()>) -> TrickleSync<'a> {
        TrickleSync {
            file,
            written: 0,
            synced: 0,
            between,
        }
    }

    fn sync_written(&mut self) -> io::Result<()> {
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        let (from, len) = (
            self.synced as libc::off64_t,
            (self.written - self.synced) as libc::off64_t,
        );
        // SAFETY: the descriptor is `self.file`'s, open for the whole call;
        // `sync_file_range` reads no memory of ours.
        let rc = unsafe { libc::sync_file_range(self.file.as_raw_fd(), from, len, flags) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.synced = self.written;
        Ok(())
    }
}

impl Write for TrickleSync<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.synced >= SLICE {
            self.sync_written()?;
            (self.between)()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Gives the calling thread the lowest CPU priority (nice 19) and puts its
/// I/O in the idle class (best effort: where the kernel or its I/O
/// scheduler has no classes, nothing changes), so that the index builder
/// (about a second of a core per 128 MiB file, sorting) waits for the
/// request threads and its reads and writes for the commits'.
pub fn lower_priority() {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    // SAFETY: setpriority and ioprio_set take integers and touch no memory
    // of ours; on Linux, `who` 0 is the calling thread for both.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        );
    }
}

/// The line offsets the index at `path` lists for `key`, ascending.
pub fn lookup(path: &Path, key: u64) -> io::Result<Vec<u64>> {
    let file = File::open(path)?;
    let mut header = [0; HEADER as usize];
    file.read_exact_at(&mut header, 0)?;
    if &header[..8] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not an audit index", path.display()),
        ));
    }
    let count = u64::from_le_bytes(header[8..].try_into().expect("eight bytes"));
    if file.metadata()?.len() < HEADER + count * PAIR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is shorter than its header says", path.display()),
        ));
    }
    let pair_at = |i: u64| -> io::Result<(u64, u64)> {
        let mut b = [0; PAIR as usize];
        file.read_exact_at(&mut b, HEADER + i * PAIR)?;
        Ok((
            u64::from_le_bytes(b[..8].try_into().expect("eight bytes")),
            u64::from_le_bytes(b[8..].try_into().expect("eight bytes")),
        ))
    };
    // Lower bound of `key`.
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pair_at(mid)?.0 < key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut offsets = Vec::new();
    while lo < count {
        let (k, o) = pair_at(lo)?;
        if k != key {
            break;
        }
        offsets.push(o);
        lo += 1;
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ids_of_a_line() {
        let line = br#"{"seq":3,"prev":"00","time":"2024-03-14T09:26:53.000042Z","client":"a\"079089012345","request":"0000000000000001","found":["079089012345","001089000007"],"legacy_id":"000012345"}"#;
        let mut keys = Vec::new();
        line_keys(line, |k| keys.push(k));
        assert_eq!(
            keys,
            vec![79_089_012_345, 1_089_000_007, 12_345 | LEGACY_TAG]
        );
        assert_eq!(query_key("000012345"), Some(12_345 | LEGACY_TAG));
        assert_eq!(query_key("12345"), None);
    }

    #[test]
    fn an_index_finds_every_line_of_a_subject_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("a.log");
        let rotated = rotated_name(&live, 1);
        let mut text = String::new();
        let mut expected = Vec::new();
        for i in 0..1000u64 {
            if i % 7 == 3 {
                expected.push(text.len() as u64);
            }
            let subject = if i % 7 == 3 { 42 } else { 1000 + i };
            text.push_str(&format!("{{\"subject\":\"{subject:012}\"}}\n"));
        }
        std::fs::write(&rotated, text).unwrap();
        let idx = build(&rotated).unwrap();
        assert_eq!(lookup(&idx, 42).unwrap(), expected);
        assert!(lookup(&idx, 43).unwrap().is_empty());
        assert_eq!(lookup(&idx, 1999).unwrap().len(), 1);
        assert_eq!(rotated_files(&live).unwrap(), vec![rotated]);
    }
}
