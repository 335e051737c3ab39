//! The change log: append-only segment files of checksummed, sequence-numbered
//! records, written by one thread with group commit.
//!
//! `LOG.md` specifies the bytes. The write path is PostgreSQL's and Redis's
//! (`appendfsync always`): request threads queue framed records on a channel
//! in sequence order; the log thread takes everything queued, writes it with
//! one `write`, makes it durable with one `fdatasync`, and only then hands
//! the batch to [`Durable::durable`], which makes the changes visible and
//! answers their writers. One fsync covers every writer that queued meanwhile.
//!
//! A write or fsync error is final: the batch and everything after it fail,
//! and the log takes no more records until it is reopened (SQLite's rule: an
//! error on the log stops writes rather than carrying on).
//!
//! [`ChangeLog::open`] reads every segment back. A record cut short by a
//! crash, or damaged, at the very end of the last segment is cut off (and
//! reported); a damaged record with intact records after it is refused with
//! [`Error::Corrupt`], because cutting it would drop acknowledged changes.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};

/// First bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"DANCULOG";
/// The segment format this build writes and reads.
pub const LOG_FORMAT_VERSION: u32 = 1;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_SIZE: usize = 32;
/// Bytes before each record's payload: length, checksum, sequence.
pub const FRAME_HEADER_SIZE: usize = 20;
/// The largest payload a record may have.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Records taken into one write + fsync at most.
const MAX_GROUP: usize = 4096;

/// What reopening found at the end of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records read back (all segments).
    pub records: u64,
    /// Records after the snapshot's folded sequence (handed to `apply`).
    pub replayed: u64,
    /// The last sequence number in the log (0: empty).
    pub last_sequence: u64,
    /// A damaged or incomplete tail that was cut off.
    pub cut: Option<TailCut>,
}

/// A tail cut off at reopen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// The segment.
    pub segment: PathBuf,
    /// Where the segment now ends.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Why (incomplete record, checksum mismatch, ...).
    pub reason: String,
}

impl std::fmt::Display for TailCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cut {} bytes at offset {} of {} ({})",
            self.bytes,
            self.offset,
            self.segment.display(),
            self.reason
        )
    }
}

/// Called by the log thread with each durable batch, in sequence order.
pub trait Durable<T>: Send + 'static {
    /// The batch is on disk.
    fn durable(&self, batch: Vec<(u64, T)>);
    /// The log failed; `batch` was not made durable and never will be.
    fn failed(&self, error: &str, batch: Vec<(u64, T)>);
}

/// A record as read back: its sequence number and payload.
pub type RawRecord = (u64, Vec<u8>);

/// A segment on disk.
#[derive(Clone, Debug)]
struct Segment {
    first_sequence: u64,
    path: PathBuf,
}

/// Where every `INDEX_EVERY`-th record starts, for reading the feed.
#[derive(Clone, Copy, Debug)]
struct IndexPoint {
    sequence: u64,
    segment_first: u64,
    offset: u64,
}

const INDEX_EVERY: u64 = 64;

/// State shared by the writer thread and feed readers.
#[derive(Debug, Default)]
struct Shared {
    segments: Vec<Segment>,
    index: Vec<IndexPoint>,
}

enum Message<T> {
    Record(u64, Vec<u8>, T),
    /// Close the current segment and start one whose first record is `next`.
    Rotate(u64, crossbeam_channel::Sender<Result<()>>),
}

/// An open change log. Dropping it stops the log thread after it has written
/// and synced everything queued.
pub struct ChangeLog<T: Send + 'static> {
    dir: PathBuf,
    tx: Option<Sender<Message<T>>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
}

fn segment_name(first_sequence: u64) -> String {
    format!("changes-{first_sequence:020}.log")
}

fn segment_header(first_sequence: u64) -> [u8; SEGMENT_HEADER_SIZE] {
    let mut h = [0u8; SEGMENT_HEADER_SIZE];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&LOG_FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_sequence.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..24]);
    h[24..32].copy_from_slice(&sum.to_le_bytes());
    h
}

/// The record checksum: xxh3-64 of the sequence number (LE) then the payload.
fn record_checksum(sequence: u64, payload: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(&sequence.to_le_bytes());
    h.update(payload);
    h.digest()
}

