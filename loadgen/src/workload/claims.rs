//! Verify claims rendered once per known personal ID, so that a batch body
//! is a run of copies instead of a run of formatting.
//!
//! A claim names a random citizen: written from the [`KeyPool`], it reads
//! the ID, the facts and the name from three arrays of tens of megabytes,
//! each read a cache miss and, with 4 KiB pages, a TLB miss too. That was
//! ~1 µs a claim and ~85 % of the bulk generator's CPU (a
//! `social-insurance` request averaged ~450 µs, `perf`: `KeyPool::citizen`
//! and the draws). Rendered once at start into one arena, a claim is a
//! single run of bytes (one or two adjacent cache lines) found through one
//! offset; the batch writer prefetches them all before copying, so the
//! misses overlap, and the arena asks for huge pages, so the TLB covers it.
//!
//! The price is paid once, and only by workloads with batches of claims:
//! for the default 1 M-citizen sample, ~0.3 s of CPU at start (wall
//! 2.2 s against 1.8 s for a 1 s run; peak RSS 346 MB against 324 MB).
//!
//! Every batch still draws its own subjects exactly as before (the same
//! random sequence gives byte-identical bodies, tested below): no body is
//! replayed, and a mismatch still falls on a fresh random citizen.

use super::generator::write_known_claim;
use crate::keys::{KeyKind, KeyPool};

/// The claim fragments of every personal ID of a pool, without the
/// `{"id":"` every claim starts with: `ID","full_name":…}`.
///
/// Each entry is a header byte then the fragment. The header says where
/// the day of the date of birth is, counted back from the fragment's end
/// (0: no date of birth), so that the mismatch variant (another day of the
/// same month) is the fragment with two digits changed.
#[derive(Debug)]
pub struct ClaimArena {
    /// Start of entry `i`; entry `i` ends where `i + 1` starts.
    offsets: Vec<u32>,
    bytes: Vec<u8>,
}

impl ClaimArena {
    /// Renders the claims of every personal ID in `keys`, or `None` when
    /// the pool has none or they would not fit 32-bit offsets (4 GiB, some
    /// 40 M citizens): then claims are written as drawn.
    pub fn build(keys: &KeyPool) -> Option<ClaimArena> {
        let n = keys.len(KeyKind::Id);
        if n == 0 {
            return None;
        }
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(n + 1);
        advise_huge_pages(&offsets);
        let mut fragment = Vec::with_capacity(256);
        for i in 0..n {
            offsets.push(u32::try_from(bytes.len()).ok()?);
            fragment.clear();
            let day = write_known_claim(keys, i, false, &mut fragment);
            // The day's two digits are followed by `","sex":"female"}` at
            // most: 19 bytes back from the end at most.
            let header = day.map_or(0, |at| (fragment.len() - at) as u8);
            bytes.push(header);
            bytes.extend_from_slice(&fragment);
        }
        offsets.push(u32::try_from(bytes.len()).ok()?);
        // Moved once into an allocation advised before it is touched: the
        // advice must cover the whole arena, and a growing `Vec` would
        // move into pages that never had it.
        let mut arena = Vec::with_capacity(bytes.len() + HUGE_PAGE);
        advise_huge_pages(&arena);
        arena.extend_from_slice(&bytes);
        Some(ClaimArena {
            offsets,
            bytes: arena,
        })
    }

    /// Starts loading where the `i`-th claim's offset is.
    #[inline]
    pub fn prefetch_offset(&self, i: usize) {
        prefetch(self.offsets[i..].as_ptr().cast());
    }

    /// Starts loading the `i`-th claim (its first two cache lines; most
    /// claims are ~100 bytes).
    #[inline]
    pub fn prefetch_claim(&self, i: usize) {
        let at = self.offsets[i] as usize;
        let entry = &self.bytes[at..];
        prefetch(entry.as_ptr());
        if entry.len() > 64 {
            prefetch(entry[64..].as_ptr());
        }
    }

