//! The index builder thread: indexes each rotated file, paced, and not
//! while the server sheds load.
//!
//! Why defer: at scale 3 of the national-day mix (issue 18) the audit
//! rotates every ~11 s in a peak, and each rotation's index (read 128 MiB,
//! sort ~8 M pairs, write ~136 MB) competes with the commits' `fdatasync`s
//! and the request threads. Runs with no rotation kept the peaks'
//! interactive p99 at 12–28 ms; with the paced builder in the peaks, 2 runs
//! of 3 stayed under 50 ms. An index only makes `audit-query` faster (it
//! scans a rotated file that has none), so it can wait for the peak to
//! pass.
//!
//! The busy signal is the server's own: a request shed by admission
//! control ([`Pressure`], counted by `Metrics::shed`). The server sheds
//! exactly when it is past what the box can do (bulk first, at a 20 ms
//! queue wait, so before interactive requests suffer), so it needs no
//! threshold of its own to tune per box or per scale. The audit writer's
//! own signals do not tell a peak from the hours around it: at scale 3 a
//! commit is queued behind every `fsync` even between the peaks, and a
//! commit rate would need a threshold per box. The builder looks at the
//! count between slices of its work (every 4 MiB read or written), so a
//! build that started in a lull stops within a slice of the first shed,
//! keeps what it has parsed, and goes on once no request has been shed for
//! [`QUIET`].
//!
//! Deferral is bounded ([`may_build`]): past [`MAX_UNINDEXED`] files
//! waiting, or one waiting [`MAX_WAIT`], the oldest is built anyway, paced,
//! so that a day-long overload does not leave `audit-query` scanning
//! gigabytes.
//!
//! At close the builder stops at its next slice: a build under way is
//! abandoned (its temporary file removed), and queued files stay without
//! an index. The next open queues every rotated file that has none
//! ([`super::index::unindexed_files`]).

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::index;

/// The server's load as the audit's background work sees it: requests
/// shed by admission control. Shared by the metrics (which count each
/// shed here too) and the index builder.
#[derive(Debug, Default)]
pub struct Pressure {
    sheds: AtomicU64,
}

impl Pressure {
    /// Counts a request shed by admission control.
    pub fn note_shed(&self) {
        self.sheds.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests shed since start.
    pub fn sheds(&self) -> u64 {
        self.sheds.load(Ordering::Relaxed)
    }
}

/// How long after the last shed the server still counts as busy: in a
/// peak, requests are shed every second; between the peaks of a scale-3
/// run a few are shed in some seconds and none in others, and a build
/// started there would only stop again.
pub const QUIET: Duration = Duration::from_secs(3);

/// Most rotated files left without an index while the server is busy
/// (8 × 128 MiB: `audit-query` scans about a GiB more, about a second
/// warm); past it the oldest is built anyway, paced.
pub const MAX_UNINDEXED: usize = 8;

/// Longest a rotated file waits for its index while the server is busy.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// How often a deferred build looks at the load again.
const POLL: Duration = Duration::from_millis(200);

/// Idle time per unit of work: the builder works at most a quarter of the
/// time it takes.
///
/// Why pace besides deferring: at scale 3 (issue 18) an unpaced build in
/// a peak's seconds took the interactive p99 from 12–28 ms (runs without
/// rotations) to 57–1,344 ms: nice 19 and the idle I/O class do not keep
/// it from competing (this disk's `mq-deadline` ignores I/O classes). The
/// load rises for a few seconds before the first shed; a paced build
/// leaves room in them. A build then takes about four times as long, a
/// few seconds.
const IDLE_PER_WORK: u32 = 3;

/// The longest pause after one slice. A slice is timed on the wall clock,
/// and at nice 19 on a saturated box its wall time is mostly waiting for
/// a core: one slice took minutes, and so did its pause, while a close
/// waited for the builder (a server stuck in shutdown for over 5 minutes).
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Whether the builder may work now: the server has shed no request for
/// [`QUIET`] (`since_shed`: how long ago it last did, `None` if never), or
/// deferral is past its bound: more than [`MAX_UNINDEXED`] rotated files
/// without an index (`unindexed`, the one being built included), or the
/// oldest of them waiting [`MAX_WAIT`] (`oldest_wait`).
pub fn may_build(since_shed: Option<Duration>, unindexed: usize, oldest_wait: Duration) -> bool {
    let busy = since_shed.is_some_and(|ago| ago < QUIET);
    !busy || unindexed > MAX_UNINDEXED || oldest_wait >= MAX_WAIT
}

/// When the shed count last changed, as far as the builder has looked.
struct ShedWatch {
    pressure: Arc<Pressure>,
    seen: u64,
    changed: Option<Instant>,
}

impl ShedWatch {
    fn new(pressure: Arc<Pressure>) -> ShedWatch {
        ShedWatch {
            pressure,
            seen: 0,
            changed: None,
        }
    }

