//! The record schema: one citizen's 17 fields, plus legacy ID and biometric
//! enrolment, as owned, typed values.
//!
//! [`Citizen`] is what generators and importers produce and what the builder
//! consumes; its serde form uses the API's JSON field names, so an NDJSON line
//! of an export is one `Citizen`. The snapshot's zero-copy view of a stored
//! record is [`crate::CitizenView`].

use std::fmt;
use std::str::FromStr;

use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codes;
use crate::id::{LegacyId, PersonalId};
use crate::vocab::{invalid, string_serde};
pub use crate::vocab::{BloodType, MaritalStatus, Modality, Relationship, SchemaError, Sex};

/// A calendar date (proleptic Gregorian), years 1800–2399.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A checked date.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, SchemaError> {
        if !(1800..=2399).contains(&year) {
            return Err(invalid(format!("year {year} is outside 1800-2399")));
        }
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(invalid(format!(
                "{year:04}-{month:02}-{day:02} is not a date"
            )));
        }
        Ok(Date { year, month, day })
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, 1–31.
    pub fn day(self) -> u8 {
        self.day
    }

    /// The packed form stored in records: `year << 9 | month << 5 | day`;
    /// never 0, so 0 can mean "no date".
    pub fn to_packed(self) -> u32 {
        u32::from(self.year) << 9 | u32::from(self.month) << 5 | u32::from(self.day)
    }

    /// Unpacks a stored date; `None` for 0 or an impossible value.
    #[inline]
    pub fn from_packed(v: u32) -> Option<Date> {
        let year = u16::try_from(v >> 9).ok()?;
        let (month, day) = ((v >> 5 & 0xF) as u8, (v & 0x1F) as u8);
        // The checks of `new` without building its error: this runs for
        // every date read from a snapshot.
        let valid = (1800..=2399).contains(&year)
            && (1..=12).contains(&month)
            && day != 0
            && day <= days_in_month(year, month);
        valid.then_some(Date { year, month, day })
    }

    /// `YYYY-MM-DD` as ASCII bytes.
    pub fn to_iso(self) -> [u8; 10] {
        let mut b = *b"0000-00-00";
        let y = self.year;
        b[0] += (y / 1000) as u8;
        b[1] += (y / 100 % 10) as u8;
        b[2] += (y / 10 % 10) as u8;
        b[3] += (y % 10) as u8;
        b[5] += self.month / 10;
        b[6] += self.month % 10;
        b[8] += self.day / 10;
        b[9] += self.day % 10;
        b
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Date, SchemaError> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u16> {
            b.get(r)?.iter().try_fold(0u16, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
            })
        };
        let parsed = (b.len() == 10 && b[4] == b'-' && b[7] == b'-')
            .then(|| Some((digits(0..4)?, digits(5..7)?, digits(8..10)?)))
            .flatten();
        match parsed {
            Some((y, m, d)) => Date::new(y, m as u8, d as u8),
            None => Err(invalid(format!(
                "{s:?} is not a date in the form YYYY-MM-DD"
            ))),
        }
    }

    /// Days since 1970-01-01 (negative before), for age arithmetic.
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Result<Date, SchemaError> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::new(
            u16::try_from(year).map_err(|_| invalid("year out of range"))?,
            month,
            day,
        )
    }
}

#[inline]
fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Date, SchemaError> {
        Date::parse(s)
    }
}

/// One of the 54 ethnic groups (see [`codes::ETHNIC_GROUPS`]); JSON is the
/// group's name, e.g. `"Kinh"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ethnicity(u8);

impl Ethnicity {
    /// The group with this code (1–54).
    pub fn from_code(code: u8) -> Option<Ethnicity> {
        codes::ethnicity_name(code).map(|_| Ethnicity(code))
    }

    /// The code, 1–54.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The group's name.
    pub fn as_str(self) -> &'static str {
        codes::ethnicity_name(self.0).expect("an Ethnicity holds a valid code")
    }
}

impl fmt::Display for Ethnicity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Ethnicity {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Ethnicity, SchemaError> {
        codes::ethnicity_code(s)
            .map(Ethnicity)
            .ok_or_else(|| invalid(format!("{s:?} is not one of the 54 ethnic groups")))
    }
}
string_serde!(Ethnicity);

/// A religion (see [`codes::RELIGIONS`]); JSON is its key, e.g. `"catholic"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Religion(u8);

impl Religion {
    /// No religion (includes folk belief without a registered religion).
    pub const NONE: Religion = Religion(0);

    /// The religion with this code (0–7).
    pub fn from_code(code: u8) -> Option<Religion> {
        codes::religion_name(code).map(|_| Religion(code))
    }

    /// The code.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The JSON key.
    pub fn as_str(self) -> &'static str {
        codes::religion_name(self.0).expect("a Religion holds a valid code")
    }
}

