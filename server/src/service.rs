//! The request handler: routing, authentication, scopes, rate limits, and
//! the handlers of every route.
//!
//! `GET` routes are answered synchronously inside [`Service::call`] (a ready
//! future: no boxing, no reference-count traffic); only routes with a body
//! allocate a future.

// Handlers return `Result<_, Response>` so that an early error is the
// response itself; boxing it would add an allocation to every error path.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use dancu_engine::{
    prefetch_citizen_json, write_citizen_json, write_json_str, write_verification_json,
    CitizenView, Claims, FieldSet, IdError, LegacyId, Modality, PersonalId, TemplateDigest,
};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::audit::{self, AuditLog, Entry, Operation, Outcome};
use crate::config::{Limits, MAX_BATCH};
use crate::keys::{retry_after_secs, ClientId, KeyStore, Scopes};
use crate::metrics::{Gauges, Metrics};
use crate::router::{self, Miss, Route};
use crate::snapshot::Holder;

/// The response type of every route.
pub type Resp = Response<Full<Chunk>>;

/// A response body: an owned buffer (handed to hyper without converting it
/// to `Bytes`, which would allocate a second time), or shared bytes.
pub enum Chunk {
    /// A buffer written for this response.
    Owned(std::io::Cursor<Vec<u8>>),
    /// Static or reference-counted bytes.
    Shared(Bytes),
}

impl bytes::Buf for Chunk {
    fn remaining(&self) -> usize {
        match self {
            Chunk::Owned(c) => c.remaining(),
            Chunk::Shared(b) => b.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Chunk::Owned(c) => c.chunk(),
            Chunk::Shared(b) => b.chunk(),
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Owned(c) => c.advance(n),
            Chunk::Shared(b) => b.advance(n),
        }
    }
}

fn shared(bytes: Bytes) -> Full<Chunk> {
    Full::new(Chunk::Shared(bytes))
}

/// `server/openapi.yaml`, served at `GET /v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What every connection shares.
pub struct State {
    pub(crate) keys: KeyStore,
    pub(crate) metrics: Metrics,
    pub(crate) audit: Option<AuditLog>,
    pub(crate) snapshots: Holder,
    pub(crate) limits: Limits,
    pub(crate) ready: AtomicBool,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
}

impl State {
    pub(crate) fn gauges(&self) -> Gauges {
        let served = self.snapshots.load();
        let (reloads, reload_failures) = self.snapshots.reload_counts();
        let audit = self.audit.as_ref().map(AuditLog::stats).unwrap_or_default();
        Gauges {
            snapshot_generation: served.as_ref().map_or(0, |s| s.generation),
            snapshot_records: served.as_ref().map_or(0, |s| s.records),
            ready: self.is_ready(),
            reloads,
            reload_failures,
            connections: (self.limits.max_connections - self.connections.available_permits())
                as u64,
            audit_backlog: audit.backlog,
            audit_written: audit.written,
            audit_refused: audit.refused,
            audit_enabled: self.audit.is_some(),
        }
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    fn audit(&self, entries: &[Entry]) -> Result<(), Resp> {
        self.audit_request(entries.len(), entries.iter().copied())
    }

    /// Audits the `n` accesses of one request (see [`AuditLog::append_request`]).
    fn audit_request(
        &self,
        n: usize,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), Resp> {
        match &self.audit {
            Some(log) => log.append_request(n, entries).map_err(|audit::Backlogged| {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_backlog",
                    "the audit log is behind; the request was not served (retry shortly)",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }),
            None => Ok(()),
        }
    }

    fn finish(&self, route: Route, client: ClientId, start: Instant, resp: Resp) -> Resp {
        self.metrics
            .observe(route, client, resp.status().as_u16(), start.elapsed());
        resp
    }
}

/// The hyper service of one connection.
#[derive(Clone)]
pub struct Service {
    pub(crate) state: Arc<State>,
    /// The last `Authorization` value that authenticated on this connection
    /// and its client: a keep-alive connection sends the same key with every
    /// request, and comparing it (in constant time) is cheaper than hashing.
    auth_cache: RefCell<(Vec<u8>, ClientId)>,
    /// The last query string that gave a projection on this connection, with
    /// the scopes it was computed for: a gateway asks for the same `?fields=`
    /// on every request, and parsing the list is most of the cost of a small
    /// projection.
    projection_cache: RefCell<(String, Scopes, Option<FieldSet>)>,
}

impl Service {
    /// The service of a new connection.
    pub fn new(state: Arc<State>) -> Service {
        Service {
            state,
            auth_cache: RefCell::new((Vec::new(), 0)),
            projection_cache: RefCell::new((String::new(), Scopes::default(), None)),
        }
    }

