//! Reading a snapshot: validation, lookups, batched lookups.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use zerocopy::FromBytes;

use crate::builder::{header_checksum, id_hash};
use crate::citizen::{Modality, TemplateDigest};
use crate::error::{Error, Result};
use crate::format::*;
use crate::id::{LegacyId, PersonalId};
use crate::memory::SnapshotBytes;
use crate::view::CitizenView;

/// How many lookups of a batch are in flight at once: enough independent
/// cache misses to keep the memory system busy, few enough that the
/// prefetched lines are still in L1 when they are used.
const BATCH_WINDOW: usize = 16;

/// An open snapshot over any bytes: a memory map, a `Vec<u8>`, a `&[u8]`.
///
/// [`Snapshot::open`] checks the header and that every section lies inside
/// the bytes; it reads nothing else, so it takes microseconds at any size.
/// [`Snapshot::verify`] checks every byte against the section checksums.
/// Lookups on an unverified, corrupted file can return wrong answers but never
/// panic or read out of bounds.
pub struct Snapshot<D = SnapshotBytes> {
    data: D,
    layout: Layout,
    /// Set by `verify` once the whole text heap is known to be UTF-8.
    heap_is_utf8: AtomicBool,
}

/// Where the sections are, validated by `open`.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    header: Header,
    record_count: u64,
    bucket_count: u64,
    legacy_home_slots: u64,
    biometric_home_slots: u64,
    sections: [Range<usize>; 6],
}

impl Layout {
    pub(crate) fn section(&self, kind: SectionKind) -> Range<usize> {
        self.sections[kind as usize - 1].clone()
    }
}

