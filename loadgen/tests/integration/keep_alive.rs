//! Regression: a keep-alive connection the server closed while idle must not
//! turn into an error; the request goes again on a fresh connection.

use std::sync::Arc;
use std::time::Duration;

use dancu_loadgen::{
    run, Caller, ClientKind, Engine, KeyPool, Op, Report, RunConfig, Target, Workload,
};

use crate::common::ClosingServer;

/// Runs 300 requests against a server that closes every connection after
/// one answer, with the config `setup` makes of its target, and checks
/// that none failed and a connection was opened per answer.
fn every_request_answered(what: &str, setup: impl Fn(Target) -> RunConfig) {
    let server = ClosingServer::start();
    let mut config = setup(Target::parse(&server.url).unwrap());
    config.threads = 1;
    config.max_requests = Some(300);
    let workload = Workload {
        callers: vec![Caller::single(Op::Get)],
    };
    let (stats, info) = run(&config, &workload, Arc::new(KeyPool::synthetic(10, 1))).unwrap();
    let report = Report::build(&stats, info).unwrap();
    assert_eq!(report.summary.requests, 300, "{what}");
    assert_eq!(report.summary.errors, 0, "{what}: {:?}", report.statuses);
    assert!(
        report.run.connects >= 150,
        "{what}: one connection per answer, {} opened",
        report.run.connects
    );
}

#[test]
fn requests_on_connections_closed_by_the_server_are_sent_again() {
    for client in [ClientKind::Raw, ClientKind::Hyper] {
        every_request_answered(&format!("closed, {client:?}"), |target| {
            let mut config = RunConfig::closed(target, 2, Duration::from_secs(5));
            config.client = client;
            config
        });
    }
}

#[test]
fn open_model_requests_on_closed_connections_are_sent_again_by_both_engines() {
    for engine in [Engine::Auto, Engine::Tasks] {
        every_request_answered(&format!("open, {engine:?}"), |target| {
            let mut config = RunConfig::open(target, 500.0, Duration::from_secs(2));
            config.engine = engine;
            config
        });
    }
}
