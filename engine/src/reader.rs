//! Reading a snapshot: validation, lookups, batched lookups.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use zerocopy::little_endian::U32;
use zerocopy::FromBytes;

use crate::citizen::{Modality, TemplateDigest};
use crate::error::{Error, Result};
use crate::format::*;
use crate::id::{LegacyId, PersonalId};
use crate::memory::{SnapshotBytes, StableBytes};
use crate::section_table::{validate, SectionTable};
use crate::text::{read_text, text_range};
use crate::view::CitizenView;

/// Lookups per group of a batch (see [`Snapshot::get_many`]): enough
/// independent misses to keep the memory system busy, few enough that the
/// prefetched lines are still in L1 when they are used.
const BATCH_GROUP: usize = 16;
const STAGE2_LAG: usize = 1;
const STAGE3_LAG: usize = 2;

/// An open snapshot over any bytes: a memory map, a `Vec<u8>`, a `&[u8]`.
///
/// [`Snapshot::open`] checks the header and that every section lies inside
/// the bytes; it reads nothing else, so it takes microseconds at any size.
/// [`Snapshot::verify_checksums`] checks every byte against the section
/// checksums.
/// Lookups on an unverified, corrupted file can return wrong answers but never
/// panic or read out of bounds.
pub struct Snapshot<D = SnapshotBytes> {
    data: D,
    table: SectionTable,
    /// Whether `data` is one of the engine's own [`StableBytes`] holders,
    /// whose `as_ref` returns the same bytes on every call: only then may
    /// `verify` vouch for the text heap once and for all.
    stable_bytes: bool,
    /// Set by `check_text_heap`, for stable bytes only, once the whole text
    /// heap is known to be UTF-8.
    heap_is_utf8: AtomicBool,
}

/// Facts about a snapshot, for `/v1/snapshot` and `dancu-data inspect`.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotInfo {
    /// Format version of the file.
    pub format_version: u32,
    /// Generation number.
    pub generation: u64,
    /// The last change-log sequence number folded in (0: none).
    pub folded_sequence: u64,
    /// Number of citizen records.
    pub record_count: u64,
    /// Build time, seconds since the Unix epoch.
    pub build_time_unix: i64,
    /// The header checksum, which covers every section checksum: equal
    /// checksums mean equal files.
    pub checksum: String,
    /// Size of the snapshot in bytes.
    pub file_bytes: u64,
    /// Home pages of the record section (an ID's hash picks one).
    pub home_pages: u64,
    /// Pages of the record section (home pages plus overflow at the end).
    pub page_count: u64,
    /// The sections.
    pub sections: Vec<SectionInfo>,
}

/// One section of [`SnapshotInfo`].
#[derive(Clone, Debug, Serialize)]
pub struct SectionInfo {
    /// Name.
    pub name: &'static str,
    /// Offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// xxh3-64 checksum, 16 hex digits.
    pub checksum: String,
}

impl<D: AsRef<[u8]>> Snapshot<D> {
    /// Validates the header and section table of `data` and opens it.
    ///
    /// Any `AsRef<[u8]>` will do, and nothing is trusted about it: a safe
    /// `as_ref` may return different bytes on every call, so every string
    /// read from such a snapshot is checked to be UTF-8. The engine's own
    /// holders ([`StableBytes`]: a mapping, a `Vec<u8>`, a `&[u8]`, ...)
    /// opened with [`Snapshot::open_stable`] skip that check once
    /// [`Snapshot::verify_checksums`] has passed.
    pub fn open(data: D) -> Result<Snapshot<D>> {
        Snapshot::open_with(data, false)
    }

    fn open_with(data: D, stable_bytes: bool) -> Result<Snapshot<D>> {
        let table = validate(data.as_ref())?;
        Ok(Snapshot {
            data,
            table,
            stable_bytes,
            heap_is_utf8: AtomicBool::new(false),
        })
    }

