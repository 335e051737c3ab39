//! The record schema as one table: for every field of a record, its JSON
//! key, its CSV columns, who may read it, whether and under which scope a
//! caller may claim it in a verification, and whether a registrar may change
//! it with a merge patch.
//!
//! Everything that names fields reads this table: the JSON writer
//! (`write_citizen_json`), projections ([`FieldSet`]), claim matching
//! ([`crate::Claims`]), the CSV form of `dancu-data` and the register's merge
//! patches. Adding a field is one entry here plus its storage (the record
//! types in `citizen.rs` and `format.rs`); tests compare the serde names of
//! [`crate::Citizen`] and [`crate::Claims`] with this table.
//!
//! # CSV columns
//!
//! One row per citizen, one column per field; a relative becomes three
//! prefixed columns (`father_full_name`, `father_id`, `father_nationality`),
//! the household three (`household_head_id`, `household_head_name`,
//! `household_relationship`) and biometrics two template columns (32 hex
//! digits, written only by exports made with `--with-templates`).
//! [`CSV_COLUMNS`] lists them in export order.

/// A field of a citizen record, in the order the API writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    /// Personal ID, 12 digits.
    Id,
    /// Legacy ID (CMND), 9 digits.
    LegacyId,
    /// Full name at birth, with diacritics.
    FullName,
    /// Date of birth, `YYYY-MM-DD`.
    DateOfBirth,
    /// `male` / `female`.
    Sex,
    /// Place of birth registration (decides the ID's province code).
    BirthRegistrationPlace,
    /// Hometown.
    Hometown,
    /// One of the 54 ethnic groups.
    Ethnicity,
    /// Religion.
    Religion,
    /// ISO 3166 alpha-2.
    Nationality,
    /// Marital status.
    MaritalStatus,
    /// Permanent residence.
    PermanentResidence,
    /// Temporary residence.
    TemporaryResidence,
    /// Current residence.
    CurrentResidence,
    /// Blood type, when the citizen asked for it to be recorded.
    BloodType,
    /// Father: `{full_name, id, nationality}`.
    Father,
    /// Mother: likewise.
    Mother,
    /// Spouse: likewise.
    Spouse,
    /// Legal representative: likewise.
    Representative,
    /// Household: `{head_id, head_name, relationship}`.
    Household,
    /// Date of death or declared disappearance.
    DateOfDeath,
    /// Enrolled biometric modalities (never the digests).
    Biometrics,
}

/// Who may read a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScopeClass {
    /// The card's identity: `citizen:read:basic` sees these.
    Basic,
    /// The rest of the record: `citizen:read`.
    Full,
    /// Sensitive personal data in the sense of Decree 13/2023/NĐ-CP
    /// (religion, ethnic origin, health, biometrics): also `citizen:read`
    /// today, marked so that a narrower scope can exclude them.
    Sensitive,
}

/// The scope a caller needs to claim a field in a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClaimScope {
    /// `citizen:verify`: only what the chip card shows (ID, full name, date
    /// of birth, sex, permanent residence) and the legacy ID.
    Verify,
    /// `citizen:verify:extended`: every other claimable field.
    Extended,
}

/// Everything the schema says about one field.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    /// The field.
    pub field: Field,
    /// Its JSON key.
    pub key: &'static str,
    /// `,"key":`, the key as the JSON writer emits it.
    json_prefix: &'static str,
    /// Its CSV columns, in export order.
    pub csv_columns: &'static [&'static str],
    /// Who may read it.
    pub class: ScopeClass,
    /// The scope needed to claim it in a verification; `None`: not claimable.
    pub claim: Option<ClaimScope>,
    /// Whether a registrar may change it with a merge patch (residences,
    /// marital status, name correction, household, relatives, religion,
    /// blood type, and the legacy ID).
    pub changeable: bool,
}

/// One [`FieldSpec`]; the key is written once and the JSON prefix and the
/// CSV columns derive from it.
macro_rules! spec {
    ($field:ident, $key:literal, $class:ident, $claim:expr, $changeable:literal) => {
        spec!(@ $field, $key, &[$key], $class, $claim, $changeable)
    };
    ($field:ident, $key:literal, relative, $class:ident, $claim:expr, $changeable:literal) => {
        spec!(@ $field, $key,
            &[concat!($key, "_full_name"), concat!($key, "_id"), concat!($key, "_nationality")],
            $class, $claim, $changeable)
    };
    (@ $field:ident, $key:literal, $csv:expr, $class:ident, $claim:expr, $changeable:literal) => {
        FieldSpec {
            field: Field::$field,
            key: $key,
            json_prefix: concat!(",\"", $key, "\":"),
            csv_columns: $csv,
            class: ScopeClass::$class,
            claim: $claim,
            changeable: $changeable,
        }
    };
}

const VERIFY: Option<ClaimScope> = Some(ClaimScope::Verify);
const EXTENDED: Option<ClaimScope> = Some(ClaimScope::Extended);

