//! `POST /v1/qr:verify`: is this chip card's data the register's?
//!
//! Checkpoints scan the card's QR code, whose text is
//! `ID|legacy ID|full name|DOB ddmmyyyy|Nam/Nữ|permanent address|issue date ddmmyyyy`
//! (DESIGN.md). The card's fields are compared as `citizens:verify`
//! compares claims — names and the address folded, since scanners drop
//! diacritics and add spaces — so the route fits the `citizen:verify`
//! scope: it checks only what the card holder already shows. The answer is
//! one boolean per card field plus `alive`, and `alive` is told only when
//! every field of the card matched (a caller who merely knows an ID learns
//! nothing from `citizens:verify` about life or death, and must not learn
//! it here either). Mismatches count towards the same per-subject throttle
//! as `citizens:verify`.

use dancu_engine::{names_match, Claims, Date, LegacyId, PersonalId, Sex};
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::body::HttpResponse;
use crate::routes::verify::verify_one;
use crate::state::{Access, State};

/// The parts of the payload, in order, as named in error messages.
const PARTS: [&str; 7] = [
    "ID",
    "legacy ID",
    "full name",
    "date of birth",
    "sex",
    "permanent address",
    "issue date",
];

/// What a chip card's QR code says, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrCard {
    /// The personal ID.
    pub id: PersonalId,
    /// The legacy 9-digit ID, when the card prints one.
    pub legacy_id: Option<LegacyId>,
    /// The full name as printed.
    pub full_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Sex (`Nam` / `Nữ`).
    pub sex: Sex,
    /// Permanent address as printed.
    pub permanent_residence: String,
    /// Date of issue: validated, never compared (the register holds no
    /// card issue dates).
    pub issue_date: Date,
}

fn bad_part(part: usize, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "invalid_qr",
        format!("QR part {} ({}): {why}", part + 1, PARTS[part]),
    )
}

/// A `ddmmyyyy` date.
fn parse_card_date(s: &str, part: usize) -> Result<Date, ApiError> {
    let b = s.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return Err(bad_part(part, format!("{s:?} is not 8 digits ddmmyyyy")));
    }
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (day, month, year) = (num(0..2), num(2..4), num(4..8));
    // Both fit in u8: two decimal digits.
    Date::new(year, month as u8, day as u8).map_err(|e| bad_part(part, e))
}

/// `Nam` or `Nữ`, compared folded (`NAM`, `Nu`, `NỮ` …) without building
/// the folded string.
fn parse_sex(s: &str) -> Result<Sex, ApiError> {
    if names_match(s, "nam") {
        Ok(Sex::Male)
    } else if names_match(s, "nu") {
        Ok(Sex::Female)
    } else {
        Err(bad_part(4, format!("{s:?} is neither Nam nor Nữ")))
    }
}

/// The payload's `|`-separated parts, trimmed, when there are exactly
/// seven; else how many there are.
fn split_parts(payload: &str) -> Result<[&str; 7], usize> {
    let mut parts = [""; 7];
    let mut n = 0;
    for part in payload.trim().split('|') {
        if let Some(slot) = parts.get_mut(n) {
            *slot = part.trim();
        }
        n += 1;
    }
    if n == parts.len() {
        Ok(parts)
    } else {
        Err(n)
    }
}

impl QrCard {
    /// Parses a payload; a malformed one is a `400 invalid_qr` naming the
    /// part. Spaces around each part are ignored (scanners add them).
    pub fn parse(payload: &str) -> Result<QrCard, ApiError> {
        let parts = split_parts(payload).map_err(|n| {
            ApiError::bad_request(
                "invalid_qr",
                format!(
                    "the QR text has {n} '|'-separated parts, a chip card's has 7: \
                     ID|legacy ID|full name|DOB ddmmyyyy|Nam/Nữ|permanent address|issue date ddmmyyyy"
                ),
            )
        })?;
        let id = PersonalId::parse(parts[0]).map_err(|e| bad_part(0, e))?;
        let legacy_id = match parts[1] {
            "" => None,
            legacy => Some(LegacyId::parse(legacy).map_err(|e| bad_part(1, e))?),
        };
        let non_empty = |i: usize| {
            if parts[i].is_empty() {
                Err(bad_part(i, "is empty"))
            } else {
                Ok(parts[i].to_owned())
            }
        };
        Ok(QrCard {
            id,
            legacy_id,
            full_name: non_empty(2)?,
            date_of_birth: parse_card_date(parts[3], 3)?,
            sex: parse_sex(parts[4])?,
            permanent_residence: non_empty(5)?,
            issue_date: parse_card_date(parts[6], 6)?,
        })
    }

    /// The card's fields as claims (all within `citizen:verify`'s policy;
    /// no legacy-ID claim when the card prints none).
    pub fn claims(&self) -> Claims {
        self.clone().into_claims()
    }

