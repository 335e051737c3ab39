//! The response type of every route and its body.
//!
//! A body is either a buffer written for this response (handed to hyper as
//! is: converting it to `Bytes` would allocate a second time) or shared
//! bytes (static text, a precomputed snapshot description).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// The response of every route.
pub type HttpResponse = Response<Full<ResponseBytes>>;

/// The bytes of a response body.
pub enum ResponseBytes {
    /// A buffer written for this response.
    Owned(std::io::Cursor<Vec<u8>>),
    /// Static or reference-counted bytes.
    Shared(Bytes),
}

impl bytes::Buf for ResponseBytes {
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
    let mut r = Response::new(Full::new(ResponseBytes::Owned(std::io::Cursor::new(body))));
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
    let mut r = Response::new(Full::new(ResponseBytes::Shared(bytes)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
