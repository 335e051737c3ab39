//! `POST /v1/citizens:verify` and `POST /v1/citizens:batchVerify`: yes/no
//! per claimed field, never the record.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Instant;

use dancu_engine::{
    write_verification_json, Claim, Claims, FieldSet, PersonalId, Verification, CLAIM_FIELDS,
};
use hyper::StatusCode;
use serde::Deserialize;

use crate::api_error::{ApiError, ErrorHeader};
use crate::audit;
use crate::body::{json, HttpResponse};
use crate::config::MAX_BATCH;
use crate::keys::{retry_after_secs, ClientId, Scopes};
use crate::lookup::{RecordKey, SnapshotGuard};
use crate::routes::NOT_FOUND_ITEM;
use crate::state::{verification_outcome, Access, State};
use crate::throttle::MismatchThrottle;

const EMPTY_CLAIMS: &str = "claim at least one field besides the ID";

fn empty_claims() -> ApiError {
    ApiError::bad_request("empty_claims", EMPTY_CLAIMS)
}

/// `403` when `claims` name a field beyond the card and the key lacks
/// `citizen:verify:extended` (the policy is [`dancu_engine::CARD_CLAIMS`]).
fn check_claim_policy(scopes: Scopes, claims: &Claims) -> Result<(), ApiError> {
    if scopes.any(Scopes::VERIFY_EXTENDED) {
        return Ok(());
    }
    match claims.first_beyond_card() {
        Some(field) => Err(ApiError::forbidden(format!(
            "claiming {field} needs scope citizen:verify:extended (citizen:verify may claim \
             only the card's fields: id, full_name, date_of_birth, sex, permanent_residence, \
             legacy_id)"
        ))),
        None => Ok(()),
    }
}

pub(crate) fn too_many_mismatches(wait: std::time::Duration) -> ApiError {
    ApiError::new(
        hyper::StatusCode::TOO_MANY_REQUESTS,
        "too_many_mismatches",
        "too many mismatched verifications of this subject by this client; retry after the \
         Retry-After seconds",
    )
    .with_header(ErrorHeader::RetryAfter(retry_after_secs(wait)))
}

