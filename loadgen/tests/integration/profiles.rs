//! Profile parsing, the shipped profiles, and validation errors.

use std::path::PathBuf;
use std::time::Duration;

use dancu_loadgen::profile::Shape;
use dancu_loadgen::workload::Popularity;
use dancu_loadgen::{Error, Op, Profile};

fn shipped(name: &str) -> Profile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("profiles")
        .join(name);
    Profile::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn shipped_profiles_parse_and_are_national_scale() {
    for name in ["steady.toml", "national-day.toml", "burst.toml"] {
        let p = shipped(name);
        let shares: f64 = p.workload.callers.iter().map(|c| c.share).sum();
        assert!((shares - 1.0).abs() < 1e-9, "{name}: shares {shares}");
        // 100–300 M requests a day is 1.2–3.5 k/s on average; a burst base
        // is a busy hour.
        assert!(
            (1_150.0..=4_000.0).contains(&p.rate.mean),
            "{name}: mean {}",
            p.rate.mean
        );
        assert!(p.rate.poisson);
        assert!(p.duration.is_some());
    }
}

#[test]
fn bulk_only_is_national_days_bulk_caller_alone() {
    let p = shipped("bulk-only.toml");
    let day = shipped("national-day.toml");
    let [bulk] = p.workload.callers.as_slice() else {
        panic!("bulk-only.toml: one caller expected");
    };
    let same = day
        .workload
        .callers
        .iter()
        .find(|c| c.name == bulk.name)
        .expect("national-day.toml names the bulk caller");
    assert_eq!(bulk.ops, same.ops);
    assert_eq!(bulk.batch_verify, same.batch_verify);
}

#[test]
fn national_day_has_a_night_trough_and_two_peaks_near_three_times_the_mean() {
    let p = shipped("national-day.toml");
    let Shape::Curve(slots) = &p.rate.shape else {
        panic!("national-day should be a curve");
    };
    assert_eq!(slots.len(), 1440, "one slot per minute of the day");
    let curve = p.rate.curve(Duration::from_secs(1440));
    // One second of the run is one minute of the day.
    let mean = curve.mean();
    assert!(
        (mean - p.rate.mean).abs() / p.rate.mean < 1e-9,
        "mean {mean}"
    );
    let at_hour = |h: f64| curve.rate_at(h * 60.0 + 1.0);
    assert!(at_hour(3.0) < 0.2 * mean, "03:00 should be a trough");
    for h in [9.5, 10.0, 14.5, 15.0] {
        let r = at_hour(h);
        assert!(
            r > 2.3 * mean && r < 3.5 * mean,
            "{h} h: {r} vs mean {mean}"
        );
    }
    assert!(at_hour(12.5) < 0.5 * at_hour(10.0), "lunch dip");
    let peak = curve.peak() / mean;
    assert!((2.5..=3.5).contains(&peak), "peak is {peak}x the mean");
}

#[test]
fn burst_is_a_tenfold_spike() {
    let p = shipped("burst.toml");
    let curve = p.rate.curve(Duration::from_secs(100));
    let base = curve.rate_at(10.0);
    assert!((curve.rate_at(50.0) / base - 10.0).abs() < 1e-9);
    assert_eq!(curve.rate_at(90.0), base);
}

const MINIMAL: &str = r#"
name = "t"
[rate]
mean = 100.0
[[callers]]
name = "a"
share = 1.0
ops = { get = 1.0 }
"#;

fn with(extra_rate: &str, caller: &str) -> String {
    format!(
        "name = \"t\"\n[rate]\nmean = 100.0\n{extra_rate}\n[[callers]]\nname = \"a\"\nshare = 1.0\n{caller}\n"
    )
}

