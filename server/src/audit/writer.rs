//! The writer thread: group commit.
//!
//! Request workers leave their accesses in their lane ([`super::lanes`]).
//! The writer takes every lane's accesses at once — that is commit number
//! `c` — formats them as chained lines, writes them in one `write` and, in
//! durable mode, `fsync`s once; then it records `c` as decided and wakes
//! the tasks waiting for it. While it is in `fsync`, the next group gathers
//! in the lanes; so the rate of fsyncs adapts to the disk and each covers
//! as many requests as arrived during the one before (as PostgreSQL's group
//! commit and Redis' `appendfsync always` do). A worker unparks the writer
//! only when its lane was empty, so a busy writer is never woken.
//!
//! Buffered mode writes at most every [`BUFFERED_GATHER`] (so that a busy
//! server does not pay a wake-up and a `write` per access) and fsyncs every
//! [`SYNC_EVERY`].
//!
//! Any write or fsync error fails the log closed: the commit and every
//! later one are lost (their tickets resolve to [`AuditError::Failing`]),
//! and every later append is refused, until a [`Control::Recover`] (the
//! operator's reload) reopens the file, cuts what the failure left
//! half-written, records the recovery and fsyncs it.

use std::sync::atomic::Ordering;
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::format::LineFormatter;
use super::lanes::Commit;
use super::stages::Stage;
use super::storage::Storage;
use super::{now_us, AuditError, Durability, Entry, Shared};

/// Buffered mode fsyncs at least this often while there is unsynced data.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Buffered mode gathers accesses this long before it writes them: a
/// `kill -9` loses at most this much more than what the workers queued.
pub const BUFFERED_GATHER: Duration = Duration::from_millis(1);
/// The writer wakes at least this often (rotation by day, buffered fsync).
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// A commit is written in `write`s of about this many bytes (a big backlog
/// is not formatted into one buffer).
const GROUP_BYTES: usize = 1 << 20;

/// The accesses of one request.
pub enum Accesses {
    /// A single access: no allocation.
    One(Entry),
    /// The items of a batch request: one grouped line.
    Batch(Vec<Entry>),
}

