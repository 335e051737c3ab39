//! The on-disk layout, mirrored type for type from `engine/FORMAT.md`.
//!
//! Every type here is plain little-endian data with alignment 1, so the
//! reader can view any byte slice as these types after a length check
//! (zerocopy does the check; no `unsafe` is needed to read a snapshot).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The first eight bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"DANCUSNP";
/// Written as a little-endian u32; any other value means a foreign writer.
pub const ENDIAN_MARK: u32 = 0x0102_0304;
/// The version this build writes.
pub const FORMAT_VERSION: u32 = 5;
/// The oldest version this build reads (versions 3 and 4 have no name
/// index: they read as snapshots whose candidate search is unavailable).
pub const OLDEST_READABLE_VERSION: u32 = 3;
/// The first version with a name + date-of-birth index (section 7).
pub const NAME_INDEX_VERSION: u32 = 5;
/// Sections start on a multiple of this (a page), so each can be advised alone.
pub const SECTION_ALIGN: u64 = 4096;
/// Seed of the xxh3 hashes that place keys in the indexes.
pub const HASH_SEED: u64 = 0x6461_6e63_7500_0001;
/// Size of a record page: an ID lookup lands on one page, so it costs one
/// TLB entry, the page's header line and the record's lines.
pub const PAGE_SIZE: usize = 4096;
/// Size of a page header: the tags, the count and the flags, one cache line.
pub const PAGE_HEADER_SIZE: usize = 64;
/// Record slots per page (`64 + 37 × 108 = 4060 ≤ 4096`).
pub const SLOTS_PER_PAGE: usize = 37;
/// Home pages per 333 records: pages are 90 % full on average (33.3 of 37
/// slots), which keeps 94 % of records in their home page at 123 bytes per
/// record (see FORMAT.md).
pub const HOME_PAGES_PER_333_RECORDS: u64 = 10;
/// Page flag: records whose home is this page (or an earlier one) continue in
/// the next page.
pub const PAGE_OVERFLOW: u8 = 1;
/// Legacy and biometric tables have this many home slots per 9 keys (load 0.9).
pub const SLOTS_PER_NINE_KEYS: u64 = 10;
/// Largest record count: slot numbers (page × 37 + index) are 31 bits in the
/// biometric index, and pages are at most 90 % full on average.
pub const MAX_RECORDS: u64 = 1_900_000_000;
/// A slot's record number when the slot is empty.
pub const EMPTY: u32 = u32::MAX;

/// The sections, in file order; the value is the `kind` in the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// Pages of fixed-size records; an ID's hash picks its home page.
    Records = 1,
    /// `page_count + 1` record numbers: how many records precede each page.
    PageRanks = 2,
    /// Legacy ID → record, ordered linear-probing table.
    LegacyIndex = 3,
    /// Biometric template → record, ordered linear-probing table.
    BiometricIndex = 4,
    /// Legal representatives, by record number (few records have one).
    Representatives = 5,
    /// Length-prefixed UTF-8 strings referenced by offset.
    TextHeap = 6,
    /// Folded full name + date of birth → records, ordered linear-probing
    /// table (version 5 on; see `name_index.rs`).
    NameIndex = 7,
}

impl SectionKind {
    /// All sections in file order.
    pub const ALL: [SectionKind; 7] = [
        SectionKind::Records,
        SectionKind::PageRanks,
        SectionKind::LegacyIndex,
        SectionKind::BiometricIndex,
        SectionKind::Representatives,
        SectionKind::TextHeap,
        SectionKind::NameIndex,
    ];

    /// The sections a file of format `version` has, in file order.
    pub fn of_version(version: u32) -> &'static [SectionKind] {
        if version >= NAME_INDEX_VERSION {
            &Self::ALL
        } else {
            &Self::ALL[..6]
        }
    }

    /// The section's name in reports and errors.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Records => "records",
            SectionKind::PageRanks => "page_ranks",
            SectionKind::LegacyIndex => "legacy_index",
            SectionKind::BiometricIndex => "biometric_index",
            SectionKind::Representatives => "representatives",
            SectionKind::TextHeap => "text_heap",
            SectionKind::NameIndex => "name_index",
        }
    }
}

/// One row of the section table.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SectionEntry {
    /// A [`SectionKind`] value.
    pub kind: U32,
    /// Zero.
    pub reserved: U32,
    /// Byte offset from the start of the file.
    pub offset: U64,
    /// Length in bytes (padding excluded).
    pub length: U64,
    /// xxh3-64 (seed 0) of the section's bytes.
    pub checksum: U64,
}

