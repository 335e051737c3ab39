//! TLS for `https://` targets: a rustls client that trusts a given CA.
//!
//! In a national deployment the gateways reach dancu through a TLS
//! terminator (nginx in front of the primary and its followers, see
//! `deploy/`), so a capacity planner must be able to load that path, not
//! only the servers behind it. The client trusts the certificates of a PEM
//! file: `--ca FILE` for a private CA (the local cluster's self-signed
//! certificate), else the system bundle. rustls on `ring`: no OpenSSL, and
//! one TLS stack in the workspace.
//!
//! The handshake happens once per connection and is timed like a TCP
//! connect (it delays the request that opened the connection); requests on
//! an open connection pay only the record layer's encryption.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// Where Linux distributions keep the system's trusted CA bundle (Debian
/// and its children first, then Red Hat's family).
const SYSTEM_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// A TLS client configuration, shared by every connection of a run.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    ca: PathBuf,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").field("ca", &self.ca).finish()
    }
}

impl TlsClient {
    /// A client trusting the certificates in `ca` (PEM), or the system
    /// bundle when `ca` is `None`. Offers only HTTP/1.1 in ALPN, the one
    /// protocol both clients speak.
    pub fn new(ca: Option<&Path>) -> Result<TlsClient> {
        let path = match ca {
            Some(p) => p.to_path_buf(),
            None => SYSTEM_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    Error::invalid(
                        "ca",
                        "",
                        "https targets need --ca FILE: no system CA bundle found",
                    )
                })?,
        };
        let bad = |reason: String| Error::invalid("ca", &path.display().to_string(), reason);
        let certs = CertificateDer::pem_file_iter(&path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in the file".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            ca: path,
        })
    }

    /// The CA file this client trusts.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// Runs the handshake on `tcp` for the server called `name`.
    pub async fn connect(&self, name: &str, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }
}

/// A connection's byte stream: plain TCP or TLS over TCP.
pub enum Stream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://` (boxed: the TLS state is large and plain streams are
    /// the common case).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
