//! The engine's one error type.

use std::path::PathBuf;

/// Everything that can go wrong building, opening or checking a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not start with the snapshot magic: not a dancu snapshot.
    #[error("not a dancu snapshot (magic {found:02x?}, expected {expected:02x?})")]
    BadMagic {
        /// The first eight bytes found.
        found: [u8; 8],
        /// The magic a snapshot starts with.
        expected: [u8; 8],
    },
    /// The endianness mark is wrong: written by a foreign or broken writer.
    #[error("endianness mark {found:#010x} is not {expected:#010x}")]
    Endianness {
        /// The mark found.
        found: u32,
        /// The mark expected.
        expected: u32,
    },
    /// A format version this reader cannot read.
    #[error("snapshot format version {found} is not supported (this build reads {oldest}..={supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The oldest version this build reads.
        oldest: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The file is shorter than its header says.
    #[error("snapshot truncated: {what} needs {needed} bytes, the file has {found}")]
    Truncated {
        /// What did not fit.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        found: u64,
    },
    /// The header's own checksum does not match.
    #[error("header checksum mismatch (stored {expected:016x}, computed {found:016x})")]
    HeaderChecksum {
        /// Stored.
        expected: u64,
        /// Computed.
        found: u64,
    },
    /// A section's bytes do not match its checksum.
    #[error("section {section} is corrupt: checksum {found:016x}, expected {expected:016x}")]
    ChecksumMismatch {
        /// Section name.
        section: &'static str,
        /// Stored checksum.
        expected: u64,
        /// Computed checksum.
        found: u64,
    },
    /// The header is internally inconsistent.
    #[error("malformed snapshot header: {0}")]
    Malformed(String),
    /// Two records share a key that must be unique.
    #[error("duplicate {kind} {key}")]
    DuplicateKey {
        /// `personal ID`, `legacy ID` or `biometric template`.
        kind: &'static str,
        /// The key.
        key: String,
    },
    /// A record handed to the builder is not acceptable.
    #[error("record {position} (ID {id}): {reason}")]
    InvalidRecord {
        /// Zero-based position in the input.
        position: u64,
        /// Its ID.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The input exceeds a limit of the format.
    #[error("too large for the snapshot format: {0}")]
    TooLarge(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
