//! Reading records from NDJSON and CSV.
//!
//! NDJSON is one JSON object per line with the API's field names (the serde
//! form of [`dancu_engine::Citizen`]; `biometric_templates` may be left out,
//! `biometrics` is accepted and ignored). CSV is described in
//! [`crate::csvform`]. Blank NDJSON lines are skipped. Each record is also
//! checked with [`Citizen::validate`], so a bad line is reported with its
//! number here rather than by the builder.

use std::io::BufRead;
use std::path::Path;

use dancu_engine::Citizen;

use crate::csvform::Header;
use crate::error::{Error, LineError, Result};

/// An input (and export) format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Flat CSV with a header row (columns documented in the README).
    Csv,
}

impl Format {
    /// The format a file name implies: `.ndjson`, `.jsonl` or `.json` for
    /// NDJSON, `.csv` for CSV (any case).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Records read from an input, one per data line with its line number:
/// `Ok((line, Ok(citizen)))`, `Ok((line, Err(bad line)))`, or `Err` when
/// the input itself cannot be read.
pub struct Records<R> {
    inner: Inner<R>,
    parser: Parser,
}

enum Inner<R> {
    Ndjson { reader: R, line: u64 },
    Csv(Box<csv::Reader<R>>),
}

/// One data line, split from the input but not yet parsed.
pub(crate) enum Raw {
    Json(Vec<u8>),
    Row(csv::StringRecord),
    Bad(String),
}

/// Turns a [`Raw`] line into a checked record; independent of the reader,
/// so lines can be parsed on several threads.
#[derive(Clone, Debug)]
pub(crate) struct Parser {
    header: Option<Header>,
}

impl Parser {
    pub(crate) fn parse(&self, line: u64, raw: Raw) -> std::result::Result<Citizen, LineError> {
        let parsed = match raw {
            Raw::Json(bytes) => std::str::from_utf8(&bytes)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(|s| serde_json::from_str::<Citizen>(s).map_err(|e| e.to_string())),
            Raw::Row(row) => self
                .header
                .as_ref()
                .expect("CSV rows come with a header")
                .parse(&row),
            Raw::Bad(reason) => Err(reason),
        };
        parsed
            .and_then(|c| c.validate().map(|()| c).map_err(|e| e.0))
            .map_err(|reason| LineError { line, reason })
    }
}

impl<R: BufRead> Records<R> {
    /// Starts reading; for CSV this reads and checks the header row.
    pub fn new(reader: R, format: Format) -> Result<Records<R>> {
        Ok(match format {
            Format::Ndjson => Records {
                inner: Inner::Ndjson { reader, line: 0 },
                parser: Parser { header: None },
            },
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
                let names = reader
                    .headers()
                    .map_err(|e| Error::BadHeader(e.to_string()))?;
                let header = Header::new(names.iter()).map_err(Error::BadHeader)?;
                Records {
                    inner: Inner::Csv(Box::new(reader)),
                    parser: Parser {
                        header: Some(header),
                    },
                }
            }
        })
    }

    pub(crate) fn parser(&self) -> Parser {
        self.parser.clone()
    }

    /// The next data line, unparsed.
    pub(crate) fn next_raw(&mut self) -> Option<Result<(u64, Raw)>> {
        let input_error = |source| Error::Io {
            path: "input".into(),
            source,
        };
        match &mut self.inner {
            Inner::Ndjson { reader, line } => loop {
                let mut buf = Vec::with_capacity(1024);
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => return Some(Err(input_error(e))),
                }
                *line += 1;
                if !buf.iter().all(u8::is_ascii_whitespace) {
                    return Some(Ok((*line, Raw::Json(buf))));
                }
            },
            Inner::Csv(reader) => {
                let mut row = csv::StringRecord::new();
                let result = reader.read_record(&mut row);
                let line = row.position().map_or(0, |p| p.line());
                match result {
                    Ok(false) => None,
                    Ok(true) => Some(Ok((line, Raw::Row(row)))),
                    Err(e) => match e.kind() {
                        csv::ErrorKind::Io(_) => {
                            Some(Err(input_error(std::io::Error::other(e.to_string()))))
                        }
                        _ => {
                            let line = e.position().map_or(line, |p| p.line());
                            Some(Ok((line, Raw::Bad(e.to_string()))))
                        }
                    },
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<(u64, std::result::Result<Citizen, LineError>)>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.next_raw()?
                .map(|(line, raw)| (line, self.parser.parse(line, raw))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_are_numbered_and_checked() {
        let good = serde_json::to_string(&crate::synth::generate_chunk(1, 1, 0)[0]).unwrap();
        let flipped = if good.contains("\"sex\":\"male\"") {
            good.replace("\"sex\":\"male\"", "\"sex\":\"female\"")
        } else {
            good.replace("\"sex\":\"female\"", "\"sex\":\"male\"")
        };
        let input = format!("{good}\n\n{{\"id\": \"12\"}}\n{flipped}\n\u{0}\n");
        let items: Vec<_> = Records::new(input.as_bytes(), Format::Ndjson)
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(items.len(), 4);
        assert!(items[0].is_ok());
        let bad = items[1].as_ref().unwrap_err();
        assert_eq!(bad.line, 3, "blank lines count");
        assert!(bad.reason.contains("12"), "{bad}");
        assert_eq!(items[3].as_ref().unwrap_err().line, 5);
    }

    #[test]
    fn formats_from_names() {
        assert_eq!(
            Format::from_path(Path::new("a/people.NDJSON")),
            Some(Format::Ndjson)
        );
        assert_eq!(
            Format::from_path(Path::new("people.csv")),
            Some(Format::Csv)
        );
        assert_eq!(Format::from_path(Path::new("people")), None);
    }
}
