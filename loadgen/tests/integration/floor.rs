//! The floor server answers anything with its fixed body; every report
//! carries the generator's self-check; 503 with `Retry-After` is shedding,
//! counted apart from errors.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dancu_loadgen::floor::{json_body, Floor, FloorConfig};
use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, Workload};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;

fn run_against(url: &str, op: Op) -> Report {
    let target = Target::parse(url).unwrap();
    let mut config = RunConfig::open(target, 400.0, Duration::from_secs(1));
    config.threads = 1;
    let workload = Workload {
        callers: vec![Caller::single(op)],
    };
    let keys = Arc::new(KeyPool::synthetic(1000, 5));
    let (stats, info) = run(&config, &workload, keys).expect("run");
    Report::build(&stats, info).expect("report")
}

#[test]
fn the_floor_answers_every_operation_and_the_report_checks_the_generator() {
    let floor = Floor::start(&FloorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        body: json_body(300),
    })
    .expect("floor");
    let url = format!("http://{}", floor.addr());
    for op in [Op::Get, Op::BatchVerify] {
        let r = run_against(&url, op);
        let s = &r.summary;
        assert_eq!(s.errors, 0, "{op}: {:?}", r.statuses);
        assert_eq!(s.requests, 400, "{op}");
        assert!(s.cpu_us_per_request > 0.0, "{op}: no CPU measured");
        assert!(r.text().contains("self-check"));
        assert!(r.json_line().contains("\"cpu_us_per_request\""));
    }
}

#[test]
fn a_503_with_retry_after_is_shed_not_an_error() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let accept = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let svc = service_fn(|_req| async {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(503)
                                    .header("retry-after", "1")
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
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
                _ = stop_rx => {}
            }
        });
    });
    let addr = addr_rx.recv().unwrap();
    let r = run_against(&format!("http://{addr}"), Op::Get);
    let _ = stop_tx.send(());
    server.join().unwrap();
    assert_eq!(r.summary.shed, 400);
    assert_eq!(r.summary.errors, 0);
    assert!(r.text().contains("shed 400"));
}