    /// The former name of [`Snapshot::verify_checksums`], kept while the
    /// server still calls it ("verify" also names claim matching, see
    /// [`crate::Claims`]).
    pub fn verify(&self) -> Result<()> {
        self.verify_checksums()
    }

    /// Checks every section against its checksum, that padding is zero and
    /// that the text heap is UTF-8 (after which a snapshot over
    /// [`StableBytes`] reads text without validating each string).
    pub fn verify_checksums(&self) -> Result<()> {
        let bytes = self.data.as_ref();
        for (entry, kind) in self.table.header.sections.iter().zip(self.table.kinds()) {
            let kind = *kind;
            let found = xxhash_rust::xxh3::xxh3_64(&bytes[self.table.section(kind)]);
            if found != entry.checksum.get() {
                return Err(Error::ChecksumMismatch {
                    section: kind.name(),
                    expected: entry.checksum.get(),
                    found,
                });
            }
        }
        // Padding (after the header, between sections) must be zero, so that
        // no byte of the file can change unnoticed.
        let mut previous_end = HEADER_SIZE;
        for &kind in self.table.kinds() {
            let section = self.table.section(kind);
            if let Some(at) = bytes[previous_end..section.start]
                .iter()
                .position(|&b| b != 0)
            {
                return Err(Error::Malformed(format!(
                    "padding byte {} before section {} is not zero",
                    previous_end + at,
                    kind.name()
                )));
            }
            previous_end = section.end;
        }
        self.check_text_heap()
    }

    /// Checks only that the text heap is UTF-8 (a small part of the file:
    /// 760 MB at 100 M citizens, against 15 GB for
    /// [`Snapshot::verify_checksums`]), after which a snapshot over
    /// [`StableBytes`] reads text without validating each string. For a
    /// reader of many strings that cannot afford the whole check first, as
    /// `dancu-data match` is.
    pub fn check_text_heap(&self) -> Result<()> {
        let heap = &self.data.as_ref()[self.table.section(SectionKind::TextHeap)];
        if let Err(e) = std::str::from_utf8(heap) {
            return Err(Error::Malformed(format!(
                "text heap is not UTF-8 at byte {}",
                e.valid_up_to()
            )));
        }
        if self.stable_bytes {
            self.heap_is_utf8.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The text heap, as a `&str` once `check_text_heap` has checked it
    /// (stable bytes only).
    #[inline]
    pub(crate) fn heap(&self) -> Heap<'_> {
        let bytes = &self.data.as_ref()[self.table.section(SectionKind::TextHeap)];
        if self.heap_is_utf8.load(Ordering::Acquire) {
            // SAFETY: `heap_is_utf8` is set only by `check_text_heap` (which
            // `verify_checksums` ends with), after `str::from_utf8`
            // accepted the bytes of this same range (the table never
            // changes after `open`), and only when
            // `stable_bytes` is true. That flag is set only by
            // `open_stable`, whose `D: StableBytes` is a sealed trait
            // implemented just for holders whose `as_ref` returns the same
            // bytes on every call and which nothing can change while the
            // snapshot holds or borrows them immutably: owned or borrowed
            // memory, and a read-only mapping under the contract stated in
            // `memory.rs` (the file is never written or truncated in place).
            Heap::Utf8(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            Heap::Unchecked(bytes)
        }
    }

    /// The underlying bytes.
    pub fn bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// Header facts.
    pub fn info(&self) -> SnapshotInfo {
        let h = &self.table.header;
        SnapshotInfo {
            format_version: h.format_version.get(),
            generation: h.generation.get(),
            folded_sequence: h.folded_sequence.get(),
            record_count: self.table.record_count,
            build_time_unix: h.build_time_unix.get() as i64,
            checksum: format!("{:016x}", h.header_checksum.get()),
            file_bytes: self.data.as_ref().len() as u64,
            home_pages: self.table.home_pages,
            page_count: self.table.page_count,
            sections: h
                .sections
                .iter()
                .zip(self.table.kinds())
                .map(|(e, kind)| SectionInfo {
                    name: kind.name(),
                    offset: e.offset.get(),
                    length: e.length.get(),
                    checksum: format!("{:016x}", e.checksum.get()),
                })
                .collect(),
        }
    }

    /// The format version of the file.
    pub(crate) fn info_version(&self) -> u32 {
        self.table.header.format_version.get()
    }

    /// The name index's bytes and home slot count, if the file has one.
    pub(crate) fn name_table(&self) -> Option<(&[u8], u64)> {
        (self.table.name_home_slots != 0).then(|| {
            (
                self.slice(SectionKind::NameIndex),
                self.table.name_home_slots,
            )
        })
    }

    /// The record in slot `slot`, if the slot is in use (for indexes that
    /// refer to records by slot).
    #[inline]
    pub(crate) fn slot_view(&self, slot: u32) -> Option<CitizenView<'_>> {
        self.view(slot)
    }

    /// The generation number.
    pub fn generation(&self) -> u64 {
        self.table.header.generation.get()
    }

    /// The last change-log sequence number folded into this snapshot (0 for
    /// a snapshot built from a population file, not compacted from a log).
    pub fn folded_sequence(&self) -> u64 {
        self.table.header.folded_sequence.get()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.table.record_count as usize
    }

    /// Whether the snapshot has no records.
    pub fn is_empty(&self) -> bool {
        self.table.record_count == 0
    }

    pub(crate) fn slice(&self, kind: SectionKind) -> &[u8] {
        &self.data.as_ref()[self.table.section(kind)]
    }

    /// The record section.
    #[inline]
    fn records(&self) -> &[u8] {
        &self.data.as_ref()[self.table.sections[0].clone()]
    }

    /// The record in slot `slot` (`page × 37 + index`), if the slot is in
    /// use.
    #[inline]
    fn view(&self, slot: u32) -> Option<CitizenView<'_>> {
        let records = self.records();
        let header = page_header(records, slot as usize / SLOTS_PER_PAGE)?;
        if slot as usize % SLOTS_PER_PAGE >= usize::from(header.count) {
            return None;
        }
        self.view_unchecked_count(records, slot)
    }