/// The schema, one entry per [`Field`], in [`Field`] order: field, JSON
/// key, read class, claim scope, changeable by a registrar.
#[rustfmt::skip]
pub const SCHEMA: [FieldSpec; 22] = [
    spec!(Id,                     "id",                       Basic,     VERIFY,   false),
    spec!(LegacyId,               "legacy_id",                Full,      VERIFY,   true),
    spec!(FullName,               "full_name",                Basic,     VERIFY,   true),
    spec!(DateOfBirth,            "date_of_birth",            Basic,     VERIFY,   false),
    spec!(Sex,                    "sex",                      Basic,     VERIFY,   false),
    spec!(BirthRegistrationPlace, "birth_registration_place", Full,      EXTENDED, false),
    spec!(Hometown,               "hometown",                 Full,      EXTENDED, false),
    spec!(Ethnicity,              "ethnicity",                Sensitive, EXTENDED, false),
    spec!(Religion,               "religion",                 Sensitive, EXTENDED, true),
    spec!(Nationality,            "nationality",              Basic,     EXTENDED, false),
    spec!(MaritalStatus,          "marital_status",           Full,      EXTENDED, true),
    spec!(PermanentResidence,     "permanent_residence",      Full,      VERIFY,   true),
    spec!(TemporaryResidence,     "temporary_residence",      Full,      EXTENDED, true),
    spec!(CurrentResidence,       "current_residence",        Full,      EXTENDED, true),
    spec!(BloodType,              "blood_type",               Sensitive, EXTENDED, true),
    spec!(Father,                 "father", relative,         Full,      EXTENDED, true),
    spec!(Mother,                 "mother", relative,         Full,      EXTENDED, true),
    spec!(Spouse,                 "spouse", relative,         Full,      EXTENDED, true),
    spec!(Representative,         "representative", relative, Full,      None,     true),
    spec!(@ Household,            "household",
        &["household_head_id", "household_head_name", "household_relationship"],
                                                              Full,      None,     true),
    spec!(DateOfDeath,            "date_of_death",            Full,      EXTENDED, false),
    spec!(@ Biometrics,           "biometrics",
        &["face_template", "fingerprint_template"],           Sensitive, None,     false),
];

// The table is in `Field` order: `Field::spec` indexes it.
const _: () = {
    let mut i = 0;
    while i < SCHEMA.len() {
        assert!(SCHEMA[i].field as usize == i);
        i += 1;
    }
};

/// The keys of a relative's object (`father`, `mother`, `spouse`,
/// `representative`), as the JSON writer emits them.
pub(crate) const RELATIVE_JSON: [&str; 3] = ["{\"full_name\":", ",\"id\":", ",\"nationality\":"];
/// The keys of the household object.
pub(crate) const HOUSEHOLD_JSON: [&str; 3] =
    ["{\"head_id\":", ",\"head_name\":", ",\"relationship\":"];

impl Field {
    /// Every field, in API order.
    pub const ALL: [Field; 22] = {
        let mut all = [Field::Id; 22];
        let mut i = 0;
        while i < SCHEMA.len() {
            all[i] = SCHEMA[i].field;
            i += 1;
        }
        all
    };

    /// What the schema says about this field.
    #[inline]
    pub const fn spec(self) -> &'static FieldSpec {
        &SCHEMA[self as usize]
    }

    /// The JSON key.
    #[inline]
    pub const fn key(self) -> &'static str {
        self.spec().key
    }

    /// `,"key":`: what the JSON writer emits before the value.
    #[inline]
    pub(crate) const fn json_prefix(self) -> &'static [u8] {
        self.spec().json_prefix.as_bytes()
    }

    /// The field with this JSON key.
    pub fn from_key(key: &str) -> Option<Field> {
        SCHEMA.iter().find(|s| s.key == key).map(|s| s.field)
    }

    /// The position of the field's first column in [`CSV_COLUMNS`].
    pub const fn csv_offset(self) -> usize {
        let mut offset = 0;
        let mut i = 0;
        while i < self as usize {
            offset += SCHEMA[i].csv_columns.len();
            i += 1;
        }
        offset
    }
}

/// JSON keys of a record, in the order they are written.
pub const FIELDS: [&str; 22] = {
    let mut keys = [""; 22];
    let mut i = 0;
    while i < SCHEMA.len() {
        keys[i] = SCHEMA[i].key;
        i += 1;
    }
    keys
};

/// Number of CSV columns.
pub const CSV_COLUMN_COUNT: usize = Field::Biometrics.csv_offset() + 2;

