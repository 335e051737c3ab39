//! Bulk match input and output: NDJSON or CSV rows of `id`, `full_name`,
//! `date_of_birth`, `sex`, and optionally `permanent_residence` and
//! `province`, read as [`MatchRow`]s and answered by the engine's
//! [`Matcher`]; the same code serves `POST /v1/citizens:match` and
//! `dancu-data match`.
//!
//! Input is cut into records by [`next_record`] (a CSV field in quotes may
//! hold commas and line breaks), so a stream can be handled in blocks of any
//! size without holding it. Each record is one row, numbered from 1 (a CSV
//! header is not a row), read by a [`RowParser`]; a row that cannot be read
//! gets its own `invalid` result and never stops the stream.
//!
//! [`match_stream`] runs a whole file through a snapshot on every core:
//! blocks matched in parallel while the next round is read and the last
//! one written, results in input order.

mod json_row;
mod records;
mod rows;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::sync::mpsc;

use dancu_engine::matching::{
    write_csv, write_ndjson, MatchRow, MatchSource, MatchSummary, Matcher, RowResult,
    CSV_RESULT_HEADER,
};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::import::Format;
pub use records::{last_record_end, next_record};
pub use rows::RowParser;

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

/// A block of whole records and the number of its first row.
struct Block {
    first_row: u64,
    bytes: Vec<u8>,
}

/// Matches every row of `input` against `source`, writing one result per
/// row to `output` in input order, and returns the counts. Blocks of about
/// a megabyte are matched on all cores; memory stays a few blocks per core
/// however long the input.
///
/// Three things overlap: the pool matches a round of blocks while one of
/// its threads reads the next round, and a writer thread writes the round
/// before (in order) and shows its results to `inspect` (to check them).
/// `progress` is called with the rows and input bytes read after each
/// round.
pub fn match_stream<S: MatchSource + Sync>(
    source: &S,
    input: impl Read + Send,
    output: impl Write + Send,
    options: MatchOptions,
    inspect: impl FnMut(&RowResult) + Send,
    mut progress: impl FnMut(u64, u64),
) -> Result<MatchSummary> {
    let mut reader = BlockReader {
        input,
        format: options.input,
        parser: RowParser::new(options.input),
        pending: Vec::new(),
        bytes_read: 0,
        eof: false,
        // Eight blocks per thread and round: the round ends at a barrier
        // (the slowest block), and with two per thread the cores idled
        // there (163 % CPU of 200 at 100 M; 171 % with eight).
        round: rayon::current_num_threads().max(1) * 8,
    };
    std::thread::scope(|scope| {
        // Two rounds may wait for the writer: enough to keep it busy,
        // few enough that memory stays flat.
        let (to_writer, rounds) = mpsc::sync_channel::<Vec<BlockOutput>>(2);
        let writer = scope.spawn(move || write_rounds(rounds, output, options.output, inspect));
        let mut next = reader.read_round();
        let read_failed = loop {
            let blocks = match next {
                Ok(blocks) if blocks.is_empty() => break None,
                Ok(blocks) => blocks,
                Err(e) => break Some(e),
            };
            let parser = &reader.parser.continuing_at(1);
            let (outputs, read) = rayon::join(
                || {
                    blocks
                        .par_iter()
                        .map(|block| match_block(source, parser, block, options))
                        .collect::<Vec<_>>()
                },
                || reader.read_round(),
            );
            if to_writer.send(outputs).is_err() {
                break None; // the writer failed: its error is returned below
            }
            progress(reader.parser.rows(), reader.bytes_read);
            next = read;
        };
        drop(to_writer);
        let written = writer.join().expect("the writer thread does not panic");
        match read_failed {
            Some(e) => Err(e),
            None => written,
        }
    })
}

/// Reads the input in rounds of blocks, each block ending at a record
/// boundary, and numbers their rows.
struct BlockReader<R> {
    input: R,
    format: Format,
    parser: RowParser,
    /// Read bytes not yet in a block (a partial record).
    pending: Vec<u8>,
    bytes_read: u64,
    eof: bool,
    /// Blocks per round.
    round: usize,
}