    /// How long ago a request was last shed (at most a look late).
    fn since_shed(&mut self) -> Option<Duration> {
        let sheds = self.pressure.sheds();
        if sheds != self.seen {
            self.seen = sheds;
            self.changed = Some(Instant::now());
        }
        self.changed.map(|at| at.elapsed())
    }
}

/// The builder thread's handle: started by the first rotated file sent.
#[derive(Default)]
pub struct Indexer(Option<(Sender<PathBuf>, JoinHandle<()>)>);

impl Indexer {
    /// Has `rotated` indexed, once the server is not busy.
    pub fn send(&mut self, rotated: PathBuf, pressure: &Arc<Pressure>) {
        if self.0.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded::<PathBuf>();
            let pressure = Arc::clone(pressure);
            let spawned = std::thread::Builder::new()
                .name("dancu-audit-index".into())
                .spawn(move || {
                    index::lower_priority();
                    Queue::new(rx, pressure).run();
                });
            match spawned {
                Ok(thread) => self.0 = Some((tx, thread)),
                Err(e) => eprintln!(
                    "dancu-server: audit index builder not started: {e} \
                     (audit-query scans the rotated files)"
                ),
            }
        }
        if let Some((tx, _)) = &self.0 {
            let _ = tx.send(rotated);
        }
    }

    /// Stops the builder at its next slice (see the module docs).
    pub fn stop(&mut self) {
        if let Some((tx, thread)) = self.0.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// What stops a build: the log is closing.
fn closing() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the audit log is closing")
}

/// The builder thread's state: rotated files waiting, oldest first, with
/// when each was sent.
struct Queue {
    rx: Receiver<PathBuf>,
    waiting: VecDeque<(PathBuf, Instant)>,
    watch: ShedWatch,
    /// Set when the sender is gone (the log is closing).
    closed: bool,
    /// Whether a build now under way was forced past the bound (said once).
    forced: bool,
}

impl Queue {
    fn new(rx: Receiver<PathBuf>, pressure: Arc<Pressure>) -> Queue {
        Queue {
            rx,
            waiting: VecDeque::new(),
            watch: ShedWatch::new(pressure),
            closed: false,
            forced: false,
        }
    }

    fn add(&mut self, rotated: PathBuf) {
        if !self.waiting.iter().any(|(f, _)| *f == rotated) {
            self.waiting.push_back((rotated, Instant::now()));
        }
    }

    /// Takes the files sent since the last look, waiting up to `wait` for
    /// one (`None`: until one comes or the log closes).
    fn take_sent(&mut self, wait: Option<Duration>) {
        let first = match wait {
            None => self.rx.recv().map_err(|_| true),
            Some(wait) if wait.is_zero() => self
                .rx
                .try_recv()
                .map_err(|e| e == TryRecvError::Disconnected),
            Some(wait) => self
                .rx
                .recv_timeout(wait)
                .map_err(|e| e == RecvTimeoutError::Disconnected),
        };
        match first {
            Ok(rotated) => self.add(rotated),
            Err(disconnected) => {
                self.closed |= disconnected;
                return;
            }
        }
        loop {
            match self.rx.try_recv() {
                Ok(rotated) => self.add(rotated),
                Err(e) => {
                    self.closed |= e == TryRecvError::Disconnected;
                    return;
                }
            }
        }
    }

