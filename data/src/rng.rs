//! Deterministic randomness: the same numbers on every machine.
//!
//! The generator itself ([`Rng`], xoshiro256++) is the engine's, shared with
//! the load generator; this module adds what only the population needs:
//! weighted choice, keyed permutations and a fast hasher. Only integer
//! arithmetic and IEEE basic operations are used (no `exp`, `ln` or
//! platform `libm`), so a seed gives the same population everywhere.

pub(crate) use dancu_engine::rng::{derive, mix64, Rng};

/// A discrete distribution over `0..len` from non-negative weights, sampled
/// in constant time with Vose's alias method.
#[derive(Clone, Debug)]
pub(crate) struct Weighted {
    /// Probability of keeping column `i` rather than taking its alias.
    keep: Vec<f64>,
    alias: Vec<u32>,
    #[cfg(test)]
    weights: Vec<f64>,
}

impl Weighted {
    /// Panics if no weight is positive or one is negative or not finite: the
    /// tables are compiled in and tested.
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Weighted {
        let weights: Vec<f64> = weights.into_iter().collect();
        let total: f64 = weights.iter().sum();
        assert!(
            weights.iter().all(|w| w.is_finite() && *w >= 0.0),
            "weights must be finite and non-negative"
        );
        assert!(total > 0.0, "a distribution needs a positive weight");
        let n = weights.len();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut keep = vec![0.0; n];
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            keep[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        let heaviest = (0..n)
            .max_by(|&a, &b| weights[a].total_cmp(&weights[b]))
            .unwrap_or(0);
        for i in large.into_iter().chain(small) {
            // Left over only through rounding: full columns, except that a
            // zero weight must never be drawn.
            if weights[i] > 0.0 {
                keep[i] = 1.0;
            } else {
                keep[i] = 0.0;
                alias[i] = heaviest as u32;
            }
        }
        Weighted {
            keep,
            alias,
            #[cfg(test)]
            weights: weights.iter().map(|w| w / total).collect(),
        }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let x = rng.next_u64();
        let i = ((u128::from(x >> 11) * self.keep.len() as u128) >> 53) as usize;
        let coin = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        if coin < self.keep[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keep.len()
    }

    /// The probability of outcome `i`.
    #[cfg(test)]
    pub(crate) fn probability(&self, i: usize) -> f64 {
        self.weights[i]
    }
}

/// A fast hasher for small integer keys (the Firefox/rustc "Fx" hash);
/// not for untrusted input.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// `HashMap` with [`FxHasher`].
pub(crate) type FxMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// A keyed bijection of `0..domain` (`domain <= 2^(2*half_bits)`): a
/// four-round Feistel network on `2*half_bits` bits with cycle walking.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SmallPermutation {
    keys: [u64; 4],
    half_bits: u32,
    domain: u64,
}

impl SmallPermutation {
    pub(crate) fn new(key: u64, domain: u64) -> SmallPermutation {
        let mut half_bits = 1;
        while 1u64 << (2 * half_bits) < domain {
            half_bits += 1;
        }
        let keys = [
            derive(key, 1),
            derive(key, 2),
            derive(key, 3),
            derive(key, 4),
        ];
        SmallPermutation {
            keys,
            half_bits,
            domain,
        }
    }

    fn round_trip(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (x >> self.half_bits, x & mask);
        for k in self.keys {
            let f = mix64(r ^ k) & mask;
            (l, r) = (r, l ^ f);
        }
        l << self.half_bits | r
    }

    /// The image of `x < domain`, also `< domain`.
    pub(crate) fn apply(&self, x: u64) -> u64 {
        debug_assert!(x < self.domain);
        let mut y = self.round_trip(x);
        while y >= self.domain {
            y = self.round_trip(y);
        }
        y
    }
}

/// A keyed bijection of 128-bit blocks (four Feistel rounds on 64-bit
/// halves): distinct inputs give distinct, random-looking outputs.
pub(crate) fn permute128(key: u64, hi: u64, lo: u64) -> [u8; 16] {
    let (mut l, mut r) = (hi, lo);
    for round in 1..=4u64 {
        let f = mix64(r ^ derive(key, 100 + round));
        (l, r) = (r, l ^ f);
    }
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&l.to_be_bytes());
    out[8..].copy_from_slice(&r.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn weighted_follows_weights_and_skips_zeros() {
        let w = Weighted::new([1.0, 0.0, 3.0, 0.0]);
        let mut rng = Rng::stream(3, 3);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[w.sample(&mut rng)] += 1;
        }
        assert_eq!((counts[1], counts[3]), (0, 0));
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert!((w.probability(2) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn small_permutation_is_a_bijection() {
        for domain in [1u64, 2, 10, 1000, 4096, 10_000] {
            let p = SmallPermutation::new(42, domain);
            let image: HashSet<u64> = (0..domain).map(|x| p.apply(x)).collect();
            assert_eq!(image.len() as u64, domain);
            assert!(image.iter().all(|&y| y < domain));
        }
    }

    #[test]
    fn permute128_is_injective_on_a_sample() {
        let set: HashSet<[u8; 16]> = (0..10_000u64).map(|i| permute128(9, i, i & 1)).collect();
        assert_eq!(set.len(), 10_000);
        let mut rng = Rng::stream(1, 1);
        assert_ne!(rng.bytes16(), rng.bytes16());
    }
}
