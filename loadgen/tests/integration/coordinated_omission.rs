//! Coordinated omission shown, not claimed: against a server that stalls
//! for 1 s every 5 s, the open model (timed from intended send times) must
//! show the stall in its percentiles while the closed model hides most of it.

use std::sync::Arc;
use std::time::Duration;

use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, Workload};

use crate::common::TestServer;

fn report(config: &RunConfig) -> Report {
    let workload = Workload {
        callers: vec![Caller::single(Op::Get)],
    };
    let keys = Arc::new(KeyPool::synthetic(1000, 7));
    let (stats, info) = run(config, &workload, keys).expect("run");
    Report::build(&stats, info).expect("report")
}

#[test]
fn stalls_show_in_the_open_model_and_hide_in_the_closed_model() {
    let stall = Some((Duration::from_secs(5), Duration::from_secs(1)));

    let server = TestServer::start(stall);
    let target = Target::parse(&server.url).unwrap();
    let mut open = RunConfig::open(target, 1000.0, Duration::from_secs(10));
    open.threads = 2;
    let open = report(&open);
    drop(server);

    let server = TestServer::start(stall);
    let target = Target::parse(&server.url).unwrap();
    let mut closed = RunConfig::closed(target, 10, Duration::from_secs(6));
    closed.threads = 2;
    let closed = report(&closed);
    drop(server);

    // The open model ran on the event loop, the closed one on tokio tasks.
    assert_eq!(open.run.engine, "event-loop");
    assert_eq!(closed.run.engine, "tasks");
    let (o, c) = (&open.summary, &closed.summary);
    eprintln!(
        "open: {} requests, p50 {}us p90 {}us p99 {}us max {}us; closed: {} requests, p50 {}us p90 {}us p99 {}us max {}us",
        o.requests, o.p50_us, o.p90_us, o.p99_us, o.max_us, c.requests, c.p50_us, c.p90_us, c.p99_us, c.max_us
    );
    // Two 1 s stalls in 10 s: 20 % of the requests are late by 0–1 s, so p90
    // is about half a second.
    assert_eq!(o.errors, 0);
    assert!(o.requests >= 9_900, "open model sent {}", o.requests);
    assert!(
        (100_000..=1_100_000).contains(&o.p90_us),
        "open-model p90 should be in the hundreds of ms, was {}us",
        o.p90_us
    );
    assert!(
        o.max_us >= 700_000,
        "open-model max {}us misses the stall",
        o.max_us
    );
    // The closed model saw the stall too (its max), but only a handful of
    // its requests waited through it.
    assert!(
        c.max_us >= 500_000,
        "closed-model max {}us: the server did not stall?",
        c.max_us
    );
    assert!(
        c.p90_us * 10 < o.p90_us,
        "closed-model p90 {}us should hide the stall (open {}us)",
        c.p90_us,
        o.p90_us
    );
}
