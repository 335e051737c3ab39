//! Every read of a record, in one place.
//!
//! A request holds the served snapshot with a [`SnapshotGuard`] (a swap in
//! the meantime does not unmap it) and reads records only through
//! [`Lookup::find`] (one key) and [`Lookup::find_many`] (a batch of personal
//! IDs, prefetched), and searches by name and date of birth only through
//! its [`MatchSource`] implementation (bulk match). No handler calls the snapshot's `get`, `get_legacy`,
//! `get_many` or `identify` itself: when the server keeps a live register,
//! these two methods read the register's overlay of changed records first
//! ([`dancu_register::Overlay`]), so every read sees births, deaths, moves
//! and corrections as soon as they are durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dancu_engine::matching::MatchSource;
use dancu_engine::{
    CitizenView, LegacyId, Modality, NameDob, PersonalId, Snapshot, TemplateDigest,
};
pub use dancu_register::Found;
use dancu_register::Overlay;

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

    /// The reader of its records (and of the register's changes, if the
    /// server keeps one).
    #[inline]
    pub fn lookup<'a>(&'a self, state: &'a State) -> Lookup<'a> {
        Lookup {
            snapshot: &self.served().snapshot,
            overlay: state.register.as_deref().map(|r| r.overlay()),
        }
    }
}

/// Reads records; see the module docs.
#[derive(Clone, Copy)]
pub struct Lookup<'s> {
    snapshot: &'s Snapshot,
    overlay: Option<&'s Overlay>,
}

impl<'s> Lookup<'s> {
    /// The record named by `key`, if any.
    #[inline]
    pub fn find(&self, key: RecordKey<'_>) -> Option<Found<'s>> {
        let snapshot = self.snapshot;
        match (self.overlay, key) {
            (Some(o), RecordKey::Id(id)) => o.get(snapshot, id),
            (Some(o), RecordKey::Legacy(legacy)) => o.get_legacy(snapshot, legacy),
            (Some(o), RecordKey::Biometric(m, digest)) => o.identify(snapshot, m, digest),
            (None, RecordKey::Id(id)) => snapshot.get(id).map(Found::Snapshot),
            (None, RecordKey::Legacy(legacy)) => snapshot.get_legacy(legacy).map(Found::Snapshot),
            (None, RecordKey::Biometric(m, digest)) => {
                snapshot.identify(m, digest).map(Found::Snapshot)
            }
        }
    }

    /// Whether the records are the snapshot's: no register, or nothing
    /// changed since the snapshot. Asked once per block of a bulk match: a
    /// change that lands while the block is matched is seen by the next
    /// block, as if this one had been matched a moment earlier.
    fn unchanged(&self) -> bool {
        self.overlay.is_none_or(Overlay::is_empty)
    }

    /// The record of each ID in `ids`, in order, into `out` (cleared first):
    /// what [`find`](Lookup::find) with [`RecordKey::Id`] gives for each,
    /// with the memory loads of many IDs overlapped.
    pub fn find_many(&self, ids: &[PersonalId], out: &mut Vec<Option<Found<'s>>>) {
        match self.overlay {
            Some(o) => o.get_many(self.snapshot, ids, out),
            None => {
                let mut views = Vec::with_capacity(ids.len());
                self.snapshot.get_many(ids, &mut views);
                out.clear();
                out.extend(views.into_iter().map(|v| v.map(Found::Snapshot)));
            }
        }
    }
}

/// Bulk matching reads through the overlay too: rows see today's births,
/// deaths and corrections, and candidates are searched among the records
/// as they are now.
impl MatchSource for Lookup<'_> {
    fn lookup_many(
        &self,
        ids: &[PersonalId],
        visit: &mut dyn FnMut(usize, Option<CitizenView<'_>>),
    ) {
        if self.unchanged() {
            // The snapshot's own batch: it also loads the records' texts
            // ahead of the checks.
            return MatchSource::lookup_many(self.snapshot, ids, visit);
        }
        let mut found = Vec::with_capacity(ids.len());
        self.find_many(ids, &mut found);
        for (i, f) in found.iter().enumerate() {
            visit(i, f.as_ref().map(Found::view));
        }
    }

    fn find_by_name_dob(&self, key: &NameDob, visit: &mut dyn FnMut(CitizenView<'_>) -> bool) {
        match self.overlay {
            Some(o) => o.find_by_name_dob(self.snapshot, key, visit),
            None => self.snapshot.find_by_name_dob(key, visit),
        }
    }

    fn find_many_by_name_dob(
        &self,
        keys: &[NameDob],
        visit: &mut dyn FnMut(usize, CitizenView<'_>) -> bool,
    ) {
        if self.unchanged() {
            // The snapshot's batched search, which overlaps the keys' memory
            // loads; the overlay's name map is searched key by key.
            return self.snapshot.find_many_by_name_dob(keys, visit);
        }
        for (i, key) in keys.iter().enumerate() {
            self.find_by_name_dob(key, &mut |view| visit(i, view));
        }
    }

    fn has_name_index(&self) -> bool {
        self.snapshot.has_name_index()
    }
}
