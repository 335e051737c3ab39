//! The flat CSV form of a record.
//!
//! One row per citizen, one column per field; the nested relatives and the
//! household become prefixed columns, biometrics two template columns
//! (exports made with `--with-templates`). The columns and their order come
//! from the engine's schema ([`dancu_engine::schema`], [`COLUMNS`]); cell
//! contents are the API's JSON values: IDs as digits, dates `YYYY-MM-DD`,
//! vocabulary words, ISO 3166 alpha-2 countries, 32 hex digits per template.
//! An empty cell is `null`. `id`, `full_name`, `date_of_birth` and `sex`
//! are required.
//!
//! Columns may come in any order and optional ones may be left out; an
//! unknown column is an error. Because an empty cell means `null`, an empty
//! string cannot be expressed (the API never has one).

use std::str::FromStr;

use dancu_engine::schema::{Field, CSV_COLUMNS, CSV_COLUMN_COUNT};
use dancu_engine::{BiometricTemplates, Citizen, Household, Relative};

/// Every column, in export order.
pub const COLUMNS: [&str; CSV_COLUMN_COUNT] = CSV_COLUMNS;

/// Fields whose columns an input must have.
const REQUIRED: [Field; 4] = [Field::Id, Field::FullName, Field::DateOfBirth, Field::Sex];

/// The cells of one record, in [`COLUMNS`] order.
pub fn to_row(c: &Citizen) -> [String; CSV_COLUMN_COUNT] {
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
    positions: [Option<usize>; CSV_COLUMN_COUNT],
    width: usize,
}

impl Header {
    /// Maps a header row; unknown, repeated or missing required columns are
    /// errors.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Header, String> {
        let mut positions = [None; CSV_COLUMN_COUNT];
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
        for field in REQUIRED {
            if positions[field.csv_offset()].is_none() {
                return Err(format!("required column {:?} is missing", field.key()));
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
        // Column `i` of `field` (fields other than relatives, the household
        // and biometrics have one).
        let cell = |field: Field, i: usize| -> Option<&str> {
            self.positions[field.csv_offset() + i]
                .and_then(|at| row.get(at))
                .filter(|s| !s.is_empty())
        };
        let column = |field: Field, i: usize| field.spec().csv_columns[i];
        fn parse<T: FromStr>(name: &str, v: Option<&str>) -> Result<Option<T>, String>
        where
            T::Err: std::fmt::Display,
        {
            v.map(|s| s.parse::<T>().map_err(|e| format!("{name}: {e}")))
                .transpose()
        }
        // A one-column field, parsed.
        macro_rules! value {
            ($field:ident) => {
                parse(Field::$field.key(), cell(Field::$field, 0))
            };
        }
        let required = |field: Field| {
            let v = cell(field, 0).ok_or_else(|| format!("{} is empty", field.key()))?;
            Ok::<_, String>(Some(v))
        };
        let text = |field: Field| cell(field, 0).map(str::to_owned);
        let relative = |field: Field| -> Result<Option<Relative>, String> {
            let name = cell(field, 0);
            let id = parse(column(field, 1), cell(field, 1))?;
            let nationality = parse(column(field, 2), cell(field, 2))?;
            match name {
                Some(n) => Ok(Some(Relative {
                    full_name: n.to_owned(),
                    id,
                    nationality,
                })),
                None if id.is_some() || nationality.is_some() => Err(format!(
                    "{} or {} given without {}",
                    column(field, 1),
                    column(field, 2),
                    column(field, 0)
                )),
                None => Ok(None),
            }
        };
        let h = Field::Household;
        let household = match (cell(h, 0), cell(h, 1), cell(h, 2)) {
            (None, None, None) => None,
            (id, Some(name), Some(rel)) => Some(Household {
                head_id: parse(column(h, 0), id)?,
                head_name: name.to_owned(),
                relationship: parse(column(h, 2), Some(rel))?.expect("given"),
            }),
            _ => return Err(format!("{} and {} go together", column(h, 1), column(h, 2))),
        };
        let b = Field::Biometrics;
        let citizen = Citizen {
            id: parse(Field::Id.key(), required(Field::Id)?)?.expect("given"),
            legacy_id: value!(LegacyId)?,
            full_name: required(Field::FullName)?.expect("given").to_owned(),
            date_of_birth: parse(Field::DateOfBirth.key(), required(Field::DateOfBirth)?)?
                .expect("given"),
            sex: parse(Field::Sex.key(), required(Field::Sex)?)?.expect("given"),
            birth_registration_place: text(Field::BirthRegistrationPlace),
            hometown: text(Field::Hometown),
            ethnicity: value!(Ethnicity)?,
            religion: value!(Religion)?,
            nationality: value!(Nationality)?,
            marital_status: value!(MaritalStatus)?,
            permanent_residence: text(Field::PermanentResidence),
            temporary_residence: text(Field::TemporaryResidence),
            current_residence: text(Field::CurrentResidence),
            blood_type: value!(BloodType)?,
            father: relative(Field::Father)?,
            mother: relative(Field::Mother)?,
            spouse: relative(Field::Spouse)?,
            representative: relative(Field::Representative)?,
            household,
            date_of_death: value!(DateOfDeath)?,
            biometric_templates: BiometricTemplates {
                face: parse(column(b, 0), cell(b, 0))?,
                fingerprint: parse(column(b, 1), cell(b, 1))?,
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
