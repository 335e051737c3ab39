//! HTTP/1.1 keep-alive clients: a lean hand-rolled one (default) and hyper's.
//!
//! The lean client writes each request with one `write` from a reused
//! buffer and parses the answer's head in place with `httparse`, reading
//! the body into the same buffer and dropping it. It does no pipelining,
//! so each connection has at most one request in flight, exactly like wrk.
//!
//! Both speak over plain TCP or, for `https://` targets, TLS
//! ([`crate::tls`]).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::tls::{Stream, TlsClient};
use crate::workload::{Method, Request};
use crate::writes::{CHANGE_REASON, CHANGE_REASON_NAME, CHANGE_REASON_VALUE};

/// A server to send requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// Value of the `Host` header.
    pub host: String,
    /// Where to connect (resolved once, at start).
    pub addr: SocketAddr,
    /// Path prefix put before every API path (usually empty).
    pub base_path: String,
    /// For `https://` targets, the name the server's certificate must
    /// carry (the host without the port); `None` for `http://`.
    pub tls_name: Option<String>,
}

impl Target {
    /// Parses `http://host[:port][/prefix]` or `https://...` and resolves
    /// the host.
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |reason: &str| Error::InvalidTarget {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false, 80)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true, 443)
        } else {
            return Err(bad("only http:// and https:// targets are supported"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let port_given = authority
            .rsplit_once(':')
            .filter(|(_, p)| p.parse::<u16>().is_ok())
            .map(|(host, _)| host);
        let with_port = match port_given {
            Some(_) => authority.to_string(),
            None => format!("{authority}:{default_port}"),
        };
        let host_only = port_given.unwrap_or(authority);
        // An IPv6 literal is bracketed in a URL but not in a server name.
        let tls_name = tls.then(|| {
            host_only
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| bad(&e.to_string()))?
            .next()
            .ok_or_else(|| bad("the host name resolves to no address"))?;
        Ok(Target {
            url: url.to_string(),
            host: authority.to_string(),
            addr,
            base_path: path.to_string(),
            tls_name,
        })
    }

    /// Whether requests go over TLS.
    pub fn is_https(&self) -> bool {
        self.tls_name.is_some()
    }
}

/// Which HTTP client to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientKind {
    /// The lean hand-rolled client.
    #[default]
    Raw,
    /// hyper's `client::conn::http1`.
    Hyper,
}

/// Writes a whole HTTP/1.1 request into `out` (cleared first).
pub fn write_request(out: &mut Vec<u8>, req: &Request, target: &Target, auth: Option<&[u8]>) {
    out.clear();
    let method = req.method.unwrap_or(Method::Get);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.base_path.as_bytes());
    out.extend_from_slice(&req.path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(target.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(a) = auth {
        out.extend_from_slice(b"Authorization: ");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    if req.change_reason {
        out.extend_from_slice(CHANGE_REASON);
    }
    if method.has_body() {
        out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(n.format(req.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&req.body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// What came back for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The answer carried a `Retry-After` header: with 503 it means the
    /// server shed the request on purpose (overload protection).
    pub retry_after: bool,
}

impl Answer {
    /// A 503 with `Retry-After`: deliberate load shedding, not a failure.
    pub fn shed(self) -> bool {
        self.status == 503 && self.retry_after
    }
}

/// An open keep-alive connection.
pub enum Conn {
    /// The lean client.
    Raw(RawConn),
    /// hyper's client.
    Hyper(HyperConn),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Raw(_) => "Conn::Raw",
            Conn::Hyper(_) => "Conn::Hyper",
        })
    }
}

impl Conn {
    /// Connects to a target, with a TLS handshake through `tls` for an
    /// `https://` target. The hyper client spawns its connection task with
    /// `spawn_local`, so it must run inside a `LocalSet`.
    pub async fn connect(
        kind: ClientKind,
        target: &Target,
        tls: Option<&TlsClient>,
    ) -> io::Result<Conn> {
        let tcp = TcpStream::connect(target.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match (&target.tls_name, tls) {
            (None, _) => Stream::Plain(tcp),
            (Some(name), Some(tls)) => Stream::Tls(Box::new(tls.connect(name, tcp).await?)),
            (Some(_), None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an https:// target needs a TLS client configuration",
                ))
            }
        };
        match kind {
            ClientKind::Raw => Ok(Conn::Raw(RawConn::new(stream))),
            ClientKind::Hyper => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(io::Error::other)?;
                tokio::task::spawn_local(async move {
                    // Errors surface on the next send_request.
                    let _ = conn.await;
                });
                Ok(Conn::Hyper(HyperConn { sender }))
            }
        }
    }

    /// Sends one request and reads the whole answer; returns its status.
    /// `wire` is the request as bytes (from [`write_request`]) for the lean
    /// client; hyper builds its own from `req`.
    pub async fn send(
        &mut self,
        wire: &[u8],
        req: &Request,
        target: &Target,
        auth: Option<&[u8]>,
    ) -> io::Result<Answer> {
        match self {
            Conn::Raw(c) => c.round_trip(wire).await,
            Conn::Hyper(c) => c.round_trip(req, target, auth).await,
        }
    }

    /// False once the server said it will close the connection.
    pub fn reusable(&self) -> bool {
        match self {
            Conn::Raw(c) => !c.closed,
            Conn::Hyper(c) => !c.sender.is_closed(),
        }
    }
}

/// The lean client's connection.
pub struct RawConn {
    stream: Stream,
    buf: Vec<u8>,
    closed: bool,
}

const READ_CHUNK: usize = 16 * 1024;

impl RawConn {
    fn new(stream: Stream) -> RawConn {
        RawConn {
            stream,
            // Small to start: most answers are a record or less, and an idle
            // connection in a large pool should cost little.
            buf: Vec::with_capacity(4096),
            closed: false,
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            self.closed = true;
        }
        Ok(n)
    }

    async fn round_trip(&mut self, wire: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(wire).await?;
        if let Stream::Tls(_) = self.stream {
            // rustls may hold records back until flushed; a plain TCP
            // stream has nothing to flush.
            self.stream.flush().await?;
        }
        self.buf.clear();
        let head = loop {
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match parse_head(&self.buf)? {
                Some(head) if head.interim() => {
                    // An interim answer (100 Continue): skip it.
                    self.buf.drain(..head.len);
                }
                Some(head) => break head,
                None => {}
            }
        };
        if head.close {
            self.closed = true;
        }
        let Head {
            status,
            retry_after,
            len: head_len,
            framing,
            ..
        } = head;
        match framing {
            Framing::Length(n) => {
                // Body bytes are not kept: count them off and reuse the buffer.
                let mut remaining = (head_len + n).saturating_sub(self.buf.len());
                while remaining > 0 {
                    self.buf.clear();
                    let got = self.fill().await?;
                    if got == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    remaining = remaining.saturating_sub(got);
                }
            }
            Framing::Chunked => loop {
                if chunked_end(&self.buf[head_len..])?.is_some() {
                    break;
                }
                if self.fill().await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            },
            Framing::UntilClose => {
                while self.fill().await? > 0 {
                    self.buf.clear();
                }
                self.closed = true;
            }
        }
        if self.buf.capacity() > 4 * READ_CHUNK {
            self.buf = Vec::with_capacity(4096);
        }
        Ok(Answer {
            status,
            retry_after,
        })
    }
}

/// The head of an HTTP/1.1 answer, as far as a load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// HTTP status.
    pub status: u16,
    /// A `Retry-After` header came with it.
    pub retry_after: bool,
    /// The server will close the connection after this answer
    /// (`Connection: close`, or HTTP/1.0 without keep-alive).
    pub close: bool,
    /// Bytes of the head, up to and including the empty line.
    pub len: usize,
    /// How the body's end is found.
    pub framing: Framing,
}

