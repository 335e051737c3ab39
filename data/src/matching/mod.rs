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
//! each thread reads a block, matches it and hands it to the writer, which
//! writes the results in input order.

mod json_row;
mod records;
mod rows;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{mpsc, Mutex};

use dancu_engine::matching::{
    write_csv, write_ndjson, MatchRow, MatchSource, MatchSummary, Matcher, RowResult,
    CSV_RESULT_HEADER,
};

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

/// Blocks in flight per matching thread (being read, matched, or waiting
/// for the writer): enough that a thread never waits for a slower one's
/// block to be written, few enough that memory stays a few megabytes per
/// thread however long the input.
const BLOCKS_IN_FLIGHT_PER_THREAD: usize = 4;

/// A block of whole records, its place in the input, and the buffers its
/// results will be written into.
struct Block {
    /// The block's number in the input, from 0: the writer's order.
    seq: u64,
    /// Input bytes read up to the end of this block (for the progress).
    bytes_end: u64,
    parser: RowParser,
    buffers: OutputBuffers,
}

/// A block's result buffers; the writer hands them back (one set per
/// block in flight) so that a run allocates them once.
#[derive(Default)]
struct OutputBuffers {
    written: Vec<u8>,
    results: Vec<RowResult>,
}

/// What one block gave: its results, written and as values, and counts.
struct BlockOutput {
    seq: u64,
    bytes_end: u64,
    summary: MatchSummary,
    buffers: OutputBuffers,
}

/// Matches every row of `input` against `source`, writing one result per
/// row to `output` in input order, and returns the counts. Blocks of about
/// a megabyte are matched on all cores; memory stays a few blocks per core
/// however long the input.
///
/// Each matching thread takes the next block from the shared reader (a
/// lock held while the block is read), matches it and hands it to this
/// thread, which writes the blocks in input order and shows their results
/// to `inspect` (to check them). No thread waits for a round of blocks to
/// finish: with rounds, the cores idled at each round's slowest block
/// (171 % CPU of 200 at 100 M). At most [`BLOCKS_IN_FLIGHT_PER_THREAD`]
/// blocks per thread are out at once: a thread needs a free set of result
/// buffers to take a block. `progress` is called with the rows and input
/// bytes written after each block.
pub fn match_stream<S: MatchSource + Sync>(
    source: &S,
    input: impl Read + Send,
    output: impl Write + Send,
    options: MatchOptions,
    inspect: impl FnMut(&RowResult) + Send,
    progress: impl FnMut(u64, u64),
) -> Result<MatchSummary> {
    let threads = rayon::current_num_threads().max(1);
    let in_flight = threads * BLOCKS_IN_FLIGHT_PER_THREAD;
    let (free_buffers, buffers) = mpsc::sync_channel(in_flight);
    for _ in 0..in_flight {
        free_buffers
            .send(OutputBuffers::default())
            .expect("the channel holds every set");
    }
    let reader = Mutex::new(BlockReader {
        input,
        format: options.input,
        parser: RowParser::new(options.input),
        pending: Vec::new(),
        bytes_read: 0,
        blocks: 0,
        eof: false,
        failed: None,
        free_buffers: buffers,
    });
    let written = std::thread::scope(|scope| {
        let (to_writer, outputs) = mpsc::sync_channel::<BlockOutput>(in_flight);
        for _ in 0..threads {
            let to_writer = to_writer.clone();
            let reader = &reader;
            scope.spawn(move || match_blocks(source, reader, to_writer, options));
        }
        drop(to_writer);
        write_blocks(
            outputs,
            free_buffers,
            output,
            options.output,
            inspect,
            progress,
        )
    });
    let reader = reader.into_inner().expect("no matching thread panics");
    match reader.failed {
        Some(e) => Err(e),
        None => written,
    }
}

/// A matching thread: takes blocks from `reader` until the input ends,
/// the reader fails, or the writer stops, and sends each block's results
/// to the writer.
fn match_blocks<S: MatchSource, R: Read>(
    source: &S,
    reader: &Mutex<BlockReader<R>>,
    to_writer: mpsc::SyncSender<BlockOutput>,
    options: MatchOptions,
) {
    // Kept between blocks: the input bytes, the rows (their strings
    // allocated once, not once per row) and the matcher's scratch.
    let mut bytes = Vec::new();
    let mut rows = Vec::new();
    let mut matcher = Matcher::new(options.candidates);
    loop {
        let block = {
            let mut reader = reader.lock().expect("no matching thread panics");
            match reader.next_block(&mut bytes) {
                Ok(Some(block)) => block,
                Ok(None) => return,
                Err(e) => {
                    reader.failed.get_or_insert(e);
                    return;
                }
            }
        };
        let output = match_block(source, &mut matcher, &mut rows, &bytes, block, options);
        if to_writer.send(output).is_err() {
            return; // the writer failed: its error is returned
        }
    }
}

