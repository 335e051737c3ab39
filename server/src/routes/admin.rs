//! `GET /v1/snapshot` (which snapshot is served) and `POST /v1/admin/reload`
//! (read `keys.toml` again and swap in the newest snapshot now).

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

/// `POST /v1/admin/compact`: folds the change log into the next generation
/// and swaps it in (see [`crate::compaction`]); answers when it is served.
pub async fn compact(state: &Arc<State>) -> Result<HttpResponse, ApiError> {
    crate::routes::writes::register_of(state)?;
    let failed = |message: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "compaction_failed",
            message,
        )
    };
    let state = Arc::clone(state);
    let outcome = tokio::task::spawn_blocking(move || crate::compaction::compact_now(&state))
        .await
        .map_err(|_| failed("the compaction task failed".into()))?
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "compaction_running",
                "a compaction is running; its generation will be served when it ends",
            )
        })?;
    Ok(json(
        StatusCode::OK,
        serde_json::to_vec(&outcome).expect("a compaction outcome serializes"),
    ))
}

/// `POST /v1/admin/reload` (the body, if any, is ignored): reads
/// `keys.toml`, then opens and verifies the newest snapshot, off the request
/// threads.
pub async fn reload(state: &Arc<State>) -> Result<HttpResponse, ApiError> {
    let failed = |message: String| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "reload_failed", message)
    };
    let state = Arc::clone(state);
    let outcome = tokio::task::spawn_blocking(move || state.reload())
        .await
        .map_err(|_| failed("the reload task failed".into()))?
        .map_err(|e| failed(e.to_string()))?;
    Ok(json(
        StatusCode::OK,
        serde_json::to_vec(&outcome).expect("a reload outcome serializes"),
    ))
}