fn invalid(text: &str) -> String {
    match Profile::parse(text) {
        Ok(p) => panic!("accepted an invalid profile: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_minimal_profile_parses_with_defaults() {
    let p = Profile::parse(MINIMAL).unwrap();
    assert_eq!(p.rate.shape, Shape::Constant);
    assert_eq!(p.workload.callers[0].ops, vec![(Op::Get, 1.0)]);
    assert_eq!(p.workload.callers[0].popularity, Popularity::Uniform);
    let p = Profile::parse(&with(
        "",
        "ops = { verify = 1 }\npopularity = { zipf = 1.1 }\nbatch = { min = 5, max = 9 }",
    ))
    .unwrap();
    assert_eq!(p.workload.callers[0].popularity, Popularity::Zipf(1.1));
    assert_eq!(p.workload.callers[0].batch_verify.max, 9);
}

#[test]
fn validation_errors_name_the_field() {
    let e = invalid(&with(
        "",
        "ops = { get = 1.0 }\n[[callers]]\nname = \"b\"\nshare = 0.5\nops = { get = 1.0 }",
    ));
    assert!(e.contains("shares add up to 1.5"), "{e}");
    let e = invalid(&with("", "ops = { fetch = 1.0 }"));
    assert!(e.contains("ops") && e.contains("fetch"), "{e}");
    let e = invalid(&with(
        "",
        "ops = { get = 1.0 }\npopularity = { zipf = -1.0 }",
    ));
    assert!(e.contains("popularity"), "{e}");
    let e = invalid(&with("", "ops = { get = 1.0 }\npopularity = \"hot\""));
    assert!(e.contains("popularity"), "{e}");
    let e = invalid(&with("", "ops = { batch_get = 1.0 }\nbatch = 5000"));
    assert!(e.contains("batch_get") && e.contains("1000"), "{e}");
    let e = invalid(&with(
        "",
        "ops = { get = 1.0 }\nmalformed = 0.7\nunknown = 0.6",
    ));
    assert!(e.contains("exceeds 1"), "{e}");
    let e = invalid(&with(
        "shape = \"curve\"\nhourly = [1.0, 2.0]",
        "ops = { get = 1.0 }",
    ));
    assert!(e.contains("rate.hourly") && e.contains("24"), "{e}");
    let e = invalid(&with(
        "shape = \"steps\"\nsteps = [[0.5, 1.0]]",
        "ops = { get = 1.0 }",
    ));
    assert!(e.contains("rate.steps"), "{e}");
    let e = invalid(&with("shape = \"ramp\"\nfrom = 1.0", "ops = { get = 1.0 }"));
    assert!(e.contains("rate.to"), "{e}");
    let e = invalid(&with("shape = \"zigzag\"", "ops = { get = 1.0 }"));
    assert!(e.contains("zigzag"), "{e}");
    let e = invalid(
        "[rate]\nmean = -5.0\n[[callers]]\nname = \"a\"\nshare = 1.0\nops = { get = 1.0 }\n",
    );
    assert!(e.contains("rate.mean"), "{e}");
    let e = invalid(&with("", "ops = { get = 0.0 }"));
    assert!(e.contains("add up to zero"), "{e}");
    let e = invalid("[rate]\nmean = 1.0\n");
    assert!(e.contains("at least one caller"), "{e}");
}

#[test]
fn unknown_fields_and_bad_toml_are_syntax_errors() {
    let err = Profile::parse(&with("speed = 3", "ops = { get = 1.0 }")).unwrap_err();
    assert!(matches!(err, Error::ProfileSyntax { .. }), "{err}");
    let err = Profile::parse("name = ").unwrap_err();
    assert!(matches!(err, Error::ProfileSyntax { .. }), "{err}");
}

#[test]
fn a_csv_curve_is_read_next_to_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("day.csv"),
        "minute,requests_per_minute\n0,600\n1,1200\n2,1800\n",
    )
    .unwrap();
    let text = "[rate]\nshape = \"curve\"\ncsv = \"day.csv\"\n[[callers]]\nname = \"a\"\nshare = 1.0\nops = { get = 1.0 }\n";
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let p = Profile::from_file(&dir.path().join("p.toml")).unwrap();
    // Without a mean, the CSV's own rates are kept: 10, 20, 30 requests/s.
    assert!((p.rate.mean - 20.0).abs() < 1e-9);
    let c = p.rate.curve(Duration::from_secs(3));
    assert!((c.rate_at(0.5) - 10.0).abs() < 1e-9);
    assert!((c.rate_at(2.5) - 30.0).abs() < 1e-9);
}

#[test]
fn national_day_registrar_writes_at_the_seeds_rates() {
    let p = shipped("national-day.toml");
    let registrar = p
        .workload
        .callers
        .iter()
        .find(|c| c.name == "registrar")
        .expect("a registrar caller");
    let per_day = p.rate.mean * 86_400.0 * registrar.share;
    let weight: f64 = registrar.ops.iter().map(|o| o.1).sum();
    let daily = |op: Op| {
        registrar
            .ops
            .iter()
            .find(|o| o.0 == op)
            .map_or(0.0, |o| per_day * o.1 / weight)
    };
    // ~1.5 M births and ~650,000 deaths a year; moves tens of thousands a day.
    assert!((3_500.0..4_500.0).contains(&daily(Op::Register)), "births");
    assert!((1_500.0..2_100.0).contains(&daily(Op::Death)), "deaths");
    assert!((10_000.0..100_000.0).contains(&daily(Op::Update)), "moves");
    assert!(registrar.ops.iter().all(|o| o.0.is_write()));
}
