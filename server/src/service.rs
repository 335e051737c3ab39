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
use std::time::{Duration, Instant};

use bytes::Bytes;
use dancu_engine::FieldSet;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH};
use hyper::{Request, StatusCode};
use sha2::{Digest, Sha256};

use crate::address_share::AddressSlot;
use crate::admission::{self, RuntimeLag};
use crate::api_error::ApiError;
use crate::audit::{self, AnswerGate, Durable, Operation};
use crate::auth::{authorize, required_scopes, KeyCache};
use crate::body::HttpResponse;
use crate::conn::ConnClock;
use crate::keys::{Class, ClientId, Scopes};
use crate::metrics::{Phase, ShedReason};
use crate::projection::ProjectionCache;
use crate::router::{self, Route};
use crate::routes::{
    admin, biometrics, citizens, feed, matching, public, qr, statistics, verify, writes,
};
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
    /// When the request's bytes arrived; times the response's write.
    clock: Arc<ConnClock>,
    /// Holds the connection's answers until their audit entries are
    /// durable (durable audit only).
    gate: Option<Arc<AnswerGate>>,
    /// How long a woken connection waits for its runtime now: part of
    /// every request's queue wait that the clock cannot see.
    lag: Arc<RuntimeLag>,
}

impl Service {
    /// The service of a new connection whose socket `gate` guards (see
    /// [`crate::audit::GatedIo`]; `None` answers after waiting instead).
    pub fn new(
        state: Arc<State>,
        address_slot: AddressSlot,
        peer: Option<IpAddr>,
        clock: Arc<ConnClock>,
        gate: Option<Arc<AnswerGate>>,
        lag: Arc<RuntimeLag>,
    ) -> Service {
        Service {
            state,
            peer,
            keys: KeyCache::default(),
            projections: ProjectionCache::default(),
            address_slot: RefCell::new(Some(address_slot)),
            clock,
            gate,
            lag,
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
            ResponseFuture::Ready(Some(state.finish(
                &self.clock,
                route,
                client,
                start,
                Duration::ZERO,
                resp,
            )))
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
        // Admission: a request that waited past its class's budget is
        // answered 503 at once (its body, if any, read and dropped so that
        // the connection stays usable).
        let class = state.keys.load().class(client);
        // What the connection's clock saw (since the read, or the kernel's
        // age of the bytes) decides; the histogram shows the larger of it
        // and the runtime's current lag (the wait for a turn before the
        // read, which the clock cannot see). Shedding singles on the lag as
        // well was measured (579c49e, overload.sh: more interactive requests
        // shed at both scales, no better tail) and left out.
        let waited = self.clock.queue_wait();
        let arrived = start.checked_sub(waited).unwrap_or(start);
        state.metrics.observe_phase(
            route,
            client,
            Phase::QueueWait,
            waited.max(self.lag.current()),
        );
        if admission::sheddable(route) && waited > state.limits.admission.budget(class) {
            state.metrics.shed(route, client, ShedReason::QueueWait);
            let shed = admission::overloaded(ShedReason::QueueWait).into_response();
            if req.method() == hyper::Method::GET {
                return ready(route, client, shed);
            }
            let (state, clock) = (Arc::clone(&self.state), Arc::clone(&self.clock));
            return ResponseFuture::Boxed(Box::pin(async move {
                let received = Instant::now();
                let _ = read_body(&state, req).await;
                let receive = received.elapsed();
                state.finish(&clock, route, client, start, receive, shed)
            }));
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
                let (state, clock) = (Arc::clone(&self.state), Arc::clone(&self.clock));
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
                    let mut receive = Duration::ZERO;
                    let (resp, durable) = post(
                        &state,
                        route,
                        access,
                        (class, arrived),
                        scopes,
                        req,
                        &mut receive,
                    )
                    .await;
                    let durable = durable.or_else(|| ticket.take());
                    let resp = answer_when_durable(
                        &state,
                        gate.as_deref(),
                        (route, client),
                        respond(route, resp),
                        durable,
                        request_id,
                    )
                    .await;
                    state.finish(&clock, route, client, start, receive, resp)
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
                let (state, clock) = (Arc::clone(&self.state), Arc::clone(&self.clock));
                ResponseFuture::Boxed(Box::pin(async move {
                    let resp = answer_when_durable(
                        &state,
                        None,
                        (route, client),
                        resp,
                        Some(durable),
                        request_id,
                    )
                    .await;
                    state.finish(&clock, route, client, start, Duration::ZERO, resp)
                }))
            }
        }
    }
}

