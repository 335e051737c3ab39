//! Several targets share the load, and `https://` targets work through a
//! private CA (a TLS endpoint started here, with a self-signed certificate
//! made by rcgen), as a TLS-terminating nginx in front of followers needs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, TlsClient, Workload};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::common::ServerThread;

/// A server on 127.0.0.1 that counts the requests it answers (200 with a
/// small JSON body), over TLS when given an acceptor. Stops when dropped.
struct CountingServer {
    addr: SocketAddr,
    answered: Arc<AtomicU64>,
    _thread: ServerThread,
}

impl CountingServer {
    fn start(tls: Option<TlsAcceptor>) -> CountingServer {
        let answered = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&answered);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        accepted = listener.accept() => accepted.unwrap(),
                        _ = &mut stopped => return,
                    };
                    let count = Arc::clone(&count);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |_req| {
                            count.fetch_add(1, Ordering::Relaxed);
                            async {
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                    b"{\"ok\":true}",
                                ))))
                            }
                        });
                        let builder = http1::Builder::new();
                        match tls {
                            None => {
                                let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                            }
                            Some(acceptor) => {
                                // A client that does not trust us hangs up in
                                // the handshake: nothing to serve then.
                                if let Ok(stream) = acceptor.accept(tcp).await {
                                    let _ = builder
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                }
                            }
                        }
                    });
                }
            });
        });
        CountingServer {
            addr: addr_rx.recv().unwrap(),
            answered,
            _thread: ServerThread::new(stop, thread),
        }
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

/// A self-signed certificate for 127.0.0.1: the server's acceptor and the
/// certificate as PEM (the "private CA" a client must be told about).
fn self_signed() -> (TlsAcceptor, String) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    (TlsAcceptor::from(Arc::new(config)), cert.pem())
}

fn get_workload() -> (Workload, Arc<KeyPool>) {
    let workload = Workload {
        callers: vec![Caller::single(Op::Get)],
    };
    (workload, Arc::new(KeyPool::synthetic(1000, 5)))
}

fn run_open(config: &RunConfig) -> Report {
    let (workload, keys) = get_workload();
    let (stats, info) = run(config, &workload, keys).expect("run");
    Report::build(&stats, info).expect("report")
}

#[test]
fn the_open_model_sends_to_each_target_in_turn() {
    let a = CountingServer::start(None);
    let b = CountingServer::start(None);
    let mut config = RunConfig::open(
        Target::parse(&format!("http://{}", a.addr)).unwrap(),
        400.0,
        Duration::from_secs(1),
    );
    config
        .targets
        .push(Target::parse(&format!("http://{}", b.addr)).unwrap());
    config.threads = 1;
    let r = run_open(&config);
    assert_eq!(r.summary.requests, 400);
    assert_eq!(r.summary.errors, 0, "{:?}", r.statuses);
    assert_eq!((a.answered(), b.answered()), (200, 200));
}

#[test]
fn the_closed_model_spreads_connections_over_targets() {
    let a = CountingServer::start(None);
    let b = CountingServer::start(None);
    let mut config = RunConfig::closed(
        Target::parse(&format!("http://{}", a.addr)).unwrap(),
        2,
        Duration::from_secs(5),
    );
    config
        .targets
        .push(Target::parse(&format!("http://{}", b.addr)).unwrap());
    config.threads = 1;
    config.max_requests = Some(300);
    let r = run_open(&config);
    assert_eq!(r.summary.requests, 300);
    assert!(a.answered() > 0 && b.answered() > 0);
    assert_eq!(a.answered() + b.answered(), 300);
}

/// An open-model run of `requests` GETs over one second against a TLS
/// server using `acceptor`, trusting the certificates in `ca_pem`; returns
/// the report and how many requests the server answered.
fn https_run(acceptor: TlsAcceptor, ca_pem: &str, requests: u64) -> (Report, u64) {
    let server = CountingServer::start(Some(acceptor));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let mut config = RunConfig::open(
        Target::parse(&format!("https://{}", server.addr)).unwrap(),
        requests as f64,
        Duration::from_secs(1),
    );
    config.threads = 1;
    config.timeout = Duration::from_secs(2);
    config.tls = Some(TlsClient::new(Some(&ca)).unwrap());
    let report = run_open(&config);
    let answered = server.answered();
    (report, answered)
}

#[test]
fn https_targets_are_loaded_through_a_private_ca() {
    let (acceptor, pem) = self_signed();
    let (r, answered) = https_run(acceptor, &pem, 300);
    assert_eq!(r.summary.requests, 300);
    assert_eq!(r.summary.errors, 0, "{:?}", r.statuses);
    assert_eq!(answered, 300);
}

#[test]
fn an_https_target_whose_certificate_is_not_trusted_fails_every_request() {
    let (acceptor, _) = self_signed();
    let (_, other_pem) = self_signed();
    let (r, answered) = https_run(acceptor, &other_pem, 20);
    assert_eq!(r.summary.requests, 20);
    assert_eq!(r.summary.errors, 20);
    assert_eq!(answered, 0);
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("empty.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let err = TlsClient::new(Some(&ca)).unwrap_err().to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
}