/// Facts about a snapshot, for `/v1/snapshot` and `dancu-data inspect`.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotInfo {
    /// Format version of the file.
    pub format_version: u32,
    /// Generation number.
    pub generation: u64,
    /// Number of citizen records.
    pub record_count: u64,
    /// Build time, seconds since the Unix epoch.
    pub build_time_unix: i64,
    /// The header checksum, which covers every section checksum: equal
    /// checksums mean equal files.
    pub checksum: String,
    /// Size of the snapshot in bytes.
    pub file_bytes: u64,
    /// ID buckets.
    pub bucket_count: u64,
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
    pub fn open(data: D) -> Result<Snapshot<D>> {
        let layout = validate(data.as_ref())?;
        Ok(Snapshot {
            data,
            layout,
            heap_is_utf8: AtomicBool::new(false),
        })
    }

    /// Checks every section against its checksum, and that the text heap is
    /// UTF-8 (after which text is read without validating each string).
    pub fn verify(&self) -> Result<()> {
        let bytes = self.data.as_ref();
        for (entry, kind) in self.layout.header.sections.iter().zip(SectionKind::ALL) {
            let found = xxhash_rust::xxh3::xxh3_64(&bytes[self.layout.section(kind)]);
            if found != entry.checksum.get() {
                return Err(Error::ChecksumMismatch {
                    section: kind.name(),
                    expected: entry.checksum.get(),
                    found,
                });
            }
        }
        let heap = &bytes[self.layout.section(SectionKind::TextHeap)];
        if let Err(e) = std::str::from_utf8(heap) {
            return Err(Error::Malformed(format!(
                "text heap is not UTF-8 at byte {}",
                e.valid_up_to()
            )));
        }
        self.heap_is_utf8.store(true, Ordering::Release);
        Ok(())
    }

    /// The text heap, as a `&str` once `verify` has checked it.
    #[inline]
    pub(crate) fn heap(&self) -> Heap<'_> {
        let bytes = &self.data.as_ref()[self.layout.section(SectionKind::TextHeap)];
        if self.heap_is_utf8.load(Ordering::Acquire) {
            // SAFETY: `heap_is_utf8` is set only by `verify`, after
            // `str::from_utf8` accepted exactly these bytes; the bytes cannot
            // have changed since: `Snapshot` owns or borrows them immutably
            // (`D: AsRef<[u8]>` gives no mutable access) and a mapped file is
            // never modified in place (see `memory.rs`).
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
        let h = &self.layout.header;
        SnapshotInfo {
            format_version: h.format_version.get(),
            generation: h.generation.get(),
            record_count: self.layout.record_count,
            build_time_unix: h.build_time_unix.get() as i64,
            checksum: format!("{:016x}", h.header_checksum.get()),
            file_bytes: self.data.as_ref().len() as u64,
            bucket_count: self.layout.bucket_count,
            sections: h
                .sections
                .iter()
                .zip(SectionKind::ALL)
                .map(|(e, kind)| SectionInfo {
                    name: kind.name(),
                    offset: e.offset.get(),
                    length: e.length.get(),
                    checksum: format!("{:016x}", e.checksum.get()),
                })
                .collect(),
        }
    }

    /// The generation number.
    pub fn generation(&self) -> u64 {
        self.layout.header.generation.get()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.layout.record_count as usize
    }

    /// Whether the snapshot has no records.
    pub fn is_empty(&self) -> bool {
        self.layout.record_count == 0
    }

    fn slice(&self, kind: SectionKind) -> &[u8] {
        &self.data.as_ref()[self.layout.section(kind)]
    }

    /// Record `index`, by address arithmetic (no division, one bounds check).
    #[inline]
    fn raw_record(&self, index: usize) -> Option<&RawRecord> {
        if index >= self.len() {
            return None;
        }
        let start = self.layout.sections[0].start + index * RECORD_SIZE;
        let bytes = self.data.as_ref().get(start..start + RECORD_SIZE)?;
        RawRecord::ref_from_bytes(bytes).ok()
    }

    /// The byte address of bucket `b`'s entry, for prefetching.
    #[inline]
    fn bucket_entry(&self, b: usize) -> Option<&[u8]> {
        let start = self.layout.sections[1].start + b * 4;
        self.data.as_ref().get(start..start + 8)
    }

    #[inline]
    fn view(&self, index: u32) -> Option<CitizenView<'_>> {
        let record = self.raw_record(index as usize)?;
        Some(CitizenView::new(
            record,
            index,
            self.data.as_ref(),
            &self.layout,
            self.heap(),
        ))
    }

    /// The record at `index` (0..len), in file order.
    pub fn record(&self, index: u32) -> Option<CitizenView<'_>> {
        self.view(index)
    }

    /// Every record in file order.
    pub fn iter(&self) -> impl Iterator<Item = CitizenView<'_>> + '_ {
        (0..self.len() as u32).filter_map(|i| self.view(i))
    }

    /// The record with this personal ID.
    pub fn get(&self, id: PersonalId) -> Option<CitizenView<'_>> {
        let range = self.bucket_range(id_hash(id.get()));
        self.find_in(range, id.get())
    }

    #[inline]
    fn bucket_range(&self, hash: u64) -> Range<usize> {
        let b = fast_range(hash, self.layout.bucket_count) as usize;
        match self.bucket_entry(b) {
            Some(e) => {
                let start = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize;
                let end = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as usize;
                start..end.min(self.len())
            }
            None => 0..0,
        }
    }

    #[inline]
    fn find_in(&self, range: Range<usize>, id: u64) -> Option<CitizenView<'_>> {
        range
            .into_iter()
            .find(|&i| self.raw_record(i).is_some_and(|r| r.id.get() == id))
            .and_then(|i| self.view(i as u32))
    }

    /// Looks up many IDs, overlapping their cache misses: bucket entries are
    /// prefetched a window ahead, then the records they point at, then the
    /// records are compared. `out` receives one result per ID, in order.
    pub fn get_many<'s>(&'s self, ids: &[PersonalId], out: &mut Vec<Option<CitizenView<'s>>>) {
        out.clear();
        out.reserve(ids.len());
        let mut hashes = [0u64; BATCH_WINDOW];
        let mut ranges: [Range<usize>; BATCH_WINDOW] = Default::default();
        let n = ids.len();
        // Three stages a window apart share one ring slot per ID; each step
        // runs the oldest stage first so that no slot is overwritten before
        // it is read.
        for step in 0..n + 2 * BATCH_WINDOW {
            if let Some(i) = step.checked_sub(2 * BATCH_WINDOW).filter(|&i| i < n) {
                let range = std::mem::take(&mut ranges[i % BATCH_WINDOW]);
                out.push(self.find_in(range, ids[i].get()));
            }
            if let Some(i) = step.checked_sub(BATCH_WINDOW).filter(|&i| i < n) {
                let range = self.bucket_range(hashes[i % BATCH_WINDOW]);
                self.prefetch_records(range.clone());
                ranges[i % BATCH_WINDOW] = range;
            }
            if step < n {
                let h = id_hash(ids[step].get());
                hashes[step % BATCH_WINDOW] = h;
                let b = fast_range(h, self.layout.bucket_count) as usize;
                if let Some(entry) = self.bucket_entry(b) {
                    prefetch(&entry[0]);
                }
            }
        }
    }

    /// Prefetches every cache line of a bucket's records (a record is 108
    /// bytes, so it spans two or three lines; a bucket holds about two), up to
    /// a few lines: the scan compares IDs across the bucket and the caller
    /// reads fields further into the record.
    #[inline]
    fn prefetch_records(&self, range: Range<usize>) {
        const MAX_LINES: usize = 6;
        let bytes = self.data.as_ref();
        let base = self.layout.sections[0].start;
        let start = base + range.start * RECORD_SIZE;
        let end = (base + range.end * RECORD_SIZE).min(start + MAX_LINES * 64);
        let mut at = start;
        while at < end {
            if let Some(b) = bytes.get(at) {
                prefetch(b);
            }
            at += 64;
        }
        // The last line of the last record, if the loop stopped short of it.
        if let Some(b) = bytes.get(end.saturating_sub(1)).filter(|_| end > start) {
            prefetch(b);
        }
    }

    /// The record of the holder of a legacy ID.
    pub fn get_legacy(&self, id: LegacyId) -> Option<CitizenView<'_>> {
        let slots = <[LegacySlot]>::ref_from_bytes(self.slice(SectionKind::LegacyIndex)).ok()?;
        let fp = legacy_fingerprint(id.get(), HASH_SEED);
        let home = home_slot(fp, self.layout.legacy_home_slots) as usize;
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
        let home = home_slot(fp, self.layout.biometric_home_slots) as usize;
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

    /// Every enrolled template: (modality, digest, record index). For exports
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
            (modality, TemplateDigest(s.digest), tag & !(1 << 31))
        })
    }
}

