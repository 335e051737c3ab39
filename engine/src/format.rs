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
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 2;
/// Sections start on a multiple of this (a page), so each can be advised alone.
pub const SECTION_ALIGN: u64 = 4096;
/// Seed of the xxh3 hashes that place keys in the indexes.
pub const HASH_SEED: u64 = 0x6461_6e63_7500_0001;
/// Records per ID bucket, on average.
pub const RECORDS_PER_BUCKET: u64 = 2;
/// Legacy and biometric tables have this many home slots per 9 keys (load 0.9).
pub const SLOTS_PER_NINE_KEYS: u64 = 10;
/// Largest record count: record numbers are 31 bits in the biometric index.
pub const MAX_RECORDS: u64 = (1 << 31) - 2;
/// A slot's record number when the slot is empty.
pub const EMPTY: u32 = u32::MAX;

/// The sections, in file order; the value is the `kind` in the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// Fixed-size records, ordered by the hash of their personal ID.
    Records = 1,
    /// `bucket_count + 1` record numbers: where each ID bucket starts.
    IdBuckets = 2,
    /// Legacy ID → record, ordered linear-probing table.
    LegacyIndex = 3,
    /// Biometric template → record, ordered linear-probing table.
    BiometricIndex = 4,
    /// Legal representatives, by record number (few records have one).
    Representatives = 5,
    /// Length-prefixed UTF-8 strings referenced by offset.
    TextHeap = 6,
}

impl SectionKind {
    /// All sections in file order.
    pub const ALL: [SectionKind; 6] = [
        SectionKind::Records,
        SectionKind::IdBuckets,
        SectionKind::LegacyIndex,
        SectionKind::BiometricIndex,
        SectionKind::Representatives,
        SectionKind::TextHeap,
    ];

    /// The section's name in reports and errors.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Records => "records",
            SectionKind::IdBuckets => "id_buckets",
            SectionKind::LegacyIndex => "legacy_index",
            SectionKind::BiometricIndex => "biometric_index",
            SectionKind::Representatives => "representatives",
            SectionKind::TextHeap => "text_heap",
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
    /// Number of ID buckets.
    pub bucket_count: U64,
    /// Home slots of the legacy table (the table may be longer: overflow).
    pub legacy_home_slots: U64,
    /// Home slots of the biometric table.
    pub biometric_home_slots: U64,
    /// Number of sections in use (6 in versions 1 and 2).
    pub section_count: U32,
    /// Zero.
    pub flags: U32,
    /// The section table; unused rows are zero.
    pub sections: [SectionEntry; 8],
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

/// Size of a record in bytes.
pub const RECORD_SIZE: usize = std::mem::size_of::<RawRecord>();

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_what_format_md_says() {
        assert_eq!(RECORD_SIZE, 108);
        assert_eq!(HEADER_SIZE, 352);
        assert_eq!(std::mem::size_of::<LegacySlot>(), 8);
        assert_eq!(std::mem::size_of::<BiometricSlot>(), 20);
        assert_eq!(std::mem::size_of::<RepresentativeEntry>(), 18);
    }

    #[test]
    fn home_slot_is_monotonic_and_in_range() {
        let n = 1000;
        assert_eq!(home_slot(0, n), 0);
        assert_eq!(home_slot(u32::MAX, n), n - 1);
        assert!(home_slot(1 << 31, n) == n / 2);
    }
}
