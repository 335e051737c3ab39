//! Cutting input into records: an NDJSON record is a line; a CSV record
//! ends at a line feed outside double quotes (a quoted field may hold line
//! breaks). Searches go through `memchr` (an iterator's `position` looks
//! at one byte at a time), so a block of input is framed at memory speed.

use crate::import::Format;

/// The end of the first complete record of `buf` (the index of its line
/// feed), or `None` when `buf` holds no complete record yet. In CSV a line
/// feed inside double quotes belongs to the field.
pub fn next_record(buf: &[u8], format: Format) -> Option<usize> {
    match format {
        Format::Ndjson => memchr::memchr(b'\n', buf),
        Format::Csv => {
            let mut quoted = false;
            let mut at = 0;
            loop {
                // Only quotes and line feeds matter: jump between them.
                let found = at + memchr::memchr2(b'"', b'\n', &buf[at..])?;
                if buf[found] == b'"' {
                    quoted = !quoted;
                } else if !quoted {
                    return Some(found);
                }
                at = found + 1;
            }
        }
    }
}

/// The end of the last complete record of `buf`.
pub fn last_record_end(buf: &[u8], format: Format) -> Option<usize> {
    match format {
        Format::Ndjson => memchr::memrchr(b'\n', buf),
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

/// Records in a block of whole records (the last may lack its line feed).
pub(super) fn count_records(block: &[u8], format: Format) -> u64 {
    if block.is_empty() {
        return 0;
    }
    let unterminated = u64::from(block.last() != Some(&b'\n'));
    match format {
        // Counting bytes compiles to a vector loop; no record is looked at.
        Format::Ndjson => block.iter().filter(|&&b| b == b'\n').count() as u64 + unterminated,
        Format::Csv => {
            let mut n = 0;
            let mut rest = block;
            while let Some(end) = next_record(rest, format) {
                n += 1;
                rest = &rest[end + 1..];
            }
            n + u64::from(!rest.is_empty())
        }
    }
}

/// The records of a block of whole records, each without its line feed.
pub(super) fn records(block: &[u8], format: Format) -> impl Iterator<Item = &[u8]> {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = next_record(rest, format).unwrap_or(rest.len());
        let record = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        Some(record)
    })
}

/// A record without its line end (`\r\n` or `\n`).
pub(super) fn trim_record(record: &[u8]) -> &[u8] {
    record.strip_suffix(b"\r").unwrap_or(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_at_line_feeds_outside_quotes() {
        assert_eq!(next_record(b"\"a\nb\",c\nd", Format::Csv), Some(7));
        assert_eq!(next_record(b"{}\n{}", Format::Ndjson), Some(2));
        assert_eq!(next_record(b"\"a\n", Format::Csv), None);
        let csv = b"a,\"b\nc\"\nd\n\ne";
        assert_eq!(last_record_end(csv, Format::Csv), Some(10));
        assert_eq!(count_records(csv, Format::Csv), 4);
        let all: Vec<&[u8]> = records(csv, Format::Csv).collect();
        assert_eq!(all, [&b"a,\"b\nc\""[..], b"d", b"", b"e"]);
        assert_eq!(count_records(b"{}\n{}\n", Format::Ndjson), 2);
        assert_eq!(count_records(b"{}\n{}", Format::Ndjson), 2);
        assert_eq!(count_records(b"", Format::Ndjson), 0);
    }
}