impl fmt::Display for Religion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Religion {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Religion, SchemaError> {
        codes::religion_code(s).map(Religion).ok_or_else(|| {
            invalid(format!(
                "{s:?} is not a religion key ({})",
                codes::RELIGIONS.join(", ")
            ))
        })
    }
}
string_serde!(Religion);

/// A nationality as an ISO 3166-1 alpha-2 code, e.g. `"VN"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Country([u8; 2]);

impl Country {
    /// Viet Nam.
    pub const VN: Country = Country(*b"VN");

    /// Two upper-case ASCII letters.
    pub fn new(code: [u8; 2]) -> Option<Country> {
        code.iter()
            .all(u8::is_ascii_uppercase)
            .then_some(Country(code))
    }

    /// The two letters.
    pub fn bytes(self) -> [u8; 2] {
        self.0
    }

    /// The two letters as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a Country holds two ASCII letters")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Country {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Country, SchemaError> {
        <[u8; 2]>::try_from(s.as_bytes())
            .ok()
            .and_then(Country::new)
            .ok_or_else(|| {
                invalid(format!(
                    "{s:?} is not an ISO 3166 alpha-2 country code like \"VN\""
                ))
            })
    }
}
string_serde!(Country);
string_serde!(Date);

impl Serialize for PersonalId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PersonalId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PersonalId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        PersonalId::parse(&s).map_err(|e| de::Error::custom(format!("ID {s:?}: {e}")))
    }
}

impl Serialize for LegacyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LegacyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LegacyId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        LegacyId::parse(&s).map_err(|e| de::Error::custom(format!("legacy ID {s:?}: {e}")))
    }
}

/// A 128-bit protected template identifier (ISO/IEC 24745): what is looked up
/// by exact match. JSON: 32 lower-case hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateDigest(pub [u8; 16]);

impl TemplateDigest {
    /// Parses 32 hex digits (either case).
    pub fn parse_hex(s: &str) -> Result<TemplateDigest, SchemaError> {
        let b = s.as_bytes();
        if b.len() != 32 {
            return Err(invalid(format!(
                "a template hash has 32 hex digits, this one has {} characters",
                b.len()
            )));
        }
        let mut out = [0u8; 16];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hex = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
            match (hex(pair[0]), hex(pair[1])) {
                (Some(h), Some(l)) => out[i] = h << 4 | l,
                _ => {
                    return Err(invalid(format!(
                        "template hash character {} is not hex",
                        2 * i + 1
                    )))
                }
            }
        }
        Ok(TemplateDigest(out))
    }
}

impl fmt::Display for TemplateDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for TemplateDigest {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<TemplateDigest, SchemaError> {
        TemplateDigest::parse_hex(s)
    }
}
string_serde!(TemplateDigest);

/// A father, mother, spouse or legal representative.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relative {
    /// Full name.
    pub full_name: String,
    /// Personal ID, when the person has one.
    pub id: Option<PersonalId>,
    /// Nationality.
    pub nationality: Option<Country>,
}

/// Membership of a household.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Household {
    /// Personal ID of the head of the household.
    pub head_id: Option<PersonalId>,
    /// Name of the head.
    pub head_name: String,
    /// Relationship of this citizen to the head.
    pub relationship: Relationship,
}

/// Biometric enrolment: one protected template identifier per modality.
/// Never part of an API response; carried by exports made for re-import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiometricTemplates {
    /// Face template identifier.
    #[serde(default)]
    pub face: Option<TemplateDigest>,
    /// Fingerprint template identifier.
    #[serde(default)]
    pub fingerprint: Option<TemplateDigest>,
}

impl BiometricTemplates {
    /// The digest of one modality.
    pub fn get(&self, modality: Modality) -> Option<TemplateDigest> {
        match modality {
            Modality::Face => self.face,
            Modality::Fingerprint => self.fingerprint,
        }
    }
}

