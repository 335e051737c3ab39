//! Reading rows: the CSV header, then one [`MatchRow`] per record, from
//! either format. A row that cannot be read is refused with the reason and
//! never stops the stream.

use std::borrow::Cow;
use std::str::FromStr;

use dancu_engine::codes::{ABROAD_CODES, PROVINCES};
use dancu_engine::matching::{IdClaim, MatchRow, Refusal, MATCH_COLUMNS};
use dancu_engine::{fold, Date, PersonalId, Sex};

use super::json_row::{read_json_row, utf8};
use super::records::trim_record;
use crate::error::{Error, Result};
use crate::import::Format;

/// Why a field or row cannot be read, for the row's error line.
pub(super) type FieldError = String;

/// The [`MATCH_COLUMNS`] index of `province`.
pub(super) const PROVINCE: usize = 5;

/// Reads rows: the CSV header first (for CSV), then one [`MatchRow`] per
/// record.
#[derive(Clone, Debug)]
pub struct RowParser {
    format: Format,
    /// For CSV: the [`MATCH_COLUMNS`] index of each column; `None` until
    /// the header is read.
    columns: Option<Vec<usize>>,
    pub(super) rows: u64,
    /// Decoded JSON strings (those with escapes), kept between rows.
    scratch: String,
}

/// Why a column or key cannot be claimed in a match.
fn beyond_match(column: &str) -> String {
    format!(
        "column {column:?} is not a match column (a match may claim only the card's fields: \
         id, full_name, date_of_birth, sex, permanent_residence; and filter by province)"
    )
}

/// The [`MATCH_COLUMNS`] index of a column or key.
pub(super) fn column_of(name: &str) -> std::result::Result<usize, FieldError> {
    MATCH_COLUMNS
        .iter()
        .position(|&c| c == name)
        .ok_or_else(|| beyond_match(name))
}

impl RowParser {
    /// A parser of `format` input.
    pub fn new(format: Format) -> RowParser {
        RowParser {
            format,
            columns: None,
            rows: 0,
            scratch: String::new(),
        }
    }

    /// Rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// A parser of the same input (format and CSV header) whose next row
    /// is numbered `first_row`: for a block of rows read elsewhere.
    pub(super) fn continuing_at(&self, first_row: u64) -> RowParser {
        RowParser {
            format: self.format,
            columns: self.columns.clone(),
            rows: first_row - 1,
            scratch: String::new(),
        }
    }

    /// Whether the next record is a CSV header still to be read.
    pub fn wants_header(&self) -> bool {
        self.format == Format::Csv && self.columns.is_none()
    }

    /// Reads a CSV header record: every column must be a match column
    /// ([`MATCH_COLUMNS`]), each at most once.
    pub fn read_header(&mut self, record: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(trim_record(record))
            .map_err(|_| Error::BadHeader("the header is not UTF-8".into()))?;
        let mut columns = Vec::new();
        for field in CsvFields::new(text) {
            let name = field.trim();
            let at = column_of(name).map_err(Error::BadHeader)?;
            if columns.contains(&at) {
                return Err(Error::BadHeader(format!("column {name:?} appears twice")));
            }
            columns.push(at);
        }
        self.columns = Some(columns);
        Ok(())
    }

    /// Reads one record (without its line feed) into `row`, numbering it;
    /// a record that cannot be read leaves `row` refused.
    pub fn read_row(&mut self, record: &[u8], row: &mut MatchRow) {
        self.rows += 1;
        row.clear(self.rows);
        let record = trim_record(record);
        let result = if record.iter().all(u8::is_ascii_whitespace) {
            Err("the row is empty".into())
        } else {
            match self.format {
                Format::Ndjson => read_json_row(record, row, &mut self.scratch),
                Format::Csv => match utf8(record, 0) {
                    Err(e) => Err(e),
                    Ok(text) => self.read_csv_row(text, row),
                },
            }
        };
        match result {
            Ok(()) => row.check_claims(),
            Err(message) => row.refused = Some(Refusal::invalid("invalid_row", message)),
        }
    }

