//! Bulk matching: a ministry's rows (ID, name, date of birth, sex, perhaps
//! a permanent residence and a province) checked against the register, one
//! [`RowResult`] per row: found, deceased, not found, malformed ID, missing
//! ID, or refused, which claimed fields disagree, and, when asked, up to
//! [`MAX_CANDIDATES`] IDs found by folded name + date of birth (+ province)
//! for rows whose ID is missing, malformed, unknown or disagrees.
//!
//! [`Matcher`] works on blocks of rows through a [`MatchSource`]: the
//! snapshot itself (offline, `dancu-data match`) or the server's reader
//! that puts the register's changes in front of it. The answers follow the
//! verification rules (DESIGN.md): claims only of the card's fields
//! (compared as [`crate::Claims::check`] compares them), and a death is told
//! only for a row whose every claim held. Parsing and the wire forms
//! ([`write_ndjson`], [`write_csv`]) are the same for the route and the
//! command, so their answers are the same bytes.

use std::borrow::Cow;
use std::fmt;

use crate::citizen::{Date, Sex};
use crate::fold::names_match;
use crate::id::{IdError, PersonalId};
use crate::json::write_str;
use crate::name_index::NameDob;
use crate::reader::Snapshot;
use crate::view::CitizenView;

/// IDs looked up together by [`MatchSource::lookup_many`] on a snapshot
/// before their texts are asked for: few enough that their records (about
/// 200 bytes each with their page headers) are still in the core's cache
/// then, many enough that `get_many`'s pipeline runs full most of the time.
const LOOKUP_CHUNK: usize = 256;

/// Most candidate IDs reported for one row.
pub const MAX_CANDIDATES: usize = 5;

/// The input columns, as named in a CSV header or an NDJSON object.
pub const MATCH_COLUMNS: [&str; 6] = [
    "id",
    "full_name",
    "date_of_birth",
    "sex",
    "permanent_residence",
    "province",
];

/// What a row says about its ID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdClaim {
    /// No ID (empty or absent).
    #[default]
    Missing,
    /// Not a well-formed personal ID.
    Malformed(IdError),
    /// A well-formed ID.
    Given(PersonalId),
}

/// A claimed field a row can disagree on, in the order results list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchField {
    /// `full_name`.
    FullName,
    /// `date_of_birth`.
    DateOfBirth,
    /// `sex`.
    Sex,
    /// `permanent_residence`.
    PermanentResidence,
}

impl MatchField {
    /// Every field, in result order.
    pub const ALL: [MatchField; 4] = [
        MatchField::FullName,
        MatchField::DateOfBirth,
        MatchField::Sex,
        MatchField::PermanentResidence,
    ];

    /// The column name.
    pub fn key(self) -> &'static str {
        match self {
            MatchField::FullName => "full_name",
            MatchField::DateOfBirth => "date_of_birth",
            MatchField::Sex => "sex",
            MatchField::PermanentResidence => "permanent_residence",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Why a row was not matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Its status: [`MatchStatus::Invalid`] or [`MatchStatus::Throttled`].
    pub status: MatchStatus,
    /// A machine-readable code (`invalid_row`, `empty_claims`, ...).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: Cow<'static, str>,
}

impl Refusal {
    /// A row that cannot be read or is not acceptable.
    pub fn invalid(code: &'static str, message: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal {
            status: MatchStatus::Invalid,
            code,
            message: message.into(),
        }
    }
}

/// One input row. Buffers are kept between rows (see [`MatchRow::clear`]),
/// so a block of rows allocates only while its longest strings grow.
#[derive(Clone, Debug, Default)]
pub struct MatchRow {
    /// Row number in the input, from 1 (a CSV header is row 0).
    pub row: u64,
    /// The ID column.
    pub id: IdClaim,
    /// Claimed full name; empty: not claimed.
    pub full_name: String,
    /// Claimed date of birth.
    pub date_of_birth: Option<Date>,
    /// Claimed sex.
    pub sex: Option<Sex>,
    /// Claimed permanent residence; empty: not claimed.
    pub permanent_residence: String,
    /// Province of birth registration (the ID's first three digits) that
    /// candidates must have.
    pub province: Option<u16>,
    /// Set when the row is not to be matched (unreadable, or refused).
    pub refused: Option<Refusal>,
}

