//! Personal ID numbers (`PPP G YY NNNNNN`) and legacy 9-digit ID numbers.
//!
//! An ID can be rejected as malformed before any lookup: wrong length, a
//! non-digit, a province code that does not exist, or a century digit for a
//! century that has not begun. [`IdError`] names the reason so that an API can
//! return it to the caller.

use std::fmt;
use std::str::FromStr;

use crate::codes::{province_name, ABROAD_CODES};
use crate::vocab::Sex;

/// Why a string is not a valid personal or legacy ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// The ID does not have the required number of characters.
    Length {
        /// Digits required (12 for personal IDs, 9 for legacy IDs).
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// A character that is not an ASCII digit, at this byte position.
    NonDigit {
        /// Zero-based byte position of the first offending character.
        position: usize,
    },
    /// The first three digits are neither one of the 63 province codes nor a
    /// country code (101–295).
    UnknownProvince {
        /// The code found.
        code: u16,
    },
    /// The fourth digit encodes a century that has not begun (4–9 mean
    /// 2100–2399).
    ImpossibleCentury {
        /// The digit found.
        digit: u8,
    },
    /// A legacy ID of all zeros.
    AllZeros,
}

impl IdError {
    /// A short machine-readable reason, as used in API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Length { .. } => "invalid_length",
            IdError::NonDigit { .. } => "non_digit",
            IdError::UnknownProvince { .. } => "unknown_province",
            IdError::ImpossibleCentury { .. } => "impossible_century",
            IdError::AllZeros => "all_zeros",
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IdError::Length { expected, found } => {
                write!(
                    f,
                    "an ID has {expected} digits, this one has {found} characters"
                )
            }
            IdError::NonDigit { position } => {
                write!(f, "character {} is not a digit 0-9", position + 1)
            }
            IdError::UnknownProvince { code } => write!(
                f,
                "{code:03} is neither a province code nor a country code (101-295)"
            ),
            IdError::ImpossibleCentury { digit } => write!(
                f,
                "century/sex digit {digit} stands for a birth year after 2099"
            ),
            IdError::AllZeros => write!(f, "a legacy ID cannot be all zeros"),
        }
    }
}

impl std::error::Error for IdError {}

fn parse_digits(s: &[u8], expected: usize) -> Result<u64, IdError> {
    if s.len() != expected {
        return Err(IdError::Length {
            expected,
            found: s.len(),
        });
    }
    let mut value = 0u64;
    for (position, &b) in s.iter().enumerate() {
        if !b.is_ascii_digit() {
            return Err(IdError::NonDigit { position });
        }
        value = value * 10 + u64::from(b - b'0');
    }
    Ok(value)
}

/// A 12-digit personal ID number, `PPP G YY NNNNNN`, stored as its value.
///
/// Only valid IDs can be built, so every `PersonalId` has a known place code
/// and a century digit of 0–3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersonalId(u64);

impl PersonalId {
    /// Parses 12 ASCII digits.
    pub fn parse(s: &str) -> Result<PersonalId, IdError> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Parses 12 ASCII digits from bytes (a URL path segment, a JSON string).
    pub fn parse_bytes(s: &[u8]) -> Result<PersonalId, IdError> {
        Self::from_u64(parse_digits(s, 12)?)
    }

    /// Checks a numeric value as an ID (used when reading stored IDs).
    pub fn from_u64(value: u64) -> Result<PersonalId, IdError> {
        if value >= 1_000_000_000_000 {
            return Err(IdError::Length {
                expected: 12,
                found: 13,
            });
        }
        let code = (value / 1_000_000_000) as u16;
        if province_name(code).is_none() && !ABROAD_CODES.contains(&code) {
            return Err(IdError::UnknownProvince { code });
        }
        let digit = (value / 100_000_000 % 10) as u8;
        if digit > 3 {
            return Err(IdError::ImpossibleCentury { digit });
        }
        Ok(PersonalId(value))
    }

