//! Rotation off the writer thread: a spare next file made ahead, the old
//! file retired behind.
//!
//! Rotating inline (trim the live file, `fsync` it, rename it, create the
//! next one, `fsync` the directory) held every commit behind it, and the
//! next file's first commits extended it (an `fdatasync` that journals the
//! size) until the zeroer caught up. So the [`Rotator`] thread keeps a
//! *spare*: `<live>.next` ([`index::next_name`]), created 0600, zero-filled
//! for [`PREALLOCATE`](super::storage::PREALLOCATE) bytes, fsynced, its
//! directory entry fsynced. A rotation on the writer only swaps file
//! descriptors ([`Rotator::take_spare`]): the next commit goes into the
//! spare and its `fdatasync` is the only one on the commit path. The
//! rotator then retires the old file ([`Rotator::retire`]):
//!
//! 1. cut its preallocated zeros and `fsync` it;
//! 2. rename `<live>` to `<live>.<first seq>`, `fsync` the directory;
//! 3. rename `<live>.next` to `<live>`, `fsync` the directory;
//! 4. hand the rotated file to the index builder (which builds it once the
//!    server is not shedding load: see `indexer`) and make the next spare.
//!
//! Before the switch, everything in the old file is durable (the writer
//! syncs first), so a crash at any step leaves the chain whole across the
//! files readers list ([`index::log_files`]: rotated files, `<live>`, then
//! `<live>.next`), and [`complete`] finishes the rotation when the log is
//! next opened.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::index;
use super::indexer::{Indexer, Pressure};
use super::storage::{content_end, find_tail, first_line_head, sync_dir, FILE_MODE};
use super::zeroing::write_zeros;

/// A next file, ready for the writer: created, zero-filled, durable.
pub struct Spare {
    /// The file, open for positioned writes.
    pub file: File,
    /// Bytes from its start that are zeros already written and fsynced.
    pub zeroed: u64,
}

/// What the writer asks of the rotator thread.
enum Job {
    /// Make a spare.
    Prepare,
    /// Retire the old live file (the writer now writes into the spare),
    /// then make the next spare.
    Retire { old: File, len: u64, first_seq: u64 },
    /// Index a rotated file (one whose rotation an open completed).
    Index(PathBuf),
}

#[derive(Default)]
struct State {
    /// The spare, once made.
    spare: Option<Spare>,
    /// Jobs sent and not yet done.
    pending: usize,
    /// Why the last job failed (until [`Rotator::quiesce`]).
    failure: Option<String>,
}

/// The rotator thread and its handle (see the module docs).
pub struct Rotator {
    state: Arc<(Mutex<State>, Condvar)>,
    /// Set with [`State::failure`]: checked once per commit without a lock.
    failed: Arc<AtomicBool>,
    jobs: Option<crossbeam_channel::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Rotator {
    /// Starts the thread for the log whose live file is `live`; spares get
    /// `zero_bytes` of zeros; the index builder defers to `pressure`.
    pub fn start(live: &Path, zero_bytes: u64, pressure: Arc<Pressure>) -> io::Result<Rotator> {
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let failed = Arc::new(AtomicBool::new(false));
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        let live = live.to_path_buf();
        let (theirs, their_failed) = (Arc::clone(&state), Arc::clone(&failed));
        let thread = std::thread::Builder::new()
            .name("dancu-audit-rotate".into())
            .spawn(move || {
                let mut indexer = Indexer::default();
                for job in rx {
                    let result = match job {
                        Job::Prepare => prepare_spare(&live, zero_bytes).map(Some),
                        Job::Retire {
                            old,
                            len,
                            first_seq,
                        } => retire(&live, &old, len, first_seq).and_then(|rotated| {
                            indexer.send(rotated, &pressure);
                            prepare_spare(&live, zero_bytes).map(Some)
                        }),
                        Job::Index(rotated) => {
                            indexer.send(rotated, &pressure);
                            Ok(None)
                        }
                    };
                    let (lock, done) = &*theirs;
                    let mut s = lock.lock();
                    s.pending -= 1;
                    match result {
                        Ok(spare) => s.spare = spare.or(s.spare.take()),
                        Err(e) => {
                            let cause = format!("rotating {}: {e}", live.display());
                            eprintln!("dancu-server: audit log: {cause}");
                            s.failure.get_or_insert(cause);
                            their_failed.store(true, Ordering::Release);
                        }
                    }
                    done.notify_all();
                }
                indexer.stop();
            })?;
        Ok(Rotator {
            state,
            failed,
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.state.0.lock().pending += 1;
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            self.state.0.lock().pending -= 1;
            return Err(io::Error::other("the audit rotator thread stopped"));
        }
        Ok(())
    }

    /// Has a spare made (after an open: none is kept across one).
    pub fn prepare(&self) -> io::Result<()> {
        self.send(Job::Prepare)
    }

    /// Has the index of `rotated` built (after [`complete`] rotated it).
    pub fn index(&self, rotated: PathBuf) -> io::Result<()> {
        self.send(Job::Index(rotated))
    }

    /// The spare, waiting for it if it is still being made (only when
    /// rotations come faster than the rotator retires files).
    pub fn take_spare(&self) -> io::Result<Spare> {
        let (lock, done) = &*self.state;
        let mut s = lock.lock();
        loop {
            if let Some(cause) = &s.failure {
                return Err(io::Error::other(cause.clone()));
            }
            if let Some(spare) = s.spare.take() {
                return Ok(spare);
            }
            if s.pending == 0 {
                return Err(io::Error::other("no next audit file was prepared"));
            }
            done.wait(&mut s);
        }
    }

    /// Retires `old` (the live file until the writer switched to the spare),
    /// whose lines end at `len` and begin with `first_seq`; everything in
    /// it must be durable already.
    pub fn retire(&self, old: File, len: u64, first_seq: u64) -> io::Result<()> {
        self.send(Job::Retire {
            old,
            len,
            first_seq,
        })
    }

    /// The failure of a job, if any: the log fails closed on it (a disk
    /// that cannot rename or fsync will not take the next lines either).
    pub fn check(&self) -> io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            if let Some(cause) = &self.state.0.lock().failure {
                return Err(io::Error::other(cause.clone()));
            }
        }
        Ok(())
    }

