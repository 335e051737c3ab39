//! What one audit entry records: the operation, its outcome, who asked,
//! from where, about whom, and which fields were returned or claimed.

use std::net::IpAddr;

use dancu_engine::FieldSet;

use crate::keys::ClientId;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `GET /v1/citizens/{id}`.
    Get,
    /// One item of `POST /v1/citizens:batchGet`.
    BatchGet,
    /// `POST /v1/citizens:verify`.
    Verify,
    /// One item of `POST /v1/citizens:batchVerify`.
    BatchVerify,
    /// `GET /v1/legacy-ids/{cmnd}`.
    Legacy,
    /// `POST /v1/biometrics:identify`.
    Identify,
    /// `POST /v1/citizens`: a birth or first registration.
    Register,
    /// `PATCH /v1/citizens/{id}`.
    Update,
    /// `POST /v1/citizens/{id}:recordDeath`.
    Death,
    /// `PUT /v1/citizens/{id}/biometrics/{modality}`.
    Enrol,
    /// One change read from `GET /v1/changes`.
    Changes,
    /// One row of `POST /v1/citizens:match` (or a candidate it named).
    Match,
}

impl Operation {
    /// Whether the operation is one item of a batch request (written as one
    /// grouped line per request).
    pub fn is_batch(self) -> bool {
        matches!(
            self,
            Operation::BatchGet | Operation::BatchVerify | Operation::Changes | Operation::Match
        )
    }

    /// The word written to the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::BatchGet => "batch_get",
            Operation::Verify => "verify",
            Operation::BatchVerify => "batch_verify",
            Operation::Legacy => "legacy",
            Operation::Identify => "identify",
            Operation::Register => "register",
            Operation::Update => "update",
            Operation::Death => "death",
            Operation::Enrol => "enrol",
            Operation::Changes => "changes",
            Operation::Match => "match",
        }
    }
}

/// What the caller learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A record was returned (or an ID, for identify).
    Found,
    /// No such person.
    NotFound,
    /// Verification: every claimed field matched.
    Match,
    /// Verification: at least one claimed field did not match.
    Mismatch,
    /// A change was made (the register's write routes).
    Changed,
    /// A change was refused (invalid, conflicting, unknown subject).
    Refused,
}

impl Outcome {
    /// Every outcome a batch item can have, in the order a batch line lists
    /// them.
    pub const ALL: [Outcome; 4] = [
        Outcome::Found,
        Outcome::NotFound,
        Outcome::Match,
        Outcome::Mismatch,
    ];

    /// The word written to the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::NotFound => "not_found",
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Changed => "changed",
            Outcome::Refused => "refused",
        }
    }
}

/// One access, as queued: no heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    /// Personal ID (12 digits) of the subject; 0 when unknown.
    pub subject: u64,
    /// Legacy ID asked for; 0 when none.
    pub legacy_id: u32,
    /// Who asked.
    pub client: ClientId,
    /// What was done.
    pub operation: Operation,
    /// What they learnt.
    pub outcome: Outcome,
    /// The caller's address (the socket's peer, or `X-Forwarded-For` from a
    /// trusted proxy).
    pub source: Option<IpAddr>,
    /// The request ID echoed in `X-Request-Id`.
    pub request_id: u64,
    /// The fields returned (reads) or claimed (verification).
    pub fields: FieldSet,
    /// Identify: the first eight bytes of the SHA-256 of the digest asked
    /// for (never the digest); 0 otherwise.
    pub digest_prefix: u64,
}

impl Entry {
    /// An access with no source, request ID, fields or digest yet.
    pub fn new(
        time_us: u64,
        client: ClientId,
        operation: Operation,
        subject: u64,
        outcome: Outcome,
    ) -> Entry {
        Entry {
            time_us,
            subject,
            legacy_id: 0,
            client,
            operation,
            outcome,
            source: None,
            request_id: 0,
            fields: FieldSet::NONE,
            digest_prefix: 0,
        }
    }
}