    fn read_csv_row(&self, text: &str, row: &mut MatchRow) -> std::result::Result<(), FieldError> {
        let columns = self
            .columns
            .as_deref()
            .ok_or_else(|| "no CSV header".to_string())?;
        let mut n = 0;
        for (i, field) in CsvFields::new(text).enumerate() {
            let column = *columns
                .get(i)
                .ok_or_else(|| format!("{} fields, the header has {}", i + 1, columns.len()))?;
            set_field(row, column, &field)?;
            n = i + 1;
        }
        if n != columns.len() {
            return Err(format!("{n} fields, the header has {}", columns.len()));
        }
        Ok(())
    }
}

/// Sets column `column` (a [`MATCH_COLUMNS`] index) of `row` from its text;
/// an empty value claims nothing.
pub(super) fn set_field(
    row: &mut MatchRow,
    column: usize,
    value: &str,
) -> std::result::Result<(), FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(());
    }
    let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", MATCH_COLUMNS[column]);
    match column {
        0 => {
            row.id = match PersonalId::parse(value) {
                Ok(id) => IdClaim::Given(id),
                Err(e) => IdClaim::Malformed(e),
            }
        }
        1 => row.full_name.push_str(value),
        2 => row.date_of_birth = Some(Date::from_str(value).map_err(|e| bad(&e))?),
        3 => row.sex = Some(Sex::from_str(value).map_err(|e| bad(&e))?),
        4 => row.permanent_residence.push_str(value),
        _ => row.province = Some(province_code(value)?),
    }
    Ok(())
}

/// Sets the province of `row` from a numeric code.
pub(super) fn set_province_code(
    row: &mut MatchRow,
    code: u16,
) -> std::result::Result<(), FieldError> {
    let known = PROVINCES.iter().any(|&(c, _)| c == code) || ABROAD_CODES.contains(&code);
    if !known {
        return Err(format!(
            "province: {code} is not a province or country code"
        ));
    }
    row.province = Some(code);
    Ok(())
}

/// A province given as its three-digit code (`079`, `79`) or its name in
/// any spelling (`TP. Hồ Chí Minh`, `ha noi`); a country code (101–295)
/// stands for births abroad.
fn province_code(value: &str) -> std::result::Result<u16, FieldError> {
    if let Ok(code) = value.parse::<u16>() {
        let mut row = MatchRow::default();
        return set_province_code(&mut row, code)
            .map(|()| code)
            .map_err(|_| format!("province: {value} is not a province or country code"));
    }
    let folded = fold(value);
    PROVINCES
        .iter()
        .find(|(_, name)| {
            let name = fold(name);
            name == folded || name.strip_prefix("tp. ") == Some(folded.as_str())
        })
        .map(|&(code, _)| code)
        .ok_or_else(|| format!("province: {value:?} is not a province name or code"))
}

/// The fields of one CSV record (RFC 4180 quoting: `"a, ""b"""`); a quoted
/// field without doubled quotes is borrowed, not copied.
struct CsvFields<'a> {
    rest: Option<&'a str>,
}

