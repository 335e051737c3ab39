//! Privacy-preserving verification: does the register agree with what a
//! caller claims? The answer is one boolean per claimed field, nothing else.

use serde::Deserialize;

use crate::citizen::*;
use crate::fold::names_match;
use crate::id::{LegacyId, PersonalId};
use crate::view::CitizenView;

/// Claimed attributes of the citizen with personal ID `id`. Every field but
/// `id` is optional; only the fields given are checked. Names and addresses
/// are compared folded (case, diacritics and whitespace ignored).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Whose record to check.
    pub id: PersonalId,
    /// Full name.
    #[serde(default)]
    pub full_name: Option<String>,
    /// Date of birth.
    #[serde(default)]
    pub date_of_birth: Option<Date>,
    /// Sex.
    #[serde(default)]
    pub sex: Option<Sex>,
    /// Legacy ID.
    #[serde(default)]
    pub legacy_id: Option<LegacyId>,
    /// Nationality.
    #[serde(default)]
    pub nationality: Option<Country>,
    /// Ethnic group.
    #[serde(default)]
    pub ethnicity: Option<Ethnicity>,
    /// Religion.
    #[serde(default)]
    pub religion: Option<Religion>,
    /// Marital status.
    #[serde(default)]
    pub marital_status: Option<MaritalStatus>,
    /// Blood type.
    #[serde(default)]
    pub blood_type: Option<BloodType>,
    /// Place of birth registration.
    #[serde(default)]
    pub birth_registration_place: Option<String>,
    /// Hometown.
    #[serde(default)]
    pub hometown: Option<String>,
    /// Permanent residence.
    #[serde(default)]
    pub permanent_residence: Option<String>,
    /// Temporary residence.
    #[serde(default)]
    pub temporary_residence: Option<String>,
    /// Current residence.
    #[serde(default)]
    pub current_residence: Option<String>,
    /// Father's full name.
    #[serde(default)]
    pub father_name: Option<String>,
    /// Mother's full name.
    #[serde(default)]
    pub mother_name: Option<String>,
    /// Spouse's full name.
    #[serde(default)]
    pub spouse_name: Option<String>,
    /// That the citizen is alive (no date of death recorded).
    #[serde(default)]
    pub alive: Option<bool>,
}

/// Names of the claimable fields, in the order of [`Verification::fields`].
pub const CLAIM_FIELDS: [&str; 18] = [
    "full_name",
    "date_of_birth",
    "sex",
    "legacy_id",
    "nationality",
    "ethnicity",
    "religion",
    "marital_status",
    "blood_type",
    "birth_registration_place",
    "hometown",
    "permanent_residence",
    "temporary_residence",
    "current_residence",
    "father_name",
    "mother_name",
    "spouse_name",
    "alive",
];

/// Whether each field of [`CLAIM_FIELDS`] (same order) is one of the card's
/// fields, claimable with the `citizen:verify` scope alone: a yes/no answer
/// about a field the caller does not already hold reads the record out, so
/// every other claim needs `citizen:verify:extended` (see DESIGN.md,
/// "Verification discloses only what the caller already holds").
pub const CARD_CLAIMS: [bool; CLAIM_FIELDS.len()] = [
    true,  // full_name
    true,  // date_of_birth
    true,  // sex
    true,  // legacy_id
    false, // nationality
    false, // ethnicity
    false, // religion
    false, // marital_status
    false, // blood_type
    false, // birth_registration_place
    false, // hometown
    true,  // permanent_residence
    false, // temporary_residence
    false, // current_residence
    false, // father_name
    false, // mother_name
    false, // spouse_name
    false, // alive
];

/// The outcome of a verification: which claims were checked and which held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    checked: u32,
    held: u32,
}

impl Verification {
    /// True when at least one claim was made and every claim held.
    pub fn matched(&self) -> bool {
        self.checked != 0 && self.held == self.checked
    }

    /// Number of claims checked.
    pub fn claims(&self) -> u32 {
        self.checked.count_ones()
    }

    /// `(field, held)` for each claimed field.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, bool)> + '_ {
        CLAIM_FIELDS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.checked >> i & 1 == 1)
            .map(|(i, &name)| (name, self.held >> i & 1 == 1))
    }

    fn record(&mut self, field: usize, held: Option<bool>) {
        if let Some(held) = held {
            self.checked |= 1 << field;
            self.held |= u32::from(held) << field;
        }
    }
}