    /// [`projection`], remembering the last query that gave one.
    fn projection(&self, scopes: Scopes, query: Option<&str>) -> Result<FieldSet, Resp> {
        let Some(query) = query else {
            return projection(scopes, None);
        };
        let mut cache = self.projection_cache.borrow_mut();
        let (cached, cached_scopes, fields) = &mut *cache;
        if let Some(fields) = *fields {
            if *cached_scopes == scopes && cached == query {
                return Ok(fields);
            }
        }
        let found = projection(scopes, Some(query))?;
        cached.clear();
        cached.push_str(query);
        *cached_scopes = scopes;
        *fields = Some(found);
        Ok(found)
    }

    fn authenticate(&self, authorization: &[u8]) -> Option<ClientId> {
        let mut cache = self.auth_cache.borrow_mut();
        let (cached, client) = &mut *cache;
        if *client != 0
            && cached.len() == authorization.len()
            && bool::from(cached.ct_eq(authorization))
        {
            return Some(*client);
        }
        let found = self.state.keys.authenticate(authorization)?;
        cached.clear();
        cached.extend_from_slice(authorization);
        *client = found;
        Some(found)
    }
}

/// The future of [`Service::call`]: ready for `GET` routes, boxed for routes
/// that read a body.
pub enum ResponseFuture {
    /// Answered already.
    Ready(Option<Resp>),
    /// Reading a body.
    Boxed(Pin<Box<dyn Future<Output = Resp> + Send>>),
}

impl Future for ResponseFuture {
    type Output = Result<Resp, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ResponseFuture::Ready(resp) => {
                Poll::Ready(Ok(resp.take().expect("a ready future is polled once")))
            }
            ResponseFuture::Boxed(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Resp;
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
            Err(miss) => return ready(Route::Unmatched, 0, miss_response(miss)),
        };
        match route {
            Route::Healthz => {
                return ready(
                    route,
                    0,
                    json(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec()),
                )
            }
            Route::Readyz => return ready(route, 0, readyz(state)),
            Route::Metrics => {
                let mut r =
                    Response::new(shared(Bytes::from(state.metrics.render(&state.gauges()))));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return ready(route, 0, r);
            }
            Route::OpenApi => {
                let mut r = Response::new(shared(Bytes::from_static(OPENAPI_YAML.as_bytes())));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
                return ready(route, 0, r);
            }
            _ => {}
        }
        let (client, scopes) = match authorize(self, &req, route, start) {
            Ok(c) => c,
            Err((client, resp)) => return ready(route, client, resp),
        };
        match route {
            Route::GetCitizen => {
                let fields = |query: Option<&str>| self.projection(scopes, query);
                let resp = get_citizen(state, client, fields, param, req.uri().query(), start);
                ready(route, client, resp)
            }
            Route::Legacy => ready(
                route,
                client,
                get_legacy(
                    state,
                    client,
                    |query: Option<&str>| self.projection(Scopes::READ, query),
                    param,
                    req.uri().query(),
                    start,
                ),
            ),
            Route::SnapshotInfo => {
                let resp = match state.snapshots.load().as_ref() {
                    Some(served) if state.ready.load(Ordering::Acquire) => {
                        let mut r = Response::new(shared(served.info_json.clone()));
                        r.headers_mut().insert(CONTENT_TYPE, JSON);
                        r
                    }
                    _ => not_ready(),
                };
                ready(route, client, resp)
            }
            _ => {
                let state = Arc::clone(&self.state);
                ResponseFuture::Boxed(Box::pin(async move {
                    let resp = post(&state, route, client, scopes, req).await;
                    state.finish(route, client, start, resp)
                }))
            }
        }
    }
}

fn required_scopes(route: Route) -> Scopes {
    match route {
        Route::GetCitizen | Route::BatchGet => Scopes::READ.union(Scopes::READ_BASIC),
        Route::Legacy => Scopes::READ,
        Route::Verify | Route::BatchVerify => Scopes::VERIFY,
        Route::Identify => Scopes::BIOMETRIC,
        Route::Reload => Scopes::ADMIN,
        _ => Scopes::ALL,
    }
}

