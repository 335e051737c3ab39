//! Zipf sampling against the exact distribution.

use dancu_loadgen::rng::{Rng, Zipf};

fn check(n: u64, s: f64, samples: usize) {
    let z = Zipf::new(n, s);
    let mut rng = Rng::new(11);
    let watch = 10.min(n) as usize;
    let mut counts = vec![0usize; watch];
    for _ in 0..samples {
        let k = z.sample(&mut rng);
        assert!((1..=n).contains(&k));
        if (k as usize) <= watch {
            counts[k as usize - 1] += 1;
        }
    }
    for (i, &c) in counts.iter().enumerate() {
        let p = z.probability(i as u64 + 1);
        let expected = p * samples as f64;
        let sd = (samples as f64 * p * (1.0 - p)).sqrt().max(1.0);
        assert!(
            (c as f64 - expected).abs() < 5.0 * sd,
            "n={n} s={s} rank {}: {c} draws, expected {expected:.0} ± {sd:.0}",
            i + 1
        );
    }
}

#[test]
fn frequencies_match_the_exact_probabilities() {
    check(1000, 1.1, 200_000);
    check(1000, 1.0, 200_000);
    check(50, 0.5, 100_000);
    check(100_000, 2.0, 100_000);
}

#[test]
fn exponent_zero_is_uniform() {
    check(20, 0.0, 100_000);
}

#[test]
fn a_national_key_space_costs_nothing_to_set_up() {
    let z = Zipf::new(100_000_000, 1.05);
    let mut rng = Rng::new(3);
    let top = (0..100_000).filter(|_| z.sample(&mut rng) == 1).count();
    // Rank 1 of 100 M with s = 1.05 has probability 1/H(1e8, 1.05) ≈ 7.92 %
    // (H ≈ 12.62 by Euler–Maclaurin): 7,925 ± 85 of 100,000 draws.
    assert!((7_500..8_350).contains(&top), "{top}");
}
