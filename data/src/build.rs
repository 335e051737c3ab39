//! Building snapshots: from the synthetic population or from an import.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use dancu_engine::{BuildOptions, BuildSummary, Citizen, SnapshotBuilder};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::error::{Error, LineError, Result};
use crate::import::{Format, Records};
use crate::synth::{generate_chunks, MAX_SYNTHETIC};

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// What the engine wrote.
    pub summary: BuildSummary,
    /// Input lines skipped as bad (imports only; each was reported).
    pub skipped: u64,
    /// Wall time of the whole build: generation or parsing, and writing.
    pub elapsed: Duration,
    /// Part of `elapsed` until the last record was pushed (generation or
    /// parsing overlapped with the builder's `push`); the rest is the
    /// builder's `finish` (sorting, indexes, writing).
    pub push_elapsed: Duration,
}

impl BuildReport {
    /// Records per second over the whole build.
    pub fn throughput(&self) -> f64 {
        self.summary.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// File bytes per record.
    pub fn bytes_per_citizen(&self) -> f64 {
        self.summary.file_bytes as f64 / (self.summary.records.max(1)) as f64
    }
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(f, "built {}", s.path.display())?;
        writeln!(f, "  records         {}", group(s.records))?;
        writeln!(f, "  skipped lines   {}", group(self.skipped))?;
        writeln!(
            f,
            "  file size       {} ({} bytes)",
            human_bytes(s.file_bytes),
            group(s.file_bytes)
        )?;
        writeln!(f, "  bytes/citizen   {:.1}", self.bytes_per_citizen())?;
        writeln!(
            f,
            "  time            {:.2} s ({:.2} s generating/reading and pushing, {:.2} s finishing)",
            self.elapsed.as_secs_f64(),
            self.push_elapsed.as_secs_f64(),
            self.elapsed.saturating_sub(self.push_elapsed).as_secs_f64()
        )?;
        write!(
            f,
            "  throughput      {} citizens/s",
            group(self.throughput().round() as u64)
        )
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn group(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `123456789` → `117.7 MiB`.
pub(crate) fn human_bytes(v: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v} B")
    } else {
        format!("{x:.1} {}", units[u])
    }
}

/// A progress bar on standard error when asked for and standard error is a
/// terminal; hidden otherwise.
pub(crate) fn progress_bar(wanted: bool, len: u64, unit: &str) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let template = format!(
        "{{spinner}} {{msg}} [{{elapsed_precise}}] [{{wide_bar}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
    );
    pb.set_style(
        ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_message("generating");
    pb
}

fn finish(builder: SnapshotBuilder, pb: &ProgressBar) -> Result<BuildSummary> {
    pb.set_message("writing indexes");
    pb.enable_steady_tick(Duration::from_millis(200));
    let summary = builder.finish();
    pb.finish_and_clear();
    Ok(summary?)
}

/// Options of a synthetic build.
#[derive(Clone, Debug, Default)]
pub struct SyntheticOptions {
    /// Header fields of the snapshot.
    pub build: BuildOptions,
    /// Show a progress bar (only when standard error is a terminal).
    pub progress: bool,
}

/// Builds the synthetic population `(n, seed)` into a snapshot at `path`.
///
/// Generation runs on the rayon pool while this thread feeds the builder;
/// memory stays bounded (a few chunks in flight plus the builder's state).
/// This is what the server calls to make its demo snapshot on first run.
///
/// ```no_run
/// let report = dancu_data::build_synthetic("demo.snap".as_ref(), 1_000_000, 1, false)?;
/// println!("{report}");
/// # Ok::<(), dancu_data::Error>(())
/// ```
pub fn build_synthetic(path: &Path, n: u64, seed: u64, progress: bool) -> Result<BuildReport> {
    build_synthetic_with(
        path,
        n,
        seed,
        &SyntheticOptions {
            progress,
            ..Default::default()
        },
    )
}

/// [`build_synthetic`] with all options.
pub fn build_synthetic_with(
    path: &Path,
    n: u64,
    seed: u64,
    options: &SyntheticOptions,
) -> Result<BuildReport> {
    if n > MAX_SYNTHETIC {
        return Err(Error::TooLarge {
            requested: n,
            max: MAX_SYNTHETIC,
        });
    }
    let started = Instant::now();
    let mut builder = SnapshotBuilder::create(path, options.build.clone())?;
    let pb = progress_bar(options.progress, n, "citizens");
    for chunk in generate_chunks(n, seed) {
        for citizen in &chunk {
            builder.push(citizen)?;
        }
        pb.inc(chunk.len() as u64);
        // Freeing a chunk costs as much as a good part of building it: leave
        // that to the pool rather than the builder's thread.
        rayon::spawn(move || drop(chunk));
    }
    let push_elapsed = started.elapsed();
    let summary = finish(builder, &pb)?;
    Ok(BuildReport {
        summary,
        skipped: 0,
        elapsed: started.elapsed(),
        push_elapsed,
    })
}

/// Options of an import build.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The input format; `None` to tell it from the file name.
    pub format: Option<Format>,
    /// Bad lines to skip before stopping: 0 stops at the first one.
    pub max_errors: u64,
    /// Header fields of the snapshot.
    pub build: BuildOptions,
    /// Show a progress bar (only when standard error is a terminal).
    pub progress: bool,
}

struct CountingReader<R> {
    inner: R,
    pb: ProgressBar,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pb.inc(n as u64);
        Ok(n)
    }
}

