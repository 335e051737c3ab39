//! The header and section table of a snapshot file, checked before any
//! read: the magic, the version, and that every section lies inside the
//! bytes and has the size its counts say. Nothing past the header is read,
//! so opening takes microseconds at any size.

use std::ops::Range;

use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result};
use crate::format::*;

/// The header and its section table (where each section lies), validated
/// by `open`.
#[derive(Clone, Debug)]
pub(crate) struct SectionTable {
    pub(crate) header: Header,
    pub(crate) record_count: u64,
    pub(crate) home_pages: u64,
    pub(crate) page_count: u64,
    pub(crate) legacy_home_slots: u64,
    pub(crate) biometric_home_slots: u64,
    /// 0 when the file has no name index (before version 5).
    pub(crate) name_home_slots: u64,
    /// Empty for a section the file's version does not have.
    pub(crate) sections: [Range<usize>; 7],
}

impl SectionTable {
    pub(crate) fn section(&self, kind: SectionKind) -> Range<usize> {
        self.sections[kind as usize - 1].clone()
    }

    /// The sections the file has.
    pub(crate) fn kinds(&self) -> &'static [SectionKind] {
        SectionKind::of_version(self.header.format_version.get())
    }
}

pub(crate) fn validate(bytes: &[u8]) -> Result<SectionTable> {
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
    let home_pages = header.home_pages.get();
    if home_pages != home_pages_for(n) {
        return Err(malformed(format!(
            "{home_pages} home pages for {n} records"
        )));
    }
    let has_name_index = version >= NAME_INDEX_VERSION;
    if header.reserved != [0; 16]
        || (version == 3 && header.folded_sequence.get() != 0)
        || (!has_name_index && header.name_home_slots.get() != 0)
    {
        return Err(malformed("reserved header bytes are not zero".into()));
    }
    let kinds = SectionKind::of_version(version);
    if header.section_count.get() as usize != kinds.len() {
        return Err(malformed(format!(
            "{} sections, expected {} in format version {version}",
            header.section_count.get(),
            kinds.len()
        )));
    }
    if header.sections[kinds.len()..]
        .iter()
        .any(|e| e.as_bytes() != [0; 32])
    {
        return Err(malformed("an unused section row is not zero".into()));
    }
    let mut sections: [Range<usize>; 7] = Default::default();
    let mut previous_end = HEADER_SIZE as u64;
    for (entry, &kind) in header.sections.iter().zip(kinds) {
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
            SectionKind::Records => expected_len(PAGE_SIZE as u64, None)?,
            SectionKind::PageRanks => {
                let pages = sections[0].len() as u64 / PAGE_SIZE as u64;
                expected_len(4, Some(pages + 1))?
            }
            SectionKind::LegacyIndex => expected_len(8, None)?,
            SectionKind::BiometricIndex => expected_len(20, None)?,
            SectionKind::Representatives => expected_len(18, None)?,
            SectionKind::TextHeap => {}
            SectionKind::NameIndex => expected_len(8, None)?,
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
    let page_count = sections[0].len() as u64 / PAGE_SIZE as u64;
    if page_count < home_pages || page_count * SLOTS_PER_PAGE as u64 >= u64::from(EMPTY >> 1) {
        return Err(malformed(format!(
            "{page_count} record pages for {home_pages} home pages"
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
    let name_home_slots = header.name_home_slots.get();
    let name_len = sections[SectionKind::NameIndex as usize - 1].len() as u64 / 8;
    if has_name_index && (name_home_slots == 0 || name_home_slots > name_len) {
        return Err(malformed("name index home slots exceed its table".into()));
    }
    Ok(SectionTable {
        header,
        record_count: n,
        home_pages,
        page_count,
        legacy_home_slots,
        biometric_home_slots,
        name_home_slots,
        sections,
    })
}
