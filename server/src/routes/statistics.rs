//! `GET /v1/statistics?by=...`: counts of living people, never a person.
//! See [`crate::statistics`] for what is counted and when the table is made.

use std::sync::Arc;

use dancu_engine::Date;
use hyper::StatusCode;

use crate::api_error::ApiError;
use crate::body::{json, HttpResponse};
use crate::lookup::SnapshotGuard;
use crate::snapshot::ServedSnapshot;
use crate::state::State;
use crate::statistics::{cell_of, report, Census, Dimension};

/// Today (UTC), the day ages are counted on.
fn today() -> Result<Date, ApiError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_days_since_epoch((secs / 86_400) as i64).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "clock",
            format!("the server's clock gives no date: {e}"),
        )
    })
}

/// The `by` dimensions of the query (`?by=a,b`; commas may be `%2C`).
fn parse_query(query: Option<&str>) -> Result<Vec<Dimension>, ApiError> {
    let mut by = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "by" {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown query parameter {name:?}; only by= is accepted"),
            ));
        }
        let value = value.replace("%2C", ",").replace("%2c", ",");
        by =
            Dimension::parse_list(&value).map_err(|m| ApiError::bad_request("invalid_query", m))?;
    }
    Ok(by)
}

/// The census of `served` for `today`: the cached one, else one pass over
/// the snapshot on a blocking thread (concurrent requests wait for it
/// rather than each making their own).
async fn census(served: Arc<ServedSnapshot>, today: Date) -> Result<Arc<Census>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut slot = served.census.lock();
        match &*slot {
            Some(c) if c.today == today => Arc::clone(c),
            _ => {
                let c = Arc::new(Census::count(&served.snapshot, served.generation, today));
                *slot = Some(Arc::clone(&c));
                c
            }
        }
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("counting failed: {e}"),
        )
    })
}

/// `GET /v1/statistics`.
pub async fn statistics(state: &State, query: Option<&str>) -> Result<HttpResponse, ApiError> {
    let by = parse_query(query)?;
    let today = today()?;
    let served = {
        // Checks readiness; the Arc outlives the guard for the blocking pass.
        SnapshotGuard::acquire(state)?;
        (*state.snapshots.load())
            .clone()
            .ok_or_else(ApiError::not_ready)?
    };
    let census = census(Arc::clone(&served), today).await?;
    // The register's changes since the snapshot: each changed person
    // leaves their snapshot cell and joins their current one.
    let entries = state
        .register
        .as_deref()
        .map(|r| r.overlay().entries())
        .unwrap_or_default();
    let counts = census.with_changes(entries.iter().map(|e| {
        let before = served.snapshot.get(e.id()).and_then(|v| cell_of(&v, today));
        (before, cell_of(&e.record.view(), today))
    }));
    let body = report(&counts, &by, today, census.generation);
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(json(StatusCode::OK, bytes))
}
