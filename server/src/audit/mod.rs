//! The audit log: who looked up whom, when, from where, and what they learnt.
//!
//! The contract is `shared/DESIGN.md`, "The audit log promises":
//!
//! - **Durable by default.** [`AuditLog::append`] leaves the accesses of
//!   one request in its worker's lane ([`lanes`]) for the writer thread
//!   ([`writer`]) and returns a [`Durable`] ticket: the number of the group
//!   commit whose `fsync` covers the entry. One fsync covers every entry
//!   that arrived while the previous one ran (group commit). The answer
//!   goes out only once that commit is durable: the connection's
//!   [`GatedIo`] holds back every byte of its answers until then ([`gate`]),
//!   so pipelined requests wait for one fsync together. In
//!   [`Durability::Buffered`] mode the ticket is ready at once and the file
//!   is fsynced every second: a `kill -9` loses what was still queued in
//!   memory (entries not yet written; measured in `server/RESULTS.md`), a
//!   power cut also up to one second of written but unsynced lines.
//! - **Fail closed, loudly.** A write or fsync error stops data access at
//!   once: the append (or its ticket) returns [`AuditError::Failing`], the
//!   cause goes to stderr and to [`AuditStats::failure`] (shown by
//!   `/metrics` and `/readyz`), and only [`AuditLog::recover`] (the
//!   operator's reload, after fixing the disk) lifts it.
//! - **Tamper-evident.** Each line carries a sequence number and the
//!   SHA-256 of the line before ([`format`]); [`verify()`] checks the chain
//!   across rotated files. Opening a log cuts a torn tail and records the
//!   cut as its next line ([`storage`]).
//! - **Private, rotated, indexed.** Files are created 0600; the live file
//!   rotates by size and by UTC day (the writer only switches to a next
//!   file made ahead; renames, fsyncs and the index happen behind it, see
//!   `rotator`), and each rotated file gets a sorted per-subject index
//!   ([`index`]), so [`query()`] reads a few index pages and the matching
//!   lines, not the whole log. Indexes are built in the background, paced,
//!   and not while the server sheds load (`indexer`); until then a query
//!   scans the file.
//!
//! A single access (`get`, `verify`, `legacy`, `identify`) is one line; a
//! batch request (`batch_get`, `batch_verify`) is one line listing its
//! items' subjects by outcome — about 15 bytes per item instead of a
//! 300-byte line. [`query()`] expands batch lines into one result per item.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::Error;

mod entry;
pub mod format;
pub mod gate;
pub mod generate;
pub mod index;
mod indexer;
pub mod lanes;
mod query;
mod rotator;
pub mod stages;
pub mod storage;
mod verify;
pub mod writer;
mod zeroing;

pub use entry::{Entry, Operation, Outcome};
pub use format::ChainState;
pub use gate::{AnswerGate, GatedIo};
pub use indexer::Pressure;
pub use lanes::Commit;
use lanes::{LanePump, Lanes};
pub use query::{query, Line};
use stages::Stages;
pub use storage::{FileStorage, Rotation, Storage};
pub use verify::{verify, Broken, VerifyReport};
use writer::{Accesses, Control};

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
/// [`mono_epoch`], anchored when a log opens.
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

/// When an access may be answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// After the fsync that covers its entry (the default).
    #[default]
    Durable,
    /// Once its entry is queued; the file is fsynced every second.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Durability, String> {
        match s {
            "durable" => Ok(Durability::Durable),
            "buffered" => Ok(Durability::Buffered),
            _ => Err(format!(
                "{s:?} is not an audit durability (durable, buffered)"
            )),
        }
    }
}

/// Why an access cannot be audited (and so must not be served).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The queue is full: the disk is behind. Retry shortly.
    #[error("the audit log is behind; the request was not served (retry shortly)")]
    Backlogged,
    /// A write or fsync failed; nothing is served until the operator fixes
    /// the disk and reloads.
    #[error("the audit log is failing ({0}); data access is stopped until an operator fixes it and reloads")]
    Failing(Arc<str>),
    /// The log is closed (shutting down).
    #[error("the audit log is closed (shutting down)")]
    Closed,
}

/// The ticket of one append: the group commit whose fsync makes its
/// entries durable (none in buffered mode). Wait for it with
/// [`AuditLog::wait`], or hand it to a connection's [`AnswerGate`].
#[must_use = "an access may be answered only once its audit entry is durable"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durable(Option<Commit>);