    /// Waits up to `wait` on the channel, taking the files sent meanwhile;
    /// an error once the log is closing. (On the channel, not in a sleep,
    /// so that a close ends a pause at once.)
    fn wait(&mut self, wait: Duration) -> io::Result<()> {
        self.take_sent(Some(wait));
        if self.closed {
            Err(closing())
        } else {
            Ok(())
        }
    }

    /// Whether the builder may work on a file sent at `oldest`, with
    /// `building` more files than are waiting (the one under way).
    fn may_build(&mut self, oldest: Instant, building: usize) -> bool {
        let unindexed = self.waiting.len() + building;
        let may = may_build(self.watch.since_shed(), unindexed, oldest.elapsed());
        if may && !self.forced && self.watch.since_shed().is_some_and(|ago| ago < QUIET) {
            self.forced = true;
            eprintln!(
                "dancu-server: audit index built while the server sheds load: \
                 {unindexed} rotated files wait for one (at most {MAX_UNINDEXED} may, \
                 for at most {} s)",
                MAX_WAIT.as_secs()
            );
        }
        may
    }

    fn run(mut self) {
        let mut builder = index::Builder::default();
        loop {
            let wait = if self.waiting.is_empty() {
                None
            } else {
                Some(Duration::ZERO)
            };
            self.take_sent(wait);
            if self.closed {
                return;
            }
            let Some(&(_, oldest)) = self.waiting.front() else {
                continue;
            };
            if !self.may_build(oldest, 0) {
                self.take_sent(Some(POLL));
                continue;
            }
            let Some((rotated, sent)) = self.waiting.pop_front() else {
                continue;
            };
            if index::index_name(&rotated).exists() {
                continue; // Queued twice (an open found it unindexed).
            }
            let mut worked = Instant::now();
            let mut between = || -> io::Result<()> {
                let resume = Instant::now() + (worked.elapsed() * IDLE_PER_WORK).min(MAX_PAUSE);
                loop {
                    let left = resume.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.wait(left)?;
                }
                self.wait(Duration::ZERO)?;
                while !self.may_build(sent, 1) {
                    self.wait(POLL)?;
                }
                worked = Instant::now();
                Ok(())
            };
            let built = builder.build(&rotated, &mut between);
            self.forced = false;
            match built {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted && self.closed => return,
                Err(e) => eprintln!(
                    "dancu-server: audit index of {} not written: {e} \
                     (audit-query scans that file)",
                    rotated.display()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn builds_when_nothing_was_ever_shed_or_the_last_shed_is_past_quiet() {
        assert!(may_build(None, 1, S(0)));
        assert!(may_build(None, 100, S(10_000)));
        assert!(may_build(Some(QUIET), 1, S(0)));
        assert!(may_build(Some(S(3600)), 1, S(0)));
    }

    #[test]
    fn defers_while_the_server_sheds() {
        assert!(!may_build(Some(S(0)), 1, S(0)));
        assert!(!may_build(Some(QUIET - Duration::from_millis(1)), 1, S(0)));
        assert!(!may_build(Some(S(1)), MAX_UNINDEXED, MAX_WAIT - S(1)));
    }

    #[test]
    fn builds_anyway_past_the_bounds() {
        assert!(may_build(Some(S(0)), MAX_UNINDEXED + 1, S(0)));
        assert!(may_build(Some(S(0)), 1, MAX_WAIT));
        assert!(may_build(Some(S(0)), 1, MAX_WAIT + S(1)));
    }

    #[test]
    fn a_shed_is_seen_once_and_ages() {
        let pressure = Arc::new(Pressure::default());
        let mut watch = ShedWatch::new(Arc::clone(&pressure));
        assert_eq!(watch.since_shed(), None);
        pressure.note_shed();
        assert_eq!(pressure.sheds(), 1);
        let first = watch.since_shed().expect("a shed was seen");
        // No new shed: the same instant, older by now (never younger).
        assert!(watch.since_shed().expect("still seen") >= first);
    }
}
