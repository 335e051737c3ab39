//! The dancu snapshot: every citizen record of a national population register
//! in one immutable, memory-mapped file, with indexes by personal ID, legacy
//! ID and biometric template identifier.
//!
//! - [`schema`] is the one table of a record's fields ([`Field`]): JSON
//!   key, CSV columns, who may read it, who may claim it, whether a
//!   registrar may change it. Everything that names fields reads it.
//! - [`Citizen`] is a record as owned, typed values;
//!   [`PersonalId`] and [`LegacyId`] parse and explain malformed IDs.
//! - [`SnapshotBuilder`] streams records into a snapshot file
//!   (`engine/FORMAT.md` specifies it); [`write_next_generation`] writes a
//!   snapshot's next generation with some records replaced or added, by
//!   merging rather than rebuilding (compaction).
//! - [`Snapshot`] opens one over any bytes (a mapping, a `Vec<u8>`) in
//!   microseconds, checks its integrity with [`Snapshot::verify_checksums`],
//!   and answers lookups with zero-copy [`CitizenView`]s: [`Snapshot::get`],
//!   the prefetching [`Snapshot::get_many`], [`Snapshot::get_legacy`],
//!   [`Snapshot::identify`].
//! - [`Claims`] matches what a caller asserts about a citizen (the API's
//!   "verify") without disclosing the record; names compare after
//!   [`fold`]ing.
//! - [`matching`] checks a ministry's rows in bulk ([`matching::Matcher`]),
//!   finding candidates through the name + date-of-birth index
//!   ([`NameDob`], [`Snapshot::find_by_name_dob`]).
//! - [`write_citizen_json`] writes the API's JSON form of a record;
//!   [`prefetch_citizen_json`] warms its heap strings a few records ahead.
//! - Shared with the data and load generators: the seedable [`rng::Rng`],
//!   the lookup [`KeyKind`]s of sample-keys files, [`write_json_str`] and
//!   [`fixed_digits`].
//!
//! The modules depend one way: the format layer ([`format`]: constants,
//! on-disk types, hashes, checksums, prefetch; `text`: the heap's string
//! encoding; the vocabularies, IDs and [`schema`]) knows nothing above it;
//! the reader and its views build on it, and so does the file layout
//! (`layout`), which the builder feeds and which reads nothing of the
//! reader; [`OwnedRecord`] joins the builder's encoder to a view, and
//! `next_generation` the reader to the layout.
//!
//! # Example
//!
//! ```no_run
//! use dancu_engine::{Memory, PersonalId, Snapshot};
//!
//! let snapshot = Snapshot::open_file("register.snap", Memory::Map)?;
//! snapshot.verify_checksums()?;
//! let id = PersonalId::parse("079089012345").expect("a well-formed ID");
//! if let Some(citizen) = snapshot.get(id) {
//!     println!("{} born {}", citizen.full_name(), citizen.date_of_birth());
//! }
//! # Ok::<(), dancu_engine::Error>(())
//! ```
#![deny(missing_docs)]

// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod builder;
pub mod citizen;
mod claims;
pub mod codes;
mod error;
pub mod fold;
pub mod format;
pub mod id;
mod json;
mod layout;
pub mod matching;
mod memory;
mod name_index;
mod next_generation;
mod owned;
mod reader;
pub mod rng;
mod sample_keys;
pub mod schema;
mod section_table;
mod text;
mod view;
mod vocab;

pub use builder::{build_snapshot, BuildOptions, BuildSummary, SnapshotBuilder, PARTITIONS};
pub use citizen::{
    BiometricTemplates, BloodType, Citizen, Country, Date, Ethnicity, Household, MaritalStatus,
    Modality, Relationship, Relative, Religion, SchemaError, Sex, TemplateDigest,
};
pub use claims::{Claim, Claims, Verification, CARD_CLAIMS, CLAIM_FIELDS};
pub use error::{Error, Result};
pub use fold::{fold, fold_into, names_match};
pub use id::{fixed_digits, IdError, LegacyId, PersonalId};
pub use json::{
    prefetch_citizen_json, write_citizen_json, write_str as write_json_str, write_verification_json,
};
pub use memory::{Memory, SnapshotBytes, StableBytes};
pub use name_index::NameDob;
pub use next_generation::{write_next_generation, Replacement};
pub use owned::OwnedRecord;
pub use reader::{SectionInfo, Snapshot, SnapshotInfo};
pub use sample_keys::{KeyKind, UnknownKeyKind};
pub use schema::{ClaimScope, Field, FieldSet, FieldSpec, ScopeClass, CSV_COLUMNS, FIELDS};
pub use view::{CitizenView, Enrolled, HouseholdView, RelativeView, UNREADABLE_TEXT};
