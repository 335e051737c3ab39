//! The name + date-of-birth index (format version 5, section 7): folded
//! full name and date of birth → the records that have them, for the
//! candidate search of bulk matching ("which IDs belong to NGUYEN VAN AN
//! born 1989-03-14?"). Never a free search: the server offers it only to
//! `citizen:match` keys, and only for a name and a date given together.
//!
//! The table has the legacy index's shape (FORMAT.md, "Name index"): one
//! 8-byte slot per record, `(fingerprint, slot number)`, sorted by
//! fingerprint, each at its home slot or the first free one after it. People
//! who share a name and a birthday share a fingerprint, so their slots are
//! neighbours and one scan finds them all. A fingerprint is 32 bits of the
//! key's hash, so a lookup compares each hit's folded name and date with
//! the query before reporting it.
//!
//! The file layout's only contact with this module is [`NameKeys`]: one
//! [`NameKeys::add`] per placed record, one [`NameKeys::write`] for the
//! section.

use zerocopy::FromBytes;

use crate::citizen::Date;
use crate::error::Result;
use crate::fold::{fold_into, names_match};
use crate::format::*;
use crate::layout::{home_slots_for, write_ordered_table, SectionWriter};
use crate::reader::{prefetch_record, Snapshot};
use crate::view::CitizenView;

/// A name and date of birth to search for, folded and hashed once.
#[derive(Clone, Debug, Default)]
pub struct NameDob {
    folded: String,
    date_of_birth: u32,
    hash: u64,
}

impl NameDob {
    /// The key of `full_name` (any spelling: it is folded) born on `dob`.
    pub fn new(full_name: &str, dob: Date) -> NameDob {
        let mut key = NameDob::default();
        key.set(full_name, dob);
        key
    }

    /// Makes this the key of `full_name` born on `dob`, reusing the buffer.
    pub fn set(&mut self, full_name: &str, dob: Date) {
        fold_into(full_name, &mut self.folded);
        self.date_of_birth = dob.to_packed();
        self.hash = name_dob_hash(self.folded.as_bytes(), self.date_of_birth);
    }

    /// The key's 64-bit hash ([`name_dob_hash`]), for indexes of changed
    /// records.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    fn fingerprint(&self) -> u32 {
        (self.hash >> 32) as u32
    }

    /// The folded name.
    pub fn folded_name(&self) -> &str {
        &self.folded
    }

    /// Whether a record has this name (folded) and date of birth.
    #[inline]
    pub fn matches(&self, view: &CitizenView<'_>) -> bool {
        view.date_of_birth().to_packed() == self.date_of_birth
            && names_match(view.full_name(), &self.folded)
    }
}

fn fingerprint(folded: &str, dob_packed: u32) -> u32 {
    (name_dob_hash(folded.as_bytes(), dob_packed) >> 32) as u32
}

/// The keys of the name index, collected while the builder places records.
#[derive(Default)]
pub(crate) struct NameKeys {
    /// `(fingerprint, slot number)`.
    keys: Vec<(u32, u32)>,
    folded: String,
}

impl NameKeys {
    /// Keys for about `records` records.
    pub(crate) fn with_capacity(records: usize) -> NameKeys {
        NameKeys {
            keys: Vec::with_capacity(records),
            folded: String::new(),
        }
    }

    /// Indexes the record placed in `slot`, whose full name is `name`.
    pub(crate) fn add(&mut self, name: &str, record: &RawRecord, slot: u32) {
        fold_into(name, &mut self.folded);
        let fp = fingerprint(&self.folded, record.date_of_birth.get());
        self.keys.push((fp, slot));
    }

    /// Writes the section (the caller has begun it) and returns its home
    /// slot count for the header.
    pub(crate) fn write(mut self, out: &mut SectionWriter<'_>) -> Result<u64> {
        self.keys.sort_unstable();
        let home_slots = home_slots_for(self.keys.len());
        let empty = NameSlot {
            fingerprint: 0.into(),
            record: EMPTY.into(),
        };
        write_ordered_table(out, &self.keys, home_slots, empty, |&(fp, slot)| {
            (
                fp,
                NameSlot {
                    fingerprint: fp.into(),
                    record: slot.into(),
                },
            )
        })?;
        Ok(home_slots)
    }
}

impl<D: AsRef<[u8]>> Snapshot<D> {
    /// Whether the snapshot has a name + date-of-birth index (format
    /// version 5 on); without one, [`Snapshot::find_by_name_dob`] finds
    /// nothing.
    pub fn has_name_index(&self) -> bool {
        self.info_version() >= NAME_INDEX_VERSION
    }