    /// The view of slot `slot` once it is known to hold a record.
    #[inline]
    fn view_unchecked_count<'s>(&'s self, records: &'s [u8], slot: u32) -> Option<CitizenView<'s>> {
        Some(CitizenView::new(
            record_in(records, slot)?,
            slot,
            self.data.as_ref(),
            &self.table,
            self.heap(),
        ))
    }

    /// The record at `index` (0..len) in file order. Finds the page by binary
    /// search of the page ranks: for sampling and exports, not for lookups.
    pub fn record(&self, index: u32) -> Option<CitizenView<'_>> {
        let ranks = <[U32]>::ref_from_bytes(self.slice(SectionKind::PageRanks)).ok()?;
        let page = ranks.partition_point(|r| r.get() <= index).checked_sub(1)?;
        let slot = page
            .checked_mul(SLOTS_PER_PAGE)?
            .checked_add(index.checked_sub(ranks[page].get())? as usize)?; // corrupt ranks: None
        self.view(u32::try_from(slot).ok()?)
    }

    /// Every record in file order.
    pub fn iter(&self) -> impl Iterator<Item = CitizenView<'_>> + '_ {
        let pages = self.table.page_count as usize;
        (0..pages).flat_map(move |page| {
            let count = page_header(self.records(), page).map_or(0, |h| h.count);
            let first = (page * SLOTS_PER_PAGE) as u32;
            (first..first + u32::from(count).min(SLOTS_PER_PAGE as u32))
                .filter_map(|slot| self.view_unchecked_count(self.records(), slot))
        })
    }

    /// The position in file order (0..len) of the record in `slot`.
    pub(crate) fn rank_of(&self, slot: u32) -> Option<u32> {
        rank_of(self.slice(SectionKind::PageRanks), slot)
    }

    /// The record with this personal ID.
    pub fn get(&self, id: PersonalId) -> Option<CitizenView<'_>> {
        let records = self.records();
        let hash = id_hash(id.get());
        let page = fast_range(hash, self.table.home_pages) as usize;
        let slot = find_from(records, page, id_tag(hash), id.get())?;
        self.view_unchecked_count(records, slot)
    }

    /// Looks up many IDs, overlapping their cache misses. `out` receives one
    /// result per ID, in order.
    ///
    /// Each lookup touches one page: its header line, then the record in the
    /// slot the header's tags name. The IDs go through in groups of
    /// [`BATCH_GROUP`], three groups in flight: the newest group's headers
    /// are prefetched, the middle group's headers are read and its records
    /// prefetched, the oldest group's IDs are compared. Each stage runs as a
    /// tight loop over its group, so that the CPU has a whole group's
    /// prefetches in flight at once: a prefetch that misses the TLB holds up
    /// retirement until its page walk ends, and only prefetches issued close
    /// together overlap their walks.
    pub fn get_many<'s>(&'s self, ids: &[PersonalId], out: &mut Vec<Option<CitizenView<'s>>>) {
        out.clear();
        out.reserve(ids.len());
        let records = self.records();
        let home_pages = self.table.home_pages;
        // Everything a view needs besides its record, fetched once.
        let (file, table, heap) = (self.data.as_ref(), &self.table, self.heap());
        // Per ID in flight: its page and tag (stage 1), then its candidate
        // slots (stage 2). The group in stage 3 and the one entering stage 1
        // share ring slots; stage 3 runs first and frees them.
        const RING: usize = (STAGE3_LAG) * BATCH_GROUP;
        let mut pages = [0usize; RING];
        let mut tags = [0u8; RING];
        let mut masks = [0u64; RING];
        let group_count = ids.len().div_ceil(BATCH_GROUP);
        let group = |g: usize| {
            (g < group_count).then(|| g * BATCH_GROUP..((g + 1) * BATCH_GROUP).min(ids.len()))
        };
        for g in 0..group_count + STAGE3_LAG {
            // Stage 3: compare the IDs of group g - 2.
            if let Some(group) = g.checked_sub(STAGE3_LAG).and_then(group) {
                for i in group.clone() {
                    let r = i % RING;
                    let id = ids[i].get();
                    let slot = match find_in_page(records, pages[r], masks[r], id) {
                        Found::Slot(slot) => Some(slot),
                        Found::NotHere { overflow: false } => None,
                        Found::NotHere { overflow: true } => {
                            find_from(records, pages[r] + 1, tags[r], id)
                        }
                    };
                    out.push(slot.and_then(|slot| {
                        let record = record_in(records, slot)?;
                        Some(CitizenView::new(record, slot, file, table, heap))
                    }));
                }
            }
            // Stage 2: read the headers of group g - 1, prefetch candidates.
            if let Some(group) = g.checked_sub(STAGE2_LAG).and_then(group) {
                for i in group.clone() {
                    let r = i % RING;
                    masks[r] =
                        page_header(records, pages[r]).map_or(0, |h| h.slots_tagged(tags[r]));
                }
                for i in group.clone() {
                    let r = i % RING;
                    // The first candidate; a second one is a tag collision
                    // (one lookup in eight) and costs a miss when it happens.
                    if masks[r] != 0 {
                        let slot = (pages[r] * SLOTS_PER_PAGE) as u32 + masks[r].trailing_zeros();
                        prefetch_record(records, slot);
                    }
                }
            }
            // Stage 1: hash group g, then prefetch its headers.
            if let Some(group) = group(g) {
                for i in group.clone() {
                    let r = i % RING;
                    let hash = id_hash(ids[i].get());
                    pages[r] = fast_range(hash, home_pages) as usize;
                    tags[r] = id_tag(hash);
                }
                for i in group.clone() {
                    if let Some(b) = records.get(pages[i % RING] * PAGE_SIZE) {
                        prefetch(b);
                    }
                }
            }
        }
    }

    /// The record of the holder of a legacy ID.
    pub fn get_legacy(&self, id: LegacyId) -> Option<CitizenView<'_>> {
        let slots = <[LegacySlot]>::ref_from_bytes(self.slice(SectionKind::LegacyIndex)).ok()?;
        let fp = legacy_fingerprint(id.get(), HASH_SEED);
        let home = home_slot(fp, self.table.legacy_home_slots) as usize;
        for slot in slots.get(home..)? {
            let record = slot.record.get();
            let slot_fp = slot.fingerprint.get();
            if record == EMPTY || slot_fp > fp {
                return None;
            }
            if slot_fp == fp {
                let view = self.view(record)?;
                if view.raw().legacy_id.get() == id.get() {
                    return Some(view);
                }
            }
        }
        None
    }

    /// The person enrolled with this protected template identifier.
    pub fn identify(&self, modality: Modality, digest: &TemplateDigest) -> Option<CitizenView<'_>> {
        let slots =
            <[BiometricSlot]>::ref_from_bytes(self.slice(SectionKind::BiometricIndex)).ok()?;
        let bit = modality_bit(modality);
        let fp = biometric_fingerprint(bit, &digest.0, HASH_SEED);
        let home = home_slot(fp, self.table.biometric_home_slots) as usize;
        for slot in slots.get(home..)? {
            let tag = slot.tag.get();
            if tag == EMPTY {
                return None;
            }
            if slot.digest == digest.0 && tag >> 31 == bit {
                return self.view(tag & !(1 << 31));
            }
            if biometric_fingerprint(tag >> 31, &slot.digest, HASH_SEED) > fp {
                return None;
            }
        }
        None
    }

    /// Every enrolled template: (modality, digest, record index as in
    /// [`Snapshot::record`]). For exports
    /// and load-test key files; the API never returns digests.
    pub fn biometric_entries(&self) -> impl Iterator<Item = (Modality, TemplateDigest, u32)> + '_ {
        let slots = <[BiometricSlot]>::ref_from_bytes(self.slice(SectionKind::BiometricIndex))
            .unwrap_or_default();
        slots.iter().filter(|s| s.tag.get() != EMPTY).map(|s| {
            let tag = s.tag.get();
            let modality = if tag >> 31 == 0 {
                Modality::Face
            } else {
                Modality::Fingerprint
            };
            let rank = self.rank_of(tag & !(1 << 31)).unwrap_or(u32::MAX);
            (modality, TemplateDigest(s.digest), rank)
        })
    }
}

