//! The [`Generator`]: a workload's callers, operations, keys and their
//! shares drawn into request bytes, with no allocation per request.

use std::sync::Arc;

use dancu_engine::{fixed_digits, write_json_str};

use super::claims::ClaimArena;
use super::distinct::DistinctSet;
use super::{BatchSize, Expect, Meta, Method, Op, Popularity, Request, Workload};
use crate::keys::{random_valid_id, KeyKind, KeyPool, PersonalId, Sex};
use crate::rng::{Rng, Zipf};
use crate::writes::WritePlan;

/// Per-caller sampling tables, built once.
#[derive(Debug, Clone)]
struct CallerPlan {
    op_cdf: Vec<(f64, Op)>,
    zipf: [Option<Zipf>; 4],
    popularity: Popularity,
    malformed: f64,
    unknown: f64,
    mismatch: f64,
    batch_get: BatchSize,
    batch_verify: BatchSize,
    has_basic_key: bool,
}

/// Turns a [`Workload`] and a [`KeyPool`] into a stream of requests.
///
/// One generator per worker thread; they share the workload and keys.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Rng,
    /// Scratch for a batch's draws (kind, key index), reused.
    draws: Vec<(Expect, usize, bool)>,
    /// The subjects a batch has named so far, reused.
    seen: DistinctSet,
    keys: Arc<KeyPool>,
    /// Every known ID's verify claim, rendered once, when the workload
    /// sends batches of claims (see [`ClaimArena`]).
    claims: Option<Arc<ClaimArena>>,
    callers: Arc<Vec<CallerPlan>>,
    caller_cdf: Arc<Vec<f64>>,
    writes: Arc<WritePlan>,
}

const BASIC_FIELDS: &[u8] = b"?fields=id,full_name,date_of_birth,sex,nationality";

fn kind_slot(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Id => 0,
        KeyKind::Legacy => 1,
        KeyKind::Face => 2,
        KeyKind::Fingerprint => 3,
    }
}

impl Generator {
    /// A generator; `seed` fixes its sequence.
    pub fn new(workload: &Workload, keys: Arc<KeyPool>, seed: u64) -> Generator {
        let total: f64 = workload.callers.iter().map(|c| c.share).sum();
        let mut acc = 0.0;
        let caller_cdf = workload
            .callers
            .iter()
            .map(|c| {
                acc += c.share / total;
                acc
            })
            .collect();
        let callers = workload
            .callers
            .iter()
            .map(|c| {
                let wsum: f64 = c.ops.iter().map(|o| o.1).sum();
                let mut acc = 0.0;
                let op_cdf = c
                    .ops
                    .iter()
                    .filter(|o| o.1 > 0.0)
                    .map(|&(op, w)| {
                        acc += w / wsum;
                        (acc, op)
                    })
                    .collect();
                let zipf = [
                    KeyKind::Id,
                    KeyKind::Legacy,
                    KeyKind::Face,
                    KeyKind::Fingerprint,
                ]
                .map(|k| match c.popularity {
                    Popularity::Zipf(s) if keys.len(k) > 0 => {
                        Some(Zipf::new(keys.len(k) as u64, s))
                    }
                    _ => None,
                });
                CallerPlan {
                    op_cdf,
                    zipf,
                    popularity: c.popularity,
                    malformed: c.malformed,
                    unknown: c.unknown,
                    mismatch: c.mismatch,
                    batch_get: c.batch_get,
                    batch_verify: c.batch_verify,
                    has_basic_key: c.basic_key.is_some(),
                }
            })
            .collect();
        let deaths = workload
            .callers
            .iter()
            .any(|c| c.ops.iter().any(|&(op, w)| op == Op::Death && w > 0.0));
        let claim_batches = workload.callers.iter().any(|c| {
            c.share > 0.0
                && c.ops
                    .iter()
                    .any(|&(op, w)| w > 0.0 && matches!(op, Op::BatchVerify | Op::Match))
        });
        let claims = if claim_batches {
            ClaimArena::build(&keys).map(Arc::new)
        } else {
            None
        };
        Generator {
            rng: Rng::new(seed),
            draws: Vec::new(),
            seen: DistinctSet::default(),
            writes: Arc::new(WritePlan::new(&keys, deaths)),
            claims,
            keys,
            callers: Arc::new(callers),
            caller_cdf: Arc::new(caller_cdf),
        }
    }

