//! The flat CSV form of a record.
//!
//! One row per citizen, one column per field; the nested relatives and the
//! household become prefixed columns. An empty cell is `null`. Columns, in
//! the order an export writes them:
//!
//! | column | content |
//! | --- | --- |
//! | `id` | 12 digits (required) |
//! | `legacy_id` | 9 digits |
//! | `full_name` | with diacritics (required) |
//! | `date_of_birth` | `YYYY-MM-DD` (required) |
//! | `sex` | `male` / `female` (required) |
//! | `birth_registration_place`, `hometown` | text |
//! | `ethnicity` | one of the 54 group names, e.g. `Kinh` |
//! | `religion` | `no_religion`, `catholic`, `buddhist`, `hoa_hao`, `protestant`, `cao_dai`, `islam`, `other` |
//! | `nationality` | ISO 3166 alpha-2, e.g. `VN` |
//! | `marital_status` | `single` / `married` / `divorced` / `widowed` |
//! | `permanent_residence`, `temporary_residence`, `current_residence` | text |
//! | `blood_type` | `O+`, `O-`, `A+`, `A-`, `B+`, `B-`, `AB+`, `AB-` |
//! | `father_full_name`, `father_id`, `father_nationality` | the father (absent when the name is empty) |
//! | `mother_…`, `spouse_…`, `representative_…` | likewise |
//! | `household_head_id`, `household_head_name`, `household_relationship` | `head`, `spouse`, `child`, `parent`, `grandchild`, `grandparent`, `sibling`, `other` |
//! | `date_of_death` | `YYYY-MM-DD` |
//! | `face_template`, `fingerprint_template` | 32 hex digits (exports made with `--with-templates`) |
//!
//! Columns may come in any order and optional ones may be left out; an
//! unknown column is an error. Because an empty cell means `null`, an empty
//! string cannot be expressed (the API never has one).

use std::str::FromStr;

use dancu_engine::{BiometricTemplates, Citizen, Household, Relative};

/// Every column, in export order.
pub const COLUMNS: [&str; 33] = [
    "id",
    "legacy_id",
    "full_name",
    "date_of_birth",
    "sex",
    "birth_registration_place",
    "hometown",
    "ethnicity",
    "religion",
    "nationality",
    "marital_status",
    "permanent_residence",
    "temporary_residence",
    "current_residence",
    "blood_type",
    "father_full_name",
    "father_id",
    "father_nationality",
    "mother_full_name",
    "mother_id",
    "mother_nationality",
    "spouse_full_name",
    "spouse_id",
    "spouse_nationality",
    "representative_full_name",
    "representative_id",
    "representative_nationality",
    "household_head_id",
    "household_head_name",
    "household_relationship",
    "date_of_death",
    "face_template",
    "fingerprint_template",
];

const REQUIRED: [&str; 4] = ["id", "full_name", "date_of_birth", "sex"];

/// The cells of one record, in [`COLUMNS`] order.
pub fn to_row(c: &Citizen) -> [String; 33] {
    fn opt<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map_or_else(String::new, ToString::to_string)
    }
    let rel = |r: &Option<Relative>| -> [String; 3] {
        match r {
            Some(r) => [r.full_name.clone(), opt(&r.id), opt(&r.nationality)],
            None => Default::default(),
        }
    };
    let [f1, f2, f3] = rel(&c.father);
    let [m1, m2, m3] = rel(&c.mother);
    let [s1, s2, s3] = rel(&c.spouse);
    let [r1, r2, r3] = rel(&c.representative);
    let (h1, h2, h3) = match &c.household {
        Some(h) => (
            opt(&h.head_id),
            h.head_name.clone(),
            h.relationship.to_string(),
        ),
        None => Default::default(),
    };
    [
        c.id.to_string(),
        opt(&c.legacy_id),
        c.full_name.clone(),
        c.date_of_birth.to_string(),
        c.sex.to_string(),
        opt(&c.birth_registration_place),
        opt(&c.hometown),
        opt(&c.ethnicity),
        opt(&c.religion),
        opt(&c.nationality),
        opt(&c.marital_status),
        opt(&c.permanent_residence),
        opt(&c.temporary_residence),
        opt(&c.current_residence),
        opt(&c.blood_type),
        f1,
        f2,
        f3,
        m1,
        m2,
        m3,
        s1,
        s2,
        s3,
        r1,
        r2,
        r3,
        h1,
        h2,
        h3,
        opt(&c.date_of_death),
        opt(&c.biometric_templates.face),
        opt(&c.biometric_templates.fingerprint),
    ]
}

/// Where each known column is in an input's header.
#[derive(Clone, Debug)]
pub struct Header {
    positions: [Option<usize>; 33],
    width: usize,
}

