//! `dancu-data match` and `dancu-data match-sample`: files, progress bar,
//! summary and check around [`crate::matching::match_stream`].

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use dancu_engine::{Memory, Snapshot};

use crate::build::{group, progress_bar};
use crate::cli::MatchArgs;
use crate::error::{Error, Result};
use crate::import::Format;
use crate::match_sample::{read_expectations, write_sample, CheckReport};
use crate::matching::{match_stream, MatchOptions};

fn format_of(path: &Path, given: Option<Format>) -> Result<Format> {
    given
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| Error::UnknownFormat {
            path: path.to_path_buf(),
        })
}

/// `dancu-data match`.
pub(crate) fn run_match(args: MatchArgs, out: &mut dyn Write) -> Result<()> {
    let snapshot = Snapshot::open_file(&args.snapshot, Memory::Map)?;
    // Checked once here, the names and addresses compared below are read
    // without a UTF-8 check each (a tenth of the time when they were).
    snapshot.check_text_heap()?;
    let input_format = format_of(&args.input, args.input_format)?;
    let output_format = args
        .output_format
        .or_else(|| Format::from_path(&args.out))
        .unwrap_or(input_format);
    if args.candidates && !snapshot.has_name_index() {
        eprintln!(
            "warning: {} is format version {}, which has no name index: no candidates \
             (rebuild it with `dancu-data build` to search them)",
            args.snapshot.display(),
            snapshot.info().format_version
        );
    }
    let expectations = match &args.expect {
        Some(path) => Some(read_expectations(BufReader::new(
            File::open(path).map_err(Error::io(path))?,
        ))?),
        None => None,
    };
    let (input, input_len): (Box<dyn Read + Send>, u64) = if args.input == Path::new("-") {
        (Box::new(std::io::stdin()), 0)
    } else {
        let file = File::open(&args.input).map_err(Error::io(&args.input))?;
        let len = file.metadata().map_or(0, |m| m.len());
        (Box::new(file), len)
    };
    let to_stdout = args.out == Path::new("-");
    let output: Box<dyn Write + Send> = if to_stdout {
        Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout()))
    } else {
        let file = File::create(&args.out).map_err(Error::io(&args.out))?;
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let pb = progress_bar(!args.no_progress, input_len, "bytes");
    pb.set_message("matching");
    let options = MatchOptions {
        input: input_format,
        output: output_format,
        candidates: args.candidates,
    };
    let mut check = CheckReport::default();
    let started = Instant::now();
    let summary = match_stream(
        &snapshot,
        input,
        output,
        options,
        |result| {
            if let Some(expected) = &expectations {
                check.check(result, expected.get(result.row));
            }
        },
        |_, bytes| pb.set_position(bytes),
    )
    .map_err(|e| match e {
        Error::Io { source, .. } => Error::Io {
            path: args.out.clone(),
            source,
        },
        e => e,
    })?;
    pb.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let mut report = format!(
        "{summary}\ntime              {elapsed:.2} s, {} rows/s\n",
        group((summary.rows as f64 / elapsed.max(1e-9)) as u64)
    );
    if expectations.is_some() {
        report.push_str(&format!("{check}\n"));
    }
    if to_stdout {
        eprint!("{report}");
    } else {
        out.write_all(report.as_bytes())
            .map_err(Error::io("output"))?;
    }
    Ok(())
}

/// `dancu-data match-sample`.
pub(crate) fn run_sample(
    snapshot: &Path,
    n: u64,
    out: &Path,
    expect: &Path,
    format: Option<Format>,
    seed: u64,
) -> Result<()> {
    let snap = Snapshot::open_file(snapshot, Memory::Map)?;
    let format = format_of(out, format)?;
    let rows = BufWriter::with_capacity(1 << 20, File::create(out).map_err(Error::io(out))?);
    let expected = BufWriter::new(File::create(expect).map_err(Error::io(expect))?);
    write_sample(&snap, n, seed, format, rows, expected)?;
    eprintln!("wrote {} rows to {}", group(n), out.display());
    Ok(())
}