/// Key, scope, rate limit.
fn authorize(
    service: &Service,
    req: &Request<Incoming>,
    route: Route,
    now: Instant,
) -> Result<(ClientId, Scopes), (ClientId, Resp)> {
    let state = &*service.state;
    let client_id = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| service.authenticate(v.as_bytes()));
    let Some((client_id, client)) = client_id.and_then(|id| Some((id, state.keys.client(id)?)))
    else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send a valid client key as `Authorization: Bearer <key>`",
        );
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Err((0, r));
    };
    let required = required_scopes(route);
    if !client.scopes.any(required) {
        let names: Vec<&str> = Scopes::NAMES
            .iter()
            .filter(|(_, s)| required.any(*s))
            .map(|(n, _)| *n)
            .collect();
        let message = format!("this route needs scope {}", names.join(" or "));
        return Err((
            client_id,
            error(StatusCode::FORBIDDEN, "forbidden", &message),
        ));
    }
    if let Some(limiter) = &client.limiter {
        if let Err(wait) = limiter.check(now) {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "over this client's request rate; retry after the Retry-After seconds",
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
            return Err((client_id, r));
        }
    }
    Ok((client_id, client.scopes))
}

fn readyz(state: &State) -> Resp {
    if state.is_ready() {
        let generation = state.snapshots.load().as_ref().map_or(0, |s| s.generation);
        json(
            StatusCode::OK,
            format!("{{\"status\":\"ready\",\"generation\":{generation}}}").into_bytes(),
        )
    } else {
        let status = if state.shutting_down.load(Ordering::Acquire) {
            "shutting_down"
        } else {
            "not_ready"
        };
        let mut r = json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{{\"status\":\"{status}\"}}").into_bytes(),
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Chunk::Owned(std::io::Cursor::new(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

fn write_error(out: &mut Vec<u8>, code: &str, reason: Option<&str>, message: &str) {
    out.extend_from_slice(b"{\"code\":");
    write_json_str(out, code);
    if let Some(reason) = reason {
        out.extend_from_slice(b",\"reason\":");
        write_json_str(out, reason);
    }
    out.extend_from_slice(b",\"message\":");
    write_json_str(out, message);
    out.push(b'}');
}

/// `{"error":{"code":..,"message":..}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Resp {
    error_with_reason(status, code, None, message)
}

fn error_with_reason(status: StatusCode, code: &str, reason: Option<&str>, message: &str) -> Resp {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"error\":");
    write_error(&mut out, code, reason, message);
    out.push(b'}');
    json(status, out)
}

fn invalid_id(e: IdError) -> Resp {
    error_with_reason(
        StatusCode::BAD_REQUEST,
        "invalid_id",
        Some(e.code()),
        &e.to_string(),
    )
}

fn not_found(what: &str) -> Resp {
    error(StatusCode::NOT_FOUND, "not_found", what)
}

fn not_ready() -> Resp {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "the snapshot is not ready yet",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn miss_response(miss: Miss) -> Resp {
    match miss {
        Miss::NotFound => error(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route (see /v1/openapi.yaml)",
        ),
        Miss::MethodNotAllowed(allow) => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                if allow == "GET" {
                    "this route answers GET only"
                } else {
                    "this route answers POST only"
                },
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            r
        }
    }
}

/// The fields a caller may see, narrowed by `?fields=`.
fn projection(scopes: Scopes, query: Option<&str>) -> Result<FieldSet, Resp> {
    let list = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("fields=")));
    narrow(scopes, list.map(percent_decode).as_deref())
}

/// The fields of a comma-separated `list`, if visible with `scopes`; every
/// visible field without a list.
fn narrow(scopes: Scopes, list: Option<&str>) -> Result<FieldSet, Resp> {
    let allowed = if scopes.any(Scopes::READ) {
        FieldSet::ALL
    } else {
        FieldSet::BASIC
    };
    let Some(list) = list else { return Ok(allowed) };
    let asked = FieldSet::parse_list(list)
        .map_err(|message| error(StatusCode::BAD_REQUEST, "invalid_fields", &message))?;
    if !allowed.contains(asked) {
        let hidden: Vec<&str> = asked
            .names()
            .filter(|n| !allowed.names().any(|a| a == *n))
            .collect();
        let message = format!(
            "fields {} need scope citizen:read (this key has citizen:read:basic)",
            hidden.join(", ")
        );
        return Err(error(StatusCode::FORBIDDEN, "forbidden", &message));
    }
    Ok(asked)
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
        match b[i] {
            b'%' => match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The snapshot being served, held for one request (a swap in the meantime
/// does not unmap it); only made when there is one.
struct ServedGuard(arc_swap::Guard<Option<Arc<crate::snapshot::Served>>>);

impl std::ops::Deref for ServedGuard {
    type Target = crate::snapshot::Served;

    fn deref(&self) -> &Self::Target {
        self.0
            .as_deref()
            .expect("a ServedGuard is only made around a snapshot")
    }
}

/// The served snapshot, or 503 while there is none or the server is not
/// ready.
fn served_or_not_ready(state: &State) -> Result<ServedGuard, Resp> {
    let guard = state.snapshots.load();
    if guard.is_none() || !state.ready.load(Ordering::Acquire) {
        return Err(not_ready());
    }
    Ok(ServedGuard(guard))
}

fn entry(
    client: ClientId,
    operation: Operation,
    outcome: Outcome,
    subject: u64,
    time_us: u64,
) -> Entry {
    Entry {
        time_us,
        subject,
        legacy_id: 0,
        client,
        operation,
        outcome,
    }
}

fn record_response(view: &CitizenView<'_>, fields: FieldSet) -> Resp {
    let mut out = Vec::with_capacity(if fields == FieldSet::ALL { 1536 } else { 256 });
    write_citizen_json(view, fields, &mut out);
    json(StatusCode::OK, out)
}

fn get_citizen(
    state: &State,
    client: ClientId,
    projection: impl FnOnce(Option<&str>) -> Result<FieldSet, Resp>,
    param: &str,
    query: Option<&str>,
    start: Instant,
) -> Resp {
    let id = match PersonalId::parse(param) {
        Ok(id) => id,
        Err(e) => return invalid_id(e),
    };
    let fields = match projection(query) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let served = match served_or_not_ready(state) {
        Ok(served) => served,
        Err(r) => return r,
    };
    let view = served.snapshot.get(id);
    let outcome = if view.is_some() {
        Outcome::Found
    } else {
        Outcome::NotFound
    };
    if let Err(r) = state.audit(&[entry(
        client,
        Operation::Get,
        outcome,
        id.get(),
        audit::time_of(start),
    )]) {
        return r;
    }
    match view {
        Some(view) => record_response(&view, fields),
        None => not_found("no citizen has this ID"),
    }
}

fn get_legacy(
    state: &State,
    client: ClientId,
    projection: impl FnOnce(Option<&str>) -> Result<FieldSet, Resp>,
    param: &str,
    query: Option<&str>,
    start: Instant,
) -> Resp {
    let legacy = match LegacyId::parse(param) {
        Ok(id) => id,
        Err(e) => {
            return error_with_reason(
                StatusCode::BAD_REQUEST,
                "invalid_legacy_id",
                Some(e.code()),
                &e.to_string(),
            )
        }
    };
    let fields = match projection(query) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let served = match served_or_not_ready(state) {
        Ok(served) => served,
        Err(r) => return r,
    };
    let view = served.snapshot.get_legacy(legacy);
    let audit_entry = Entry {
        legacy_id: legacy.get(),
        ..entry(
            client,
            Operation::Legacy,
            if view.is_some() {
                Outcome::Found
            } else {
                Outcome::NotFound
            },
            view.map_or(0, |v| v.id().get()),
            audit::time_of(start),
        )
    };
    if let Err(r) = state.audit(&[audit_entry]) {
        return r;
    }
    match view {
        Some(view) => record_response(&view, fields),
        None => not_found("no citizen holds this legacy ID"),
    }
}

async fn read_body(state: &State, req: Request<Incoming>) -> Result<Bytes, Resp> {
    let max = state.limits.max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("request bodies are limited to {max} bytes"),
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
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body was not sent in time",
        )),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            "bad_body",
            &format!("could not read the body: {e}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn bad_json(e: &serde_json::Error) -> Resp {
    let code = if e.is_data() {
        "invalid_request"
    } else {
        "invalid_json"
    };
    error(StatusCode::BAD_REQUEST, code, &e.to_string())
}

fn batch_too_large(n: usize) -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "batch_too_large",
        &format!("a batch holds at most {MAX_BATCH} items, this one has {n}"),
    )
}

async fn post(
    state: &Arc<State>,
    route: Route,
    client: ClientId,
    scopes: Scopes,
    req: Request<Incoming>,
) -> Resp {
    if route == Route::Reload {
        // The body, if any, is ignored.
        let state2 = Arc::clone(state);
        return match tokio::task::spawn_blocking(move || state2.snapshots.reload()).await {
            Ok(Ok(outcome)) => json(
                StatusCode::OK,
                serde_json::to_vec(&outcome).expect("outcome serializes"),
            ),
            Ok(Err(e)) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reload_failed",
                &e.to_string(),
            ),
            Err(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reload_failed",
                "the reload task failed",
            ),
        };
    }
    let body = match read_body(state, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match route {
        Route::BatchGet => batch_get(state, client, scopes, &body),
        Route::Verify => verify(state, client, &body),
        Route::BatchVerify => batch_verify(state, client, &body),
        Route::Identify => identify(state, client, &body),
        _ => error(StatusCode::NOT_FOUND, "route_not_found", "no such route"),
    }
}

/// A JSON string, borrowed from the body unless it has escapes (which no
/// well-formed ID has): `Cow<str>` inside a `Vec` always deserializes owned,
/// one allocation per ID.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a str>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

/// How many records ahead of the JSON writer a batch prefetches heap
/// strings: a record takes about as long to write as a miss takes to load.
const PREFETCH_AHEAD: usize = 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGetBody<'a> {
    #[serde(borrow)]
    ids: Vec<Text<'a>>,
    #[serde(default, borrow)]
    fields: Option<Text<'a>>,
}