impl Head {
    /// A 1xx answer, which another answer follows.
    pub fn interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// After this many bytes.
    Length(usize),
    /// At the chunked encoding's last chunk.
    Chunked,
    /// When the server closes the connection.
    UntilClose,
}

/// Parses an answer's head at the start of `buf`: `Ok(None)` while it is
/// incomplete. Only the status and the headers that frame the body or say
/// whether the connection stays open are read.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    };
    let status = resp.code.unwrap_or(0);
    let mut framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else {
        Framing::UntilClose
    };
    let mut close = resp.version == Some(0);
    let mut retry_after = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
            framing = Framing::Length(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"))
            {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    Ok(Some(Head {
        status,
        retry_after,
        close,
        len,
        framing,
    }))
}

/// Where a chunked body ends: `Ok(Some(len))` when `buf` holds it whole,
/// `Ok(None)` when more bytes are needed, `Err` when it is malformed.
pub fn chunked_end(buf: &[u8]) -> io::Result<Option<usize>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunked body");
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&buf[at..]) else {
            return Ok(None);
        };
        let line = &buf[at..at + eol];
        let size_text = line.split(|&b| b == b';').next().unwrap_or(line);
        let size_text = std::str::from_utf8(size_text).map_err(|_| bad())?.trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        at += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// hyper's client connection.
