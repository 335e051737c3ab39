//! The hyper service of one connection: route, authorize, dispatch to the
//! handlers of [`crate::routes`], count.
//!
//! `GET` routes are answered synchronously inside [`Service::call`] (a ready
//! future: no boxing, no reference-count traffic). When the audit log is
//! durable, the commit of the request's audit entry goes to the
//! connection's [`AnswerGate`], which holds the answer's bytes back until
//! the fsync that covers it (see [`crate::audit::gate`]). Routes with a
//! body always allocate a future.
//! Every authorized response carries `X-Request-Id`, the ID its audit entry
//! has.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use dancu_engine::FieldSet;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH};
use hyper::{Request, StatusCode};
use sha2::{Digest, Sha256};

use crate::address_share::AddressSlot;
use crate::api_error::ApiError;
use crate::audit::{self, AnswerGate, Durable, Operation};
use crate::auth::{authorize, required_scopes, KeyCache};
use crate::body::HttpResponse;
use crate::keys::Scopes;
use crate::projection::ProjectionCache;
use crate::router::{self, Route};
use crate::routes::{admin, biometrics, citizens, feed, public, qr, statistics, verify, writes};
use crate::state::{Access, AuditTicket, State};

/// The hyper service of one connection.
pub struct Service {
    pub(crate) state: Arc<State>,
    /// The connection's peer, for the audit log.
    peer: Option<IpAddr>,
    /// The last key that authenticated on this connection.
    keys: KeyCache,
    /// The last `?fields=` projection on this connection.
    projections: ProjectionCache,
    /// The connection's place in its address's share, given up once a
    /// request authenticates (see [`crate::address_share`]).
    address_slot: RefCell<Option<AddressSlot>>,
    /// Holds the connection's answers until their audit entries are
    /// durable (durable audit only).
    gate: Option<Arc<AnswerGate>>,
}

impl Service {
    /// The service of a new connection whose socket `gate` guards (see
    /// [`crate::audit::GatedIo`]; `None` answers after waiting instead).
    pub fn new(
        state: Arc<State>,
        address_slot: AddressSlot,
        peer: Option<IpAddr>,
        gate: Option<Arc<AnswerGate>>,
    ) -> Service {
        Service {
            state,
            peer,
            keys: KeyCache::default(),
            projections: ProjectionCache::default(),
            address_slot: RefCell::new(Some(address_slot)),
            gate,
        }
    }
}

/// The future of [`Service::call`]: ready for `GET` routes, boxed for routes
/// that read a body.
pub enum ResponseFuture {
    /// Answered already.
    Ready(Option<HttpResponse>),
    /// Reading a body.
    Boxed(Pin<Box<dyn Future<Output = HttpResponse> + Send>>),
}

