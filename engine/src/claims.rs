//! Claim matching, the API's "verify": does the register agree with what a
//! caller claims? The answer is one boolean per claimed field, nothing else.
//! (Not to be confused with [`crate::Snapshot::verify_checksums`], the
//! integrity check of a file.)

use serde::Deserialize;

use crate::citizen::*;
use crate::fold::names_match;
use crate::id::{LegacyId, PersonalId};
use crate::schema::{ClaimScope, Field};
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

/// A claimable attribute, in the order of [`Verification::fields`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Claim {
    /// [`Claims::full_name`].
    FullName,
    /// [`Claims::date_of_birth`].
    DateOfBirth,
    /// [`Claims::sex`].
    Sex,
    /// [`Claims::legacy_id`].
    LegacyId,
    /// [`Claims::nationality`].
    Nationality,
    /// [`Claims::ethnicity`].
    Ethnicity,
    /// [`Claims::religion`].
    Religion,
    /// [`Claims::marital_status`].
    MaritalStatus,
    /// [`Claims::blood_type`].
    BloodType,
    /// [`Claims::birth_registration_place`].
    BirthRegistrationPlace,
    /// [`Claims::hometown`].
    Hometown,
    /// [`Claims::permanent_residence`].
    PermanentResidence,
    /// [`Claims::temporary_residence`].
    TemporaryResidence,
    /// [`Claims::current_residence`].
    CurrentResidence,
    /// [`Claims::father_name`].
    FatherName,
    /// [`Claims::mother_name`].
    MotherName,
    /// [`Claims::spouse_name`].
    SpouseName,
    /// [`Claims::alive`].
    Alive,
}

impl Claim {
    /// Every claim, in [`Verification::fields`] order.
    pub const ALL: [Claim; 18] = [
        Claim::FullName,
        Claim::DateOfBirth,
        Claim::Sex,
        Claim::LegacyId,
        Claim::Nationality,
        Claim::Ethnicity,
        Claim::Religion,
        Claim::MaritalStatus,
        Claim::BloodType,
        Claim::BirthRegistrationPlace,
        Claim::Hometown,
        Claim::PermanentResidence,
        Claim::TemporaryResidence,
        Claim::CurrentResidence,
        Claim::FatherName,
        Claim::MotherName,
        Claim::SpouseName,
        Claim::Alive,
    ];

    /// The record field the claim is about.
    pub const fn field(self) -> Field {
        match self {
            Claim::FullName => Field::FullName,
            Claim::DateOfBirth => Field::DateOfBirth,
            Claim::Sex => Field::Sex,
            Claim::LegacyId => Field::LegacyId,
            Claim::Nationality => Field::Nationality,
            Claim::Ethnicity => Field::Ethnicity,
            Claim::Religion => Field::Religion,
            Claim::MaritalStatus => Field::MaritalStatus,
            Claim::BloodType => Field::BloodType,
            Claim::BirthRegistrationPlace => Field::BirthRegistrationPlace,
            Claim::Hometown => Field::Hometown,
            Claim::PermanentResidence => Field::PermanentResidence,
            Claim::TemporaryResidence => Field::TemporaryResidence,
            Claim::CurrentResidence => Field::CurrentResidence,
            Claim::FatherName => Field::Father,
            Claim::MotherName => Field::Mother,
            Claim::SpouseName => Field::Spouse,
            Claim::Alive => Field::DateOfDeath,
        }
    }

    /// The claim's key in a request: the field's JSON key, except for the
    /// relatives' names and `alive`.
    pub const fn key(self) -> &'static str {
        match self {
            Claim::FatherName => "father_name",
            Claim::MotherName => "mother_name",
            Claim::SpouseName => "spouse_name",
            Claim::Alive => "alive",
            other => other.field().key(),
        }
    }

    /// The claim whose request key is `key`.
    pub fn from_key(key: &[u8]) -> Option<Claim> {
        Claim::ALL.into_iter().find(|c| c.key().as_bytes() == key)
    }

    /// The scope a caller needs to make this claim (the schema's, for the
    /// field the claim is about).
    pub const fn scope(self) -> ClaimScope {
        match self.field().spec().claim {
            Some(scope) => scope,
            None => panic!("a claim is about a claimable field"),
        }
    }
}

/// Keys of the claimable fields, in the order of [`Verification::fields`].
pub const CLAIM_FIELDS: [&str; 18] = {
    let mut keys = [""; 18];
    let mut i = 0;
    while i < Claim::ALL.len() {
        keys[i] = Claim::ALL[i].key();
        i += 1;
    }
    keys
};

/// Whether each claim of [`CLAIM_FIELDS`] (same order) is one of the card's
/// fields, claimable with the `citizen:verify` scope alone: a yes/no answer
/// about a field the caller does not already hold reads the record out, so
/// every other claim needs `citizen:verify:extended` (see DESIGN.md,
/// "Verification discloses only what the caller already holds"). Derived
/// from the schema's [`crate::FieldSpec::claim`].
pub const CARD_CLAIMS: [bool; CLAIM_FIELDS.len()] = {
    let mut card = [false; CLAIM_FIELDS.len()];
    let mut i = 0;
    while i < Claim::ALL.len() {
        card[i] = matches!(Claim::ALL[i].scope(), ClaimScope::Verify);
        i += 1;
    }
    card
};

