//! The audit log: who looked up whom, when, and what they learnt.
//!
//! Every data access is recorded as a fixed-size [`Entry`] (no formatting, no
//! allocation on the request path) and appended to a bounded in-memory
//! queue. One writer thread takes the whole queue every few milliseconds,
//! formats it as JSON lines and appends it to the file in one write; a
//! second thread `fsync`s what was written at least once a second (so that
//! a slow fsync never holds writing up) and on [`AuditLog::close`]. When the
//! queue is full the request is refused (503) rather than served unaudited:
//! [`AuditLog::append`] takes all the entries of a request or none. The
//! queue's capacity counts entries (accesses), whatever the line format.
//!
//! The file holds JSON lines of two kinds. A single access (`get`, `verify`,
//! `legacy`, `identify`) is one line:
//!
//! ```text
//! {"time":"2025-03-14T09:26:53.589793Z","client":"bank","operation":"get","subject":"079089012345","legacy_id":null,"outcome":"found"}
//! ```
//!
//! `subject` is the personal ID the access was about (for a legacy lookup or
//! a biometric identification: the person found, else `null`); `legacy_id`
//! is set for legacy lookups. Biometric digests are never written.
//!
//! A batch request (`batch_get`, `batch_verify`) is one line for the whole
//! request: every item with a well-formed ID is listed under its outcome
//! (`found`, `not_found`, `match`, `mismatch`; an outcome no item had is
//! left out), in request order within each list:
//!
//! ```text
//! {"time":"2025-03-14T09:26:53.589793Z","client":"bank","operation":"batch_get","found":["079089012345","079089012346"],"not_found":["001089000007"]}
//! ```
//!
//! That is 15 bytes per item instead of a 130-byte line: at a million
//! audited batch items a second, 15 instead of 130 MB/s of appends and
//! write-back on the machine that serves. [`query`] expands batch lines, so
//! it finds and reports every access, one per line, in the single-access
//! form.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dancu_engine::fixed_digits;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use crate::keys::ClientId;
use crate::Error;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `GET /v1/citizens/{id}`.
    Get,
    /// One item of `POST /v1/citizens:batchGet`.
    BatchGet,
    /// `POST /v1/citizens:verify`.
    Verify,
    /// One item of `POST /v1/citizens:batchVerify`.
    BatchVerify,
    /// `GET /v1/legacy-ids/{cmnd}`.
    Legacy,
    /// `POST /v1/biometrics:identify`.
    Identify,
    /// `POST /v1/citizens`: a birth or first registration.
    Register,
    /// `PATCH /v1/citizens/{id}`.
    Update,
    /// `POST /v1/citizens/{id}:recordDeath`.
    Death,
    /// `PUT /v1/citizens/{id}/biometrics/{modality}`.
    Enrol,
    /// One change read from `GET /v1/changes`.
    Changes,
}

impl Operation {
    /// Whether the operation is one item of a batch request (written as one
    /// grouped line per request).
    pub fn is_batch(self) -> bool {
        matches!(
            self,
            Operation::BatchGet | Operation::BatchVerify | Operation::Changes
        )
    }

    /// The word written to the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::BatchGet => "batch_get",
            Operation::Verify => "verify",
            Operation::BatchVerify => "batch_verify",
            Operation::Legacy => "legacy",
            Operation::Identify => "identify",
            Operation::Register => "register",
            Operation::Update => "update",
            Operation::Death => "death",
            Operation::Enrol => "enrol",
            Operation::Changes => "changes",
        }
    }
}

/// What the caller learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A record was returned (or an ID, for identify).
    Found,
    /// No such person.
    NotFound,
    /// Verification: every claimed field matched.
    Match,
    /// Verification: at least one claimed field did not match.
    Mismatch,
    /// A change was made (the register's write routes).
    Changed,
    /// A change was refused (invalid, conflicting, unknown subject).
    Refused,
}

