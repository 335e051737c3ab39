//! Zero-copy views of stored records.

use crate::citizen::*;
use crate::format::*;
use crate::id::{LegacyId, PersonalId};
use crate::reader::Heap;
use crate::section_table::SectionTable;
use zerocopy::FromBytes;

/// Stands in for text that cannot be read (only possible in an unverified,
/// corrupted snapshot).
pub const UNREADABLE_TEXT: &str = "\u{FFFD}";

/// A stored record, read in place. Cheap to copy; borrows the snapshot (or
/// the [`crate::OwnedRecord`] it was encoded into).
#[derive(Clone, Copy)]
pub struct CitizenView<'a> {
    record: &'a RawRecord,
    origin: Origin<'a>,
    heap: Heap<'a>,
}

/// Where a viewed record lives: the side tables it refers to differ.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// A slot of a snapshot file.
    Snapshot {
        /// Slot number (`page × 37 + index in page`); indexes refer to records by it.
        slot: u32,
        file: &'a [u8],
        table: &'a SectionTable,
    },
    /// An [`crate::OwnedRecord`], which carries its representative itself.
    Owned {
        representative: Option<&'a RepresentativeEntry>,
    },
}

/// A father, mother, spouse or representative as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelativeView<'a> {
    /// Full name.
    pub full_name: &'a str,
    /// Personal ID, if any.
    pub id: Option<PersonalId>,
    /// Nationality, if known.
    pub nationality: Option<Country>,
}

/// Household membership as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HouseholdView<'a> {
    /// The head's personal ID, if any.
    pub head_id: Option<PersonalId>,
    /// The head's name.
    pub head_name: &'a str,
    /// Relationship to the head.
    pub relationship: Option<Relationship>,
}

/// Which biometric modalities are enrolled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enrolled {
    /// A face template is enrolled.
    pub face: bool,
    /// A fingerprint template is enrolled.
    pub fingerprint: bool,
}

fn id_opt(v: u64) -> Option<PersonalId> {
    PersonalId::from_u64(v).ok()
}

fn country(b: [u8; 2]) -> Option<Country> {
    Country::new(b)
}

impl<'a> CitizenView<'a> {
    pub(crate) fn new(
        record: &'a RawRecord,
        slot: u32,
        file: &'a [u8],
        table: &'a SectionTable,
        heap: Heap<'a>,
    ) -> Self {
        CitizenView {
            record,
            origin: Origin::Snapshot { slot, file, table },
            heap,
        }
    }

    /// A view of a record that lives outside any snapshot.
    pub(crate) fn owned(
        record: &'a RawRecord,
        heap: &'a str,
        representative: Option<&'a RepresentativeEntry>,
    ) -> Self {
        CitizenView {
            record,
            origin: Origin::Owned { representative },
            heap: Heap::Utf8(heap),
        }
    }

    /// The record's slot in its snapshot; `None` outside any snapshot.
    pub(crate) fn slot(&self) -> Option<u32> {
        match self.origin {
            Origin::Snapshot { slot, .. } => Some(slot),
            Origin::Owned { .. } => None,
        }
    }

    /// Whether the record was read from a snapshot file (not an overlay).
    pub fn is_from_snapshot(&self) -> bool {
        matches!(self.origin, Origin::Snapshot { .. })
    }

