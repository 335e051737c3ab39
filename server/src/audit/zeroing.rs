//! Zero-filling the live file ahead of the writer, on a thread of its own.
//!
//! [`FileStorage`](super::FileStorage) writes lines into space that is
//! already allocated and written (see [`PREALLOCATE`](super::storage::PREALLOCATE)),
//! so that a commit's `fdatasync` flushes data only. Making that space —
//! writing 8 MiB of zeros and `fsync`ing them — took the writer thread
//! 5–25 ms, once per 8 MiB: about every 3 s under the national-day mix at
//! scale 1, whose batch lines make ~2.8 MB/s of log, and every answer that
//! arrived meanwhile waited for it. Measured with
//! `dancu_audit_stage_seconds{stage="write"}` (issue 18): 46–49 commits
//! over 5 ms in a 120 s run with the zeroing inline, 2–30 with this thread.
//!
//! So the [`Zeroer`] thread zeroes the next stretch while the writer still
//! has half of the last one before it, and the writer waits for it only if
//! it catches up with a stretch being zeroed (it does not wait for a
//! zeroer that failed or was never asked: it writes past the zeroed space,
//! as without preallocation, and the zeroer starts a little after it).
//! The two never write the same bytes: the zeroer writes only at or past
//! [`Zeroing::start`], and the writer writes past it only while the zeroer
//! is idle, moving it along.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

/// What the writer and the zeroer share.
#[derive(Default)]
struct Zeroing {
    /// The live file (a second descriptor of it); `None` while the writer
    /// trims, rotates or reopens it.
    file: Option<Arc<File>>,
    /// Bytes before this are the writer's: log lines, or zeros ready for
    /// them. The zeroer writes only at or past it.
    start: u64,
    /// Zero up to here (nothing to do while `target <= start`).
    target: u64,
    /// Whether the zeroer is writing `[start, target)` now.
    busy: bool,
    /// Set to stop the thread.
    stop: bool,
}

/// The zeroing thread and its handle (see the module docs).
pub struct Zeroer {
    shared: Arc<(Mutex<Zeroing>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Zeroer {
    /// Starts the thread (idle until [`Zeroer::attach`]).
    pub fn start() -> io::Result<Zeroer> {
        let shared = Arc::new((Mutex::new(Zeroing::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("dancu-audit-zero".into())
            .spawn(move || zero_ahead(&theirs))?;
        Ok(Zeroer {
            shared,
            thread: Some(thread),
        })
    }

    /// Zeroes ahead in `file`, whose bytes before `end` are the writer's.
    pub fn attach(&self, file: &File, end: u64) -> io::Result<()> {
        let file = Arc::new(file.try_clone()?);
        let mut z = self.idle();
        z.file = Some(file);
        z.start = end;
        z.target = end;
        Ok(())
    }

    /// Stops zeroing the current file (waits for a stretch in progress);
    /// returns how far the zeroes reach, for the writer to trim.
    pub fn detach(&self) -> u64 {
        let mut z = self.idle();
        z.file = None;
        z.start
    }

    /// Before the writer writes `[end, end + need)`: waits if the zeroer is
    /// making that space, and asks for zeros up to `ahead` bytes past it
    /// once less than half of that is left. Space the zeroer was not asked
    /// for in time (just after an open or a rotation, or after a failure)
    /// the writer takes as it is, extending the file, and leaves the zeroer
    /// an eighth of `ahead` behind it to start from: so the writer's next
    /// lines do not wait for the stretch just asked for. Nothing is zeroed
    /// past `limit` (where the file rotates: zeros past it would only be
    /// cut again, and the rotation would wait for them).
    pub fn claim(&self, end: u64, need: u64, ahead: u64, limit: u64) {
        let (lock, done) = &*self.shared;
        let mut z = lock.lock();
        let want = end + need;
        while z.busy && want > z.start {
            done.wait(&mut z);
        }
        if want > z.start {
            z.start = want + ahead / 8;
            z.target = z.target.max(z.start);
        }
        if z.file.is_some() && !z.busy && z.start.saturating_sub(want) < ahead / 2 {
            z.target = z.start.max((want + ahead).min(limit));
            if z.target > z.start {
                done.notify_all();
            }
        }
    }

    /// The shared state once no stretch is being zeroed.
    fn idle(&self) -> parking_lot::MutexGuard<'_, Zeroing> {
        let (lock, done) = &*self.shared;
        let mut z = lock.lock();
        while z.busy {
            done.wait(&mut z);
        }
        z
    }
}

impl Drop for Zeroer {
    fn drop(&mut self) {
        {
            let mut z = self.idle();
            z.stop = true;
            z.file = None;
            self.shared.1.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: waits for a stretch to zero, zeroes and fsyncs it, repeats.
fn zero_ahead(shared: &(Mutex<Zeroing>, Condvar)) {
    let (lock, done) = shared;
    loop {
        let (file, from, to) = {
            let mut z = lock.lock();
            loop {
                if z.stop {
                    return;
                }
                match &z.file {
                    Some(file) if z.target > z.start => {
                        let job = (Arc::clone(file), z.start, z.target);
                        z.busy = true;
                        break job;
                    }
                    _ => done.wait(&mut z),
                }
            }
        };
        let result =
            write_zeros(&file, from, to).and_then(|()| file.sync_all().map_err(|e| (from, e)));
        let mut z = lock.lock();
        z.busy = false;
        match result {
            Ok(()) => z.start = to,
            Err((at, e)) => {
                // Whatever was zeroed stays; the writer extends the file
                // past it (no retry: a full disk fails the writes anyway).
                eprintln!("dancu-server: audit log: preallocating space failed: {e}");
                z.start = at;
                z.target = z.start;
                z.file = None;
            }
        }
        done.notify_all();
    }
}

/// A mebibyte of zeros to write from.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// Writes zeros over bytes `from..to` of `file`. On an error, also says
/// up to where the zeros were written.
pub(super) fn write_zeros(file: &File, from: u64, to: u64) -> Result<(), (u64, io::Error)> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at).map_err(|e| (at, e))?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroes_ahead_and_never_over_the_writers_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live");
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let zeroer = Zeroer::start().unwrap();
        zeroer.attach(&file, 0).unwrap();
        // Nothing zeroed yet: the first write extends the file and asks for
        // zeros from 8 KiB past it to 64 KiB past it.
        zeroer.claim(0, 10, 1 << 16, u64::MAX);
        file.write_all_at(b"0123456789", 0).unwrap();
        // Inside the writer's gap: no wait, whatever the zeroer is doing.
        zeroer.claim(10, 100, 1 << 16, u64::MAX);
        file.write_all_at(&[b'x'; 100], 10).unwrap();
        let reach = zeroer.detach();
        assert!(reach >= 10 + (1 << 13));
        let mut head = [0u8; 110];
        file.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(&head[..10], b"0123456789");
        assert!(head[10..].iter().all(|&b| b == b'x'));
        // Whatever the zeroer did, it did past the writer's gap.
        let len = file.metadata().unwrap().len();
        assert!(len == 110 || len >= 1 << 16, "{len}");
    }

    #[test]
    fn zeroes_nothing_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = tempfile::tempfile_in(dir.path()).unwrap();
        let zeroer = Zeroer::start().unwrap();
        zeroer.attach(&file, 0).unwrap();
        zeroer.claim(0, 10, 1 << 16, 4096);
        file.write_all_at(b"0123456789", 0).unwrap();
        zeroer.detach();
        assert_eq!(file.metadata().unwrap().len(), 10);
    }
}