impl Outcome {
    /// Every outcome a batch item can have, in the order a batch line lists
    /// them.
    pub const ALL: [Outcome; 4] = [
        Outcome::Found,
        Outcome::NotFound,
        Outcome::Match,
        Outcome::Mismatch,
    ];

    /// The word written to the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::NotFound => "not_found",
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Changed => "changed",
            Outcome::Refused => "refused",
        }
    }
}

/// One access, as queued: 24 bytes, no heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    /// Personal ID (12 digits) of the subject; 0 when unknown.
    pub subject: u64,
    /// Legacy ID asked for; 0 when none.
    pub legacy_id: u32,
    /// Who asked.
    pub client: ClientId,
    /// What was done.
    pub operation: Operation,
    /// What they learnt.
    pub outcome: Outcome,
}

/// The current time for [`Entry::time_us`].
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn mono_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Wall-clock microseconds minus monotonic microseconds since
/// [`mono_epoch`]; re-anchored by the writer thread on every wake-up (at
/// least every [`TICK`]), so that wall-clock steps show within a tick.
static WALL_OFFSET_US: AtomicU64 = AtomicU64::new(0);

fn anchor_wall_clock() {
    let mono = mono_epoch().elapsed().as_micros() as u64;
    WALL_OFFSET_US.store(now_us().wrapping_sub(mono), Ordering::Relaxed);
}

/// The wall-clock time of `instant` (an `Instant` the request already took),
/// for [`Entry::time_us`], without another clock read.
#[inline]
pub fn time_of(instant: Instant) -> u64 {
    let offset = WALL_OFFSET_US.load(Ordering::Relaxed);
    if offset == 0 {
        return now_us();
    }
    let mono = instant.saturating_duration_since(mono_epoch()).as_micros() as u64;
    offset.wrapping_add(mono)
}

/// The queue is full: refuse the request.
#[derive(Clone, Copy, Debug)]
pub struct Backlogged;

struct Queue {
    entries: Vec<Entry>,
    /// How many entries each request appended, in order: the writer groups
    /// the items of one batch request into one line.
    requests: Vec<u32>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    capacity: usize,
    /// Entries taken by the writer and not yet written.
    writing: AtomicU64,
    written: AtomicU64,
    refused: AtomicU64,
    syncs: AtomicU64,
}

/// The writer wakes at least this often to take the queue.
const TICK: Duration = Duration::from_millis(10);
/// And fsyncs at least this often while there is unsynced data.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditStats {
    /// Entries queued or being written.
    pub backlog: u64,
    /// Entries written to the file.
    pub written: u64,
    /// Requests refused because the queue was full.
    pub refused: u64,
    /// `fsync` calls.
    pub syncs: u64,
}

