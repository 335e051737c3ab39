//! Writing a snapshot from a stream of records.
//!
//! The builder never holds the population as owned structs. [`SnapshotBuilder::push`]
//! encodes each record to its fixed-size form at once, interns its text in
//! the heap (deduplicated: a household's address is stored once) and appends
//! it to one of [`PARTITIONS`] staging files chosen by the top bits of its ID
//! hash. [`SnapshotBuilder::finish`] then reads one partition at a time, sorts
//! it by hash, and streams records, indexes and heap into a temporary file next
//! to the target, which is fsynced and renamed over it. Memory at the end is
//! one partition plus the index keys (about 8 GB for 100 M citizens).

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::Xxh3;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::citizen::{Citizen, Modality, Relative};
use crate::error::{Error, Result};
use crate::format::*;
use crate::name_index::NameKeys;

/// Number of staging partitions (by the top bits of the ID hash).
pub const PARTITIONS: usize = 128;

/// Options of a build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// The generation number written in the header.
    pub generation: u64,
    /// The build time written in the header; now when `None`.
    pub build_time_unix: Option<i64>,
    /// The last change-log sequence number the records include (compaction).
    pub folded_sequence: u64,
}

/// What a finished build wrote.
#[derive(Clone, Debug)]
pub struct BuildSummary {
    /// The snapshot file.
    pub path: PathBuf,
    /// Records written.
    pub records: u64,
    /// Size of the file.
    pub file_bytes: u64,
    /// Time from `create` to the rename.
    pub elapsed: Duration,
}

/// A record on its way through a staging partition.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Staged {
    pub(crate) hash: U64,
    pub(crate) record: RawRecord,
    pub(crate) representative_id: U64,
    pub(crate) representative_name: U32,
    pub(crate) representative_nationality: [u8; 2],
    pub(crate) face: [u8; 16],
    pub(crate) fingerprint: [u8; 16],
}

/// Streams records into a new snapshot file. See the module docs.
pub struct SnapshotBuilder {
    path: PathBuf,
    staging_dir: PathBuf,
    partitions: Vec<Option<BufWriter<File>>>,
    heap: TextHeap,
    options: BuildOptions,
    count: u64,
    started: Instant,
}

impl SnapshotBuilder {
    /// Starts a build of `path`. Nothing at `path` changes until
    /// [`finish`](Self::finish) renames the finished file over it.
    pub fn create(path: impl AsRef<Path>, options: BuildOptions) -> Result<SnapshotBuilder> {
        let path = path.as_ref().to_path_buf();
        // Unique per build, so concurrent builds of one path do not collide.
        static BUILDS: AtomicU64 = AtomicU64::new(0);
        let build = BUILDS.fetch_add(1, Ordering::Relaxed);
        let staging_dir = sibling(&path, &format!("staging-{}-{build}", std::process::id()));
        if staging_dir.exists() {
            fs::remove_dir_all(&staging_dir).map_err(Error::io(&staging_dir))?;
        }
        fs::create_dir_all(&staging_dir).map_err(Error::io(&staging_dir))?;
        Ok(SnapshotBuilder {
            path,
            staging_dir,
            partitions: (0..PARTITIONS).map(|_| None).collect(),
            heap: TextHeap::new(),
            options,
            count: 0,
            started: Instant::now(),
        })
    }

    /// Records pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one record. A record that fails [`Citizen::validate`] is an
    /// [`Error::InvalidRecord`]; duplicates are found by `finish`.
    pub fn push(&mut self, c: &Citizen) -> Result<()> {
        let invalid = |reason: String| Error::InvalidRecord {
            position: self.count,
            id: c.id.to_string(),
            reason,
        };
        c.validate().map_err(|e| invalid(e.0))?;
        if self.count >= MAX_RECORDS {
            return Err(Error::TooLarge(format!("more than {MAX_RECORDS} records")));
        }
        let staged = encode(c, &mut self.heap)?;
        let partition = (staged.hash.get() >> 57) as usize; // top 7 bits: 128 partitions
        let writer = match &mut self.partitions[partition] {
            Some(w) => w,
            slot => {
                let p = self.staging_dir.join(format!("{partition:03}"));
                let f = File::create(&p).map_err(Error::io(&p))?;
                slot.insert(BufWriter::with_capacity(1 << 16, f))
            }
        };
        writer
            .write_all(staged.as_bytes())
            .map_err(Error::io(&self.staging_dir))?;
        self.count += 1;
        Ok(())
    }

