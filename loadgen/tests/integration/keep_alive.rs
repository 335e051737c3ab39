//! Regression: a keep-alive connection the server closed while idle must not
//! turn into an error; the request goes again on a fresh connection.

use std::sync::Arc;
use std::time::Duration;

use dancu_loadgen::{
    run, Caller, ClientKind, Engine, KeyPool, Op, Report, RunConfig, Target, Workload,
};

use crate::common::ClosingServer;

#[test]
fn requests_on_connections_closed_by_the_server_are_sent_again() {
    for client in [ClientKind::Raw, ClientKind::Hyper] {
        let server = ClosingServer::start();
        let target = Target::parse(&server.url).unwrap();
        let mut config = RunConfig::closed(target, 2, Duration::from_secs(5));
        config.threads = 1;
        config.max_requests = Some(300);
        config.client = client;
        let workload = Workload {
            callers: vec![Caller::single(Op::Get)],
        };
        let (stats, info) = run(&config, &workload, Arc::new(KeyPool::synthetic(10, 1))).unwrap();
        let report = Report::build(&stats, info).unwrap();
        assert_eq!(report.summary.requests, 300, "{client:?}");
        assert_eq!(
            report.summary.errors, 0,
            "{client:?}: {:?}",
            report.statuses
        );
        assert!(
            report.run.connects >= 150,
            "{client:?}: one connection per answer, {} opened",
            report.run.connects
        );
    }
}

#[test]
fn open_model_requests_on_closed_connections_are_sent_again_by_both_engines() {
    for engine in [Engine::Auto, Engine::Tasks] {
        let server = ClosingServer::start();
        let target = Target::parse(&server.url).unwrap();
        let mut config = RunConfig::open(target, 500.0, Duration::from_secs(2));
        config.threads = 1;
        config.max_requests = Some(300);
        config.engine = engine;
        let workload = Workload {
            callers: vec![Caller::single(Op::Get)],
        };
        let (stats, info) = run(&config, &workload, Arc::new(KeyPool::synthetic(10, 1))).unwrap();
        let report = Report::build(&stats, info).unwrap();
        assert_eq!(report.summary.requests, 300, "{engine:?}");
        assert_eq!(
            report.summary.errors, 0,
            "{engine:?}: {:?}",
            report.statuses
        );
        assert!(
            report.run.connects >= 150,
            "{engine:?}: one connection per answer, {} opened",
            report.run.connects
        );
    }
}
