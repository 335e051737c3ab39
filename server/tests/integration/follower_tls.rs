//! Follower mode over TLS: a follower of an `https://` primary, through a
//! TLS terminator that stands where nginx does in production, trusts only
//! the private CA it is given and presents its client certificate (mTLS);
//! without the certificate, or trusting the wrong CA, it never applies a
//! change and says so in `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dancu_server::follower::{ClientCert, FollowConfig};
use dancu_server::{Config, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::follower::{register_some, start_in, wait_readable};
use crate::support::*;

/// A certificate authority that signs the test's certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, as rustls takes them and as PEM files.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.cert.pem()).unwrap();
        path.to_owned()
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), written
    /// to `<dir>/<stem>.crt` and `.key`.
    fn issue(&self, names: &[&str], dir: &Path, stem: &str) -> Identity {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cert_file, key_file) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Identity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            cert_file,
            key_file,
        }
    }
}

/// What nginx is in production: TLS with `server`'s certificate on a free
/// loopback port, a client certificate signed by `client_ca` required, and
/// each connection piped to `upstream` in plain TCP. Lives until the test
/// binary exits.
fn tls_terminator(upstream: SocketAddr, server: &Identity, client_ca: &Ca) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_roots = RootCertStore::empty();
    client_roots.add(client_ca.cert.der().clone()).unwrap();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
            .build()
            .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server.cert.clone()],
            PrivateKeyDer::Pkcs8(server.key.clone_key()),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake just closes the connection.
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
    });
    addr
}

fn https_follow(terminator: SocketAddr, host: &str, ca_file: &Path) -> FollowConfig {
    FollowConfig {
        ca_file: Some(ca_file.to_owned()),
        ..FollowConfig::new(
            format!("https://{host}:{}", terminator.port()),
            key::FEED.into(),
        )
    }
}

/// Starts a follower that is not expected to become ready (so not through
/// `TestServer::start`, which waits for that) and waits until it has
/// failed to poll at least twice; its `/readyz` then.
fn failed_follower(dir: &Path, base: &Path, follow: FollowConfig) -> Response {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(base, dir.join("base.snap")).unwrap();
    let mut config = Config::new(dir.join("base.snap"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.changes = Some(dir.join("changes"));
    config.follow = Some(follow);
    let server = Server::start(config).unwrap();
    let mut c = Client::connect(server.local_addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = c.get("/metrics", None).text();
        let errors = metrics
            .lines()
            .find_map(|l| l.strip_prefix("dancu_follower_poll_errors_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if errors >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no failed poll: {metrics}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = c.get("/readyz", None);
    drop(c);
    server.shutdown();
    server.wait().unwrap();
    ready
}

#[test]
fn a_follower_reads_the_feed_over_mtls_with_a_private_ca_and_only_so() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("gen1.snap");
    build(&base, 1, 300);
    let (server_ca, follower_ca) = (Ca::new("dancu test server CA"), Ca::new("followers CA"));
    let ca_file = server_ca.write(&dir.path().join("server-ca.crt"));
    let nginx = server_ca.issue(&["localhost", "127.0.0.1"], dir.path(), "nginx");
    let follower_id = follower_ca.issue(&["follower-1"], dir.path(), "follower-1");

    let primary = start_in(&dir.path().join("primary"), &base, None);
    let terminator = tls_terminator(primary.addr, &nginx, &follower_ca);

    // By name and by address, with the client certificate: it follows.
    for host in ["localhost", "127.0.0.1"] {
        let follow = FollowConfig {
            client_cert: Some(ClientCert {
                cert_file: follower_id.cert_file.clone(),
                key_file: follower_id.key_file.clone(),
            }),
            ..https_follow(terminator, host, &ca_file)
        };
        let follower = start_in(&dir.path().join(host), &base, Some(follow));
        let ids = register_some(&primary, 3, host);
        for id in &ids {
            wait_readable(&follower, id);
        }
        let ready = follower.client().get("/readyz", None);
        assert_eq!(ready.status, 200, "{}", ready.text());
    }

    // Without a client certificate the terminator refuses it.
    let ready = failed_follower(
        &dir.path().join("no-cert"),
        &base,
        https_follow(terminator, "127.0.0.1", &ca_file),
    );
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["applied"], 0, "{}", ready.text());

    // Trusting another CA, it refuses the terminator's certificate.
    let other_ca = Ca::new("another CA").write(&dir.path().join("other-ca.crt"));
    let follow = FollowConfig {
        client_cert: Some(ClientCert {
            cert_file: follower_id.cert_file.clone(),
            key_file: follower_id.key_file.clone(),
        }),
        ..https_follow(terminator, "127.0.0.1", &other_ca)
    };
    let ready = failed_follower(&dir.path().join("wrong-ca"), &base, follow);
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["applied"], 0, "{}", ready.text());
}

#[test]
fn unusable_tls_files_stop_the_start_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("gen1.snap");
    build(&base, 1, 10);
    let not_pem = dir.path().join("not-a-certificate.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let mut config = Config::new(&base);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.changes = Some(dir.path().join("changes"));
    config.follow = Some(https_follow(
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1",
        &not_pem,
    ));
    let Err(e) = Server::start(config) else {
        panic!("a certificate file that is not PEM was accepted");
    };
    let e = e.to_string();
    assert!(e.contains("not-a-certificate.pem"), "{e}");
}
