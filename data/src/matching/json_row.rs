//! One NDJSON row read straight from the input bytes: a flat JSON object
//! whose keys are match columns and whose values are strings, `null`, or
//! for `province` a number.
//!
//! A general JSON parser was a fifth of the time of `dancu-data match`:
//! it checked the whole line for UTF-8, then walked it again building
//! values. Here the line is walked once; a string without escapes (every
//! real row's) is a slice of the input, checked for UTF-8 alone, and an
//! escaped one is decoded into a buffer kept between rows. Anything that is
//! not such an object is refused with a message naming the byte.

use dancu_engine::matching::{MatchRow, MATCH_COLUMNS};

use super::rows::{column_of, set_field, set_province_code, FieldError, PROVINCE};

/// Reads the object in `text` into `row`; `scratch` holds decoded strings.
pub(super) fn read_json_row(
    text: &[u8],
    row: &mut MatchRow,
    scratch: &mut String,
) -> Result<(), FieldError> {
    // Checked once for the whole row: in a row of UTF-8 without control
    // characters (every real row) each string is a slice between two ASCII
    // bytes, so it is UTF-8 too and needs no check of its own. Any other
    // row is checked string by string, for the message naming the byte.
    let checked = simdutf8::basic::from_utf8(text)
        .ok()
        .filter(|t| !t.bytes().fold(false, |seen, b| seen | (b < 0x20)));
    read_object(text, checked, row, scratch)
}

/// [`read_json_row`] given the row as text when it is UTF-8 without
/// control characters, `None` to check it string by string.
fn read_object(
    text: &[u8],
    checked: Option<&str>,
    row: &mut MatchRow,
    scratch: &mut String,
) -> Result<(), FieldError> {
    let mut r = Cursor {
        text,
        checked,
        at: 0,
    };
    r.expect(b'{')?;
    if r.peek_after_space() == Some(b'}') {
        r.at += 1;
        return r.end();
    }
    let mut seen = 0u8;
    loop {
        r.expect(b'"')?;
        let column = r.key(scratch)?;
        if seen & (1 << column) != 0 {
            return Err(format!("key {:?} appears twice", MATCH_COLUMNS[column]));
        }
        seen |= 1 << column;
        r.expect(b':')?;
        match r.peek_after_space() {
            Some(b'"') => {
                r.at += 1;
                let value = r.string(scratch)?;
                set_field(row, column, value)?;
            }
            Some(b'n') => r.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') if column == PROVINCE => {
                let code = r.integer()?;
                set_province_code(row, code)?;
            }
            _ => {
                return Err(format!(
                    "{}: byte {}: expected a string{}",
                    MATCH_COLUMNS[column],
                    r.at + 1,
                    if column == PROVINCE { ", a number" } else { "" }
                ))
            }
        }
        match r.peek_after_space() {
            Some(b',') => r.at += 1,
            Some(b'}') => {
                r.at += 1;
                return r.end();
            }
            _ => return Err(r.unexpected("',' or '}'")),
        }
    }
}

