//! Follower mode (`--follow URL`): a read replica of a primary's register.
//!
//! One thread long-polls the primary's `GET /v1/changes?format=replica`
//! from the last sequence this server's own log holds, and applies each
//! change with [`Register::apply_replicated`]: the primary's payload under
//! the primary's sequence number, so a restart replays the follower's log
//! and continues where it stopped, and a compaction here folds the same
//! records into the same bytes as on the primary.
//!
//! - Writes are refused (`421 not_primary`, naming the primary): only the
//!   primary decides changes.
//! - Lag: seconds since the follower last held everything the primary had
//!   made durable (the feed's `X-Dancu-Applied` header), and the changes it
//!   is behind; both in `/metrics`. `/readyz` answers 503 past
//!   `--max-lag-s`, so a load balancer stops sending it reads. An idle
//!   follower reads up to the poll period ([`POLL_WAIT_S`]) behind.
//! - A follower whose next change the primary has folded into a snapshot
//!   and trimmed from its log (`410` from the feed) cannot catch up by
//!   replay: it says so in its log, `/readyz` and `/metrics`, and keeps
//!   asking. The operator copies the primary's newest generation beside the
//!   follower's snapshot, empties the follower's change-log directory and
//!   restarts it (`deploy/README.md`).
//!
//! The link to the primary ([`link`]) is plain HTTP/1.1 to the primary's
//! own listener on a private network, or TLS (and mTLS) through nginx.

mod link;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use dancu_register::Register;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::StatusCode;
use parking_lot::Mutex;
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::routes::feed::APPLIED_HEADER;
use crate::state::State;

pub use link::{ClientCert, PrimaryLink};

/// Seconds one long-poll waits on the primary when there is nothing new.
pub const POLL_WAIT_S: u64 = 1;
/// Most changes asked for in one poll.
const POLL_LIMIT: usize = 5_000;
/// Pause after a failed poll before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What `--follow` configures.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// The primary: `http://host:port` (its own listener) or
    /// `https://host[:port]` (a TLS terminator in front of it).
    pub primary: String,
    /// A key with the `changes:read` scope on the primary.
    pub key: String,
    /// Past this lag `/readyz` says not ready.
    pub max_lag: Duration,
    /// Trust only these CAs (PEM) for an https:// primary; `None`: the
    /// system's trust store.
    pub ca_file: Option<PathBuf>,
    /// Present this certificate when the primary's TLS terminator asks
    /// (mTLS).
    pub client_cert: Option<ClientCert>,
}

impl FollowConfig {
    /// A follower of `primary` with `key`, not ready past 10 s of lag,
    /// with the system's trust store and no client certificate.
    pub fn new(primary: String, key: String) -> FollowConfig {
        FollowConfig {
            primary,
            key,
            max_lag: Duration::from_secs(10),
            ca_file: None,
            client_cert: None,
        }
    }
}

