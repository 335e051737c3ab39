//! Benchmarks of dancu: the criterion benches under `benches/`, the
//! `engine-bench` command that prints national-scale figures as JSON, and the
//! helpers they share (key sampling, timing).
//!
//! # Example
//!
//! ```no_run
//! let snapshot = dancu_engine::Snapshot::open_file("demo.snap", dancu_engine::Memory::Map)?;
//! let keys = dancu_benches::sample_ids(&snapshot, 1000, 42);
//! assert_eq!(keys.len(), 1000.min(snapshot.len()));
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use std::time::Instant;

use dancu_engine::{
    prefetch_citizen_json, write_citizen_json, CitizenView, Claims, FieldSet, LegacyId, Modality,
    PersonalId, Snapshot, TemplateDigest,
};

/// A small, fast, seedable generator for picking keys (SplitMix64).
#[derive(Clone, Debug)]
pub struct KeyRng(u64);

impl KeyRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> KeyRng {
        KeyRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// `n` personal IDs of random records (with repetition), in random order.
pub fn sample_ids<D: AsRef<[u8]>>(snap: &Snapshot<D>, n: usize, seed: u64) -> Vec<PersonalId> {
    let mut rng = KeyRng::new(seed);
    let len = snap.len() as u64;
    if len == 0 {
        return Vec::new();
    }
    (0..n)
        .filter_map(|_| snap.record(rng.below(len) as u32).map(|v| v.id()))
        .collect()
}

/// Legacy IDs of random records that have one.
pub fn sample_legacy<D: AsRef<[u8]>>(snap: &Snapshot<D>, n: usize, seed: u64) -> Vec<LegacyId> {
    let mut rng = KeyRng::new(seed);
    let len = snap.len() as u64;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.saturating_mul(20) {
        if out.len() == n || len == 0 {
            break;
        }
        if let Some(l) = snap
            .record(rng.below(len) as u32)
            .and_then(|v| v.legacy_id())
        {
            out.push(l);
        }
    }
    out
}

/// Enrolled templates, a random subset of about `n`, shuffled.
pub fn sample_templates<D: AsRef<[u8]>>(
    snap: &Snapshot<D>,
    n: usize,
    seed: u64,
) -> Vec<(Modality, TemplateDigest)> {
    let total = snap.biometric_entries().size_hint().1.unwrap_or(0).max(1);
    let mut rng = KeyRng::new(seed);
    let keep = (n as u64).saturating_mul(4).max(1);
    let mut out: Vec<_> = snap
        .biometric_entries()
        .filter(|_| rng.below(total as u64) < keep)
        .map(|(m, d, _)| (m, d))
        .take(n.saturating_mul(4))
        .collect();
    shuffle(&mut out, seed);
    out.truncate(n);
    out
}

/// Verification claims (name upper-cased without diacritics, date of birth,
/// sex) for random records: what a bank's KYC check sends.
pub fn sample_claims<D: AsRef<[u8]>>(snap: &Snapshot<D>, n: usize, seed: u64) -> Vec<Claims> {
    sample_ids(snap, n, seed)
        .into_iter()
        .filter_map(|id| {
            let v = snap.get(id)?;
            let json = serde_json::json!({
                "id": id.to_string(),
                "full_name": dancu_engine::fold(v.full_name()).to_uppercase(),
                "date_of_birth": v.date_of_birth().to_string(),
                "sex": v.sex().as_str(),
            });
            serde_json::from_value(json).ok()
        })
        .collect()
}

/// Fisher–Yates shuffle with [`KeyRng`].
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = KeyRng::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// Median of per-operation times: runs `op` over `keys` in chunks of `chunk`,
/// timing each chunk, and returns the median nanoseconds per operation.
/// Each call's result feeds the choice of the next key (`op` returns an index
/// offset), so consecutive lookups depend on each other: this measures
/// latency, not overlapped throughput.
pub fn dependent_ns_p50<K>(keys: &[K], chunk: usize, mut op: impl FnMut(&K) -> usize) -> f64 {
    let mut per_op = Vec::new();
    let mut carry = 0usize;
    for block in keys.chunks(chunk) {
        let start = Instant::now();
        for i in 0..block.len() {
            carry = op(&block[(i + carry) % block.len()]);
        }
        per_op.push(start.elapsed().as_nanos() as f64 / block.len() as f64);
    }
    std::hint::black_box(carry);
    median(&mut per_op)
}

/// The median of `values` (0 for none).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Kilobytes of anonymous memory backed by transparent huge pages in this
/// process (from `/proc/self/smaps_rollup`), to show that huge-page mode got
/// huge pages.
pub fn anon_huge_pages_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The machine's baseline for a lookup: random single-byte reads per second
/// over `bytes` (e.g. a whole mapped snapshot), independent of each other so
/// the CPU overlaps as many as it can, the way `get_many` overlaps lookups.
/// A lookup that touches two random lines cannot beat half of this.
pub fn random_reads_per_s(bytes: &[u8], n: usize, seed: u64) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut rng = KeyRng::new(seed);
    let offsets: Vec<usize> = (0..n)
        .map(|_| rng.below(bytes.len() as u64) as usize)
        .collect();
    let start = Instant::now();
    let sum = offsets
        .iter()
        .fold(0u64, |acc, &o| acc.wrapping_add(u64::from(bytes[o])));
    let elapsed = start.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    n as f64 / elapsed
}

/// Lookups per second of `get_many` over batches of 1000 IDs, one thread;
/// every found record's date of birth is read, as a server would.
pub fn batched_lookups_per_s<D: AsRef<[u8]>>(snap: &Snapshot<D>, ids: &[PersonalId]) -> f64 {
    let mut out = Vec::with_capacity(1000);
    let mut found = 0usize;
    let start = Instant::now();
    for batch in ids.chunks(1000) {
        snap.get_many(batch, &mut out);
        found += out
            .iter()
            .flatten()
            .map(|v| usize::from(v.date_of_birth().day() > 0))
            .sum::<usize>();
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(found, ids.len(), "every sampled ID is found");
    ids.len() as f64 / elapsed
}

/// The engine's half of a batchGet: looks `ids` up into `views`, then writes
/// every found record's JSON into `out` (cleared first), prefetching the
/// heap strings of the record `ahead` places ahead (0: no prefetch), as the
/// server's batchGet does. Returns the bytes written.
pub fn write_batch_json<'s, D: AsRef<[u8]>>(
    snap: &'s Snapshot<D>,
    ids: &[PersonalId],
    fields: FieldSet,
    ahead: usize,
    views: &mut Vec<Option<CitizenView<'s>>>,
    out: &mut Vec<u8>,
) -> usize {
    snap.get_many(ids, views);
    out.clear();
    if ahead > 0 {
        for v in views.iter().take(ahead).flatten() {
            prefetch_citizen_json(v, fields);
        }
    }
    for (k, view) in views.iter().enumerate() {
        if ahead > 0 {
            if let Some(Some(v)) = views.get(k + ahead) {
                prefetch_citizen_json(v, fields);
            }
        }
        if let Some(v) = view {
            write_citizen_json(v, fields, out);
        }
    }
    out.len()
}