impl MatchRow {
    /// Forgets the row, keeping its buffers.
    pub fn clear(&mut self, row: u64) {
        self.row = row;
        self.id = IdClaim::Missing;
        self.full_name.clear();
        self.date_of_birth = None;
        self.sex = None;
        self.permanent_residence.clear();
        self.province = None;
        self.refused = None;
    }

    /// Whether any field besides the ID is claimed.
    pub fn claims_anything(&self) -> bool {
        !self.full_name.is_empty()
            || self.date_of_birth.is_some()
            || self.sex.is_some()
            || !self.permanent_residence.is_empty()
    }

    /// The row's ID, if well formed.
    pub fn id(&self) -> Option<PersonalId> {
        match self.id {
            IdClaim::Given(id) => Some(id),
            _ => None,
        }
    }

    /// Checks the rules every row must meet before matching (at least one
    /// claim besides the ID, as for `citizens:verify`) and marks the row
    /// refused if it does not.
    pub fn check_claims(&mut self) {
        if self.refused.is_none() && !self.claims_anything() {
            self.refused = Some(Refusal::invalid(
                "empty_claims",
                "claim at least one field besides the ID",
            ));
        }
    }
}

/// A row's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchStatus {
    /// The ID is in the register (see the mismatched fields).
    Found,
    /// The ID is in the register, every claim held, and a death is recorded.
    Deceased,
    /// A well-formed ID no citizen has.
    NotFound,
    /// The ID is not a well-formed personal ID.
    MalformedId,
    /// The row has no ID.
    MissingId,
    /// The row cannot be read or claims nothing (see its error).
    Invalid,
    /// Refused: too many mismatches on this subject by this client.
    Throttled,
}

impl MatchStatus {
    /// Every status, in summary order.
    pub const ALL: [MatchStatus; 7] = [
        MatchStatus::Found,
        MatchStatus::Deceased,
        MatchStatus::NotFound,
        MatchStatus::MalformedId,
        MatchStatus::MissingId,
        MatchStatus::Invalid,
        MatchStatus::Throttled,
    ];

    /// The word written in results.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchStatus::Found => "found",
            MatchStatus::Deceased => "deceased",
            MatchStatus::NotFound => "not_found",
            MatchStatus::MalformedId => "malformed_id",
            MatchStatus::MissingId => "missing_id",
            MatchStatus::Invalid => "invalid",
            MatchStatus::Throttled => "throttled",
        }
    }
}

/// The outcome of one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowResult {
    /// The row number.
    pub row: u64,
    /// The row's ID, when well formed.
    pub id: Option<PersonalId>,
    /// The outcome.
    pub status: MatchStatus,
    /// Bits of [`MatchField`]: the claimed fields that disagree (found rows).
    pub mismatched: u8,
    /// Candidate IDs (the first `candidate_count`).
    pub candidates: [u64; MAX_CANDIDATES],
    /// How many of `candidates` are filled.
    pub candidate_count: u8,
    /// Why the row was refused or its ID is malformed.
    pub error: Option<(&'static str, Cow<'static, str>)>,
}

impl RowResult {
    /// The mismatched fields.
    pub fn mismatched_fields(&self) -> impl Iterator<Item = MatchField> + '_ {
        MatchField::ALL
            .into_iter()
            .filter(|f| self.mismatched & f.bit() != 0)
    }

    /// The candidate IDs.
    pub fn candidates(&self) -> &[u64] {
        &self.candidates[..usize::from(self.candidate_count)]
    }

    /// Whether the row's ID was checked and every claim held.
    pub fn matched(&self) -> bool {
        matches!(self.status, MatchStatus::Found | MatchStatus::Deceased) && self.mismatched == 0
    }
}