/// How far the follower has come; shared with `/readyz` and `/metrics`.
pub struct FollowerStatus {
    config: FollowConfig,
    link: PrimaryLink,
    /// The primary's last durable sequence, as of the last answer.
    primary_applied: AtomicU64,
    /// The last sequence applied here.
    applied: AtomicU64,
    /// Unix ms when the follower last held all the primary had (0: never).
    in_sync_ms: AtomicU64,
    /// Polls that failed (connection, status, a malformed line).
    errors: AtomicU64,
    /// The primary trimmed the changes this follower needs next.
    behind_compaction: AtomicBool,
    last_error: Mutex<Option<String>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FollowerStatus {
    /// A follower of `config.primary` that has applied up to `applied`, or
    /// why `config` cannot reach a primary (a bad URL, an unreadable
    /// certificate).
    pub fn new(config: FollowConfig, applied: u64) -> Result<FollowerStatus, String> {
        let link = PrimaryLink::new(&config)?;
        Ok(FollowerStatus {
            config,
            link,
            primary_applied: AtomicU64::new(0),
            applied: AtomicU64::new(applied),
            in_sync_ms: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            behind_compaction: AtomicBool::new(false),
            last_error: Mutex::new(None),
        })
    }

    /// The primary's URL.
    pub fn primary(&self) -> &str {
        &self.config.primary
    }

    /// Seconds since the follower last held everything the primary had
    /// (infinite before the first answer).
    pub fn lag_seconds(&self) -> f64 {
        match self.in_sync_ms.load(Ordering::Acquire) {
            0 => f64::INFINITY,
            t => now_ms().saturating_sub(t) as f64 / 1000.0,
        }
    }

    /// Whether reads here are fresh enough to serve (`/readyz`).
    pub fn is_current(&self) -> bool {
        !self.behind_compaction.load(Ordering::Acquire)
            && self.lag_seconds() <= self.config.max_lag.as_secs_f64()
    }

    /// The answer to a write sent to this follower.
    pub fn refuse_write(&self) -> ApiError {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "not_primary",
            format!(
                "this server is a read-only follower of {}; send changes to the primary",
                self.config.primary
            ),
        )
    }

    /// The `/readyz` body's extra fields (`,"lag_s":…`).
    pub fn readyz_fields(&self) -> String {
        let lag = self.lag_seconds();
        let lag = if lag.is_finite() {
            format!("{lag:.3}")
        } else {
            "null".into()
        };
        format!(
            ",\"role\":\"follower\",\"primary\":{},\"lag_s\":{lag},\"applied\":{},\
             \"behind_compaction\":{}",
            serde_json::Value::from(self.config.primary.as_str()),
            self.applied.load(Ordering::Acquire),
            self.behind_compaction.load(Ordering::Acquire)
        )
    }

    /// Prometheus lines.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let applied = self.applied.load(Ordering::Acquire);
        let primary = self.primary_applied.load(Ordering::Acquire);
        let lag = self.lag_seconds();
        let lag = if lag.is_finite() { lag } else { -1.0 };
        let _ = write!(
            out,
            "# HELP dancu_follower_lag_seconds Seconds since this follower last held every change the primary had made durable (-1: not yet).\n\
             # TYPE dancu_follower_lag_seconds gauge\n\
             dancu_follower_lag_seconds {lag:.3}\n\
             # HELP dancu_follower_lag_changes Changes the primary had at the last poll that this follower has not applied.\n\
             # TYPE dancu_follower_lag_changes gauge\n\
             dancu_follower_lag_changes {}\n\
             # HELP dancu_follower_applied_sequence Last change sequence applied here.\n\
             # TYPE dancu_follower_applied_sequence gauge\n\
             dancu_follower_applied_sequence {applied}\n\
             # HELP dancu_follower_poll_errors_total Polls of the primary that failed.\n\
             # TYPE dancu_follower_poll_errors_total counter\n\
             dancu_follower_poll_errors_total {}\n\
             # HELP dancu_follower_behind_compaction 1 when the primary trimmed changes this follower needs (reseed it).\n\
             # TYPE dancu_follower_behind_compaction gauge\n\
             dancu_follower_behind_compaction {}\n",
            primary.saturating_sub(applied),
            self.errors.load(Ordering::Relaxed),
            u8::from(self.behind_compaction.load(Ordering::Acquire)),
        );
    }

    fn failed(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_error.lock();
        // Logged when it changes, not at every retry.
        if last.as_deref() != Some(message.as_str()) {
            eprintln!("dancu-server: follower: {message}");
            *last = Some(message);
        }
    }
}

/// An error and its sources: hyper's own message ("connection error") says
/// less than the TLS alert under it ("peer sent no certificates").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The start of an answer's body for a log line: a proxy's error page is
/// HTML over many lines.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && *l != "<html>");
    line.unwrap_or_default().chars().take(200).collect()
}

/// One line of the replica feed.
#[derive(Deserialize)]
struct ReplicaLine {
    sequence: u64,
    image: String,
}

