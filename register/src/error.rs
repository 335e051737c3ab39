//! The register's one error type.

use std::path::PathBuf;

/// Everything that can go wrong opening, writing or compacting the register.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a log file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A log segment whose header is not a dancu change-log header.
    #[error("{path}: not a dancu change-log segment ({reason})")]
    BadSegment {
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A damaged record with intact records after it: cutting it would drop
    /// acknowledged changes, so the log is refused.
    #[error("{path}: change record at byte {offset} is damaged ({reason}) and is not the tail; restore the segment from a backup")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log's sequence numbers do not continue the snapshot's.
    #[error("the change log starts at sequence {log_first} but the snapshot folded only up to {folded}: changes {missing} are missing")]
    Gap {
        /// First sequence in the log.
        log_first: u64,
        /// Last sequence folded into the snapshot.
        folded: u64,
        /// The missing range, as text.
        missing: String,
    },
    /// A replicated change that does not continue this register's log.
    #[error(
        "replicated change {got} does not follow this register's last change (expected {expected})"
    )]
    OutOfOrder {
        /// The sequence number the log expects next.
        expected: u64,
        /// The one it was given.
        got: u64,
    },
    /// An earlier write or fsync of the log failed: the register takes no
    /// more changes until it is reopened.
    #[error("the change log is failing and takes no writes: {0}")]
    LogFailed(String),
    /// A change the register refuses (the request's fault).
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// The snapshot engine failed (compaction).
    #[error(transparent)]
    Engine(#[from] dancu_engine::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Why a change request is refused; each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The request is malformed (400): names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The JSON field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A well-formed request that the register's state or today's date
    /// contradicts (422): a date of birth or death in the future, a death
    /// before birth, a merge patch that leaves a relative or household
    /// incomplete. Names the field. No request schema can rule these out,
    /// so they are not 400.
    #[error("{field}: {message}")]
    Inconsistent {
        /// The JSON field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The subject does not exist (404).
    #[error("no citizen has ID {0}")]
    UnknownCitizen(String),
    /// A referenced person does not exist (422): names the field.
    #[error("{field}: no citizen has ID {id}")]
    UnknownReference {
        /// The field holding the reference (e.g. `father.id`).
        field: String,
        /// The ID referred to.
        id: String,
    },
    /// The change contradicts the record's state (409), e.g. a second death.
    #[error("{0}")]
    Conflict(String),
    /// An `Idempotency-Key` reused with a different request (422).
    #[error("Idempotency-Key {0:?} was used for a different request")]
    IdempotencyMismatch(String),
    /// No serial is left for the ID prefix (507-like; practically never).
    #[error("no free serial is left for ID prefix {0}")]
    SerialsExhausted(String),
}

/// The register's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
