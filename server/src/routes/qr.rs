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

use dancu_engine::{fold, Claims, Date, LegacyId, PersonalId, Sex};
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

fn parse_sex(s: &str) -> Result<Sex, ApiError> {
    match fold(s).as_str() {
        "nam" => Ok(Sex::Male),
        "nu" => Ok(Sex::Female),
        _ => Err(bad_part(4, format!("{s:?} is neither Nam nor Nữ"))),
    }
}

impl QrCard {
    /// Parses a payload; a malformed one is a `400 invalid_qr` naming the
    /// part. Spaces around each part are ignored (scanners add them).
    pub fn parse(payload: &str) -> Result<QrCard, ApiError> {
        let parts: Vec<&str> = payload.trim().split('|').map(str::trim).collect();
        if parts.len() != PARTS.len() {
            return Err(ApiError::bad_request(
                "invalid_qr",
                format!(
                    "the QR text has {} '|'-separated parts, a chip card's has 7: \
                     ID|legacy ID|full name|DOB ddmmyyyy|Nam/Nữ|permanent address|issue date ddmmyyyy",
                    parts.len()
                ),
            ));
        }
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
        Claims {
            full_name: Some(self.full_name.clone()),
            date_of_birth: Some(self.date_of_birth),
            sex: Some(self.sex),
            legacy_id: self.legacy_id,
            permanent_residence: Some(self.permanent_residence.clone()),
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
    let QrBody { qr } = serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?;
    let card = QrCard::parse(&qr)?;
    let claims = card.claims();
    verify_one(
        state,
        access,
        &claims,
        card.legacy_id.map_or(0, LegacyId::get),
    )
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
