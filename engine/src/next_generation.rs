//! The next generation of a snapshot: its records with some replaced and
//! some added, written by a merge instead of a rebuild.
//!
//! A snapshot's records are already in hash order, so the next generation is
//! the merge of two sorted streams: the old records, copied as they are, and
//! the replacements, encoded and sorted. The old text heap becomes the new
//! heap's prefix, so a copied record's text offsets stay valid; a
//! replacement's strings are looked up among the strings of the record it
//! replaces (a move changes an address, not a name) and appended only when
//! new. Nothing is staged on disk and nothing is re-encoded but the
//! replacements: the work is one sequential read and write of the file plus
//! sorting the index keys.
//!
//! The price: a string that only replaced records used stays in the heap
//! until a full rebuild (`dancu-data build` from an export) leaves it out.
//! The output depends only on the snapshot and the replacements, so two
//! machines folding the same changes write the same bytes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use zerocopy::FromBytes;

use crate::builder::{encode, BuildOptions, BuildSummary, Interner, Staged, TextHeap};
use crate::citizen::Citizen;
use crate::error::{Error, Result};
use crate::format::*;
use crate::layout::{publish, temporary_sibling, Assembler};
use crate::reader::Snapshot;
use crate::view::Enrolled;

/// A record of the next generation that is not copied from the snapshot.
#[derive(Clone, Debug)]
pub struct Replacement {
    /// The record as it is now: a changed citizen, or a new one.
    pub citizen: Citizen,
    /// Modalities whose template only the snapshot holds and the change
    /// kept: copied from the snapshot's record of the same ID.
    pub inherit: Enrolled,
}

/// Writes the next generation of `snapshot` to `path`: every record of
/// `snapshot`, except that a replacement takes the place of the record with
/// its ID, and a replacement with a new ID is added. Like a build, nothing at
/// `path` changes until the finished file is synced and renamed over it.
pub fn write_next_generation<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    mut replacements: Vec<Replacement>,
    options: BuildOptions,
    path: impl AsRef<Path>,
) -> Result<BuildSummary> {
    let started = Instant::now();
    let path = path.as_ref();
    let old_heap = snapshot.heap().bytes();

    // Encoded in the order they are laid out, so the strings they append
    // (and so the file) do not depend on the order they were given in.
    replacements.sort_unstable_by_key(|r| (id_hash(r.citizen.id.get()), r.citizen.id.get()));
    let mut interner = AppendingInterner::new(old_heap);
    let mut staged = Vec::with_capacity(replacements.len());
    let mut added = 0u64;
    for (position, r) in replacements.into_iter().enumerate() {
        r.citizen.validate().map_err(|e| Error::InvalidRecord {
            position: position as u64,
            id: r.citizen.id.to_string(),
            reason: e.0,
        })?;
        match snapshot.get(r.citizen.id) {
            Some(old) => interner.know(old.raw(), old.representative_entry()),
            None => added += 1,
        }
        staged.push((encode(&r.citizen, &mut interner)?, r.inherit));
    }
    let records = snapshot.len() as u64 + added;

    let tmp = temporary_sibling(path, "next");
    let heap = [old_heap, interner.appended()];
    let result = merge(snapshot, staged, records, heap, &tmp)
        .and_then(|assembler| assembler.finish(&options));
    let file_bytes = match result {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    publish(&tmp, path)?;
    Ok(BuildSummary {
        path: path.to_path_buf(),
        records,
        file_bytes,
        elapsed: started.elapsed(),
    })
}

/// Lays out the old records and the sorted replacements in hash order.
fn merge<'p, D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    staged: Vec<(Staged, Enrolled)>,
    records: u64,
    heap: [&'p [u8]; 2],
    tmp: &'p Path,
) -> Result<Assembler<'p>> {
    let malformed = |m: String| Error::Malformed(m);
    // The old templates in slot order: (slot << 1 | modality bit, digest).
    let index = <[BiometricSlot]>::ref_from_bytes(snapshot.slice(SectionKind::BiometricIndex))
        .map_err(|_| malformed("biometric index is not a whole number of slots".into()))?;
    let mut templates: Vec<(u32, [u8; 16])> = index
        .iter()
        .filter(|s| s.tag.get() != EMPTY)
        .map(|s| (s.tag.get().rotate_left(1), s.digest))
        .collect();
    templates.sort_unstable_by_key(|&(key, _)| key);
    let mut templates = templates.into_iter().peekable();
    let representatives =
        <[RepresentativeEntry]>::ref_from_bytes(snapshot.slice(SectionKind::Representatives))
            .map_err(|_| malformed("representatives section is not whole entries".into()))?;
    let mut representatives = representatives.iter().peekable();

    let mut assembler = Assembler::create(tmp, records, heap)?;
    let mut new = staged.into_iter().peekable();
    for view in snapshot.iter() {
        let slot = view.slot().expect("a snapshot's views have slots");
        let raw = view.raw();
        let key = (id_hash(raw.id.get()), raw.id.get());
        while let Some((s, _)) = new.next_if(|(s, _)| (s.hash.get(), s.record.id.get()) < key) {
            assembler.push(&s)?;
        }
        let (mut face, mut fingerprint) = (None, None);
        while let Some((tagged, digest)) = templates.next_if(|&(t, _)| t >> 1 <= slot) {
            if tagged >> 1 == slot {
                *(if tagged & 1 == 0 {
                    &mut face
                } else {
                    &mut fingerprint
                }) = Some(digest);
            }
        }
        let mut representative = None;
        while let Some(e) = representatives.next_if(|e| e.record.get() <= slot) {
            if e.record.get() == slot {
                representative = Some(*e);
            }
        }
        if let Some((mut s, inherit)) = new.next_if(|(s, _)| s.record.id.get() == raw.id.get()) {
            for (kept, old, flag, digest) in [
                (inherit.face, face, FLAG_FACE, &mut s.face),
                (
                    inherit.fingerprint,
                    fingerprint,
                    FLAG_FINGERPRINT,
                    &mut s.fingerprint,
                ),
            ] {
                if kept {
                    // The replacement marks the modality enrolled with a
                    // zero digest; the snapshot holds the real one, if any.
                    match old {
                        Some(old) => {
                            s.record.flags |= flag;
                            *digest = old;
                        }
                        None => {
                            s.record.flags &= !flag;
                            *digest = [0; 16];
                        }
                    }
                }
            }
            assembler.push(&s)?;
            continue;
        }
        let missing = |what: &str| malformed(format!("record {} has no {what}", view.id()));
        let template = |flag: u8, digest: Option<[u8; 16]>, what: &str| match digest {
            _ if raw.flags & flag == 0 => Ok([0; 16]),
            Some(d) => Ok(d),
            None => Err(missing(what)),
        };
        let representative = match representative {
            _ if raw.flags & FLAG_REPRESENTATIVE == 0 => None,
            Some(e) => Some(e),
            None => return Err(missing("representative entry")),
        };
        assembler.push(&Staged {
            hash: key.0.into(),
            record: *raw,
            representative_id: representative.map_or(0.into(), |e| e.id),
            representative_name: representative.map_or(0.into(), |e| e.name),
            representative_nationality: representative.map_or([0; 2], |e| e.nationality),
            face: template(FLAG_FACE, face, "face template")?,
            fingerprint: template(FLAG_FINGERPRINT, fingerprint, "fingerprint template")?,
        })?;
    }
    for (s, _) in new {
        assembler.push(&s)?;
    }
    Ok(assembler)
}

