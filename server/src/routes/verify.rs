//! `POST /v1/citizens:verify` and `POST /v1/citizens:batchVerify`: yes/no
//! per claimed field, never the record.

use std::borrow::Cow;

use dancu_engine::{write_verification_json, Claims, PersonalId, Verification};
use hyper::StatusCode;
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::audit::{self, Operation};
use crate::body::{json, HttpResponse};
use crate::config::MAX_BATCH;
use crate::keys::ClientId;
use crate::lookup::{RecordKey, SnapshotGuard};
use crate::routes::NOT_FOUND_ITEM;
use crate::state::{verification_outcome, Access, State};

const EMPTY_CLAIMS: &str = "claim at least one field besides the ID";

fn empty_claims() -> ApiError {
    ApiError::bad_request("empty_claims", EMPTY_CLAIMS)
}

/// Why a verification request is not acceptable: the ID's parse error when
/// the ID is malformed, else serde's message (which says where).
fn explain_claims_error(raw: &[u8], e: &serde_json::Error) -> ApiError {
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: Option<Cow<'a, str>>,
    }
    if let Ok(IdOnly { id: Some(id) }) = serde_json::from_slice::<IdOnly>(raw) {
        if let Err(id_error) = PersonalId::parse(&id) {
            return ApiError::invalid_id(id_error);
        }
    }
    ApiError::bad_json(e)
}

/// `POST /v1/citizens:verify`.
pub fn verify(state: &State, client: ClientId, body: &[u8]) -> Result<HttpResponse, ApiError> {
    let claims: Claims =
        serde_json::from_slice(body).map_err(|e| explain_claims_error(body, &e))?;
    if claims.is_empty() {
        return Err(empty_claims());
    }
    let snapshot = SnapshotGuard::acquire(state)?;
    let verification = snapshot
        .lookup()
        .find(RecordKey::Id(claims.id))
        .map(|view| claims.check(Some(&view)));
    let access = Access {
        client,
        operation: Operation::Verify,
        time_us: audit::now_us(),
    };
    state.audit_access(access.entry(
        verification_outcome(verification.as_ref()),
        claims.id.get(),
        0,
    ))?;
    let v = verification.ok_or_else(|| ApiError::not_found("no citizen has this ID"))?;
    let mut out = Vec::with_capacity(128);
    write_verification_json(&v, &mut out);
    Ok(json(StatusCode::OK, out))
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

/// One request of a batch verification.
enum VerifyItem {
    /// Claims to check.
    Claims(Claims),
    /// Only an ID: nothing to check (400 for this item).
    OnlyId(PersonalId),
    /// Not acceptable (400 for this item).
    Invalid(ApiError),
}

impl VerifyItem {
    fn of(claims: Claims) -> VerifyItem {
        if claims.is_empty() {
            VerifyItem::OnlyId(claims.id)
        } else {
            VerifyItem::Claims(claims)
        }
    }
}

/// The items of a batch: the whole batch parsed at once (first with the
/// scanner of `fastpath`, else with serde) or, when that fails, item by
/// item so that each bad item gets its own 400 and the good ones are still
/// answered.
fn parse_batch(body: &[u8]) -> Result<Vec<VerifyItem>, ApiError> {
    let whole = match crate::fastpath::batch_verify(body) {
        Some(requests) => Ok(BatchVerifyBody { requests }),
        None => serde_json::from_slice::<BatchVerifyBody>(body),
    };
    match whole {
        Ok(b) => {
            if b.requests.len() > MAX_BATCH {
                return Err(ApiError::batch_too_large(b.requests.len()));
            }
            Ok(b.requests.into_iter().map(VerifyItem::of).collect())
        }
        Err(whole) => {
            let raw: BatchVerifyRaw =
                serde_json::from_slice(body).map_err(|_| ApiError::bad_json(&whole))?;
            if raw.requests.len() > MAX_BATCH {
                return Err(ApiError::batch_too_large(raw.requests.len()));
            }
            Ok(raw
                .requests
                .iter()
                .map(|r| match serde_json::from_str::<Claims>(r.get()) {
                    Ok(c) => VerifyItem::of(c),
                    Err(e) => VerifyItem::Invalid(explain_claims_error(r.get().as_bytes(), &e)),
                })
                .collect())
        }
    }
}

/// `POST /v1/citizens:batchVerify`: one result per request, in order.
pub fn batch_verify(
    state: &State,
    client: ClientId,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let items = parse_batch(body)?;
    let snapshot = SnapshotGuard::acquire(state)?;
    // Look every ID up first with the prefetching batch lookup, then check.
    let ids: Vec<PersonalId> = items
        .iter()
        .filter_map(|item| match item {
            VerifyItem::Claims(c) => Some(c.id),
            _ => None,
        })
        .collect();
    let mut views = Vec::with_capacity(ids.len());
    snapshot.lookup().find_many(&ids, &mut views);
    let mut found = views.iter();
    let results: Vec<Option<Verification>> = items
        .iter()
        .map(|item| match item {
            VerifyItem::Claims(c) => found
                .next()
                .copied()
                .flatten()
                .map(|view| c.check(Some(&view))),
            _ => None,
        })
        .collect();
    let access = Access {
        client,
        operation: Operation::BatchVerify,
        time_us: audit::now_us(),
    };
    state.audit_request(
        ids.len(),
        items
            .iter()
            .zip(&results)
            .filter_map(|(item, v)| match item {
                VerifyItem::Claims(c) => {
                    Some(access.entry(verification_outcome(v.as_ref()), c.id.get(), 0))
                }
                _ => None,
            }),
    )?;
    let mut out = Vec::with_capacity(16 + items.len() * 96);
    out.extend_from_slice(b"{\"results\":[");
    for (i, (item, result)) in items.iter().zip(&results).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match item {
            VerifyItem::Invalid(error) => {
                out.extend_from_slice(b"{\"status\":400,\"error\":");
                error.write_object(&mut out);
                out.push(b'}');
            }
            VerifyItem::OnlyId(id) => {
                out.extend_from_slice(b"{\"id\":\"");
                out.extend_from_slice(&id.to_digits());
                out.extend_from_slice(b"\",\"status\":400,\"error\":");
                empty_claims().write_object(&mut out);
                out.push(b'}');
            }
            VerifyItem::Claims(c) => {
                out.extend_from_slice(b"{\"id\":\"");
                out.extend_from_slice(&c.id.to_digits());
                out.extend_from_slice(b"\",");
                match result {
                    Some(v) => {
                        out.extend_from_slice(b"\"status\":200");
                        // `{"match":..}` becomes `,"match":..}`: one object.
                        let at = out.len();
                        write_verification_json(v, &mut out);
                        out[at] = b',';
                    }
                    None => {
                        out.extend_from_slice(NOT_FOUND_ITEM);
                        out.push(b'}');
                    }
                }
            }
        }
    }
    out.extend_from_slice(b"]}");
    Ok(json(StatusCode::OK, out))
}