/// Builds a snapshot at `out` from an NDJSON or CSV file (`-` reads standard
/// input, which needs an explicit format). Every bad line is passed to
/// `on_error` and counted; more than `options.max_errors` of them stop the
/// build with [`Error::TooManyErrors`].
pub fn build_from_file(
    input: &Path,
    out: &Path,
    options: &ImportOptions,
    on_error: &mut dyn FnMut(&LineError),
) -> Result<BuildReport> {
    let format = options
        .format
        .or_else(|| Format::from_path(input))
        .ok_or_else(|| Error::UnknownFormat {
            path: input.to_path_buf(),
        })?;
    if input == Path::new("-") {
        let pb = progress_bar(false, 0, "");
        let reader = BufReader::with_capacity(
            1 << 20,
            CountingReader {
                inner: std::io::stdin(),
                pb,
            },
        );
        return build_from_reader(reader, format, out, options, on_error);
    }
    let file = File::open(input).map_err(Error::io(input))?;
    let len = file.metadata().map_err(Error::io(input))?.len();
    let pb = progress_bar(options.progress, len, "bytes");
    pb.set_message("importing");
    let reader = BufReader::with_capacity(
        1 << 20,
        CountingReader {
            inner: file,
            pb: pb.clone(),
        },
    );
    let report = build_from_reader(reader, format, out, options, on_error);
    pb.finish_and_clear();
    report.map_err(|e| match e {
        Error::Io { path, source } if path == Path::new("input") => Error::Io {
            path: input.to_path_buf(),
            source,
        },
        e => e,
    })
}

/// Keys already seen in an import, to report a duplicate on its own line.
#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    legacy: HashSet<u32>,
    digests: HashSet<[u8; 16]>,
}

impl Seen {
    fn check(&mut self, c: &Citizen) -> std::result::Result<(), String> {
        if !self.ids.insert(c.id.get()) {
            return Err(format!("duplicate id {}", c.id));
        }
        if let Some(l) = c.legacy_id {
            if !self.legacy.insert(l.get()) {
                self.ids.remove(&c.id.get());
                return Err(format!("duplicate legacy_id {l}"));
            }
        }
        let digests = [
            c.biometric_templates.face,
            c.biometric_templates.fingerprint,
        ];
        for (k, d) in digests.iter().enumerate() {
            if let Some(d) = d {
                if !self.digests.insert(d.0) {
                    self.ids.remove(&c.id.get());
                    if let Some(l) = c.legacy_id {
                        self.legacy.remove(&l.get());
                    }
                    for earlier in digests[..k].iter().flatten() {
                        self.digests.remove(&earlier.0);
                    }
                    return Err(format!("duplicate biometric template {d}"));
                }
            }
        }
        Ok(())
    }
}

/// Lines parsed per batch (a batch is parsed on the rayon pool while the
/// previous one is pushed into the builder).
const BATCH: usize = 4096;

type Parsed = (u64, std::result::Result<Citizen, LineError>);

/// [`build_from_file`] over any buffered reader. Lines are split on a helper
/// thread and parsed in parallel batches on the rayon pool; records reach
/// the builder in input order.
pub fn build_from_reader<R: BufRead + Send>(
    reader: R,
    format: Format,
    out: &Path,
    options: &ImportOptions,
    on_error: &mut dyn FnMut(&LineError),
) -> Result<BuildReport> {
    let started = Instant::now();
    let mut records = Records::new(reader, format)?;
    let parser = records.parser();
    let mut builder = SnapshotBuilder::create(out, options.build.clone())?;
    let mut seen = Seen::default();
    let mut skipped = 0u64;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = sync_channel::<Result<Vec<Parsed>>>(2);
        scope.spawn(move || loop {
            let mut raw = Vec::with_capacity(BATCH);
            let mut failure = None;
            while raw.len() < BATCH {
                match records.next_raw() {
                    None => break,
                    Some(Ok(r)) => raw.push(r),
                    Some(Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let last = raw.len() < BATCH;
            if !raw.is_empty() {
                let parsed: Vec<Parsed> = raw
                    .into_par_iter()
                    .map(|(line, r)| (line, parser.parse(line, r)))
                    .collect();
                if tx.send(Ok(parsed)).is_err() {
                    return; // the builder side gave up
                }
            }
            if let Some(e) = failure {
                let _ = tx.send(Err(e));
                return;
            }
            if last {
                return;
            }
        });
        for batch in rx {
            for (line, parsed) in batch? {
                let reason = match parsed {
                    Err(e) => e.reason,
                    Ok(c) => match seen.check(&c) {
                        Err(reason) => reason,
                        Ok(()) => match builder.push(&c) {
                            Ok(()) => continue,
                            Err(dancu_engine::Error::InvalidRecord { reason, .. }) => reason,
                            Err(e) => return Err(e.into()),
                        },
                    },
                };
                let error = LineError { line, reason };
                skipped += 1;
                on_error(&error);
                if skipped > options.max_errors {
                    return Err(Error::TooManyErrors {
                        error,
                        count: skipped,
                        max_errors: options.max_errors,
                    });
                }
            }
        }
        Ok(())
    })?;
    let push_elapsed = started.elapsed();
    let summary = builder.finish()?;
    Ok(BuildReport {
        summary,
        skipped,
        elapsed: started.elapsed(),
        push_elapsed,
    })
}