    /// Appends the `i`-th claim's fragment; with `mismatch`, claiming
    /// another day of the same month, as [`write_known_claim`] does.
    #[inline]
    pub fn append(&self, i: usize, mismatch: bool, out: &mut Vec<u8>) {
        let (start, end) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        let day_back = usize::from(self.bytes[start]);
        out.extend_from_slice(&self.bytes[start + 1..end]);
        if mismatch && day_back > 0 {
            let at = out.len() - day_back;
            let day = (out[at] - b'0') * 10 + (out[at + 1] - b'0');
            let day = day % 28 + 1;
            out[at] = b'0' + day / 10;
            out[at + 1] = b'0' + day % 10;
        }
    }

    /// Bytes held (arena and offsets).
    #[cfg(test)]
    fn size_bytes(&self) -> usize {
        self.bytes.len() + self.offsets.len() * 4
    }
}

/// A transparent huge page on x86-64 and most arm64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back `v`'s allocation with transparent huge pages
/// (`madvise` mode is this box's default): the arena and its offsets are
/// read at random, and with 4 KiB pages nearly every claim would also miss
/// the TLB (measured: the offsets' prefetch alone then took ~70 ns a claim).
fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = HUGE_PAGE;
        let start = v.as_ptr() as usize;
        let aligned = start.next_multiple_of(HUGE);
        let end = start + v.capacity() * std::mem::size_of::<T>();
        if end > aligned + HUGE {
            let len = (end - aligned) / HUGE * HUGE;
            // SAFETY: [aligned, aligned + len) lies inside `v`'s allocation,
            // which this process owns; MADV_HUGEPAGE only changes how the
            // kernel backs those pages, never their contents or validity.
            // A failure (THP off) leaves ordinary pages, so it is ignored.
            unsafe {
                libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// A hint to start loading the cache line at `p`; no effect on results.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint: it never faults and never
        // changes memory, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::keys::{random_valid_id, Sex};
    use crate::rng::Rng;

    /// A pool with the shapes claims can take: names needing escapes or
    /// none, unknown dates of birth and sexes, every day of a month.
    fn odd_pool(seed: u64) -> KeyPool {
        let mut pool = KeyPool::synthetic(300, seed);
        let mut rng = Rng::new(seed);
        let names = ["", "NGUYỄN THỊ \"HOA\"", "TRẦN\\VĂN\tAN", "LÊ\u{1}B", "A"];
        for (k, name) in names.iter().enumerate() {
            for day in 1..=31 {
                let id = random_valid_id(&mut rng);
                let dob = (k % 2 == 0).then_some(19_900_100 + day);
                let sex = [None, Some(Sex::Male), Some(Sex::Female)][day as usize % 3];
                pool.push_id(id, name, dob, sex);
            }
        }
        pool
    }

    proptest! {
        #[test]
        fn arena_claims_are_the_formatted_claims(seed in 0u64..1000, picks in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 1..64)) {
            let pool = odd_pool(seed);
            let arena = ClaimArena::build(&pool).expect("a pool with IDs");
            let n = pool.len(KeyKind::Id);
            let (mut copied, mut written) = (Vec::new(), Vec::new());
            for (pick, mismatch) in picks {
                let i = pick.index(n);
                arena.append(i, mismatch, &mut copied);
                write_known_claim(&pool, i, mismatch, &mut written);
                prop_assert_eq!(&copied, &written);
            }
        }
    }

    #[test]
    fn every_claim_of_a_pool_is_rendered() {
        let pool = odd_pool(1);
        let arena = ClaimArena::build(&pool).unwrap();
        let n = pool.len(KeyKind::Id);
        for i in 0..n {
            for mismatch in [false, true] {
                let (mut copied, mut written) = (Vec::new(), Vec::new());
                arena.append(i, mismatch, &mut copied);
                write_known_claim(&pool, i, mismatch, &mut written);
                assert_eq!(copied, written, "claim {i}, mismatch {mismatch}");
            }
        }
        assert!(arena.size_bytes() > n * 60);
        assert!(ClaimArena::build(&KeyPool::new()).is_none());
    }
}