/// One citizen's record, owned. Field names and JSON forms are those of the
/// API; a field that is unknown or does not apply is `None` (JSON `null`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Citizen {
    /// Personal ID number.
    pub id: PersonalId,
    /// Legacy 9-digit ID, for those who had the old card.
    pub legacy_id: Option<LegacyId>,
    /// Full name at birth, with diacritics.
    pub full_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Sex.
    pub sex: Sex,
    /// Place of birth registration (an address).
    pub birth_registration_place: Option<String>,
    /// Hometown (quê quán).
    pub hometown: Option<String>,
    /// Ethnic group.
    pub ethnicity: Option<Ethnicity>,
    /// Religion.
    pub religion: Option<Religion>,
    /// Nationality.
    pub nationality: Option<Country>,
    /// Marital status.
    pub marital_status: Option<MaritalStatus>,
    /// Permanent residence (thường trú).
    pub permanent_residence: Option<String>,
    /// Temporary residence (tạm trú).
    pub temporary_residence: Option<String>,
    /// Current residence (nơi ở hiện tại).
    pub current_residence: Option<String>,
    /// Blood type, only if the citizen asked for it to be recorded.
    pub blood_type: Option<BloodType>,
    /// Father.
    pub father: Option<Relative>,
    /// Mother.
    pub mother: Option<Relative>,
    /// Spouse.
    pub spouse: Option<Relative>,
    /// Legal representative.
    pub representative: Option<Relative>,
    /// Household membership.
    pub household: Option<Household>,
    /// Date of death or of declared disappearance.
    pub date_of_death: Option<Date>,
    /// Enrolled biometric template identifiers (not served by the API).
    #[serde(default)]
    pub biometric_templates: BiometricTemplates,
    /// The API's list of enrolled modalities, accepted and ignored on input
    /// (it follows from `biometric_templates`).
    #[serde(default, skip_serializing, rename = "biometrics")]
    pub enrolled_modalities_ignored: Option<Ignored>,
}

/// A JSON value that is accepted and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ignored, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

impl Citizen {
    /// Checks what the types alone cannot: the ID's sex and birth-year digits
    /// agree with the record, names are present, dates are in order.
    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.id.sex() != self.sex {
            return Err(invalid(format!(
                "ID {} encodes sex {} but the record says {}",
                self.id,
                self.id.sex(),
                self.sex
            )));
        }
        if self.id.birth_year() != self.date_of_birth.year() {
            return Err(invalid(format!(
                "ID {} encodes birth year {} but the date of birth is {}",
                self.id,
                self.id.birth_year(),
                self.date_of_birth
            )));
        }
        if self.full_name.trim().is_empty() {
            return Err(invalid(format!("ID {}: full_name is empty", self.id)));
        }
        if let Some(death) = self.date_of_death {
            if death < self.date_of_birth {
                return Err(invalid(format!(
                    "ID {}: date_of_death is before date_of_birth",
                    self.id
                )));
            }
        }
        Ok(())
    }

    /// The enrolled modalities, in order.
    pub fn enrolled(&self) -> impl Iterator<Item = Modality> + '_ {
        Modality::ALL
            .iter()
            .copied()
            .filter(|&m| self.biometric_templates.get(m).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_pack_parse_and_count_days() {
        let d = Date::parse("1989-03-14").unwrap();
        assert_eq!(Date::from_packed(d.to_packed()), Some(d));
        assert_eq!(&d.to_iso(), b"1989-03-14");
        assert_eq!(
            Date::from_days_since_epoch(d.days_since_epoch()).unwrap(),
            d
        );
        assert_eq!(Date::parse("1970-01-01").unwrap().days_since_epoch(), 0);
        assert!(Date::parse("2023-02-29").is_err());
        assert!(Date::parse("2024-02-29").is_ok());
        assert!(Date::parse("1989-3-14").is_err());
        assert_eq!(Date::from_packed(0), None);
    }

    #[test]
    fn vocabularies_round_trip() {
        for &b in BloodType::ALL {
            assert_eq!(BloodType::from_code(b.code()), Some(b));
            assert_eq!(b.as_str().parse::<BloodType>().unwrap(), b);
        }
        assert!("O".parse::<BloodType>().is_err());
        assert_eq!("Kinh".parse::<Ethnicity>().unwrap().code(), 1);
        assert_eq!(
            TemplateDigest::parse_hex(&"aB".repeat(16))
                .unwrap()
                .to_string(),
            "ab".repeat(16)
        );
        assert!(TemplateDigest::parse_hex("zz").is_err());
    }

    #[test]
    fn citizen_json_uses_api_names_and_nulls() {
        let c = Citizen {
            id: PersonalId::parse("079089012345").unwrap(),
            legacy_id: None,
            full_name: "Nguyễn Văn An".into(),
            date_of_birth: Date::parse("1989-03-14").unwrap(),
            sex: Sex::Male,
            birth_registration_place: None,
            hometown: None,
            ethnicity: Some("Kinh".parse().unwrap()),
            religion: Some(Religion::NONE),
            nationality: Some(Country::VN),
            marital_status: None,
            permanent_residence: None,
            temporary_residence: None,
            current_residence: None,
            blood_type: None,
            father: None,
            mother: None,
            spouse: None,
            representative: None,
            household: None,
            date_of_death: None,
            biometric_templates: BiometricTemplates::default(),
            enrolled_modalities_ignored: None,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""legacy_id":null"#), "{json}");
        assert!(json.contains(r#""ethnicity":"Kinh""#), "{json}");
        let back: Citizen = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        c.validate().unwrap();
        let mut wrong = c.clone();
        wrong.sex = Sex::Female;
        assert!(wrong.validate().is_err());
    }
}
