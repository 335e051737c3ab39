//! The floor: a bare hyper server that answers every request with one
//! fixed body, to measure what the box and the network allow.
//!
//! Latency measured against dancu mixes three things: the server's work,
//! the HTTP stack and kernel, and the generator. Running the same load
//! against the floor, in the same run and on the same box, measures the
//! last two alone, so a planner can state dancu's figures as a ratio to
//! them (`--find-capacity --floor URL`) instead of guessing how much of a
//! tail is dancu's.
//!
//! The floor is laid out like dancu's default `per-core` runtime: one
//! current-thread runtime per thread, each accepting on its own
//! `SO_REUSEPORT` listener, so the kernel spreads connections over threads.
//! It reads each request's body whole (as dancu does) and never inspects it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// Bytes of the default body: about one citizen record as dancu returns
/// it (a 1 M-snapshot record is 1,068 bytes of JSON).
pub const DEFAULT_BODY_BYTES: usize = 1024;

/// A JSON body of exactly `n` bytes (at least the 11 of `{"pad":""}\n`).
pub fn json_body(n: usize) -> Bytes {
    let mut out = Vec::with_capacity(n.max(11));
    out.extend_from_slice(b"{\"pad\":\"");
    out.resize(n.max(11) - 3, b'x');
    out.extend_from_slice(b"\"}\n");
    Bytes::from(out)
}

/// How to run the floor.
#[derive(Debug, Clone)]
pub struct FloorConfig {
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Threads, each with its own runtime and listener.
    pub threads: usize,
    /// The body of every answer (`application/json`).
    pub body: Bytes,
}

/// A running floor server; stops when dropped.
pub struct Floor {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Floor {
    /// Binds and starts serving; returns once every thread listens.
    pub fn start(config: &FloorConfig) -> Result<Floor> {
        let (stop, stopped) = watch::channel(false);
        let mut floor = Floor {
            addr: config.listen,
            stop,
            threads: Vec::new(),
        };
        for index in 0..config.threads.max(1) {
            // The first thread resolves port 0; the others share its port.
            let addr = floor.addr;
            let (ready_tx, ready_rx) = mpsc::channel();
            let body = config.body.clone();
            let stopped = stopped.clone();
            let handle = std::thread::Builder::new()
                .name(format!("floor-{index}"))
                .spawn(move || serve_thread(addr, body, stopped, ready_tx))
                .map_err(|source| Error::Runtime { source })?;
            floor.threads.push(handle);
            floor.addr = ready_rx
                .recv()
                .map_err(|_| Error::Runtime {
                    source: std::io::Error::other("a floor thread died before listening"),
                })?
                .map_err(|source| Error::Runtime { source })?;
        }
        Ok(floor)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn serve_thread(
    addr: SocketAddr,
    body: Bytes,
    mut stopped: watch::Receiver<bool>,
    ready: mpsc::Sender<std::io::Result<SocketAddr>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let listener = match bind(addr).and_then(|l| Ok((l.local_addr()?, l))) {
            Ok((local, l)) => {
                let _ = ready.send(Ok(local));
                l
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, body.clone()));
                }
            }
        }
    });
}

async fn serve_connection(stream: tokio::net::TcpStream, body: Bytes) {
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let body = body.clone();
        async move {
            // Read the request whole, as a real server must.
            let _ = req.into_body().collect().await;
            let mut resp = Response::new(Full::new(body));
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(resp)
        }
    });
    // A connection error only ends that connection. Pipelined answers are
    // flushed together, as dancu-server does: a floor must not be slower
    // than the server it is the floor of.
    let _ = http1::Builder::new()
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_has_the_asked_length_and_is_json() {
        for n in [0, 11, 12, 1024] {
            let b = super::json_body(n);
            assert_eq!(b.len(), n.max(11));
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert!(v["pad"].is_string());
        }
    }
}