    /// Calls `visit` with every record whose folded full name and date of
    /// birth are `key`'s, until `visit` returns false. Costs one random
    /// read of the table, plus one record (and its name) per hit.
    pub fn find_by_name_dob(&self, key: &NameDob, mut visit: impl FnMut(CitizenView<'_>) -> bool) {
        let Some((table, home_slots)) = self.name_table() else {
            return;
        };
        let Ok(slots) = <[NameSlot]>::ref_from_bytes(table) else {
            return;
        };
        let home = home_slot(key.fingerprint(), home_slots) as usize;
        for slot in slots.get(home..).unwrap_or_default() {
            let (fp, record) = (slot.fingerprint.get(), slot.record.get());
            if record == EMPTY || fp > key.fingerprint() {
                return;
            }
            if fp == key.fingerprint() {
                if let Some(view) = self.slot_view(record) {
                    if key.matches(&view) && !visit(view) {
                        return;
                    }
                }
            }
        }
    }
}

/// Keys per group of a batched search ([`Snapshot::find_many_by_name_dob`]):
/// as in `get_many`, enough independent misses to keep the memory system
/// busy, few enough that the prefetched lines are still in L1 when used.
const SEARCH_GROUP: usize = 16;

/// Groups in flight: table slots prefetched, hits' records prefetched,
/// hits' names prefetched, and the oldest searched.
const SEARCH_STAGES: usize = 4;

/// Hits per key whose records and names are loaded ahead; a key with more
/// (a common name born on one day) reads the rest as it goes.
const HITS_AHEAD: usize = 4;

impl<D: AsRef<[u8]>> Snapshot<D> {
    /// [`Snapshot::find_by_name_dob`] for many keys, overlapping their
    /// cache misses: calls `visit(i, record)` for the records of `keys[i]`,
    /// key after key, exactly as `find_by_name_dob` would for each (same
    /// records, same order, stopping a key when `visit` returns false).
    ///
    /// A search costs up to four dependent misses: the table's slot line,
    /// the record's page header and lines, its name in the text heap. The
    /// keys go through in groups of [`SEARCH_GROUP`], four groups in flight
    /// as in `get_many`: the newest group's table lines are prefetched, the
    /// next group's runs are scanned (in cache now) and their first
    /// [`HITS_AHEAD`] records prefetched, the next one's names prefetched
    /// from those records, and the oldest group is searched by
    /// `find_by_name_dob` itself, which then finds its lines in cache. The
    /// prefetches only load memory, so the answers cannot differ.
    pub fn find_many_by_name_dob(
        &self,
        keys: &[NameDob],
        mut visit: impl FnMut(usize, CitizenView<'_>) -> bool,
    ) {
        let Some((table, home_slots)) = self.name_table() else {
            return;
        };
        let Ok(slots) = <[NameSlot]>::ref_from_bytes(table) else {
            return;
        };
        let records = self.slice(SectionKind::Records);
        // Per key in flight: its home slot, then its first hits. The group
        // searched and the one entering stage 1 share ring entries; the
        // search runs first and frees them.
        const RING: usize = (SEARCH_STAGES - 1) * SEARCH_GROUP;
        let mut homes = [0usize; RING];
        let mut hits = [[EMPTY; HITS_AHEAD]; RING];
        let group_count = keys.len().div_ceil(SEARCH_GROUP);
        let group = |g: usize| {
            (g < group_count).then(|| g * SEARCH_GROUP..((g + 1) * SEARCH_GROUP).min(keys.len()))
        };
        let lag = |g: usize, stage: usize| g.checked_sub(stage).and_then(group);
        for g in 0..group_count + SEARCH_STAGES - 1 {
            // Stage 4: search group g - 3.
            for i in lag(g, 3).unwrap_or_default() {
                self.find_by_name_dob(&keys[i], |view| visit(i, view));
            }
            // Stage 3: the hits' records are in cache; load their names.
            for i in lag(g, 2).unwrap_or_default() {
                for &slot in hits[i % RING].iter().take_while(|&&s| s != EMPTY) {
                    if let Some(view) = self.slot_view(slot) {
                        view.prefetch_text(view.raw().full_name);
                    }
                }
            }
            // Stage 2: scan the runs (in cache now), load the hits' records.
            for i in lag(g, 1).unwrap_or_default() {
                let r = i % RING;
                let fp = keys[i].fingerprint();
                hits[r] = [EMPTY; HITS_AHEAD];
                let run = slots.get(homes[r]..).unwrap_or_default();
                let matching = run
                    .iter()
                    .take_while(|s| s.record.get() != EMPTY && s.fingerprint.get() <= fp)
                    .filter(|s| s.fingerprint.get() == fp);
                for (hit, slot) in hits[r].iter_mut().zip(matching) {
                    *hit = slot.record.get();
                    prefetch_slot(records, *hit);
                }
            }
            // Stage 1: place group g, load its table lines.
            for i in group(g).unwrap_or_default() {
                let r = i % RING;
                homes[r] = home_slot(keys[i].fingerprint(), home_slots) as usize;
                // The run starts at the home slot and is short: its line,
                // and the next when the home slot is near the line's end.
                for at in [homes[r], homes[r] + 3] {
                    if let Some(slot) = slots.get(at) {
                        prefetch(slot);
                    }
                }
            }
        }
    }
}

/// Prefetches what [`Snapshot::slot_view`] reads of slot `slot`: its page
/// header, then every line of its record.
#[inline]
fn prefetch_slot(records: &[u8], slot: u32) {
    if let Some(b) = records.get(slot as usize / SLOTS_PER_PAGE * PAGE_SIZE) {
        prefetch(b);
    }
    prefetch_record(records, slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_name_have_one_key() {
        let dob = Date::new(1989, 3, 14).unwrap();
        let a = NameDob::new("Nguyễn Văn  An", dob);
        let b = NameDob::new("NGUYEN VAN AN", dob);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.folded_name(), "nguyen van an");
        let other_day = NameDob::new("NGUYEN VAN AN", Date::new(1989, 3, 15).unwrap());
        assert_ne!(a.hash(), other_day.hash());
    }
}
