//! The live register: dancu's write side.
//!
//! The snapshot (`dancu-engine`) is immutable; the register keeps what
//! changed since it was built and makes every change durable before it is
//! acknowledged:
//!
//! - [`ChangeLog`] is the append-only log (`register/LOG.md`): checksummed,
//!   sequence-numbered records in segment files, written by one thread with
//!   group commit, a damaged tail cut at reopen.
//! - [`Register`] decides changes ([`ChangeRequest`]: a registration with a
//!   new personal ID, a merge patch, a death, a biometric enrolment),
//!   honours idempotency keys (kept for [`RETENTION_S`], also past the
//!   compaction that trims their changes), numbers and logs them, and
//!   publishes them to the [`Overlay`] once durable.
//! - [`Overlay`] holds the changed records; its [`Overlay::get`],
//!   [`Overlay::get_legacy`] and [`Overlay::identify`] are the read paths
//!   that put changes in front of the snapshot.
//! - [`compact()`] folds the snapshot and the changes into the next
//!   generation.
//!
//! # Example
//!
//! ```no_run
//! use dancu_engine::{Memory, PersonalId, Snapshot};
//! use dancu_register::{ChangeRequest, Provenance, Register};
//!
//! let snapshot = Snapshot::open_file("register.snap", Memory::Map)?;
//! let register = Register::open(&snapshot, "changes".as_ref())?;
//! let id = PersonalId::parse("079089012345").expect("a well-formed ID");
//! let death = ChangeRequest::Death("2026-11-28".parse().expect("a date"));
//! let who = Provenance { client: "registrar-hcm".into(), reason: "certificate 88/2026".into(), idempotency_key: None };
//! let accepted = register.submit(&snapshot, Some(id), death, who, 1_796_000_000)?;
//! register.durable_blocking(accepted.sequence)?;
//! assert!(register.overlay().get(&snapshot, id).unwrap().view().date_of_death().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod change;
mod compact;
mod decide;
mod error;
mod idempotency;
mod log;
mod overlay;
mod register;

pub use change::{
    merge_patch, ChangeKind, ChangeRequest, LoggedChange, Provenance, CHANGEABLE_FIELDS,
};
pub use compact::compact;
pub use decide::province_of;
pub use error::{Error, Rejection, Result};
pub use idempotency::{KEYS_FILE, RETENTION_S};
pub use log::{frame, ChangeLog, Durable, RawRecord, Recovery, TailCut, LOG_FORMAT_VERSION};
pub use overlay::{Entry, Found, Overlay, Template};
pub use register::{Accepted, FeedItem, Fold, Progress, Register};
