//! The writer thread: group commit.
//!
//! Request workers send one [`Message`] per request over a crossbeam
//! channel. The writer blocks for the first message, then takes every
//! message that arrived meanwhile, formats them as chained lines, writes
//! them in one `write` and — in durable mode — `fsync`s once, and only then
//! resolves each request's ticket. While it is in `fsync`, the next group
//! queues up in the channel; so the rate of fsyncs adapts to the disk and
//! each covers as many requests as arrived during the one before (as
//! PostgreSQL's group commit and Redis' `appendfsync always` do).
//!
//! Any write or fsync error fails the log closed: every ticket in the group
//! and every later append gets [`AuditError::Failing`] until a
//! [`Message::Recover`] (the operator's reload) reopens the file, cuts what
//! the failure left half-written, records the recovery and fsyncs it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::oneshot;

use super::format::LineFormatter;
use super::storage::Storage;
use super::{now_us, AuditError, Durability, Entry, Shared};

/// Buffered mode fsyncs at least this often while there is unsynced data.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// The writer wakes at least this often (rotation by day, buffered fsync).
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// A group stops growing at this many formatted bytes (one write).
const GROUP_BYTES: usize = 1 << 20;

/// The accesses of one request.
pub enum Accesses {
    /// A single access: no allocation.
    One(Entry),
    /// The items of a batch request: one grouped line.
    Batch(Vec<Entry>),
}

impl Accesses {
    fn len(&self) -> usize {
        match self {
            Accesses::One(_) => 1,
            Accesses::Batch(v) => v.len(),
        }
    }
}

/// What request workers and the log's owner send the writer.
pub enum Message {
    /// Audit these accesses; answer the ticket (durable mode) once they are
    /// on disk, or with the error that stopped them.
    Access {
        /// The accesses.
        accesses: Accesses,
        /// Resolved after the covering fsync; `None` in buffered mode.
        ticket: Option<oneshot::Sender<Result<(), AuditError>>>,
    },
    /// Reopen after a failure; answer whether the log works again.
    Recover(crossbeam_channel::Sender<Result<(), AuditError>>),
    /// Write and fsync everything before this, then stop.
    Close,
}

/// Runs until [`Message::Close`] (or every sender is gone). Returns the last
/// unrecovered failure, if any.
pub fn run<S: Storage>(
    shared: &Shared,
    rx: &Receiver<Message>,
    mut storage: S,
    mut formatter: LineFormatter,
) -> Result<(), AuditError> {
    let durable = shared.durability == Durability::Durable;
    let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut tickets: Vec<oneshot::Sender<Result<(), AuditError>>> = Vec::new();
    let mut recovers = Vec::new();
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut closing = false;
    while !closing {
        let wait = if dirty {
            SYNC_EVERY.saturating_sub(last_sync.elapsed())
        } else {
            IDLE_WAKE
        };
        let first = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                closing = true;
                None
            }
        };
        let mut entries = 0;
        let mut next = first;
        while let Some(message) = next.take() {
            match message {
                Message::Access { accesses, ticket } => {
                    entries += accesses.len();
                    if shared.is_failing() {
                        if let Some(t) = ticket {
                            let _ = t.send(Err(shared.failing_error()));
                        }
                    } else {
                        match &accesses {
                            Accesses::One(e) => formatter.format_entry(e, &mut out),
                            Accesses::Batch(items) => formatter.format_batch(items, &mut out),
                        }
                        tickets.extend(ticket);
                    }
                }
                Message::Recover(reply) => recovers.push(reply),
                Message::Close => closing = true,
            }
            if out.len() < GROUP_BYTES && !closing {
                next = rx.try_recv().ok();
            }
        }
        if !out.is_empty() {
            let path = shared.path.display();
            let result = storage
                .write_all(&out)
                .map_err(|e| format!("writing {path}: {e}"))
                .and_then(|()| {
                    if durable {
                        storage
                            .sync()
                            .map_err(|e| format!("fsync of {path}: {e}"))?;
                        shared.syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                });
            out.clear();
            match result {
                Ok(()) => {
                    if durable {
                        last_sync = Instant::now();
                    } else {
                        dirty = true;
                    }
                    shared.written.fetch_add(entries as u64, Ordering::Relaxed);
                    for t in tickets.drain(..) {
                        let _ = t.send(Ok(()));
                    }
                }
                Err(cause) => {
                    shared.fail(&cause);
                    for t in tickets.drain(..) {
                        let _ = t.send(Err(shared.failing_error()));
                    }
                }
            }
        }
        shared.pending.fetch_sub(entries, Ordering::Relaxed);
        if dirty && (closing || last_sync.elapsed() >= SYNC_EVERY) && !shared.is_failing() {
            match storage.sync() {
                Ok(()) => {
                    shared.syncs.fetch_add(1, Ordering::Relaxed);
                    dirty = false;
                    last_sync = Instant::now();
                }
                Err(e) => shared.fail(&format!("fsync of {}: {e}", shared.path.display())),
            }
        }
        let now = now_us();
        if !shared.is_failing() && storage.wants_rotation(now) {
            if let Err(e) = storage.rotate(formatter.chain.next_seq, now) {
                shared.fail(&format!("rotating {}: {e}", shared.path.display()));
            }
        }
        for reply in recovers.drain(..) {
            let _ = reply.send(recover(shared, &mut storage, &mut formatter));
            dirty = false;
        }
    }
    storage.finish();
    if shared.is_failing() {
        return Err(shared.failing_error());
    }
    Ok(())
}

/// Writes the lines of a newly opened log: the record of a cut tail.
pub fn write_opening<S: Storage>(
    storage: &mut S,
    formatter: &mut LineFormatter,
    cut: Option<&str>,
    event: &str,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    if let Some(cut) = cut {
        formatter.format_event(now_us(), "torn_tail_cut", cut, &mut out);
    }
    if !event.is_empty() {
        formatter.format_event(now_us(), event, "", &mut out);
    }
    if out.is_empty() {
        return Ok(());
    }
    storage.write_all(&out)?;
    storage.sync()
}

fn recover<S: Storage>(
    shared: &Shared,
    storage: &mut S,
    formatter: &mut LineFormatter,
) -> Result<(), AuditError> {
    let Some(cause) = shared.failure() else {
        return Ok(());
    };
    let result = storage.open().and_then(|opened| {
        formatter.chain = opened.chain;
        let mut out = Vec::new();
        if let Some(cut) = &opened.cut {
            formatter.format_event(now_us(), "torn_tail_cut", cut, &mut out);
        }
        let detail = format!("the log works again after: {cause}");
        formatter.format_event(now_us(), "recovered", &detail, &mut out);
        storage.write_all(&out)?;
        storage.sync()
    });
    match result {
        Ok(()) => {
            shared.recovered();
            Ok(())
        }
        Err(e) => {
            shared.fail(&format!("recovering {}: {e}", shared.path.display()));
            Err(shared.failing_error())
        }
    }
}