/// Starts the follower thread, if the server follows; it stops when the
/// server shuts down.
pub fn start(state: &Arc<State>) -> std::io::Result<()> {
    let (Some(status), Some(register)) = (state.follower.clone(), state.register.clone()) else {
        return Ok(());
    };
    let state = Arc::clone(state);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("dancu-follower".into())
        .spawn(move || rt.block_on(follow(status, register, state)))?;
    Ok(())
}

async fn follow(status: Arc<FollowerStatus>, register: Arc<Register>, state: Arc<State>) {
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    let mut after = register.progress().applied;
    while !state.shutting_down.load(Ordering::Acquire) {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            match status.link.connect().await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    status.failed(e);
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        match poll(&status, &register, s, after).await {
            Ok(last) => after = last,
            Err(e) => {
                sender = None;
                status.failed(e);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// One long-poll: the changes after `after`, applied. The last sequence
/// applied.
async fn poll(
    status: &FollowerStatus,
    register: &Register,
    sender: &mut SendRequest<Empty<Bytes>>,
    after: u64,
) -> Result<u64, String> {
    let request = hyper::Request::get(format!(
        "/v1/changes?after={after}&limit={POLL_LIMIT}&wait={POLL_WAIT_S}&format=replica"
    ))
    .header(hyper::header::HOST, status.link.host_header())
    .header(
        hyper::header::AUTHORIZATION,
        format!("Bearer {}", status.config.key),
    )
    .body(Empty::new())
    .map_err(|e| format!("building the poll request: {e}"))?;
    let response = tokio::time::timeout(
        Duration::from_secs(POLL_WAIT_S + 30),
        sender.send_request(request),
    )
    .await
    .map_err(|_| "the primary did not answer in time".to_string())?
    .map_err(|e| format!("polling the primary: {}", describe(&e)))?;
    let code = response.status();
    let primary_applied = response
        .headers()
        .get(APPLIED_HEADER)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the feed: {}", describe(&e)))?
        .to_bytes();
    if code == StatusCode::GONE {
        if !status.behind_compaction.swap(true, Ordering::AcqRel) {
            eprintln!(
                "dancu-server: follower: the primary has folded and trimmed the changes after \
                 {after}; this follower cannot catch up by replay. Copy the primary's newest \
                 snapshot generation beside this one, empty the change-log directory and \
                 restart (deploy/README.md). The primary said: {}",
                excerpt(&body)
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        return Ok(after);
    }
    if code != StatusCode::OK {
        return Err(format!("the primary answered {code}: {}", excerpt(&body)));
    }
    status.behind_compaction.store(false, Ordering::Release);
    let mut last = after;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line: ReplicaLine = serde_json::from_slice(line)
            .map_err(|e| format!("a malformed feed line after {last}: {e}"))?;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(line.image.as_bytes())
            .map_err(|e| format!("change {}: bad base64: {e}", line.sequence))?;
        register
            .apply_replicated(line.sequence, &payload)
            .map_err(|e| format!("applying change {}: {e}", line.sequence))?;
        last = line.sequence;
    }
    if last > after {
        register
            .durable(last)
            .await
            .map_err(|e| format!("logging change {last}: {e}"))?;
    }
    status.applied.store(last, Ordering::Release);
    if let Some(p) = primary_applied {
        status.primary_applied.store(p, Ordering::Release);
        if last >= p {
            status.in_sync_ms.store(now_ms(), Ordering::Release);
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn an_error_page_is_logged_by_its_first_meaningful_line() {
        let nginx = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n</body>\r\n</html>\r\n";
        assert_eq!(
            excerpt(nginx),
            "<head><title>502 Bad Gateway</title></head>"
        );
        let dancu = br#"{"error":{"code":"unauthenticated","message":"send a key"}}"#;
        assert_eq!(excerpt(dancu), String::from_utf8_lossy(dancu));
        assert_eq!(excerpt(b""), "");
    }
}