/// The outcome of a verification: which claims were checked and which held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    checked: u32,
    held: u32,
    /// A date of death is recorded.
    deceased: bool,
}

impl Verification {
    /// True when at least one claim was made and every claim held.
    pub fn matched(&self) -> bool {
        self.checked != 0 && self.held == self.checked
    }

    /// Whether the citizen is alive, told only to a caller whose every claim
    /// held (who holds the identity already): a bank or hospital must learn
    /// that the person it verifies has died. `None` otherwise.
    pub fn alive(&self) -> Option<bool> {
        self.matched().then_some(!self.deceased)
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

    fn record(&mut self, claim: Claim, held: Option<bool>) {
        if let Some(held) = held {
            self.checked |= 1 << claim as u32;
            self.held |= u32::from(held) << claim as u32;
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
    /// Claims about `id` that claim nothing yet (set the fields to claim).
    pub fn about(id: PersonalId) -> Claims {
        Claims {
            id,
            full_name: None,
            date_of_birth: None,
            sex: None,
            legacy_id: None,
            nationality: None,
            ethnicity: None,
            religion: None,
            marital_status: None,
            blood_type: None,
            birth_registration_place: None,
            hometown: None,
            permanent_residence: None,
            temporary_residence: None,
            current_residence: None,
            father_name: None,
            mother_name: None,
            spouse_name: None,
            alive: None,
        }
    }

    /// Whether any attribute is claimed.
    pub fn is_empty(&self) -> bool {
        !Claim::ALL.into_iter().any(|c| self.makes(c))
    }

    /// Whether `claim` is made.
    pub fn makes(&self, claim: Claim) -> bool {
        match claim {
            Claim::FullName => self.full_name.is_some(),
            Claim::DateOfBirth => self.date_of_birth.is_some(),
            Claim::Sex => self.sex.is_some(),
            Claim::LegacyId => self.legacy_id.is_some(),
            Claim::Nationality => self.nationality.is_some(),
            Claim::Ethnicity => self.ethnicity.is_some(),
            Claim::Religion => self.religion.is_some(),
            Claim::MaritalStatus => self.marital_status.is_some(),
            Claim::BloodType => self.blood_type.is_some(),
            Claim::BirthRegistrationPlace => self.birth_registration_place.is_some(),
            Claim::Hometown => self.hometown.is_some(),
            Claim::PermanentResidence => self.permanent_residence.is_some(),
            Claim::TemporaryResidence => self.temporary_residence.is_some(),
            Claim::CurrentResidence => self.current_residence.is_some(),
            Claim::FatherName => self.father_name.is_some(),
            Claim::MotherName => self.mother_name.is_some(),
            Claim::SpouseName => self.spouse_name.is_some(),
            Claim::Alive => self.alive.is_some(),
        }
    }

    /// Makes `claim` from its text form, as a request carries it (every
    /// claim but `alive`, which is a boolean). `None` if the claim is made
    /// already or `text` does not parse: the caller's strict parser
    /// (serde) then says why.
    pub fn set_text(&mut self, claim: Claim, text: &str) -> Option<()> {
        fn set<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
            match slot {
                Some(_) => None,
                None => {
                    *slot = Some(value?);
                    Some(())
                }
            }
        }
        let owned = || Some(text.to_owned());
        match claim {
            Claim::FullName => set(&mut self.full_name, owned()),
            Claim::DateOfBirth => set(&mut self.date_of_birth, Date::parse(text).ok()),
            Claim::Sex => set(&mut self.sex, text.parse().ok()),
            Claim::LegacyId => set(&mut self.legacy_id, LegacyId::parse(text).ok()),
            Claim::Nationality => set(&mut self.nationality, text.parse().ok()),
            Claim::Ethnicity => set(&mut self.ethnicity, text.parse().ok()),
            Claim::Religion => set(&mut self.religion, text.parse().ok()),
            Claim::MaritalStatus => set(&mut self.marital_status, text.parse().ok()),
            Claim::BloodType => set(&mut self.blood_type, text.parse().ok()),
            Claim::BirthRegistrationPlace => set(&mut self.birth_registration_place, owned()),
            Claim::Hometown => set(&mut self.hometown, owned()),
            Claim::PermanentResidence => set(&mut self.permanent_residence, owned()),
            Claim::TemporaryResidence => set(&mut self.temporary_residence, owned()),
            Claim::CurrentResidence => set(&mut self.current_residence, owned()),
            Claim::FatherName => set(&mut self.father_name, owned()),
            Claim::MotherName => set(&mut self.mother_name, owned()),
            Claim::SpouseName => set(&mut self.spouse_name, owned()),
            Claim::Alive => None,
        }
    }

    /// The first claimed field that is not on the card (see
    /// [`CARD_CLAIMS`]), if any.
    pub fn first_beyond_card(&self) -> Option<&'static str> {
        Claim::ALL
            .into_iter()
            .find(|&c| self.makes(c) && c.scope() != ClaimScope::Verify)
            .map(Claim::key)
    }

    /// The scope a caller needs to make these claims: [`ClaimScope::Verify`]
    /// when only the card's fields are claimed.
    pub fn scope(&self) -> ClaimScope {
        Claim::ALL
            .into_iter()
            .filter(|&c| self.makes(c))
            .map(Claim::scope)
            .max()
            .unwrap_or(ClaimScope::Verify)
    }

    /// Starts loading the heap strings of `view` that [`Claims::check`]
    /// compares with these claims (the record's own names and places; a
    /// relative's name is left to the check), and returns at once: the
    /// check then waits for one miss instead of one per string.
    pub fn prefetch(&self, view: &CitizenView<'_>) {
        let r = view.raw();
        let texts = [
            (&self.full_name, r.full_name),
            (&self.birth_registration_place, r.birth_registration_place),
            (&self.hometown, r.hometown),
            (&self.permanent_residence, r.permanent_residence),
            (&self.temporary_residence, r.temporary_residence),
            (&self.current_residence, r.current_residence),
        ];
        for (claim, offset) in texts {
            if claim.is_some() && offset.get() != 0 {
                view.prefetch_text(offset);
            }
        }
    }

    /// Checks the claims against a record (`None` checks nothing but still
    /// counts which fields were claimed).
    pub fn check(&self, view: Option<&CitizenView<'_>>) -> Verification {
        let mut v = Verification::default();
        let Some(r) = view else {
            for c in Claim::ALL {
                v.record(c, self.makes(c).then_some(false));
            }
            return v;
        };
        v.deceased = r.date_of_death().is_some();
        v.record(
            Claim::FullName,
            text_matches(&self.full_name, || Some(r.full_name())),
        );
        v.record(
            Claim::DateOfBirth,
            eq(self.date_of_birth, || Some(r.date_of_birth())),
        );
        v.record(Claim::Sex, eq(self.sex, || Some(r.sex())));
        v.record(Claim::LegacyId, eq(self.legacy_id, || r.legacy_id()));
        v.record(Claim::Nationality, eq(self.nationality, || r.nationality()));
        v.record(Claim::Ethnicity, eq(self.ethnicity, || r.ethnicity()));
        v.record(Claim::Religion, eq(self.religion, || r.religion()));
        v.record(
            Claim::MaritalStatus,
            eq(self.marital_status, || r.marital_status()),
        );
        v.record(Claim::BloodType, eq(self.blood_type, || r.blood_type()));
        let place = || r.birth_registration_place();
        v.record(
            Claim::BirthRegistrationPlace,
            text_matches(&self.birth_registration_place, place),
        );
        v.record(
            Claim::Hometown,
            text_matches(&self.hometown, || r.hometown()),
        );
        v.record(
            Claim::PermanentResidence,
            text_matches(&self.permanent_residence, || r.permanent_residence()),
        );
        v.record(
            Claim::TemporaryResidence,
            text_matches(&self.temporary_residence, || r.temporary_residence()),
        );
        v.record(
            Claim::CurrentResidence,
            text_matches(&self.current_residence, || r.current_residence()),
        );
        v.record(
            Claim::FatherName,
            text_matches(&self.father_name, || r.father().map(|p| p.full_name)),
        );
        v.record(
            Claim::MotherName,
            text_matches(&self.mother_name, || r.mother().map(|p| p.full_name)),
        );
        v.record(
            Claim::SpouseName,
            text_matches(&self.spouse_name, || r.spouse().map(|p| p.full_name)),
        );
        v.record(
            Claim::Alive,
            self.alive.map(|a| a == r.date_of_death().is_none()),
        );
        v
    }
}

impl<D: AsRef<[u8]>> crate::Snapshot<D> {
    /// Verifies `claims` against the register; `None` when the ID is not in it.
    pub fn verify_claims(&self, claims: &Claims) -> Option<Verification> {
        self.get(claims.id).map(|view| claims.check(Some(&view)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn every_claim_key_is_a_field_of_claims() {
        for key in CLAIM_FIELDS {
            let json = format!(r#"{{"id":"079089012345","{key}":null}}"#);
            assert!(claims(&json).is_ok(), "{key} is not a field of Claims");
        }
        assert!(claims(r#"{"id":"079089012345","shoe_size":null}"#).is_err());
    }

    #[test]
    fn claims_beyond_the_card_need_the_extended_scope() {
        let card = claims(r#"{"id":"079089012345","full_name":"A","sex":"male"}"#).unwrap();
        assert_eq!(card.scope(), ClaimScope::Verify);
        let more = claims(r#"{"id":"079089012345","full_name":"A","alive":true}"#).unwrap();
        assert_eq!(more.scope(), ClaimScope::Extended);
        assert_eq!(Claim::FatherName.scope(), ClaimScope::Extended);
        assert_eq!(Claim::PermanentResidence.scope(), ClaimScope::Verify);
    }
}
