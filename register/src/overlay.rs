//! The overlay: every record changed since the snapshot, in memory, and the
//! read rules that put it in front of the snapshot.
//!
//! Records are kept whole (an [`OwnedRecord`] after-image per changed
//! citizen), in 64 shards by ID so that writers and readers on different
//! citizens do not meet on one lock. Reads check an atomic count first: with
//! no change since the snapshot, a read costs one load more than before.
//! A record is replaced whole under its shard's lock, so a read sees a
//! change entirely or not at all.
//!
//! Legacy IDs and biometric digests set by changes are indexed here too; a
//! key the snapshot still maps to a record whose overlay version no longer
//! holds it (a corrected legacy ID, a replaced template) is not found.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dancu_engine::{
    CitizenView, LegacyId, Modality, NameDob, OwnedRecord, PersonalId, Snapshot, TemplateDigest,
};
use parking_lot::RwLock;

use crate::change::modality_bit;

const SHARDS: usize = 64;

/// Bits of the filter in front of the shards: 2 MiB, which stays in the
/// last-level cache; at a million changed citizens about 6 % of its bits are
/// set, so 94 % of reads of unchanged citizens skip the shard lock and map.
/// (Two bits per citizen in one word cut the false positives to 1.5 % but
/// measured no faster: `register-bench`, 10 M + 1 M changes.)
const FILTER_BITS: u64 = 1 << 24;

/// The entries of one shard, by personal ID.
type Shard = HashMap<u64, Arc<Entry>, BuildHasherDefault<IdHasher>>;

/// Hashes a personal ID with MurmurHash3's finalizer: SipHash (the standard
/// map's default) costs more than the rest of a lookup, and IDs come from
/// the register, not from an attacker choosing keys to collide (the
/// finalizer is a bijection, so distinct IDs never collide fully).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = mix(id);
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// One changed record.
#[derive(Debug)]
pub struct Entry {
    /// The sequence number of the change that left the record so.
    pub sequence: u64,
    /// The record after the change.
    pub record: OwnedRecord,
    /// Modalities whose template is the snapshot's (bit 0 face, bit 1
    /// fingerprint): enrolled, digest not repeated here.
    pub inherited_templates: u8,
}

/// Bytes an entry costs beyond its record: the `Arc`, the map slot and the
/// key.
const ENTRY_OVERHEAD: usize = 16 + 24 + 8;

/// What a record's template of one modality is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// None enrolled.
    None,
    /// The one the snapshot holds for this citizen.
    Inherited,
    /// This one.
    Enrolled(TemplateDigest),
}

impl Entry {
    /// The record's template of `modality`.
    pub fn template(&self, modality: Modality) -> Template {
        if self.inherited_templates & modality_bit(modality) != 0 {
            return Template::Inherited;
        }
        match self.record.template(modality) {
            Some(d) => Template::Enrolled(d),
            None => Template::None,
        }
    }

    /// The record's personal ID.
    pub fn id(&self) -> PersonalId {
        self.record.view().id()
    }

    /// Bytes this entry holds (record, heap, bookkeeping), for the report of
    /// the overlay's memory.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Entry>() - std::mem::size_of::<OwnedRecord>()
            + self.record.size()
            + ENTRY_OVERHEAD
    }
}

/// A record found by a read: from the snapshot, or changed.
pub enum Found<'s> {
    /// Unchanged since the snapshot.
    Snapshot(CitizenView<'s>),
    /// Changed (or new) since the snapshot.
    Changed(Arc<Entry>),
}

impl Found<'_> {
    /// The record.
    #[inline]
    pub fn view(&self) -> CitizenView<'_> {
        match self {
            Found::Snapshot(v) => *v,
            Found::Changed(e) => e.record.view(),
        }
    }
}

