//! The follower's connection to its primary.
//!
//! `http://host:port` is plain HTTP/1.1 to the primary's own listener, for
//! a private network. `https://host[:port]` is TLS (rustls) to whatever
//! terminates TLS in front of the primary — nginx's follower port in
//! `deploy/nginx/dancu.conf` — verified against the system's trust store,
//! or only against `--follow-ca` when it is given (a private CA), and
//! presenting a client certificate when the terminator asks for one (mTLS,
//! `--follow-cert`/`--follow-cert-key`). dancu terminates no TLS itself.
//!
//! Everything is read and checked when the server starts, so a wrong path
//! or an unusable certificate stops the start with a message instead of a
//! follower that never connects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{describe, FollowConfig};

/// A client certificate and its private key, PEM files (mTLS).
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// How to reach the primary: where to connect, what to send as `Host`,
/// and the TLS client, if any.
#[derive(Clone)]
pub struct PrimaryLink {
    /// `host:port` to connect to (the default port filled in).
    address: String,
    /// The URL's authority as written, for the `Host` header.
    host_header: String,
    tls: Option<Tls>,
}

#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    /// The name the primary's certificate must carry (DNS name or IP).
    server_name: ServerName<'static>,
}

/// The parts of a `--follow` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    https: bool,
    /// The authority as written (`host`, `host:port`, `[v6]:port`).
    authority: &'a str,
    /// The host without brackets or port.
    host: &'a str,
    port: u16,
}

fn parse(url: &str) -> Result<Target<'_>, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!(
            "--follow {url}: expected http://host:port or https://host[:port]"
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "--follow {url}: expected a scheme and host[:port] only (no path, query or user)"
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("--follow {url}: unclosed '[' in the host"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("--follow {url}: bad port {p:?}"))?,
        None if https => 443,
        None => 80,
    };
    if host.is_empty() {
        return Err(format!("--follow {url}: no host"));
    }
    Ok(Target {
        https,
        authority,
        host,
        port,
    })
}

impl PrimaryLink {
    /// Checks `config.primary` and reads the TLS files it needs.
    pub fn new(config: &FollowConfig) -> Result<PrimaryLink, String> {
        let target = parse(&config.primary)?;
        let address = if target.authority.starts_with('[') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        };
        let tls = if target.https {
            let server_name = ServerName::try_from(target.host.to_owned())
                .map_err(|e| format!("--follow {}: {e}", config.primary))?;
            Some(Tls {
                connector: TlsConnector::from(Arc::new(client_config(config)?)),
                server_name,
            })
        } else {
            if config.ca_file.is_some() || config.client_cert.is_some() {
                return Err(format!(
                    "--follow {}: --follow-ca and --follow-cert need an https:// URL",
                    config.primary
                ));
            }
            None
        };
        Ok(PrimaryLink {
            address,
            host_header: target.authority.to_owned(),
            tls,
        })
    }

    /// The value of the `Host` header of requests to the primary.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    /// A new HTTP/1.1 connection to the primary (TLS handshake included).
    pub async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let address = &self.address;
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot reach the primary at {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => handshake(TokioIo::new(stream), address).await,
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|e| format!("TLS with the primary at {address}: {}", describe(&e)))?;
                handshake(TokioIo::new(stream), address).await
            }
        }
    }
}

async fn handshake<I>(io: I, address: &str) -> Result<SendRequest<Empty<Bytes>>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake with {address}: {}", describe(&e)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// rustls with ring, TLS 1.2 and 1.3; the roots and the client certificate
/// from `config`.
fn client_config(config: &FollowConfig) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots(config.ca_file.as_deref())?);
    match &config.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(client) => {
            let chain = certificates(&client.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(&client.key_file)
                .map_err(|e| format!("--follow-cert-key {}: {e}", client.key_file.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "--follow-cert {} with --follow-cert-key {}: {e}",
                    client.cert_file.display(),
                    client.key_file.display()
                )
            })
        }
    }
}

/// The CAs in `ca_file` only, or the system's trust store without one.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("--follow-ca {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            // Unparsable system certificates are skipped, as a browser
            // would; only an empty store is an error.
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(format!(
                    "no CA certificates in the system trust store ({} errors); give --follow-ca FILE",
                    found.errors.len()
                ));
            }
        }
    }
    Ok(roots)
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_scheme_host_and_port() {
        let t = parse("https://primary.dancu.internal:8443/").unwrap();
        assert_eq!(
            t,
            Target {
                https: true,
                authority: "primary.dancu.internal:8443",
                host: "primary.dancu.internal",
                port: 8443
            }
        );
        assert_eq!(parse("https://10.0.0.11").unwrap().port, 443);
        assert_eq!(parse("http://10.0.0.11").unwrap().port, 80);
        let v6 = parse("https://[fd00::11]:8443").unwrap();
        assert_eq!((v6.host, v6.port), ("fd00::11", 8443));
        for bad in [
            "10.0.0.11:8080",
            "ftp://x",
            "http://",
            "https://h/v1",
            "https://u@h",
            "http://h:port",
            "https://[::1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_files_need_https_and_a_missing_one_is_named() {
        for (url, expected) in [
            ("http://127.0.0.1:8080", "https://"),
            ("https://127.0.0.1:8443", "/nonexistent/ca.pem"),
        ] {
            let config = FollowConfig {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..FollowConfig::new(url.into(), "k".into())
            };
            let Err(e) = PrimaryLink::new(&config) else {
                panic!("{url}: accepted");
            };
            assert!(e.contains(expected), "{url}: {e}");
        }
    }
}
