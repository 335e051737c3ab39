//! Where the lines go: the live file, its repair on open, and rotation.
//!
//! The writer thread talks to a [`Storage`], so that unit tests can inject
//! a failing write or fsync; [`FileStorage`] is the real one. Opening the
//! live file finds its last complete, well-formed line: whatever follows it
//! (a line torn by a crash, zeros a power cut left) is cut, and the writer
//! records the cut as the next line. A new live file (the first, or the one
//! after a rotation) chains to the last line of the newest rotated file.
//!
//! A rotation on the writer thread only switches to a spare file made
//! ahead; the rest happens on the [`Rotator`] thread, and opening the log
//! first completes a rotation a crash interrupted ([`rotator::complete`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::format::{line_hash, ChainState};
use super::index;
use super::indexer::Pressure;
use super::rotator::{self, Rotator};
use super::zeroing::Zeroer;

/// Mode of every file of the log: the owner reads and writes, nobody else.
pub const FILE_MODE: u32 = 0o600;

/// What opening the live file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Where the chain continues.
    pub chain: ChainState,
    /// Bytes cut from the end (a torn or unreadable tail), if any, and why.
    pub cut: Option<String>,
}

/// The file sink of the writer thread.
pub trait Storage: Send + 'static {
    /// (Re)opens the live file, cutting a torn tail, and says where the
    /// chain continues.
    fn open(&mut self) -> io::Result<Opened>;
    /// Appends bytes to the live file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes what was written durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Whether the live file should be rotated before more is written.
    fn wants_rotation(&self, now_us: u64) -> bool;
    /// Starts a new live file whose first line will be `next_seq`; the old
    /// one goes under its rotated name. Everything written must be synced
    /// first: the next file's lines may become durable before the rest of
    /// the rotation does, and must never follow lines a crash could lose.
    fn rotate(&mut self, next_seq: u64, now_us: u64) -> io::Result<()>;
    /// Waits for background work (rotations, index builds).
    fn finish(&mut self) {}
}

/// When to rotate.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    /// Rotate once the live file holds this many bytes.
    pub max_bytes: u64,
    /// Rotate when the UTC day changes.
    pub daily: bool,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            max_bytes: 128 << 20,
            daily: true,
        }
    }
}

/// The live file on disk and its rotated predecessors beside it.
pub struct FileStorage {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    /// End of the last line written.
    size: u64,
    /// Whether to preallocate (pointless when fsyncs are rare: buffered).
    preallocate: bool,
    /// The thread that preallocates, started by the first open.
    zeroer: Option<Zeroer>,
    /// Sequence number of the live file's first line.
    first_seq: u64,
    /// UTC day (days since the epoch) of the live file's first line.
    day: u64,
    /// Makes the next file and retires rotated ones, started by the first
    /// open.
    rotator: Option<Rotator>,
    /// The server's load, which the index builder defers to.
    pressure: Arc<Pressure>,
}

impl FileStorage {
    /// Storage at `path` (not opened yet).
    pub fn new(path: &Path, rotation: Rotation) -> FileStorage {
        FileStorage {
            preallocate: true,
            path: path.to_path_buf(),
            rotation,
            file: None,
            size: 0,
            zeroer: None,
            first_seq: 1,
            day: 0,
            rotator: None,
            pressure: Arc::default(),
        }
    }

    /// Has the index builder defer to `pressure` (the server's sheds).
    pub fn with_pressure(mut self, pressure: Arc<Pressure>) -> FileStorage {
        self.pressure = pressure;
        self
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the audit file is not open"))
    }

    fn rotator(&self) -> io::Result<&Rotator> {
        self.rotator
            .as_ref()
            .ok_or_else(|| io::Error::other("the audit rotator is not started"))
    }

    /// Zeros a spare next file gets (and the zeroer keeps ahead of the
    /// writer).
    fn zero_ahead(&self) -> u64 {
        if self.preallocate {
            PREALLOCATE.min(self.rotation.max_bytes)
        } else {
            0
        }
    }
}

/// Opens (creating with mode 0600) the live file for positioned writes
/// (not `O_APPEND`: lines are written into preallocated space).
pub fn open_live(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
}

/// The live file grows by this much zero-filled, fsynced space at a time,
/// made by a thread of its own ([`Zeroer`]) before the writer needs it.
///
/// Why: appending changes the file size, so every `fdatasync` must commit
/// the size to the filesystem journal (about 4 ms on the reference VM's
/// ext4); overwriting blocks that are already allocated and written needs
/// only the data flushed (about 0.2 ms there). PostgreSQL preallocates and
/// recycles its WAL segments for the same reason. The zeros after the last
/// line are not part of the log: opening the file cuts them (silently: they
/// are ours), a clean close and a rotation truncate them, and readers stop
/// at them.
pub const PREALLOCATE: u64 = 8 << 20;