/// `resp` once its audit entry is durable: at once when `gate` holds it
/// back on the socket, else after waiting here (the wait is the
/// [`Phase::AuditWait`] of the request); `503 audit_failing` instead if the
/// entry could not be made durable (the access was not answered).
async fn answer_when_durable(
    state: &State,
    gate: Option<&AnswerGate>,
    (route, client): (Route, ClientId),
    resp: HttpResponse,
    durable: Option<Durable>,
    request_id: u64,
) -> HttpResponse {
    let waited = match (durable, gate, &state.audit) {
        (Some(durable), Some(gate), _) => {
            gate.hold(durable);
            Ok(())
        }
        (Some(durable), None, Some(log)) => {
            let waiting = Instant::now();
            let waited = log.wait(durable).await;
            state
                .metrics
                .observe_phase(route, client, Phase::AuditWait, waiting.elapsed());
            waited
        }
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

/// The routes that read a body: the response, and the durability ticket of
/// its audit entries when they were appended on the batch pool (else
/// `access.ticket` holds it). `receive` is set to the time the body took
/// to read. `arrived` is when the request's bytes arrived: a batch's budget
/// for the pool counts from there (less the body's receive, the client's).
async fn post(
    state: &Arc<State>,
    route: Route,
    access: Access<'_>,
    (class, arrived): (Class, Instant),
    scopes: Scopes,
    req: Request<Incoming>,
    receive: &mut Duration,
) -> (Result<HttpResponse, ApiError>, Option<Durable>) {
    let is_write = matches!(
        route,
        Route::Register | Route::Update | Route::RecordDeath | Route::EnrolBiometric
    );
    if let (true, Some(follower)) = (is_write, &state.follower) {
        return (Err(follower.refuse_write()), None);
    }
    match route {
        Route::Reload => return (admin::reload(state).await, None),
        Route::Compact => return (admin::compact(state).await, None),
        Route::Changes => return (feed::changes(state, access, req.uri().query()).await, None),
        Route::Statistics => return (statistics::statistics(state, req.uri().query()).await, None),
        // Streamed both ways: the body is read as the rows are answered.
        Route::Match => return (matching::match_rows(state, access, req).await, None),
        _ => {}
    }
    // Only a write reads its path and headers after the body (the
    // parameter, `Idempotency-Key`); the copies are not made for the
    // others (they showed in the QR route's profile).
    let (path, headers) = if is_write {
        (req.uri().path().to_owned(), req.headers().clone())
    } else {
        (String::new(), hyper::HeaderMap::new())
    };
    let received = Instant::now();
    let body = read_body(state, req).await;
    *receive = received.elapsed();
    let body = match body {
        Ok(body) => body,
        Err(e) => return (Err(e), None),
    };
    if admission::is_batch(route) {
        let arrived = arrived + *receive;
        return run_batch(state, route, access, (class, arrived), scopes, body).await;
    }
    let with = |operation| Access {
        operation,
        ..access
    };
    let resp = match route {
        _ if is_write => match router::route(&method_of(route), &path) {
            Ok((_, param)) => writes::write(state, route, access, param, &headers, &body).await,
            Err(no_route) => Err(ApiError::from(no_route)),
        },
        Route::Verify => verify::verify(state, with(Operation::Verify), scopes, &body),
        Route::Identify => biometrics::identify(state, with(Operation::Identify), &body),
        Route::QrVerify => qr::qr_verify(state, with(Operation::Verify), &body),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route",
        )),
    };
    (resp, None)
}

/// A batch route's handler, run on the batch pool (never on a runtime
/// thread: see [`crate::admission`]); `503 overloaded` when it is shed.
async fn run_batch(
    state: &Arc<State>,
    route: Route,
    access: Access<'_>,
    (class, arrived): (Class, Instant),
    scopes: Scopes,
    body: Bytes,
) -> (Result<HttpResponse, ApiError>, Option<Durable>) {
    let (client, source, request_id, time_us) = (
        access.client,
        access.source,
        access.request_id,
        access.time_us,
    );
    let pool_state = Arc::clone(state);
    let ran = state
        .batches
        .run(client, class, arrived, move || {
            let state = &*pool_state;
            let ticket = AuditTicket::default();
            let access = |operation| Access {
                client,
                operation,
                time_us,
                source,
                request_id,
                fields: FieldSet::NONE,
                digest_prefix: 0,
                ticket: &ticket,
            };
            let resp = match route {
                Route::BatchGet => {
                    citizens::batch_get(state, access(Operation::BatchGet), scopes, &body)
                }
                _ => verify::batch_verify(state, access(Operation::BatchVerify), scopes, &body),
            };
            (resp, ticket.take())
        })
        .await;
    ran.unwrap_or_else(|reason| {
        state.metrics.shed(route, client, reason);
        (Err(admission::overloaded(reason)), None)
    })
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
