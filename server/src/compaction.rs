//! Compaction: the served snapshot and the change log folded into the next
//! generation, swapped in under load, then the log trimmed.
//!
//! 1. The register ends its log segment after the last numbered change and
//!    reads back what it folds (writes go on meanwhile, into the new
//!    segment).
//! 2. The builder writes generation N + 1 beside the served snapshot
//!    (`register-<generation>.snap`, temporary file, fsync, rename), with the
//!    fold's last sequence in its header.
//! 3. A reload swaps it in: requests that started on generation N finish on
//!    it; new ones read N + 1 (and the overlay, which still holds every
//!    change).
//! 4. Once no request holds generation N, the overlay drops what N + 1
//!    holds and the log deletes the segments before the fold.
//!
//! A restart at any point opens the newest generation and replays exactly
//! the changes after its folded sequence.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::state::State;
use crate::Error;

/// What a compaction did.
#[derive(Clone, Debug, Serialize)]
pub struct CompactionOutcome {
    /// The new generation.
    pub generation: u64,
    /// Its file name.
    pub file: String,
    /// The last change sequence it folds.
    pub folded_sequence: u64,
    /// Citizens whose changes it folded.
    pub changed_records: usize,
    /// Records in the new generation.
    pub records: u64,
    /// Seconds to fold and build.
    pub build_s: f64,
    /// Overlay entries dropped after the swap.
    pub overlay_dropped: usize,
    /// Log segments deleted.
    pub segments_deleted: u64,
}

/// One compaction at a time.
static RUNNING: Mutex<()> = Mutex::new(());

/// The file of generation `generation` beside `served` — never the served
/// file's own name (a snapshot named after another generation would be
/// replaced under its readers' feet).
fn generation_path(served: &Path, generation: u64) -> PathBuf {
    let dir = served.parent().unwrap_or(Path::new("."));
    let path = dir.join(format!("register-{generation:06}.snap"));
    if path.file_name() == served.file_name() {
        return dir.join(format!("register-{generation:06}-compacted.snap"));
    }
    path
}

/// Runs a compaction now (blocking: call it off the request threads).
/// `Ok(None)` if another one is running.
pub fn compact_now(state: &Arc<State>) -> Result<Option<CompactionOutcome>, Error> {
    let Some(_one) = RUNNING.try_lock() else {
        return Ok(None);
    };
    let register = state
        .register
        .clone()
        .ok_or_else(|| Error::Internal("compaction without a change log".into()))?;
    let served = state
        .snapshots
        .current()
        .ok_or_else(|| Error::Internal("compaction before a snapshot is served".into()))?;
    let started = Instant::now();
    let register_err = |source| Error::Register {
        path: served.path.clone(),
        source,
    };
    let fold = register
        .begin_compaction(served.snapshot.folded_sequence())
        .map_err(register_err)?;
    let generation = served.generation + 1;
    let out = generation_path(&served.path, generation);
    let summary = dancu_register::compact(
        &served.snapshot,
        &fold.changes,
        fold.folded,
        generation,
        fold.last_change_time
            .unwrap_or(served.snapshot.info().build_time_unix),
        &out,
    )
    .map_err(register_err)?;
    let build_s = started.elapsed().as_secs_f64();
    let previous = Arc::downgrade(&served);
    drop(served);
    state.snapshots.reload()?;
    // Requests that began on the old generation may still read it; the
    // overlay keeps their changes until they are done.
    let deadline = Instant::now() + Duration::from_secs(30);
    while previous.upgrade().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if previous.upgrade().is_some() {
        eprintln!(
            "dancu-server: compaction: generation {} still in use after 30 s; \
             pruning the overlay anyway",
            generation - 1
        );
    }
    let (overlay_dropped, segments_deleted) =
        register
            .end_compaction(fold.folded)
            .map_err(|source| Error::Register {
                path: out.clone(),
                source,
            })?;
    Ok(Some(CompactionOutcome {
        generation,
        file: out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        folded_sequence: fold.folded,
        changed_records: fold.changes.len(),
        records: summary.records,
        build_s,
        overlay_dropped,
        segments_deleted,
    }))
}
