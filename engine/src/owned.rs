//! Records that live outside any snapshot: the change overlay's form.
//!
//! An [`OwnedRecord`] is one record encoded exactly as the builder encodes it
//! for a snapshot (the same 108-byte [`RawRecord`], a private text heap, the
//! representative and the biometric digests), so that [`OwnedRecord::view`]
//! gives the same [`CitizenView`] every read path already understands: JSON
//! writing, projection and claim checks need no second implementation.

use zerocopy::{FromBytes, IntoBytes};

use crate::builder::{encode, Interner, Staged};
use crate::citizen::{BiometricTemplates, Citizen, Modality, TemplateDigest};
use crate::error::{Error, Result};
use crate::format::{RepresentativeEntry, FLAG_FACE, FLAG_FINGERPRINT, FLAG_REPRESENTATIVE};
use crate::view::CitizenView;

/// One record with its own text, readable as a [`CitizenView`].
#[derive(Clone)]
pub struct OwnedRecord {
    staged: Staged,
    representative: RepresentativeEntry,
    /// Length-prefixed strings as in the snapshot's heap; starts with the
    /// empty string at offset 0 ("none"). Valid UTF-8: every prefix byte is
    /// ASCII and every string is a `&str`.
    heap: Box<str>,
}

/// A heap that appends every string (a record's few strings rarely repeat).
struct PrivateHeap(Vec<u8>);

impl Interner for PrivateHeap {
    fn intern(&mut self, s: &str) -> Result<u32> {
        if s.is_empty() {
            return Ok(0);
        }
        let offset = u32::try_from(self.0.len())
            .map_err(|_| Error::TooLarge("record text over 4 GiB".into()))?;
        crate::text::push_text_len(&mut self.0, s.len());
        self.0.extend_from_slice(s.as_bytes());
        Ok(offset)
    }
}

impl OwnedRecord {
    /// Validates and encodes `c` (its biometric templates included).
    pub fn encode(c: &Citizen) -> Result<OwnedRecord> {
        c.validate().map_err(|e| Error::InvalidRecord {
            position: 0,
            id: c.id.to_string(),
            reason: e.0,
        })?;
        let mut heap = PrivateHeap(vec![0]);
        let staged = encode(c, &mut heap)?;
        let heap = String::from_utf8(heap.0).expect("a heap of &str and ASCII prefixes is UTF-8");
        Ok(OwnedRecord::from_parts(staged, heap.into_boxed_str()))
    }

    fn from_parts(staged: Staged, heap: Box<str>) -> OwnedRecord {
        let representative = RepresentativeEntry {
            record: 0.into(),
            id: staged.representative_id,
            name: staged.representative_name,
            nationality: staged.representative_nationality,
        };
        OwnedRecord {
            staged,
            representative,
            heap,
        }
    }

    /// The record as every read path sees records.
    #[inline]
    pub fn view(&self) -> CitizenView<'_> {
        let has_representative = self.staged.record.flags & FLAG_REPRESENTATIVE != 0;
        CitizenView::owned(
            &self.staged.record,
            &self.heap,
            has_representative.then_some(&self.representative),
        )
    }

    /// Marks `modality` enrolled with a template kept elsewhere (the
    /// snapshot's biometric index); [`OwnedRecord::template`] then gives a
    /// zero digest for it, which the holder of the record must not use.
    pub fn mark_enrolled(&mut self, modality: Modality) {
        self.staged.record.flags |= match modality {
            Modality::Face => FLAG_FACE,
            Modality::Fingerprint => FLAG_FINGERPRINT,
        };
    }

    /// Bytes held: the fixed part and the text.
    pub fn size(&self) -> usize {
        std::mem::size_of::<OwnedRecord>() + self.heap.len()
    }

    /// The enrolled template digest of `modality`, if any.
    pub fn template(&self, modality: Modality) -> Option<TemplateDigest> {
        let (flag, digest) = match modality {
            Modality::Face => (FLAG_FACE, self.staged.face),
            Modality::Fingerprint => (FLAG_FINGERPRINT, self.staged.fingerprint),
        };
        (self.staged.record.flags & flag != 0).then_some(TemplateDigest(digest))
    }

    /// Both template digests.
    pub fn templates(&self) -> BiometricTemplates {
        BiometricTemplates {
            face: self.template(Modality::Face),
            fingerprint: self.template(Modality::Fingerprint),
        }
    }

    /// The owned form, templates included.
    pub fn to_citizen(&self) -> Citizen {
        let mut c = self.view().to_citizen();
        c.biometric_templates = self.templates();
        c
    }

    /// Bytes for a log: the fixed part, then the heap.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(std::mem::size_of::<Staged>() + self.heap.len());
        out.extend_from_slice(self.staged.as_bytes());
        out.extend_from_slice(self.heap.as_bytes());
        out
    }

    /// Reads [`OwnedRecord::to_bytes`]; `None` if the bytes are not of that
    /// form (too short, heap not UTF-8 or not starting with the empty string).
    pub fn from_bytes(bytes: &[u8]) -> Option<OwnedRecord> {
        let (staged, heap) = Staged::read_from_prefix(bytes).ok()?;
        let heap = std::str::from_utf8(heap).ok()?;
        if !heap.starts_with('\0') {
            return None;
        }
        Some(OwnedRecord::from_parts(staged, heap.into()))
    }
}

impl std::fmt::Debug for OwnedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedRecord")
            .field("id", &self.view().raw_id())
            .finish()
    }
}