impl Durable {
    /// A ticket that is already resolved (buffered mode, audit off).
    pub fn ready() -> Durable {
        Durable(None)
    }

    /// Whether there is nothing to wait for: the handler can answer at once.
    pub fn is_ready(&self) -> bool {
        self.0.is_none()
    }

    /// The commit to wait for, if any.
    pub fn commit(&self) -> Option<Commit> {
        self.0
    }
}

/// The future of [`AuditLog::wait`].
#[derive(Debug)]
pub struct WaitDurable<'a> {
    shared: &'a Shared,
    durable: Durable,
}

impl std::future::Future for WaitDurable<'_> {
    type Output = Result<(), AuditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.durable.0 {
            None => Poll::Ready(Ok(())),
            Some(commit) => self.shared.poll_decided(commit, commit, cx),
        }
    }
}

/// Counters for metrics.
#[derive(Clone, Debug, Default)]
pub struct AuditStats {
    /// Entries queued and not yet written.
    pub backlog: u64,
    /// Entries written to the file.
    pub written: u64,
    /// Requests refused (queue full, or the log failing).
    pub refused: u64,
    /// `fsync` calls.
    pub syncs: u64,
    /// Write or fsync failures since start.
    pub failures: u64,
    /// The current failure, while the log is failing.
    pub failure: Option<String>,
    /// The commit path's stage histograms ([`stages`]).
    pub stages: Vec<(&'static str, crate::metrics::HistogramSnapshot)>,
}

/// State shared by the handle, the writer thread and the connections'
/// [`AnswerGate`]s.
pub struct Shared {
    path: PathBuf,
    durability: Durability,
    /// Most entries one lane may hold (the queue bound, split over lanes).
    lane_capacity: usize,
    lanes: Lanes,
    /// The writer thread, unparked when a lane gets its first access.
    writer_thread: OnceLock<std::thread::Thread>,
    /// The last commit whose fate is known (written and fsynced, or lost).
    decided: AtomicU64,
    /// Whether any commit was ever lost (the fast path skips `lost`).
    any_lost: AtomicBool,
    /// Commits lost to failures, as inclusive ranges; the last range ends
    /// at `Commit::MAX` while the log is failing.
    lost: Mutex<Vec<(Commit, Commit)>>,
    /// Set when the writer thread has stopped (closed, or panicked).
    stopped: AtomicBool,
    closed: AtomicBool,
    failing: AtomicBool,
    failure: Mutex<Option<Arc<str>>>,
    failures: AtomicU64,
    written: AtomicU64,
    refused: AtomicU64,
    syncs: AtomicU64,
    /// Where durable answers' waits go ([`stages`]).
    stages: Stages,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.path)
            .field("decided", &self.decided)
            .finish()
    }
}

impl Shared {
    fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    fn failure(&self) -> Option<Arc<str>> {
        self.failure.lock().clone()
    }

    fn failing_error(&self) -> AuditError {
        AuditError::Failing(
            self.failure()
                .unwrap_or_else(|| "an earlier write failed".into()),
        )
    }