impl<D: StableBytes> Snapshot<D> {
    /// Like [`Snapshot::open`], for the engine's own byte holders: once
    /// [`Snapshot::verify_checksums`] has shown the text heap to be UTF-8,
    /// strings are read without checking each one again.
    pub fn open_stable(data: D) -> Result<Snapshot<D>> {
        Snapshot::open_with(data, true)
    }
}

impl Snapshot<SnapshotBytes> {
    /// Opens a snapshot file, mapped or copied into huge pages (see
    /// [`crate::Memory`]).
    pub fn open_file(path: impl AsRef<std::path::Path>, memory: crate::Memory) -> Result<Snapshot> {
        Snapshot::open_stable(SnapshotBytes::load(path.as_ref(), memory)?)
    }
}

/// The header of page `page` of a record section.
#[inline]
fn page_header(records: &[u8], page: usize) -> Option<&PageHeader> {
    let start = page.checked_mul(PAGE_SIZE)?;
    PageHeader::ref_from_bytes(records.get(start..start + PAGE_HEADER_SIZE)?).ok()
}

/// The record in slot `slot` of a record section (in use or not).
#[inline]
fn record_in(records: &[u8], slot: u32) -> Option<&RawRecord> {
    let start = slot_offset(slot);
    RawRecord::ref_from_bytes(records.get(start..start + RECORD_SIZE)?).ok()
}

