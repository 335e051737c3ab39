//! Writing a snapshot from a stream of records.
//!
//! The builder never holds the population as owned structs. [`SnapshotBuilder::push`]
//! encodes each record to its fixed-size form at once, interns its text in
//! the heap (deduplicated: a household's address is stored once) and appends
//! it to one of [`PARTITIONS`] staging files chosen by the top bits of its ID
//! hash. [`SnapshotBuilder::finish`] then reads and sorts one partition at a
//! time on one thread while the layout (`layout.rs`) streams the previous
//! one's records, indexes and heap into a temporary file next to the target,
//! which is fsynced and renamed over it. Memory at the end is two partitions
//! plus the index keys (about 8 GB for 100 M citizens).

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::citizen::{Citizen, Relative};
use crate::error::{Error, Result};
use crate::format::*;
use crate::layout::{publish, temporary_sibling, Assembler};

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
        let staging_dir = temporary_sibling(&path, "staging");
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
        publish(&tmp, &self.path)?;
        Ok(BuildSummary {
            path: self.path.clone(),
            records: self.count,
            file_bytes,
            elapsed: self.started.elapsed(),
        })
    }

    fn write_file(&mut self, tmp: &Path) -> Result<u64> {
        let mut assembler = Assembler::create(tmp, self.count, [&self.heap.bytes, &[]])?;
        // Reading and sorting partition p + 1 (one thread) overlaps laying
        // out partition p (this one): each takes about half of the time.
        std::thread::scope(|scope| -> Result<()> {
            let (sorted_tx, sorted_rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(1);
            let staging_dir = &self.staging_dir;
            scope.spawn(move || {
                for p in 0..PARTITIONS {
                    let sorted = read_sorted_partition(staging_dir, p);
                    let failed = sorted.is_err();
                    if sorted_tx.send(sorted).is_err() || failed {
                        return;
                    }
                }
            });
            for sorted in sorted_rx {
                let mut buf = sorted?;
                let staged = <[Staged]>::mut_from_bytes(&mut buf)
                    .map_err(|_| Error::Malformed("staging file has a partial record".into()))?;
                for s in staged.iter() {
                    assembler.push(s)?;
                }
            }
            Ok(())
        })?;
        assembler.finish(&self.options)
    }
}

/// Reads staging partition `p` (empty if it was never created), sorted by
/// hash, and removes its file.
fn read_sorted_partition(staging_dir: &Path, p: usize) -> Result<Vec<u8>> {
    let path = staging_dir.join(format!("{p:03}"));
    let mut buf = Vec::new();
    match File::open(&path) {
        Ok(mut f) => f.read_to_end(&mut buf).map_err(Error::io(&path))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(buf),
        Err(e) => return Err(Error::io(&path)(e)),
    };
    let staged = <[Staged]>::mut_from_bytes(&mut buf)
        .map_err(|_| Error::Malformed(format!("staging file {p} has a partial record")))?;
    staged.sort_unstable_by_key(|s| (s.hash.get(), s.record.id.get()));
    drop(fs::remove_file(&path));
    Ok(buf)
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

/// Deduplicated, length-prefixed strings. Offset 0 holds the empty string, so
/// 0 can mean "none".
pub(crate) struct TextHeap {
    pub(crate) bytes: Vec<u8>,
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
    pub(crate) fn new() -> TextHeap {
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
