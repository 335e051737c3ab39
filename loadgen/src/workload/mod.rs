//! The workload: who calls, with which operations, on which keys — and the
//! [`Generator`] that turns it into request bytes.

use std::fmt;

use crate::error::{Error, Result};
use crate::keys::{KeyKind, KeyPool};

mod claims;
mod distinct;
mod generator;

pub(crate) use generator::write_date;
pub use generator::Generator;

/// An API operation (see DESIGN.md, "HTTP API (v1)").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `GET /v1/citizens/{id}` with a full-read key.
    Get,
    /// `GET /v1/citizens/{id}` with a basic-scope key, or asking for the
    /// basic fields only.
    GetBasic,
    /// `POST /v1/citizens:batchGet`.
    BatchGet,
    /// `POST /v1/citizens:verify`.
    Verify,
    /// `POST /v1/citizens:batchVerify`.
    BatchVerify,
    /// `GET /v1/legacy-ids/{cmnd}`.
    Legacy,
    /// `POST /v1/biometrics:identify`.
    Identify,
    /// `POST /v1/citizens`: a birth registration (registrar scope).
    Register,
    /// `PATCH /v1/citizens/{id}`: a move (`current_residence`).
    Update,
    /// `POST /v1/citizens/{id}:recordDeath` for a person not yet dead.
    Death,
    /// `POST /v1/qr:verify`: a checkpoint scans a chip card's QR code.
    Qr,
    /// `POST /v1/citizens:match`: a ministry's rows (NDJSON, one request
    /// per batch of `batch_verify` rows), scope `citizen:match`.
    Match,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 12] = [
        Op::Get,
        Op::GetBasic,
        Op::BatchGet,
        Op::Verify,
        Op::BatchVerify,
        Op::Legacy,
        Op::Identify,
        Op::Register,
        Op::Update,
        Op::Death,
        Op::Qr,
        Op::Match,
    ];

    /// The name used in profiles, flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetBasic => "get_basic",
            Op::BatchGet => "batch_get",
            Op::Verify => "verify",
            Op::BatchVerify => "batch_verify",
            Op::Legacy => "legacy",
            Op::Identify => "identify",
            Op::Register => "register",
            Op::Update => "update",
            Op::Death => "death",
            Op::Qr => "qr",
            Op::Match => "match",
        }
    }

    /// Parses a name from [`Op::as_str`] (`-` may stand for `_`).
    pub fn parse(name: &str) -> Result<Op> {
        let n = name.trim().replace('-', "_");
        Op::ALL
            .into_iter()
            .find(|op| op.as_str() == n)
            .ok_or_else(|| {
                Error::invalid(
                    "operation",
                    name,
                    "expected get, get_basic, batch_get, verify, batch_verify, legacy, identify, \
                     register, update, death, qr or match",
                )
            })
    }

    /// Position in [`Op::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the operation changes the register (needs the `registrar`
    /// scope and an `X-Change-Reason`).
    pub fn is_write(self) -> bool {
        matches!(self, Op::Register | Op::Update | Op::Death)
    }

    /// The key kinds the operation draws from (none for `register`).
    pub fn key_kinds(self) -> &'static [KeyKind] {
        match self {
            Op::Register => &[],
            Op::Legacy => &[KeyKind::Legacy],
            Op::Identify => &[KeyKind::Face, KeyKind::Fingerprint],
            _ => &[KeyKind::Id],
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What answer a request should get; anything else counts as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A 2xx (known keys; batches always, whatever their items).
    Success,
    /// 404 (a well-formed key that no citizen holds); verify may say 200
    /// with `"match": false` instead.
    NotFound,
    /// 400 (a malformed key).
    BadRequest,
}

impl Expect {
    /// Whether `status` is the answer this request should get.
    pub fn accepts(self, op: Op, status: u16) -> bool {
        match self {
            Expect::Success => (200..300).contains(&status),
            Expect::NotFound => status == 404 || (op == Op::Verify && status == 200),
            Expect::BadRequest => status == 400,
        }
    }
}

/// How a caller's requests spread over the keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Popularity {
    /// Every key equally likely.
    Uniform,
    /// Rank k drawn with probability ∝ 1/k^s.
    Zipf(f64),
}

/// Inclusive range of batch sizes; each batch draws its size uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSize {
    /// Smallest batch.
    pub min: u32,
    /// Largest batch.
    pub max: u32,
}

impl BatchSize {
    /// Always `n` items.
    pub fn fixed(n: u32) -> BatchSize {
        BatchSize { min: n, max: n }
    }
}

/// One upstream gateway and how it calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// Name in reports (`social-insurance`).
    pub name: String,
    /// Share of all requests (callers' shares add up to 1).
    pub share: f64,
    /// API key; `None` uses the run's `--key`.
    pub key: Option<String>,
    /// API key with the `citizen:read:basic` scope for `get_basic`; without
    /// one, `get_basic` asks for the basic fields with `?fields=`.
    pub basic_key: Option<String>,
    /// Operations with relative weights.
    pub ops: Vec<(Op, f64)>,
    /// Key popularity.
    pub popularity: Popularity,
    /// Share of keys that are malformed (expect 400).
    pub malformed: f64,
    /// Share of keys that are well-formed but unknown (expect 404).
    pub unknown: f64,
    /// Share of verify requests whose date of birth deliberately differs.
    pub mismatch: f64,
    /// Items per `batch_get`.
    pub batch_get: BatchSize,
    /// Items per `batch_verify`.
    pub batch_verify: BatchSize,
}

