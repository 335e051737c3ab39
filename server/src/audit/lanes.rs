//! Per-worker lanes between the request workers and the writer thread, and
//! the commit numbers that say when an append is durable.
//!
//! Each worker thread appends to its own [`Lane`]: a mutex that only that
//! worker and, once per commit, the writer take, so workers never contend
//! with each other (issue 11: "per worker queue so workers don't contend").
//! The writer numbers its group commits 1, 2, 3, …; an append's ticket is
//! the number of the commit that will take it, read under the lane's lock
//! from [`Lane::commit`], which the writer advances under the same lock
//! when it takes the lane's accesses. So a ticket is exact and one number
//! per connection is enough to know when all its answers may go out.
//!
//! Tasks wait for a commit by leaving their waker in their thread's lane;
//! after each commit the writer wakes those it decided. Waking a task of a
//! tokio runtime from another thread writes to the runtime's eventfd, one
//! syscall per task (measured: 7 % of the server's CPU under durable GET
//! keep-alive, in the writer thread alone). So each worker runs a
//! [`LanePump`]: the writer wakes only the pump, once per commit, and the
//! pump wakes its lane's tasks from their own thread, where a wake is a
//! push on the run queue.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::Mutex;

use super::stages::Stage;
use super::writer::Accesses;
use super::Shared;

/// The number of a group commit (from 1; 0 is "none").
pub type Commit = u64;

/// What one worker appended since the writer last took it, and who waits.
pub struct Lane {
    /// The accesses appended, oldest first.
    pub accesses: Vec<Accesses>,
    /// How many entries `accesses` holds (the lane's share of the bound).
    pub entries: usize,
    /// The commit that takes what is appended now.
    pub commit: Commit,
    /// Set by the writer's last take: nothing appended later is written.
    pub closed: bool,
    /// Tasks waiting for a commit (the commit they need, their waker).
    pub waiters: Vec<(Commit, Waker)>,
    /// The lane's [`LanePump`], while it waits for work.
    pub pump: Option<Waker>,
    /// Decided waiters the pump is to wake.
    pub ready: Vec<Waker>,
    /// The commit decided when `ready` was last handed over.
    pub ready_commit: Commit,
    /// When the oldest of `accesses` was appended (the writer observes its
    /// wait as [`Stage::Lane`](super::stages::Stage::Lane)).
    pub since: Option<Instant>,
}

/// Keeps a lane on its own cache lines (no false sharing between workers).
#[repr(align(128))]
struct Padded(Mutex<Lane>);

/// One lane per worker thread.
pub struct Lanes {
    lanes: Box<[Padded]>,
}

thread_local! {
    /// This thread's lane number (before reduction modulo the lane count).
    static THREAD_LANE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Hands out lane numbers to threads in the order they first append.
static NEXT_LANE: AtomicUsize = AtomicUsize::new(0);

impl Lanes {
    /// `n` lanes (at least one), all starting at commit 1.
    pub fn new(n: usize) -> Lanes {
        Lanes {
            lanes: (0..n.max(1))
                .map(|_| {
                    Padded(Mutex::new(Lane {
                        accesses: Vec::new(),
                        entries: 0,
                        commit: 1,
                        closed: false,
                        waiters: Vec::new(),
                        pump: None,
                        ready: Vec::new(),
                        ready_commit: 0,
                        since: None,
                    }))
                })
                .collect(),
        }
    }

    /// The calling thread's lane.
    pub fn mine(&self) -> &Mutex<Lane> {
        &self.lanes[self.my_index()].0
    }

    /// The number of the calling thread's lane.
    fn my_index(&self) -> usize {
        let n = THREAD_LANE.with(|lane| {
            if lane.get() == usize::MAX {
                lane.set(NEXT_LANE.fetch_add(1, Ordering::Relaxed));
            }
            lane.get()
        });
        n % self.lanes.len()
    }

    /// Every lane.
    pub fn iter(&self) -> impl Iterator<Item = &Mutex<Lane>> {
        self.lanes.iter().map(|p| &p.0)
    }

    /// How many lanes.
    pub fn count(&self) -> usize {
        self.lanes.len()
    }
}

impl Lane {
    /// Moves the wakers of every waiter whose commit is decided to `into`
    /// (the caller wakes them once the lock is dropped).
    pub fn take_decided(&mut self, decided: Commit, into: &mut Vec<Waker>) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].0 <= decided {
                into.push(self.waiters.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
    }

    /// After commit `decided`: hands the decided waiters to the lane's pump
    /// and returns the pump's waker (to wake once), or, with no pump
    /// waiting, moves them to `direct`.
    pub fn hand_decided(&mut self, decided: Commit, direct: &mut Vec<Waker>) -> Option<Waker> {
        if self.waiters.is_empty() {
            return None;
        }
        match self.pump.take() {
            Some(pump) => {
                let before = self.ready.len();
                let mut ready = std::mem::take(&mut self.ready);
                self.take_decided(decided, &mut ready);
                self.ready = ready;
                if self.ready.len() > before {
                    self.ready_commit = decided;
                    Some(pump)
                } else {
                    self.pump = Some(pump);
                    None
                }
            }
            None => {
                self.take_decided(decided, direct);
                None
            }
        }
    }
}

/// Wakes, from its own worker thread, the tasks of one lane whose commits
/// the writer decided (see the module docs). Spawn one on every worker
/// runtime ([`super::AuditLog::lane_pump`]); it ends when the writer stops.
pub struct LanePump {
    shared: Arc<Shared>,
    /// The lane, fixed at the first poll (on the worker's thread).
    lane: Option<usize>,
    woken: Vec<Waker>,
}

impl LanePump {
    pub(super) fn new(shared: Arc<Shared>) -> LanePump {
        LanePump {
            shared,
            lane: None,
            woken: Vec::new(),
        }
    }
}

impl Future for LanePump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let lanes = &this.shared.lanes;
        let index = *this.lane.get_or_insert_with(|| lanes.my_index());
        let handed = {
            let mut lane = lanes.lanes[index].0.lock();
            std::mem::swap(&mut lane.ready, &mut this.woken);
            match &lane.pump {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => lane.pump = Some(cx.waker().clone()),
            }
            lane.ready_commit
        };
        if !this.woken.is_empty() {
            this.shared.stages.since_decided(Stage::Wake, handed);
        }
        this.woken.drain(..).for_each(Waker::wake);
        if this.shared.stopped.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for LanePump {
    fn drop(&mut self) {
        // Whatever the writer handed over and nobody will pump now is woken
        // here; later commits wake this lane's tasks directly.
        if let Some(index) = self.lane {
            let ready = {
                let mut lane = self.shared.lanes.lanes[index].0.lock();
                lane.pump = None;
                std::mem::take(&mut lane.ready)
            };
            ready.into_iter().for_each(Waker::wake);
        }
    }
}
