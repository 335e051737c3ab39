//! The audit log: who looked up whom, when, from where, and what they learnt.
//!
//! The contract is `shared/DESIGN.md`, "The audit log promises":
//!
//! - **Durable by default.** [`AuditLog::append`] hands the accesses of one
//!   request to the writer thread ([`writer`]) and returns a [`Durable`]
//!   ticket; the handler answers only once the ticket resolves, which is
//!   after the `fsync` that covers the entry. One fsync covers every entry
//!   that arrived while the previous one ran (group commit). In
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
//!   rotates by size and by UTC day, and each rotated file gets a sorted
//!   per-subject index ([`index`]), so [`query()`] reads a few index pages
//!   and the matching lines, not the whole log.
//!
//! A single access (`get`, `verify`, `legacy`, `identify`) is one line; a
//! batch request (`batch_get`, `batch_verify`) is one line listing its
//! items' subjects by outcome — about 15 bytes per item instead of a
//! 300-byte line. [`query()`] expands batch lines into one result per item.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use dancu_engine::FieldSet;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::keys::ClientId;
use crate::Error;

pub mod format;
pub mod generate;
pub mod index;
mod query;
pub mod storage;
mod verify;
pub mod writer;

pub use format::ChainState;
pub use query::{query, Line};
pub use storage::{FileStorage, Rotation, Storage};
pub use verify::{verify, Broken, VerifyReport};
use writer::{Accesses, Message};

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
    /// One row of `POST /v1/citizens:match` (or a candidate it named).
    Match,
}

impl Operation {
    /// Whether the operation is one item of a batch request (written as one
    /// grouped line per request).
    pub fn is_batch(self) -> bool {
        matches!(
            self,
            Operation::BatchGet | Operation::BatchVerify | Operation::Changes | Operation::Match
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
            Operation::Match => "match",
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

/// One access, as queued: no heap.
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
    /// The caller's address (the socket's peer, or `X-Forwarded-For` from a
    /// trusted proxy).
    pub source: Option<IpAddr>,
    /// The request ID echoed in `X-Request-Id`.
    pub request_id: u64,
    /// The fields returned (reads) or claimed (verification).
    pub fields: FieldSet,
    /// Identify: the first eight bytes of the SHA-256 of the digest asked
    /// for (never the digest); 0 otherwise.
    pub digest_prefix: u64,
}

impl Entry {
    /// An access with no source, request ID, fields or digest yet.
    pub fn new(
        time_us: u64,
        client: ClientId,
        operation: Operation,
        subject: u64,
        outcome: Outcome,
    ) -> Entry {
        Entry {
            time_us,
            subject,
            legacy_id: 0,
            client,
            operation,
            outcome,
            source: None,
            request_id: 0,
            fields: FieldSet::NONE,
            digest_prefix: 0,
        }
    }
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

/// Resolves once the accesses of one append are durable (at once in
/// buffered mode), or with the error that stopped them.
#[must_use = "an access may be answered only once its audit entry is durable"]
#[derive(Debug)]
pub struct Durable(Option<oneshot::Receiver<Result<(), AuditError>>>);

impl Durable {
    /// A ticket that is already resolved (buffered mode, audit off).
    pub fn ready() -> Durable {
        Durable(None)
    }

    /// Whether there is nothing to wait for: the handler can answer at once.
    pub fn is_ready(&self) -> bool {
        self.0.is_none()
    }
}

impl std::future::Future for Durable {
    type Output = Result<(), AuditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            None => Poll::Ready(Ok(())),
            Some(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.unwrap_or_else(|_| Err(AuditError::Failing("the audit writer stopped".into())))
            }),
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
}

/// State shared by the handle and the writer thread.
pub struct Shared {
    path: PathBuf,
    durability: Durability,
    capacity: usize,
    /// Entries sent and not yet written.
    pending: AtomicUsize,
    closed: AtomicBool,
    failing: AtomicBool,
    failure: Mutex<Option<Arc<str>>>,
    failures: AtomicU64,
    written: AtomicU64,
    refused: AtomicU64,
    syncs: AtomicU64,
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

    /// Stops data access and says why, once per failure.
    fn fail(&self, cause: &str) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            eprintln!(
                "dancu-server: AUDIT LOG FAILING: {cause}; data access is stopped until the \
                 disk is fixed and the server reloaded (SIGHUP or POST /v1/admin:reload)"
            );
            *failure = Some(cause.into());
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.failing.store(true, Ordering::Release);
    }

    fn recovered(&self) {
        let mut failure = self.failure.lock();
        if let Some(cause) = failure.take() {
            eprintln!("dancu-server: audit log works again (it failed: {cause})");
        }
        self.failing.store(false, Ordering::Release);
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
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions {
            durability: Durability::Durable,
            capacity: 1 << 20,
            rotation: Rotation::default(),
        }
    }
}

/// An open audit log with its writer thread. Dropping it closes it.
pub struct AuditLog {
    shared: Arc<Shared>,
    tx: Sender<Message>,
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
        let storage = match options.durability {
            Durability::Durable => FileStorage::new(path, options.rotation),
            Durability::Buffered => {
                FileStorage::new(path, options.rotation).without_preallocation()
            }
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
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            durability: options.durability,
            capacity: options.capacity.max(1),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            failure: Mutex::new(None),
            failures: AtomicU64::new(0),
            written: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("dancu-audit".into())
            .spawn(move || writer::run(&writer_shared, &rx, storage, formatter))
            .map_err(io_err)?;
        Ok(AuditLog {
            shared,
            tx,
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
        let n = match &accesses {
            Accesses::One(_) => 1,
            Accesses::Batch(v) => v.len(),
        };
        if shared.pending.fetch_add(n, Ordering::Relaxed) + n > shared.capacity {
            shared.pending.fetch_sub(n, Ordering::Relaxed);
            return refuse(AuditError::Backlogged);
        }
        let (ticket, durable) = match shared.durability {
            Durability::Durable => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Durable(Some(rx)))
            }
            Durability::Buffered => (None, Durable::ready()),
        };
        if self.tx.send(Message::Access { accesses, ticket }).is_err() {
            shared.pending.fetch_sub(n, Ordering::Relaxed);
            return refuse(AuditError::Closed);
        }
        Ok(durable)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> AuditStats {
        let s = &*self.shared;
        AuditStats {
            backlog: s.pending.load(Ordering::Relaxed) as u64,
            written: s.written.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            failure: s.failure().map(|f| f.to_string()),
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
        self.tx
            .send(Message::Recover(tx))
            .map_err(|_| AuditError::Closed)?;
        rx.recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Refuses new entries, writes and fsyncs everything queued, and stops
    /// the writer. Later calls do nothing.
    pub fn close(&self) -> Result<(), Error> {
        self.shared.closed.store(true, Ordering::Release);
        let Some(writer) = self.writer.lock().take() else {
            return Ok(());
        };
        let _ = self.tx.send(Message::Close);
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