/// Counts the mismatches among checked verifications (after they were
/// audited and are about to be answered).
pub(crate) fn record_mismatches<'a>(
    throttle: &MismatchThrottle,
    client: ClientId,
    checked: impl Iterator<Item = (PersonalId, &'a Verification)>,
    now: Instant,
) {
    for (id, v) in checked {
        if !v.matched() {
            throttle.record_mismatch(client, id.get(), now);
        }
    }
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
pub fn verify(
    state: &State,
    access: Access<'_>,
    scopes: Scopes,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    // The usual body is read by the scanner of `fastpath`; serde reads the
    // rest and words the errors.
    let claims = match crate::fastpath::verify(body) {
        Some(claims) => claims,
        None => {
            serde_json::from_slice::<Claims>(body).map_err(|e| explain_claims_error(body, &e))?
        }
    };
    if claims.is_empty() {
        return Err(empty_claims());
    }
    check_claim_policy(scopes, &claims)?;
    verify_one(state, access, &claims, 0)
}

/// The shared path of `citizens:verify` and `qr:verify`: one subject's
/// claims checked against the register (through the overlay), throttled
/// per client and subject, audited, answered. `legacy_id` is audited beside
/// the subject (a card's legacy ID, or 0).
pub(crate) fn verify_one(
    state: &State,
    access: Access<'_>,
    claims: &Claims,
    legacy_id: u32,
) -> Result<HttpResponse, ApiError> {
    let client = access.client;
    let now = Instant::now();
    state
        .mismatches
        .check(client, claims.id.get(), now)
        .map_err(too_many_mismatches)?;
    let snapshot = SnapshotGuard::acquire(state)?;
    let verification = snapshot
        .lookup(state)
        .find(RecordKey::Id(claims.id))
        .map(|found| {
            let view = found.view();
            // Both strings a card claims (name, address) load at once
            // instead of one miss after the other.
            claims.prefetch(&view);
            claims.check(Some(&view))
        });
    let access = Access {
        time_us: audit::now_us(),
        fields: claimed_fields(claims),
        ..access
    };
    state.audit_access(
        &access,
        verification_outcome(verification.as_ref()),
        claims.id.get(),
        legacy_id,
    )?;
    let v = verification.ok_or_else(|| ApiError::not_found("no citizen has this ID"))?;
    record_mismatches(
        &state.mismatches,
        client,
        std::iter::once((claims.id, &v)),
        now,
    );
    // `alive` is told only when every claim held (`Verification::alive`).
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
    /// Refused: too many mismatches on this subject (429 for this item).
    Throttled(PersonalId, std::time::Duration),
    /// A subject an earlier item names (400 for this item).
    Duplicate(PersonalId),
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

/// The ID of an item, if it has a well-formed one.
fn item_id(item: &VerifyItem) -> Option<PersonalId> {
    match item {
        VerifyItem::Claims(c) => Some(c.id),
        VerifyItem::OnlyId(id) | VerifyItem::Throttled(id, _) | VerifyItem::Duplicate(id) => {
            Some(*id)
        }
        VerifyItem::Invalid(_) => None,
    }
}

/// A batch asking several questions about one person would read the
/// record out in one request, so only the first item naming a subject is
/// checked; every later one is answered `400 duplicate_subject` (per item,
/// like every other fault of one item: no JSON Schema can say "distinct
/// IDs", and `openapi.yaml` must describe what is accepted).
fn refuse_repeated_subjects(items: &mut [VerifyItem]) {
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        if let Some(id) = item_id(item) {
            if !seen.insert(id.get()) {
                *item = VerifyItem::Duplicate(id);
            }
        }
    }
}

fn duplicate_subject(id: PersonalId) -> ApiError {
    ApiError::bad_request(
        "duplicate_subject",
        format!("a batch names each subject at most once; {id} appears earlier in it"),
    )
}

/// `POST /v1/citizens:batchVerify`: one result per request, in order.
pub fn batch_verify(
    state: &State,
    access: Access<'_>,
    scopes: Scopes,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let client = access.client;
    let mut items = parse_batch(body)?;
    for item in &items {
        if let VerifyItem::Claims(c) = item {
            check_claim_policy(scopes, c)?;
        }
    }
    refuse_repeated_subjects(&mut items);
    let now = Instant::now();
    state.charge_batch_items(client, items.len(), now)?;
    for item in &mut items {
        if let VerifyItem::Claims(c) = item {
            if let Err(wait) = state.mismatches.check(client, c.id.get(), now) {
                *item = VerifyItem::Throttled(c.id, wait);
            }
        }
    }
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
    snapshot.lookup(state).find_many(&ids, &mut views);
    let mut found = views.iter();
    let results: Vec<Option<Verification>> = items
        .iter()
        .map(|item| match item {
            VerifyItem::Claims(c) => found
                .next()
                .and_then(Option::as_ref)
                .map(|f| c.check(Some(&f.view()))),
            _ => None,
        })
        .collect();
    let access = Access {
        time_us: audit::now_us(),
        fields: items.iter().fold(FieldSet::NONE, |acc, item| match item {
            VerifyItem::Claims(c) => acc.union(claimed_fields(c)),
            _ => acc,
        }),
        ..access
    };
    state.audit_request(
        &access,
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
    record_mismatches(
        &state.mismatches,
        client,
        items
            .iter()
            .zip(&results)
            .filter_map(|(item, v)| match (item, v) {
                (VerifyItem::Claims(c), Some(v)) => Some((c.id, v)),
                _ => None,
            }),
        now,
    );
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
            VerifyItem::OnlyId(id) | VerifyItem::Throttled(id, _) | VerifyItem::Duplicate(id) => {
                let (status, error) = match item {
                    VerifyItem::Throttled(_, wait) => (&b"429"[..], too_many_mismatches(*wait)),
                    VerifyItem::Duplicate(_) => (&b"400"[..], duplicate_subject(*id)),
                    _ => (&b"400"[..], empty_claims()),
                };
                out.extend_from_slice(b"{\"id\":\"");
                out.extend_from_slice(&id.to_digits());
                out.extend_from_slice(b"\",\"status\":");
                out.extend_from_slice(status);
                out.extend_from_slice(b",\"error\":");
                error.write_object(&mut out);
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

/// The record fields a verification claims, for the audit log.
pub(crate) fn claimed_fields(claims: &Claims) -> FieldSet {
    // Both sets are parsed once: parsing "id" was a string scan per request.
    static ID_AND_BY_CLAIM: OnceLock<(FieldSet, Vec<FieldSet>)> = OnceLock::new();
    let (id, by_claim) = ID_AND_BY_CLAIM.get_or_init(|| {
        let id = FieldSet::parse_list("id").unwrap_or(FieldSet::NONE);
        let by_claim = CLAIM_FIELDS
            .iter()
            .map(|&claim| {
                let field = match claim {
                    "father_name" => "father",
                    "mother_name" => "mother",
                    "spouse_name" => "spouse",
                    "alive" => "date_of_death",
                    other => other,
                };
                FieldSet::parse_list(field).unwrap_or(FieldSet::NONE)
            })
            .collect();
        (id, by_claim)
    });
    Claim::ALL
        .iter()
        .zip(by_claim)
        .filter(|(&claim, _)| claims.makes(claim))
        .fold(*id, |acc, (_, &f)| acc.union(f))
}