/// The changed records. See the module docs.
pub struct Overlay {
    /// One bit per `mix(id) % FILTER_BITS`, set before an entry is inserted
    /// (never cleared until a prune rebuilds it): a clear bit proves the
    /// citizen is unchanged.
    filter: Box<[AtomicU64]>,
    /// Held by `insert` and `prune`, so a prune's filter rebuild never
    /// drops the bit of an entry inserted meanwhile.
    writer: parking_lot::Mutex<()>,
    shards: Box<[RwLock<Shard>]>,
    legacy: RwLock<HashMap<u32, u64>>,
    /// Changed records by [`NameDob::hash`] of their name and date of
    /// birth now: the candidate search's view of births and corrections.
    names: RwLock<HashMap<u64, Vec<u64>>>,
    templates: RwLock<HashMap<(u8, [u8; 16]), u64>>,
    len: AtomicUsize,
    bytes: AtomicUsize,
}

impl Default for Overlay {
    fn default() -> Overlay {
        Overlay {
            filter: (0..FILTER_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            writer: parking_lot::Mutex::new(()),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            legacy: RwLock::default(),
            names: RwLock::default(),
            templates: RwLock::default(),
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }
}

fn shard_of(id: u64) -> usize {
    // The low digits of an ID are its random serial.
    (id % SHARDS as u64) as usize
}

impl Overlay {
    /// Number of changed records.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether nothing changed since the snapshot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn filter_bit(id: u64) -> (usize, u64) {
        let bit = mix(id) % FILTER_BITS;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn may_hold(&self, id: u64) -> bool {
        let (word, bit) = Self::filter_bit(id);
        // Acquire pairs with the Release in `insert`: a reader that runs
        // after a change was published sees its bit.
        self.filter[word].load(Ordering::Acquire) & bit != 0
    }

    /// The changed record of `id`, if it changed.
    #[inline]
    pub fn entry(&self, id: u64) -> Option<Arc<Entry>> {
        if self.is_empty() || !self.may_hold(id) {
            return None;
        }
        self.shards[shard_of(id)].read().get(&id).cloned()
    }

    /// Puts `entry` in place of the citizen's previous version.
    pub fn insert(&self, entry: Arc<Entry>) {
        let view = entry.record.view();
        let id = view.raw_id();
        let legacy = view.legacy_id().map(LegacyId::get);
        let new_templates: Vec<(u8, [u8; 16])> = Modality::ALL
            .iter()
            .filter_map(|&m| match entry.template(m) {
                Template::Enrolled(d) => Some((modality_bit(m), d.0)),
                _ => None,
            })
            .collect();
        let new_name = name_key(&view);
        let added = entry.bytes();
        let _writer = self.writer.lock();
        let (word, bit) = Self::filter_bit(id);
        self.filter[word].fetch_or(bit, Ordering::Release);
        let old = self.shards[shard_of(id)].write().insert(id, entry);
        match &old {
            Some(old) => {
                self.bytes.fetch_sub(old.bytes(), Ordering::Relaxed);
                let old_view = old.record.view();
                if let Some(l) = old_view.legacy_id().map(LegacyId::get) {
                    if Some(l) != legacy {
                        let mut map = self.legacy.write();
                        if map.get(&l) == Some(&id) {
                            map.remove(&l);
                        }
                    }
                }
                let old_key = name_key(&old_view);
                if old_key != new_name {
                    remove_id(&mut self.names.write(), old_key, id);
                }
                let mut map = self.templates.write();
                for m in Modality::ALL {
                    if let Template::Enrolled(d) = old.template(*m) {
                        let key = (modality_bit(*m), d.0);
                        if !new_templates.contains(&key) && map.get(&key) == Some(&id) {
                            map.remove(&key);
                        }
                    }
                }
            }
            None => {
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(added, Ordering::Relaxed);
        if let Some(l) = legacy {
            self.legacy.write().insert(l, id);
        }
        let mut names = self.names.write();
        let ids = names.entry(new_name).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
        drop(names);
        if !new_templates.is_empty() {
            let mut map = self.templates.write();
            for key in new_templates {
                map.insert(key, id);
            }
        }
    }

    /// Every entry (for compaction), cloned out of the shards.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            out.extend(shard.read().values().cloned());
        }
        out
    }

    /// Drops the entries a new snapshot holds (sequence ≤ `folded`). Only
    /// once no reader still uses the snapshot before it.
    pub fn prune(&self, folded: u64) -> usize {
        let _writer = self.writer.lock();
        let mut removed = Vec::new();
        for shard in self.shards.iter() {
            shard.write().retain(|_, e| {
                let keep = e.sequence > folded;
                if !keep {
                    removed.push(e.clone());
                }
                keep
            });
        }
        // Rebuild the filter from what is left: clear, then set again. A read
        // meanwhile may miss a bit and read the snapshot, which holds every
        // pruned change already; for the entries left, set their bits first.
        let mut fresh = vec![0u64; self.filter.len()];
        for shard in self.shards.iter() {
            for &id in shard.read().keys() {
                let (word, bit) = Self::filter_bit(id);
                fresh[word] |= bit;
            }
        }
        for (word, bits) in self.filter.iter().zip(fresh) {
            word.store(bits, Ordering::Release);
        }
        // One pass over each key map (not one per removed entry: at a
        // million changes that was minutes with the maps' locks held).
        let removed_ids: HashSet<u64> = removed.iter().map(|e| e.record.view().raw_id()).collect();
        self.legacy
            .write()
            .retain(|_, id| !removed_ids.contains(id));
        self.templates
            .write()
            .retain(|_, id| !removed_ids.contains(id));
        let mut names = self.names.write();
        for e in &removed {
            remove_id(
                &mut names,
                name_key(&e.record.view()),
                e.record.view().raw_id(),
            );
        }
        let freed: usize = removed.iter().map(|e| e.bytes()).sum();
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
        self.len.fetch_sub(removed.len(), Ordering::Relaxed);
        removed.len()
    }

    /// The record of `id`: the overlay's version, else the snapshot's.
    #[inline]
    pub fn get<'s, D: AsRef<[u8]>>(
        &self,
        snapshot: &'s Snapshot<D>,
        id: PersonalId,
    ) -> Option<Found<'s>> {
        match self.entry(id.get()) {
            Some(e) => Some(Found::Changed(e)),
            None => snapshot.get(id).map(Found::Snapshot),
        }
    }