/// Interns a replacement's strings: at their old offsets when the record it
/// replaces has them, else appended after the old heap.
struct AppendingInterner<'a> {
    old_heap: &'a [u8],
    /// Strings of the replaced records, at their offsets in the old heap.
    known: HashMap<&'a [u8], u32>,
    /// Strings appended after the old heap. Its first byte (the empty
    /// string at its offset 0) is not written: its offset `k` lands at
    /// `old_heap.len() + k - 1`.
    fresh: TextHeap,
}

impl<'a> AppendingInterner<'a> {
    fn new(old_heap: &'a [u8]) -> Self {
        AppendingInterner {
            old_heap,
            known: HashMap::new(),
            fresh: TextHeap::new(),
        }
    }

    /// Makes the strings of an old record (and of its representative
    /// entry) reusable.
    fn know(&mut self, record: &RawRecord, representative: Option<&RepresentativeEntry>) {
        let offsets = record.text_offsets();
        let rep = representative.map(|e| e.name);
        for offset in offsets.iter().chain(rep.iter()).map(|o| o.get()) {
            if let Some(text) = crate::text::read_text_bytes(self.old_heap, offset) {
                if offset != 0 {
                    self.known.insert(text, offset);
                }
            }
        }
    }

    /// The bytes to write after the old heap.
    fn appended(&self) -> &[u8] {
        &self.fresh.bytes[1..]
    }
}

impl Interner for AppendingInterner<'_> {
    fn intern(&mut self, s: &str) -> Result<u32> {
        if s.is_empty() {
            return Ok(0);
        }
        if let Some(&offset) = self.known.get(s.as_bytes()) {
            return Ok(offset);
        }
        let fresh = self.fresh.intern(s)?;
        u32::try_from(self.old_heap.len() as u64 + u64::from(fresh) - 1)
            .map_err(|_| Error::TooLarge("text heap over 4 GiB".into()))
    }
}