impl FileStorage {
    /// Without preallocation (buffered mode: one fsync a second, so the
    /// zero-filling would only double the bytes written).
    pub fn without_preallocation(mut self) -> FileStorage {
        self.preallocate = false;
        self
    }

    /// Before writing `need` bytes at `size`: waits if the zeroer is making
    /// that space now, and has it zero ahead once it runs short; if it
    /// cannot (a full disk), writes go on past it and fail, or not, on
    /// their own.
    fn preallocate(&mut self, need: u64) {
        if let Some(zeroer) = &self.zeroer {
            zeroer.claim(self.size, need, self.zero_ahead(), self.rotation.max_bytes);
        }
    }

    /// Zeroes ahead in the live file, now open with `zeroed` bytes that are
    /// its lines or zeros ready for them.
    fn attach_zeroer(&mut self, zeroed: u64) -> io::Result<()> {
        if !self.preallocate {
            return Ok(());
        }
        if self.zeroer.is_none() {
            self.zeroer = Some(Zeroer::start()?);
        }
        if let (Some(zeroer), Some(file)) = (&self.zeroer, &self.file) {
            zeroer.attach(file, zeroed.max(self.size))?;
        }
        Ok(())
    }

    /// Stops zeroing ahead (before the live file is cut, closed or reopened).
    fn detach_zeroer(&mut self) {
        if let Some(zeroer) = &self.zeroer {
            zeroer.detach();
        }
    }

    /// Cuts the preallocated zeros (at close; a rotated file's are cut by
    /// the rotator).
    fn trim(&mut self) -> io::Result<()> {
        self.detach_zeroer();
        let size = self.size;
        let file = self.file()?;
        file.set_len(size)?;
        file.sync_all()
    }
}

fn day_of(time_us: u64) -> u64 {
    time_us / 86_400_000_000
}

impl Storage for FileStorage {
    fn open(&mut self) -> io::Result<Opened> {
        self.detach_zeroer();
        self.file = None;
        if self.rotator.is_none() {
            self.rotator = Some(Rotator::start(
                &self.path,
                self.zero_ahead(),
                Arc::clone(&self.pressure),
            )?);
        }
        // No job runs while the files are looked at; the spare is made again
        // once the live file is settled.
        let rotator = self.rotator()?;
        drop(rotator.quiesce());
        let completed = rotator::complete(&self.path)?;
        // The file just rotated, and any whose build a close left pending
        // (or a crash interrupted): the builder indexes them when it may.
        for rotated in index::unindexed_files(&self.path)? {
            rotator.index(rotated)?;
        }
        let existed = self.path.exists();
        let file = open_live(&self.path)?;
        if !existed {
            sync_dir(&self.path)?;
        }
        let len = content_end(&file)?;
        let tail = find_tail(&file, len)?;
        let mut cut = completed.cut;
        if file.metadata()?.len() > tail.end {
            file.set_len(tail.end)?;
            file.sync_all()?;
        }
        if tail.end < len {
            let dropped = len - tail.end;
            let this = format!(
                "cut {dropped} bytes after the last complete line at byte {} ({})",
                tail.end,
                tail.why.unwrap_or("torn last line")
            );
            cut = Some(match cut {
                Some(before) => format!("{before}; {this}"),
                None => this,
            });
        }
        let chain = match tail.last {
            Some(chain) => chain,
            None => newest_rotated_chain(&self.path)?.unwrap_or(ChainState::GENESIS),
        };
        let first = first_line_head(&file)?;
        self.first_seq = first.as_ref().map_or(chain.next_seq, |h| h.seq);
        self.day = first
            .and_then(|h| parse_time_us(&h.time))
            .map_or_else(|| day_of(super::now_us()), day_of);
        self.size = tail.end;
        self.file = Some(file);
        self.attach_zeroer(0)?;
        self.rotator()?.prepare()?;
        Ok(Opened { chain, cut })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.preallocate(buf.len() as u64);
        let at = self.size;
        self.file()?.write_all_at(buf, at)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file()?.sync_data()?;
        // A rotation that failed behind the writer fails the log too.
        self.rotator()?.check()
    }

    fn wants_rotation(&self, now_us: u64) -> bool {
        self.size > 0
            && (self.size >= self.rotation.max_bytes
                || (self.rotation.daily && day_of(now_us) != self.day))
    }

