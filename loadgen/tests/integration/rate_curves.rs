//! Rate-curve math: expected counts, their inverse, and schedules.

use std::time::Duration;

use dancu_loadgen::rate::Schedule;
use dancu_loadgen::RateCurve;

const D: Duration = Duration::from_secs(10);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn constant_ramp_and_steps_integrate_exactly() {
    let c = RateCurve::constant(1000.0, D);
    assert!(close(c.expected(2.5), 2500.0));
    assert!(close(c.total(), 10_000.0));
    assert!(close(c.mean(), 1000.0));

    let r = RateCurve::ramp(0.0, 2000.0, D);
    // ∫0^t 200 s ds = 100 t².
    assert!(close(r.expected(5.0), 2500.0));
    assert!(close(r.total(), 10_000.0));
    assert!(close(r.rate_at(2.5), 500.0));

    let s = RateCurve::equal_steps(&[100.0, 300.0], D);
    assert!(close(s.expected(5.0), 500.0));
    assert!(close(s.expected(7.0), 1100.0));
    assert_eq!(s.rate_at(4.999), 100.0);
    assert_eq!(s.rate_at(5.0), 300.0);
    assert_eq!(s.peak(), 300.0);
}

#[test]
fn time_of_inverts_expected() {
    let curves = [
        RateCurve::constant(1000.0, D),
        RateCurve::ramp(0.0, 2000.0, D),
        RateCurve::ramp(3000.0, 10.0, D),
        RateCurve::equal_steps(&[100.0, 0.0, 5000.0, 10.0], D),
        RateCurve::per_slot(&[1.0, 2.0, 3.0, 0.5, 8.0], D),
    ];
    for c in &curves {
        let total = c.total();
        for k in 1..200 {
            let n = total * k as f64 / 200.0;
            let t = c.time_of(n).expect("inside the curve");
            assert!(
                close(c.expected(t), n),
                "{c:?}: N({t}) = {} ≠ {n}",
                c.expected(t)
            );
        }
        assert!(c.time_of(total * 1.01).is_none());
    }
}

#[test]
fn even_schedule_sends_exactly_the_expected_count_split_over_threads() {
    let c = RateCurve::ramp(100.0, 1900.0, D);
    let mut all = Vec::new();
    for i in 0..3 {
        let mut s = Schedule::new(c.clone(), false, 1, i, 3);
        while let Some(t) = s.next_time() {
            assert!((0.0..=10.0).contains(&t));
            all.push(t);
        }
    }
    assert_eq!(all.len(), 10_000);
    all.sort_by(f64::total_cmp);
    // In the first second the ramp asks for 190 requests.
    let first = all.iter().filter(|&&t| t < 1.0).count();
    assert!((189..=191).contains(&first), "{first}");
}

#[test]
fn poisson_schedule_matches_the_rate_on_average() {
    let c = RateCurve::constant(2000.0, D);
    let mut n = 0;
    let mut gaps_sq = 0.0;
    let mut gaps = 0.0;
    let mut s = Schedule::new(c, true, 42, 0, 1);
    let mut last = 0.0;
    while let Some(t) = s.next_time() {
        n += 1;
        let g = t - last;
        gaps += g;
        gaps_sq += g * g;
        last = t;
    }
    // 20,000 expected; Poisson sd ≈ 141.
    assert!((19_400..=20_600).contains(&n), "{n}");
    // Exponential gaps: coefficient of variation ≈ 1 (even gaps would give 0).
    let mean = gaps / n as f64;
    let cv = (gaps_sq / n as f64 - mean * mean).sqrt() / mean;
    assert!((0.9..1.1).contains(&cv), "cv {cv}");
}

#[test]
fn scaling_multiplies_every_rate() {
    let c = RateCurve::equal_steps(&[1.0, 3.0], D).scaled(1000.0);
    assert!(close(c.total(), 20_000.0));
    assert_eq!(c.peak(), 3000.0);
}