/// A position in the row.
struct Cursor<'a> {
    text: &'a [u8],
    /// The row as text when it is UTF-8 without control characters.
    checked: Option<&'a str>,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn peek_after_space(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.at).copied()
    }

    fn unexpected(&self, wanted: &str) -> FieldError {
        match self.text.get(self.at) {
            Some(&b) => format!(
                "not a JSON object of strings: byte {} is {:?}, expected {wanted}",
                self.at + 1,
                char::from(b)
            ),
            None => format!("not a JSON object of strings: the row ends, expected {wanted}"),
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), FieldError> {
        if self.peek_after_space() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("{:?}", char::from(byte))))
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), FieldError> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.unexpected("a string or null"))
        }
    }

    /// Nothing but spaces after the object.
    fn end(&mut self) -> Result<(), FieldError> {
        match self.peek_after_space() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("the end of the row")),
        }
    }

    /// A non-negative integer of at most five digits (a province or
    /// country code); a sign, fraction or exponent is refused.
    fn integer(&mut self) -> Result<u16, FieldError> {
        let start = self.at;
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        let follows_number = matches!(self.text.get(self.at), Some(b'.' | b'e' | b'E' | b'-'));
        if digits.is_empty() || follows_number || digits.len() > 5 {
            return Err(format!(
                "province: byte {}: expected a whole number up to 65535",
                start + 1
            ));
        }
        let value = digits
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        u16::try_from(value)
            .map_err(|_| format!("province: {value} is not a province or country code"))
    }

    /// A key after its opening quote, up to its closing quote, as its
    /// [`MATCH_COLUMNS`] index: a column name without escapes (every real
    /// row's) is recognized in place, anything else read as a string.
    fn key(&mut self, scratch: &mut String) -> Result<usize, FieldError> {
        let rest = &self.text[self.at..];
        for (column, name) in MATCH_COLUMNS.iter().enumerate() {
            if rest.starts_with(name.as_bytes()) && rest.get(name.len()) == Some(&b'"') {
                self.at += name.len() + 1;
                return Ok(column);
            }
        }
        column_of(self.string(scratch)?)
    }

    /// The text of bytes `start..end` of the row, where both ends are
    /// next to ASCII bytes (quotes, backslashes) or the row's ends.
    fn text_of(&self, start: usize, end: usize) -> Result<&'a str, FieldError> {
        match self.checked.and_then(|text| text.get(start..end)) {
            Some(text) => Ok(text),
            None => utf8(&self.text[start..end], start),
        }
    }

    /// The string after an opening quote, up to its closing quote: a slice
    /// of the row when it has no escapes, else decoded into `scratch`.
    fn string<'s>(&mut self, scratch: &'s mut String) -> Result<&'s str, FieldError>
    where
        'a: 's,
    {
        let start = self.at;
        let plain = self.plain_run()?;
        let plain = self.text_of(start, start + plain.len())?;
        if self.text[self.at] == b'"' {
            self.at += 1;
            return Ok(plain);
        }
        scratch.clear();
        scratch.push_str(plain);
        self.decode_rest(scratch)?;
        Ok(scratch.as_str())
    }

    /// The bytes from here to the next quote or backslash, which must not
    /// hold a control character; leaves the cursor on that quote or
    /// backslash.
    fn plain_run(&mut self) -> Result<&'a [u8], FieldError> {
        let start = self.at;
        let text: &'a [u8] = self.text;
        let Some(len) = memchr::memchr2(b'"', b'\\', &text[start..]) else {
            return Err(format!("the string at byte {start} has no closing quote"));
        };
        let run = &text[start..start + len];
        // A fold rather than `any`, so that it compiles to a vector loop.
        if self.checked.is_none() && run.iter().fold(false, |seen, &b| seen | (b < 0x20)) {
            let at = start + run.iter().position(|&b| b < 0x20).unwrap_or(0);
            return Err(format!(
                "byte {}: a control character inside a string",
                at + 1
            ));
        }
        self.at = start + len;
        Ok(run)
    }

    /// Decodes the rest of a string with escapes (from a backslash) up to
    /// its closing quote.
    fn decode_rest(&mut self, out: &mut String) -> Result<(), FieldError> {
        loop {
            match self.text[self.at] {
                b'"' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => {
                    self.at += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
            }
            let start = self.at;
            let run = self.plain_run()?;
            out.push_str(self.text_of(start, start + run.len())?);
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Result<char, FieldError> {
        let Some(&b) = self.text.get(self.at) else {
            return Err(self.unexpected("an escape"));
        };
        self.at += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                if (0xD800..0xDC00).contains(&high) {
                    // A surrogate pair: `\uD83D\uDE00`.
                    if !self.text[self.at..].starts_with(b"\\u") {
                        return Err(self.unexpected("the second half of a surrogate pair"));
                    }
                    self.at += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.unexpected("the second half of a surrogate pair"));
                    }
                    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    char::from_u32(c).ok_or_else(|| self.unexpected("a character"))?
                } else {
                    char::from_u32(high).ok_or_else(|| self.unexpected("a character"))?
                }
            }
            _ => {
                self.at -= 1;
                return Err(self.unexpected("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, FieldError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.unexpected("four hex digits"))?;
        let mut value = 0;
        for &d in digits {
            let v = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.unexpected("four hex digits"))?;
            value = value * 16 + v;
        }
        self.at += 4;
        Ok(value)
    }
}

/// `bytes` (at byte `start` of the row) as text.
pub(super) fn utf8(bytes: &[u8], start: usize) -> Result<&str, FieldError> {
    // The SIMD check is several times faster on Vietnamese text; only a
    // failure is checked again, for the position of the bad byte.
    simdutf8::basic::from_utf8(bytes).map_err(|_| {
        let valid = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), str::len);
        format!("the row is not UTF-8 (byte {})", start + valid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A row read with its one check for the whole row reads as it does
        /// with a check of every string: same fields, same error.
        #[test]
        fn checking_the_row_once_reads_as_checking_each_string(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(r#"{"id":"079089012345","full_name":"NGUY\u1ec4N V\u0103n","#.to_string()),
                proptest::strategy::Just(r#""date_of_birth":"1989-03-14","sex":"male","province":79}"#.to_string()),
                proptest::strategy::Just(r#""permanent_residence":"Số 1, Phường Bến Nghé""#.to_string()),
                "[\\PC\\t\\n\\x01\"\\\\{}:,]{0,12}",
                "(\"(id|full_name|sex|date_of_birth|province|permanent_residence|x)\":)",
            ], 0..8),
            bad in proptest::option::of((0usize..200, proptest::prop_oneof![
                proptest::strategy::Just(0xffu8), proptest::strategy::Just(0xc3), proptest::strategy::Just(0x01),
            ])),
        ) {
            let mut text = parts.concat().into_bytes();
            if let Some((at, byte)) = bad {
                let at = at.min(text.len());
                text.insert(at, byte);
            }
            let (mut fast, mut slow) = (MatchRow::default(), MatchRow::default());
            let mut scratch = String::new();
            let checked = simdutf8::basic::from_utf8(&text)
                .ok()
                .filter(|t| !t.bytes().any(|b| b < 0x20));
            let a = read_object(&text, checked, &mut fast, &mut scratch);
            let b = read_object(&text, None, &mut slow, &mut scratch);
            proptest::prop_assert_eq!(&a, &b);
            proptest::prop_assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
        }
    }
}
