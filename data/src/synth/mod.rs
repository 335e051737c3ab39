//! The synthetic population: `n` citizens from a seed, the same on every
//! machine, generated in parallel.
//!
//! # How a population is made
//!
//! The population is cut into chunks of [`CHUNK_SIZE`] records; chunk `c` is
//! generated from `(seed, c)` alone, so chunks are made in parallel (on the
//! rayon pool) and emitted in order. Households never straddle chunks.
//!
//! Within a chunk, the sex and age of every person are drawn from the age
//! pyramid, then grouped into households (see `plan.rs`): families around
//! each child, then couples, grown-up children and people living alone. Each
//! household gets a province (by 2019 population), a district and ward or
//! commune, an address, an ethnic group and a religion (by region). Members
//! get names (surnames follow the father), dates of birth, places of birth
//! registration, hometowns, IDs and links to each other.
//!
//! # Uniqueness without a global set
//!
//! - **Personal IDs**: the serial of an ID is a keyed permutation of
//!   `0..1_000_000` (one per place, sex and birth year) applied to
//!   `chunk * S + k`, where `S = 1_000_000 / chunks` and `k` counts that
//!   key's people in the chunk. Chunks thus use disjoint serial ranges. When a
//!   chunk exhausts its `S` slots for one key (which does not happen at
//!   national scale: the busiest key, Hồ Chí Minh City × sex × year, needs
//!   ~14 of its 163 slots at 100 M), the person is registered in the next
//!   province instead.
//! - **Legacy IDs** are a keyed permutation of `0..999_999_999` applied to
//!   the record's global index, plus one.
//! - **Biometric digests** are a keyed 128-bit permutation of
//!   `(global index, modality)`.

mod model;
mod places;
mod plan;
mod writer;

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::LazyLock;

use dancu_engine::{Citizen, Date};

use crate::rng::{derive, FxMap, Rng, SmallPermutation};
use model::model;
use plan::{plan_chunk, Shapes};
use writer::Writer;

/// Records per chunk, the unit of parallel generation.
pub const CHUNK_SIZE: u64 = 16_384;

/// The largest population the generator makes (four times Viet Nam): the
/// ID space per place, sex and year stays far from full below it.
pub const MAX_SYNTHETIC: u64 = 400_000_000;

/// The year of [`reference_date`].
pub const REFERENCE_YEAR: u16 = 2024;

/// The day the synthetic register describes (ages are counted to it; deaths
/// lie between 2021-07-01, when the register went live, and the day before).
pub fn reference_date() -> Date {
    Date::new(REFERENCE_YEAR, 7, 1).expect("a valid date")
}

fn deaths_from() -> Date {
    Date::new(2021, 7, 1).expect("a valid date")
}

/// Number of chunks of a population of `n`.
pub fn chunk_count(n: u64) -> u64 {
    n.div_ceil(CHUNK_SIZE)
}

const STREAM_LEGACY: u64 = 1;
const STREAM_DIGEST: u64 = 2;
const STREAM_SERIAL: u64 = 3;
const STREAM_CHUNK: u64 = 1 << 40;

static SHAPES: LazyLock<Shapes> = LazyLock::new(Shapes::new);

/// Generates chunk `chunk` of the population `(n, seed)`, on this thread.
///
/// # Panics
///
/// If `n > MAX_SYNTHETIC` or `chunk >= chunk_count(n)`.
pub fn generate_chunk(n: u64, seed: u64, chunk: u64) -> Vec<Citizen> {
    assert!(
        n <= MAX_SYNTHETIC,
        "at most {MAX_SYNTHETIC} synthetic citizens"
    );
    let chunks = chunk_count(n);
    assert!(
        chunk < chunks,
        "chunk {chunk} of a population of {chunks} chunks"
    );
    generate_chunk_with_slots(n, seed, chunk, (1_000_000 / chunks) as u32)
}