/// The fixed header at offset 0.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`ENDIAN_MARK`].
    pub endian_mark: U32,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: U32,
    /// `size_of::<Header>()`.
    pub header_size: U32,
    /// `size_of::<RawRecord>()`.
    pub record_size: U32,
    /// Number of records.
    pub record_count: U64,
    /// Generation: increases with every build of the register.
    pub generation: U64,
    /// Build time, seconds since the Unix epoch.
    pub build_time_unix: U64,
    /// Seed of the index hashes ([`HASH_SEED`]).
    pub hash_seed: U64,
    /// Number of home pages of the record section (it may have more pages:
    /// overflow at the end).
    pub home_pages: U64,
    /// Home slots of the legacy table (the table may be longer: overflow).
    pub legacy_home_slots: U64,
    /// Home slots of the biometric table.
    pub biometric_home_slots: U64,
    /// Number of sections in use (6 before version 5, 7 from it).
    pub section_count: U32,
    /// Zero.
    pub flags: U32,
    /// The section table; before version 5 the last row is zero.
    pub sections: [SectionEntry; 7],
    /// The last change-log sequence number folded into this snapshot (0: none).
    /// Version 3 had an eighth, always-zero section row here, so a version 3
    /// file reads as having folded nothing.
    pub folded_sequence: U64,
    /// Home slots of the name index (0 before version 5).
    pub name_home_slots: U64,
    /// Zero.
    pub reserved: [u8; 16],
    /// xxh3-64 of all header bytes before this field.
    pub header_checksum: U64,
}

/// Size of the header in bytes.
pub const HEADER_SIZE: usize = std::mem::size_of::<Header>();

/// Record flag: a face template is enrolled.
pub const FLAG_FACE: u8 = 1;
/// Record flag: a fingerprint template is enrolled.
pub const FLAG_FINGERPRINT: u8 = 2;
/// Record flag: a father is recorded.
pub const FLAG_FATHER: u8 = 4;
/// Record flag: a mother is recorded.
pub const FLAG_MOTHER: u8 = 8;
/// Record flag: a spouse is recorded.
pub const FLAG_SPOUSE: u8 = 16;
/// Record flag: a legal representative is recorded (in the representatives section).
pub const FLAG_REPRESENTATIVE: u8 = 32;
/// Record flag: household membership is recorded.
pub const FLAG_HOUSEHOLD: u8 = 64;

/// One citizen, fixed size. Text fields are offsets into the text heap (0 =
/// none); IDs are numbers (0 = none); dates are packed (`Date::to_packed`, 0
/// = none); codes are those of `citizen.rs` (0 = none; religion is stored +1).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
#[allow(missing_docs)] // each field is the `Citizen` field of the same name; FORMAT.md lists them
pub struct RawRecord {
    /// Personal ID; first, so a lookup compares it in the record's first line.
    pub id: U64,
    pub father_id: U64,
    pub mother_id: U64,
    pub spouse_id: U64,
    pub household_head_id: U64,
    pub full_name: U32,
    pub birth_registration_place: U32,
    pub hometown: U32,
    pub permanent_residence: U32,
    pub temporary_residence: U32,
    pub current_residence: U32,
    pub father_name: U32,
    pub mother_name: U32,
    pub spouse_name: U32,
    pub household_head_name: U32,
    pub legacy_id: U32,
    pub date_of_birth: U32,
    pub date_of_death: U32,
    pub nationality: [u8; 2],
    pub father_nationality: [u8; 2],
    pub mother_nationality: [u8; 2],
    pub spouse_nationality: [u8; 2],
    pub ethnicity: u8,
    pub religion: u8,
    pub marital_status: u8,
    pub blood_type: u8,
    pub relationship: u8,
    pub sex: u8,
    pub flags: u8,
    pub reserved: u8,
}

impl RawRecord {
    /// The record's text-heap offsets (0 where a text is absent).
    pub fn text_offsets(&self) -> [U32; 10] {
        [
            self.full_name,
            self.birth_registration_place,
            self.hometown,
            self.permanent_residence,
            self.temporary_residence,
            self.current_residence,
            self.father_name,
            self.mother_name,
            self.spouse_name,
            self.household_head_name,
        ]
    }
}

/// Size of a record in bytes.
pub const RECORD_SIZE: usize = std::mem::size_of::<RawRecord>();

// A page's header and slots fit in the page.
const _: () = assert!(PAGE_HEADER_SIZE + SLOTS_PER_PAGE * RECORD_SIZE <= PAGE_SIZE);

/// A slot of the legacy-ID table.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct LegacySlot {
    /// High 32 bits of the key's hash; slots are in ascending order of it.
    pub fingerprint: U32,
    /// Record number, or [`EMPTY`].
    pub record: U32,
}

