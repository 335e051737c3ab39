//! `GET /v1/changes?after=SEQ&limit=N&wait=S`: the change feed, as NDJSON.
//!
//! One line per durable change after sequence `after`, oldest first, at most
//! `limit` (default 1000, at most 10,000): its sequence number, kind,
//! subject, time, registrar client and reason, and the record as the change
//! left it (the API's JSON form). With `wait=S` (up to 60 s) a caller that
//! is up to date is answered as soon as a change arrives, or with no lines
//! after S seconds: replicas and downstream systems long-poll it. A caller
//! behind a compaction (the changes it asks for were folded into a snapshot
//! and trimmed from the log) gets `410 Gone` naming the first sequence the
//! log still holds. Each change read is audited as an access to its subject.
//!
//! `format=replica` is for followers (`--follow`): each line is the
//! sequence, kind, subject and `image`, the base64 of the logged change
//! exactly as the primary's log holds it (after-image, inherited template
//! bits, provenance), which the follower writes to its own log. Every
//! answer carries `X-Dancu-Applied`, the primary's last durable sequence,
//! from which a follower computes its lag.

use std::sync::Arc;
use std::time::Duration;

use dancu_engine::{write_citizen_json, write_json_str, FieldSet, OwnedRecord};
use dancu_register::FeedItem;
use hyper::StatusCode;

use crate::api_error::ApiError;
use crate::audit::{self, Operation, Outcome};
use crate::body::{with_content_type, HttpResponse};
use crate::routes::writes::register_of;
use crate::state::{Access, State};

/// Most changes in one answer.
pub const MAX_LIMIT: usize = 10_000;
/// The response header with the primary's last durable sequence.
pub const APPLIED_HEADER: &str = "x-dancu-applied";
/// Longest long-poll, seconds.
pub const MAX_WAIT_S: u64 = 60;

/// The parsed query.
#[derive(Debug, PartialEq, Eq)]
struct FeedQuery {
    after: u64,
    limit: usize,
    wait: Duration,
    replica: bool,
}

fn parse_query(query: Option<&str>) -> Result<FeedQuery, ApiError> {
    let mut q = FeedQuery {
        after: 0,
        limit: 1000,
        wait: Duration::ZERO,
        replica: false,
    };
    let bad = |name: &str, what: &str| {
        ApiError::bad_request("invalid_query", format!("`{name}` must be {what}"))
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "after" => {
                q.after = value
                    .parse()
                    .map_err(|_| bad("after", "a sequence number"))?
            }
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad("limit", "1 to 10000"))?
            }
            "wait" => {
                let s: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| *s <= MAX_WAIT_S)
                    .ok_or_else(|| bad("wait", "0 to 60 seconds"))?;
                q.wait = Duration::from_secs(s);
            }
            "format" => {
                q.replica = match value {
                    "replica" => true,
                    "json" => false,
                    _ => return Err(bad("format", "json or replica")),
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown parameter `{other}` (after, limit, wait, format)"),
                ))
            }
        }
    }
    Ok(q)
}

/// The fields every line starts with: `{"sequence":…,"kind":"…","id":"…"`.
fn write_head(item: &FeedItem, out: &mut Vec<u8>) {
    let c = &item.change;
    out.extend_from_slice(b"{\"sequence\":");
    out.extend_from_slice(item.sequence.to_string().as_bytes());
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(c.kind.label().as_bytes());
    out.extend_from_slice(b"\",\"id\":\"");
    out.extend_from_slice(format!("{:012}", c.subject).as_bytes());
    out.push(b'"');
}

fn write_line(item: &FeedItem, out: &mut Vec<u8>) {
    let c = &item.change;
    write_head(item, out);
    out.extend_from_slice(b",\"time_unix\":");
    out.extend_from_slice(c.time_unix.to_string().as_bytes());
    out.extend_from_slice(b",\"client\":");
    write_json_str(out, &c.client);
    out.extend_from_slice(b",\"reason\":");
    write_json_str(out, &c.reason);
    out.extend_from_slice(b",\"citizen\":");
    match OwnedRecord::from_bytes(&c.image) {
        Some(record) => write_citizen_json(&record.view(), FieldSet::ALL, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

/// A line of `format=replica`: what a follower applies.
fn write_replica_line(item: &FeedItem, out: &mut Vec<u8>) {
    use base64::Engine as _;
    write_head(item, out);
    out.extend_from_slice(b",\"image\":\"");
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(item.change.to_bytes())
            .as_bytes(),
    );
    out.extend_from_slice(b"\"}\n");
}

/// `GET /v1/changes`.
pub async fn changes(
    state: &Arc<State>,
    access: Access<'_>,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let q = parse_query(query)?;
    let register = Arc::clone(register_of(state)?);
    if !q.wait.is_zero() && register.progress().applied <= q.after {
        let mut progress = register.subscribe();
        // Woken by the first durable change after `after`, or by the timeout:
        // either way the read below answers.
        let _ = tokio::time::timeout(q.wait, progress.wait_for(|p| p.applied > q.after)).await;
    }
    let read = tokio::task::spawn_blocking(move || register.changes_after(q.after, q.limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the feed reader failed",
            )
        })?
        .map_err(ApiError::from)?;
    let Some(items) = read else {
        let register = register_of(state)?;
        let first = register.first_logged_sequence();
        let mut gone = ApiError::new(
            StatusCode::GONE,
            "changes_trimmed",
            format!(
                "changes after {} were folded into a snapshot and trimmed from the log, which \
                 starts at {first}; load the newest snapshot (GET /v1/snapshot) and follow from \
                 its folded_sequence",
                q.after
            ),
        )
        .into_response();
        // The head is worth knowing here too: how far behind the caller is.
        gone.headers_mut().insert(
            APPLIED_HEADER,
            hyper::header::HeaderValue::from(register.progress().applied),
        );
        return Ok(gone);
    };
    let access = Access {
        operation: Operation::Changes,
        time_us: audit::now_us(),
        ..access
    };
    state.audit_request(
        &access,
        items.len(),
        items
            .iter()
            .map(|i| access.entry(Outcome::Found, i.change.subject, 0)),
    )?;
    let mut out = Vec::with_capacity(items.len() * 1200);
    for item in &items {
        match q.replica {
            true => write_replica_line(item, &mut out),
            false => write_line(item, &mut out),
        }
    }
    let mut response = with_content_type(StatusCode::OK, out, "application/x-ndjson");
    response.headers_mut().insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response.headers_mut().insert(
        APPLIED_HEADER,
        hyper::header::HeaderValue::from(register_of(state)?.progress().applied),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_feed_query() {
        assert_eq!(
            parse_query(Some("after=5&limit=10&wait=3")).unwrap(),
            FeedQuery {
                after: 5,
                limit: 10,
                wait: Duration::from_secs(3),
                replica: false,
            }
        );
        assert_eq!(parse_query(None).unwrap().limit, 1000);
        assert!(parse_query(Some("format=replica")).unwrap().replica);
        for bad in [
            "after=x",
            "limit=0",
            "limit=10001",
            "wait=61",
            "colour=red",
            "format=xml",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