    fn rotate(&mut self, next_seq: u64, now_us: u64) -> io::Result<()> {
        let spare = self.rotator()?.take_spare()?;
        // Waits only if the zeroer is in the middle of a stretch (it zeroes
        // nothing past the rotation size, so only a daily rotation can
        // meet one).
        self.detach_zeroer();
        let old = self
            .file
            .replace(spare.file)
            .ok_or_else(|| io::Error::other("the audit file is not open"))?;
        let (len, first_seq) = (self.size, self.first_seq);
        self.size = 0;
        self.first_seq = next_seq;
        self.day = day_of(now_us);
        self.rotator()?.retire(old, len, first_seq)?;
        self.attach_zeroer(spare.zeroed)
    }

    fn finish(&mut self) {
        if self.file.is_some() {
            if let Err(e) = self.trim() {
                eprintln!(
                    "dancu-server: audit log {}: preallocated space not cut at close: {e} \
                     (cut when it is next opened)",
                    self.path.display()
                );
            }
        }
        self.zeroer = None;
        if let Some(rotator) = self.rotator.take() {
            rotator.close(&self.path);
        }
    }
}

/// Makes a rename or a new file in `path`'s directory durable.
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The head of a line: enough to follow the chain.
#[derive(Debug, Deserialize)]
pub struct LineHead {
    /// Sequence number.
    pub seq: u64,
    /// Hex SHA-256 of the line before.
    pub prev: String,
    /// Time of the line.
    #[serde(default)]
    pub time: String,
}

/// Parses a line's head; `None` when it is not a line of this format.
pub fn parse_head(line: &[u8]) -> Option<LineHead> {
    let head: LineHead = serde_json::from_slice(line).ok()?;
    (head.prev.len() == 64).then_some(head)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` back to microseconds since the epoch.
fn parse_time_us(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { text.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).ok().map(|s| s * 1_000_000)
}

pub(super) struct Tail {
    /// End of the last good line (after its newline).
    pub(super) end: u64,
    /// The chain after that line; `None` when the file has no good line.
    last: Option<ChainState>,
    /// Why a tail is cut, when it is not simply torn.
    why: Option<&'static str>,
}

/// Finds the last complete line that parses, reading backwards in growing
/// windows (a batch line is tens of kilobytes at most).
/// End of the file's content: its length without trailing zero bytes
/// (preallocated space, see [`PREALLOCATE`]).
pub(super) fn content_end(file: &File) -> io::Result<u64> {
    let mut end = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(last) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

pub(super) fn find_tail(file: &File, len: u64) -> io::Result<Tail> {
    let mut window: u64 = 1 << 20;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0; (len - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        let mut end = buf.len();
        let mut why = None;
        // `end` is just past a newline (or the end of the buffer).
        while let Some(nl) = buf[..end].iter().rposition(|&b| b == b'\n') {
            let line_start = buf[..nl]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            if line_start == 0 && start > 0 {
                break; // The line may begin before the window.
            }
            let line = &buf[line_start..nl];
            if let Some(head) = parse_head(line) {
                return Ok(Tail {
                    end: start + nl as u64 + 1,
                    last: Some(ChainState {
                        next_seq: head.seq + 1,
                        prev: line_hash(line),
                    }),
                    why,
                });
            }
            why = Some("unreadable lines at the end");
            end = line_start;
        }
        if start == 0 {
            return Ok(Tail {
                end: 0,
                last: None,
                why: why.or(if len > 0 {
                    Some("no complete line")
                } else {
                    None
                }),
            });
        }
        window = window.saturating_mul(4);
    }
}

pub(super) fn first_line_head(file: &File) -> io::Result<Option<LineHead>> {
    let mut reader = BufReader::new(file.try_clone()?);
    let mut line = Vec::new();
    (&mut reader).take(1 << 22).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    line.pop();
    Ok(parse_head(&line))
}

/// The chain after the last line of the newest rotated file beside `path`.
fn newest_rotated_chain(path: &Path) -> io::Result<Option<ChainState>> {
    let files = index::rotated_files(path)?;
    let Some(newest) = files.last() else {
        return Ok(None);
    };
    let file = File::open(newest)?;
    let len = content_end(&file)?;
    Ok(find_tail(&file, len)?.last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_line_times() {
        let t = parse_time_us("2024-03-14T09:26:53.000042Z").unwrap();
        assert_eq!(t, 1_710_408_413_000_000);
        assert_eq!(
            parse_time_us("2000-02-29T00:00:00"),
            Some(951_782_400_000_000)
        );
    }
}