/// A slot of the biometric table.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BiometricSlot {
    /// The 128-bit protected template identifier.
    pub digest: [u8; 16],
    /// Record number in the low 31 bits, modality (0 face, 1 fingerprint) in
    /// the top bit; [`EMPTY`] when the slot is empty.
    pub tag: U32,
}

/// A slot of the name + date-of-birth table (same shape as a legacy slot).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct NameSlot {
    /// High 32 bits of the key's hash ([`name_dob_hash`]); slots are in
    /// ascending order of it.
    pub fingerprint: U32,
    /// Slot number of the record, or [`EMPTY`].
    pub record: U32,
}

/// The hash of a folded full name and a packed date of birth that places
/// the pair in the name index: xxh3-64 of the folded name's bytes, seeded
/// with [`HASH_SEED`] xor the packed date.
#[inline]
pub fn name_dob_hash(folded_name: &[u8], date_of_birth_packed: u32) -> u64 {
    key_hash(folded_name, HASH_SEED ^ u64::from(date_of_birth_packed))
}

/// A legal representative of the record `record`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RepresentativeEntry {
    /// Record number; entries are in ascending order of it.
    pub record: U32,
    /// Representative's personal ID or 0.
    pub id: U64,
    /// Name (text heap offset).
    pub name: U32,
    /// Nationality or zeros.
    pub nationality: [u8; 2],
}

/// The header of a record page (the page's first cache line).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct PageHeader {
    /// Tag of the record in each slot ([`id_tag`] of its ID hash); slots at
    /// and after `count` are zero.
    pub tags: [u8; SLOTS_PER_PAGE],
    /// Records in the page; they fill slots `0..count`.
    pub count: u8,
    /// [`PAGE_OVERFLOW`] or 0.
    pub flags: u8,
    /// Zero.
    pub reserved: [u8; PAGE_HEADER_SIZE - SLOTS_PER_PAGE - 2],
}

impl PageHeader {
    /// The slots `0..count` whose tag is `tag`, as bits of a mask (bit `i` =
    /// slot `i`).
    #[inline]
    pub fn slots_tagged(&self, tag: u8) -> u64 {
        let count = usize::from(self.count).min(SLOTS_PER_PAGE);
        tag_matches(self.as_bytes(), tag) & ((1u64 << count) - 1)
    }
}

/// Bit `i` set where `bytes[i] == tag`, for `i` in `0..48`: three SSE2
/// byte compares.
#[cfg(target_arch = "x86_64")]
#[inline]
fn tag_matches(header: &[u8], tag: u8) -> u64 {
    use std::arch::x86_64::*;
    let bytes: &[u8; 48] = header[..48].try_into().expect("a header is 64 bytes");
    // SAFETY: SSE2 is part of the x86_64 baseline, so the intrinsics exist on
    // every CPU this code runs on; `_mm_loadu_si128` reads 16 bytes from
    // `bytes[16 k..]`, k ≤ 2, which lie inside the 48-byte array, and needs
    // no alignment.
    unsafe {
        let pattern = _mm_set1_epi8(tag as i8);
        let mut mask = 0u64;
        for k in 0..3 {
            let chunk = _mm_loadu_si128(bytes.as_ptr().add(16 * k).cast());
            let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(chunk, pattern)) as u16;
            mask |= u64::from(hits) << (16 * k);
        }
        mask
    }
}

#[cfg(not(target_arch = "x86_64"))]
use tag_matches_swar as tag_matches;

/// Bit `i` set where `bytes[i] == tag`, for `i` in `0..48` (portable:
/// the exact SWAR zero-byte test, eight bytes at a time).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline]
fn tag_matches_swar(header: &[u8], tag: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = u64::from(tag) * 0x0101_0101_0101_0101;
    let mut mask = 0u64;
    for (i, chunk) in header[..48].chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes")) ^ pattern;
        // High bit of each byte set exactly where `x`'s byte is zero.
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        // Gather the eight high bits into eight consecutive mask bits.
        let bits = (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= bits << (8 * i);
    }
    mask
}

/// Home pages of a record section holding `records` records (33.3 per page).
pub fn home_pages_for(records: u64) -> u64 {
    (records * HOME_PAGES_PER_333_RECORDS).div_ceil(333).max(1)
}

/// The byte offset of slot `slot` within the record section.
#[inline]
pub fn slot_offset(slot: u32) -> usize {
    let slot = slot as usize;
    (slot / SLOTS_PER_PAGE) * PAGE_SIZE + PAGE_HEADER_SIZE + (slot % SLOTS_PER_PAGE) * RECORD_SIZE
}

/// The tag of an ID hash in its page header: its low byte (the page comes
/// from the high bits, so the two are independent).
#[inline]
pub fn id_tag(hash: u64) -> u8 {
    hash as u8
}

