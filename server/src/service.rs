//! The hyper service of one connection: route, authorize, dispatch to the
//! handlers of [`crate::routes`], count.
//!
//! `GET` routes are answered synchronously inside [`Service::call`] (a ready
//! future: no boxing, no reference-count traffic); only routes with a body
//! allocate a future.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH};
use hyper::{Request, StatusCode};

use crate::address_share::AddressSlot;
use crate::api_error::ApiError;
use crate::audit::{self, Operation};
use crate::auth::{authorize, required_scopes, KeyCache};
use crate::body::HttpResponse;
use crate::keys::{ClientId, Scopes};
use crate::projection::ProjectionCache;
use crate::router::{self, Route};
use crate::routes::{admin, biometrics, citizens, feed, public, verify, writes};
use crate::state::{Access, State};

/// The hyper service of one connection.
pub struct Service {
    pub(crate) state: Arc<State>,
    /// The last key that authenticated on this connection.
    keys: KeyCache,
    /// The last `?fields=` projection on this connection.
    projections: ProjectionCache,
    /// The connection's place in its address's share, given up once a
    /// request authenticates (see [`crate::address_share`]).
    address_slot: RefCell<Option<AddressSlot>>,
}

impl Service {
    /// The service of a new connection.
    pub fn new(state: Arc<State>, address_slot: AddressSlot) -> Service {
        Service {
            state,
            keys: KeyCache::default(),
            projections: ProjectionCache::default(),
            address_slot: RefCell::new(Some(address_slot)),
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
        let get_access = |operation| Access {
            client,
            operation,
            time_us: audit::time_of(start),
        };
        let query = req.uri().query();
        let resp = match route {
            Route::GetCitizen => {
                citizens::get_citizen(state, get_access(Operation::Get), param, || {
                    self.projections.projection(scopes, query)
                })
            }
            // A legacy ID is looked up with `citizen:read` only: every field.
            Route::Legacy => {
                citizens::get_legacy(state, get_access(Operation::Legacy), param, || {
                    self.projections.projection(Scopes::READ, query)
                })
            }
            Route::SnapshotInfo => admin::snapshot_info(state),
            _ => {
                let state = Arc::clone(&self.state);
                return ResponseFuture::Boxed(Box::pin(async move {
                    let resp = respond(route, post(&state, route, client, scopes, req).await);
                    state.finish(route, client, start, resp)
                }));
            }
        };
        ready(route, client, respond(route, resp))
    }
}

/// The routes that read a body.
async fn post(
    state: &Arc<State>,
    route: Route,
    client: ClientId,
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
        Route::Changes => return feed::changes(state, client, req.uri().query()).await,
        _ => {}
    }
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let body = read_body(state, req).await?;
    match route {
        Route::Register | Route::Update | Route::RecordDeath | Route::EnrolBiometric => {
            let (_, param) = router::route(&method_of(route), &path).map_err(ApiError::from)?;
            writes::write(state, route, client, param, &headers, &body).await
        }
        Route::BatchGet => citizens::batch_get(state, client, scopes, &body),
        Route::Verify => verify::verify(state, client, scopes, &body),
        Route::BatchVerify => verify::batch_verify(state, client, scopes, &body),
        Route::Identify => biometrics::identify(state, client, &body),
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