/// Frames `payload` as record `sequence`.
pub fn frame(sequence: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_SIZE + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_checksum(sequence, payload).to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_prefix("changes-")
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        let first_sequence = number.parse().map_err(|_| Error::BadSegment {
            path: entry.path(),
            reason: "the name's sequence number is not a number".into(),
        })?;
        segments.push(Segment {
            first_sequence,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_sequence);
    Ok(segments)
}

/// One record read from a segment.
enum Read_ {
    Record {
        sequence: u64,
        payload: Vec<u8>,
    },
    End,
    /// A bad record at `offset`; `complete` says whether it claims to end
    /// before the file does (then something follows it).
    Bad {
        reason: String,
        complete: bool,
    },
}

/// Reads segments frame by frame.
struct SegmentReader {
    reader: BufReader<File>,
    offset: u64,
    len: u64,
}

impl SegmentReader {
    fn open(segment: &Segment) -> Result<SegmentReader> {
        let path = &segment.path;
        let mut file = File::open(path).map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        let mut header = [0u8; SEGMENT_HEADER_SIZE];
        let bad = |reason: &str| Error::BadSegment {
            path: path.clone(),
            reason: reason.into(),
        };
        file.read_exact(&mut header)
            .map_err(|_| bad("shorter than a segment header"))?;
        if header[..8] != SEGMENT_MAGIC {
            return Err(bad("wrong magic"));
        }
        if header != segment_header(segment.first_sequence) {
            let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
            if version != LOG_FORMAT_VERSION {
                return Err(bad(&format!(
                    "format version {version}, this build reads {LOG_FORMAT_VERSION}"
                )));
            }
            return Err(bad(
                "header checksum or first sequence does not match the name",
            ));
        }
        Ok(SegmentReader {
            reader: BufReader::with_capacity(1 << 20, file),
            offset: SEGMENT_HEADER_SIZE as u64,
            len,
        })
    }

    fn seek(&mut self, offset: u64) -> Result<()> {
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| Error::Io {
                path: PathBuf::from("change log segment"),
                source: e,
            })?;
        self.offset = offset;
        Ok(())
    }

    fn next(&mut self) -> Read_ {
        let left = self.len - self.offset;
        if left == 0 {
            return Read_::End;
        }
        if left < FRAME_HEADER_SIZE as u64 {
            return Read_::Bad {
                reason: format!("{left} bytes, less than a record header"),
                complete: false,
            };
        }
        let mut head = [0u8; FRAME_HEADER_SIZE];
        if self.reader.read_exact(&mut head).is_err() {
            return Read_::Bad {
                reason: "unreadable record header".into(),
                complete: false,
            };
        }
        let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
        let checksum = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
        let sequence = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
        let end = FRAME_HEADER_SIZE as u64 + len as u64;
        if len > MAX_PAYLOAD {
            return Read_::Bad {
                reason: format!("length {len} over the limit"),
                complete: false,
            };
        }
        if end > left {
            return Read_::Bad {
                reason: format!("record of {end} bytes but only {left} left"),
                complete: false,
            };
        }
        let mut payload = vec![0u8; len];
        if self.reader.read_exact(&mut payload).is_err() {
            return Read_::Bad {
                reason: "unreadable payload".into(),
                complete: false,
            };
        }
        if record_checksum(sequence, &payload) != checksum {
            return Read_::Bad {
                reason: "checksum mismatch".into(),
                complete: end < left,
            };
        }
        self.offset += end;
        Read_::Record { sequence, payload }
    }
}

