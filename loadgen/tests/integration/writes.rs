//! The registrar's writes against a real dancu server with a change log.

use std::sync::Arc;
use std::time::Duration;

use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, Workload};

use crate::dancu::{by_op, start_dancu};

const KEY: &str = "loadgen-registrar-key";

#[test]
fn births_moves_and_deaths_are_accepted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let changes = dir.path().join("changes");
    let (server, snapshot) = start_dancu(
        dir.path(),
        (2_000, 7),
        ("registrar", KEY, &["citizen:read", "registrar"]),
        |config| config.changes = Some(changes),
    );
    let url = format!("http://{}", server.local_addr());
    let mut keys = KeyPool::from_snapshot(&snapshot, 2_000).unwrap();
    keys.shuffle(1);
    let mut caller = Caller::single(Op::Register);
    caller.name = "registrar".into();
    caller.ops = vec![(Op::Register, 1.0), (Op::Update, 1.0), (Op::Death, 1.0)];
    let workload = Workload {
        callers: vec![caller],
    };
    let mut config = RunConfig::open(
        Target::parse(&url).unwrap(),
        200.0,
        Duration::from_millis(1500),
    );
    config.threads = 1;
    config.api_key = Some(KEY.into());
    let (stats, info) = run(&config, &workload, Arc::new(keys)).unwrap();
    let report = Report::build(&stats, info).unwrap();

    assert_eq!(report.summary.requests, 300);
    // No 409: every death was a living person, each once.
    assert_eq!(report.summary.errors, 0, "{:?}", report.statuses);
    let (register, update, death) = (
        by_op(&report, "register"),
        by_op(&report, "update"),
        by_op(&report, "death"),
    );
    assert!(register.requests > 50 && update.requests > 50 && death.requests > 50);
    assert_eq!(
        register.requests + update.requests + death.requests,
        report.summary.requests
    );
    // Births answer 201, moves and deaths 200.
    assert_eq!(report.statuses.get("201"), Some(&register.requests));
    assert_eq!(
        report.statuses.get("200"),
        Some(&(update.requests + death.requests))
    );
    for b in [register, update, death] {
        assert_eq!(b.errors, 0, "{}", b.name);
        assert!(b.p50_us > 0, "{} has latencies", b.name);
    }
    // The changes are durable in the log.
    let logged: u64 = std::fs::read_dir(dir.path().join("changes"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(logged > 0, "the change log holds the writes");
    server.shutdown();
    server.wait().unwrap();
}
