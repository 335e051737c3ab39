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