    /// Builds the ID of a person registered at `place` (province or country
    /// code), of `sex`, born in `birth_year` (1900–2099), with a 6-digit serial.
    pub fn new(place: u16, sex: Sex, birth_year: u16, serial: u32) -> Result<PersonalId, IdError> {
        if !(1900..=2099).contains(&birth_year) {
            return Err(IdError::ImpossibleCentury { digit: 4 });
        }
        let century = u64::from((birth_year - 1900) / 100) * 2 + u64::from(sex == Sex::Female);
        let value = u64::from(place) * 1_000_000_000
            + century * 100_000_000
            + u64::from(birth_year % 100) * 1_000_000
            + u64::from(serial % 1_000_000);
        Self::from_u64(value)
    }

    /// The numeric value (at most 12 digits).
    pub fn get(self) -> u64 {
        self.0
    }

    /// Province code (001–096) or country code (101–295) of birth registration.
    pub fn place_code(self) -> u16 {
        (self.0 / 1_000_000_000) as u16
    }

    /// The sex the century/sex digit encodes.
    pub fn sex(self) -> Sex {
        if (self.0 / 100_000_000) % 2 == 0 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The full birth year the century digit and `YY` encode.
    pub fn birth_year(self) -> u16 {
        let century = (self.0 / 100_000_000 % 10) / 2;
        1900 + century as u16 * 100 + (self.0 / 1_000_000 % 100) as u16
    }

    /// The six random digits.
    pub fn serial(self) -> u32 {
        (self.0 % 1_000_000) as u32
    }

    /// The 12 ASCII digits.
    #[inline]
    pub fn to_digits(self) -> [u8; 12] {
        fixed_digits(self.0)
    }
}

/// The two-digit strings "00" to "99", back to back.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The last `N` decimal digits of `v`, zero-padded, as ASCII (IDs in JSON
/// and in the audit log). Two digits per division: half the dependent
/// divisions of a digit-at-a-time loop.
#[inline]
pub fn fixed_digits<const N: usize>(mut v: u64) -> [u8; N] {
    let mut out = [b'0'; N];
    let mut at = N;
    while at >= 2 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        out[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if at == 1 {
        out[0] = b'0' + (v % 10) as u8;
    }
    out
}

impl fmt::Display for PersonalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

impl FromStr for PersonalId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        PersonalId::parse(s)
    }
}

/// A legacy 9-digit ID number (CMND).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LegacyId(u32);

impl LegacyId {
    /// Parses 9 ASCII digits.
    pub fn parse(s: &str) -> Result<LegacyId, IdError> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Parses 9 ASCII digits from bytes.
    pub fn parse_bytes(s: &[u8]) -> Result<LegacyId, IdError> {
        Self::from_u32(parse_digits(s, 9)? as u32)
    }

    /// Checks a numeric value as a legacy ID.
    pub fn from_u32(value: u32) -> Result<LegacyId, IdError> {
        match value {
            0 => Err(IdError::AllZeros),
            v if v >= 1_000_000_000 => Err(IdError::Length {
                expected: 9,
                found: 10,
            }),
            v => Ok(LegacyId(v)),
        }
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for LegacyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:09}", self.0)
    }
}

