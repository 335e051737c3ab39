//! Every read of a record, in one place.
//!
//! A request holds the served snapshot with a [`SnapshotGuard`] (a swap in
//! the meantime does not unmap it) and reads records only through
//! [`Lookup::find`] (one key) and [`Lookup::find_many`] (a batch of personal
//! IDs, prefetched). No handler calls the snapshot's `get`, `get_legacy`,
//! `get_many` or `identify` itself, so a layer in front of the snapshot (for
//! example an in-memory overlay of changed records) is added by editing
//! these two methods.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dancu_engine::{CitizenView, LegacyId, Modality, PersonalId, Snapshot, TemplateDigest};

use crate::api_error::ApiError;
use crate::snapshot::ServedSnapshot;
use crate::state::State;

/// How a request names a record.
#[derive(Clone, Copy, Debug)]
pub enum RecordKey<'k> {
    /// By personal ID.
    Id(PersonalId),
    /// By legacy (9-digit) ID.
    Legacy(LegacyId),
    /// By the digest of an enrolled biometric template.
    Biometric(Modality, &'k TemplateDigest),
}

impl RecordKey<'_> {
    /// What a 404 for this key says.
    pub fn not_found_message(&self) -> &'static str {
        match self {
            RecordKey::Id(_) => "no citizen has this ID",
            RecordKey::Legacy(_) => "no citizen holds this legacy ID",
            RecordKey::Biometric(..) => "no enrolled template has this hash",
        }
    }
}

/// The served snapshot, held for one request; only made when there is one
/// and the server is ready. Never keep it across an `.await`.
pub struct SnapshotGuard(arc_swap::Guard<Option<Arc<ServedSnapshot>>>);

impl SnapshotGuard {
    /// The served snapshot, or `503 not_ready`.
    #[inline]
    pub fn acquire(state: &State) -> Result<SnapshotGuard, ApiError> {
        let guard = state.snapshots.load();
        if guard.is_none() || !state.ready.load(Ordering::Acquire) {
            return Err(ApiError::not_ready());
        }
        Ok(SnapshotGuard(guard))
    }

    /// The snapshot and what is precomputed about it.
    pub fn served(&self) -> &ServedSnapshot {
        self.0
            .as_deref()
            .expect("a SnapshotGuard is only made around a snapshot")
    }

    /// The reader of its records.
    #[inline]
    pub fn lookup(&self) -> Lookup<'_> {
        Lookup {
            snapshot: &self.served().snapshot,
        }
    }
}

/// Reads records; see the module docs.
#[derive(Clone, Copy)]
pub struct Lookup<'s> {
    snapshot: &'s Snapshot,
}

impl<'s> Lookup<'s> {
    /// The record named by `key`, if any.
    #[inline]
    pub fn find(&self, key: RecordKey<'_>) -> Option<CitizenView<'s>> {
        match key {
            RecordKey::Id(id) => self.snapshot.get(id),
            RecordKey::Legacy(legacy) => self.snapshot.get_legacy(legacy),
            RecordKey::Biometric(modality, digest) => self.snapshot.identify(modality, digest),
        }
    }

    /// The record of each ID in `ids`, in order, into `out` (cleared first):
    /// what [`find`](Lookup::find) with [`RecordKey::Id`] gives for each,
    /// with the memory loads of many IDs overlapped.
    pub fn find_many(&self, ids: &[PersonalId], out: &mut Vec<Option<CitizenView<'s>>>) {
        self.snapshot.get_many(ids, out);
    }
}