/// Every CSV column, in export order.
pub const CSV_COLUMNS: [&str; CSV_COLUMN_COUNT] = {
    let mut columns = [""; CSV_COLUMN_COUNT];
    let mut n = 0;
    let mut i = 0;
    while i < SCHEMA.len() {
        let mut j = 0;
        while j < SCHEMA[i].csv_columns.len() {
            columns[n] = SCHEMA[i].csv_columns[j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == CSV_COLUMN_COUNT);
    columns
};

/// Number of fields a registrar may change by merge patch.
const CHANGEABLE_COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < SCHEMA.len() {
        n += SCHEMA[i].changeable as usize;
        i += 1;
    }
    n
};

/// JSON keys of the fields a registrar may change by merge patch, in
/// [`Field`] order.
pub const CHANGEABLE_KEYS: [&str; CHANGEABLE_COUNT] = {
    let mut keys = [""; CHANGEABLE_COUNT];
    let mut n = 0;
    let mut i = 0;
    while i < SCHEMA.len() {
        if SCHEMA[i].changeable {
            keys[n] = SCHEMA[i].key;
            n += 1;
        }
        i += 1;
    }
    keys
};

/// A set of record fields (a projection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldSet(u32);

impl FieldSet {
    /// Every field.
    pub const ALL: FieldSet = FieldSet((1 << SCHEMA.len()) - 1);
    /// What `citizen:read:basic` may see: the fields of [`ScopeClass::Basic`]
    /// (ID, name, date of birth, sex, nationality).
    pub const BASIC: FieldSet = FieldSet::of_class(ScopeClass::Basic);
    /// The fields of [`ScopeClass::Sensitive`].
    pub const SENSITIVE: FieldSet = FieldSet::of_class(ScopeClass::Sensitive);
    /// No field.
    pub const NONE: FieldSet = FieldSet(0);

    const fn of_class(class: ScopeClass) -> FieldSet {
        let mut set = 0;
        let mut i = 0;
        while i < SCHEMA.len() {
            if SCHEMA[i].class as u8 == class as u8 {
                set |= 1 << i;
            }
            i += 1;
        }
        FieldSet(set)
    }

    /// The set of these fields.
    pub const fn of(fields: &[Field]) -> FieldSet {
        let mut set = 0;
        let mut i = 0;
        while i < fields.len() {
            set |= 1 << fields[i] as u32;
            i += 1;
        }
        FieldSet(set)
    }

    /// Parses a comma-separated list of field names (`?fields=`).
    pub fn parse_list(list: &str) -> Result<FieldSet, String> {
        let mut set = FieldSet::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match Field::from_key(name) {
                Some(f) => set.0 |= 1 << f as u32,
                None => {
                    return Err(format!(
                        "unknown field {name:?} (fields: {})",
                        FIELDS.join(", ")
                    ))
                }
            }
        }
        if set.is_empty() {
            return Err("the field list is empty".into());
        }
        Ok(set)
    }

    /// Fields in either set.
    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }

    /// Fields in both sets.
    pub fn intersect(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & other.0)
    }

    /// Whether every field of `other` is in this set.
    pub fn contains(self, other: FieldSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `field` is in the set.
    #[inline]
    pub fn has(self, field: Field) -> bool {
        self.0 >> field as u32 & 1 == 1
    }

    /// Whether the set has no field.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields in the set, in API order.
    pub fn fields(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |&f| self.has(f))
    }

    /// The names in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.fields().map(Field::key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_lists_follow_the_table() {
        assert_eq!(FIELDS[5], "birth_registration_place");
        assert_eq!(CSV_COLUMNS.len(), 33);
        assert_eq!(CSV_COLUMNS[Field::Father.csv_offset()], "father_full_name");
        assert_eq!(CSV_COLUMNS[32], "fingerprint_template");
        assert_eq!(
            FieldSet::BASIC.names().collect::<Vec<_>>(),
            ["id", "full_name", "date_of_birth", "sex", "nationality"]
        );
        assert_eq!(
            Field::BirthRegistrationPlace.json_prefix(),
            b",\"birth_registration_place\":"
        );
        for f in Field::ALL {
            assert_eq!(Field::from_key(f.key()), Some(f));
        }
    }

    #[test]
    fn plain_verify_may_claim_only_the_cards_fields() {
        let plain: Vec<_> = SCHEMA
            .iter()
            .filter(|s| s.claim == Some(ClaimScope::Verify))
            .map(|s| s.key)
            .collect();
        assert_eq!(
            plain,
            [
                "id",
                "legacy_id",
                "full_name",
                "date_of_birth",
                "sex",
                "permanent_residence"
            ]
        );
    }

    #[test]
    fn changeable_fields_are_what_design_md_lists() {
        let mut keys = CHANGEABLE_KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "blood_type",
                "current_residence",
                "father",
                "full_name",
                "household",
                "legacy_id",
                "marital_status",
                "mother",
                "permanent_residence",
                "religion",
                "representative",
                "spouse",
                "temporary_residence",
            ]
        );
    }

    #[test]
    fn citizen_serde_names_are_the_schema_keys() {
        // A record's serde form (NDJSON import and export) uses the Rust
        // field names of `Citizen`; they must be the schema's keys.
        let c: crate::Citizen = serde_json::from_str(
            r#"{"id":"079089012345","full_name":"A","date_of_birth":"1989-03-14","sex":"male"}"#,
        )
        .unwrap();
        let value = serde_json::to_value(&c).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in FIELDS.iter().filter(|&&k| k != "biometrics") {
            assert!(keys.contains(key), "{key} missing from {keys:?}");
        }
    }
}