    /// [`Overlay::get`] of many IDs, results in order: the overlay's
    /// versions first, then the snapshot's prefetching batch lookup of only
    /// the IDs that did not change (a changed citizen's snapshot record
    /// would be read for nothing: at a million changes in ten million
    /// citizens that skipped work pays for the overlay's own lookups).
    pub fn get_many<'s, D: AsRef<[u8]>>(
        &self,
        snapshot: &'s Snapshot<D>,
        ids: &[PersonalId],
        out: &mut Vec<Option<Found<'s>>>,
    ) {
        out.clear();
        let mut views = Vec::with_capacity(ids.len());
        if self.is_empty() {
            snapshot.get_many(ids, &mut views);
            out.extend(views.into_iter().map(|v| v.map(Found::Snapshot)));
            return;
        }
        // The filter's words of every ID first, without a branch between
        // the loads: they are independent, so the core keeps many of them
        // in flight (a miss in the 2 MiB filter each), where a lookup per ID
        // would wait for each word before its branch.
        let maybe: Vec<bool> = ids.iter().map(|id| self.may_hold(id.get())).collect();
        let changed: Vec<Option<Arc<Entry>>> = ids
            .iter()
            .zip(&maybe)
            .map(|(id, &maybe)| {
                if maybe {
                    self.shards[shard_of(id.get())]
                        .read()
                        .get(&id.get())
                        .cloned()
                } else {
                    None
                }
            })
            .collect();
        let unchanged: Vec<PersonalId> = ids
            .iter()
            .zip(&changed)
            .filter_map(|(id, c)| c.is_none().then_some(*id))
            .collect();
        snapshot.get_many(&unchanged, &mut views);
        let mut views = views.into_iter();
        out.extend(changed.into_iter().map(|c| {
            match c {
                Some(e) => Some(Found::Changed(e)),
                None => views
                    .next()
                    .expect("one snapshot lookup per unchanged ID")
                    .map(Found::Snapshot),
            }
        }));
    }

    /// The record holding legacy ID `legacy` now.
    pub fn get_legacy<'s, D: AsRef<[u8]>>(
        &self,
        snapshot: &'s Snapshot<D>,
        legacy: LegacyId,
    ) -> Option<Found<'s>> {
        if self.is_empty() {
            return snapshot.get_legacy(legacy).map(Found::Snapshot);
        }
        let moved = self.legacy.read().get(&legacy.get()).copied();
        if let Some(e) = moved.and_then(|id| self.entry(id)) {
            if e.record.view().legacy_id() == Some(legacy) {
                return Some(Found::Changed(e));
            }
        }
        let view = snapshot.get_legacy(legacy)?;
        match self.entry(view.raw_id()) {
            None => Some(Found::Snapshot(view)),
            Some(e) if e.record.view().legacy_id() == Some(legacy) => Some(Found::Changed(e)),
            Some(_) => None, // corrected since the snapshot
        }
    }

    /// Calls `visit` with every record whose folded name and date of birth
    /// are `key`'s now, until it returns false: changed records from this
    /// overlay's name map, then the snapshot's hits that did not change (a
    /// changed one, if it still has the name, was visited from the map).
    pub fn find_by_name_dob<D: AsRef<[u8]>>(
        &self,
        snapshot: &Snapshot<D>,
        key: &NameDob,
        visit: &mut dyn FnMut(CitizenView<'_>) -> bool,
    ) {
        if !self.is_empty() {
            let ids = self
                .names
                .read()
                .get(&key.hash())
                .cloned()
                .unwrap_or_default();
            for e in ids.into_iter().filter_map(|id| self.entry(id)) {
                let view = e.record.view();
                if key.matches(&view) && !visit(view) {
                    return;
                }
            }
        }
        snapshot.find_by_name_dob(key, |view| {
            self.entry(view.raw_id()).is_some() || visit(view)
        });
    }

    /// The record whose `modality` template is `digest` now.
    pub fn identify<'s, D: AsRef<[u8]>>(
        &self,
        snapshot: &'s Snapshot<D>,
        modality: Modality,
        digest: &TemplateDigest,
    ) -> Option<Found<'s>> {
        if self.is_empty() {
            return snapshot.identify(modality, digest).map(Found::Snapshot);
        }
        let key = (modality_bit(modality), digest.0);
        let enrolled = self.templates.read().get(&key).copied();
        if let Some(e) = enrolled.and_then(|id| self.entry(id)) {
            if e.template(modality) == Template::Enrolled(*digest) {
                return Some(Found::Changed(e));
            }
        }
        let view = snapshot.identify(modality, digest)?;
        match self.entry(view.raw_id()) {
            None => Some(Found::Snapshot(view)),
            Some(e) if e.template(modality) == Template::Inherited => Some(Found::Changed(e)),
            Some(_) => None, // replaced since the snapshot
        }
    }
}

/// The [`NameDob::hash`] of a record's name and date of birth.
fn name_key(view: &CitizenView<'_>) -> u64 {
    NameDob::new(view.full_name(), view.date_of_birth()).hash()
}

/// Takes `id` out of the list of `key`, and the list once it is empty.
fn remove_id(names: &mut HashMap<u64, Vec<u64>>, key: u64, id: u64) {
    if let Some(ids) = names.get_mut(&key) {
        ids.retain(|&other| other != id);
        if ids.is_empty() {
            names.remove(&key);
        }
    }
}
