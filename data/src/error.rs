//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// A bad input line of an import: where it is and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the input (for CSV, the header is line 1).
    pub line: u64,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for LineError {}

/// Everything that can go wrong in `dancu-data`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The snapshot engine refused (invalid record, duplicate key, damaged
    /// or foreign file, ...).
    #[error(transparent)]
    Engine(#[from] dancu_engine::Error),
    /// The change log or the register refused (compaction).
    #[error(transparent)]
    Register(#[from] dancu_register::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (`-` for standard input or output).
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// More bad lines than `--max-errors` allows; the build stopped.
    #[error(
        "{error} (bad line {count}, more than --max-errors {max_errors}; the build was stopped)"
    )]
    TooManyErrors {
        /// The line that went over the limit.
        error: LineError,
        /// Bad lines seen so far, this one included.
        count: u64,
        /// The limit.
        max_errors: u64,
    },
    /// A CSV header names a column that does not exist, or lacks a required one.
    #[error("CSV header: {0}")]
    BadHeader(String),
    /// The input format cannot be told from the file name.
    #[error(
        "{path}: cannot tell the format from the file name; use --format ndjson or --format csv"
    )]
    UnknownFormat {
        /// The input.
        path: PathBuf,
    },
    /// A synthetic population larger than the generator makes.
    #[error("{requested} synthetic citizens requested; the generator makes at most {max}")]
    TooLarge {
        /// Requested size.
        requested: u64,
        /// [`crate::synth::MAX_SYNTHETIC`].
        max: u64,
    },
    /// Fewer keys of a kind exist than were asked for.
    #[error("{wanted} {kind} keys requested, the snapshot has {available}")]
    NotEnoughKeys {
        /// Kind of key.
        kind: &'static str,
        /// Requested.
        wanted: u64,
        /// Available.
        available: u64,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Whether this is a write to a closed pipe (`dancu-data export | head`),
    /// which a command-line tool treats as a normal end.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
