//! A small HTTP/1.1 test server on 127.0.0.1 (free port) that can stall.

use std::convert::Infallible;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A running test server; stops when dropped.
pub struct TestServer {
    pub url: String,
    _thread: ServerThread,
}

/// 400 for a citizen ID that is not 12 digits or has an unknown province
/// code (000, 003, 099); 200 with a small JSON body otherwise.
fn status_for(path: &str) -> StatusCode {
    if let Some(id) = path.strip_prefix("/v1/citizens/") {
        let id = id.split('?').next().unwrap_or("");
        let valid = id.len() == 12
            && id.bytes().all(|b| b.is_ascii_digit())
            && !["000", "003", "099"].contains(&&id[..3]);
        if !valid {
            return StatusCode::BAD_REQUEST;
        }
    }
    StatusCode::OK
}

impl TestServer {
    /// Starts a server; with `stall = Some((every, for))` it answers
    /// nothing during the first `for` of every `every`, counted from its start.
    pub fn start(stall: Option<(Duration, Duration)>) -> TestServer {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let start = Instant::now();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(async move {
                            let svc =
                                service_fn(move |req: Request<hyper::body::Incoming>| async move {
                                    if let Some((every, len)) = stall {
                                        let t = start.elapsed().as_secs_f64();
                                        let phase = t % every.as_secs_f64();
                                        if phase < len.as_secs_f64() {
                                            tokio::time::sleep(Duration::from_secs_f64(
                                                len.as_secs_f64() - phase,
                                            ))
                                            .await;
                                        }
                                    }
                                    let status = status_for(req.uri().path());
                                    Ok::<_, Infallible>(
                                        Response::builder()
                                            .status(status)
                                            .header("content-type", "application/json")
                                            .body(Full::new(Bytes::from_static(
                                                b"{\"id\":\"079089012345\",\"ok\":true}",
                                            )))
                                            .expect("valid response"),
                                    )
                                });
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = rx => {}
                    // Bounded whatever happens.
                    _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                }
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server address");
        TestServer {
            url: format!("http://{addr}"),
            _thread: ServerThread {
                stop: Some(tx),
                thread: Some(thread),
            },
        }
    }
}

/// A server that answers one request per connection and then closes it
/// without saying so (no `Connection: close`), like a server whose idle
/// timeout fires between two requests. Stops when dropped.
pub struct ClosingServer {
    pub url: String,
    _thread: ServerThread,
}

impl ClosingServer {
    pub fn start() -> ClosingServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let accept = async {
                    loop {
                        let Ok((mut stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(async move {
                            let mut buf = Vec::new();
                            let mut chunk = [0u8; 4096];
                            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                match stream.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                }
                            }
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                                .await;
                            // Dropping the stream closes the connection.
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = rx => {}
                    _ = tokio::time::sleep(Duration::from_secs(120)) => {}
                }
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server address");
        ClosingServer {
            url: format!("http://{addr}"),
            _thread: ServerThread {
                stop: Some(tx),
                thread: Some(thread),
            },
        }
    }
}

/// A test server's thread: told to stop and joined when dropped.
pub struct ServerThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Owns `thread`, which stops when `stop` is sent to.
    pub fn new(stop: tokio::sync::oneshot::Sender<()>, thread: JoinHandle<()>) -> ServerThread {
        ServerThread {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Blocking reads from `stream` (which has a read timeout) until a GET
/// request's head is whole in `buf`, then drops it from `buf`; false when
/// the peer closed, the read failed or `stop` was set.
pub fn next_get(
    stream: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
    stop: &std::sync::atomic::AtomicBool,
) -> bool {
    use std::io::Read;
    let mut chunk = [0u8; 4096];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            // GET requests only: no body follows the head.
            buf.drain(..end + 4);
            return true;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    false
}

/// An open-model run of GETs at 1,000/s on one thread against `url`, for
/// `duration` at most, with `adjust` applied to the config; its report.
pub fn run_open_gets(
    url: &str,
    duration: Duration,
    adjust: impl FnOnce(&mut dancu_loadgen::RunConfig),
) -> dancu_loadgen::Report {
    use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, Workload};
    let target = Target::parse(url).unwrap();
    let mut config = RunConfig::open(target, 1000.0, duration);
    config.threads = 1;
    adjust(&mut config);
    let workload = Workload {
        callers: vec![Caller::single(Op::Get)],
    };
    let keys = std::sync::Arc::new(KeyPool::synthetic(100, 1));
    let (stats, info) = run(&config, &workload, keys).unwrap();
    Report::build(&stats, info).unwrap()
}

/// A blocking server on 127.0.0.1 (free port) with a thread per
/// connection running `serve(stream, stop)`; stops (and joins its threads)
/// when dropped, after a minute at most whatever happens.
pub struct ThreadServer {
    pub url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadServer {
    pub fn start<F>(serve: F) -> ThreadServer
    where
        F: Fn(std::net::TcpStream, &std::sync::atomic::AtomicBool) + Send + Sync + 'static,
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let serve = Arc::new(serve);
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for _ in 0..60_000 {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (serve, stopping) = (Arc::clone(&serve), Arc::clone(&stopping));
                        conns.push(std::thread::spawn(move || serve(stream, &stopping)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            stopping.store(true, Ordering::Relaxed);
            for c in conns {
                let _ = c.join();
            }
        });
        ThreadServer {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
