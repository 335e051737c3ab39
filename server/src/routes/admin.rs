//! `GET /v1/snapshot` (which snapshot is served) and `POST /v1/admin/reload`
//! (swap in the newest snapshot now).

use std::sync::Arc;

use hyper::StatusCode;

use crate::api_error::ApiError;
use crate::body::{json, shared, HttpResponse};
use crate::lookup::SnapshotGuard;
use crate::state::State;

/// `GET /v1/snapshot`: precomputed when the snapshot was opened.
pub fn snapshot_info(state: &State) -> Result<HttpResponse, ApiError> {
    let snapshot = SnapshotGuard::acquire(state)?;
    Ok(shared(
        snapshot.served().info_json.clone(),
        "application/json",
    ))
}

/// `POST /v1/admin/reload` (the body, if any, is ignored): opens and
/// verifies off the request threads.
pub async fn reload(state: &Arc<State>) -> Result<HttpResponse, ApiError> {
    let failed = |message: String| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "reload_failed", message)
    };
    let state = Arc::clone(state);
    // A reload is also how an operator lifts an audit failure once the disk
    // is fixed.
    let outcome = tokio::task::spawn_blocking(move || {
        state.recover_audit();
        state.snapshots.reload()
    })
    .await
    .map_err(|_| failed("the reload task failed".into()))?
    .map_err(|e| failed(e.to_string()))?;
    Ok(json(
        StatusCode::OK,
        serde_json::to_vec(&outcome).expect("a reload outcome serializes"),
    ))
}
