//! Laying out a snapshot file (FORMAT.md): records arriving in hash order
//! go into pages, their keys into the ordered index tables, then the
//! representatives, the text heap and the header; sections are aligned and
//! checksummed as they stream out. The builder (records from anywhere,
//! staged and sorted) and the next-generation merge (records already in
//! order) both end here.

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::Xxh3;
use zerocopy::{FromZeros, Immutable, IntoBytes};

use crate::builder::{BuildOptions, Staged};
use crate::citizen::Modality;
use crate::error::{Error, Result};
use crate::format::*;
use crate::name_index::NameKeys;

/// Renames the finished (synced) file `tmp` over `path`, durably.
pub(crate) fn publish(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).map_err(Error::io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable only once the directory entry is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(dir))?;
    }
    Ok(())
}

/// A temporary file name beside `path`, unique to this process and call.
pub(crate) fn temporary_sibling(path: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    sibling(path, &format!("{what}-{}-{n}", std::process::id()))
}

/// Lays out a snapshot file from records arriving in hash order: the pages,
/// then the indexes, the representatives, the text heap and the header.
/// Shared by a build from scratch (`SnapshotBuilder`) and the merge that
/// writes a snapshot's next generation (`next_generation.rs`).
pub(crate) struct Assembler<'p> {
    tmp: &'p Path,
    out: SectionWriter<'p>,
    pages: PageWriter,
    records: u64,
    legacy_keys: Vec<(u32, u32, u32)>, // (fingerprint, legacy, slot)
    bio_keys: Vec<(u32, u32, [u8; 16])>, // (fingerprint, tag, digest)
    reps: Vec<RepresentativeEntry>,
    name_keys: NameKeys,
    /// The text heap the records point into, in parts laid end to end.
    heap: [&'p [u8]; 2],
    /// (hash, ID) of the last record pushed.
    previous: Option<(u64, u64)>,
    pushed: u64,
}

impl<'p> Assembler<'p> {
    /// Starts the file `tmp` for exactly `records` records whose text is
    /// in `heap` (its two parts laid end to end; the second may be empty).
    pub(crate) fn create(
        tmp: &'p Path,
        records: u64,
        heap: [&'p [u8]; 2],
    ) -> Result<Assembler<'p>> {
        let file = File::create(tmp).map_err(Error::io(tmp))?;
        let mut out = SectionWriter::new(BufWriter::with_capacity(1 << 20, file), tmp);
        out.write(&[0; HEADER_SIZE])?; // the header is written last, over these zeros
        out.begin(SectionKind::Records)?;
        Ok(Assembler {
            tmp,
            out,
            pages: PageWriter::new(home_pages_for(records)),
            records,
            legacy_keys: Vec::new(),
            bio_keys: Vec::new(),
            reps: Vec::new(),
            name_keys: NameKeys::with_capacity(records as usize),
            heap,
            previous: None,
            pushed: 0,
        })
    }

    /// Places the next record; records come in ascending (hash, ID) order.
    pub(crate) fn push(&mut self, s: &Staged) -> Result<()> {
        // Equal IDs have equal hashes, so duplicates are neighbours.
        let key = (s.hash.get(), s.record.id.get());
        match self.previous {
            Some(previous) if previous == key => {
                return Err(Error::DuplicateKey {
                    kind: "personal ID",
                    key: format!("{:012}", key.1),
                })
            }
            Some(previous) if previous > key => {
                return Err(Error::Malformed(format!(
                    "record {:012} is out of hash order",
                    key.1
                )))
            }
            _ => self.previous = Some(key),
        }
        self.pushed += 1;
        let slot = self.pages.push(&mut self.out, s.hash.get(), &s.record)?;
        let name = self.text(s.record.full_name.get()).unwrap_or_default();
        self.name_keys.add(name, &s.record, slot);
        let legacy = s.record.legacy_id.get();
        if legacy != 0 {
            self.legacy_keys
                .push((legacy_fingerprint(legacy, HASH_SEED), legacy, slot));
        }
        for (bit, digest, flag) in [
            (0u32, &s.face, FLAG_FACE),
            (1, &s.fingerprint, FLAG_FINGERPRINT),
        ] {
            if s.record.flags & flag != 0 {
                let fp = biometric_fingerprint(bit, digest, HASH_SEED);
                self.bio_keys.push((fp, slot | bit << 31, *digest));
            }
        }
        if s.record.flags & FLAG_REPRESENTATIVE != 0 {
            self.reps.push(RepresentativeEntry {
                record: slot.into(),
                id: s.representative_id,
                name: s.representative_name,
                nationality: s.representative_nationality,
            });
        }
        Ok(())
    }

