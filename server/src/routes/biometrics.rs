//! `POST /v1/biometrics:identify`: an enrolled template's digest to the ID
//! of its holder.

use dancu_engine::{FieldSet, Modality, TemplateDigest};
use hyper::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::api_error::ApiError;
use crate::audit;
use crate::body::{json, HttpResponse};
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
pub fn identify(state: &State, access: Access<'_>, body: &[u8]) -> Result<HttpResponse, ApiError> {
    let request: IdentifyBody = serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?;
    let snapshot = SnapshotGuard::acquire(state)?;
    // The audit log records what was asked without holding the digest: the
    // first eight bytes of its SHA-256.
    let digest_hash = Sha256::digest(request.template_hash.0);
    let access = Access {
        time_us: audit::now_us(),
        fields: FieldSet::parse_list("id").expect("a field name"),
        digest_prefix: u64::from_be_bytes(digest_hash[..8].try_into().expect("eight bytes")),
        ..access
    };
    let key = RecordKey::Biometric(request.modality, &request.template_hash);
    let found = find_audited(state, snapshot.lookup(state), key, access, |_| {})?;
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(&found.view().id().to_digits());
    out.extend_from_slice(b"\"}");
    Ok(json(StatusCode::OK, out))
}