fn batch_get(state: &State, client: ClientId, scopes: Scopes, body: &[u8]) -> Resp {
    let parsed: BatchGetBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    if parsed.ids.len() > MAX_BATCH {
        return batch_too_large(parsed.ids.len());
    }
    let fields = match narrow(scopes, parsed.fields.as_ref().map(|t| &*t.0)) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut ids = Vec::with_capacity(parsed.ids.len());
    let mut parse_errors: Vec<Option<IdError>> = Vec::with_capacity(parsed.ids.len());
    for raw in &parsed.ids {
        match PersonalId::parse(&raw.0) {
            Ok(id) => {
                ids.push(id);
                parse_errors.push(None);
            }
            Err(e) => parse_errors.push(Some(e)),
        }
    }
    let served = match served_or_not_ready(state) {
        Ok(served) => served,
        Err(r) => return r,
    };
    let mut views = Vec::with_capacity(ids.len());
    served.snapshot.get_many(&ids, &mut views);
    if state.audit.is_some() {
        let now = audit::now_us();
        let entries = ids.iter().zip(&views).map(|(id, v)| {
            let outcome = if v.is_some() {
                Outcome::Found
            } else {
                Outcome::NotFound
            };
            entry(client, Operation::BatchGet, outcome, id.get(), now)
        });
        if let Err(r) = state.audit_request(ids.len(), entries) {
            return r;
        }
    }
    let per_record = if fields == FieldSet::ALL { 1200 } else { 200 };
    let mut out = Vec::with_capacity(16 + parsed.ids.len() * per_record);
    out.extend_from_slice(b"{\"results\":[");
    // The heap strings of the record `PREFETCH_AHEAD` places ahead are
    // loading while this one is written.
    let prefetch = |k: usize| {
        if let Some(Some(view)) = views.get(k) {
            prefetch_citizen_json(view, fields);
        }
    };
    (0..PREFETCH_AHEAD).for_each(prefetch);
    let mut found = views.iter().enumerate();
    for (i, (raw, parse_error)) in parsed.ids.iter().zip(&parse_errors).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        write_json_str(&mut out, &raw.0);
        match parse_error {
            Some(e) => {
                out.extend_from_slice(b",\"status\":400,\"error\":");
                write_error(&mut out, "invalid_id", Some(e.code()), &e.to_string());
            }
            None => match found.next().and_then(|(k, view)| {
                prefetch(k + PREFETCH_AHEAD);
                *view
            }) {
                Some(view) => {
                    out.extend_from_slice(b",\"status\":200,\"citizen\":");
                    write_citizen_json(&view, fields, &mut out);
                }
                None => {
                    out.extend_from_slice(
                        b",\"status\":404,\"error\":{\"code\":\"not_found\",\"message\":\"no citizen has this ID\"}",
                    );
                }
            },
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    json(StatusCode::OK, out)
}

/// Why a verification request is not acceptable: the IdError when the ID is
/// malformed, else serde's message (which says where).
fn explain_claims_error(
    raw: &[u8],
    e: &serde_json::Error,
) -> (&'static str, Option<&'static str>, String) {
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: Option<Cow<'a, str>>,
    }
    if let Ok(IdOnly { id: Some(id) }) = serde_json::from_slice::<IdOnly>(raw) {
        if let Err(id_error) = PersonalId::parse(&id) {
            return ("invalid_id", Some(id_error.code()), id_error.to_string());
        }
    }
    let code = if e.is_data() {
        "invalid_request"
    } else {
        "invalid_json"
    };
    (code, None, e.to_string())
}