    /// The heap text at `offset`, in whichever part holds it.
    fn text(&self, offset: u32) -> Option<&'p str> {
        let [first, second] = self.heap;
        let bytes = match (offset as usize).checked_sub(first.len()) {
            None => crate::text::read_text_bytes(first, offset)?,
            Some(at) => crate::text::read_text_bytes(second, u32::try_from(at).ok()?)?,
        };
        std::str::from_utf8(bytes).ok()
    }

    /// Writes the indexes, the heap and the header, and syncs the file.
    /// Returns the file's size.
    pub(crate) fn finish(self, options: &BuildOptions) -> Result<u64> {
        let Assembler {
            tmp,
            mut out,
            pages,
            records,
            mut legacy_keys,
            mut bio_keys,
            reps,
            name_keys,
            heap,
            pushed,
            ..
        } = self;
        if pushed != records {
            return Err(Error::Malformed(format!(
                "{pushed} records laid out, {records} expected"
            )));
        }
        let home_pages = home_pages_for(records);
        // The two index sorts are independent: one on another thread while
        // this one writes the pages' tail and ranks.
        let bio_sort = |keys: &mut Vec<(u32, u32, [u8; 16])>| {
            keys.sort_unstable_by_key(|&(fp, tag, digest)| (fp, tag >> 31, digest))
        };
        std::thread::scope(|scope| -> Result<()> {
            let sorting = scope.spawn(|| bio_sort(&mut bio_keys));
            let page_ranks = pages.finish(&mut out)?;
            out.end()?;
            out.begin(SectionKind::PageRanks)?;
            out.write(page_ranks.as_bytes())?;
            out.end()?;
            drop(page_ranks);
            legacy_keys.sort_unstable();
            sorting.join().expect("sorting does not panic");
            Ok(())
        })?;

        // Legacy index.
        if let Some(w) = legacy_keys.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(Error::DuplicateKey {
                kind: "legacy ID",
                key: format!("{:09}", w[0].1),
            });
        }
        let legacy_home_slots = home_slots_for(legacy_keys.len());
        out.begin(SectionKind::LegacyIndex)?;
        let empty = LegacySlot {
            fingerprint: 0.into(),
            record: EMPTY.into(),
        };
        write_ordered_table(
            &mut out,
            &legacy_keys,
            legacy_home_slots,
            empty,
            |&(fp, _, rec)| {
                (
                    fp,
                    LegacySlot {
                        fingerprint: fp.into(),
                        record: rec.into(),
                    },
                )
            },
        )?;
        out.end()?;
        drop(legacy_keys);

        // Biometric index.
        if let Some(w) = bio_keys
            .windows(2)
            .find(|w| w[0].2 == w[1].2 && w[0].1 >> 31 == w[1].1 >> 31)
        {
            let modality = if w[0].1 >> 31 == 0 {
                Modality::Face
            } else {
                Modality::Fingerprint
            };
            return Err(Error::DuplicateKey {
                kind: "biometric template",
                key: format!("{modality} {}", crate::citizen::TemplateDigest(w[0].2)),
            });
        }
        let biometric_home_slots = home_slots_for(bio_keys.len());
        out.begin(SectionKind::BiometricIndex)?;
        let empty = BiometricSlot {
            digest: [0; 16],
            tag: EMPTY.into(),
        };
        write_ordered_table(
            &mut out,
            &bio_keys,
            biometric_home_slots,
            empty,
            |&(fp, tag, digest)| {
                (
                    fp,
                    BiometricSlot {
                        digest,
                        tag: tag.into(),
                    },
                )
            },
        )?;
        out.end()?;
        drop(bio_keys);

        out.begin(SectionKind::Representatives)?;
        out.write(reps.as_bytes())?;
        out.end()?;

        out.begin(SectionKind::TextHeap)?;
        for part in heap {
            out.write(part)?;
        }
        out.end()?;

        out.begin(SectionKind::NameIndex)?;
        let name_home_slots = name_keys.write(&mut out)?;
        out.end()?;

        let build_time = options.build_time_unix.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        let mut header = Header {
            magic: MAGIC,
            endian_mark: ENDIAN_MARK.into(),
            format_version: FORMAT_VERSION.into(),
            header_size: (HEADER_SIZE as u32).into(),
            record_size: (RECORD_SIZE as u32).into(),
            record_count: records.into(),
            generation: options.generation.into(),
            build_time_unix: (build_time as u64).into(),
            hash_seed: HASH_SEED.into(),
            home_pages: home_pages.into(),
            legacy_home_slots: legacy_home_slots.into(),
            biometric_home_slots: biometric_home_slots.into(),
            section_count: (out.sections.len() as u32).into(),
            flags: 0.into(),
            sections: [SectionEntry::default(); 7],
            folded_sequence: options.folded_sequence.into(),
            name_home_slots: name_home_slots.into(),
            reserved: [0; 16],
            header_checksum: 0.into(),
        };
        header.sections[..out.sections.len()].copy_from_slice(&out.sections);
        header.header_checksum = header_checksum(&header).into();
        let file_bytes = out.position;
        let mut file = out.into_inner()?;
        file.seek(SeekFrom::Start(0)).map_err(Error::io(tmp))?;
        file.write_all(header.as_bytes()).map_err(Error::io(tmp))?;
        file.sync_all().map_err(Error::io(tmp))?;
        // The pages this build wrote sit in the page cache in small folios;
        // a reader that maps the file then pays a TLB miss per 4 KiB. Dropped
        // (they are on disk now), the file is read back by readahead in large
        // folios that a mapping covers with 2 MiB entries: on the 100 M
        // snapshot, batched lookups went from 3.9 to 5.8 M/s.
        crate::memory::drop_from_page_cache(&file, 0, file_bytes as usize);
        Ok(file_bytes)
    }
}