impl<R: Read> BlockReader<R> {
    /// The next round of blocks; empty at the end of the input.
    fn read_round(&mut self) -> Result<Vec<Block>> {
        let mut blocks = Vec::with_capacity(self.round);
        while blocks.len() < self.round && !self.eof {
            let start = self.pending.len();
            self.pending.resize(start + BLOCK_BYTES, 0);
            let n =
                read_full(&mut self.input, &mut self.pending[start..]).map_err(|e| Error::Io {
                    path: "-".into(),
                    source: e,
                })?;
            self.pending.truncate(start + n);
            self.bytes_read += n as u64;
            self.eof = n == 0;
            let cut = match last_record_end(&self.pending, self.format) {
                _ if self.eof => self.pending.len(),
                Some(end) => end + 1,
                None => continue, // a record longer than a block: read on
            };
            let rest = self.pending[cut..].to_vec();
            self.pending.truncate(cut);
            let mut bytes = std::mem::replace(&mut self.pending, rest);
            if self.parser.wants_header() && !bytes.is_empty() {
                let end = next_record(&bytes, self.format).unwrap_or(bytes.len());
                self.parser.read_header(&bytes[..end])?;
                bytes.drain(..(end + 1).min(bytes.len()));
            }
            let first_row = self.parser.rows() + 1;
            self.parser.rows += records::count_records(&bytes, self.format);
            if !bytes.is_empty() {
                blocks.push(Block { first_row, bytes });
            }
        }
        Ok(blocks)
    }
}

/// The writer thread: writes each round's results in order, shows them to
/// `inspect` and adds up the counts.
fn write_rounds(
    rounds: mpsc::Receiver<Vec<BlockOutput>>,
    mut output: impl Write,
    format: Format,
    mut inspect: impl FnMut(&RowResult),
) -> Result<MatchSummary> {
    let io = |e| Error::Io {
        path: "-".into(),
        source: e,
    };
    let mut writer = ResultWriter::new(format);
    let mut summary = MatchSummary::default();
    let mut header = Vec::new();
    for round in rounds {
        for block in round {
            header.clear();
            writer.write_raw(&[], &mut header);
            output.write_all(&header).map_err(io)?;
            output.write_all(&block.written).map_err(io)?;
            summary.merge(&block.summary);
            block.results.iter().for_each(&mut inspect);
        }
    }
    if !writer.header_written {
        header.clear();
        writer.write(&[], &mut header);
        output.write_all(&header).map_err(io)?;
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

thread_local! {
    /// Each thread's rows, kept between blocks so that their string
    /// buffers are allocated once, not once per row.
    static ROWS: RefCell<Vec<MatchRow>> = const { RefCell::new(Vec::new()) };
}

/// Matches one block of whole records.
fn match_block<S: MatchSource>(
    source: &S,
    parser: &RowParser,
    block: &Block,
    options: MatchOptions,
) -> BlockOutput {
    let mut parser = parser.continuing_at(block.first_row);
    ROWS.with_borrow_mut(|rows| {
        let mut n = 0;
        for record in records::records(&block.bytes, options.input) {
            if n == rows.len() {
                rows.push(MatchRow::default());
            }
            parser.read_row(record, &mut rows[n]);
            n += 1;
        }
        let rows = &rows[..n];
        let mut results = Vec::with_capacity(rows.len());
        Matcher::new(options.candidates).match_rows(source, rows, &mut results);
        let mut summary = MatchSummary::default();
        results.iter().for_each(|r| summary.add(r));
        let mut written = Vec::with_capacity(results.len() * 64);
        let mut writer = ResultWriter {
            format: options.output,
            header_written: true,
        };
        writer.write(&results, &mut written);
        BlockOutput {
            written,
            results,
            summary,
        }
    })
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