/// An open audit log with its writer thread. Dropping it without
/// [`close`](AuditLog::close) still flushes (the drop closes it).
pub struct AuditLog {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
    path: PathBuf,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating or appending to) `path` and starts the writer.
    /// `client_names` is indexed by [`ClientId`]; `capacity` bounds the queue.
    pub fn open(
        path: &Path,
        capacity: usize,
        client_names: Vec<String>,
    ) -> Result<AuditLog, Error> {
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        let capacity = capacity.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                entries: Vec::with_capacity(capacity),
                requests: Vec::new(),
                closed: false,
            }),
            wake: Condvar::new(),
            capacity,
            writing: AtomicU64::new(0),
            written: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        });
        let names: Vec<Vec<u8>> = client_names
            .iter()
            .map(|n| serde_json::to_vec(n).expect("a string serializes"))
            .collect();
        anchor_wall_clock();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("dancu-audit".into())
            .spawn(move || {
                let result = write_loop(&writer_shared, file, &names);
                if result.is_err() {
                    // Nothing more can be audited: refuse from now on.
                    writer_shared.queue.lock().closed = true;
                }
                result
            })
            .map_err(io_err)?;
        Ok(AuditLog {
            shared,
            writer: Mutex::new(Some(writer)),
            path: path.to_path_buf(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues the entries of one request, or none when they do not all fit.
    pub fn append(&self, entries: &[Entry]) -> Result<(), Backlogged> {
        self.append_request(entries.len(), entries.iter().copied())
    }

    /// Queues the `n` entries `entries` yields (the accesses of one request,
    /// e.g. the items of a batch), or none when `n` do not fit. Built straight
    /// into the queue: the request thread allocates nothing.
    pub fn append_request(
        &self,
        n: usize,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), Backlogged> {
        let mut queue = self.shared.queue.lock();
        let len = queue.entries.len();
        if queue.closed || len + n > self.shared.capacity {
            drop(queue);
            self.shared.refused.fetch_add(1, Ordering::Relaxed);
            // The writer may be between ticks with a full queue.
            self.shared.wake.notify_one();
            return Err(Backlogged);
        }
        queue.entries.extend(entries.into_iter().take(n));
        let added = queue.entries.len() - len;
        if added > 0 {
            queue.requests.push(added as u32);
        }
        let half = self.shared.capacity / 2;
        let crossed = len < half && len + added >= half;
        drop(queue);
        if crossed {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Queues one entry.
    pub fn append_one(&self, entry: Entry) -> Result<(), Backlogged> {
        self.append(std::slice::from_ref(&entry))
    }

    /// Counters for metrics.
    pub fn stats(&self) -> AuditStats {
        let queued = self.shared.queue.lock().entries.len() as u64;
        AuditStats {
            backlog: queued + self.shared.writing.load(Ordering::Relaxed),
            written: self.shared.written.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
        }
    }

    /// Refuses new entries, writes and fsyncs everything queued, and stops
    /// the writer. Later calls do nothing.
    pub fn close(&self) -> Result<(), Error> {
        self.shared.queue.lock().closed = true;
        self.shared.wake.notify_one();
        let Some(writer) = self.writer.lock().take() else {
            return Ok(());
        };
        let result = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the audit writer thread panicked")));
        result.map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// What the writer tells the syncer.
#[derive(Default)]
struct SyncState {
    /// Bumped after every write.
    written_seq: u64,
    /// The writer has written its last entry.
    done: bool,
}

/// Writes batches as they come; a second thread fsyncs what was written at
/// least every [`SYNC_EVERY`], so that a slow fsync (seconds, for a large
/// backlog on a slow disk) never stalls writing and fills the queue.
fn write_loop(shared: &Shared, mut file: File, names: &[Vec<u8>]) -> std::io::Result<()> {
    let sync_file = file.try_clone()?;
    let sync_state = Mutex::new(SyncState::default());
    let sync_wake = Condvar::new();
    std::thread::scope(|scope| {
        let syncer = scope.spawn(|| sync_loop(shared, &sync_file, &sync_state, &sync_wake));
        let written = write_batches(shared, &mut file, names, &sync_state);
        sync_state.lock().done = true;
        sync_wake.notify_one();
        let synced = syncer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the audit syncer panicked")));
        written.and(synced)
    })
}

fn write_batches(
    shared: &Shared,
    file: &mut File,
    names: &[Vec<u8>],
    sync_state: &Mutex<SyncState>,
) -> std::io::Result<()> {
    let mut batch: Vec<Entry> = Vec::with_capacity(shared.capacity);
    let mut requests: Vec<u32> = Vec::new();
    let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut formatter = LineFormatter::default();
    loop {
        anchor_wall_clock();
        let closed = {
            let mut queue = shared.queue.lock();
            if queue.entries.is_empty() && !queue.closed {
                shared.wake.wait_for(&mut queue, TICK);
            }
            std::mem::swap(&mut queue.entries, &mut batch);
            std::mem::swap(&mut queue.requests, &mut requests);
            shared.writing.store(batch.len() as u64, Ordering::Relaxed);
            queue.closed && batch.is_empty()
        };
        if closed {
            return Ok(());
        }
        if !batch.is_empty() {
            out.clear();
            let mut rest = &batch[..];
            for &n in &requests {
                let (request, next) = rest.split_at((n as usize).min(rest.len()));
                rest = next;
                match request.first() {
                    Some(first) if first.operation.is_batch() => {
                        formatter.format_batch(request, names, &mut out);
                    }
                    _ => {
                        for entry in request {
                            formatter.format_entry(entry, names, &mut out);
                        }
                    }
                }
            }
            requests.clear();
            file.write_all(&out)?;
            shared
                .written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            shared.writing.store(0, Ordering::Relaxed);
            batch.clear();
            sync_state.lock().written_seq += 1;
        }
    }
}

fn sync_loop(
    shared: &Shared,
    file: &File,
    state: &Mutex<SyncState>,
    wake: &Condvar,
) -> std::io::Result<()> {
    let mut synced_seq = 0;
    loop {
        let (seq, done) = {
            let mut s = state.lock();
            if !s.done {
                wake.wait_for(&mut s, SYNC_EVERY);
            }
            (s.written_seq, s.done)
        };
        if seq != synced_seq {
            file.sync_data()?;
            shared.syncs.fetch_add(1, Ordering::Relaxed);
            synced_seq = seq;
        }
        if done {
            return Ok(());
        }
    }
}

/// Caches the `YYYY-MM-DDTHH:MM:SS` text of the current second.
#[derive(Default)]
struct LineClock {
    second: u64,
    text: [u8; 19],
}

impl LineClock {
    fn text(&mut self, second: u64) -> &[u8; 19] {
        if second != self.second || self.text[0] == 0 {
            self.second = second;
            self.text = format_second(second);
        }
        &self.text
    }
}

fn format_second(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut t = *b"0000-00-00T00:00:00";
    let put = |t: &mut [u8; 19], at: usize, v: u64, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            t[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut t, 0, y as u64, 4);
    put(&mut t, 5, u64::from(m), 2);
    put(&mut t, 8, u64::from(d), 2);
    put(&mut t, 11, rem / 3600, 2);
    put(&mut t, 14, rem / 60 % 60, 2);
    put(&mut t, 17, rem % 60, 2);
    t
}

/// Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats entries, caching the `{"time":..,"client":..,"operation":..,`
/// prefix shared by consecutive entries with the same time, client and
/// operation.
#[derive(Default)]
struct LineFormatter {
    clock: LineClock,
    prefix: Vec<u8>,
    key: Option<(u64, ClientId, Operation)>,
}

impl LineFormatter {
    fn prefix(&mut self, e: &Entry, names: &[Vec<u8>]) -> &[u8] {
        let key = (e.time_us, e.client, e.operation);
        if self.key != Some(key) {
            self.key = Some(key);
            let p = &mut self.prefix;
            p.clear();
            p.extend_from_slice(b"{\"time\":\"");
            p.extend_from_slice(self.clock.text(e.time_us / 1_000_000));
            p.push(b'.');
            p.extend_from_slice(&fixed_digits::<6>(e.time_us % 1_000_000));
            p.extend_from_slice(b"Z\",\"client\":");
            match names.get(usize::from(e.client)) {
                Some(name) => p.extend_from_slice(name),
                None => p.extend_from_slice(b"null"),
            }
            p.extend_from_slice(b",\"operation\":\"");
            p.extend_from_slice(e.operation.as_str().as_bytes());
            p.extend_from_slice(b"\",");
        }
        &self.prefix
    }

    /// One line for one access.
    fn format_entry(&mut self, e: &Entry, names: &[Vec<u8>], out: &mut Vec<u8>) {
        out.extend_from_slice(self.prefix(e, names));
        out.extend_from_slice(b"\"subject\":");
        push_subject(out, e.subject);
        out.extend_from_slice(b",\"legacy_id\":");
        if e.legacy_id == 0 {
            out.extend_from_slice(b"null");
        } else {
            out.push(b'"');
            out.extend_from_slice(&fixed_digits::<9>(u64::from(e.legacy_id)));
            out.push(b'"');
        }
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(e.outcome.as_str().as_bytes());
        out.extend_from_slice(b"\"}\n");
    }

    /// One line for the items of one batch request (time, client and
    /// operation are the first item's: one request shares them).
    fn format_batch(&mut self, items: &[Entry], names: &[Vec<u8>], out: &mut Vec<u8>) {
        let Some(first) = items.first() else { return };
        out.extend_from_slice(self.prefix(first, names));
        let mut groups = 0;
        for outcome in Outcome::ALL {
            let mut subjects = items.iter().filter(|e| e.outcome == outcome);
            let Some(head) = subjects.next() else {
                continue;
            };
            if groups > 0 {
                out.push(b',');
            }
            groups += 1;
            out.push(b'"');
            out.extend_from_slice(outcome.as_str().as_bytes());
            out.extend_from_slice(b"\":[");
            push_subject(out, head.subject);
            for e in subjects {
                out.push(b',');
                push_subject(out, e.subject);
            }
            out.push(b']');
        }
        out.extend_from_slice(b"}\n");
    }
}

fn push_subject(out: &mut Vec<u8>, subject: u64) {
    if subject == 0 {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'"');
        out.extend_from_slice(&fixed_digits::<12>(subject));
        out.push(b'"');
    }
}

/// One access, as read back: a single-access line, or one item of a batch
/// line. Serializes to the single-access line format.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Line {
    /// RFC 3339 UTC time with microseconds.
    pub time: String,
    /// Client name.
    pub client: Option<String>,
    /// Operation word.
    pub operation: String,
    /// Personal ID of the subject.
    pub subject: Option<String>,
    /// Legacy ID asked for.
    pub legacy_id: Option<String>,
    /// Outcome word.
    pub outcome: String,
}

/// A line of the file, of either kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    time: String,
    client: Option<String>,
    operation: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    legacy_id: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    found: Option<Vec<String>>,
    #[serde(default)]
    not_found: Option<Vec<String>>,
    #[serde(default, rename = "match")]
    matched: Option<Vec<String>>,
    #[serde(default)]
    mismatch: Option<Vec<String>>,
}

/// Reads `path` and calls `found` with every access whose subject (or legacy
/// ID, for a 9-digit `subject`) is `subject`, in file order (a batch line
/// gives one call per matching item). Returns how many accesses matched; a
/// line that is not a valid record (e.g. a torn last line after a crash) is
/// skipped and counted in the second number.
pub fn query(
    path: &Path,
    subject: &str,
    mut found: impl FnMut(&Line),
) -> Result<(u64, u64), Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io_err)?);
    let (mut matched, mut skipped) = (0, 0);
    for line in reader.lines() {
        let line = line.map_err(io_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(record) = serde_json::from_str::<Record>(&line) else {
            skipped += 1;
            continue;
        };
        let groups = [
            (Outcome::Found, record.found),
            (Outcome::NotFound, record.not_found),
            (Outcome::Match, record.matched),
            (Outcome::Mismatch, record.mismatch),
        ];
        let batch = groups.iter().any(|(_, g)| g.is_some());
        match (batch, record.outcome) {
            (true, None) => {
                for (outcome, subjects) in &groups {
                    for s in subjects.iter().flatten().filter(|s| *s == subject) {
                        matched += 1;
                        found(&Line {
                            time: record.time.clone(),
                            client: record.client.clone(),
                            operation: record.operation.clone(),
                            subject: Some(s.clone()),
                            legacy_id: None,
                            outcome: outcome.as_str().to_string(),
                        });
                    }
                }
            }
            (false, Some(outcome)) => {
                let hit = record.subject.as_deref() == Some(subject)
                    || record.legacy_id.as_deref() == Some(subject);
                if hit {
                    matched += 1;
                    found(&Line {
                        time: record.time,
                        client: record.client,
                        operation: record.operation,
                        subject: record.subject,
                        legacy_id: record.legacy_id,
                        outcome,
                    });
                }
            }
            _ => skipped += 1,
        }
    }
    Ok((matched, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_an_instant_is_wall_clock_time() {
        anchor_wall_clock();
        let before = now_us();
        let t = time_of(Instant::now());
        let after = now_us();
        assert!(
            before <= t + 1000 && t <= after + 1000,
            "{before} {t} {after}"
        );
    }

    #[test]
    fn formats_time_like_rfc3339() {
        assert_eq!(&format_second(0), b"1970-01-01T00:00:00");
        assert_eq!(&format_second(1_710_408_413), b"2024-03-14T09:26:53");
        assert_eq!(&format_second(951_782_400), b"2000-02-29T00:00:00");
    }

    #[test]
    fn writes_batches_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.audit");
        let log =
            AuditLog::open(&path, 1500, vec!["anonymous".into(), "bank \"A\"".into()]).unwrap();
        let entry = Entry {
            time_us: 1_710_408_413_000_042,
            subject: 79_089_012_345,
            legacy_id: 0,
            client: 1,
            operation: Operation::Get,
            outcome: Outcome::Found,
        };
        log.append(&[entry; 3]).unwrap();
        log.append_one(Entry {
            subject: 0,
            legacy_id: 12_345,
            outcome: Outcome::NotFound,
            operation: Operation::Legacy,
            ..entry
        })
        .unwrap();
        // All or nothing: a batch larger than the whole queue is refused.
        assert!(log.append(&vec![entry; 2000]).is_err());
        log.close().unwrap();
        assert!(log.append_one(entry).is_err(), "closed");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"time":"2024-03-14T09:26:53.000042Z","client":"bank \"A\"","operation":"get","subject":"079089012345","legacy_id":null,"outcome":"found"}"#
        );
        let mut seen = Vec::new();
        let (n, bad) = query(&path, "079089012345", |l| seen.push(l.clone())).unwrap();
        assert_eq!((n, bad), (3, 0));
        assert_eq!(seen[0].client.as_deref(), Some("bank \"A\""));
        let (n, _) = query(&path, "000012345", |_| {}).unwrap();
        assert_eq!(n, 1);
        assert_eq!(log.stats().written, 4);
        assert_eq!(log.stats().refused, 2);
    }

    #[test]
    fn a_batch_request_is_one_line_and_query_expands_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.audit");
        let log = AuditLog::open(&path, 100, vec!["anonymous".into(), "bank".into()]).unwrap();
        let item = |subject, outcome| Entry {
            time_us: 1_710_408_413_000_042,
            subject,
            legacy_id: 0,
            client: 1,
            operation: Operation::BatchGet,
            outcome,
        };
        let (a, b) = (79_089_012_345, 1_089_000_007);
        // Two batch requests with the same time and client stay two lines.
        let first = [item(a, Outcome::Found), item(b, Outcome::NotFound)];
        log.append_request(2, first).unwrap();
        log.append(&[item(a, Outcome::Found)]).unwrap();
        // `n` bounds what is taken, so the capacity check holds.
        log.append_request(1, std::iter::repeat(item(b, Outcome::Found)))
            .unwrap();
        assert!(log
            .append_request(200, std::iter::repeat(item(a, Outcome::Found)))
            .is_err());
        log.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            r#"{"time":"2024-03-14T09:26:53.000042Z","client":"bank","operation":"batch_get","found":["079089012345"],"not_found":["001089000007"]}"#
        );
        assert_eq!(log.stats().written, 4);
        let mut seen = Vec::new();
        let (n, bad) = query(&path, "079089012345", |l| seen.push(l.clone())).unwrap();
        assert_eq!((n, bad), (2, 0));
        assert_eq!(
            serde_json::to_string(&seen[0]).unwrap(),
            r#"{"time":"2024-03-14T09:26:53.000042Z","client":"bank","operation":"batch_get","subject":"079089012345","legacy_id":null,"outcome":"found"}"#
        );
        let (n, _) = query(&path, "001089000007", |_| {}).unwrap();
        assert_eq!(n, 2);
        // A torn last line is skipped, not an error.
        std::fs::write(&path, format!("{text}{{\"time\":\"2024")).unwrap();
        let (n, bad) = query(&path, "079089012345", |_| {}).unwrap();
        assert_eq!((n, bad), (2, 1));
    }
}