    /// [`QrCard::claims`], moving the card's strings instead of copying
    /// them.
    pub fn into_claims(self) -> Claims {
        Claims {
            full_name: Some(self.full_name),
            date_of_birth: Some(self.date_of_birth),
            sex: Some(self.sex),
            legacy_id: self.legacy_id,
            permanent_residence: Some(self.permanent_residence),
            ..Claims::about(self.id)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QrBody {
    qr: String,
}

/// `POST /v1/qr:verify`.
pub fn qr_verify(state: &State, access: Access<'_>, body: &[u8]) -> Result<HttpResponse, ApiError> {
    // The usual body (no escapes) is read in place; serde reads the rest
    // and words the errors.
    let card = match crate::fastpath::qr(body) {
        Some(qr) => QrCard::parse(qr)?,
        None => {
            let QrBody { qr } = serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?;
            QrCard::parse(&qr)?
        }
    };
    let legacy_id = card.legacy_id.map_or(0, LegacyId::get);
    verify_one(state, access, &card.into_claims(), legacy_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    const CARD: &str =
        "079089012345|123456789|Nguyễn Văn An|14031989|Nam|12 Lê Lợi, Quận 1, Hồ Chí Minh|01072021";

    #[test]
    fn parses_a_card_with_spaces_and_without_diacritics() {
        let card = QrCard::parse(CARD).unwrap();
        assert_eq!(card.date_of_birth, Date::new(1989, 3, 14).unwrap());
        assert_eq!(card.sex, Sex::Male);
        let loose =
            QrCard::parse(" 079089012345 | | NGUYEN  VAN AN |14031989| NU |12 Le Loi|01072021 ")
                .unwrap();
        assert_eq!(loose.legacy_id, None);
        assert_eq!(loose.sex, Sex::Female);
        assert_eq!(loose.full_name, "NGUYEN  VAN AN");
    }

    proptest::proptest! {
        /// The parts as the route split them before (a `Vec` of trimmed
        /// parts, then a count check), and the sex as it was read (the
        /// folded word), on any text.
        #[test]
        fn splits_and_reads_sex_as_before(
            payload in "[ |a-zA-Z0-9\u{00A0}\u{1EEE}\u{1EEF}\u{0303}]{0,30}",
        ) {
            let old: Vec<&str> = payload.trim().split('|').map(str::trim).collect();
            match split_parts(&payload) {
                Ok(parts) => proptest::prop_assert_eq!(&old[..], &parts[..]),
                Err(n) => {
                    proptest::prop_assert_ne!(old.len(), 7);
                    proptest::prop_assert_eq!(old.len(), n);
                }
            }
            let old_sex = match dancu_engine::fold(&payload).as_str() {
                "nam" => Some(Sex::Male),
                "nu" => Some(Sex::Female),
                _ => None,
            };
            proptest::prop_assert_eq!(parse_sex(&payload).ok(), old_sex);
        }
    }

    #[test]
    fn reads_sex_words_as_scanners_print_them() {
        for (word, sex) in [
            ("Nam", Sex::Male),
            (" NAM ", Sex::Male),
            ("Nữ", Sex::Female),
            ("NU", Sex::Female),
            ("nu\u{0303}", Sex::Female),
        ] {
            assert_eq!(parse_sex(word).ok(), Some(sex), "{word}");
        }
        assert!(parse_sex("Nam Nữ").is_err());
    }

    #[test]
    fn names_the_malformed_part() {
        let cases = [
            ("079089012345|123456789|A|14031989|Nam|X", "7"),
            (
                "07908901234|123456789|A|14031989|Nam|X|01072021",
                "part 1 (ID)",
            ),
            (
                "079089012345|12345|A|14031989|Nam|X|01072021",
                "part 2 (legacy ID)",
            ),
            (
                "079089012345||  |14031989|Nam|X|01072021",
                "part 3 (full name)",
            ),
            (
                "079089012345||A|31021989|Nam|X|01072021",
                "part 4 (date of birth)",
            ),
            (
                "079089012345||A|1989-03-14|Nam|X|01072021",
                "part 4 (date of birth)",
            ),
            ("079089012345||A|14031989|M|X|01072021", "part 5 (sex)"),
            (
                "079089012345||A|14031989|Nam||01072021",
                "part 6 (permanent address)",
            ),
            ("079089012345||A|14031989|Nam|X|", "part 7 (issue date)"),
        ];
        for (payload, part) in cases {
            let e = QrCard::parse(payload).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{payload}");
            assert_eq!(e.code(), "invalid_qr");
            let mut out = Vec::new();
            e.write_object(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains(part), "{payload}: {text}");
        }
    }
}