impl<T: Send + 'static> ChangeLog<T> {
    /// Opens (or creates) the log in `dir`: reads every record back, hands
    /// those after `folded` to `apply` in order, cuts a damaged tail, and
    /// starts the log thread, which reports durable batches to `sink`.
    pub fn open(
        dir: &Path,
        folded: u64,
        mut apply: impl FnMut(u64, &[u8]) -> Result<()>,
        sink: impl Durable<T>,
    ) -> Result<(ChangeLog<T>, Recovery)> {
        fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut segments = list_segments(dir)?;
        let mut recovery = Recovery::default();
        let mut index = Vec::new();
        let mut expected: Option<u64> = None;
        let last_segment = segments.len().saturating_sub(1);
        let mut append_at = None;
        for (i, segment) in segments.iter().enumerate() {
            let mut reader = SegmentReader::open(segment)?;
            if let Some(e) = expected {
                if segment.first_sequence != e {
                    return Err(Error::Corrupt {
                        path: segment.path.clone(),
                        offset: 0,
                        reason: format!(
                            "segment starts at sequence {}, the previous one ended before {e}",
                            segment.first_sequence
                        ),
                    });
                }
            }
            let mut next = segment.first_sequence;
            loop {
                let at = reader.offset;
                match reader.next() {
                    Read_::End => break,
                    Read_::Record { sequence, payload } => {
                        if sequence != next {
                            return Err(Error::Corrupt {
                                path: segment.path.clone(),
                                offset: at,
                                reason: format!("sequence {sequence} where {next} was due"),
                            });
                        }
                        if (sequence - segment.first_sequence) % INDEX_EVERY == 0 {
                            index.push(IndexPoint {
                                sequence,
                                segment_first: segment.first_sequence,
                                offset: at,
                            });
                        }
                        if sequence > folded {
                            if sequence > folded + 1 && recovery.replayed == 0 {
                                return Err(Error::Gap {
                                    log_first: sequence,
                                    folded,
                                    missing: format!("{}..{}", folded + 1, sequence - 1),
                                });
                            }
                            apply(sequence, &payload)?;
                            recovery.replayed += 1;
                        }
                        recovery.records += 1;
                        recovery.last_sequence = sequence;
                        next += 1;
                    }
                    Read_::Bad { reason, complete } => {
                        if i != last_segment || complete {
                            return Err(Error::Corrupt {
                                path: segment.path.clone(),
                                offset: at,
                                reason,
                            });
                        }
                        let file = OpenOptions::new()
                            .write(true)
                            .open(&segment.path)
                            .map_err(Error::io(&segment.path))?;
                        file.set_len(at).map_err(Error::io(&segment.path))?;
                        file.sync_all().map_err(Error::io(&segment.path))?;
                        recovery.cut = Some(TailCut {
                            segment: segment.path.clone(),
                            offset: at,
                            bytes: reader.len - at,
                            reason,
                        });
                        reader.len = at;
                        break;
                    }
                }
            }
            expected = Some(next);
            if i == last_segment {
                append_at = Some((segment.clone(), reader.len, next));
            }
        }
        let next_sequence = recovery.last_sequence.max(folded) + 1;
        let (segment, file) = match append_at {
            // Append to the last segment if it continues where the log
            // stands; a log entirely folded into the snapshot starts anew.
            Some((segment, len, next)) if next == next_sequence => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&segment.path)
                    .map_err(Error::io(&segment.path))?;
                file.seek(SeekFrom::Start(len))
                    .map_err(Error::io(&segment.path))?;
                (segment, file)
            }
            _ => {
                let (segment, file) = create_segment(dir, next_sequence)?;
                segments.push(segment.clone());
                (segment, file)
            }
        };
        let shared = Arc::new(Mutex::new(Shared { segments, index }));
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            segment,
            shared: shared.clone(),
            failed: None,
        };
        let thread = std::thread::Builder::new()
            .name("change-log".into())
            .spawn(move || writer.run(rx, sink))
            .map_err(Error::io(dir))?;
        Ok((
            ChangeLog {
                dir: dir.to_path_buf(),
                tx: Some(tx),
                thread: Some(thread),
                shared,
            },
            recovery,
        ))
    }

    /// Queues record `sequence`. Callers queue in sequence order (the
    /// register holds its write lock across numbering and queueing).
    pub fn append(&self, sequence: u64, payload: &[u8], item: T) {
        let tx = self.tx.as_ref().expect("the sender lives until drop");
        // The receiver lives as long as the sender: the thread exits only
        // after every sender is gone.
        let _ = tx.send(Message::Record(sequence, frame(sequence, payload), item));
    }

    /// Ends the current segment after everything queued so far; the next
    /// segment starts with record `next`. The receiver answers once the
    /// records before are durable and the new segment exists (queue it under
    /// the same lock as the records, wait for it outside).
    pub fn rotate_async(&self, next: u64) -> crossbeam_channel::Receiver<Result<()>> {
        let (reply, done) = crossbeam_channel::bounded(1);
        let tx = self.tx.as_ref().expect("the sender lives until drop");
        if let Err(e) = tx.send(Message::Rotate(next, reply)) {
            if let Message::Rotate(_, reply) = e.into_inner() {
                let _ = reply.send(Err(Error::LogFailed("the log thread has stopped".into())));
            }
        }
        done
    }

    /// Deletes the segments whose every record is at or before `folded`.
    pub fn trim(&self, folded: u64) -> Result<u64> {
        let mut shared = self.shared.lock();
        let mut removed = 0;
        while shared.segments.len() > 1 && shared.segments[1].first_sequence <= folded + 1 {
            let segment = shared.segments.remove(0);
            fs::remove_file(&segment.path).map_err(Error::io(&segment.path))?;
            removed += 1;
        }
        let first = shared.segments[0].first_sequence;
        shared.index.retain(|p| p.segment_first >= first);
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// The first sequence number still in the log's files.
    pub fn first_sequence(&self) -> u64 {
        self.shared.lock().segments[0].first_sequence
    }

    /// Bytes of all segments.
    pub fn bytes(&self) -> u64 {
        let segments = self.shared.lock().segments.clone();
        segments
            .iter()
            .filter_map(|s| fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Up to `limit` records with sequence numbers in `after + 1 ..= until`,
    /// read from the files. `None` if record `after + 1` is no longer in the
    /// log (trimmed by a compaction).
    pub fn read_after(
        &self,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Option<Vec<RawRecord>>> {
        let (segments, start) = {
            let shared = self.shared.lock();
            if shared.segments[0].first_sequence > after + 1 {
                return Ok(None);
            }
            let i = shared.index.partition_point(|p| p.sequence <= after + 1);
            let start = i.checked_sub(1).map(|i| shared.index[i]);
            (shared.segments.clone(), start)
        };
        let mut out = Vec::new();
        let first_segment = segments
            .partition_point(|s| s.first_sequence <= after + 1)
            .saturating_sub(1);
        for segment in &segments[first_segment..] {
            if out.len() >= limit || segment.first_sequence > until {
                break;
            }
            let mut reader = SegmentReader::open(segment)?;
            if let Some(p) = start.filter(|p| p.segment_first == segment.first_sequence) {
                reader.seek(p.offset)?;
            }
            while out.len() < limit {
                match reader.next() {
                    Read_::Record { sequence, payload } => {
                        if sequence > until {
                            break;
                        }
                        if sequence > after {
                            out.push((sequence, payload));
                        }
                    }
                    // The tail may be mid-write: nothing past `until` is read.
                    Read_::End | Read_::Bad { .. } => break,
                }
            }
        }
        Ok(Some(out))
    }
}

impl<T: Send + 'static> Drop for ChangeLog<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn create_segment(dir: &Path, first_sequence: u64) -> Result<(Segment, File)> {
    let path = dir.join(segment_name(first_sequence));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    file.write_all(&segment_header(first_sequence))
        .map_err(Error::io(&path))?;
    file.sync_all().map_err(Error::io(&path))?;
    sync_dir(dir)?;
    Ok((
        Segment {
            first_sequence,
            path,
        },
        file,
    ))
}

/// Makes a directory's entries (a created or removed file) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

/// The log thread's state.
struct Writer {
    dir: PathBuf,
    file: File,
    segment: Segment,
    shared: Arc<Mutex<Shared>>,
    failed: Option<String>,
}

impl Writer {
    fn run<T>(mut self, rx: Receiver<Message<T>>, sink: impl Durable<T>) {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut rotate = None;
            let mut message = Some(first);
            while let Some(m) = message.take() {
                match m {
                    Message::Record(seq, frame, item) => {
                        buf.extend_from_slice(&frame);
                        batch.push((seq, item, frame.len()));
                    }
                    Message::Rotate(next, reply) => {
                        rotate = Some((next, reply));
                        break;
                    }
                }
                if batch.len() < MAX_GROUP {
                    message = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(&mut buf, &mut batch, &sink);
            }
            if let Some((next, reply)) = rotate {
                let _ = reply.send(self.rotate(next));
            }
        }
    }

    fn commit<T>(
        &mut self,
        buf: &mut Vec<u8>,
        batch: &mut Vec<(u64, T, usize)>,
        sink: &impl Durable<T>,
    ) {
        let mut offset = self.file.stream_position().unwrap_or(0);
        let result = match &self.failed {
            Some(e) => Err(e.clone()),
            None => self
                .file
                .write_all(buf)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| format!("{}: {e}", self.segment.path.display())),
        };
        buf.clear();
        match result {
            Ok(()) => {
                let mut shared = self.shared.lock();
                for (seq, _, len) in batch.iter() {
                    if (seq - self.segment.first_sequence) % INDEX_EVERY == 0 {
                        shared.index.push(IndexPoint {
                            sequence: *seq,
                            segment_first: self.segment.first_sequence,
                            offset,
                        });
                    }
                    offset += *len as u64;
                }
                drop(shared);
                sink.durable(batch.drain(..).map(|(s, t, _)| (s, t)).collect());
            }
            Err(e) => {
                if self.failed.is_none() {
                    eprintln!("dancu: change log failed, refusing further writes: {e}");
                    self.failed = Some(e.clone());
                }
                sink.failed(&e, batch.drain(..).map(|(s, t, _)| (s, t)).collect());
            }
        }
    }

    fn rotate(&mut self, next: u64) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(Error::LogFailed(e.clone()));
        }
        // A segment whose first record would be `next` holds no record yet.
        if next == self.segment.first_sequence {
            return Ok(());
        }
        let (segment, file) = create_segment(&self.dir, next)?;
        self.file = file;
        self.segment = segment.clone();
        self.shared.lock().segments.push(segment);
        Ok(())
    }
}