/// Prefetches every line of the record in `slot` (108 bytes span two or
/// three lines).
#[inline]
pub(crate) fn prefetch_record(records: &[u8], slot: u32) {
    let start = slot_offset(slot);
    for at in [start, start + 64, start + RECORD_SIZE - 1] {
        if let Some(b) = records.get(at) {
            prefetch(b);
        }
    }
}

/// What one page says about an ID.
enum Found {
    Slot(u32),
    NotHere { overflow: bool },
}

/// Compares `id` with the records of `page` in the candidate slots `mask`.
#[inline]
fn find_in_page(records: &[u8], page: usize, mut mask: u64, id: u64) -> Found {
    let first = (page * SLOTS_PER_PAGE) as u32;
    while mask != 0 {
        let slot = first + mask.trailing_zeros();
        if record_in(records, slot).is_some_and(|r| r.id.get() == id) {
            return Found::Slot(slot);
        }
        mask &= mask - 1;
    }
    let overflow = page_header(records, page).is_some_and(|h| h.flags & PAGE_OVERFLOW != 0);
    Found::NotHere { overflow }
}

/// Finds `id` (whose hash has tag `tag`) from `page` on: in that page, then
/// in the following ones for as long as each says its records overflow.
/// Stops at the end of the section, so a corrupted file cannot loop forever.
fn find_from(records: &[u8], mut page: usize, tag: u8, id: u64) -> Option<u32> {
    loop {
        let mask = page_header(records, page)?.slots_tagged(tag);
        match find_in_page(records, page, mask, id) {
            Found::Slot(slot) => return Some(slot),
            Found::NotHere { overflow: false } => return None,
            Found::NotHere { overflow: true } => page += 1,
        }
    }
}