    /// Stops data access and says why, once per failure: every commit from
    /// `first_lost` on is lost until [`Shared::recovered`].
    fn fail(&self, cause: &str, first_lost: Commit) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            eprintln!(
                "dancu-server: AUDIT LOG FAILING: {cause}; data access is stopped until the \
                 disk is fixed and the server reloaded (SIGHUP or POST /v1/admin:reload)"
            );
            *failure = Some(cause.into());
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.lost.lock().push((first_lost, Commit::MAX));
            self.any_lost.store(true, Ordering::Release);
        }
        self.failing.store(true, Ordering::Release);
    }

    /// The log works again; commits after `last_lost` are written.
    fn recovered(&self, last_lost: Commit) {
        let mut failure = self.failure.lock();
        if let Some(cause) = failure.take() {
            eprintln!("dancu-server: audit log works again (it failed: {cause})");
        }
        if let Some(open) = self.lost.lock().last_mut() {
            if open.1 == Commit::MAX {
                open.1 = last_lost;
            }
        }
        self.failing.store(false, Ordering::Release);
    }

    /// Whether commits `lo..=hi` are all decided: `Ok` when all were
    /// written and fsynced, the failure when any was lost; `None` while
    /// some is still to come.
    fn decided(&self, lo: Commit, hi: Commit) -> Option<Result<(), AuditError>> {
        if hi > self.decided.load(Ordering::Acquire) {
            // The writer decides its last commit before it says it stopped.
            if !self.stopped.load(Ordering::Acquire) || hi <= self.decided.load(Ordering::Acquire) {
                return None;
            }
            return Some(Err(if self.closed.load(Ordering::Acquire) {
                AuditError::Closed
            } else {
                AuditError::Failing("the audit writer stopped".into())
            }));
        }
        if self.any_lost.load(Ordering::Acquire)
            && self.lost.lock().iter().any(|&(a, b)| a <= hi && lo <= b)
        {
            return Some(Err(self.failing_error()));
        }
        Some(Ok(()))
    }

    /// [`Shared::decided`], leaving the task's waker in its thread's lane
    /// while undecided (the writer wakes it once it decides `hi`).
    fn poll_decided(
        &self,
        lo: Commit,
        hi: Commit,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AuditError>> {
        if let Some(result) = self.decided(lo, hi) {
            return Poll::Ready(result);
        }
        self.lanes
            .mine()
            .lock()
            .waiters
            .push((hi, cx.waker().clone()));
        // The writer may have decided `hi` and looked for waiters before
        // this one was left: look again.
        match self.decided(lo, hi) {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }

    fn wake_writer(&self) {
        if let Some(thread) = self.writer_thread.get() {
            thread.unpark();
        }
    }
}

/// How to open an audit log.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// When accesses may be answered.
    pub durability: Durability,
    /// Most entries queued and not yet written (a full queue answers 503).
    pub capacity: usize,
    /// When to rotate.
    pub rotation: Rotation,
    /// Append lanes: one per request worker thread (see [`lanes`]).
    pub lanes: usize,
    /// The server's load: rotated files are indexed while it sheds no
    /// requests (see `indexer`).
    pub pressure: Arc<Pressure>,
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions {
            durability: Durability::Durable,
            capacity: 1 << 20,
            rotation: Rotation::default(),
            lanes: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pressure: Arc::default(),
        }
    }
}

