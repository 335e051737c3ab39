//! Authentication and authorization of one request: the key, the scope the
//! route needs, the client's rate limit.
//!
//! Each connection remembers the last `Authorization` value that
//! authenticated ([`KeyCache`]): a keep-alive connection sends the same key
//! with every request, and comparing it in constant time is cheaper than
//! hashing it.

use std::cell::RefCell;
use std::time::Instant;

use hyper::header::HeaderValue;
use hyper::StatusCode;
use subtle::ConstantTimeEq;

use crate::api_error::{ApiError, ErrorHeader};
use crate::keys::{retry_after_secs, ClientId, KeyStore, Scopes};
use crate::router::Route;

/// The last `Authorization` value that authenticated on a connection, and
/// its client.
/// Trusted only for the [`KeyStore::generation`] it was checked against, so
/// a reload that revokes a key takes effect on open connections too.
#[derive(Clone, Default)]
pub struct KeyCache(RefCell<(Vec<u8>, ClientId, u64)>);

impl KeyCache {
    /// The client of this `Authorization` value, if it is a valid key.
    pub fn authenticate(&self, keys: &KeyStore, authorization: &[u8]) -> Option<ClientId> {
        let mut cache = self.0.borrow_mut();
        let (cached, client, generation) = &mut *cache;
        if *client != 0
            && *generation == keys.generation()
            && cached.len() == authorization.len()
            && bool::from(cached.ct_eq(authorization))
        {
            return Some(*client);
        }
        *client = 0;
        let found = keys.authenticate(authorization)?;
        cached.clear();
        cached.extend_from_slice(authorization);
        *client = found;
        *generation = keys.generation();
        Some(found)
    }
}

/// The scopes of which a caller needs one for `route`; `None` for routes
/// that need no key.
pub fn required_scopes(route: Route) -> Option<Scopes> {
    match route {
        Route::GetCitizen | Route::BatchGet => Some(Scopes::READ.union(Scopes::READ_BASIC)),
        Route::Legacy => Some(Scopes::READ),
        // Which fields the claims may name is checked by the handler; a QR
        // card holds only card fields.
        Route::Verify | Route::BatchVerify | Route::QrVerify => {
            Some(Scopes::VERIFY.union(Scopes::VERIFY_EXTENDED))
        }
        Route::Identify => Some(Scopes::BIOMETRIC),
        Route::Reload | Route::Compact => Some(Scopes::ADMIN),
        Route::Register | Route::Update | Route::RecordDeath | Route::EnrolBiometric => {
            Some(Scopes::REGISTRAR)
        }
        Route::Changes => Some(Scopes::CHANGES),
        Route::Statistics => Some(Scopes::STATISTICS),
        // Only the card's fields may be claimed (the handler refuses other
        // columns), and candidates are searched only by name and date.
        Route::Match => Some(Scopes::MATCH),
        // Which snapshot is served is no personal data: any valid key.
        Route::SnapshotInfo => Some(Scopes::ALL),
        Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi | Route::Unmatched => None,
    }
}

/// Checks the key, the scope `route` needs, and the client's rate limit.
/// The error carries the client, for metrics, when the key was valid.
pub fn authorize(
    keys: &KeyStore,
    cache: &KeyCache,
    authorization: Option<&HeaderValue>,
    required: Scopes,
    now: Instant,
) -> Result<(ClientId, Scopes), (ClientId, ApiError)> {
    let client_id = authorization.and_then(|v| cache.authenticate(keys, v.as_bytes()));
    let Some((client_id, client)) = client_id.and_then(|id| Some((id, keys.client(id)?))) else {
        return Err((0, ApiError::unauthenticated()));
    };
    if !client.scopes.any(required) {
        let names: Vec<&str> = Scopes::NAMES
            .iter()
            .filter(|(_, s)| required.any(*s))
            .map(|(n, _)| *n)
            .collect();
        let message = format!("this route needs scope {}", names.join(" or "));
        return Err((client_id, ApiError::forbidden(message)));
    }
    if let Some(limiter) = &client.limiter {
        if let Err(wait) = limiter.check(now) {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "over this client's request rate; retry after the Retry-After seconds",
            )
            .with_header(ErrorHeader::RetryAfter(retry_after_secs(wait)));
            return Err((client_id, error));
        }
    }
    Ok((client_id, client.scopes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_data_route_names_its_scope_and_public_routes_need_none() {
        for route in Route::ALL {
            let public = matches!(
                route,
                Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi | Route::Unmatched
            );
            assert_eq!(required_scopes(route).is_none(), public, "{route:?}");
            if route.is_personal_data() {
                assert_ne!(required_scopes(route), Some(Scopes::ALL), "{route:?}");
            }
        }
    }
}