/// The position in file order of the record in `slot`, from the page ranks.
pub(crate) fn rank_of(page_ranks: &[u8], slot: u32) -> Option<u32> {
    let page = slot as usize / SLOTS_PER_PAGE;
    let at = page.checked_mul(4)?;
    let rank = u32::from_le_bytes(page_ranks.get(at..at + 4)?.try_into().ok()?);
    rank.checked_add(slot % SLOTS_PER_PAGE as u32)
}

fn modality_bit(m: Modality) -> u32 {
    match m {
        Modality::Face => 0,
        Modality::Fingerprint => 1,
    }
}

/// The text heap as the reader sees it: bytes until `verify` has shown the
/// whole heap to be UTF-8, then a `&str`, whose slicing checks only the two
/// ends are character boundaries instead of validating every string read.
#[derive(Clone, Copy)]
pub(crate) enum Heap<'a> {
    Unchecked(&'a [u8]),
    Utf8(&'a str),
}

impl<'a> Heap<'a> {
    /// The heap's bytes, checked or not.
    #[inline]
    pub(crate) fn bytes(self) -> &'a [u8] {
        match self {
            Heap::Unchecked(bytes) => bytes,
            Heap::Utf8(s) => s.as_bytes(),
        }
    }

    #[inline]
    pub(crate) fn text(self, offset: u32) -> Option<&'a str> {
        match self {
            Heap::Unchecked(bytes) => read_text(bytes, offset),
            Heap::Utf8(s) => s.get(text_range(s.as_bytes(), offset)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_heap_still_refuses_slices_inside_a_character() {
        let mut heap = Vec::new();
        crate::text::push_text_len(&mut heap, "Đặng".len());
        heap.extend_from_slice("Đặng".as_bytes());
        let s = std::str::from_utf8(&heap).unwrap();
        assert_eq!(Heap::Utf8(s).text(0), Some("Đặng"));
        // Offset 2 is inside "Đ": its second byte would be read as a prefix.
        assert_eq!(Heap::Utf8(s).text(2), None);
        assert_eq!(Heap::Unchecked(&heap).text(2), None);
    }
}