impl Accesses {
    /// How many entries.
    pub fn len(&self) -> usize {
        match self {
            Accesses::One(_) => 1,
            Accesses::Batch(v) => v.len(),
        }
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the log's owner sends the writer (besides the accesses).
pub enum Control {
    /// Reopen after a failure; answer whether the log works again.
    Recover(crossbeam_channel::Sender<Result<(), AuditError>>),
    /// Write and fsync everything appended before this, then stop.
    Close,
}

/// Marks the writer stopped and wakes every waiter when it returns (or
/// panics): no ticket waits for a commit that will never come.
struct StopGuard<'a>(&'a Shared);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Release);
        let mut wakers = Vec::new();
        for lane in self.0.lanes.iter() {
            let mut lane = lane.lock();
            lane.closed = true;
            lane.take_decided(Commit::MAX, &mut wakers);
            wakers.append(&mut lane.ready);
            wakers.extend(lane.pump.take());
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Runs until [`Control::Close`] (or the log's handle is gone). Returns the
/// last unrecovered failure, if any.
pub fn run<S: Storage>(
    shared: &Shared,
    control: &Receiver<Control>,
    mut storage: S,
    mut formatter: LineFormatter,
) -> Result<(), AuditError> {
    let _stop = StopGuard(shared);
    let durable = shared.durability == Durability::Durable;
    let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
    // One spare vector per lane, swapped with the lane's: no allocation
    // per commit once they have grown.
    let mut taken: Vec<Vec<Accesses>> = shared.lanes.iter().map(|_| Vec::new()).collect();
    let mut wakers: Vec<Waker> = Vec::new();
    let mut recovers = Vec::new();
    let mut commit: Commit = 1;
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut closing = false;
    loop {
        loop {
            match control.try_recv() {
                Ok(Control::Recover(reply)) => recovers.push(reply),
                Ok(Control::Close) => closing = true,
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
            }
        }
        // Take every lane's accesses: they are commit `commit`.
        let mut entries = 0;
        let taking = Instant::now();
        for (lane, spare) in shared.lanes.iter().zip(&mut taken) {
            let mut lane = lane.lock();
            if let Some(since) = lane.since.take() {
                shared
                    .stages
                    .observe(Stage::Lane, taking.saturating_duration_since(since));
            }
            std::mem::swap(&mut lane.accesses, spare);
            entries += std::mem::take(&mut lane.entries);
            lane.commit = commit + 1;
            lane.closed |= closing;
        }
        if entries > 0 {
            if shared.is_failing() {
                // Lost: the tickets of this commit resolve to the failure.
            } else {
                let path = shared.path.display();
                let mut result = Ok(());
                for accesses in taken.iter().flatten() {
                    match accesses {
                        Accesses::One(e) => formatter.format_entry(e, &mut out),
                        Accesses::Batch(items) => formatter.format_batch(items, &mut out),
                    }
                    if out.len() >= GROUP_BYTES {
                        result = storage.write_all(&out);
                        out.clear();
                        if result.is_err() {
                            break;
                        }
                    }
                }
                let result = result
                    .and_then(|()| storage.write_all(&out))
                    .map_err(|e| format!("writing {path}: {e}"))
                    .and_then(|()| {
                        let written = Instant::now();
                        shared.stages.observe(Stage::Write, written - taking);
                        if durable {
                            storage
                                .sync()
                                .map_err(|e| format!("fsync of {path}: {e}"))?;
                            shared.syncs.fetch_add(1, Ordering::Relaxed);
                            shared.stages.observe(Stage::Fsync, written.elapsed());
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
                    }
                    Err(cause) => shared.fail(&cause, commit),
                }
            }
            taken.iter_mut().for_each(Vec::clear);
        }
        // Decided (written, or lost: `fail` recorded it first); wake whoever
        // waits for it.
        if durable && entries > 0 {
            shared.stages.decided(commit, Instant::now());
        }
        shared.decided.store(commit, Ordering::Release);
        commit += 1;
        if durable && entries > 0 {
            for lane in shared.lanes.iter() {
                let pump = lane.lock().hand_decided(commit - 1, &mut wakers);
                wakers.extend(pump);
            }
            wakers.drain(..).for_each(Waker::wake);
        }
        if dirty && (closing || last_sync.elapsed() >= SYNC_EVERY) && !shared.is_failing() {
            match storage.sync() {
                Ok(()) => {
                    shared.syncs.fetch_add(1, Ordering::Relaxed);
                    dirty = false;
                    last_sync = Instant::now();
                }
                Err(e) => shared.fail(&format!("fsync of {}: {e}", shared.path.display()), commit),
            }
        }
        let now = now_us();
        if !shared.is_failing() && storage.wants_rotation(now) {
            let rotating = Instant::now();
            // The next file's lines must never outlive the old file's
            // (buffered mode: written, perhaps not synced yet).
            let synced = if dirty { storage.sync() } else { Ok(()) };
            match synced.and_then(|()| storage.rotate(formatter.chain.next_seq, now)) {
                Ok(()) => dirty = false,
                Err(e) => shared.fail(&format!("rotating {}: {e}", shared.path.display()), commit),
            }
            shared.stages.observe(Stage::Rotate, rotating.elapsed());
        }
        for reply in recovers.drain(..) {
            let _ = reply.send(recover(shared, &mut storage, &mut formatter, commit - 1));
            dirty = false;
        }
        if closing {
            break;
        }
        if entries == 0 {
            // Idle: sleep until a worker's first access (or a chore is due).
            let wait = if dirty {
                SYNC_EVERY.saturating_sub(last_sync.elapsed())
            } else {
                IDLE_WAKE
            };
            std::thread::park_timeout(wait);
        } else if !durable {
            std::thread::sleep(BUFFERED_GATHER);
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

/// Reopens the log after a failure; commits up to `last_lost` stay lost.
fn recover<S: Storage>(
    shared: &Shared,
    storage: &mut S,
    formatter: &mut LineFormatter,
    last_lost: Commit,
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
            shared.recovered(last_lost);
            Ok(())
        }
        Err(e) => {
            shared.fail(
                &format!("recovering {}: {e}", shared.path.display()),
                last_lost + 1,
            );
            Err(shared.failing_error())
        }
    }
}