impl Future for ResponseFuture {
    type Output = Result<HttpResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ResponseFuture::Ready(resp) => {
                Poll::Ready(Ok(resp.take().expect("a ready future is polled once")))
            }
            ResponseFuture::Boxed(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

/// The response of a handler's result; personal data is marked
/// `Cache-Control: no-store` (errors too: a 404 says who is not registered).
fn respond(route: Route, result: Result<HttpResponse, ApiError>) -> HttpResponse {
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    if route.is_personal_data() {
        resp.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    }
    resp
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        let start = Instant::now();
        let state = &*self.state;
        let ready = |route, client, resp| {
            ResponseFuture::Ready(Some(state.finish(route, client, start, resp)))
        };
        let (route, param) = match router::route(req.method(), req.uri().path()) {
            Ok(found) => found,
            Err(no_route) => {
                return ready(
                    Route::Unmatched,
                    0,
                    ApiError::from(no_route).into_response(),
                )
            }
        };
        let Some(required) = required_scopes(route) else {
            let resp = match route {
                Route::Healthz => public::healthz(),
                Route::Readyz => public::readyz(state),
                Route::Metrics => public::metrics(state),
                _ => public::openapi(),
            };
            return ready(route, 0, resp);
        };
        let authorization = req.headers().get(AUTHORIZATION);
        let (client, scopes) = match authorize(
            &state.keys.load(),
            &self.keys,
            authorization,
            required,
            start,
        ) {
            Ok(c) => c,
            Err((client, error)) => return ready(route, client, error.into_response()),
        };
        // Authenticated: the connection leaves its address's share. A
        // `RefCell` borrow cannot be held here (calls on one connection do
        // not overlap), so `try_borrow_mut` only guards against a bug.
        if let Ok(mut slot) = self.address_slot.try_borrow_mut() {
            slot.take();
        }
        let source = source_address(self.peer, &req, &state.trusted_proxies);
        let request_id = next_request_id();
        let ticket = AuditTicket::default();
        let access = |operation, ticket| Access {
            client,
            operation,
            time_us: audit::time_of(start),
            source,
            request_id,
            fields: FieldSet::NONE,
            digest_prefix: 0,
            ticket,
        };
        let query = req.uri().query();
        let resp = match route {
            Route::GetCitizen => {
                citizens::get_citizen(state, access(Operation::Get, &ticket), param, || {
                    self.projections.projection(scopes, query)
                })
            }
            // A legacy ID is looked up with `citizen:read` only: every field.
            Route::Legacy => {
                citizens::get_legacy(state, access(Operation::Legacy, &ticket), param, || {
                    self.projections.projection(Scopes::READ, query)
                })
            }
            Route::SnapshotInfo => admin::snapshot_info(state),
            _ => {
                let state = Arc::clone(&self.state);
                let gate = self.gate.clone();
                return ResponseFuture::Boxed(Box::pin(async move {
                    let ticket = AuditTicket::default();
                    let access = Access {
                        client,
                        operation: Operation::Get,
                        time_us: audit::time_of(start),
                        source,
                        request_id,
                        fields: FieldSet::NONE,
                        digest_prefix: 0,
                        ticket: &ticket,
                    };
                    let resp = post(&state, route, access, scopes, req).await;
                    let resp = answer_when_durable(
                        &state,
                        gate.as_deref(),
                        respond(route, resp),
                        ticket.take(),
                        request_id,
                    )
                    .await;
                    state.finish(route, client, start, resp)
                }));
            }
        };
        let resp = with_request_id(respond(route, resp), request_id);
        match (ticket.take(), &self.gate) {
            // Buffered, off, or nothing audited: answer now, no allocation.
            (None, _) => ready(route, client, resp),
            // The socket holds the answer until the entry is durable.
            (Some(durable), Some(gate)) => {
                gate.hold(durable);
                ready(route, client, resp)
            }
            (Some(durable), None) => {
                let state = Arc::clone(&self.state);
                ResponseFuture::Boxed(Box::pin(async move {
                    let resp =
                        answer_when_durable(&state, None, resp, Some(durable), request_id).await;
                    state.finish(route, client, start, resp)
                }))
            }
        }
    }
}

/// `resp` once its audit entry is durable: at once when `gate` holds it
/// back on the socket, else after waiting here; `503 audit_failing`
/// instead if the entry could not be made durable (the access was not
/// answered).
async fn answer_when_durable(
    state: &State,
    gate: Option<&AnswerGate>,
    resp: HttpResponse,
    durable: Option<Durable>,
    request_id: u64,
) -> HttpResponse {
    let waited = match (durable, gate, &state.audit) {
        (Some(durable), Some(gate), _) => {
            gate.hold(durable);
            Ok(())
        }
        (Some(durable), None, Some(log)) => log.wait(durable).await,
        _ => Ok(()),
    };
    let resp = match waited {
        Ok(()) => resp,
        Err(e) => ApiError::audit_unavailable(e).into_response(),
    };
    with_request_id(resp, request_id)
}

/// The raw answer a [`crate::audit::GatedIo`] sends in place of answers it
/// withholds because their audit entries were lost: the `503` a waiting
/// request gets, closing the connection.
pub fn refusal_bytes(e: &crate::audit::AuditError) -> Vec<u8> {
    let mut body = b"{\"error\":".to_vec();
    ApiError::audit_unavailable(e.clone()).write_object(&mut body);
    body.push(b'}');
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         cache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Echoes the request ID (also in the audit entry) in `X-Request-Id`.
fn with_request_id(mut resp: HttpResponse, request_id: u64) -> HttpResponse {
    let mut text = [0u8; 16];
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, t) in text.iter_mut().enumerate() {
        *t = DIGITS[(request_id >> (60 - 4 * i) & 15) as usize];
    }
    resp.headers_mut().insert(
        X_REQUEST_ID,
        HeaderValue::from_bytes(&text).expect("hex digits are a header value"),
    );
    resp
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request ID unique within this process and unlikely to repeat across
/// restarts: a random-ish start (the clock and the process ID, hashed),
/// then a counter.
fn next_request_id() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let seed = format!("{}:{}", audit::now_us(), std::process::id());
        let hash = Sha256::digest(seed.as_bytes());
        u64::from_be_bytes(hash[..8].try_into().expect("eight bytes"))
    });
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The caller's address for the audit log: the socket's peer, or, when the
/// peer is a trusted proxy, the last address of its `X-Forwarded-For` (the
/// one that proxy appended; earlier ones are the client's own claims).
fn source_address(
    peer: Option<IpAddr>,
    req: &Request<Incoming>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back();
    Some(forwarded.unwrap_or(peer))
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The routes that read a body.
async fn post(
    state: &Arc<State>,
    route: Route,
    access: Access<'_>,
    scopes: Scopes,
    req: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let is_write = matches!(
        route,
        Route::Register | Route::Update | Route::RecordDeath | Route::EnrolBiometric
    );
    if let (true, Some(follower)) = (is_write, &state.follower) {
        return Err(follower.refuse_write());
    }
    match route {
        Route::Reload => return admin::reload(state).await,
        Route::Compact => return admin::compact(state).await,
        Route::Changes => return feed::changes(state, access, req.uri().query()).await,
        Route::Statistics => return statistics::statistics(state, req.uri().query()).await,
        _ => {}
    }
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let body = read_body(state, req).await?;
    let with = |operation| Access {
        operation,
        ..access
    };
    match route {
        Route::Register | Route::Update | Route::RecordDeath | Route::EnrolBiometric => {
            let (_, param) = router::route(&method_of(route), &path).map_err(ApiError::from)?;
            writes::write(state, route, access, param, &headers, &body).await
        }
        Route::BatchGet => citizens::batch_get(state, with(Operation::BatchGet), scopes, &body),
        Route::Verify => verify::verify(state, with(Operation::Verify), scopes, &body),
        Route::BatchVerify => {
            verify::batch_verify(state, with(Operation::BatchVerify), scopes, &body)
        }
        Route::Identify => biometrics::identify(state, with(Operation::Identify), &body),
        Route::QrVerify => qr::qr_verify(state, with(Operation::Verify), &body),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route",
        )),
    }
}

/// The method a route answers.
fn method_of(route: Route) -> hyper::Method {
    router::ROUTES[route.index()].method.clone()
}

/// The request body, within the size and time limits.
async fn read_body(state: &State, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let max = state.limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), max);
    match tokio::time::timeout(state.limits.body_timeout, body.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body was not sent in time",
        )),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request(
            "bad_body",
            format!("could not read the body: {e}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