/// Lays records, arriving in hash order, into pages (FORMAT.md, "Records"):
/// each goes to its home page, or to the first page after it with a free slot
/// when the home page is full (ordered linear probing with pages as buckets).
struct PageWriter {
    home_pages: u64,
    /// The page being filled.
    page: u64,
    header: PageHeader,
    records: Vec<u8>,
    /// Records before each page written so far, then the total.
    ranks: Vec<u32>,
    written: u32,
}

impl PageWriter {
    fn new(home_pages: u64) -> PageWriter {
        PageWriter {
            home_pages,
            page: 0,
            header: PageHeader::new_zeroed(),
            records: Vec::with_capacity(PAGE_SIZE),
            ranks: Vec::with_capacity(home_pages as usize + 2),
            written: 0,
        }
    }

    /// Places a record and returns its slot number.
    fn push(&mut self, out: &mut SectionWriter, hash: u64, record: &RawRecord) -> Result<u32> {
        let home = fast_range(hash, self.home_pages);
        while self.page < home {
            self.flush(out)?;
        }
        if usize::from(self.header.count) == SLOTS_PER_PAGE {
            // Full: this record (home ≤ this page) continues in the next one.
            self.header.flags |= PAGE_OVERFLOW;
            self.flush(out)?;
        }
        let index = usize::from(self.header.count);
        let slot = self.page * SLOTS_PER_PAGE as u64 + index as u64;
        let slot = u32::try_from(slot)
            .ok()
            .filter(|&s| s < EMPTY >> 1)
            .ok_or_else(|| Error::TooLarge(format!("slot {slot} does not fit 31 bits")))?;
        self.header.tags[index] = id_tag(hash);
        self.header.count += 1;
        self.records.extend_from_slice(record.as_bytes());
        Ok(slot)
    }

