//! The `qr` and `match` operations against a real dancu server: a
//! checkpoint scanning chip cards and a ministry sending rows to match,
//! both answered as the workload expects (no error counted), each request
//! audited by the server.

use std::sync::Arc;
use std::time::Duration;

use dancu_loadgen::report::Breakdown;
use dancu_loadgen::workload::BatchSize;
use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, Workload};

use crate::dancu::{by_op, start_dancu};

const KEY: &str = "loadgen-checkpoint-key";
const CITIZENS: u64 = 2_000;

/// Runs `caller` for 1.5 s at 120 requests per second against a fresh
/// server, which is stopped before returning; the directory holds its
/// audit log.
fn run_caller(caller: Caller) -> (Report, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let audit = dir.path().join("audit.log");
    let (server, snapshot) = start_dancu(
        dir.path(),
        (CITIZENS, 11),
        ("checkpoint", KEY, &["citizen:verify", "citizen:match"]),
        |config| config.audit = Some(audit),
    );
    let mut keys = KeyPool::from_snapshot(&snapshot, CITIZENS as usize).expect("read the keys");
    keys.shuffle(3);
    let workload = Workload {
        callers: vec![caller],
    };
    let url = format!("http://{}", server.local_addr());
    let mut config = RunConfig::open(
        Target::parse(&url).expect("the server's URL"),
        120.0,
        Duration::from_millis(1500),
    );
    config.threads = 1;
    config.api_key = Some(KEY.into());
    let (stats, info) = run(&config, &workload, Arc::new(keys)).expect("the run completes");
    server.shutdown();
    server.wait().expect("the server stops cleanly");
    (Report::build(&stats, info).expect("a report"), dir)
}

/// A checkpoint that scans cards and matches small datasets, half and half.
fn checkpoint(rows: BatchSize) -> Caller {
    let mut caller = Caller::single(Op::Qr);
    caller.name = "checkpoint".into();
    caller.ops = vec![(Op::Qr, 1.0), (Op::Match, 1.0)];
    caller.batch_verify = rows;
    caller
}

/// The `qr` and `match` figures of a run in which both were sent and no
/// answer was other than expected.
fn both_ops(report: &Report) -> (&Breakdown, &Breakdown) {
    assert_eq!(report.summary.requests, 180);
    assert_eq!(report.summary.errors, 0, "{:?}", report.statuses);
    let (qr, matching) = (by_op(report, "qr"), by_op(report, "match"));
    assert!(qr.requests > 40 && matching.requests > 40, "{report:?}");
    assert_eq!(qr.requests + matching.requests, report.summary.requests);
    (qr, matching)
}

#[test]
fn qr_and_match_requests_are_answered_as_expected() {
    let (report, dir) = run_caller(checkpoint(BatchSize { min: 1, max: 40 }));
    let (qr, matching) = both_ops(&report);
    assert_eq!(report.statuses.get("200"), Some(&report.summary.requests));
    for b in [qr, matching] {
        assert_eq!(b.errors, 0, "{}", b.name);
        assert!(b.p50_us > 0, "{} has latencies", b.name);
    }
    // Every card and every row was audited (the log is written at shutdown
    // at the latest).
    let audited = std::fs::metadata(dir.path().join("audit.log")).map_or(0, |m| m.len());
    assert!(audited > 0, "the audit log holds the requests");
}

/// Malformed cards are refused (400) and unknown ones not found (404); a
/// malformed or unknown ID in a match row is that row's result line, not a
/// failed request; mismatched claims are answers (200), never errors.
#[test]
fn malformed_unknown_and_mismatched_keys_get_their_expected_answers() {
    let mut caller = checkpoint(BatchSize::fixed(20));
    caller.malformed = 0.2;
    caller.unknown = 0.2;
    caller.mismatch = 0.2;
    let (report, _dir) = run_caller(caller);
    let (qr, _) = both_ops(&report);
    let status = |code: &str| report.statuses.get(code).copied().unwrap_or(0);
    // Only cards can be refused or unknown: a match request is 200 whatever
    // its rows hold.
    let (bad, unknown) = (status("400"), status("404"));
    assert!(bad > 0 && unknown > 0, "{:?}", report.statuses);
    assert!(bad + unknown < qr.requests, "{:?}", report.statuses);
    assert_eq!(
        status("200") + bad + unknown,
        report.summary.requests,
        "{:?}",
        report.statuses
    );
}
