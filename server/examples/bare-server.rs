//! The yardstick of `bench/http.sh`: the least a hyper HTTP/1.1 server can do
//! per request. Answers every request with the same 400-byte JSON body, with
//! the same hyper settings as dancu-server (`pipeline_flush(true)`,
//! keep-alive) and the same runtime layouts.
//!
//! `cargo run --release -p dancu-server --example bare-server -- 127.0.0.1:8081 [per-core:2|multi:2]`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};

/// A JSON object of exactly 400 bytes.
fn body() -> Bytes {
    let head = r#"{"id":"079089012345","full_name":"Nguyen Van An","date_of_birth":"1989-03-14","sex":"male","nationality":"VN","padding":""#;
    let pad = 400 - head.len() - 2;
    let text = format!("{head}{}\"}}", "x".repeat(pad));
    assert_eq!(text.len(), 400);
    Bytes::from(text)
}

async fn serve(listener: TcpListener, body: Bytes) {
    let mut http = http1::Builder::new();
    http.keep_alive(true).pipeline_flush(true);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let mut r = Response::new(Full::new(body.clone()));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:8081")
        .parse()
        .expect("an address");
    let layout: dancu_server::Layout = args
        .next()
        .as_deref()
        .unwrap_or("per-core")
        .parse()
        .expect("a layout");
    let body = body();
    match layout {
        dancu_server::Layout::MultiThread { threads } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?;
            let listener = {
                let _enter = rt.enter();
                bind(addr)?
            };
            rt.block_on(serve(listener, body));
        }
        dancu_server::Layout::PerCore { threads } => {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let listener = {
                        let _enter = rt.enter();
                        bind(addr)?
                    };
                    let body = body.clone();
                    Ok(std::thread::spawn(move || {
                        rt.block_on(serve(listener, body))
                    }))
                })
                .collect::<std::io::Result<_>>()?;
            for h in handles {
                let _ = h.join();
            }
        }
    }
    Ok(())
}