impl Header {
    /// Maps a header row; unknown, repeated or missing required columns are
    /// errors.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Header, String> {
        let mut positions = [None; 33];
        let mut width = 0;
        for (i, name) in names.into_iter().enumerate() {
            width = i + 1;
            let name = name.trim().trim_start_matches('\u{feff}');
            let k = COLUMNS.iter().position(|&c| c == name).ok_or_else(|| {
                format!("unknown column {name:?} (known: {})", COLUMNS.join(", "))
            })?;
            if positions[k].replace(i).is_some() {
                return Err(format!("column {name:?} appears twice"));
            }
        }
        for r in REQUIRED {
            let k = COLUMNS
                .iter()
                .position(|&c| c == r)
                .expect("required columns are columns");
            if positions[k].is_none() {
                return Err(format!("required column {r:?} is missing"));
            }
        }
        Ok(Header { positions, width })
    }

    /// Reads one row into a record.
    pub fn parse(&self, row: &csv::StringRecord) -> Result<Citizen, String> {
        if row.len() != self.width {
            return Err(format!(
                "{} cells, the header has {} columns",
                row.len(),
                self.width
            ));
        }
        let cell = |name: &str| -> Option<&str> {
            let k = COLUMNS
                .iter()
                .position(|&c| c == name)
                .expect("a known column");
            self.positions[k]
                .and_then(|i| row.get(i))
                .filter(|s| !s.is_empty())
        };
        fn parse<T: FromStr>(name: &str, v: Option<&str>) -> Result<Option<T>, String>
        where
            T::Err: std::fmt::Display,
        {
            v.map(|s| s.parse::<T>().map_err(|e| format!("{name}: {e}")))
                .transpose()
        }
        let required = |name: &str| cell(name).ok_or_else(|| format!("{name} is empty"));
        let text = |name: &str| cell(name).map(str::to_owned);
        let relative = |p: &str| -> Result<Option<Relative>, String> {
            let name = cell(&format!("{p}_full_name"));
            let id = parse(&format!("{p}_id"), cell(&format!("{p}_id")))?;
            let nationality = parse(
                &format!("{p}_nationality"),
                cell(&format!("{p}_nationality")),
            )?;
            match name {
                Some(n) => Ok(Some(Relative {
                    full_name: n.to_owned(),
                    id,
                    nationality,
                })),
                None if id.is_some() || nationality.is_some() => Err(format!(
                    "{p}_id or {p}_nationality given without {p}_full_name"
                )),
                None => Ok(None),
            }
        };
        let household = match (
            cell("household_head_id"),
            cell("household_head_name"),
            cell("household_relationship"),
        ) {
            (None, None, None) => None,
            (id, Some(name), Some(rel)) => Some(Household {
                head_id: parse("household_head_id", id)?,
                head_name: name.to_owned(),
                relationship: parse("household_relationship", Some(rel))?.expect("given"),
            }),
            _ => return Err("household_head_name and household_relationship go together".into()),
        };
        let citizen = Citizen {
            id: parse("id", Some(required("id")?))?.expect("given"),
            legacy_id: parse("legacy_id", cell("legacy_id"))?,
            full_name: required("full_name")?.to_owned(),
            date_of_birth: parse("date_of_birth", Some(required("date_of_birth")?))?
                .expect("given"),
            sex: parse("sex", Some(required("sex")?))?.expect("given"),
            birth_registration_place: text("birth_registration_place"),
            hometown: text("hometown"),
            ethnicity: parse("ethnicity", cell("ethnicity"))?,
            religion: parse("religion", cell("religion"))?,
            nationality: parse("nationality", cell("nationality"))?,
            marital_status: parse("marital_status", cell("marital_status"))?,
            permanent_residence: text("permanent_residence"),
            temporary_residence: text("temporary_residence"),
            current_residence: text("current_residence"),
            blood_type: parse("blood_type", cell("blood_type"))?,
            father: relative("father")?,
            mother: relative("mother")?,
            spouse: relative("spouse")?,
            representative: relative("representative")?,
            household,
            date_of_death: parse("date_of_death", cell("date_of_death"))?,
            biometric_templates: BiometricTemplates {
                face: parse("face_template", cell("face_template"))?,
                fingerprint: parse("fingerprint_template", cell("fingerprint_template"))?,
            },
            enrolled_modalities_ignored: None,
        };
        Ok(citizen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let header = Header::new(COLUMNS).unwrap();
        for c in crate::synth::generate_chunk(300, 1, 0) {
            let row = csv::StringRecord::from(to_row(&c).to_vec());
            assert_eq!(header.parse(&row).unwrap(), c);
        }
    }

    #[test]
    fn headers_and_cells_are_checked() {
        assert!(Header::new(["id", "full_name", "date_of_birth"])
            .unwrap_err()
            .contains("sex"));
        assert!(
            Header::new(["id", "full_name", "date_of_birth", "sex", "shoe_size"])
                .unwrap_err()
                .contains("unknown column")
        );
        let h = Header::new(["sex", "id", "date_of_birth", "full_name", "father_id"]).unwrap();
        let ok =
            csv::StringRecord::from(vec!["female", "079189012345", "1989-03-14", "Lê Thị B", ""]);
        assert_eq!(h.parse(&ok).unwrap().full_name, "Lê Thị B");
        let bad =
            csv::StringRecord::from(vec!["female", "07918901234", "1989-03-14", "Lê Thị B", ""]);
        assert!(h.parse(&bad).unwrap_err().starts_with("id:"));
        let orphan_id = csv::StringRecord::from(vec![
            "female",
            "079189012345",
            "1989-03-14",
            "Lê Thị B",
            "079089012345",
        ]);
        assert!(h
            .parse(&orphan_id)
            .unwrap_err()
            .contains("father_full_name"));
    }
}