    /// A generator sharing the tables but with its own random sequence.
    pub fn fork(&self, seed: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
            draws: Vec::new(),
            seen: DistinctSet::default(),
            keys: Arc::clone(&self.keys),
            claims: self.claims.clone(),
            callers: Arc::clone(&self.callers),
            caller_cdf: Arc::clone(&self.caller_cdf),
            writes: Arc::clone(&self.writes),
        }
    }

    /// The same generator writing every claim from the pool, as drawn,
    /// instead of copying it from the arena: the reference the arena's
    /// bytes are tested against.
    #[cfg(test)]
    fn without_claim_arena(mut self) -> Generator {
        self.claims = None;
        self
    }

    /// Writes the next request into `req` and says what it is.
    pub fn next(&mut self, req: &mut Request) -> Meta {
        req.path.clear();
        req.body.clear();
        let u = self.rng.unit();
        let caller = self
            .caller_cdf
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.caller_cdf.len() - 1);
        let callers = Arc::clone(&self.callers);
        let plan = &callers[caller];
        let u = self.rng.unit();
        let op = plan
            .op_cdf
            .iter()
            .find(|&&(c, _)| u < c)
            .or(plan.op_cdf.last())
            .map_or(Op::Get, |&(_, op)| op);
        let mut basic_key = false;
        req.change_reason = op.is_write();
        let expect = match op {
            Op::Get | Op::GetBasic => {
                req.method = Some(Method::Get);
                req.path.extend_from_slice(b"/v1/citizens/");
                let e = self.write_id(plan, &mut req.path);
                if op == Op::GetBasic {
                    if plan.has_basic_key {
                        basic_key = true;
                    } else {
                        req.path.extend_from_slice(BASIC_FIELDS);
                    }
                }
                e
            }
            Op::Legacy => {
                req.method = Some(Method::Get);
                req.path.extend_from_slice(b"/v1/legacy-ids/");
                self.write_legacy(plan, &mut req.path)
            }
            Op::BatchGet => {
                req.method = Some(Method::Post);
                req.path.extend_from_slice(b"/v1/citizens:batchGet");
                let n = self.batch(plan.batch_get);
                req.body.extend_from_slice(b"{\"ids\":[");
                for i in 0..n {
                    if i > 0 {
                        req.body.push(b',');
                    }
                    req.body.push(b'"');
                    self.write_id(plan, &mut req.body);
                    req.body.push(b'"');
                }
                req.body.extend_from_slice(b"]}");
                Expect::Success
            }
            Op::Verify => {
                req.method = Some(Method::Post);
                req.path.extend_from_slice(b"/v1/citizens:verify");
                self.write_verify(plan, &mut req.body)
            }
            Op::BatchVerify => {
                req.method = Some(Method::Post);
                req.path.extend_from_slice(b"/v1/citizens:batchVerify");
                let n = self.batch(plan.batch_verify);
                req.body.extend_from_slice(b"{\"requests\":[");
                // Draw every claim first, then write: each claim is a
                // random citizen's (a cache miss), and the draws start
                // loading them all, so the misses overlap.
                let draws = self.draw_distinct_subjects(plan, n);
                for (k, &(e, i, mismatch)) in draws.iter().enumerate() {
                    if k > 0 {
                        req.body.push(b',');
                    }
                    self.write_verify_drawn(e, i, mismatch, &mut req.body);
                }
                self.draws = draws;
                req.body.extend_from_slice(b"]}");
                Expect::Success
            }
            Op::Qr => {
                req.method = Some(Method::Post);
                req.path.extend_from_slice(b"/v1/qr:verify");
                self.write_qr(plan, &mut req.body)
            }
            Op::Match => {
                req.method = Some(Method::Post);
                // The transport sends a fixed `Content-Type`; the query
                // names the body's format.
                req.path
                    .extend_from_slice(b"/v1/citizens:match?format=ndjson");
                let n = self.batch(plan.batch_verify);
                let draws = self.draw_distinct_subjects(plan, n);
                for &(e, i, mismatch) in &draws {
                    // A row is a verify claim; a malformed ID is that row's
                    // `malformed_id` line, the answer is still 200.
                    self.write_verify_drawn(e, i, mismatch, &mut req.body);
                    req.body.push(b'\n');
                }
                self.draws = draws;
                Expect::Success
            }
            Op::Identify => {
                req.method = Some(Method::Post);
                req.path.extend_from_slice(b"/v1/biometrics:identify");
                self.write_identify(plan, &mut req.body)
            }
            Op::Register => {
                req.method = Some(Method::Post);
                req.path.extend_from_slice(b"/v1/citizens");
                req.body
                    .extend_from_slice(self.writes.registration(&mut self.rng));
                Expect::Success
            }
            Op::Update => {
                req.method = Some(Method::Patch);
                req.path.extend_from_slice(b"/v1/citizens/");
                let e = self.write_id(plan, &mut req.path);
                req.body
                    .extend_from_slice(self.writes.move_body(&mut self.rng));
                e
            }
            Op::Death => {
                req.method = Some(Method::Post);
                req.path.extend_from_slice(b"/v1/citizens/");
                let e = self.write_death_subject(plan, &mut req.path);
                req.path.extend_from_slice(b":recordDeath");
                req.body.extend_from_slice(self.writes.death());
                e
            }
        };
        Meta {
            caller: caller as u16,
            op,
            expect,
            basic_key,
        }
    }

    /// Draws the `n` subjects of a batch (kind, key index, mismatch), every
    /// known subject distinct: the server refuses a batch (or a block of
    /// match rows) that names a subject twice, so that one request cannot
    /// try many values of one field.
    ///
    /// The claims are then loaded (prefetched) before anything is written:
    /// each is a cache miss, and started together the misses overlap
    /// instead of being paid one after another.
    fn draw_distinct_subjects(&mut self, plan: &CallerPlan, n: u32) -> Vec<(Expect, usize, bool)> {
        let mut draws = std::mem::take(&mut self.draws);
        draws.clear();
        self.seen.reset(n as usize);
        let claims = self.claims.clone();
        for _ in 0..n {
            let mut e = self.roll(plan, self.keys.len(KeyKind::Id) > 0);
            let (mut i, mut mismatch) = (0, false);
            if e == Expect::Success {
                (i, mismatch) = self.draw_verify_subject(plan);
                let mut tries = 0;
                while !self.seen.insert(i) && tries < 16 {
                    i = self.rng.below(self.keys.len(KeyKind::Id) as u64) as usize;
                    tries += 1;
                }
                if tries == 16 {
                    e = Expect::NotFound;
                } else if let Some(claims) = &claims {
                    claims.prefetch_offset(i);
                } else {
                    std::hint::black_box((self.keys.id(i), self.keys.citizen(i).sex));
                }
            }
            draws.push((e, i, mismatch));
        }
        for &(e, i, _) in &draws {
            if e == Expect::Success {
                match &claims {
                    Some(claims) => claims.prefetch_claim(i),
                    None => {
                        std::hint::black_box(self.keys.citizen(i).full_name.as_bytes().first());
                    }
                }
            }
        }
        draws
    }

    /// Writes a `qr:verify` body: the card of a known citizen (name and
    /// address as printed, `Nam`/`Nữ`), or of an unknown or malformed ID.
    fn write_qr(&mut self, plan: &CallerPlan, out: &mut Vec<u8>) -> Expect {
        let e = self.roll(plan, self.keys.len(KeyKind::Id) > 0);
        let mut card = Vec::with_capacity(160);
        let (name, dob, sex, address) = match e {
            Expect::Success => {
                let (i, mismatch) = self.draw_verify_subject(plan);
                let id = self.keys.id(i);
                card.extend_from_slice(&id.to_digits());
                let keys = Arc::clone(&self.keys);
                let c = keys.citizen(i);
                let mut dob = c.date_of_birth.unwrap_or(new_year_of_birth(id));
                if mismatch {
                    dob = dob - dob % 100 + (dob % 100) % 28 + 1;
                }
                let sex = c.sex.unwrap_or_else(|| id.sex());
                let address = if c.permanent_residence.is_empty() {
                    "?".to_string()
                } else {
                    c.permanent_residence.to_string()
                };
                (c.full_name.to_string(), dob, sex, address)
            }
            Expect::NotFound => {
                let id = self.keys.unknown_id(&mut self.rng);
                card.extend_from_slice(&id.to_digits());
                (
                    "NGUYEN VAN AN".to_string(),
                    new_year_of_birth(id),
                    id.sex(),
                    "?".to_string(),
                )
            }
            Expect::BadRequest => {
                self.write_malformed_id(&mut card);
                (
                    "NGUYEN VAN AN".to_string(),
                    19_890_314,
                    Sex::Male,
                    "?".to_string(),
                )
            }
        };
        let name = if name.is_empty() {
            "?".to_string()
        } else {
            name
        };
        let sex_word = match sex {
            Sex::Male => "Nam",
            Sex::Female => "Nữ",
        };
        let (y, m, d) = (dob / 10_000, dob / 100 % 100, dob % 100);
        let card = format!(
            "{}||{name}|{d:02}{m:02}{y:04}|{sex_word}|{address}|01072021",
            String::from_utf8_lossy(&card)
        );
        out.extend_from_slice(b"{\"qr\":");
        write_json_str(out, &card);
        out.push(b'}');
        e
    }

    fn batch(&mut self, b: BatchSize) -> u32 {
        b.min + self.rng.below((b.max - b.min) as u64 + 1) as u32
    }

    /// Which kind of key this draw is: 0 known, 1 unknown, 2 malformed.
    fn roll(&mut self, plan: &CallerPlan, have_keys: bool) -> Expect {
        let u = self.rng.unit();
        if u < plan.malformed {
            Expect::BadRequest
        } else if u < plan.malformed + plan.unknown || !have_keys {
            Expect::NotFound
        } else {
            Expect::Success
        }
    }

    fn pick(&mut self, plan: &CallerPlan, kind: KeyKind) -> usize {
        let n = self.keys.len(kind);
        match (&plan.zipf[kind_slot(kind)], plan.popularity) {
            (Some(z), Popularity::Zipf(_)) => (z.sample(&mut self.rng) - 1) as usize,
            _ => self.rng.below(n as u64) as usize,
        }
    }

    /// Writes a personal ID (known, unknown or malformed) and returns the
    /// expectation for a single lookup of it.
    fn write_id(&mut self, plan: &CallerPlan, out: &mut Vec<u8>) -> Expect {
        let e = self.roll(plan, self.keys.len(KeyKind::Id) > 0);
        match e {
            Expect::Success => {
                let i = self.pick(plan, KeyKind::Id);
                out.extend_from_slice(&self.keys.id(i).to_digits());
            }
            Expect::NotFound => {
                out.extend_from_slice(&self.keys.unknown_id(&mut self.rng).to_digits())
            }
            Expect::BadRequest => self.write_malformed_id(out),
        }
        e
    }

    /// Like [`Generator::write_id`], but a known ID is a living person no
    /// death of this run picked before.
    fn write_death_subject(&mut self, plan: &CallerPlan, out: &mut Vec<u8>) -> Expect {
        let mut e = self.roll(plan, self.keys.len(KeyKind::Id) > 0);
        if e == Expect::Success {
            match self.writes.next_death_subject() {
                Some(i) => out.extend_from_slice(&self.keys.id(i).to_digits()),
                None => e = Expect::NotFound,
            }
        }
        match e {
            Expect::Success => {}
            Expect::NotFound => {
                out.extend_from_slice(&self.keys.unknown_id(&mut self.rng).to_digits())
            }
            Expect::BadRequest => self.write_malformed_id(out),
        }
        e
    }

    fn write_malformed_id(&mut self, out: &mut Vec<u8>) {
        let id = random_valid_id(&mut self.rng).get();
        match self.rng.below(4) {
            // Too short.
            0 => out.extend_from_slice(&fixed_digits::<11>(id / 10)),
            // Too long.
            1 => out.extend_from_slice(&fixed_digits::<13>(id * 10 + 7)),
            // A letter among the digits.
            2 => {
                let at = out.len() + self.rng.below(12) as usize;
                out.extend_from_slice(&fixed_digits::<12>(id));
                out[at] = b'A' + self.rng.below(26) as u8;
            }
            // A province code that does not exist.
            _ => {
                let bad: [&[u8]; 3] = [b"000", b"099", b"003"];
                out.extend_from_slice(bad[self.rng.below(3) as usize]);
                out.extend_from_slice(&fixed_digits::<9>(id));
            }
        }
    }

    fn write_legacy(&mut self, plan: &CallerPlan, out: &mut Vec<u8>) -> Expect {
        let e = self.roll(plan, self.keys.len(KeyKind::Legacy) > 0);
        match e {
            Expect::Success => {
                let i = self.pick(plan, KeyKind::Legacy);
                out.extend_from_slice(&fixed_digits::<9>(u64::from(self.keys.legacy(i))));
            }
            Expect::NotFound => out.extend_from_slice(&fixed_digits::<9>(u64::from(
                self.keys.unknown_legacy(&mut self.rng),
            ))),
            Expect::BadRequest => {
                let v = self.rng.below(100_000_000);
                out.extend_from_slice(&fixed_digits::<8>(v));
                if !self.rng.chance(0.5) {
                    out.push(b'X');
                }
            }
        }
        e
    }

    fn write_verify(&mut self, plan: &CallerPlan, out: &mut Vec<u8>) -> Expect {
        let e = self.roll(plan, self.keys.len(KeyKind::Id) > 0);
        let (i, mismatch) = match e {
            Expect::Success => self.draw_verify_subject(plan),
            _ => (0, false),
        };
        self.write_verify_drawn(e, i, mismatch, out);
        e
    }

    /// The subject of a known-ID verify claim and whether the claim is a
    /// mismatch. Mismatches (typos, stale records) fall on any citizen, not
    /// on the popular ones: the server throttles a client's repeated
    /// mismatches on one subject, as it should, and a skewed pick would
    /// trip that with the generator's own traffic.
    fn draw_verify_subject(&mut self, plan: &CallerPlan) -> (usize, bool) {
        if self.rng.chance(plan.mismatch) {
            let n = self.keys.len(KeyKind::Id) as u64;
            (self.rng.below(n) as usize, true)
        } else {
            (self.pick(plan, KeyKind::Id), false)
        }
    }

    /// Writes one verify claim whose kind `e`, (for a known key) key index
    /// `i` and mismatch are already drawn.
    fn write_verify_drawn(&mut self, e: Expect, i: usize, mismatch: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":\"");
        match e {
            Expect::Success => match &self.claims {
                Some(claims) => claims.append(i, mismatch, out),
                None => {
                    write_known_claim(&self.keys, i, mismatch, out);
                }
            },
            Expect::NotFound => {
                let id = self.keys.unknown_id(&mut self.rng);
                out.extend_from_slice(&id.to_digits());
                out.extend_from_slice(b"\",\"date_of_birth\":\"");
                write_date(out, new_year_of_birth(id));
                out.extend_from_slice(b"\",\"sex\":\"");
                out.extend_from_slice(id.sex().as_str().as_bytes());
                out.extend_from_slice(b"\"}");
            }
            Expect::BadRequest => {
                self.write_malformed_id(out);
                out.extend_from_slice(b"\",\"sex\":\"male\"}");
            }
        }
    }

    fn write_identify(&mut self, plan: &CallerPlan, out: &mut Vec<u8>) -> Expect {
        let faces = self.keys.len(KeyKind::Face);
        let fingers = self.keys.len(KeyKind::Fingerprint);
        let kind = if faces == 0 && fingers == 0 {
            if self.rng.chance(0.5) {
                KeyKind::Face
            } else {
                KeyKind::Fingerprint
            }
        } else if self.rng.below((faces + fingers) as u64) < faces as u64 {
            KeyKind::Face
        } else {
            KeyKind::Fingerprint
        };
        let e = self.roll(plan, self.keys.len(kind) > 0);
        out.extend_from_slice(b"{\"modality\":\"");
        out.extend_from_slice(kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"template_hash\":\"");
        match e {
            Expect::Success => {
                let i = self.pick(plan, kind);
                write_hex(out, &self.keys.biometric(kind, i));
            }
            Expect::NotFound => {
                let h = self.rng.bytes16();
                write_hex(out, &h);
            }
            Expect::BadRequest => {
                let mut h = [0u8; 16];
                h[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
                write_hex(out, &h);
                // 31 hex digits: one short.
                out.pop();
            }
        }
        out.extend_from_slice(b"\"}");
        e
    }
}

