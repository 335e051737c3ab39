//! Random draws for load generation: the engine's seedable [`Rng`]
//! (xoshiro256++, shared with `dancu-data`) and a Zipf sampler for key
//! popularity.
//!
//! Load generation needs tens of millions of draws per second and
//! reproducible runs (`--seed`), not cryptographic quality.

pub use dancu_engine::rng::Rng;

/// Zipf distribution over ranks `1..=n`: P(k) ∝ 1 / k^s.
///
/// Rejection-inversion sampling (Hörmann and Derflinger, 1996), as in
/// Apache Commons RNG: O(1) per sample and O(1) memory whatever `n`, so a
/// popularity over 100 M keys costs nothing to set up.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    /// Ranks `1..=n` with exponent `exponent` (≥ 0; 0 is uniform).
    ///
    /// # Panics
    /// If `n` is zero or the exponent is negative or not finite; profiles
    /// are validated before samplers are made.
    pub fn new(n: u64, exponent: f64) -> Zipf {
        assert!(n > 0, "Zipf needs at least one element");
        assert!(
            exponent.is_finite() && exponent >= 0.0,
            "Zipf exponent must be finite and non-negative"
        );
        let mut z = Zipf {
            n: n as f64,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// The number of ranks.
    pub fn len(&self) -> u64 {
        self.n as u64
    }

    /// Always false: a sampler has at least one rank.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The exact probability of rank `k` (for tests and documentation).
    pub fn probability(&self, k: u64) -> f64 {
        let norm: f64 = (1..=self.n as u64)
            .map(|i| (i as f64).powf(-self.exponent))
            .sum();
        (k as f64).powf(-self.exponent) / norm
    }

    /// A rank in `1..=n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).clamp(1.0, self.n).floor();
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.exponent) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x − 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_ranks_in_range() {
        let mut r = Rng::new(3);
        for (n, s) in [
            (1u64, 1.0),
            (2, 0.5),
            (10, 1.0),
            (1000, 2.5),
            (100_000_000, 1.1),
        ] {
            let z = Zipf::new(n, s);
            for _ in 0..2000 {
                let k = z.sample(&mut r);
                assert!((1..=n).contains(&k), "rank {k} out of 1..={n}");
            }
        }
    }
}
