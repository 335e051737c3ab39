//! Data for dancu: the reference tables, a deterministic synthetic national
//! population, importers and exporters, and the `build` command that writes
//! snapshots.
//!
//! Nothing real is in dancu. Every test, benchmark and demo uses the
//! population [`generate`] makes: `n` citizens from a seed, the same records
//! for the same `(n, seed)` on any machine, generated in parallel. It follows
//! the country's published figures where they exist (provinces and districts
//! by 2019 census population, ethnic groups, religions, surnames, blood
//! types) and states its assumptions where they do not (the age pyramid,
//! middle and given names, place names); see [`reference`](mod@reference) and the crate
//! README. It has households sharing addresses, parents and spouses that are
//! records of the same population, valid and unique personal IDs
//! (`PPP G YY NNNNNN`) consistent with birth place, sex and year, legacy IDs,
//! biometric template hashes, deaths, temporary residences and legal
//! representatives for orphaned minors.
//!
//! The main entry points:
//!
//! - [`generate`] / [`generate_chunks`]: the population as a stream;
//! - [`build_synthetic`]: generate and write a snapshot (what the server
//!   calls on first run to make its demo snapshot);
//! - [`build_from_file`]: import NDJSON or CSV ([`csvform`] documents the
//!   columns) with line-numbered errors;
//! - [`export()`]: write a snapshot back as NDJSON or CSV;
//! - [`sample_keys`]: keys for load tests;
//! - [`matching`]: bulk match input and output (`dancu-data match` and the
//!   server's `citizens:match`);
//! - [`cli`]: the `dancu-data` command line.
//!
//! # Example
//!
//! ```
//! let people: Vec<dancu_engine::Citizen> = dancu_data::generate(1_000, 42).collect();
//! assert_eq!(people.len(), 1_000);
//! // Deterministic: the same (n, seed) gives the same records.
//! assert_eq!(people, dancu_data::generate(1_000, 42).collect::<Vec<_>>());
//! // Valid: every ID agrees with the record's sex and birth year.
//! assert!(people.iter().all(|c| c.validate().is_ok()));
//! ```
//!
//! Writing a snapshot and reading it back:
//!
//! ```no_run
//! use dancu_engine::{Memory, Snapshot};
//!
//! let report = dancu_data::build_synthetic("demo.snap".as_ref(), 1_000_000, 1, false)?;
//! println!("{report}");
//! let snapshot = Snapshot::open_file("demo.snap", Memory::Map)?;
//! assert_eq!(snapshot.len(), 1_000_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod build;
pub mod cli;
pub mod csvform;
mod error;
mod export;
mod import;
mod keys;
mod match_cli;
pub mod match_sample;
pub mod matching;
pub mod reference;
mod rng;
pub mod synth;

pub use build::{
    build_from_file, build_from_reader, build_synthetic, build_synthetic_with, BuildReport,
    ImportOptions, SyntheticOptions,
};
pub use dancu_engine::KeyKind;
pub use error::{Error, LineError, Result};
pub use export::{export, ExportOptions};
pub use import::{Format, Records};
pub use keys::sample_keys;
pub use synth::{generate, generate_chunk, generate_chunks, ChunkStream, Generator};