impl<'a> CsvFields<'a> {
    fn new(text: &'a str) -> CsvFields<'a> {
        CsvFields { rest: Some(text) }
    }
}

impl<'a> Iterator for CsvFields<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let text = self.rest?;
        if let Some(quoted) = text.strip_prefix('"') {
            let close = quoted.find('"');
            if let Some(close) = close.filter(|&at| !quoted[at + 1..].starts_with('"')) {
                // No doubled quote: the field is the text up to the quote.
                let after = &quoted[close + 1..];
                self.rest = after.find(',').map(|at| &after[at + 1..]);
                return Some(Cow::Borrowed(&quoted[..close]));
            }
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                if c != '"' {
                    value.push(c);
                    continue;
                }
                if quoted[i + 1..].starts_with('"') {
                    value.push('"');
                    chars.next();
                    continue;
                }
                // The closing quote: the field ends at the next comma.
                let after = &quoted[i + 1..];
                self.rest = after.find(',').map(|at| &after[at + 1..]);
                return Some(Cow::Owned(value));
            }
            self.rest = None;
            return Some(Cow::Owned(value));
        }
        match text.find(',') {
            Some(at) => {
                self.rest = Some(&text[at + 1..]);
                Some(Cow::Borrowed(&text[..at]))
            }
            None => {
                self.rest = None;
                Some(Cow::Borrowed(text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_follow_rfc_4180_quoting() {
        let fields: Vec<_> = CsvFields::new(r#"1,"a, ""b""",,"x""#).collect();
        assert_eq!(fields, ["1", "a, \"b\"", "", "x"]);
        let fields: Vec<_> = CsvFields::new(r#""a, b",c,"""d""#).collect();
        assert_eq!(fields, ["a, b", "c", "\"d"]);
    }

    #[test]
    fn rows_read_from_both_formats_alike() {
        let mut csv = RowParser::new(Format::Csv);
        csv.read_header(b"id,full_name,date_of_birth,sex,province\r")
            .unwrap();
        let mut a = MatchRow::default();
        csv.read_row(
            b"079089012345,NGUYEN VAN AN,1989-03-14,male,Ho Chi Minh",
            &mut a,
        );
        let mut json = RowParser::new(Format::Ndjson);
        let mut b = MatchRow::default();
        json.read_row(
            br#"{"id":"079089012345","full_name":"NGUYEN VAN AN","date_of_birth":"1989-03-14","sex":"male","province":79}"#,
            &mut b,
        );
        assert_eq!((a.refused.clone(), b.refused.clone()), (None, None));
        assert_eq!(
            (a.id, &a.full_name, a.date_of_birth, a.sex, a.province),
            (b.id, &b.full_name, b.date_of_birth, b.sex, b.province)
        );
        assert_eq!(a.province, Some(79));
        json.read_row(br#"{"id":"079089012345","ethnicity":"Kinh"}"#, &mut b);
        assert!(b.refused.is_some(), "a claim beyond the card is refused");
        json.read_row(br#"{"id":"079089012345"}"#, &mut b);
        assert_eq!(b.refused.unwrap().code, "empty_claims");
        assert!(RowParser::new(Format::Csv)
            .read_header(b"id,blood_type")
            .is_err());
    }

    /// The JSON reader decodes every escape and refuses what is not a flat
    /// object of match columns.
    #[test]
    fn json_rows_follow_json() {
        let read = |text: &str| {
            let mut parser = RowParser::new(Format::Ndjson);
            let mut row = MatchRow::default();
            parser.read_row(text.as_bytes(), &mut row);
            row
        };
        let row = read(
            r#" { "full_name" : "Nguy\u1ec5n V\u0103n \"An\"\n" , "id":null,
                "date_of_birth":"1989-03-14", "province" : "ha noi",
                "permanent_residence": "S\u00f4 1 \ud83d\ude00 \/ \\ \t"} "#,
        );
        assert_eq!(row.refused, None);
        assert_eq!(row.full_name, "Nguyễn Văn \"An\"");
        assert_eq!(row.permanent_residence, "Sô 1 😀 / \\");
        assert_eq!((row.id, row.province), (IdClaim::Missing, Some(1)));
        for bad in [
            r#"{"full_name":"A","full_name":"B"}"#,
            r#"{"full_name":"A",}"#,
            r#"{"full_name":"A"} x"#,
            r#"{"full_name":"A""#,
            r#"{"full_name":"A" "sex":"male"}"#,
            r#"{"full_name":1}"#,
            r#"{"full_name":true}"#,
            r#"{"full_name":["A"]}"#,
            r#"{"full_name":"A","province":79.0}"#,
            r#"{"full_name":"A","province":-79}"#,
            r#"{"full_name":"A","province":999999}"#,
            r#"{"full_name":"A\x"}"#,
            r#"{"full_name":"A\ud83d"}"#,
            "{\"full_name\":\"A\u{1}\"}",
            r#"["full_name"]"#,
            r#"{full_name:"A"}"#,
            r#"{"full_name":nul}"#,
        ] {
            assert!(read(bad).refused.is_some(), "{bad} is refused");
        }
        let row = read(r#"{"full_name":"A","province":79}"#);
        assert_eq!((row.refused, row.province), (None, Some(79)));
        let mut parser = RowParser::new(Format::Ndjson);
        let mut row = MatchRow::default();
        parser.read_row(b"{\"full_name\":\"\xff\"}", &mut row);
        assert!(row.refused.unwrap().message.contains("not UTF-8"));
    }
}
