//! The registrar's routes: `POST /v1/citizens` (a birth or first
//! registration, with a new personal ID), `PATCH /v1/citizens/{id}` (a JSON
//! merge patch of changeable fields), `POST /v1/citizens/{id}:recordDeath`
//! and `PUT /v1/citizens/{id}/biometrics/{modality}`.
//!
//! Each change is decided by the register ([`dancu_register::Register`]),
//! and answered only once it is durable in the change log and visible to
//! every read. Every change, made or refused, is audited with the registrar
//! client as the actor and the citizen as the subject. The registrar says
//! why in an `X-Change-Reason` header; a retry carries the first request's
//! `Idempotency-Key` and gets the first answer again.

use std::sync::Arc;

use dancu_engine::{write_citizen_json, Date, FieldSet, Modality, PersonalId, TemplateDigest};
use dancu_register::{Accepted, ChangeRequest, Provenance, Register};
use hyper::header::HeaderMap;
use hyper::StatusCode;
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::audit::{self, Operation, Outcome};
use crate::body::{json, HttpResponse};
use crate::lookup::{RecordKey, SnapshotGuard};
use crate::router::Route;
use crate::state::{Access, State};

/// The header that says why a change is made (required).
pub const REASON_HEADER: &str = "x-change-reason";
/// The header that makes a retry safe (optional).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Longest accepted reason or idempotency key, in bytes.
const MAX_HEADER_TEXT: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeathBody {
    date_of_death: Date,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolBody {
    template_hash: TemplateDigest,
}

/// The live register, or `503 writes_disabled`.
pub(crate) fn register_of(state: &State) -> Result<&Arc<Register>, ApiError> {
    state.register.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "writes_disabled",
            "this server serves a snapshot without a change log; start it with --changes DIR \
             to take writes",
        )
    })
}

fn header_text(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.trim().is_empty() && t.len() <= MAX_HEADER_TEXT)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_header",
                format!("{name} must be visible ASCII text of 1 to {MAX_HEADER_TEXT} bytes"),
            )
        })?;
    Ok(Some(text.trim().to_owned()))
}

/// What a write route asks for, parsed from the path and body.
fn parse_request(
    route: Route,
    param: &str,
    body: &[u8],
) -> Result<(Option<PersonalId>, ChangeRequest, Operation), ApiError> {
    let subject = |id: &str| PersonalId::parse(id).map_err(ApiError::invalid_id);
    let json_body =
        || serde_json::from_slice::<serde_json::Value>(body).map_err(|e| ApiError::bad_json(&e));
    Ok(match route {
        Route::Register => (
            None,
            ChangeRequest::Register(json_body()?),
            Operation::Register,
        ),
        Route::Update => (
            Some(subject(param)?),
            ChangeRequest::Update(json_body()?),
            Operation::Update,
        ),
        Route::RecordDeath => {
            let id = subject(param)?;
            let death: DeathBody =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?;
            (
                Some(id),
                ChangeRequest::Death(death.date_of_death),
                Operation::Death,
            )
        }
        Route::EnrolBiometric => {
            let mut parts = param.split('/');
            let (id, _, modality) = (parts.next(), parts.next(), parts.next());
            let id = subject(id.unwrap_or_default())?;
            let modality: Modality = modality.unwrap_or_default().parse().map_err(|_| {
                ApiError::bad_request(
                    "invalid_modality",
                    "the modality is `face` or `fingerprint`",
                )
            })?;
            let enrol: EnrolBody =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?;
            (
                Some(id),
                ChangeRequest::Biometric(modality, enrol.template_hash),
                Operation::Enrol,
            )
        }
        _ => unreachable!("only write routes are dispatched here"),
    })
}

fn now_unix() -> i64 {
    (audit::now_us() / 1_000_000) as i64
}

/// One write route: decide, log, wait until durable, audit, answer.
pub async fn write(
    state: &Arc<State>,
    route: Route,
    access: Access<'_>,
    param: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let client = access.client;
    let register = register_of(state)?;
    let reason = header_text(headers, REASON_HEADER)?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_reason",
            "say why the change is made in an X-Change-Reason header (e.g. the certificate number)",
        )
    })?;
    let idempotency_key = header_text(headers, IDEMPOTENCY_HEADER)?;
    let (subject, request, operation) = parse_request(route, param, body)?;
    let access = Access {
        operation,
        time_us: audit::now_us(),
        ..access
    };
    let provenance = Provenance {
        client: state
            .keys
            .load()
            .client(client)
            .map_or("anonymous", |c| c.name.as_str())
            .to_owned(),
        reason,
        idempotency_key,
    };
    let submitted = {
        // Decided against the snapshot served now; the guard is dropped
        // before the wait below.
        let snapshot = SnapshotGuard::acquire(state)?;
        register.submit(
            &snapshot.served().snapshot,
            subject,
            request,
            provenance,
            now_unix(),
        )
    };
    let accepted = match submitted {
        Ok(a) => a,
        Err(e) => {
            let subject = subject.map_or(0, PersonalId::get);
            state.audit_access(&access, Outcome::Refused, subject, 0)?;
            return Err(e.into());
        }
    };
    // Audited as soon as the change is decided and queued, so that the
    // audit log's fsync and the change log's overlap: the answer waits for
    // both (the service awaits the audit ticket). Should the change log fail
    // before its fsync, the answer is 503 and the register takes no more
    // writes; the audit line then records a decision that was not kept.
    state.audit_access(&access, Outcome::Changed, accepted.id.get(), 0)?;
    register.durable(accepted.sequence).await?;
    answer(state, route, accepted)
}

/// The answer of a durable change (also of its retries).
fn answer(state: &State, route: Route, accepted: Accepted) -> Result<HttpResponse, ApiError> {
    let mut out = Vec::with_capacity(1536);
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(&accepted.id.to_digits());
    out.extend_from_slice(b"\",\"sequence\":");
    out.extend_from_slice(accepted.sequence.to_string().as_bytes());
    if route == Route::Update {
        let snapshot = SnapshotGuard::acquire(state)?;
        if let Some(found) = snapshot.lookup(state).find(RecordKey::Id(accepted.id)) {
            out.extend_from_slice(b",\"citizen\":");
            write_citizen_json(&found.view(), FieldSet::ALL, &mut out);
        }
    }
    out.push(b'}');
    let status = if route == Route::Register {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json(status, out);
    if accepted.replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            hyper::header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}
