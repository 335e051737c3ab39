//! Bulk match input and output: NDJSON or CSV rows of `id`, `full_name`,
//! `date_of_birth`, `sex`, and optionally `permanent_residence` and
//! `province`, read as [`MatchRow`]s and answered by the engine's
//! [`Matcher`]; the same code serves `POST /v1/citizens:match` and
//! `dancu-data match`.
//!
//! Input is cut into records by [`next_record`] (a CSV field in quotes may
//! hold commas and line breaks), so a stream can be handled in blocks of any
//! size without holding it. Each record is one row, numbered from 1 (a CSV
//! header is not a row); a row that cannot be read gets its own `invalid`
//! result and never stops the stream.
//!
//! [`match_stream`] runs a whole file through a snapshot on every core,
//! blocks in parallel and results in input order.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::str::FromStr;

use dancu_engine::codes::PROVINCES;
use dancu_engine::matching::{
    write_csv, write_ndjson, IdClaim, MatchRow, MatchSource, MatchSummary, Matcher, Refusal,
    RowResult, CSV_RESULT_HEADER, MATCH_COLUMNS,
};
use dancu_engine::{fold, Date, PersonalId, Sex};
use rayon::prelude::*;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::import::Format;

/// The end of the first complete record of `buf` (the index of its line
/// feed), or `None` when `buf` holds no complete record yet. In CSV a line
/// feed inside double quotes belongs to the field.
pub fn next_record(buf: &[u8], format: Format) -> Option<usize> {
    match format {
        Format::Ndjson => memchr_newline(buf),
        Format::Csv => {
            let mut quoted = false;
            for (i, &b) in buf.iter().enumerate() {
                match b {
                    b'"' => quoted = !quoted,
                    b'\n' if !quoted => return Some(i),
                    _ => {}
                }
            }
            None
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Reads rows: the CSV header first (for CSV), then one [`MatchRow`] per
/// record.
#[derive(Clone, Debug)]
pub struct RowParser {
    format: Format,
    /// For CSV: the [`MATCH_COLUMNS`] index of each column; `None` until
    /// the header is read.
    columns: Option<Vec<usize>>,
    rows: u64,
}

/// The NDJSON form of a row; absent and `null` fields are not claimed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    full_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    date_of_birth: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sex: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    permanent_residence: Option<Cow<'a, str>>,
    #[serde(default)]
    province: Option<ProvinceValue<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ProvinceValue<'a> {
    Code(u16),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

/// Why a column or key cannot be claimed in a match.
fn beyond_match(column: &str) -> String {
    format!(
        "column {column:?} is not a match column (a match may claim only the card's fields: \
         id, full_name, date_of_birth, sex, permanent_residence; and filter by province)"
    )
}

impl RowParser {
    /// A parser of `format` input.
    pub fn new(format: Format) -> RowParser {
        RowParser {
            format,
            columns: None,
            rows: 0,
        }
    }

    /// Rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows
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
            let at = MATCH_COLUMNS
                .iter()
                .position(|&c| c == name)
                .ok_or_else(|| Error::BadHeader(beyond_match(name)))?;
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
        let result = match std::str::from_utf8(record) {
            Err(e) => Err(format!("the row is not UTF-8 (byte {})", e.valid_up_to())),
            Ok(text) if text.trim().is_empty() => Err("the row is empty".into()),
            Ok(text) => match self.format {
                Format::Ndjson => read_json_row(text, row),
                Format::Csv => self.read_csv_row(text, row),
            },
        };
        match result {
            Ok(()) => row.check_claims(),
            Err(message) => row.refused = Some(Refusal::invalid("invalid_row", message)),
        }
    }

    fn read_csv_row(&self, text: &str, row: &mut MatchRow) -> std::result::Result<(), String> {
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

fn read_json_row(text: &str, row: &mut MatchRow) -> std::result::Result<(), String> {
    let json: JsonRow = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let fields = [
        json.id,
        json.full_name,
        json.date_of_birth,
        json.sex,
        json.permanent_residence,
    ];
    for (column, value) in fields.into_iter().enumerate() {
        if let Some(value) = value {
            set_field(row, column, &value)?;
        }
    }
    match json.province {
        None => {}
        Some(ProvinceValue::Code(code)) => row.province = Some(province_code(&code.to_string())?),
        Some(ProvinceValue::Text(text)) => set_field(row, 5, &text)?,
    }
    Ok(())
}

/// Sets column `column` (a [`MATCH_COLUMNS`] index) of `row` from its text;
/// an empty value claims nothing.
fn set_field(row: &mut MatchRow, column: usize, value: &str) -> std::result::Result<(), String> {
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

/// A province given as its three-digit code (`079`, `79`) or its name in
/// any spelling (`TP. Hồ Chí Minh`, `ha noi`); a country code (101–295)
/// stands for births abroad.
fn province_code(value: &str) -> std::result::Result<u16, String> {
    if let Ok(code) = value.parse::<u16>() {
        let known = PROVINCES.iter().any(|&(c, _)| c == code)
            || dancu_engine::codes::ABROAD_CODES.contains(&code);
        return known
            .then_some(code)
            .ok_or_else(|| format!("province: {value} is not a province or country code"));
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

/// A record without its line end (`\r\n` or `\n`).
fn trim_record(record: &[u8]) -> &[u8] {
    record.strip_suffix(b"\r").unwrap_or(record)
}

/// The fields of one CSV record (RFC 4180 quoting: `"a, ""b"""`).
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

/// Writes results in `format`, the CSV header before the first.
pub struct ResultWriter {
    format: Format,
    header_written: bool,
}

impl ResultWriter {
    /// A writer of `format` results.
    pub fn new(format: Format) -> ResultWriter {
        ResultWriter {
            format,
            header_written: false,
        }
    }

    /// Appends `results` to `out`.
    pub fn write(&mut self, results: &[RowResult], out: &mut Vec<u8>) {
        match self.format {
            Format::Ndjson => results.iter().for_each(|r| write_ndjson(r, out)),
            Format::Csv => {
                if !std::mem::replace(&mut self.header_written, true) {
                    out.extend_from_slice(CSV_RESULT_HEADER.as_bytes());
                }
                results.iter().for_each(|r| write_csv(r, out));
            }
        }
    }
}

/// Options of [`match_stream`].
#[derive(Clone, Copy, Debug)]
pub struct MatchOptions {
    /// Input format.
    pub input: Format,
    /// Output format.
    pub output: Format,
    /// Search candidates for rows whose ID is missing, malformed, unknown
    /// or disagrees.
    pub candidates: bool,
}

/// Bytes read per block; a block's rows are matched together.
const BLOCK_BYTES: usize = 1 << 20;

/// Matches every row of `input` against `source`, writing one result per
/// row to `output` in input order, and returns the counts. Blocks of about
/// a megabyte are matched on all cores; memory stays a few blocks per core
/// however long the input. `inspect` sees every result in order (to check
/// them); `progress` is called with the rows and input bytes done after each
/// round of blocks.
pub fn match_stream<S: MatchSource + Sync>(
    source: &S,
    mut input: impl Read,
    mut output: impl Write,
    options: MatchOptions,
    mut inspect: impl FnMut(&RowResult),
    mut progress: impl FnMut(u64, u64),
) -> Result<MatchSummary> {
    let io = |e| Error::Io {
        path: "-".into(),
        source: e,
    };
    let mut parser = RowParser::new(options.input);
    let mut writer = ResultWriter::new(options.output);
    let mut summary = MatchSummary::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut bytes_done = 0u64;
    let round = rayon::current_num_threads().max(1) * 2;
    let mut eof = false;
    while !eof {
        // Read a round of blocks, each ending at a record boundary.
        let mut blocks: Vec<(u64, Vec<u8>)> = Vec::with_capacity(round);
        while blocks.len() < round && !eof {
            let start = pending.len();
            pending.resize(start + BLOCK_BYTES, 0);
            let n = read_full(&mut input, &mut pending[start..]).map_err(io)?;
            pending.truncate(start + n);
            bytes_done += n as u64;
            eof = n == 0;
            let cut = match last_record_end(&pending, options.input) {
                _ if eof => pending.len(),
                Some(end) => end + 1,
                None => continue, // a record longer than a block: read on
            };
            let rest = pending.split_off(cut);
            let mut block = std::mem::replace(&mut pending, rest);
            if parser.wants_header() && !block.is_empty() {
                let end = next_record(&block, options.input).unwrap_or(block.len());
                parser.read_header(&block[..end])?;
                block.drain(..(end + 1).min(block.len()));
            }
            let first_row = parser.rows() + 1;
            parser.rows += count_records(&block, options.input);
            blocks.push((first_row, block));
        }
        let outputs: Vec<BlockOutput> = blocks
            .par_iter()
            .map(|(first_row, block)| match_block(source, &parser, *first_row, block, options))
            .collect();
        let mut out = Vec::new();
        for block in outputs {
            out.clear();
            writer.write_raw(&block.written, &mut out);
            output.write_all(&out).map_err(io)?;
            summary.merge(&block.summary);
            block.results.iter().for_each(&mut inspect);
        }
        progress(summary.rows, bytes_done);
    }
    if options.output == Format::Csv && !writer.header_written {
        let mut out = Vec::new();
        writer.write(&[], &mut out);
        output.write_all(&out).map_err(io)?;
    }
    output.flush().map_err(io)?;
    Ok(summary)
}

/// What one block gave: its results, written and as values, and counts.
struct BlockOutput {
    written: Vec<u8>,
    results: Vec<RowResult>,
    summary: MatchSummary,
}

/// Matches one block of whole records (the rows numbered from `first_row`).
fn match_block<S: MatchSource>(
    source: &S,
    parser: &RowParser,
    first_row: u64,
    block: &[u8],
    options: MatchOptions,
) -> BlockOutput {
    let mut parser = RowParser {
        rows: first_row - 1,
        ..parser.clone()
    };
    let mut rows = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let end = next_record(rest, options.input).unwrap_or(rest.len());
        let mut row = MatchRow::default();
        parser.read_row(&rest[..end], &mut row);
        rows.push(row);
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    let mut results = Vec::with_capacity(rows.len());
    Matcher::new(options.candidates).match_rows(source, &rows, &mut results);
    let mut summary = MatchSummary::default();
    results.iter().for_each(|r| summary.add(r));
    let mut out = Vec::with_capacity(results.len() * 64);
    let mut writer = ResultWriter {
        format: options.output,
        header_written: true,
    };
    writer.write(&results, &mut out);
    BlockOutput {
        written: out,
        results,
        summary,
    }
}

impl ResultWriter {
    /// Appends results already written (by a writer whose header was
    /// marked written), adding the CSV header before the first.
    fn write_raw(&mut self, written: &[u8], out: &mut Vec<u8>) {
        if self.format == Format::Csv && !std::mem::replace(&mut self.header_written, true) {
            out.extend_from_slice(CSV_RESULT_HEADER.as_bytes());
        }
        out.extend_from_slice(written);
    }
}

/// Records in a block of whole records (the last may lack its line feed).
fn count_records(block: &[u8], format: Format) -> u64 {
    let mut n = 0;
    let mut rest = block;
    while !rest.is_empty() {
        n += 1;
        match next_record(rest, format) {
            Some(end) => rest = &rest[end + 1..],
            None => break,
        }
    }
    n
}

/// The end of the last complete record of `buf`.
pub fn last_record_end(buf: &[u8], format: Format) -> Option<usize> {
    match format {
        Format::Ndjson => buf.iter().rposition(|&b| b == b'\n'),
        Format::Csv => {
            let mut last = None;
            let mut at = 0;
            while let Some(end) = next_record(&buf[at..], format) {
                last = Some(at + end);
                at += end + 1;
            }
            last
        }
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_follow_rfc_4180_quoting() {
        let fields: Vec<_> = CsvFields::new(r#"1,"a, ""b""",,"x""#).collect();
        assert_eq!(fields, ["1", "a, \"b\"", "", "x"]);
        assert_eq!(next_record(b"\"a\nb\",c\nd", Format::Csv), Some(7));
        assert_eq!(next_record(b"{}\n{}", Format::Ndjson), Some(2));
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
}