    /// Waits until no job is in progress, then forgets the spare and any
    /// failure (before the log is reopened: [`complete`] and a new
    /// [`Rotator::prepare`] follow). Returns the spare that was dropped.
    pub fn quiesce(&self) -> Option<Spare> {
        let (lock, done) = &*self.state;
        let mut s = lock.lock();
        while s.pending > 0 {
            done.wait(&mut s);
        }
        s.failure = None;
        self.failed.store(false, Ordering::Release);
        s.spare.take()
    }

    /// Finishes every job, removes an unused spare and stops the thread
    /// and the index builder (which leaves the files it has not indexed
    /// yet to the next open: see `indexer`).
    pub fn close(mut self, live: &Path) {
        if self.quiesce().is_some() {
            // Nothing was written to it: a next open would remove it anyway.
            let _ = std::fs::remove_file(index::next_name(live));
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Rotator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes `<live>.next`: created 0600, `zero_bytes` of zeros, fsynced, and
/// its directory entry fsynced, so that lines the writer puts in it are
/// found after a crash before any rename.
fn prepare_spare(live: &Path, zero_bytes: u64) -> io::Result<Spare> {
    let next = index::next_name(live);
    if next.exists() {
        remove_linefree(&next)?;
    }
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .mode(FILE_MODE)
        .open(&next)?;
    write_zeros(&file, 0, zero_bytes).map_err(|(_, e)| e)?;
    file.sync_all()?;
    sync_dir(live)?;
    Ok(Spare {
        file,
        zeroed: zero_bytes,
    })
}

/// Removes `path` if it holds no complete line (a spare, or the torn
/// first commit of one); refuses, rather than lose lines, otherwise.
/// Returns how many bytes other than zeros it held.
fn remove_linefree(path: &Path) -> io::Result<u64> {
    let file = File::open(path)?;
    if first_line_head(&file)?.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} holds audit lines; not removed", path.display()),
        ));
    }
    let torn = content_end(&file)?;
    std::fs::remove_file(path)?;
    Ok(torn)
}

/// Steps 1–3 of a retirement (see the module docs); returns the rotated
/// file's name.
fn retire(live: &Path, old: &File, len: u64, first_seq: u64) -> io::Result<PathBuf> {
    old.set_len(len)?;
    old.sync_all()?;
    let rotated = index::rotated_name(live, first_seq);
    rename_durably(live, &rotated)?;
    rename_durably(&index::next_name(live), live)?;
    Ok(rotated)
}

/// Renames `from` to `to` (never over an existing file: that would lose
/// its lines) and fsyncs the directory.
fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists; {} not renamed to it",
                to.display(),
                from.display()
            ),
        ));
    }
    std::fs::rename(from, to)?;
    sync_dir(to)
}

/// What [`complete`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Completed {
    /// The file it rotated, if a rotation was under way.
    pub rotated: Option<PathBuf>,
    /// What it cut: the torn first commit of a spare.
    pub cut: Option<String>,
}

/// Finishes a rotation a crash interrupted, before the live file is
/// opened. The states a crash can leave (see the module docs):
///
/// - no `<live>.next`, or one without a complete line (a spare, possibly
///   half made, or its first commit torn before its fsync, so not
///   acknowledged): it is removed, and torn bytes reported as cut;
/// - `<live>.next` with lines and `<live>` still the old file (zeros not
///   cut yet, perhaps): the old file is cut to its last line and renamed
///   to `<live>.<its first seq>`, then the next file to `<live>`;
/// - `<live>.next` with lines and no `<live>` (the first rename was done):
///   the next file is renamed to `<live>`.
pub fn complete(live: &Path) -> io::Result<Completed> {
    let next = index::next_name(live);
    let mut done = Completed::default();
    let next_file = match File::open(&next) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e),
    };
    if first_line_head(&next_file)?.is_none() {
        drop(next_file);
        let torn = remove_linefree(&next)?;
        sync_dir(live)?;
        if torn > 0 {
            done.cut = Some(format!(
                "cut {torn} bytes of {} (a first commit torn before its fsync)",
                next.display()
            ));
        }
        return Ok(done);
    }
    match OpenOptions::new().read(true).write(true).open(live) {
        Ok(old) => {
            let tail = find_tail(&old, content_end(&old)?)?;
            match first_line_head(&old)? {
                Some(head) => {
                    old.set_len(tail.end)?;
                    old.sync_all()?;
                    let rotated = index::rotated_name(live, head.seq);
                    rename_durably(live, &rotated)?;
                    done.rotated = Some(rotated);
                }
                None => {
                    // No line in it. The writer switches only from a file
                    // with lines, so an empty one is no part of the log and
                    // the next file takes its name; bytes that are not lines
                    // are not ours to throw away.
                    if content_end(&old)? > 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "{} has no complete line but {} continues it",
                                live.display(),
                                next.display()
                            ),
                        ));
                    }
                    std::fs::remove_file(live)?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    rename_durably(&next, live)?;
    Ok(done)
}