/// An open audit log with its writer thread. Dropping it closes it.
pub struct AuditLog {
    shared: Arc<Shared>,
    control: Sender<Control>,
    writer: Mutex<Option<JoinHandle<Result<(), AuditError>>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating with mode 0600, or appending to) the log at `path`,
    /// cuts a torn tail, and starts the writer. `client_names` is indexed
    /// by [`ClientId`].
    pub fn open(
        path: &Path,
        options: AuditOptions,
        client_names: Vec<String>,
    ) -> Result<AuditLog, Error> {
        let storage =
            FileStorage::new(path, options.rotation).with_pressure(Arc::clone(&options.pressure));
        let storage = match options.durability {
            Durability::Durable => storage,
            Durability::Buffered => storage.without_preallocation(),
        };
        AuditLog::with_storage(path, options, client_names, storage)
    }

    /// [`open`](AuditLog::open) over any [`Storage`] (tests inject failures).
    pub fn with_storage<S: Storage>(
        path: &Path,
        options: AuditOptions,
        client_names: Vec<String>,
        mut storage: S,
    ) -> Result<AuditLog, Error> {
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let opened = storage.open().map_err(io_err)?;
        let mut formatter = format::LineFormatter::new(opened.chain, &client_names);
        writer::write_opening(&mut storage, &mut formatter, opened.cut.as_deref(), "")
            .map_err(io_err)?;
        if let Some(cut) = &opened.cut {
            eprintln!("dancu-server: audit log {}: {cut}", path.display());
        }
        anchor_wall_clock();
        let lanes = Lanes::new(options.lanes);
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            durability: options.durability,
            lane_capacity: options.capacity.max(1).div_ceil(lanes.count()),
            lanes,
            writer_thread: OnceLock::new(),
            decided: AtomicU64::new(0),
            any_lost: AtomicBool::new(false),
            lost: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            failure: Mutex::new(None),
            failures: AtomicU64::new(0),
            written: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            stages: Stages::default(),
        });
        let (control, control_rx) = crossbeam_channel::unbounded();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("dancu-audit".into())
            .spawn(move || writer::run(&writer_shared, &control_rx, storage, formatter))
            .map_err(io_err)?;
        let _ = shared.writer_thread.set(writer.thread().clone());
        Ok(AuditLog {
            shared,
            control,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The live file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.shared.durability
    }

    /// Queues the entries of one request (all or none). A batch request's
    /// items (operations with [`Operation::is_batch`]) become one line.
    pub fn append(&self, entries: &[Entry]) -> Result<Durable, AuditError> {
        match entries {
            [one] if !one.operation.is_batch() => self.send(Accesses::One(*one)),
            _ => self.append_request(entries.len(), entries.iter().copied()),
        }
    }

    /// Queues the `n` entries `entries` yields (the accesses of one request),
    /// or none when `n` do not fit.
    pub fn append_request(
        &self,
        n: usize,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Durable, AuditError> {
        let items: Vec<Entry> = entries.into_iter().take(n).collect();
        match items.as_slice() {
            [] => Ok(Durable::ready()),
            [one] if !one.operation.is_batch() => self.send(Accesses::One(*one)),
            _ => self.send(Accesses::Batch(items)),
        }
    }

    /// Queues one entry.
    pub fn append_one(&self, entry: Entry) -> Result<Durable, AuditError> {
        self.send(Accesses::One(entry))
    }

    fn send(&self, accesses: Accesses) -> Result<Durable, AuditError> {
        let shared = &*self.shared;
        let refuse = |e| {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            Err(e)
        };
        if shared.is_failing() {
            return refuse(shared.failing_error());
        }
        if shared.closed.load(Ordering::Acquire) {
            return refuse(AuditError::Closed);
        }
        let n = accesses.len();
        let mut lane = shared.lanes.mine().lock();
        if lane.closed {
            drop(lane);
            return refuse(AuditError::Closed);
        }
        if lane.entries + n > shared.lane_capacity {
            drop(lane);
            return refuse(AuditError::Backlogged);
        }
        let first = lane.accesses.is_empty();
        if first {
            lane.since = Some(Instant::now());
        }
        lane.accesses.push(accesses);
        lane.entries += n;
        let commit = lane.commit;
        drop(lane);
        if first {
            shared.wake_writer();
        }
        Ok(match shared.durability {
            Durability::Durable => Durable(Some(commit)),
            Durability::Buffered => Durable::ready(),
        })
    }

    /// Resolves once `durable`'s entries are on disk, or with the error
    /// that stopped them.
    pub fn wait(&self, durable: Durable) -> WaitDurable<'_> {
        WaitDurable {
            shared: &self.shared,
            durable,
        }
    }

    /// The gate of a new connection: its answers go out only once every
    /// commit they wait for is durable (see [`gate`]).
    pub fn answer_gate(&self) -> Arc<AnswerGate> {
        Arc::new(AnswerGate::new(Arc::clone(&self.shared)))
    }

    /// The pump of the calling worker's lane: spawn it on every worker
    /// runtime (see [`lanes`]). Without one, the writer wakes waiting tasks
    /// itself.
    pub fn lane_pump(&self) -> LanePump {
        LanePump::new(Arc::clone(&self.shared))
    }

    /// Counters for metrics.
    pub fn stats(&self) -> AuditStats {
        let s = &*self.shared;
        AuditStats {
            backlog: s.lanes.iter().map(|l| l.lock().entries as u64).sum(),
            written: s.written.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            failure: s.failure().map(|f| f.to_string()),
            stages: s.stages.snapshot(),
        }
    }

    /// The current failure, while the log is failing.
    pub fn failure(&self) -> Option<String> {
        self.shared
            .is_failing()
            .then(|| self.shared.failure().map(|f| f.to_string()))
            .flatten()
    }

    /// After a failure: reopens the file (cutting what the failure left
    /// half-written), records the recovery, fsyncs, and lets data access
    /// resume. Does nothing when the log is not failing. Blocks until the
    /// writer has tried.
    pub fn recover(&self) -> Result<(), AuditError> {
        if !self.shared.is_failing() {
            return Ok(());
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.control
            .send(Control::Recover(tx))
            .map_err(|_| AuditError::Closed)?;
        self.shared.wake_writer();
        rx.recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Refuses new entries, writes and fsyncs everything queued, and stops
    /// the writer. Later calls do nothing.
    pub fn close(&self) -> Result<(), Error> {
        self.shared.closed.store(true, Ordering::Release);
        let Some(writer) = self.writer.lock().take() else {
            return Ok(());
        };
        let _ = self.control.send(Control::Close);
        self.shared.wake_writer();
        let result = writer.join().unwrap_or_else(|_| {
            Err(AuditError::Failing(
                "the audit writer thread panicked".into(),
            ))
        });
        result.map_err(|e| Error::Io {
            path: self.shared.path.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests;