impl FromStr for LegacyId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        LegacyId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_digits_match_format() {
        let values = [
            0u64,
            1,
            9,
            10,
            99,
            100,
            123_456_789,
            999_999_999,
            1_000_000_000_000 - 1,
        ];
        for v in values
            .into_iter()
            .chain((0..5000).map(|i| i * 199_990_001 % 1_000_000_000_000))
        {
            assert_eq!(fixed_digits::<12>(v), *format!("{v:012}").as_bytes(), "{v}");
            assert_eq!(
                fixed_digits::<9>(v % 1_000_000_000),
                *format!("{:09}", v % 1_000_000_000).as_bytes()
            );
            assert_eq!(
                fixed_digits::<6>(v % 1_000_000),
                *format!("{:06}", v % 1_000_000).as_bytes()
            );
            assert_eq!(fixed_digits::<1>(v % 10), *format!("{}", v % 10).as_bytes());
        }
    }
    use proptest::prelude::*;

    #[test]
    fn parses_a_real_shape() {
        let id = PersonalId::parse("079089012345").unwrap();
        assert_eq!(id.place_code(), 79);
        assert_eq!(id.sex(), Sex::Male);
        assert_eq!(id.birth_year(), 1989);
        assert_eq!(id.serial(), 12345);
        assert_eq!(id.to_string(), "079089012345");
        let id = PersonalId::parse("001305000001").unwrap();
        assert_eq!((id.sex(), id.birth_year()), (Sex::Female, 2005));
    }

    #[test]
    fn rejects_with_reasons() {
        assert_eq!(
            PersonalId::parse("07908901234"),
            Err(IdError::Length {
                expected: 12,
                found: 11
            })
        );
        assert_eq!(
            PersonalId::parse("07908901234x"),
            Err(IdError::NonDigit { position: 11 })
        );
        assert_eq!(
            PersonalId::parse("07908901234٣").unwrap_err().code(),
            "invalid_length"
        );
        assert_eq!(
            PersonalId::parse("003089012345"),
            Err(IdError::UnknownProvince { code: 3 })
        );
        assert_eq!(
            PersonalId::parse("000089012345"),
            Err(IdError::UnknownProvince { code: 0 })
        );
        assert_eq!(
            PersonalId::parse("296089012345"),
            Err(IdError::UnknownProvince { code: 296 })
        );
        assert!(
            PersonalId::parse("101089012345").is_ok(),
            "country code for a birth abroad"
        );
        assert_eq!(
            PersonalId::parse("079489012345"),
            Err(IdError::ImpossibleCentury { digit: 4 })
        );
        assert_eq!(LegacyId::parse("000000000"), Err(IdError::AllZeros));
        assert_eq!(
            LegacyId::parse("12345678"),
            Err(IdError::Length {
                expected: 9,
                found: 8
            })
        );
        assert_eq!(
            LegacyId::parse("012345678").unwrap().to_string(),
            "012345678"
        );
    }

    proptest! {
        #[test]
        fn new_then_parse_agrees(
            p in 0usize..63, female: bool, year in 1900u16..=2099, serial in 0u32..1_000_000
        ) {
            let place = crate::codes::PROVINCES[p].0;
            let sex = if female { Sex::Female } else { Sex::Male };
            let id = PersonalId::new(place, sex, year, serial).unwrap();
            let back = PersonalId::parse(&id.to_string()).unwrap();
            prop_assert_eq!(back, id);
            prop_assert_eq!((back.place_code(), back.sex(), back.birth_year(), back.serial()),
                            (place, sex, year, serial));
        }

        #[test]
        fn parse_never_panics_and_accepts_only_12_digits(s in "\\PC{0,16}") {
            if let Ok(id) = PersonalId::parse(&s) {
                prop_assert_eq!(s.len(), 12);
                prop_assert_eq!(id.to_string(), s);
            }
        }

        #[test]
        fn digit_strings_classified(v in 0u64..1_000_000_000_000) {
            let s = format!("{v:012}");
            let code = (v / 1_000_000_000) as u16;
            let century = (v / 100_000_000 % 10) as u8;
            let known = province_name(code).is_some() || ABROAD_CODES.contains(&code);
            match PersonalId::parse(&s) {
                Ok(_) => prop_assert!(known && century <= 3),
                Err(IdError::UnknownProvince { .. }) => prop_assert!(!known),
                Err(IdError::ImpossibleCentury { .. }) => prop_assert!(known && century > 3),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }

        #[test]
        fn legacy_round_trip(v in 1u32..1_000_000_000) {
            let id = LegacyId::from_u32(v).unwrap();
            prop_assert_eq!(LegacyId::parse(&id.to_string()).unwrap(), id);
        }
    }
}
