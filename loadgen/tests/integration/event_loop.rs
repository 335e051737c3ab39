//! The open model's event loop against servers that misbehave on purpose:
//! every answer counted once under its status class, shed answers apart,
//! connections the server closes replaced, no answer recorded as an error,
//! and the same figures from the tokio engine.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use dancu_loadgen::{run, Caller, Engine, KeyPool, Model, Op, Report, RunConfig, Target, Workload};

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

/// A blocking HTTP/1.1 server with a thread per connection; stops (and
/// joins its threads) when dropped.
struct RawServer {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawServer {
    fn start(manner: Manner) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let answered = Arc::new(AtomicU64::new(0));
            let mut conns = Vec::new();
            // Bounded: a minute at most whatever happens.
            for _ in 0..60_000 {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (answered, stopping) = (Arc::clone(&answered), Arc::clone(&stopping));
                        conns.push(std::thread::spawn(move || {
                            serve(stream, manner, &answered, &stopping)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            stopping.store(true, Ordering::Relaxed);
            for c in conns {
                let _ = c.join();
            }
        });
        RawServer {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, manner: Manner, answered: &AtomicU64, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
            continue;
        };
        // GET requests only: no body follows the head.
        buf.drain(..end + 4);
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
    server: &RawServer,
    engine: Engine,
    requests: u64,
    connections: usize,
    timeout: Duration,
) -> Report {
    let target = Target::parse(&server.url).unwrap();
    let mut config = RunConfig::open(target, 1000.0, Duration::from_secs(2));
    if let Model::Open {
        max_connections, ..
    } = &mut config.model
    {
        *max_connections = connections;
    }
    config.threads = 1;
    config.max_requests = Some(requests);
    config.engine = engine;
    config.timeout = timeout;
    let workload = Workload {
        callers: vec![Caller::single(Op::Get)],
    };
    let (stats, info) = run(&config, &workload, Arc::new(KeyPool::synthetic(100, 1))).unwrap();
    Report::build(&stats, info).unwrap()
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
        let server = RawServer::start(Manner::Mixed);
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
        let server = RawServer::start(manner);
        let r = run_against(&server, Engine::Auto, requests, 1000, timeout);
        assert_eq!(r.run.engine, "event-loop");
        assert_eq!(r.summary.requests, requests);
        assert_eq!(r.summary.errors, requests);
        assert_eq!(r.statuses.get("io"), Some(&requests), "{:?}", r.statuses);
    }
}
