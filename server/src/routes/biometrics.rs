//! `POST /v1/biometrics:identify`: an enrolled template's digest to the ID
//! of its holder.

use dancu_engine::{Modality, TemplateDigest};
use hyper::StatusCode;
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::audit::{self, Operation};
use crate::body::{json, HttpResponse};
use crate::keys::ClientId;
use crate::lookup::{RecordKey, SnapshotGuard};
use crate::routes::find_audited;
use crate::state::{Access, State};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyBody {
    modality: Modality,
    template_hash: TemplateDigest,
}

/// `POST /v1/biometrics:identify`.
pub fn identify(state: &State, client: ClientId, body: &[u8]) -> Result<HttpResponse, ApiError> {
    let request: IdentifyBody = serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?;
    let snapshot = SnapshotGuard::acquire(state)?;
    let access = Access {
        client,
        operation: Operation::Identify,
        time_us: audit::now_us(),
    };
    let key = RecordKey::Biometric(request.modality, &request.template_hash);
    let found = find_audited(state, snapshot.lookup(state), key, access)?;
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(&found.view().id().to_digits());
    out.extend_from_slice(b"\"}");
    Ok(json(StatusCode::OK, out))
}
