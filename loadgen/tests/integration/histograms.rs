//! Recording and merging: threads and processes combine without loss.

use std::time::{Duration, Instant};

use dancu_loadgen::stats::{from_base64, new_hist, to_base64, Class, Recorder};
use dancu_loadgen::workload::{Expect, Meta};
use dancu_loadgen::Op;

fn meta(op: Op, expect: Expect) -> Meta {
    Meta {
        caller: 0,
        op,
        expect,
        basic_key: false,
    }
}

#[test]
fn merged_recorders_equal_one_recorder_of_everything() {
    let start = Instant::now();
    let callers = vec!["a".to_string()];
    let mut one = Recorder::new(start, Duration::from_secs(1), 1);
    let mut a = Recorder::new(start, Duration::from_secs(1), 1);
    let mut b = Recorder::new(start, Duration::from_secs(1), 1);
    for i in 0..10_000u64 {
        let latency = Duration::from_micros(1 + (i * 7919) % 50_000);
        let at = start + Duration::from_millis(i / 2);
        let (op, status) = if i % 10 == 0 {
            (Op::Verify, Some(400))
        } else {
            (Op::Get, Some(200))
        };
        let m = meta(op, Expect::Success);
        one.record(m, status, false, latency, at);
        if i % 3 == 0 {
            a.record(m, status, false, latency, at);
        } else {
            b.record(m, status, false, latency, at);
        }
    }
    let one = one.finish(&callers);
    let mut merged = a.finish(&callers);
    merged.merge(b.finish(&callers)).unwrap();

    let all_one = one.latency(|_, _, _| true);
    let all_merged = merged.latency(|_, _, _| true);
    assert_eq!(all_one.len(), 10_000);
    assert_eq!(all_merged.len(), all_one.len());
    for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
        assert_eq!(
            all_merged.value_at_quantile(q),
            all_one.value_at_quantile(q),
            "q={q}"
        );
    }
    assert_eq!(
        merged.count(|_, o, c| o == Op::Verify && c == Class::S4xx),
        1000
    );
    // Every 400 to a request that expected success is an error.
    assert_eq!(merged.error_count(|_, _| true), 1000);
    assert_eq!(merged.statuses, one.statuses);
    // Five seconds of completions, by interval.
    assert_eq!(merged.intervals.len(), 5);
    for (index, rec) in &merged.intervals {
        let single = &one.intervals[index];
        assert_eq!(rec.completed, single.completed);
        let h1 = merged.interval_latency(rec).unwrap();
        let h2 = one.interval_latency(single).unwrap();
        assert_eq!(h1.value_at_quantile(0.99), h2.value_at_quantile(0.99));
    }
}

#[test]
fn expectations_decide_what_is_an_error() {
    let start = Instant::now();
    let mut r = Recorder::new(start, Duration::from_secs(1), 1);
    assert!(!r.record(
        meta(Op::Get, Expect::BadRequest),
        Some(400),
        false,
        Duration::from_micros(5),
        start
    ));
    assert!(!r.record(
        meta(Op::Get, Expect::NotFound),
        Some(404),
        false,
        Duration::from_micros(5),
        start
    ));
    assert!(!r.record(
        meta(Op::Verify, Expect::NotFound),
        Some(200),
        false,
        Duration::from_micros(5),
        start
    ));
    assert!(r.record(
        meta(Op::Get, Expect::NotFound),
        Some(200),
        false,
        Duration::from_micros(5),
        start
    ));
    assert!(r.record(
        meta(Op::Get, Expect::Success),
        Some(503),
        false,
        Duration::from_micros(5),
        start
    ));
    assert!(r.record(
        meta(Op::Get, Expect::Success),
        None,
        false,
        Duration::from_micros(5),
        start
    ));
    // A 503 with Retry-After is shedding: counted apart, not an error.
    assert!(!r.record(
        meta(Op::Get, Expect::Success),
        Some(503),
        true,
        Duration::from_micros(5),
        start
    ));
    let s = r.finish(&["x".to_string()]);
    assert_eq!(s.error_count(|_, _| true), 3);
    assert_eq!(s.shed, 1);
    assert_eq!(s.statuses.get(&0), Some(&1), "no answer is status 0");
}

#[test]
fn histograms_survive_base64_with_microsecond_precision() {
    let mut h = new_hist();
    for v in [1u64, 2, 3, 999, 1_000, 1_001, 123_456, 3_600_000_000] {
        h.record(v).unwrap();
    }
    let back = from_base64(&to_base64(&h), "t").unwrap();
    assert_eq!(back.len(), h.len());
    for v in [1u64, 2, 3, 999] {
        assert_eq!(back.count_at(v), 1, "{v}us must be exact");
    }
    assert!(back.equivalent(back.max(), 3_600_000_000));
    assert!(from_base64("not base64!", "t").is_err());
}