    /// Sorts, indexes and writes everything, then renames the file into place.
    pub fn finish(mut self) -> Result<BuildSummary> {
        for w in self.partitions.iter_mut().flatten() {
            w.flush().map_err(Error::io(&self.staging_dir))?;
        }
        self.partitions.clear();
        let mut tmp = self.staging_dir.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let result = self.write_file(&tmp);
        let _ = fs::remove_dir_all(&self.staging_dir);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let file_bytes = result?;
        fs::rename(&tmp, &self.path).map_err(Error::io(&self.path))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable only once the directory entry is.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io(dir))?;
        }
        Ok(BuildSummary {
            path: self.path.clone(),
            records: self.count,
            file_bytes,
            elapsed: self.started.elapsed(),
        })
    }

    fn write_file(&mut self, tmp: &Path) -> Result<u64> {
        let n = self.count;
        let home_pages = home_pages_for(n);
        let file = File::create(tmp).map_err(Error::io(tmp))?;
        let mut out = SectionWriter::new(BufWriter::with_capacity(1 << 20, file), tmp);
        out.write(&[0; HEADER_SIZE])?; // the header is written last, over these zeros

        // Records, partition by partition in hash order, into pages.
        let mut pages = PageWriter::new(home_pages);
        let mut legacy_keys: Vec<(u32, u32, u32)> = Vec::new(); // (fingerprint, legacy, slot)
        let mut bio_keys: Vec<(u32, u32, [u8; 16])> = Vec::new(); // (fingerprint, tag, digest)
        let mut reps: Vec<RepresentativeEntry> = Vec::new();
        let mut name_keys = NameKeys::with_capacity(n as usize);
        out.begin(SectionKind::Records)?;
        let mut buf = Vec::new();
        let mut previous_id = None;
        for p in 0..PARTITIONS {
            let path = self.staging_dir.join(format!("{p:03}"));
            buf.clear();
            match File::open(&path) {
                Ok(mut f) => f.read_to_end(&mut buf).map_err(Error::io(&path))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path)(e)),
            };
            let staged = <[Staged]>::mut_from_bytes(&mut buf)
                .map_err(|_| Error::Malformed(format!("staging file {p} has a partial record")))?;
            staged.sort_unstable_by_key(|s| (s.hash.get(), s.record.id.get()));
            for s in staged.iter() {
                // Equal IDs have equal hashes, so duplicates are neighbours.
                if previous_id == Some(s.record.id.get()) {
                    return Err(Error::DuplicateKey {
                        kind: "personal ID",
                        key: format!("{:012}", s.record.id.get()),
                    });
                }
                previous_id = Some(s.record.id.get());
                let slot = pages.push(&mut out, s.hash.get(), &s.record)?;
                name_keys.add(&self.heap.bytes, &s.record, slot);
                let legacy = s.record.legacy_id.get();
                if legacy != 0 {
                    legacy_keys.push((legacy_fingerprint(legacy, HASH_SEED), legacy, slot));
                }
                for (bit, digest, flag) in [
                    (0u32, &s.face, FLAG_FACE),
                    (1, &s.fingerprint, FLAG_FINGERPRINT),
                ] {
                    if s.record.flags & flag != 0 {
                        let fp = biometric_fingerprint(bit, digest, HASH_SEED);
                        bio_keys.push((fp, slot | bit << 31, *digest));
                    }
                }
                if s.record.flags & FLAG_REPRESENTATIVE != 0 {
                    reps.push(RepresentativeEntry {
                        record: slot.into(),
                        id: s.representative_id,
                        name: s.representative_name,
                        nationality: s.representative_nationality,
                    });
                }
            }
            drop(fs::remove_file(&path));
        }
        let page_ranks = pages.finish(&mut out)?;
        out.end()?;

        out.begin(SectionKind::PageRanks)?;
        out.write(page_ranks.as_bytes())?;
        out.end()?;
        drop(page_ranks);

        // Legacy index.
        legacy_keys.sort_unstable();
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
        bio_keys.sort_unstable_by_key(|&(fp, tag, digest)| (fp, tag >> 31, digest));
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
        out.write(&self.heap.bytes)?;
        out.end()?;

        out.begin(SectionKind::NameIndex)?;
        let name_home_slots = name_keys.write(&mut out)?;
        out.end()?;

        let build_time = self.options.build_time_unix.unwrap_or_else(|| {
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
            record_count: n.into(),
            generation: self.options.generation.into(),
            build_time_unix: (build_time as u64).into(),
            hash_seed: HASH_SEED.into(),
            home_pages: home_pages.into(),
            legacy_home_slots: legacy_home_slots.into(),
            biometric_home_slots: biometric_home_slots.into(),
            section_count: (out.sections.len() as u32).into(),
            flags: 0.into(),
            sections: [SectionEntry::default(); 7],
            folded_sequence: self.options.folded_sequence.into(),
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

impl Drop for SnapshotBuilder {
    fn drop(&mut self) {
        // An abandoned build leaves nothing behind.
        self.partitions.clear();
        let _ = fs::remove_dir_all(&self.staging_dir);
    }
}

/// Interns a record's strings in a text heap and returns their offsets.
pub(crate) trait Interner {
    /// The offset of `s` in the heap (0 for the empty string: "none").
    fn intern(&mut self, s: &str) -> Result<u32>;

    /// [`Interner::intern`] of an optional string.
    fn intern_opt(&mut self, s: &Option<String>) -> Result<u32> {
        s.as_deref().map_or(Ok(0), |s| self.intern(s))
    }

    /// Starts loading whatever `intern` will read for `texts`.
    fn prefetch(&self, _texts: &[Option<&str>]) {}
}

/// Encodes one record to its fixed-size form, its text interned in `heap`.
/// The caller has validated `c`.
pub(crate) fn encode(c: &Citizen, heap: &mut impl Interner) -> Result<Staged> {
    heap.prefetch(&[
        Some(c.full_name.as_str()),
        c.birth_registration_place.as_deref(),
        c.hometown.as_deref(),
        c.permanent_residence.as_deref(),
        c.temporary_residence.as_deref(),
        c.current_residence.as_deref(),
        relative_name(&c.father),
        relative_name(&c.mother),
        relative_name(&c.spouse),
        relative_name(&c.representative),
        c.household.as_ref().map(|h| h.head_name.as_str()),
    ]);
    let mut r = RawRecord {
        id: c.id.get().into(),
        full_name: heap.intern(&c.full_name)?.into(),
        birth_registration_place: heap.intern_opt(&c.birth_registration_place)?.into(),
        hometown: heap.intern_opt(&c.hometown)?.into(),
        permanent_residence: heap.intern_opt(&c.permanent_residence)?.into(),
        temporary_residence: heap.intern_opt(&c.temporary_residence)?.into(),
        current_residence: heap.intern_opt(&c.current_residence)?.into(),
        legacy_id: c.legacy_id.map_or(0, |l| l.get()).into(),
        date_of_birth: c.date_of_birth.to_packed().into(),
        date_of_death: c.date_of_death.map_or(0, |d| d.to_packed()).into(),
        nationality: c.nationality.map_or([0; 2], |n| n.bytes()),
        ethnicity: c.ethnicity.map_or(0, |e| e.code()),
        religion: c.religion.map_or(0, |r| r.code() + 1),
        marital_status: c.marital_status.map_or(0, |m| m.code()),
        blood_type: c.blood_type.map_or(0, |b| b.code()),
        sex: c.sex.code(),
        ..RawRecord::default()
    };
    let mut relative = |rel: &Option<Relative>, flag: u8| -> Result<(u64, u32, [u8; 2])> {
        match rel {
            None => Ok((0, 0, [0; 2])),
            Some(rel) => {
                r.flags |= flag;
                Ok((
                    rel.id.map_or(0, |i| i.get()),
                    heap.intern(&rel.full_name)?,
                    rel.nationality.map_or([0; 2], |n| n.bytes()),
                ))
            }
        }
    };
    let (id, name, nat) = relative(&c.father, FLAG_FATHER)?;
    (r.father_id, r.father_name, r.father_nationality) = (id.into(), name.into(), nat);
    let (id, name, nat) = relative(&c.mother, FLAG_MOTHER)?;
    (r.mother_id, r.mother_name, r.mother_nationality) = (id.into(), name.into(), nat);
    let (id, name, nat) = relative(&c.spouse, FLAG_SPOUSE)?;
    (r.spouse_id, r.spouse_name, r.spouse_nationality) = (id.into(), name.into(), nat);
    let (rep_id, rep_name, rep_nat) = relative(&c.representative, FLAG_REPRESENTATIVE)?;
    if let Some(h) = &c.household {
        r.flags |= FLAG_HOUSEHOLD;
        r.household_head_id = h.head_id.map_or(0, |i| i.get()).into();
        r.household_head_name = heap.intern(&h.head_name)?.into();
        r.relationship = h.relationship.code();
    }
    let t = &c.biometric_templates;
    if t.face.is_some() {
        r.flags |= FLAG_FACE;
    }
    if t.fingerprint.is_some() {
        r.flags |= FLAG_FINGERPRINT;
    }
    Ok(Staged {
        hash: id_hash(c.id.get()).into(),
        record: r,
        representative_id: rep_id.into(),
        representative_name: rep_name.into(),
        representative_nationality: rep_nat,
        face: t.face.map_or([0; 16], |d| d.0),
        fingerprint: t.fingerprint.map_or([0; 16], |d| d.0),
    })
}

fn relative_name(r: &Option<Relative>) -> Option<&str> {
    r.as_ref().map(|r| r.full_name.as_str())
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

/// Builds a snapshot at `path` from every record of `citizens`.
pub fn build_snapshot<'a>(
    path: impl AsRef<Path>,
    options: BuildOptions,
    citizens: impl IntoIterator<Item = &'a Citizen>,
) -> Result<BuildSummary> {
    let mut builder = SnapshotBuilder::create(path, options)?;
    for c in citizens {
        builder.push(c)?;
    }
    builder.finish()
}

/// The hash that orders records and picks an ID's page: MurmurHash3's
/// 64-bit finalizer of the ID xor the seed. A bijection, so distinct IDs
/// never share a hash, and a third of the cost of xxh3 on eight bytes; IDs
/// are assigned by the state, not chosen by whoever queries them, so a
/// keyed hash buys nothing here.
#[inline]
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

/// Deduplicated, length-prefixed strings. Offset 0 holds the empty string, so
/// 0 can mean "none".
struct TextHeap {
    bytes: Vec<u8>,
    /// Open-addressing table (linear probing, power-of-two size, at most half
    /// full) of `(xxh3 of the string, offset)`; offset 0 marks an empty slot.
    /// Hand-rolled rather than a `HashMap` so that [`TextHeap::prefetch`] can
    /// start the cache misses of a record's strings together.
    table: Vec<(u64, u32)>,
    used: usize,
    /// A small direct-mapped cache of recent strings in front of `table`:
    /// members of a household arrive together and share addresses and names,
    /// and this cache stays in L2 while the table does not.
    recent: Box<[(u64, u32); RECENT]>,
}

const RECENT: usize = 4096;

impl TextHeap {
    fn new() -> TextHeap {
        TextHeap {
            bytes: vec![0],
            table: vec![(0, 0); 1 << 10],
            used: 0,
            recent: Box::new([(0, 0); RECENT]),
        }
    }

    fn hash(s: &str) -> u64 {
        xxhash_rust::xxh3::xxh3_64(s.as_bytes())
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.table.len() - 1)
    }

    /// Starts loading the table slots of `texts` (one record's strings), so
    /// that their cache misses overlap instead of following one another.
    fn prefetch_slots(&self, texts: &[Option<&str>]) {
        for s in texts.iter().flatten().filter(|s| !s.is_empty()) {
            crate::format::prefetch(&self.table[self.home(Self::hash(s))]);
        }
    }
}

impl Interner for TextHeap {
    fn prefetch(&self, texts: &[Option<&str>]) {
        self.prefetch_slots(texts)
    }

    fn intern(&mut self, s: &str) -> Result<u32> {
        if s.is_empty() {
            return Ok(0);
        }
        let hash = Self::hash(s);
        let recent = hash as usize % RECENT;
        let same = |bytes: &[u8], offset: u32| {
            crate::text::read_text_bytes(bytes, offset) == Some(s.as_bytes())
        };
        let (recent_hash, recent_offset) = self.recent[recent];
        if recent_hash == hash && recent_offset != 0 && same(&self.bytes, recent_offset) {
            return Ok(recent_offset);
        }
        let mask = self.table.len() - 1;
        let mut slot = self.home(hash);
        loop {
            let (slot_hash, offset) = self.table[slot];
            if offset == 0 {
                break;
            }
            if slot_hash == hash && same(&self.bytes, offset) {
                self.recent[recent] = (hash, offset);
                return Ok(offset);
            }
            slot = (slot + 1) & mask;
        }
        let offset = u32::try_from(self.bytes.len())
            .map_err(|_| Error::TooLarge("text heap over 4 GiB".into()))?;
        crate::text::push_text_len(&mut self.bytes, s.len());
        self.bytes.extend_from_slice(s.as_bytes());
        self.table[slot] = (hash, offset);
        self.used += 1;
        self.recent[recent] = (hash, offset);
        if self.used * 2 > self.table.len() {
            self.grow();
        }
        Ok(offset)
    }
}

impl TextHeap {
    fn grow(&mut self) {
        let doubled = vec![(0, 0); self.table.len() * 2];
        let old = std::mem::replace(&mut self.table, doubled);
        let mask = self.table.len() - 1;
        for (hash, offset) in old.into_iter().filter(|&(_, offset)| offset != 0) {
            let mut slot = hash as usize & mask;
            while self.table[slot].1 != 0 {
                slot = (slot + 1) & mask;
            }
            self.table[slot] = (hash, offset);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_heap_stores_each_string_once() {
        let mut heap = TextHeap::new();
        assert_eq!(heap.intern("").unwrap(), 0);
        let a = heap.intern("12 Lê Lợi, Quận 1").unwrap();
        let b = heap.intern("Nguyễn Văn An").unwrap();
        let len = heap.bytes.len();
        // Far more strings than the recent cache holds, then the first again.
        let others: Vec<u32> = (0..3 * RECENT)
            .map(|i| heap.intern(&format!("Số {i}")).unwrap())
            .collect();
        assert_eq!(heap.intern("12 Lê Lợi, Quận 1").unwrap(), a);
        assert_eq!(heap.intern("Nguyễn Văn An").unwrap(), b);
        assert_eq!(heap.intern(&format!("Số {}", 17)).unwrap(), others[17]);
        assert_ne!(a, b);
        assert!(len < heap.bytes.len());
        let before = heap.bytes.len();
        for i in 0..3 * RECENT {
            heap.intern(&format!("Số {i}")).unwrap();
        }
        assert_eq!(heap.bytes.len(), before, "nothing stored twice");
        assert_eq!(
            crate::text::read_text(&heap.bytes, a),
            Some("12 Lê Lợi, Quận 1")
        );
    }
}
