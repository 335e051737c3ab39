//! The `dancu-data` command line: argument definitions and the commands.
//! `main.rs` only parses arguments, calls [`run`] and maps errors to an exit
//! status.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use dancu_engine::{BuildOptions, Memory, Snapshot, SnapshotInfo};

use crate::build::{group, human_bytes, ImportOptions, SyntheticOptions};
use crate::error::{Error, Result};
use crate::export::ExportOptions;
use crate::import::Format;
use dancu_engine::KeyKind;

/// Builds, inspects and verifies dancu snapshots; makes the synthetic
/// national population; imports and exports records.
#[derive(Debug, Parser)]
#[command(name = "dancu-data", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A `dancu-data` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a snapshot from the synthetic population or from an NDJSON/CSV file.
    ///
    /// With --synthetic N, N citizens are generated from --seed (the same
    /// population for the same N and seed on any machine). With --from FILE,
    /// records are imported (format from the file name or --format); a bad
    /// line is reported with its number and reason, and --max-errors decides
    /// how many are skipped before the build stops. The snapshot is written
    /// to a temporary file next to --out and renamed when complete.
    Build(BuildArgs),
    /// Show a snapshot's header, record count and section sizes.
    Inspect {
        /// The snapshot file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also count legacy IDs, enrolments, deaths, ... (reads every record).
        #[arg(long)]
        counts: bool,
    },
    /// Check every section checksum; exit status 0 only when the file is whole.
    Verify {
        /// The snapshot file.
        file: PathBuf,
    },
    /// Write a snapshot's records as NDJSON or CSV (the import formats).
    Export {
        /// The snapshot file.
        #[arg(long = "from")]
        from: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: Format,
        /// Write at most K records.
        #[arg(long, value_name = "K")]
        limit: Option<u64>,
        /// Include biometric template hashes (needed to re-import enrolments).
        #[arg(long)]
        with_templates: bool,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Fold a change log into the next generation of a snapshot, offline.
    ///
    /// Replays every change of --log after the snapshot's folded sequence
    /// (cutting a torn tail, as the server does at start) and writes the
    /// next generation to --out with the same builder and the same bytes
    /// the server's compaction writes. The log itself is not trimmed.
    Compact {
        /// The snapshot the log continues.
        #[arg(long)]
        snapshot: PathBuf,
        /// The change-log directory.
        #[arg(long)]
        log: PathBuf,
        /// The snapshot file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Match a ministry's rows against a snapshot (what `POST
    /// /v1/citizens:match` answers), offline.
    ///
    /// Each row of --input (NDJSON or CSV: id, full_name, date_of_birth,
    /// sex, optional permanent_residence and province) gets one result line
    /// in --out, in order: found, deceased, not_found, malformed_id,
    /// missing_id or invalid, the claimed fields that disagree, and with
    /// --candidates up to 5 IDs found by name + date of birth (+ province)
    /// for rows whose ID is missing, malformed, unknown or disagrees. A
    /// summary goes to standard output at the end.
    Match(MatchArgs),
    /// Write a planted bulk-match input whose results are known (for
    /// `match --expect`): 50 % exact rows, 20 % with one wrong field, 10 %
    /// unknown IDs, 5 % malformed IDs, 15 % without ID.
    MatchSample {
        /// The snapshot to draw citizens from.
        #[arg(long)]
        snapshot: PathBuf,
        /// Number of rows.
        #[arg(long, value_name = "N")]
        n: u64,
        /// The rows (format from the file name or --format).
        #[arg(long)]
        out: PathBuf,
        /// The expected results (CSV).
        #[arg(long)]
        expect: PathBuf,
        /// Format of --out.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Seed of the random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print lookup keys for load tests, one per line.
    ///
    /// Keys that exist in the snapshot (12-digit IDs, 9-digit legacy IDs or
    /// 32-hex template hashes), or with --missing well-formed keys that do not.
    SampleKeys {
        /// The snapshot file.
        #[arg(long = "from")]
        from: PathBuf,
        /// How many keys (distinct).
        #[arg(long, value_name = "K")]
        n: u64,
        /// Which kind of key.
        #[arg(long, value_parser = key_kind_arg())]
        kind: KeyKind,
        /// Keys that are well formed but not in the snapshot.
        #[arg(long)]
        missing: bool,
        /// Seed of the random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Arguments of `build`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["synthetic", "from"])))]
pub struct BuildArgs {
    /// Generate N synthetic citizens.
    #[arg(long, value_name = "N")]
    pub synthetic: Option<u64>,
    /// Seed of the synthetic population.
    #[arg(long, default_value_t = 1, requires = "synthetic")]
    pub seed: u64,
    /// Import records from an NDJSON or CSV file (`-` for standard input).
    #[arg(long = "from", value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Format of --from (default: from the file name).
    #[arg(long, value_enum, requires = "from")]
    pub format: Option<Format>,
    /// Skip up to K bad lines; the next one stops the build (0: stop at the first).
    #[arg(long, value_name = "K", default_value_t = 0, requires = "from")]
    pub max_errors: u64,
    /// The snapshot file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Generation number written in the header.
    #[arg(long, default_value_t = 0)]
    pub generation: u64,
    /// Build time written in the header, seconds since the Unix epoch (default: now).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub build_time: Option<i64>,
    /// Never show a progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// Arguments of `match`.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// The snapshot to match against.
    #[arg(long)]
    pub snapshot: PathBuf,
    /// The rows (NDJSON or CSV; `-` for standard input).
    #[arg(long)]
    pub input: PathBuf,
    /// The results (`-` for standard output, then the summary goes to
    /// standard error).
    #[arg(long)]
    pub out: PathBuf,
    /// Format of --input (default: from the file name).
    #[arg(long, value_enum)]
    pub input_format: Option<Format>,
    /// Format of --out (default: from the file name, else that of --input).
    #[arg(long, value_enum)]
    pub output_format: Option<Format>,
    /// Search candidate IDs by name + date of birth (+ province).
    #[arg(long)]
    pub candidates: bool,
    /// Compare the results with an expectation file of `match-sample`.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// Never show a progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs a command, writing its normal output to `out` and diagnostics to
/// standard error.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let stdout = |e: std::io::Error| Error::Io {
        path: "output".into(),
        source: e,
    };
    match cli.command {
        Command::Build(args) => {
            let build = BuildOptions {
                generation: args.generation,
                build_time_unix: args.build_time,
                ..Default::default()
            };
            let report = match (args.synthetic, &args.from) {
                (Some(n), _) => crate::build::build_synthetic_with(
                    &args.out,
                    n,
                    args.seed,
                    &SyntheticOptions {
                        build,
                        progress: !args.no_progress,
                    },
                )?,
                (None, Some(from)) => {
                    let options = ImportOptions {
                        format: args.format,
                        max_errors: args.max_errors,
                        build,
                        progress: !args.no_progress,
                    };
                    let mut shown = 0u64;
                    let mut on_error = |e: &crate::LineError| {
                        shown += 1;
                        if shown <= 1000 {
                            eprintln!("{}: {e}", from.display());
                        } else if shown == 1001 {
                            eprintln!(
                                "{}: (further bad lines are counted, not shown)",
                                from.display()
                            );
                        }
                    };
                    crate::build::build_from_file(from, &args.out, &options, &mut on_error)?
                }
                (None, None) => unreachable!("clap requires --synthetic or --from"),
            };
            writeln!(out, "{report}").map_err(stdout)?;
        }
        Command::Inspect { file, json, counts } => {
            let snapshot = Snapshot::open_file(&file, Memory::Map)?;
            let info = snapshot.info();
            let counts = counts.then(|| Counts::of(&snapshot));
            if json {
                let value = serde_json::json!({ "file": file, "info": info, "counts": counts });
                serde_json::to_writer_pretty(&mut *out, &value).map_err(|e| stdout(e.into()))?;
                writeln!(out).map_err(stdout)?;
            } else {
                write_info(out, &file, &info, counts.as_ref()).map_err(stdout)?;
            }
        }
        Command::Compact {
            snapshot,
            log,
            out: path,
        } => {
            let base = Snapshot::open_file(&snapshot, Memory::Map)?;
            base.verify_checksums()?;
            let register = dancu_register::Register::open(&base, &log)?;
            if let Some(cut) = &register.recovery().cut {
                eprintln!("warning: {cut}");
            }
            let fold = register.fold(base.folded_sequence(), register.progress().applied)?;
            let summary = dancu_register::compact(
                &base,
                &fold.changes,
                fold.folded,
                base.generation() + 1,
                fold.last_change_time.unwrap_or(base.info().build_time_unix),
                &path,
            )?;
            let (changes, folded) = (fold.changes, fold.folded);
            writeln!(
                out,
                "{}: generation {}, {} records, {} changes folded (through sequence {folded}), {:.1} s",
                path.display(),
                base.generation() + 1,
                group(summary.records),
                group(changes.len() as u64),
                summary.elapsed.as_secs_f64()
            )
            .map_err(stdout)?;
        }
        Command::Verify { file } => {
            let snapshot = Snapshot::open_file(&file, Memory::Map)?;
            snapshot.verify_checksums()?;
            let info = snapshot.info();
            writeln!(
                out,
                "{}: OK, {} records, {} sections verified, checksum {}",
                file.display(),
                group(info.record_count),
                info.sections.len(),
                info.checksum
            )
            .map_err(stdout)?;
        }
        Command::Export {
            from,
            format,
            limit,
            with_templates,
            out: path,
        } => {
            let snapshot = Snapshot::open_file(&from, Memory::Map)?;
            let options = ExportOptions {
                format,
                limit,
                with_templates,
            };
            match path {
                Some(path) => {
                    let file = File::create(&path).map_err(Error::io(&path))?;
                    let n = crate::export::export(&snapshot, &options, BufWriter::new(file))
                        .map_err(|e| match e {
                            Error::Io { source, .. } => Error::Io {
                                path: path.clone(),
                                source,
                            },
                            e => e,
                        })?;
                    eprintln!("exported {} records to {}", group(n), path.display());
                }
                None => {
                    crate::export::export(&snapshot, &options, &mut *out)?;
                }
            }
        }
        Command::Match(args) => crate::match_cli::run_match(args, out)?,
        Command::MatchSample {
            snapshot,
            n,
            out: path,
            expect,
            format,
            seed,
        } => crate::match_cli::run_sample(&snapshot, n, &path, &expect, format, seed)?,
        Command::SampleKeys {
            from,
            n,
            kind,
            missing,
            seed,
        } => {
            let snapshot = Snapshot::open_file(&from, Memory::Map)?;
            let keys = crate::keys::sample_keys(&snapshot, kind, n, missing, seed)?;
            let mut w = BufWriter::new(out);
            for k in keys {
                writeln!(w, "{k}").map_err(stdout)?;
            }
            w.flush().map_err(stdout)?;
        }
    }
    Ok(())
}

/// Counts over every record (`inspect --counts`).
#[derive(Debug, Default, serde::Serialize)]
pub struct Counts {
    /// Records.
    pub records: u64,
    /// With a legacy ID.
    pub legacy_ids: u64,
    /// Enrolled face templates.
    pub face: u64,
    /// Enrolled fingerprint templates.
    pub fingerprint: u64,
    /// With a date of death.
    pub deceased: u64,
    /// With a legal representative.
    pub with_representative: u64,
    /// With a temporary residence.
    pub with_temporary_residence: u64,
    /// Heads of household.
    pub household_heads: u64,
}

impl Counts {
    fn of<D: AsRef<[u8]>>(s: &Snapshot<D>) -> Counts {
        let mut c = Counts::default();
        for v in s.iter() {
            c.records += 1;
            c.legacy_ids += u64::from(v.legacy_id().is_some());
            let e = v.enrolled();
            c.face += u64::from(e.face);
            c.fingerprint += u64::from(e.fingerprint);
            c.deceased += u64::from(v.date_of_death().is_some());
            c.with_representative += u64::from(v.representative().is_some());
            c.with_temporary_residence += u64::from(v.temporary_residence().is_some());
            c.household_heads += u64::from(
                v.household().and_then(|h| h.relationship)
                    == Some(dancu_engine::Relationship::Head),
            );
        }
        c
    }
}

fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    match dancu_engine::Date::from_days_since_epoch(days) {
        Ok(d) => format!(
            "{d} {:02}:{:02}:{:02} UTC",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ),
        Err(_) => "out of range".into(),
    }
}

fn write_info(
    out: &mut dyn Write,
    file: &std::path::Path,
    info: &SnapshotInfo,
    counts: Option<&Counts>,
) -> std::io::Result<()> {
    writeln!(out, "file            {}", file.display())?;
    writeln!(out, "format version  {}", info.format_version)?;
    writeln!(out, "generation      {}", info.generation)?;
    writeln!(out, "records         {}", group(info.record_count))?;
    writeln!(
        out,
        "build time      {} (unix {})",
        utc(info.build_time_unix),
        info.build_time_unix
    )?;
    writeln!(out, "checksum        {}", info.checksum)?;
    writeln!(
        out,
        "file size       {} ({} bytes)",
        human_bytes(info.file_bytes),
        group(info.file_bytes)
    )?;
    let per = info.file_bytes as f64 / info.record_count.max(1) as f64;
    writeln!(out, "bytes/citizen   {per:.1}")?;
    writeln!(
        out,
        "record pages    {} ({} home pages)",
        group(info.page_count),
        group(info.home_pages)
    )?;
    writeln!(out, "sections")?;
    writeln!(
        out,
        "  {:<16} {:>16} {:>16} {:>10}  checksum",
        "name", "offset", "length", "size"
    )?;
    for s in &info.sections {
        writeln!(
            out,
            "  {:<16} {:>16} {:>16} {:>10}  {}",
            s.name,
            group(s.offset),
            group(s.length),
            human_bytes(s.length),
            s.checksum
        )?;
    }
    if let Some(c) = counts {
        writeln!(out, "counts")?;
        for (name, v) in [
            ("records", c.records),
            ("legacy IDs", c.legacy_ids),
            ("face templates", c.face),
            ("fingerprints", c.fingerprint),
            ("deceased", c.deceased),
            ("representatives", c.with_representative),
            ("temporary res.", c.with_temporary_residence),
            ("household heads", c.household_heads),
        ] {
            writeln!(out, "  {name:<16} {:>14}", group(v))?;
        }
    }
    Ok(())
}

/// `--kind`: the engine's key kinds, listed with their descriptions.
fn key_kind_arg() -> impl clap::builder::TypedValueParser<Value = KeyKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        KeyKind::ALL.map(|k| PossibleValue::new(k.as_str()).help(k.describe())),
    )
    .try_map(|name| name.parse::<KeyKind>())
}
