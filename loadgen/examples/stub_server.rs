//! A bare hyper HTTP/1.1 server answering every request with the same
//! 400-byte JSON body: the yardstick for comparing load tools (and for
//! trying dancu-loadgen without a snapshot). It can also stall, to show
//! coordinated omission.
//!
//! ```text
//! cargo run --release -p dancu-loadgen --example stub_server -- [PORT] [WORKERS] [STALL_EVERY_S STALL_FOR_S]
//! ```
//!
//! Listens on 127.0.0.1 only and exits after an hour at most.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A 400-byte JSON body shaped like a basic citizen record.
fn body() -> Bytes {
    let mut s = String::from(
        "{\"id\":\"079089012345\",\"full_name\":\"Nguyễn Văn An\",\"date_of_birth\":\"1989-03-14\",\
         \"sex\":\"male\",\"nationality\":\"VN\",\"note\":\"",
    );
    while s.len() < 398 {
        s.push('x');
    }
    s.push_str("\"}");
    assert_eq!(s.len(), 400);
    Bytes::from(s)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().and_then(|a| a.parse().ok()).unwrap_or(8089);
    let workers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let stall_every: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let stall_for: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("stub_server listening on http://{}", listener.local_addr()?);
        let start = Instant::now();
        let body = body();
        let serve = async move {
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let body = body.clone();
                        async move {
                            if stall_every > 0.0 {
                                let t = start.elapsed().as_secs_f64();
                                let phase = t % stall_every;
                                if phase < stall_for {
                                    tokio::time::sleep(Duration::from_secs_f64(stall_for - phase))
                                        .await;
                                }
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(body))
                                    .expect("static response is valid"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        };
        tokio::select! {
            r = serve => r,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