pub struct HyperConn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl HyperConn {
    async fn round_trip(
        &mut self,
        req: &Request,
        target: &Target,
        auth: Option<&[u8]>,
    ) -> io::Result<Answer> {
        let mut uri = String::with_capacity(target.base_path.len() + req.path.len());
        uri.push_str(&target.base_path);
        uri.push_str(std::str::from_utf8(&req.path).map_err(io::Error::other)?);
        let mut b = hyper::Request::builder()
            .method(match req.method {
                Some(Method::Post) => hyper::Method::POST,
                Some(Method::Patch) => hyper::Method::PATCH,
                _ => hyper::Method::GET,
            })
            .uri(uri)
            .header(hyper::header::HOST, target.host.as_str());
        if let Some(a) = auth {
            b = b.header(hyper::header::AUTHORIZATION, a);
        }
        if req.change_reason {
            b = b.header(CHANGE_REASON_NAME, CHANGE_REASON_VALUE);
        }
        if req.method.is_some_and(Method::has_body) {
            b = b.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = b
            .body(Full::new(Bytes::copy_from_slice(&req.body)))
            .map_err(io::Error::other)?;
        self.sender.ready().await.map_err(io::Error::other)?;
        let resp = self
            .sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        let answer = Answer {
            status: resp.status().as_u16(),
            retry_after: resp.headers().contains_key(hyper::header::RETRY_AFTER),
        };
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            frame.map_err(io::Error::other)?;
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n").unwrap(), Some(15));
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n").unwrap(), None);
        assert_eq!(chunked_end(b"5;x=y\r\nhel").unwrap(), None);
        assert_eq!(
            chunked_end(b"a\r\n0123456789\r\n0\r\nT: v\r\n\r\n").unwrap(),
            Some(26)
        );
        assert!(chunked_end(b"zz\r\n").is_err());
    }

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.base_path, "");
        let t = Target::parse("http://127.0.0.1:9/api/").unwrap();
        assert_eq!(t.base_path, "/api");
        assert_eq!(t.tls_name, None);
        let t = Target::parse("https://localhost:8443/x").unwrap();
        assert_eq!(t.tls_name.as_deref(), Some("localhost"));
        assert_eq!(t.host, "localhost:8443");
        assert_eq!(t.base_path, "/x");
        let t = Target::parse("https://127.0.0.1").unwrap();
        assert_eq!(t.addr.port(), 443);
        assert_eq!(t.tls_name.as_deref(), Some("127.0.0.1"));
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://").is_err());
    }

    #[test]
    fn request_bytes() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        let req = Request {
            method: Some(Method::Post),
            path: b"/v1/citizens:verify".to_vec(),
            body: b"{}".to_vec(),
            change_reason: false,
        };
        let mut out = Vec::new();
        write_request(&mut out, &req, &t, Some(b"Bearer k"));
        assert_eq!(
            out,
            b"POST /v1/citizens:verify HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        let patch = Request {
            method: Some(Method::Patch),
            path: b"/v1/citizens/079089012345".to_vec(),
            body: b"{}".to_vec(),
            change_reason: true,
        };
        write_request(&mut out, &patch, &t, None);
        assert_eq!(
            out,
            b"PATCH /v1/citizens/079089012345 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Change-Reason: dancu-loadgen synthetic traffic\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
