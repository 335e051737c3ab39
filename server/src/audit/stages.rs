//! Where a durable answer's wait goes, stage by stage (issue 18).
//!
//! An answer held for its audit commit waits through five stages (and,
//! now and then, a rotation), each
//! with its own histogram in `/metrics` (`dancu_audit_stage_seconds`):
//!
//! - [`Stage::Lane`]: its entry sits in its worker's lane until the writer
//!   takes the lane (the writer is busy with the commit before);
//!   observed once per lane and commit, for the lane's oldest access.
//! - [`Stage::Write`]: the writer formats the commit's lines and writes
//!   them.
//! - [`Stage::Fsync`]: the commit's `fdatasync`, as the writer thread sees
//!   it (so including its wait for a core once the disk is done).
//! - [`Stage::Wake`]: from the commit being decided to the lane's pump
//!   running on its worker thread (the writer's wake, the worker's turn).
//! - [`Stage::Gate`]: from the commit being decided to a held connection's
//!   gate opening (its task's turn after the pump woke it).
//! - [`Stage::Rotate`]: a rotation of the live file on the writer thread
//!   (once per rotation, not per commit): every access that arrives
//!   meanwhile waits in its lane for it.
//!
//! Observing costs a clock read per lane and commit, per pump run and per
//! gate that waited, never one per access.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::lanes::Commit;
use crate::metrics::{Histogram, HistogramSnapshot};

/// A stage of the commit path (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Entry appended → the writer takes its lane.
    Lane,
    /// Formatting and writing a commit.
    Write,
    /// A commit's fsync.
    Fsync,
    /// Commit decided → the lane's pump runs.
    Wake,
    /// Commit decided → a held answer's gate opens.
    Gate,
    /// The writer's part of a rotation.
    Rotate,
}

impl Stage {
    /// Every stage, in the order an answer passes them.
    pub const ALL: [Stage; 6] = [
        Stage::Lane,
        Stage::Write,
        Stage::Fsync,
        Stage::Wake,
        Stage::Gate,
        Stage::Rotate,
    ];

    /// The `stage` label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Lane => "lane",
            Stage::Write => "write",
            Stage::Fsync => "fsync",
            Stage::Wake => "wake",
            Stage::Gate => "gate",
            Stage::Rotate => "rotate",
        }
    }
}

/// How many recent commits remember when they were decided (a gate that
/// opens later than this many commits after its own was decided is not
/// observed: its wait is not known exactly).
const DECIDED_RING: usize = 256;

/// The stage histograms and when recent commits were decided.
pub struct Stages {
    histograms: [Histogram; Stage::ALL.len()],
    /// Nanoseconds since [`epoch`] at which commit `c` was decided, at
    /// `c % DECIDED_RING`, tagged by the commit in the other word.
    decided_at: Box<[(AtomicU64, AtomicU64)]>,
}

impl Default for Stages {
    fn default() -> Stages {
        Stages {
            histograms: Default::default(),
            decided_at: (0..DECIDED_RING)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn ns(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_nanos() as u64
}

impl Stages {
    /// Observes `took` for `stage`.
    pub fn observe(&self, stage: Stage, took: Duration) {
        self.histograms[stage as usize].observe(took);
    }

    /// Records that `commit` is decided now (before it is published).
    pub fn decided(&self, commit: Commit, now: Instant) {
        let (tag, at) = &self.decided_at[commit as usize % DECIDED_RING];
        tag.store(0, Ordering::Relaxed);
        at.store(ns(now), Ordering::Relaxed);
        tag.store(commit, Ordering::Release);
    }

    /// Observes, for `stage`, the time since `commit` was decided, if it is
    /// still remembered.
    pub fn since_decided(&self, stage: Stage, commit: Commit) {
        let (tag, at) = &self.decided_at[commit as usize % DECIDED_RING];
        if tag.load(Ordering::Acquire) != commit {
            return;
        }
        let at = at.load(Ordering::Relaxed);
        if tag.load(Ordering::Acquire) != commit {
            return;
        }
        let now = ns(Instant::now());
        self.observe(stage, Duration::from_nanos(now.saturating_sub(at)));
    }

    /// Every stage's histogram, for `/metrics`.
    pub fn snapshot(&self) -> Vec<(&'static str, HistogramSnapshot)> {
        Stage::ALL
            .iter()
            .map(|&s| (s.label(), self.histograms[s as usize].snapshot()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observes_since_a_remembered_commit_only() {
        let stages = Stages::default();
        stages.decided(7, Instant::now());
        stages.since_decided(Stage::Gate, 7);
        // Commit 7 + DECIDED_RING took its slot: 7 is no longer known.
        stages.decided(7 + DECIDED_RING as u64, Instant::now());
        stages.since_decided(Stage::Gate, 7);
        let snapshot = stages.snapshot();
        let (label, (buckets, _)) = &snapshot[Stage::Gate as usize];
        assert_eq!(*label, "gate");
        assert_eq!(buckets.iter().sum::<u64>(), 1);
    }
}
