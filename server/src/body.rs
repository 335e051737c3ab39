//! The response type of every route and its body.
//!
//! A body is either a buffer written for this response (handed to hyper as
//! is: converting it to `Bytes` would allocate a second time) or shared
//! bytes (static text, a precomputed snapshot description), sent whole; or
//! a stream of chunks a task sends while it works (bulk match).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// The response of every route.
pub type HttpResponse = Response<ResponseBody>;

/// A response body: whole (with its length) or streamed.
pub struct ResponseBody(BodyKind);

enum BodyKind {
    /// Sent in one frame, `Content-Length` known.
    Whole(Option<ResponseBytes>),
    /// Chunks from a channel until its sender is dropped.
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    fn whole(bytes: ResponseBytes) -> ResponseBody {
        ResponseBody(BodyKind::Whole(Some(bytes)))
    }

    /// A body of the chunks sent on `chunks`, ended when the sender is
    /// dropped (chunked transfer encoding).
    pub fn stream(chunks: tokio::sync::mpsc::Receiver<Bytes>) -> ResponseBody {
        ResponseBody(BodyKind::Stream(chunks))
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = ResponseBytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<ResponseBytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            BodyKind::Whole(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| b.has_remaining())
                    .map(|b| Ok(Frame::data(b))),
            ),
            BodyKind::Stream(chunks) => chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(ResponseBytes::Shared(b))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            BodyKind::Whole(bytes) => bytes.as_ref().is_none_or(|b| !b.has_remaining()),
            BodyKind::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.remaining() as u64))
            }
            BodyKind::Stream(_) => SizeHint::default(),
        }
    }
}

/// The bytes of a response body.
pub enum ResponseBytes {
    /// A buffer written for this response.
    Owned(std::io::Cursor<Vec<u8>>),
    /// Static or reference-counted bytes.
    Shared(Bytes),
}

impl Buf for ResponseBytes {
    fn remaining(&self) -> usize {
        match self {
            ResponseBytes::Owned(c) => c.remaining(),
            ResponseBytes::Shared(b) => b.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            ResponseBytes::Owned(c) => c.chunk(),
            ResponseBytes::Shared(b) => b.chunk(),
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            ResponseBytes::Owned(c) => c.advance(n),
            ResponseBytes::Shared(b) => b.advance(n),
        }
    }
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response with a body written for it.
pub fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut r = Response::new(ResponseBody::whole(ResponseBytes::Owned(
        std::io::Cursor::new(body),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
    r
}

/// A response with a body written for it, of this content type.
pub fn with_content_type(
    status: StatusCode,
    body: Vec<u8>,
    content_type: &'static str,
) -> HttpResponse {
    let mut r = json(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A 200 response of shared bytes of this content type.
pub fn shared(bytes: Bytes, content_type: &'static str) -> HttpResponse {
    let mut r = Response::new(ResponseBody::whole(ResponseBytes::Shared(bytes)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A 200 response streaming the chunks sent on `chunks`, of this content
/// type.
pub fn streamed(
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    content_type: &'static str,
) -> HttpResponse {
    let mut r = Response::new(ResponseBody::stream(chunks));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
