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
//! after each commit the writer wakes those it decided.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

use super::writer::Accesses;

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
                    }))
                })
                .collect(),
        }
    }

    /// The calling thread's lane.
    pub fn mine(&self) -> &Mutex<Lane> {
        let n = THREAD_LANE.with(|lane| {
            if lane.get() == usize::MAX {
                lane.set(NEXT_LANE.fetch_add(1, Ordering::Relaxed));
            }
            lane.get()
        });
        &self.lanes[n % self.lanes.len()].0
    }

    /// Every lane.
    pub fn iter(&self) -> impl Iterator<Item = &Mutex<Lane>> {
        self.lanes.iter().map(|p| &p.0)
    }

    /// How many lanes.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }
}

impl Lane {
    /// Wakes (after the lock is dropped, by the caller) every waiter whose
    /// commit is decided.
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
}