/// Stored values are read only for the fields that are claimed.
fn text_matches<'a>(
    claim: &Option<String>,
    stored: impl FnOnce() -> Option<&'a str>,
) -> Option<bool> {
    claim
        .as_deref()
        .map(|c| stored().is_some_and(|s| names_match(c, s)))
}

fn eq<T: PartialEq>(claim: Option<T>, stored: impl FnOnce() -> Option<T>) -> Option<bool> {
    claim.map(|c| stored() == Some(c))
}

impl Claims {
    /// Whether any attribute is claimed.
    pub fn is_empty(&self) -> bool {
        self.claimed().iter().all(|&c| !c)
    }

    /// The first claimed field that is not on the card (see
    /// [`CARD_CLAIMS`]), if any.
    pub fn first_beyond_card(&self) -> Option<&'static str> {
        let claimed = self.claimed();
        (0..CLAIM_FIELDS.len())
            .find(|&i| claimed[i] && !CARD_CLAIMS[i])
            .map(|i| CLAIM_FIELDS[i])
    }

    /// Which fields are claimed, in [`CLAIM_FIELDS`] order.
    pub fn claimed(&self) -> [bool; CLAIM_FIELDS.len()] {
        [
            self.full_name.is_some(),
            self.date_of_birth.is_some(),
            self.sex.is_some(),
            self.legacy_id.is_some(),
            self.nationality.is_some(),
            self.ethnicity.is_some(),
            self.religion.is_some(),
            self.marital_status.is_some(),
            self.blood_type.is_some(),
            self.birth_registration_place.is_some(),
            self.hometown.is_some(),
            self.permanent_residence.is_some(),
            self.temporary_residence.is_some(),
            self.current_residence.is_some(),
            self.father_name.is_some(),
            self.mother_name.is_some(),
            self.spouse_name.is_some(),
            self.alive.is_some(),
        ]
    }

    /// Checks the claims against a record (`None` checks nothing but still
    /// counts which fields were claimed).
    pub fn check(&self, view: Option<&CitizenView<'_>>) -> Verification {
        let mut v = Verification::default();
        let Some(r) = view else {
            let claimed = self.claimed();
            for (i, c) in claimed.into_iter().enumerate() {
                v.record(i, c.then_some(false));
            }
            return v;
        };
        v.record(0, text_matches(&self.full_name, || Some(r.full_name())));
        v.record(1, eq(self.date_of_birth, || Some(r.date_of_birth())));
        v.record(2, eq(self.sex, || Some(r.sex())));
        v.record(3, eq(self.legacy_id, || r.legacy_id()));
        v.record(4, eq(self.nationality, || r.nationality()));
        v.record(5, eq(self.ethnicity, || r.ethnicity()));
        v.record(6, eq(self.religion, || r.religion()));
        v.record(7, eq(self.marital_status, || r.marital_status()));
        v.record(8, eq(self.blood_type, || r.blood_type()));
        let place = || r.birth_registration_place();
        v.record(9, text_matches(&self.birth_registration_place, place));
        v.record(10, text_matches(&self.hometown, || r.hometown()));
        v.record(
            11,
            text_matches(&self.permanent_residence, || r.permanent_residence()),
        );
        v.record(
            12,
            text_matches(&self.temporary_residence, || r.temporary_residence()),
        );
        v.record(
            13,
            text_matches(&self.current_residence, || r.current_residence()),
        );
        v.record(
            14,
            text_matches(&self.father_name, || r.father().map(|p| p.full_name)),
        );
        v.record(
            15,
            text_matches(&self.mother_name, || r.mother().map(|p| p.full_name)),
        );
        v.record(
            16,
            text_matches(&self.spouse_name, || r.spouse().map(|p| p.full_name)),
        );
        v.record(17, self.alive.map(|a| a == r.date_of_death().is_none()));
        v
    }
}

impl<D: AsRef<[u8]>> crate::Snapshot<D> {
    /// Verifies `claims` against the register; `None` when the ID is not in it.
    pub fn verify_claims(&self, claims: &Claims) -> Option<Verification> {
        self.get(claims.id).map(|view| claims.check(Some(&view)))
    }
}
