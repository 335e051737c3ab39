//! `GET /v1/citizens/{id}`, `GET /v1/legacy-ids/{cmnd}` and
//! `POST /v1/citizens:batchGet`: records, projected to what the caller may
//! see.

use dancu_engine::{
    prefetch_citizen_json, write_citizen_json, write_json_str, CitizenView, FieldSet, IdError,
    LegacyId, PersonalId,
};
use hyper::StatusCode;
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::audit;
use crate::body::{json, HttpResponse};
use crate::config::MAX_BATCH;
use crate::keys::Scopes;
use crate::lookup::{RecordKey, SnapshotGuard};
use crate::projection::narrow;
use crate::routes::{find_audited, JsonStr, NOT_FOUND_ITEM};
use crate::state::{lookup_outcome, Access, State};

/// `GET /v1/citizens/{id}`. `fields` is the caller's projection, computed
/// after the ID is known to be well-formed.
pub fn get_citizen(
    state: &State,
    access: Access<'_>,
    param: &str,
    fields: impl FnOnce() -> Result<FieldSet, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let id = PersonalId::parse(param).map_err(ApiError::invalid_id)?;
    read_record(state, access, RecordKey::Id(id), fields()?)
}

/// `GET /v1/legacy-ids/{cmnd}`.
pub fn get_legacy(
    state: &State,
    access: Access<'_>,
    param: &str,
    fields: impl FnOnce() -> Result<FieldSet, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let legacy = LegacyId::parse(param).map_err(ApiError::invalid_legacy_id)?;
    read_record(state, access, RecordKey::Legacy(legacy), fields()?)
}

/// The shared path of the single-record reads: look up, audit, write.
fn read_record(
    state: &State,
    access: Access<'_>,
    key: RecordKey<'_>,
    fields: FieldSet,
) -> Result<HttpResponse, ApiError> {
    let snapshot = SnapshotGuard::acquire(state)?;
    let access = Access { fields, ..access };
    let found = find_audited(state, snapshot.lookup(state), key, access, |view| {
        prefetch_citizen_json(view, fields)
    })?;
    Ok(record_response(&found.view(), fields))
}

fn record_response(view: &CitizenView<'_>, fields: FieldSet) -> HttpResponse {
    let mut out = Vec::with_capacity(if fields == FieldSet::ALL { 1536 } else { 256 });
    write_citizen_json(view, fields, &mut out);
    json(StatusCode::OK, out)
}

/// How many records ahead of the JSON writer a batch prefetches heap
/// strings: a record takes about as long to write as a miss takes to load.
const PREFETCH_AHEAD: usize = 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGetBody<'a> {
    #[serde(borrow)]
    ids: Vec<JsonStr<'a>>,
    #[serde(default, borrow)]
    fields: Option<JsonStr<'a>>,
}

/// `POST /v1/citizens:batchGet`: one result per asked ID, in order.
pub fn batch_get(
    state: &State,
    access: Access<'_>,
    scopes: Scopes,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let client = access.client;
    let parsed: BatchGetBody = serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?;
    if parsed.ids.len() > MAX_BATCH {
        return Err(ApiError::batch_too_large(parsed.ids.len()));
    }
    let fields = narrow(scopes, parsed.fields.as_ref().map(|t| &*t.0))?;
    state.charge_batch_items(client, parsed.ids.len(), std::time::Instant::now())?;
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
    let snapshot = SnapshotGuard::acquire(state)?;
    let mut views = Vec::with_capacity(ids.len());
    snapshot.lookup(state).find_many(&ids, &mut views);
    let access = Access {
        fields,
        time_us: audit::now_us(),
        ..access
    };
    state.audit_request(
        &access,
        ids.len(),
        ids.iter()
            .zip(&views)
            .map(|(id, v)| access.entry(lookup_outcome(v.is_some()), id.get(), 0)),
    )?;
    let per_record = if fields == FieldSet::ALL { 1200 } else { 200 };
    let mut out = Vec::with_capacity(16 + parsed.ids.len() * per_record);
    out.extend_from_slice(b"{\"results\":[");
    // The heap strings of the record `PREFETCH_AHEAD` places ahead are
    // loading while this one is written.
    let prefetch = |k: usize| {
        if let Some(Some(found)) = views.get(k) {
            prefetch_citizen_json(&found.view(), fields);
        }
    };
    (0..PREFETCH_AHEAD).for_each(prefetch);
    let mut found = views.iter().enumerate();
    for (i, (raw, parse_error)) in parsed.ids.iter().zip(parse_errors).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        write_json_str(&mut out, &raw.0);
        match parse_error {
            Some(e) => {
                out.extend_from_slice(b",\"status\":400,\"error\":");
                ApiError::invalid_id(e).write_object(&mut out);
            }
            None => match found.next().and_then(|(k, view)| {
                prefetch(k + PREFETCH_AHEAD);
                view.as_ref()
            }) {
                Some(found) => {
                    out.extend_from_slice(b",\"status\":200,\"citizen\":");
                    write_citizen_json(&found.view(), fields, &mut out);
                }
                None => {
                    out.push(b',');
                    out.extend_from_slice(NOT_FOUND_ITEM);
                }
            },
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(json(StatusCode::OK, out))
}