impl Snapshot<SnapshotBytes> {
    /// Opens a snapshot file, mapped or copied into huge pages (see
    /// [`crate::Memory`]).
    pub fn open_file(path: impl AsRef<std::path::Path>, memory: crate::Memory) -> Result<Snapshot> {
        Snapshot::open(SnapshotBytes::load(path.as_ref(), memory)?)
    }
}

fn modality_bit(m: Modality) -> u32 {
    match m {
        Modality::Face => 0,
        Modality::Fingerprint => 1,
    }
}

/// Asks the CPU to start loading the cache line of `item`.
#[inline(always)]
pub(crate) fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching has no effect on program state; the pointer comes
    // from a live reference, and the instruction does not fault anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(item as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// Appends a string length as the heap's prefix: 6-bit groups, least
/// significant first, `0x40 | group` while more follow and `group` for the
/// last. Every prefix byte is ASCII, so a heap of valid strings is valid UTF-8
/// as a whole (see [`Snapshot::verify`]).
pub(crate) fn push_text_len(heap: &mut Vec<u8>, mut len: usize) {
    while len >= 0x40 {
        heap.push(0x40 | (len & 0x3F) as u8);
        len >>= 6;
    }
    heap.push(len as u8);
}

/// The byte range of the heap string at `offset`; `None` if the prefix is
/// malformed or runs past the heap (possible only in an unverified file).
#[inline]
pub(crate) fn text_range(heap: &[u8], offset: u32) -> Option<Range<usize>> {
    let mut at = offset as usize;
    let mut len = 0usize;
    for shift in (0..36).step_by(6) {
        let b = *heap.get(at)?;
        at += 1;
        if b >= 0x80 {
            return None;
        }
        len |= usize::from(b & 0x3F) << shift;
        if b < 0x40 {
            let end = at.checked_add(len)?;
            return (end <= heap.len()).then_some(at..end);
        }
    }
    None
}

