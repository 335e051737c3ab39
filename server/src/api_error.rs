//! [`ApiError`]: every error answer of the API, rendered in one place as
//! `{"error":{"code":..,"reason":..,"message":..}}` (`reason` only when
//! there is one).
//!
//! Handlers return `Result<HttpResponse, ApiError>` and use `?`; the
//! service turns the error into its response. Batch routes write the same
//! object for one failed item with [`ApiError::write_object`].

use std::borrow::Cow;

use dancu_engine::{write_json_str, IdError};
use hyper::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::StatusCode;

use crate::audit::AuditError;
use crate::body::{json, HttpResponse};
use crate::config::MAX_BATCH;
use crate::router::NoRoute;

/// An error answer: status, machine-readable code (and reason), a message
/// for people, and at most one header that goes with it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    reason: Option<&'static str>,
    message: Cow<'static, str>,
    header: ErrorHeader,
}

/// The header that goes with an error (kept small: an [`ApiError`] travels
/// in every handler's `Result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorHeader {
    /// None.
    None,
    /// `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// `Allow: <method>`.
    Allow(&'static str),
    /// `WWW-Authenticate: Bearer`.
    BearerChallenge,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            code,
            reason: None,
            message: message.into(),
            header: ErrorHeader::None,
        }
    }

    /// Adds a finer machine-readable reason (e.g. `invalid_length`).
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, header: ErrorHeader) -> Self {
        self.header = header;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// `400` with this code.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `403 forbidden`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// `404 not_found`.
    pub fn not_found(message: &'static str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `401`: no valid key.
    pub fn unauthenticated() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send a valid client key as `Authorization: Bearer <key>`",
        )
        .with_header(ErrorHeader::BearerChallenge)
    }

    /// `503`: no snapshot is ready.
    pub fn not_ready() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the snapshot is not ready yet",
        )
        .with_header(ErrorHeader::RetryAfter(1))
    }

    /// `503`: the audit queue is full, so the access was not served.
    pub fn audit_backlog() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_backlog",
            "the audit log is behind; the request was not served (retry shortly)",
        )
        .with_header(ErrorHeader::RetryAfter(1))
    }

    /// `503` for an access that cannot be audited, and so is not served:
    /// `audit_backlog` (retry shortly) or `audit_failing` (an I/O error on
    /// the log; nothing is served until an operator fixes it and reloads).
    pub fn audit_unavailable(e: AuditError) -> Self {
        match e {
            AuditError::Backlogged => ApiError::audit_backlog(),
            AuditError::Failing(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_failing",
                e.to_string(),
            ),
            AuditError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
        }
    }

    /// `400 invalid_id` with the parser's reason.
    pub fn invalid_id(e: IdError) -> Self {
        ApiError::bad_request("invalid_id", e.to_string()).with_reason(e.code())
    }

    /// `400 invalid_legacy_id` with the parser's reason.
    pub fn invalid_legacy_id(e: IdError) -> Self {
        ApiError::bad_request("invalid_legacy_id", e.to_string()).with_reason(e.code())
    }

    /// `400`: a body that is not JSON (`invalid_json`) or not the expected
    /// shape (`invalid_request`); serde's message says where.
    pub fn bad_json(e: &serde_json::Error) -> Self {
        let code = if e.is_data() {
            "invalid_request"
        } else {
            "invalid_json"
        };
        ApiError::bad_request(code, e.to_string())
    }

    /// `400 batch_too_large`.
    pub fn batch_too_large(n: usize) -> Self {
        ApiError::bad_request(
            "batch_too_large",
            format!("a batch holds at most {MAX_BATCH} items, this one has {n}"),
        )
    }

    /// Writes `{"code":..,"reason":..,"message":..}` (the inner object).
    pub fn write_object(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"code\":");
        write_json_str(out, self.code);
        if let Some(reason) = self.reason {
            out.extend_from_slice(b",\"reason\":");
            write_json_str(out, reason);
        }
        out.extend_from_slice(b",\"message\":");
        write_json_str(out, &self.message);
        out.push(b'}');
    }

    /// The response: `{"error":{..}}` with the status and header.
    pub fn into_response(self) -> HttpResponse {
        let mut out = Vec::with_capacity(64 + self.message.len());
        out.extend_from_slice(b"{\"error\":");
        self.write_object(&mut out);
        out.push(b'}');
        let mut r = json(self.status, out);
        let headers = r.headers_mut();
        match self.header {
            ErrorHeader::None => {}
            ErrorHeader::RetryAfter(secs) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            ErrorHeader::Allow(method) => {
                headers.insert(ALLOW, HeaderValue::from_static(method));
            }
            ErrorHeader::BearerChallenge => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
        }
        r
    }
}

impl From<dancu_register::Error> for ApiError {
    /// A refused change is the client's (4xx, naming the field where there
    /// is one); a failing log is `503` and says so.
    fn from(e: dancu_register::Error) -> Self {
        use dancu_register::{Error, Rejection};
        let message = e.to_string();
        match e {
            Error::Rejected(Rejection::Invalid { .. }) => {
                ApiError::bad_request("invalid_record", message)
            }
            Error::Rejected(Rejection::Inconsistent { .. }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "inconsistent_record",
                message,
            ),
            Error::Rejected(Rejection::UnknownCitizen(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            Error::Rejected(Rejection::UnknownReference { .. }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_reference",
                message,
            ),
            Error::Rejected(Rejection::IdempotencyMismatch(_)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            Error::Rejected(Rejection::Conflict(_) | Rejection::SerialsExhausted(_)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            Error::LogFailed(_) | Error::Io { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "change_log_failed",
                format!("the change log is failing, no change is taken: {message}"),
            ),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl From<NoRoute> for ApiError {
    fn from(no_route: NoRoute) -> Self {
        match no_route {
            NoRoute::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                "no such route (see /v1/openapi.yaml)",
            ),
            NoRoute::MethodNotAllowed(allow) => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this route answers {allow} only"),
            )
            .with_header(ErrorHeader::Allow(allow)),
        }
    }
}