/// [`generate_chunk`] with `slots` serials per place, sex and year.
fn generate_chunk_with_slots(n: u64, seed: u64, chunk: u64, slots: u32) -> Vec<Citizen> {
    let len = CHUNK_SIZE.min(n - chunk * CHUNK_SIZE) as u32;
    let model = model();
    let mut writer = Writer {
        model,
        rng: Rng::stream(seed, STREAM_CHUNK + chunk),
        chunk,
        slots,
        counters: FxMap::default(),
        legacy: SmallPermutation::new(derive(seed, STREAM_LEGACY), 999_999_999),
        digest_key: derive(seed, STREAM_DIGEST),
        serial_key: derive(seed, STREAM_SERIAL),
        base: chunk * CHUNK_SIZE,
    };
    let plans = plan_chunk(model, &SHAPES, &mut writer.rng, len);
    let mut out = Vec::with_capacity(len as usize);
    for plan in &plans {
        writer.household(plan, &mut out);
    }
    debug_assert_eq!(out.len(), len as usize);
    out
}

/// The population `(n, seed)` as an iterator of records, in order. Chunks are
/// generated ahead on the global rayon pool while the caller consumes, so do
/// not consume it from inside that pool (a worker waiting for work queued
/// behind it could wait forever on a one-thread pool).
///
/// # Panics
///
/// If `n > MAX_SYNTHETIC`.
pub fn generate(n: u64, seed: u64) -> Generator {
    Generator {
        chunks: generate_chunks(n, seed),
        current: Vec::new().into_iter(),
    }
}

/// The population `(n, seed)` as an iterator of chunks (see [`generate`]).
///
/// # Panics
///
/// If `n > MAX_SYNTHETIC`.
pub fn generate_chunks(n: u64, seed: u64) -> ChunkStream {
    assert!(
        n <= MAX_SYNTHETIC,
        "at most {MAX_SYNTHETIC} synthetic citizens"
    );
    ChunkStream {
        n,
        seed,
        chunks: chunk_count(n),
        next_spawn: 0,
        pending: VecDeque::new(),
        lookahead: rayon::current_num_threads() * 2 + 1,
    }
}

type ChunkResult = std::thread::Result<Vec<Citizen>>;

/// Chunks of a synthetic population, in order, generated in parallel ahead
/// of consumption (a bounded number in flight).
pub struct ChunkStream {
    n: u64,
    seed: u64,
    chunks: u64,
    next_spawn: u64,
    pending: VecDeque<Receiver<ChunkResult>>,
    lookahead: usize,
}

impl ChunkStream {
    fn fill(&mut self) {
        while self.pending.len() < self.lookahead && self.next_spawn < self.chunks {
            let (tx, rx) = sync_channel(1);
            let (n, seed, chunk) = (self.n, self.seed, self.next_spawn);
            rayon::spawn(move || {
                let result =
                    panic::catch_unwind(AssertUnwindSafe(|| generate_chunk(n, seed, chunk)));
                // The receiver is gone only when the stream was dropped.
                let _ = tx.send(result);
            });
            self.pending.push_back(rx);
            self.next_spawn += 1;
        }
    }
}

impl Iterator for ChunkStream {
    type Item = Vec<Citizen>;

    fn next(&mut self) -> Option<Vec<Citizen>> {
        self.fill();
        let rx = self.pending.pop_front()?;
        let result = rx.recv().expect("a generator task always sends its result");
        self.fill();
        match result {
            Ok(chunk) => Some(chunk),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.chunks - self.next_spawn) as usize + self.pending.len();
        (left, Some(left))
    }
}

/// The records of a synthetic population, in order (see [`generate`]).
pub struct Generator {
    chunks: ChunkStream,
    current: std::vec::IntoIter<Citizen>,
}

impl Iterator for Generator {
    type Item = Citizen;

    fn next(&mut self) -> Option<Citizen> {
        loop {
            if let Some(c) = self.current.next() {
                return Some(c);
            }
            self.current = self.chunks.next()?.into_iter();
        }
    }
}

#[cfg(test)]
mod tests;