/// The bytes of a heap string, without checking that they are UTF-8.
pub(crate) fn read_text_bytes(heap: &[u8], offset: u32) -> Option<&[u8]> {
    heap.get(text_range(heap, offset)?)
}

/// Reads a heap string, checking it is UTF-8.
pub(crate) fn read_text(heap: &[u8], offset: u32) -> Option<&str> {
    std::str::from_utf8(read_text_bytes(heap, offset)?).ok()
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
    #[inline]
    pub(crate) fn text(self, offset: u32) -> Option<&'a str> {
        match self {
            Heap::Unchecked(bytes) => read_text(bytes, offset),
            Heap::Utf8(s) => s.get(text_range(s.as_bytes(), offset)?),
        }
    }
}

fn validate(bytes: &[u8]) -> Result<Layout> {
    let file_len = bytes.len() as u64;
    let malformed = |m: String| Error::Malformed(m);
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        let mut found = [0u8; 8];
        let n = bytes.len().min(8);
        found[..n].copy_from_slice(&bytes[..n]);
        return Err(Error::BadMagic {
            found,
            expected: MAGIC,
        });
    }
    let (header, _) = Header::read_from_prefix(bytes).map_err(|_| Error::Truncated {
        what: "the header",
        needed: HEADER_SIZE as u64,
        found: file_len,
    })?;
    if header.endian_mark.get() != ENDIAN_MARK {
        return Err(Error::Endianness {
            found: header.endian_mark.get(),
            expected: ENDIAN_MARK,
        });
    }
    let version = header.format_version.get();
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            found: version,
            oldest: OLDEST_READABLE_VERSION,
            supported: FORMAT_VERSION,
        });
    }
    let found = header_checksum(&header);
    if found != header.header_checksum.get() {
        return Err(Error::HeaderChecksum {
            expected: header.header_checksum.get(),
            found,
        });
    }
    if header.header_size.get() as usize != HEADER_SIZE
        || header.record_size.get() as usize != RECORD_SIZE
    {
        return Err(malformed(format!(
            "header/record size {}/{} (expected {HEADER_SIZE}/{RECORD_SIZE})",
            header.header_size.get(),
            header.record_size.get()
        )));
    }
    if header.hash_seed.get() != HASH_SEED {
        return Err(malformed(format!(
            "unknown hash seed {:#x}",
            header.hash_seed.get()
        )));
    }
    let n = header.record_count.get();
    if n > MAX_RECORDS {
        return Err(malformed(format!(
            "record count {n} over the limit {MAX_RECORDS}"
        )));
    }
    let bucket_count = header.bucket_count.get();
    if bucket_count != n.div_ceil(RECORDS_PER_BUCKET).max(1) {
        return Err(malformed(format!(
            "{bucket_count} ID buckets for {n} records"
        )));
    }
    if header.section_count.get() as usize != SectionKind::ALL.len() {
        return Err(malformed(format!(
            "{} sections, expected 6",
            header.section_count.get()
        )));
    }
    let mut sections: [Range<usize>; 6] = Default::default();
    let mut previous_end = HEADER_SIZE as u64;
    for (entry, kind) in header.sections.iter().zip(SectionKind::ALL) {
        if entry.kind.get() != kind as u32 {
            return Err(malformed(format!(
                "section {} has kind {}",
                kind.name(),
                entry.kind.get()
            )));
        }
        let (offset, length) = (entry.offset.get(), entry.length.get());
        let end = offset
            .checked_add(length)
            .ok_or_else(|| malformed(format!("section {} overflows", kind.name())))?;
        if offset % SECTION_ALIGN != 0 || offset < previous_end {
            return Err(malformed(format!(
                "section {} at misplaced offset {offset}",
                kind.name()
            )));
        }
        if end > file_len {
            return Err(Error::Truncated {
                what: kind.name(),
                needed: end,
                found: file_len,
            });
        }
        let expected_len = |unit: u64, count: Option<u64>| -> Result<()> {
            let ok = match count {
                Some(c) => c.checked_mul(unit) == Some(length),
                None => length % unit == 0,
            };
            if ok {
                Ok(())
            } else {
                Err(malformed(format!(
                    "section {} has length {length}",
                    kind.name()
                )))
            }
        };
        match kind {
            SectionKind::Records => expected_len(RECORD_SIZE as u64, Some(n))?,
            SectionKind::IdBuckets => expected_len(4, Some(bucket_count + 1))?,
            SectionKind::LegacyIndex => expected_len(8, None)?,
            SectionKind::BiometricIndex => expected_len(20, None)?,
            SectionKind::Representatives => expected_len(18, None)?,
            SectionKind::TextHeap => {}
        }
        sections[kind as usize - 1] = offset as usize..end as usize;
        previous_end = end;
    }
    if previous_end != file_len {
        return Err(malformed(format!(
            "{} bytes after the last section",
            file_len - previous_end
        )));
    }
    let legacy_home_slots = header.legacy_home_slots.get();
    let biometric_home_slots = header.biometric_home_slots.get();
    let legacy_len = sections[SectionKind::LegacyIndex as usize - 1].len() as u64 / 8;
    let bio_len = sections[SectionKind::BiometricIndex as usize - 1].len() as u64 / 20;
    if legacy_home_slots == 0
        || legacy_home_slots > legacy_len
        || biometric_home_slots == 0
        || biometric_home_slots > bio_len
    {
        return Err(malformed("index home slots exceed their tables".into()));
    }
    Ok(Layout {
        header,
        record_count: n,
        bucket_count,
        legacy_home_slots,
        biometric_home_slots,
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_prefixes_round_trip_and_stay_ascii() {
        let mut heap = vec![0u8];
        let mut offsets = Vec::new();
        for len in (0..300).chain([4095, 4096, 70_000]) {
            offsets.push((heap.len() as u32, len));
            push_text_len(&mut heap, len);
            heap.extend(std::iter::repeat_n(b'x', len));
        }
        for (offset, len) in offsets {
            assert_eq!(text_range(&heap, offset).map(|r| r.len()), Some(len));
        }
        let mut prefix = Vec::new();
        push_text_len(&mut prefix, usize::MAX >> 28);
        assert!(prefix.iter().all(u8::is_ascii));
        assert_eq!(text_range(&[0x41], 0), None, "a prefix that never ends");
        assert_eq!(text_range(&[0x05, b'a'], 0), None, "a string past the end");
        assert_eq!(text_range(&[0x80], 0), None, "a non-ASCII prefix byte");
    }

    #[test]
    fn verified_heap_still_refuses_slices_inside_a_character() {
        let mut heap = Vec::new();
        push_text_len(&mut heap, "Đặng".len());
        heap.extend_from_slice("Đặng".as_bytes());
        let s = std::str::from_utf8(&heap).unwrap();
        assert_eq!(Heap::Utf8(s).text(0), Some("Đặng"));
        // Offset 2 is inside "Đ": its second byte would be read as a prefix.
        assert_eq!(Heap::Utf8(s).text(2), None);
        assert_eq!(Heap::Unchecked(&heap).text(2), None);
    }
}
