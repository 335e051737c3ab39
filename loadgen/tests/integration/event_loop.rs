//! The open model's event loop against servers that misbehave on purpose:
//! every answer counted once under its status class, shed answers apart,
//! connections the server closes replaced, no answer recorded as an error,
//! and the same figures from the tokio engine.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dancu_loadgen::{Engine, Model, Report};

use crate::common::{next_get, run_open_gets, ThreadServer};

/// How the raw server answers.
#[derive(Clone, Copy)]
enum Manner {
    /// Statuses 200, 404, 500 and 503 + Retry-After in turn (counted over
    /// all connections); every 7th answer says `Connection: close` and
    /// the connection closes after it.
    Mixed,
    /// Reads a request and closes the connection without answering.
    Hangs,
    /// Reads requests and never answers.
    Silent,
}

/// A blocking HTTP/1.1 server with a thread per connection that answers
/// in the given manner.
fn raw_server(manner: Manner) -> ThreadServer {
    let answered = Arc::new(AtomicU64::new(0));
    ThreadServer::start(move |stream, stop| serve(stream, manner, &answered, stop))
}

fn serve(mut stream: TcpStream, manner: Manner, answered: &AtomicU64, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    while next_get(&mut stream, &mut buf, stop) {
        match manner {
            Manner::Hangs => return,
            Manner::Silent => continue,
            Manner::Mixed => {}
        }
        let n = answered.fetch_add(1, Ordering::Relaxed);
        let status = match n % 4 {
            0 => "200 OK",
            1 => "404 Not Found",
            2 => "500 Internal Server Error",
            _ => "503 Service Unavailable\r\nRetry-After: 1",
        };
        let close = n % 7 == 6;
        let answer = format!(
            "HTTP/1.1 {status}\r\n{}Content-Length: 2\r\n\r\n{{}}",
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// An open-model run of `requests` at 1,000/s with up to `connections`.
fn run_against(
    server: &ThreadServer,
    engine: Engine,
    requests: u64,
    connections: usize,
    timeout: Duration,
) -> Report {
    run_open_gets(&server.url, Duration::from_secs(2), |config| {
        if let Model::Open {
            max_connections, ..
        } = &mut config.model
        {
            *max_connections = connections;
        }
        config.max_requests = Some(requests);
        config.engine = engine;
        config.timeout = timeout;
    })
}

#[test]
fn every_answer_is_counted_once_under_its_status() {
    // With 1,000 connections the event loop sleeps through answers between
    // sends (timed by receive stamps); with one it wakes for each answer.
    for (engine, connections) in [
        (Engine::Auto, 1000),
        (Engine::Auto, 1),
        (Engine::Tasks, 1000),
    ] {
        let server = raw_server(Manner::Mixed);
        let r = run_against(&server, engine, 400, connections, Duration::from_secs(10));
        let expected_engine = if engine == Engine::Auto {
            "event-loop"
        } else {
            "tasks"
        };
        assert_eq!(r.run.engine, expected_engine);
        assert_eq!(r.summary.requests, 400, "{engine:?}");
        assert_eq!(r.run.sent, 400, "{engine:?}");
        for status in ["200", "404", "500", "503"] {
            assert_eq!(
                r.statuses.get(status),
                Some(&100),
                "{engine:?}: {:?}",
                r.statuses
            );
        }
        // 503 + Retry-After is shedding, not an error; 404 and 500 to a
        // lookup of a known citizen are errors.
        assert_eq!(r.summary.shed, 100, "{engine:?}");
        assert_eq!(r.summary.errors, 200, "{engine:?}");
        // Every 7th answer closed its connection: new ones replaced them.
        assert!(
            r.run.connects >= 400 / 7,
            "{engine:?}: {} opened",
            r.run.connects
        );
        assert_eq!(r.summary.unsent, 0, "{engine:?}");
    }
}

/// A server that closes without answering, and one that never answers
/// (the requests time out): every request ends as an error, none hangs.
#[test]
fn requests_without_an_answer_are_errors() {
    for (manner, requests, timeout) in [
        (Manner::Hangs, 50, Duration::from_secs(10)),
        (Manner::Silent, 20, Duration::from_millis(300)),
    ] {
        let server = raw_server(manner);
        let r = run_against(&server, Engine::Auto, requests, 1000, timeout);
        assert_eq!(r.run.engine, "event-loop");
        assert_eq!(r.summary.requests, requests);
        assert_eq!(r.summary.errors, requests);
        assert_eq!(r.statuses.get("io"), Some(&requests), "{:?}", r.statuses);
    }
}