impl Caller {
    /// A caller doing one operation on uniformly popular, valid keys.
    pub fn single(op: Op) -> Caller {
        Caller {
            name: "cli".into(),
            share: 1.0,
            key: None,
            basic_key: None,
            ops: vec![(op, 1.0)],
            popularity: Popularity::Uniform,
            malformed: 0.0,
            unknown: 0.0,
            mismatch: 0.0,
            batch_get: BatchSize::fixed(100),
            batch_verify: BatchSize::fixed(100),
        }
    }
}

/// All callers of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The callers; at least one.
    pub callers: Vec<Caller>,
}

impl Workload {
    /// Whether any caller sends batches (whose bodies are worth building
    /// ahead, off the sending thread: see `feed`).
    pub fn has_batches(&self) -> bool {
        self.callers.iter().any(|c| {
            c.share > 0.0
                && c.ops
                    .iter()
                    .any(|&(op, w)| w > 0.0 && matches!(op, Op::BatchGet | Op::BatchVerify))
        })
    }

    /// Checks shares, weights, batch sizes and exponents.
    pub fn validate(&self) -> Result<()> {
        if self.callers.is_empty() {
            return Err(Error::profile("callers", "at least one caller is needed"));
        }
        let mut total = 0.0;
        for (i, c) in self.callers.iter().enumerate() {
            let at = |f: &str| format!("callers[{i}] ({}).{f}", c.name);
            if !(c.share.is_finite() && c.share > 0.0) {
                return Err(Error::profile(at("share"), "must be a positive number"));
            }
            total += c.share;
            if c.ops.is_empty() {
                return Err(Error::profile(
                    at("ops"),
                    "at least one operation is needed",
                ));
            }
            for &(op, w) in &c.ops {
                if !(w.is_finite() && w >= 0.0) {
                    return Err(Error::profile(
                        at(&format!("ops.{op}")),
                        "weight must be ≥ 0",
                    ));
                }
            }
            if c.ops.iter().map(|o| o.1).sum::<f64>() <= 0.0 {
                return Err(Error::profile(at("ops"), "the weights add up to zero"));
            }
            for (name, v) in [
                ("malformed", c.malformed),
                ("unknown", c.unknown),
                ("mismatch", c.mismatch),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(Error::profile(at(name), "must lie between 0 and 1"));
                }
            }
            if c.malformed + c.unknown > 1.0 {
                return Err(Error::profile(
                    at("unknown"),
                    "malformed + unknown exceeds 1",
                ));
            }
            if let Popularity::Zipf(s) = c.popularity {
                if !(s.is_finite() && s >= 0.0) {
                    return Err(Error::profile(
                        at("popularity"),
                        "the Zipf exponent must be ≥ 0",
                    ));
                }
            }
            for (name, b) in [("batch_get", c.batch_get), ("batch_verify", c.batch_verify)] {
                if b.min == 0 || b.max < b.min || b.max > 1000 {
                    return Err(Error::profile(
                        at(name),
                        "batch sizes must satisfy 1 ≤ min ≤ max ≤ 1000 (the API's limit)",
                    ));
                }
            }
        }
        if (total - 1.0).abs() > 1e-3 {
            return Err(Error::profile(
                "callers.share",
                format!("the callers' shares add up to {total:.4}, not 1"),
            ));
        }
        Ok(())
    }

    /// Fails when an operation in use needs keys the pool lacks (unless
    /// every key it sends is made up: `unknown + malformed = 1`).
    pub fn check_keys(&self, keys: &KeyPool) -> Result<()> {
        for c in &self.callers {
            if c.malformed + c.unknown >= 1.0 {
                continue;
            }
            for &(op, w) in &c.ops {
                if w <= 0.0 {
                    continue;
                }
                let kinds = op.key_kinds();
                if !kinds.is_empty() && kinds.iter().all(|&k| keys.len(k) == 0) {
                    return Err(Error::MissingKeys {
                        op: op.as_str(),
                        kind: kinds[0].as_str(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// HTTP method of a generated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST with a JSON body
    Post,
    /// PATCH with a JSON (merge patch) body
    Patch,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }

    /// Whether the request carries a body.
    pub fn has_body(self) -> bool {
        self != Method::Get
    }
}

/// A generated request: reusable buffers, overwritten by each
/// [`Generator::next`].
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// Method.
    pub method: Option<Method>,
    /// Path and query, e.g. `/v1/citizens/079089012345`.
    pub path: Vec<u8>,
    /// JSON body (empty for GET).
    pub body: Vec<u8>,
    /// A write: send [`crate::writes::CHANGE_REASON`].
    pub change_reason: bool,
}

/// What the recorder needs to know about a generated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Index of the caller in the workload.
    pub caller: u16,
    /// The operation.
    pub op: Op,
    /// The answer it should get.
    pub expect: Expect,
    /// Send the caller's basic-scope key instead of its main one.
    pub basic_key: bool,
}
