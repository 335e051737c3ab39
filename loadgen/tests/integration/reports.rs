//! Reports: the JSON summary line, report.json/report.html, and merging.

use std::sync::Arc;
use std::time::Duration;

use dancu_loadgen::workload::Expect;
use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, Workload};

use crate::common::TestServer;

fn short_run(url: &str, rate: f64, malformed: f64) -> Report {
    let target = Target::parse(url).unwrap();
    let mut config = RunConfig::open(target, rate, Duration::from_millis(1500));
    config.threads = 2;
    let mut caller = Caller::single(Op::Get);
    caller.malformed = malformed;
    let workload = Workload {
        callers: vec![caller],
    };
    let (stats, info) = run(&config, &workload, Arc::new(KeyPool::synthetic(500, 3))).unwrap();
    Report::build(&stats, info).unwrap()
}

#[test]
fn json_line_has_the_promised_fields() {
    let server = TestServer::start(None);
    let report = short_run(&server.url, 400.0, 0.2);
    let line = report.json_line();
    assert!(!line.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    for field in [
        "requests",
        "requests_per_s",
        "target_rate",
        "p50_us",
        "p99_us",
        "p999_us",
        "max_us",
        "errors",
        "behind_schedule_us",
    ] {
        assert!(
            v.get(field).is_some_and(|f| f.is_number()),
            "{field} missing in {line}"
        );
    }
    assert_eq!(v["requests"], 600);
    assert_eq!(v["target_rate"], 400.0);
    // Malformed IDs were answered 400 as expected: not errors.
    assert_eq!(v["errors"], 0, "{line}");
    assert!(v["statuses"]["400"].as_u64().unwrap() > 60);
    assert!(v["statuses"]["200"].as_u64().unwrap() > 300);
}

#[test]
fn report_dir_holds_json_and_self_contained_html() {
    let server = TestServer::start(None);
    let report = short_run(&server.url, 300.0, 0.0);
    let dir = tempfile::tempdir().unwrap();
    report.write_dir(dir.path()).unwrap();
    let back = Report::read(&dir.path().join("report.json")).unwrap();
    // Integers exactly; floats to JSON's printing precision.
    let (a, b) = (&back.summary, &report.summary);
    assert_eq!(
        (a.requests, a.sent, a.p50_us, a.p99_us, a.p999_us, a.max_us, a.errors),
        (b.requests, b.sent, b.p50_us, b.p99_us, b.p999_us, b.max_us, b.errors)
    );
    assert!((a.requests_per_s - b.requests_per_s).abs() < 1e-6);
    assert!(!back.intervals.is_empty());
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 4, "four charts");
    assert!(
        !html.contains("http://") || !html.contains("<script src"),
        "no network needed"
    );
    assert!(!html.contains("<script"), "no script at all");
}

#[test]
fn merged_reports_add_up() {
    let server = TestServer::start(None);
    let a = short_run(&server.url, 200.0, 0.0);
    let b = short_run(&server.url, 300.0, 0.0);
    let m = Report::merge(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(m.summary.requests, a.summary.requests + b.summary.requests);
    assert_eq!(m.run.processes, 2);
    assert!(m.summary.max_us == a.summary.max_us.max(b.summary.max_us));
    let interval_total: u64 = m.intervals.iter().map(|i| i.completed).sum();
    assert_eq!(interval_total, m.summary.requests);
    // Through JSON and back, too.
    let dir = tempfile::tempdir().unwrap();
    a.write_dir(&dir.path().join("a")).unwrap();
    b.write_dir(&dir.path().join("b")).unwrap();
    let again = Report::merge(&[
        Report::read(&dir.path().join("a/report.json")).unwrap(),
        Report::read(&dir.path().join("b/report.json")).unwrap(),
    ])
    .unwrap();
    assert_eq!(again.summary.requests, m.summary.requests);
    assert_eq!(again.summary.p99_us, m.summary.p99_us);
}

#[test]
fn expected_answers_follow_the_key_kind() {
    assert!(Expect::BadRequest.accepts(Op::Get, 400));
    assert!(!Expect::BadRequest.accepts(Op::Get, 200));
    assert!(Expect::NotFound.accepts(Op::Verify, 200));
    assert!(!Expect::NotFound.accepts(Op::Get, 200));
}