    #[inline]
    pub(crate) fn raw(&self) -> &'a RawRecord {
        self.record
    }

    fn text(&self, offset: zerocopy::little_endian::U32) -> &'a str {
        self.heap.text(offset.get()).unwrap_or(UNREADABLE_TEXT)
    }

    /// Starts loading the heap lines of the text at `offset` (its prefix
    /// and, for a string of up to 63 bytes, all of it) without waiting.
    #[inline]
    pub(crate) fn prefetch_text(&self, offset: zerocopy::little_endian::U32) {
        let heap = self.heap.bytes();
        let at = offset.get() as usize;
        for b in [heap.get(at), heap.get(at + 63).or(heap.last())]
            .into_iter()
            .flatten()
        {
            crate::format::prefetch(b);
        }
    }

    fn text_opt(&self, offset: zerocopy::little_endian::U32) -> Option<&'a str> {
        (offset.get() != 0).then(|| self.text(offset))
    }

    /// Position of the record in file order (`0..len`, as in
    /// `Snapshot::record`); `u32::MAX` for a record outside any snapshot.
    /// Reads the page ranks: not for hot paths.
    pub fn index(&self) -> u32 {
        match self.origin {
            Origin::Snapshot { slot, file, table } => {
                let ranks = file.get(table.section(SectionKind::PageRanks));
                crate::reader::rank_of(ranks.unwrap_or_default(), slot).unwrap_or(u32::MAX)
            }
            Origin::Owned { .. } => u32::MAX,
        }
    }

    /// Personal ID. (A corrupted value reads as the raw number's digits
    /// clamped to an ID; see [`Self::raw_id`].)
    #[inline]
    pub fn id(&self) -> PersonalId {
        PersonalId::from_u64(self.record.id.get()).unwrap_or_else(|_| {
            PersonalId::from_u64(1_000_000_000).expect("001000000000 is a valid ID")
        })
    }

    /// The stored ID number as is.
    #[inline]
    pub fn raw_id(&self) -> u64 {
        self.record.id.get()
    }

    /// Legacy 9-digit ID.
    #[inline]
    pub fn legacy_id(&self) -> Option<LegacyId> {
        LegacyId::from_u32(self.record.legacy_id.get()).ok()
    }

    /// Full name.
    pub fn full_name(&self) -> &'a str {
        self.text(self.record.full_name)
    }

    /// Date of birth.
    #[inline]
    pub fn date_of_birth(&self) -> Date {
        Date::from_packed(self.record.date_of_birth.get())
            .unwrap_or_else(|| Date::new(1900, 1, 1).expect("a valid date"))
    }

    /// Sex.
    #[inline]
    pub fn sex(&self) -> Sex {
        Sex::from_code(self.record.sex).unwrap_or(Sex::Male)
    }

    /// Place of birth registration.
    pub fn birth_registration_place(&self) -> Option<&'a str> {
        self.text_opt(self.record.birth_registration_place)
    }

    /// Hometown.
    pub fn hometown(&self) -> Option<&'a str> {
        self.text_opt(self.record.hometown)
    }

    /// Ethnic group.
    pub fn ethnicity(&self) -> Option<Ethnicity> {
        Ethnicity::from_code(self.record.ethnicity)
    }

    /// Religion.
    pub fn religion(&self) -> Option<Religion> {
        self.record
            .religion
            .checked_sub(1)
            .and_then(Religion::from_code)
    }

    /// Nationality.
    #[inline]
    pub fn nationality(&self) -> Option<Country> {
        country(self.record.nationality)
    }

    /// Marital status.
    pub fn marital_status(&self) -> Option<MaritalStatus> {
        MaritalStatus::from_code(self.record.marital_status)
    }

    /// Permanent residence.
    pub fn permanent_residence(&self) -> Option<&'a str> {
        self.text_opt(self.record.permanent_residence)
    }

    /// Temporary residence.
    pub fn temporary_residence(&self) -> Option<&'a str> {
        self.text_opt(self.record.temporary_residence)
    }

    /// Current residence.
    pub fn current_residence(&self) -> Option<&'a str> {
        self.text_opt(self.record.current_residence)
    }

    /// Blood type.
    pub fn blood_type(&self) -> Option<BloodType> {
        BloodType::from_code(self.record.blood_type)
    }

    fn relative(
        &self,
        flag: u8,
        id: zerocopy::little_endian::U64,
        name: zerocopy::little_endian::U32,
        nat: [u8; 2],
    ) -> Option<RelativeView<'a>> {
        (self.record.flags & flag != 0).then(|| RelativeView {
            full_name: self.text(name),
            id: id_opt(id.get()),
            nationality: country(nat),
        })
    }

    /// Father.
    pub fn father(&self) -> Option<RelativeView<'a>> {
        let r = self.record;
        self.relative(
            FLAG_FATHER,
            r.father_id,
            r.father_name,
            r.father_nationality,
        )
    }

    /// Mother.
    pub fn mother(&self) -> Option<RelativeView<'a>> {
        let r = self.record;
        self.relative(
            FLAG_MOTHER,
            r.mother_id,
            r.mother_name,
            r.mother_nationality,
        )
    }

    /// Spouse.
    pub fn spouse(&self) -> Option<RelativeView<'a>> {
        let r = self.record;
        self.relative(
            FLAG_SPOUSE,
            r.spouse_id,
            r.spouse_name,
            r.spouse_nationality,
        )
    }

    /// Legal representative (looked up in a small sorted side table).
    pub fn representative(&self) -> Option<RelativeView<'a>> {
        let e = self.representative_entry()?;
        self.relative(FLAG_REPRESENTATIVE, e.id, e.name, e.nationality)
    }

    /// The stored entry of [`Self::representative`].
    pub(crate) fn representative_entry(&self) -> Option<&'a RepresentativeEntry> {
        if self.record.flags & FLAG_REPRESENTATIVE == 0 {
            return None;
        }
        match self.origin {
            Origin::Snapshot { slot, file, table } => {
                let section = file.get(table.section(SectionKind::Representatives));
                let reps =
                    <[RepresentativeEntry]>::ref_from_bytes(section.unwrap_or_default()).ok()?;
                let i = reps.binary_search_by_key(&slot, |e| e.record.get()).ok()?;
                Some(&reps[i])
            }
            Origin::Owned { representative } => representative,
        }
    }

    /// Household membership.
    pub fn household(&self) -> Option<HouseholdView<'a>> {
        let r = self.record;
        (r.flags & FLAG_HOUSEHOLD != 0).then(|| HouseholdView {
            head_id: id_opt(r.household_head_id.get()),
            head_name: self.text(r.household_head_name),
            relationship: Relationship::from_code(r.relationship),
        })
    }

    /// Date of death or disappearance.
    #[inline]
    pub fn date_of_death(&self) -> Option<Date> {
        Date::from_packed(self.record.date_of_death.get())
    }

    /// Enrolled biometric modalities.
    #[inline]
    pub fn enrolled(&self) -> Enrolled {
        Enrolled {
            face: self.record.flags & FLAG_FACE != 0,
            fingerprint: self.record.flags & FLAG_FINGERPRINT != 0,
        }
    }

    /// An owned copy. `biometric_templates` stays empty: templates live in the
    /// biometric index (see `Snapshot::biometric_entries`).
    pub fn to_citizen(&self) -> Citizen {
        let owned = |r: RelativeView<'_>| Relative {
            full_name: r.full_name.to_owned(),
            id: r.id,
            nationality: r.nationality,
        };
        Citizen {
            id: self.id(),
            legacy_id: self.legacy_id(),
            full_name: self.full_name().to_owned(),
            date_of_birth: self.date_of_birth(),
            sex: self.sex(),
            birth_registration_place: self.birth_registration_place().map(str::to_owned),
            hometown: self.hometown().map(str::to_owned),
            ethnicity: self.ethnicity(),
            religion: self.religion(),
            nationality: self.nationality(),
            marital_status: self.marital_status(),
            permanent_residence: self.permanent_residence().map(str::to_owned),
            temporary_residence: self.temporary_residence().map(str::to_owned),
            current_residence: self.current_residence().map(str::to_owned),
            blood_type: self.blood_type(),
            father: self.father().map(owned),
            mother: self.mother().map(owned),
            spouse: self.spouse().map(owned),
            representative: self.representative().map(owned),
            household: self.household().and_then(|h| {
                Some(Household {
                    head_id: h.head_id,
                    head_name: h.head_name.to_owned(),
                    relationship: h.relationship?,
                })
            }),
            date_of_death: self.date_of_death(),
            biometric_templates: BiometricTemplates::default(),
            enrolled_modalities_ignored: None,
        }
    }
}

impl std::fmt::Debug for CitizenView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CitizenView")
            .field("from_snapshot", &self.is_from_snapshot())
            .field("id", &self.raw_id())
            .finish()
    }
}