const EMPTY_CLAIMS: &str = "claim at least one field besides the ID";

fn verify(state: &State, client: ClientId, body: &[u8]) -> Resp {
    let claims: Claims = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => {
            let (code, reason, message) = explain_claims_error(body, &e);
            return error_with_reason(StatusCode::BAD_REQUEST, code, reason, &message);
        }
    };
    if claims.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty_claims", EMPTY_CLAIMS);
    }
    let served = match served_or_not_ready(state) {
        Ok(served) => served,
        Err(r) => return r,
    };
    let verification = served.snapshot.verify_claims(&claims);
    let outcome = match &verification {
        None => Outcome::NotFound,
        Some(v) if v.matched() => Outcome::Match,
        Some(_) => Outcome::Mismatch,
    };
    if let Err(r) = state.audit(&[entry(
        client,
        Operation::Verify,
        outcome,
        claims.id.get(),
        audit::now_us(),
    )]) {
        return r;
    }
    match verification {
        Some(v) => {
            let mut out = Vec::with_capacity(128);
            write_verification_json(&v, &mut out);
            json(StatusCode::OK, out)
        }
        None => not_found("no citizen has this ID"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchVerifyBody {
    requests: Vec<Claims>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchVerifyRaw<'a> {
    #[serde(borrow)]
    requests: Vec<&'a serde_json::value::RawValue>,
}

/// One item of a batch verification.
enum Item {
    /// Claims to check.
    Claims(Claims),
    /// Only an ID: nothing to check (400 for this item).
    Empty(PersonalId),
    /// Not acceptable (400 for this item).
    Invalid(&'static str, Option<&'static str>, String),
}

impl Item {
    fn of(claims: Claims) -> Item {
        if claims.is_empty() {
            Item::Empty(claims.id)
        } else {
            Item::Claims(claims)
        }
    }
}

fn batch_verify(state: &State, client: ClientId, body: &[u8]) -> Resp {
    // Fast path: the whole batch parses (first with the scanner of
    // `fastpath`, else with serde). Otherwise parse item by item so that
    // each bad item gets its own 400 and the good ones are still answered.
    let whole = match crate::fastpath::batch_verify(body) {
        Some(requests) => Ok(BatchVerifyBody { requests }),
        None => serde_json::from_slice::<BatchVerifyBody>(body),
    };
    let items: Vec<Item> = match whole {
        Ok(b) => {
            if b.requests.len() > MAX_BATCH {
                return batch_too_large(b.requests.len());
            }
            b.requests.into_iter().map(Item::of).collect()
        }
        Err(whole) => {
            let raw: BatchVerifyRaw = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(_) => return bad_json(&whole),
            };
            if raw.requests.len() > MAX_BATCH {
                return batch_too_large(raw.requests.len());
            }
            raw.requests
                .iter()
                .map(|r| match serde_json::from_str::<Claims>(r.get()) {
                    Ok(c) => Item::of(c),
                    Err(e) => {
                        let (code, reason, message) = explain_claims_error(r.get().as_bytes(), &e);
                        Item::Invalid(code, reason, message)
                    }
                })
                .collect()
        }
    };
    let served = match served_or_not_ready(state) {
        Ok(served) => served,
        Err(r) => return r,
    };
    // Look every ID up first with the prefetching batch lookup, then check.
    let ids: Vec<PersonalId> = items
        .iter()
        .filter_map(|item| match item {
            Item::Claims(c) => Some(c.id),
            _ => None,
        })
        .collect();
    let mut views = Vec::with_capacity(ids.len());
    served.snapshot.get_many(&ids, &mut views);
    let mut found = views.iter();
    let results: Vec<Option<dancu_engine::Verification>> = items
        .iter()
        .map(|item| match item {
            Item::Claims(c) => found
                .next()
                .copied()
                .flatten()
                .map(|view| c.check(Some(&view))),
            _ => None,
        })
        .collect();
    if state.audit.is_some() {
        let now = audit::now_us();
        let entries = items
            .iter()
            .zip(&results)
            .filter_map(|(item, v)| match item {
                Item::Claims(c) => {
                    let outcome = match v {
                        None => Outcome::NotFound,
                        Some(v) if v.matched() => Outcome::Match,
                        Some(_) => Outcome::Mismatch,
                    };
                    Some(entry(
                        client,
                        Operation::BatchVerify,
                        outcome,
                        c.id.get(),
                        now,
                    ))
                }
                _ => None,
            });
        if let Err(r) = state.audit_request(ids.len(), entries) {
            return r;
        }
    }
    let mut out = Vec::with_capacity(16 + items.len() * 96);
    out.extend_from_slice(b"{\"results\":[");
    for (i, (item, result)) in items.iter().zip(&results).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match item {
            Item::Invalid(code, reason, message) => {
                out.extend_from_slice(b"{\"status\":400,\"error\":");
                write_error(&mut out, code, *reason, message);
                out.push(b'}');
            }
            Item::Empty(id) => {
                out.extend_from_slice(b"{\"id\":\"");
                out.extend_from_slice(&id.to_digits());
                out.extend_from_slice(b"\",\"status\":400,\"error\":");
                write_error(&mut out, "empty_claims", None, EMPTY_CLAIMS);
                out.push(b'}');
            }
            Item::Claims(c) => {
                out.extend_from_slice(b"{\"id\":\"");
                out.extend_from_slice(&c.id.to_digits());
                match result {
                    Some(v) => {
                        out.extend_from_slice(b"\",\"status\":200");
                        // `{"match":..}` becomes `,"match":..}`: one object.
                        let at = out.len();
                        write_verification_json(v, &mut out);
                        out[at] = b',';
                    }
                    None => out.extend_from_slice(
                        b"\",\"status\":404,\"error\":{\"code\":\"not_found\",\"message\":\"no citizen has this ID\"}}",
                    ),
                }
            }
        }
    }
    out.extend_from_slice(b"]}");
    json(StatusCode::OK, out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyBody {
    modality: Modality,
    template_hash: TemplateDigest,
}

fn identify(state: &State, client: ClientId, body: &[u8]) -> Resp {
    let request: IdentifyBody = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let served = match served_or_not_ready(state) {
        Ok(served) => served,
        Err(r) => return r,
    };
    let found = served
        .snapshot
        .identify(request.modality, &request.template_hash)
        .map(|v| v.id());
    let outcome = if found.is_some() {
        Outcome::Found
    } else {
        Outcome::NotFound
    };
    let subject = found.map_or(0, PersonalId::get);
    if let Err(r) = state.audit(&[entry(
        client,
        Operation::Identify,
        outcome,
        subject,
        audit::now_us(),
    )]) {
        return r;
    }
    match found {
        Some(id) => {
            let mut out = Vec::with_capacity(24);
            out.extend_from_slice(b"{\"id\":\"");
            out.extend_from_slice(&id.to_digits());
            out.extend_from_slice(b"\"}");
            json(StatusCode::OK, out)
        }
        None => not_found("no enrolled template has this hash"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_field_lists() {
        assert_eq!(percent_decode("id,full_name"), "id,full_name");
        assert_eq!(percent_decode("id%2Cfull_name"), "id,full_name");
        assert_eq!(percent_decode("id%2"), "id%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn projection_by_scope() {
        assert_eq!(projection(Scopes::READ, None).ok(), Some(FieldSet::ALL));
        assert_eq!(
            projection(Scopes::READ_BASIC, None).ok(),
            Some(FieldSet::BASIC)
        );
        assert_eq!(
            projection(Scopes::READ_BASIC, Some("fields=id")).ok(),
            FieldSet::parse_list("id").ok()
        );
        assert_eq!(
            projection(Scopes::READ_BASIC, Some("fields=hometown"))
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            projection(Scopes::READ, Some("x=1&fields=nope"))
                .unwrap_err()
                .status(),
            400
        );
    }
}