    /// Writes the current page and starts the next.
    fn flush(&mut self, out: &mut SectionWriter) -> Result<()> {
        out.write(self.header.as_bytes())?;
        out.write(&self.records)?;
        out.write(&[0; PAGE_SIZE][..PAGE_SIZE - PAGE_HEADER_SIZE - self.records.len()])?;
        self.ranks.push(self.written);
        self.written += u32::from(self.header.count);
        self.header = PageHeader::new_zeroed();
        self.records.clear();
        self.page += 1;
        Ok(())
    }

    /// Writes the last pages (at least every home page) and returns the
    /// page ranks: records before each page, then the total.
    fn finish(mut self, out: &mut SectionWriter) -> Result<Vec<u32>> {
        while self.page < self.home_pages || self.header.count > 0 {
            self.flush(out)?;
        }
        self.ranks.push(self.written);
        Ok(self.ranks)
    }
}

/// Home slots of an ordered table of `keys` keys (at most 9 keys per
/// `SLOTS_PER_NINE_KEYS` slots).
pub(crate) fn home_slots_for(keys: usize) -> u64 {
    (keys as u64 * SLOTS_PER_NINE_KEYS).div_ceil(9).max(1)
}

/// Writes an ordered linear-probing table: keys sorted by fingerprint, each at
/// its home slot or the first free slot after it, empty slots in between.
pub(crate) fn write_ordered_table<K, S: IntoBytes + Immutable>(
    out: &mut SectionWriter,
    keys: &[K],
    home_slots: u64,
    empty: S,
    slot_of: impl Fn(&K) -> (u32, S),
) -> Result<()> {
    let mut position = 0u64;
    for key in keys {
        let (fp, slot) = slot_of(key);
        let home = home_slot(fp, home_slots);
        while position < home {
            out.write(empty.as_bytes())?;
            position += 1;
        }
        out.write(slot.as_bytes())?;
        position += 1;
    }
    while position < home_slots {
        out.write(empty.as_bytes())?;
        position += 1;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// Writes sections with alignment and streaming checksums.
pub(crate) struct SectionWriter<'p> {
    inner: BufWriter<File>,
    path: &'p Path,
    position: u64,
    hasher: Xxh3,
    current: Option<(SectionKind, u64)>,
    sections: Vec<SectionEntry>,
}

impl<'p> SectionWriter<'p> {
    fn new(inner: BufWriter<File>, path: &'p Path) -> Self {
        SectionWriter {
            inner,
            path,
            position: 0,
            hasher: Xxh3::new(),
            current: None,
            sections: Vec::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.current.is_some() {
            self.hasher.update(bytes);
        }
        self.inner.write_all(bytes).map_err(Error::io(self.path))?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, align: u64) -> Result<()> {
        let pad = self.position.next_multiple_of(align) - self.position;
        self.inner
            .write_all(&vec![0; pad as usize])
            .map_err(Error::io(self.path))?;
        self.position += pad;
        Ok(())
    }

    fn begin(&mut self, kind: SectionKind) -> Result<()> {
        self.pad_to(SECTION_ALIGN)?;
        self.hasher.reset();
        self.current = Some((kind, self.position));
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        let (kind, offset) = self.current.take().expect("end() follows begin()");
        self.sections.push(SectionEntry {
            kind: (kind as u32).into(),
            reserved: 0.into(),
            offset: offset.into(),
            length: (self.position - offset).into(),
            checksum: self.hasher.digest().into(),
        });
        Ok(())
    }

    fn into_inner(self) -> Result<File> {
        self.inner
            .into_inner()
            .map_err(|e| Error::io(self.path)(e.into_error()))
    }
}
