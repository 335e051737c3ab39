//! The open model's connection pool, on both engines: new connections open
//! no faster than `connect_rate` allows (after a first burst), requests that
//! find none wait and are all answered, and with `Reuse::LongestIdle` the
//! load goes round the pool.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{next_get, run_open_gets, ThreadServer};
use dancu_loadgen::runner::opening::BURST;
use dancu_loadgen::{Engine, Model, Report, Reuse};

/// A blocking HTTP/1.1 server, a thread per connection, that answers the
/// first `slow` requests (over all connections) after `hold` and the rest
/// at once, and counts the requests of each connection. Stops (and joins
/// its threads) when dropped.
struct CountingServer {
    server: ThreadServer,
    per_connection: Arc<Mutex<Vec<Arc<AtomicU64>>>>,
}

impl CountingServer {
    fn start(slow: u64, hold: Duration) -> CountingServer {
        let per_connection = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::clone(&per_connection);
        let answered = Arc::new(AtomicU64::new(0));
        let server = ThreadServer::start(move |stream, stop| {
            let mine = Arc::new(AtomicU64::new(0));
            counts.lock().unwrap().push(Arc::clone(&mine));
            serve(stream, (slow, hold), &answered, &mine, stop)
        });
        CountingServer {
            server,
            per_connection,
        }
    }

    /// Requests each connection carried, in the order they were accepted.
    fn counts(&self) -> Vec<u64> {
        let counts = self.per_connection.lock().unwrap();
        counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

fn serve(
    mut stream: TcpStream,
    (slow, hold): (u64, Duration),
    answered: &AtomicU64,
    mine: &AtomicU64,
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    while next_get(&mut stream, &mut buf, stop) {
        mine.fetch_add(1, Ordering::Relaxed);
        if answered.fetch_add(1, Ordering::Relaxed) < slow {
            std::thread::sleep(hold);
        }
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        if stream.write_all(answer).is_err() {
            return;
        }
    }
}

/// An open-model run of `requests` at 1,000/s, one thread.
fn run_pool(
    server: &CountingServer,
    engine: Engine,
    requests: u64,
    cap: usize,
    connect_rate: Option<f64>,
    reuse: Reuse,
) -> Report {
    run_open_gets(&server.server.url, Duration::from_secs(5), |config| {
        if let Model::Open {
            max_connections,
            connect_rate: rate,
            ..
        } = &mut config.model
        {
            *max_connections = cap;
            *rate = connect_rate;
        }
        config.max_requests = Some(requests);
        config.engine = engine;
        config.reuse = reuse;
        config.timeout = Duration::from_secs(10);
    })
}

/// Every answer held 100 ms at 1,000/s wants ~100 connections; an opening
/// rate of one a minute allows the first burst and no more, and every
/// request is still sent and answered (those beyond waited).
#[test]
fn the_opening_rate_bounds_the_pool() {
    for engine in [Engine::Auto, Engine::Tasks] {
        let server = CountingServer::start(u64::MAX, Duration::from_millis(100));
        let r = run_pool(
            &server,
            engine,
            150,
            1000,
            Some(1.0 / 60.0),
            Reuse::LastFreed,
        );
        assert!(
            r.run.connects <= BURST as u64,
            "{engine:?}: {} opened",
            r.run.connects
        );
        assert_eq!(r.summary.requests, 150, "{engine:?}");
        assert_eq!(r.summary.errors, 0, "{engine:?}");
        assert_eq!(r.summary.unsent, 0, "{engine:?}");
        assert!(r.run.waited_for_connection > 0, "{engine:?}");
        // Unbounded, the same load opens more than the burst.
        let server = CountingServer::start(u64::MAX, Duration::from_millis(100));
        let r = run_pool(&server, engine, 150, 1000, None, Reuse::LastFreed);
        assert!(
            r.run.connects > BURST as u64,
            "{engine:?}: {} opened",
            r.run.connects
        );
        assert_eq!(r.summary.requests, 150, "{engine:?}");
    }
}

/// Four connections opened while the first answers are slow; afterwards
/// one would do, and last freed first would send nearly every request on
/// whichever was freed last. Longest idle first, each of the four carries
/// a fair share.
#[test]
fn idle_connections_take_turns() {
    for engine in [Engine::Auto, Engine::Tasks] {
        let server = CountingServer::start(4, Duration::from_millis(50));
        let r = run_pool(&server, engine, 400, 4, None, Reuse::LongestIdle);
        assert_eq!(r.summary.requests, 400, "{engine:?}");
        assert_eq!(r.summary.errors, 0, "{engine:?}");
        let counts = server.counts();
        assert_eq!(counts.len(), 4, "{engine:?}: {counts:?}");
        // A fair share is 100; last in, first out would leave three of
        // them with a handful each.
        assert!(counts.iter().all(|&c| c >= 50), "{engine:?}: {counts:?}");
    }
}