/// The hash that places a key in an index.
#[inline]
pub fn key_hash(bytes: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, seed)
}

/// Maps a 64-bit hash onto `0..n` (Lemire's multiply-shift).
#[inline]
pub fn fast_range(hash: u64, n: u64) -> u64 {
    ((u128::from(hash) * u128::from(n)) >> 64) as u64
}

/// The home slot of a 32-bit fingerprint in a table of `home_slots`.
#[inline]
pub fn home_slot(fingerprint: u32, home_slots: u64) -> u64 {
    (u64::from(fingerprint) * home_slots) >> 32
}

/// Fingerprint of a legacy ID.
#[inline]
pub fn legacy_fingerprint(legacy: u32, seed: u64) -> u32 {
    (key_hash(&legacy.to_le_bytes(), seed) >> 32) as u32
}

/// Fingerprint of a biometric key (the modality is part of the key).
#[inline]
pub fn biometric_fingerprint(modality_bit: u32, digest: &[u8; 16], seed: u64) -> u32 {
    (key_hash(digest, seed ^ u64::from(modality_bit)) >> 32) as u32
}

/// The hash of a personal ID that picks its home page and tag (a
/// SplitMix-style finalizer of the ID xor [`HASH_SEED`]).
#[inline]
pub(crate) fn id_hash(id: u64) -> u64 {
    let mut h = id ^ HASH_SEED;
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The header's own checksum: xxh3-64 of every header byte before it.
pub(crate) fn header_checksum(h: &Header) -> u64 {
    let bytes = h.as_bytes();
    xxhash_rust::xxh3::xxh3_64(&bytes[..bytes.len() - 8])
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

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn sizes_are_what_format_md_says() {
        assert_eq!(RECORD_SIZE, 108);
        assert_eq!(HEADER_SIZE, 352);
        assert_eq!(std::mem::size_of::<LegacySlot>(), 8);
        assert_eq!(std::mem::size_of::<NameSlot>(), 8);
        assert_eq!(std::mem::size_of::<BiometricSlot>(), 20);
        assert_eq!(std::mem::size_of::<RepresentativeEntry>(), 18);
        assert_eq!(std::mem::size_of::<PageHeader>(), PAGE_HEADER_SIZE);
    }

    #[test]
    fn slots_tagged_finds_exactly_the_matching_slots_below_count() {
        let mut h = PageHeader::new_zeroed();
        h.tags[..10].copy_from_slice(&[7, 0, 7, 0x80, 0xff, 7, 1, 6, 8, 7]);
        h.count = 9;
        h.flags = 7; // must not count: beyond the tags
        assert_eq!(h.slots_tagged(7), 0b10_0101); // slots 0, 2, 5; slot 9 is beyond count
        assert_eq!(h.slots_tagged(0), 0b10); // slot 1 only; slots ≥ count are zero but masked
        assert_eq!(h.slots_tagged(0x80), 0b1000);
        assert_eq!(h.slots_tagged(0xff), 0b1_0000);
        h.tags = [0xAB; SLOTS_PER_PAGE];
        h.count = SLOTS_PER_PAGE as u8;
        assert_eq!(h.slots_tagged(0xAB), (1 << SLOTS_PER_PAGE) - 1);
        h.count = 200; // corrupt: clamped
        assert_eq!(h.slots_tagged(0xAB), (1 << SLOTS_PER_PAGE) - 1);
    }

    #[test]
    fn simd_and_portable_tag_matching_agree() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut header = [0u8; 64];
            for b in header.iter_mut() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                *b = (state >> 61) as u8; // few distinct values: many matches
            }
            for tag in 0..8 {
                assert_eq!(tag_matches(&header, tag), tag_matches_swar(&header, tag));
            }
        }
    }

    #[test]
    fn slot_offsets_stay_inside_their_page() {
        assert_eq!(slot_offset(0), PAGE_HEADER_SIZE);
        assert_eq!(slot_offset(36), PAGE_HEADER_SIZE + 36 * RECORD_SIZE);
        assert_eq!(slot_offset(37), PAGE_SIZE + PAGE_HEADER_SIZE);
        assert_eq!(home_pages_for(0), 1);
        assert_eq!(home_pages_for(333), 10);
        assert_eq!(home_pages_for(100_000_000), 3_003_004);
    }

    #[test]
    fn home_slot_is_monotonic_and_in_range() {
        let n = 1000;
        assert_eq!(home_slot(0, n), 0);
        assert_eq!(home_slot(u32::MAX, n), n - 1);
        assert!(home_slot(1 << 31, n) == n / 2);
    }
}
