//! The open model's connection pool, on both engines: new connections open
//! no faster than `connect_rate` allows (after a first burst), requests that
//! find none wait and are all answered, and with `Reuse::LongestIdle` the
//! load goes round the pool.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use dancu_loadgen::runner::opening::BURST;
use dancu_loadgen::{
    run, Caller, Engine, KeyPool, Model, Op, Report, Reuse, RunConfig, Target, Workload,
};

/// A blocking HTTP/1.1 server, a thread per connection, that answers the
/// first `slow` requests (over all connections) after `hold` and the rest
/// at once, and counts the requests of each connection. Stops (and joins
/// its threads) when dropped.
struct CountingServer {
    url: String,
    per_connection: Arc<Mutex<Vec<Arc<AtomicU64>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CountingServer {
    fn start(slow: u64, hold: Duration) -> CountingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let per_connection = Arc::new(Mutex::new(Vec::new()));
        let (stopping, counts) = (Arc::clone(&stop), Arc::clone(&per_connection));
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
                        let mine = Arc::new(AtomicU64::new(0));
                        counts.lock().unwrap().push(Arc::clone(&mine));
                        let (answered, stopping) = (Arc::clone(&answered), Arc::clone(&stopping));
                        conns.push(std::thread::spawn(move || {
                            serve(stream, (slow, hold), &answered, &mine, &stopping)
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
        CountingServer {
            url,
            per_connection,
            stop,
            thread: Some(thread),
        }
    }

    /// Requests each connection carried, in the order they were accepted.
    fn counts(&self) -> Vec<u64> {
        let counts = self.per_connection.lock().unwrap();
        counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
    let target = Target::parse(&server.url).unwrap();
    let mut config = RunConfig::open(target, 1000.0, Duration::from_secs(5));
    if let Model::Open {
        max_connections,
        connect_rate: rate,
        ..
    } = &mut config.model
    {
        *max_connections = cap;
        *rate = connect_rate;
    }
    config.threads = 1;
    config.max_requests = Some(requests);
    config.engine = engine;
    config.reuse = reuse;
    config.timeout = Duration::from_secs(10);
    let workload = Workload {
        callers: vec![Caller::single(Op::Get)],
    };
    let (stats, info) = run(&config, &workload, Arc::new(KeyPool::synthetic(100, 1))).unwrap();
    Report::build(&stats, info).unwrap()
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
