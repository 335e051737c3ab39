//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong before or around a load run.
///
/// Failures of individual requests during a run are not errors: they are
/// counted in the report (status class `io`, or an unexpected HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A profile is not valid TOML or does not have the expected shape.
    #[error("profile {path}: {source}")]
    ProfileSyntax {
        /// The profile file.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: toml::de::Error,
    },
    /// A profile parses but says something impossible.
    #[error("invalid profile: {field}: {reason}")]
    InvalidProfile {
        /// Where in the profile (`callers[2].share`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A command-line value (or the same value in a profile) is malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        /// What kind of value (`duration`, `rate`, `SLO`, ...).
        what: &'static str,
        /// The text given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A line of a key file is not a key of the expected kind.
    #[error("{path}:{line}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// The workload needs keys of a kind that no key source provided.
    #[error(
        "operation {op} needs {kind} keys, but none were loaded (use --snapshot or --keys-{kind})"
    )]
    MissingKeys {
        /// The operation that needs them.
        op: &'static str,
        /// The kind of key (`id`, `legacy`, `face`, `fingerprint`).
        kind: &'static str,
    },
    /// The snapshot could not be opened or read.
    #[error("snapshot {path}: {message}")]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// The engine's message.
        message: String,
    },
    /// A `--target` is not a usable `http://host:port` URL.
    #[error("invalid target {url:?}: {reason}")]
    InvalidTarget {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A report file is not a dancu-loadgen report.
    #[error("report {path}: {source}")]
    ReportFormat {
        /// The report file.
        path: PathBuf,
        /// The JSON parser's message.
        #[source]
        source: serde_json::Error,
    },
    /// A histogram inside a report could not be decoded.
    #[error("histogram {name}: {reason}")]
    Histogram {
        /// Which histogram.
        name: String,
        /// Why decoding failed.
        reason: String,
    },
    /// Reports that cannot be merged (different interval lengths, ...).
    #[error("reports cannot be merged: {reason}")]
    Merge {
        /// Why.
        reason: String,
    },
    /// The async runtime or a worker thread could not be started.
    #[error("runtime: {source}")]
    Runtime {
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Error {
        Error::InvalidValue {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn profile(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidProfile {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