/// Writes the rest of a verify claim (after `{"id":"`) for the `i`-th
/// personal ID of `keys`: what the pool knows of its holder, or with
/// `mismatch` another day of the same month of birth. Returns where the
/// day's two digits are in `out`, if a date of birth was written.
pub(super) fn write_known_claim(
    keys: &KeyPool,
    i: usize,
    mismatch: bool,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let id = keys.id(i);
    out.extend_from_slice(&id.to_digits());
    out.push(b'"');
    let c = keys.citizen(i);
    if !c.full_name.is_empty() {
        out.extend_from_slice(b",\"full_name\":");
        write_json_str(out, c.full_name);
    }
    let mut day_at = None;
    if let Some(mut dob) = c.date_of_birth {
        if mismatch {
            // Another day of the same month: the answer is
            // `"match": false` with date_of_birth false.
            dob = dob - dob % 100 + (dob % 100) % 28 + 1;
        }
        out.extend_from_slice(b",\"date_of_birth\":\"");
        day_at = Some(out.len() + 8);
        write_date(out, dob);
        out.push(b'"');
    }
    let sex = c.sex.unwrap_or_else(|| id.sex());
    out.extend_from_slice(b",\"sex\":\"");
    out.extend_from_slice(sex.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    day_at
}

/// 1 January of the year a personal ID encodes, as `yyyymmdd`: the date of
/// birth claimed when the pool knows none.
fn new_year_of_birth(id: PersonalId) -> u32 {
    u32::from(id.birth_year()) * 10_000 + 101
}

/// Appends `yyyymmdd` as `YYYY-MM-DD`.
pub(crate) fn write_date(out: &mut Vec<u8>, yyyymmdd: u32) {
    out.extend_from_slice(&fixed_digits::<4>(u64::from(yyyymmdd / 10_000)));
    out.push(b'-');
    out.extend_from_slice(&fixed_digits::<2>(u64::from(yyyymmdd / 100 % 100)));
    out.push(b'-');
    out.extend_from_slice(&fixed_digits::<2>(u64::from(yyyymmdd % 100)));
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Caller;

    fn generator(caller: Caller) -> Generator {
        let keys = Arc::new(KeyPool::synthetic(1000, 1));
        Generator::new(
            &Workload {
                callers: vec![caller],
            },
            keys,
            5,
        )
    }

    #[test]
    fn bodies_are_json_or_ndjson() {
        for op in Op::ALL {
            let mut c = Caller::single(op);
            c.malformed = 0.2;
            c.unknown = 0.2;
            c.mismatch = 0.5;
            c.batch_get = BatchSize { min: 1, max: 5 };
            c.batch_verify = BatchSize { min: 1, max: 5 };
            let mut g = generator(c);
            let mut req = Request::default();
            for _ in 0..200 {
                let meta = g.next(&mut req);
                assert_eq!(meta.op, op);
                if op == Op::Match {
                    // NDJSON: one object per row.
                    for row in req.body.split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
                        let v: serde_json::Value = serde_json::from_slice(row).unwrap();
                        assert!(v.is_object());
                    }
                } else if req.method.is_some_and(Method::has_body) {
                    let v: serde_json::Value =
                        serde_json::from_slice(&req.body).unwrap_or_else(|e| {
                            panic!("{op}: {e}: {}", String::from_utf8_lossy(&req.body))
                        });
                    assert!(v.is_object());
                } else {
                    assert!(req.body.is_empty());
                    assert!(req.path.iter().all(|b| b.is_ascii_graphic()));
                }
            }
        }
    }

    #[test]
    fn a_batch_verify_names_each_subject_once() {
        // Zipf-popular keys and large batches: duplicates would be common
        // without the generator's check (the server answers such a batch 400).
        let mut c = Caller::single(Op::BatchVerify);
        c.popularity = Popularity::Zipf(1.1);
        c.mismatch = 0.3;
        c.batch_verify = BatchSize { min: 200, max: 200 };
        let mut g = generator(c);
        let mut req = Request::default();
        for _ in 0..20 {
            g.next(&mut req);
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let ids: Vec<&str> = v["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap())
                .collect();
            let distinct: std::collections::HashSet<&&str> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The arena only changes how claims are written: the same draws
        /// give the same bytes, batch after batch (so every batch is still
        /// drawn afresh, distinct subjects and mismatches included).
        #[test]
        fn claim_arena_bodies_are_the_formatted_bodies(
            seed in 0u64..1_000_000,
            zipf in proptest::bool::ANY,
            mismatch in 0.0f64..0.5,
        ) {
            for op in [Op::BatchVerify, Op::Match, Op::Verify] {
                let mut c = Caller::single(op);
                c.ops.push((Op::BatchVerify, 1.0));
                c.malformed = 0.05;
                c.unknown = 0.05;
                c.mismatch = mismatch;
                c.batch_verify = BatchSize { min: 1, max: 300 };
                if zipf {
                    c.popularity = Popularity::Zipf(1.1);
                }
                let workload = Workload { callers: vec![c] };
                let keys = Arc::new(KeyPool::synthetic(2000, seed));
                let mut arena = Generator::new(&workload, keys, seed);
                proptest::prop_assert!(arena.claims.is_some());
                let mut formatted = arena.clone().without_claim_arena();
                let (mut a, mut b) = (Request::default(), Request::default());
                for _ in 0..20 {
                    proptest::prop_assert_eq!(arena.next(&mut a), formatted.next(&mut b));
                    proptest::prop_assert_eq!(&a.path, &b.path);
                    proptest::prop_assert_eq!(&a.body, &b.body);
                }
            }
        }
    }

    #[test]
    fn shares_of_malformed_and_unknown() {
        let mut c = Caller::single(Op::Get);
        c.malformed = 0.1;
        c.unknown = 0.3;
        let mut g = generator(c);
        let mut req = Request::default();
        let (mut bad, mut unknown) = (0, 0);
        for _ in 0..20_000 {
            match g.next(&mut req).expect {
                Expect::BadRequest => bad += 1,
                Expect::NotFound => unknown += 1,
                Expect::Success => {}
            }
        }
        assert!((1700..2300).contains(&bad), "{bad}");
        assert!((5500..6500).contains(&unknown), "{unknown}");
    }

    #[test]
    fn dates_are_written_fixed_width() {
        let mut v = Vec::new();
        write_date(&mut v, 19_890_314);
        assert_eq!(v, b"1989-03-14");
    }
}
