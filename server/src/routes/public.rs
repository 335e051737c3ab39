//! The routes that need no key: `/healthz`, `/readyz`, `/metrics` and
//! `/v1/openapi.yaml`. None of them shows personal data.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;

use crate::body::{json, shared, HttpResponse};
use crate::state::State;

/// `server/openapi.yaml`, served at `GET /v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `GET /healthz`: the process answers.
pub fn healthz() -> HttpResponse {
    json(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec())
}

/// `GET /readyz`: 200 with the served generation once a verified snapshot
/// is served, else 503 (also while the audit log is failing, with its cause).
pub fn readyz(state: &State) -> HttpResponse {
    if let Some(cause) = state
        .audit
        .as_ref()
        .and_then(crate::audit::AuditLog::failure)
    {
        // Not ready: no data is served until the log works again.
        let mut body = b"{\"status\":\"audit_failing\",\"cause\":".to_vec();
        body.extend_from_slice(&serde_json::to_vec(&cause).expect("a string serializes"));
        body.push(b'}');
        return json(StatusCode::SERVICE_UNAVAILABLE, body);
    }
    if state.is_ready() {
        let generation = state.snapshots.load().as_ref().map_or(0, |s| s.generation);
        json(
            StatusCode::OK,
            format!(
                "{{\"status\":\"ready\",\"generation\":{generation}{}}}",
                follower_fields(state)
            )
            .into_bytes(),
        )
    } else {
        let status = if state.shutting_down.load(Ordering::Acquire) {
            "shutting_down"
        } else {
            "not_ready"
        };
        let mut r = json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{{\"status\":\"{status}\"{}}}", follower_fields(state)).into_bytes(),
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }
}

/// A follower's lag and primary in `/readyz` (nothing on a primary).
fn follower_fields(state: &State) -> String {
    state
        .follower
        .as_ref()
        .map(|f| f.readyz_fields())
        .unwrap_or_default()
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn metrics(state: &State) -> HttpResponse {
    let mut text = state.metrics.render(&state.gauges());
    if let Some(f) = &state.follower {
        f.render_metrics(&mut text);
    }
    shared(Bytes::from(text), "text/plain; version=0.0.4")
}

/// `GET /v1/openapi.yaml`.
pub fn openapi() -> HttpResponse {
    shared(
        Bytes::from_static(OPENAPI_YAML.as_bytes()),
        "application/yaml",
    )
}