/// Where a [`Matcher`] reads records: a snapshot, or a snapshot behind the
/// register's changes.
pub trait MatchSource {
    /// Calls `visit(i, record)` for each `ids[i]`, in order.
    fn lookup_many(
        &self,
        ids: &[PersonalId],
        visit: &mut dyn FnMut(usize, Option<CitizenView<'_>>),
    );

    /// Calls `visit` with every record (as it is now) whose folded name and
    /// date of birth are `key`'s, until `visit` returns false.
    fn find_by_name_dob(&self, key: &NameDob, visit: &mut dyn FnMut(CitizenView<'_>) -> bool);

    /// [`MatchSource::find_by_name_dob`] for each of `keys` in turn, calling
    /// `visit(i, record)` for the records of `keys[i]`. A source may overlap
    /// the searches' memory loads but must visit the same records in the
    /// same order; this default searches one key at a time.
    fn find_many_by_name_dob(
        &self,
        keys: &[NameDob],
        visit: &mut dyn FnMut(usize, CitizenView<'_>) -> bool,
    ) {
        for (i, key) in keys.iter().enumerate() {
            self.find_by_name_dob(key, &mut |view| visit(i, view));
        }
    }

    /// Whether [`MatchSource::find_by_name_dob`] can find anything (the
    /// snapshot has a name index).
    fn has_name_index(&self) -> bool;
}

impl<D: AsRef<[u8]>> MatchSource for Snapshot<D> {
    fn lookup_many(
        &self,
        ids: &[PersonalId],
        visit: &mut dyn FnMut(usize, Option<CitizenView<'_>>),
    ) {
        // Chunk after chunk: look the chunk up (its records are in cache
        // then), start loading the names and addresses they point to, and
        // check the chunk before, whose texts have had a chunk's lookups to
        // arrive. Looking up a whole block first let its records fall out
        // of cache before their texts were asked for: reading them again
        // was two fifths of this function's time at 100 M.
        let mut views = Vec::with_capacity(LOOKUP_CHUNK);
        let mut loaded = Vec::with_capacity(LOOKUP_CHUNK);
        let mut loaded_at = 0;
        for (c, chunk) in ids.chunks(LOOKUP_CHUNK).enumerate() {
            self.get_many(chunk, &mut views);
            for view in views.iter().flatten() {
                view.prefetch_text(view.raw().full_name);
                view.prefetch_text(view.raw().permanent_residence);
            }
            for (i, view) in loaded.drain(..).enumerate() {
                visit(loaded_at + i, view);
            }
            loaded_at = c * LOOKUP_CHUNK;
            std::mem::swap(&mut views, &mut loaded);
        }
        for (i, view) in loaded.into_iter().enumerate() {
            visit(loaded_at + i, view);
        }
    }

    fn find_by_name_dob(&self, key: &NameDob, visit: &mut dyn FnMut(CitizenView<'_>) -> bool) {
        Snapshot::find_by_name_dob(self, key, visit)
    }

    fn find_many_by_name_dob(
        &self,
        keys: &[NameDob],
        visit: &mut dyn FnMut(usize, CitizenView<'_>) -> bool,
    ) {
        Snapshot::find_many_by_name_dob(self, keys, visit)
    }

    fn has_name_index(&self) -> bool {
        Snapshot::has_name_index(self)
    }
}

/// Matches blocks of rows; holds the scratch buffers between blocks.
#[derive(Default)]
pub struct Matcher {
    /// Whether to search candidates for rows whose ID is missing, malformed,
    /// unknown or disagrees.
    pub candidates: bool,
    ids: Vec<PersonalId>,
    /// The candidate searches of a block: their keys (buffers kept between
    /// blocks) and the index of each one's row.
    keys: Vec<NameDob>,
    key_rows: Vec<usize>,
}

impl Matcher {
    /// A matcher that searches candidates when `candidates` is true.
    pub fn new(candidates: bool) -> Matcher {
        Matcher {
            candidates,
            ..Matcher::default()
        }
    }

    /// Matches `rows` against `source`; `out` receives one result per row,
    /// in order (it is cleared first). The IDs of the block are looked up
    /// together, so their memory loads overlap.
    pub fn match_rows(
        &mut self,
        source: &dyn MatchSource,
        rows: &[MatchRow],
        out: &mut Vec<RowResult>,
    ) {
        out.clear();
        out.extend(rows.iter().map(initial_result));
        self.ids.clear();
        self.ids.extend(
            rows.iter()
                .zip(out.iter())
                .filter(|(_, r)| r.status == MatchStatus::NotFound)
                .filter_map(|(row, _)| row.id()),
        );
        // Results still `NotFound` wait for their lookup, in order.
        let mut waiting = out
            .iter_mut()
            .zip(rows)
            .filter(|(r, _)| r.status == MatchStatus::NotFound);
        source.lookup_many(&self.ids, &mut |_, view| {
            if let (Some((result, row)), Some(view)) = (waiting.next(), view) {
                check_row(row, &view, result);
            }
        });
        if self.candidates && source.has_name_index() {
            self.find_candidates(source, rows, out);
        }
    }

    /// Searches the candidates of every row of the block that wants them,
    /// all keys first so that the source can overlap the searches.
    fn find_candidates(
        &mut self,
        source: &dyn MatchSource,
        rows: &[MatchRow],
        out: &mut [RowResult],
    ) {
        self.key_rows.clear();
        for (i, (row, result)) in rows.iter().zip(out.iter()).enumerate() {
            let Some(dob) = row.date_of_birth.filter(|_| wants_candidates(row, result)) else {
                continue;
            };
            let n = self.key_rows.len();
            if n == self.keys.len() {
                self.keys.push(NameDob::default());
            }
            self.keys[n].set(&row.full_name, dob);
            self.key_rows.push(i);
        }
        let key_rows = &self.key_rows;
        source.find_many_by_name_dob(&self.keys[..key_rows.len()], &mut |k, view| {
            let i = key_rows[k];
            add_candidate(&mut out[i], rows[i].province, &view)
        });
    }
}

/// Adds `view`'s ID to a row's candidates if it was born in `province`
/// (when given) and is not there yet; whether to look for more.
fn add_candidate(result: &mut RowResult, province: Option<u16>, view: &CitizenView<'_>) -> bool {
    let id = view.raw_id();
    let place = PersonalId::from_u64(id).map(|id| id.place_code());
    if province.is_none_or(|p| place == Ok(p)) && !result.candidates().contains(&id) {
        result.candidates[usize::from(result.candidate_count)] = id;
        result.candidate_count += 1;
    }
    usize::from(result.candidate_count) < MAX_CANDIDATES
}

/// A row's result before its lookup: final for refused rows and rows
/// without a usable ID; `NotFound` for rows still to be looked up.
fn initial_result(row: &MatchRow) -> RowResult {
    let mut result = RowResult {
        row: row.row,
        id: row.id(),
        status: MatchStatus::NotFound,
        mismatched: 0,
        candidates: [0; MAX_CANDIDATES],
        candidate_count: 0,
        error: None,
    };
    if let Some(refusal) = &row.refused {
        result.status = refusal.status;
        result.error = Some((refusal.code, refusal.message.clone()));
        return result;
    }
    match row.id {
        IdClaim::Missing => result.status = MatchStatus::MissingId,
        IdClaim::Malformed(e) => {
            result.status = MatchStatus::MalformedId;
            result.error = Some(("invalid_id", Cow::Owned(e.to_string())));
        }
        IdClaim::Given(_) => {}
    }
    result
}

/// Compares a row's claims with the record of its ID.
fn check_row(row: &MatchRow, view: &CitizenView<'_>, result: &mut RowResult) {
    let mut mismatched = 0;
    let mut differs = |field: MatchField, held: bool| {
        if !held {
            mismatched |= field.bit();
        }
    };
    if !row.full_name.is_empty() {
        differs(
            MatchField::FullName,
            names_match(&row.full_name, view.full_name()),
        );
    }
    if let Some(dob) = row.date_of_birth {
        differs(MatchField::DateOfBirth, view.date_of_birth() == dob);
    }
    if let Some(sex) = row.sex {
        differs(MatchField::Sex, view.sex() == sex);
    }
    if !row.permanent_residence.is_empty() {
        let stored = view.permanent_residence();
        differs(
            MatchField::PermanentResidence,
            stored.is_some_and(|s| names_match(&row.permanent_residence, s)),
        );
    }
    result.mismatched = mismatched;
    // A death is told only to a caller whose every claim held (who holds
    // the identity already), as `Verification::alive` does.
    result.status = if mismatched == 0 && view.date_of_death().is_some() {
        MatchStatus::Deceased
    } else {
        MatchStatus::Found
    };
}

/// Candidates are searched for rows with a name and a date of birth whose
/// ID is missing, malformed, unknown or disagrees.
fn wants_candidates(row: &MatchRow, result: &RowResult) -> bool {
    let id_unusable = match result.status {
        MatchStatus::MissingId | MatchStatus::MalformedId | MatchStatus::NotFound => true,
        MatchStatus::Found => result.mismatched != 0,
        MatchStatus::Deceased | MatchStatus::Invalid | MatchStatus::Throttled => false,
    };
    id_unusable && !row.full_name.is_empty() && row.date_of_birth.is_some()
}

/// Appends a result as one NDJSON line:
/// `{"row":7,"id":"079089012345","status":"found","mismatched":["sex"]}`,
/// with `"candidates":[...]` when any were found and `"error":{code,
/// message}` for refused rows and malformed IDs.
pub fn write_ndjson(r: &RowResult, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"row\":");
    push_u64(out, r.row);
    if let Some(id) = r.id {
        out.extend_from_slice(b",\"id\":\"");
        out.extend_from_slice(&id.to_digits());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(r.status.as_str().as_bytes());
    out.push(b'"');
    if matches!(r.status, MatchStatus::Found | MatchStatus::Deceased) {
        out.extend_from_slice(b",\"mismatched\":[");
        for (i, f) in r.mismatched_fields().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(f.key().as_bytes());
            out.push(b'"');
        }
        out.push(b']');
    }
    if r.candidate_count > 0 {
        out.extend_from_slice(b",\"candidates\":[");
        for (i, &c) in r.candidates().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(&crate::id::fixed_digits::<12>(c));
            out.push(b'"');
        }
        out.push(b']');
    }
    if let Some((code, message)) = &r.error {
        out.extend_from_slice(b",\"error\":{\"code\":\"");
        out.extend_from_slice(code.as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        write_str(out, message);
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}

/// The header line of CSV results.
pub const CSV_RESULT_HEADER: &str = "row,id,status,mismatched,candidates,error\n";

/// Appends a result as one CSV line under [`CSV_RESULT_HEADER`]; lists are
/// `;`-separated, the error is `code: message`, quoted.
pub fn write_csv(r: &RowResult, out: &mut Vec<u8>) {
    push_u64(out, r.row);
    out.push(b',');
    if let Some(id) = r.id {
        out.extend_from_slice(&id.to_digits());
    }
    out.push(b',');
    out.extend_from_slice(r.status.as_str().as_bytes());
    out.push(b',');
    for (i, f) in r.mismatched_fields().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(f.key().as_bytes());
    }
    out.push(b',');
    for (i, &c) in r.candidates().iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(&crate::id::fixed_digits::<12>(c));
    }
    out.push(b',');
    if let Some((code, message)) = &r.error {
        out.push(b'"');
        out.extend_from_slice(code.as_bytes());
        out.extend_from_slice(b": ");
        for &b in message.as_bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Counts of a match run, per status and per mismatched field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchSummary {
    /// Rows matched.
    pub rows: u64,
    /// Rows per [`MatchStatus::ALL`] entry.
    pub by_status: [u64; 7],
    /// Found rows that disagree on each [`MatchField::ALL`] entry.
    pub mismatched: [u64; 4],
    /// Rows given at least one candidate.
    pub with_candidates: u64,
}

impl MatchSummary {
    /// Counts one result.
    pub fn add(&mut self, r: &RowResult) {
        self.rows += 1;
        let status = MatchStatus::ALL
            .iter()
            .position(|&s| s == r.status)
            .expect("every status is in ALL");
        self.by_status[status] += 1;
        for f in r.mismatched_fields() {
            self.mismatched[f as usize] += 1;
        }
        self.with_candidates += u64::from(r.candidate_count > 0);
    }

    /// Adds the counts of another run (a block matched elsewhere).
    pub fn merge(&mut self, other: &MatchSummary) {
        self.rows += other.rows;
        for (a, b) in self.by_status.iter_mut().zip(other.by_status) {
            *a += b;
        }
        for (a, b) in self.mismatched.iter_mut().zip(other.mismatched) {
            *a += b;
        }
        self.with_candidates += other.with_candidates;
    }

    /// Rows with this status.
    pub fn count(&self, status: MatchStatus) -> u64 {
        self.by_status[MatchStatus::ALL
            .iter()
            .position(|&s| s == status)
            .expect("every status is in ALL")]
    }
}

impl fmt::Display for MatchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rows              {}", self.rows)?;
        for (status, n) in MatchStatus::ALL.iter().zip(self.by_status) {
            writeln!(f, "  {:<16}{n}", status.as_str())?;
        }
        writeln!(f, "mismatched fields (found rows)")?;
        for (field, n) in MatchField::ALL.iter().zip(self.mismatched) {
            writeln!(f, "  {:<20}{n}", field.key())?;
        }
        write!(f, "rows with candidates {}", self.with_candidates)
    }
}