/// Reads the input block after block, each block ending at a record
/// boundary, and numbers their rows.
struct BlockReader<R> {
    input: R,
    format: Format,
    parser: RowParser,
    /// Read bytes not yet in a block (a partial record).
    pending: Vec<u8>,
    bytes_read: u64,
    /// Blocks read so far.
    blocks: u64,
    eof: bool,
    /// The read error that ended the input, if one did.
    failed: Option<Error>,
    /// Result buffers the writer has handed back.
    free_buffers: mpsc::Receiver<OutputBuffers>,
}

impl<R: Read> BlockReader<R> {
    /// Reads the next block into `bytes`; `None` at the end of the input,
    /// after a read error, or when the writer has stopped.
    fn next_block(&mut self, bytes: &mut Vec<u8>) -> Result<Option<Block>> {
        if self.failed.is_some() {
            return Ok(None);
        }
        // Waits while every set of buffers is out: the writer is behind.
        let Ok(buffers) = self.free_buffers.recv() else {
            return Ok(None);
        };
        bytes.clear();
        bytes.append(&mut self.pending);
        while !self.eof {
            let start = bytes.len();
            bytes.resize(start + BLOCK_BYTES, 0);
            let n = read_full(&mut self.input, &mut bytes[start..]).map_err(|e| Error::Io {
                path: "-".into(),
                source: e,
            })?;
            bytes.truncate(start + n);
            self.bytes_read += n as u64;
            self.eof = n == 0;
            let cut = match last_record_end(bytes, self.format) {
                _ if self.eof => bytes.len(),
                Some(end) => end + 1,
                None => continue, // a record longer than a block: read on
            };
            self.pending.extend_from_slice(&bytes[cut..]);
            bytes.truncate(cut);
            if self.parser.wants_header() && !bytes.is_empty() {
                let end = next_record(bytes, self.format).unwrap_or(bytes.len());
                self.parser.read_header(&bytes[..end])?;
                bytes.drain(..(end + 1).min(bytes.len()));
            }
            if !bytes.is_empty() {
                break;
            }
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let first_row = self.parser.rows() + 1;
        self.parser.rows += records::count_records(bytes, self.format);
        let seq = self.blocks;
        self.blocks += 1;
        Ok(Some(Block {
            seq,
            bytes_end: self.bytes_read - self.pending.len() as u64,
            parser: self.parser.continuing_at(first_row),
            buffers,
        }))
    }
}

/// The writer (the calling thread): writes the blocks' results in input
/// order as they come, hands their buffers back, shows the results to
/// `inspect` and adds up the counts.
fn write_blocks(
    outputs: mpsc::Receiver<BlockOutput>,
    free_buffers: mpsc::SyncSender<OutputBuffers>,
    mut output: impl Write,
    format: Format,
    mut inspect: impl FnMut(&RowResult),
    mut progress: impl FnMut(u64, u64),
) -> Result<MatchSummary> {
    let io = |e| Error::Io {
        path: "-".into(),
        source: e,
    };
    let mut writer = ResultWriter::new(format);
    let mut summary = MatchSummary::default();
    let mut header = Vec::new();
    // Blocks that came before an earlier one, by number (at most the
    // blocks in flight).
    let mut early = BTreeMap::new();
    let mut next = 0;
    for block in outputs {
        early.insert(block.seq, block);
        while let Some(block) = early.remove(&next) {
            next += 1;
            header.clear();
            writer.write_raw(&[], &mut header);
            output.write_all(&header).map_err(io)?;
            output.write_all(&block.buffers.written).map_err(io)?;
            summary.merge(&block.summary);
            block.buffers.results.iter().for_each(&mut inspect);
            progress(summary.rows, block.bytes_end);
            // The matching threads have stopped if this fails.
            let _ = free_buffers.send(block.buffers);
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

/// Matches one block of whole records, `bytes`.
fn match_block<S: MatchSource>(
    source: &S,
    matcher: &mut Matcher,
    rows: &mut Vec<MatchRow>,
    bytes: &[u8],
    block: Block,
    options: MatchOptions,
) -> BlockOutput {
    let Block {
        seq,
        bytes_end,
        mut parser,
        mut buffers,
    } = block;
    let mut n = 0;
    for record in records::records(bytes, options.input) {
        if n == rows.len() {
            rows.push(MatchRow::default());
        }
        parser.read_row(record, &mut rows[n]);
        n += 1;
    }
    let results = &mut buffers.results;
    matcher.match_rows(source, &rows[..n], results);
    let mut summary = MatchSummary::default();
    results.iter().for_each(|r| summary.add(r));
    buffers.written.clear();
    let mut writer = ResultWriter {
        format: options.output,
        header_written: true,
    };
    writer.write(results, &mut buffers.written);
    BlockOutput {
        seq,
        bytes_end,
        summary,
        buffers,
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
