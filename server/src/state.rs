//! [`State`]: what every connection shares, and the one way a handler
//! records an audited access (`State::audit_access`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dancu_engine::{FieldSet, Verification};
use hyper::StatusCode;
use parking_lot::Mutex;
use serde::Serialize;

use crate::address_share::AddressShare;
use crate::admission::BatchPool;
use crate::api_error::{ApiError, ErrorHeader};
use crate::audit::{AuditLog, Durable, Entry, Operation, Outcome};
use crate::body::HttpResponse;
use crate::config::Limits;
use crate::conn::ConnClock;
use crate::keys::{retry_after_secs, ClientId, KeyStore};
use crate::metrics::{Gauges, Metrics, Phase};
use crate::router::Route;
use crate::snapshot::{ReloadOutcome, SnapshotSwap};
use crate::throttle::MismatchThrottle;

/// What every connection shares.
pub struct State {
    /// The clients; replaced whole by a reload of `keys.toml`.
    pub(crate) keys: ArcSwap<KeyStore>,
    /// `keys.toml`; `None` in demo mode.
    pub(crate) keys_path: Option<PathBuf>,
    /// One key reload at a time (each makes the next generation).
    pub(crate) keys_reload: Mutex<()>,
    pub(crate) metrics: Metrics,
    /// The threads that run batches (see [`crate::admission`]).
    pub(crate) batches: BatchPool,
    pub(crate) audit: Option<AuditLog>,
    pub(crate) snapshots: SnapshotSwap,
    pub(crate) limits: Limits,
    pub(crate) ready: AtomicBool,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
    pub(crate) address_share: Arc<AddressShare>,
    pub(crate) mismatches: MismatchThrottle,
    /// Peers whose `X-Forwarded-For` names the caller.
    pub(crate) trusted_proxies: Vec<IpAddr>,
    /// The live register (change log and overlay), when the server takes
    /// writes; `None` serves the snapshot as it is.
    pub(crate) register: Option<Arc<dancu_register::Register>>,
    /// Compact once this many citizens have changes (0: never by itself).
    pub(crate) compact_after: u64,
    /// Follower mode: the primary and how far behind it this server is.
    pub(crate) follower: Option<Arc<crate::follower::FollowerStatus>>,
}

/// One audited access: who did what to whom, when, from where, and what
/// they learnt; and where its audit ticket goes.
#[derive(Clone, Copy, Debug)]
pub struct Access<'r> {
    /// The caller.
    pub client: ClientId,
    /// The route's audit operation.
    pub operation: Operation,
    /// When, in microseconds since the Unix epoch.
    pub time_us: u64,
    /// The caller's address.
    pub source: Option<IpAddr>,
    /// The request ID echoed in `X-Request-Id`.
    pub request_id: u64,
    /// The fields returned or claimed.
    pub fields: FieldSet,
    /// Identify: the digest's SHA-256 prefix.
    pub digest_prefix: u64,
    /// Where the request's durability ticket is left for the service.
    pub ticket: &'r AuditTicket,
}

impl Access<'_> {
    /// The audit entry of this access to `subject` (0 when unknown).
    pub fn entry(&self, outcome: Outcome, subject: u64, legacy_id: u32) -> Entry {
        Entry {
            legacy_id,
            source: self.source,
            request_id: self.request_id,
            fields: self.fields,
            digest_prefix: self.digest_prefix,
            ..Entry::new(self.time_us, self.client, self.operation, subject, outcome)
        }
    }
}

/// The durability ticket of one request: a handler's audit append leaves it
/// here, and the service answers only once it resolves (at once when the
/// log is buffered or off, so those requests keep their ready future).
#[derive(Debug, Default)]
pub struct AuditTicket(Mutex<Option<Durable>>);

impl AuditTicket {
    fn put(&self, durable: Durable) {
        if !durable.is_ready() {
            *self.0.lock() = Some(durable);
        }
    }

    /// The ticket to wait for, if any.
    pub fn take(&self) -> Option<Durable> {
        self.0.lock().take()
    }
}

/// What a reload did: the snapshot's [`ReloadOutcome`] and whether
/// `keys.toml` was read again.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// The snapshot reload.
    #[serde(flatten)]
    pub snapshot: ReloadOutcome,
    /// Whether `keys.toml` was read again (false in demo mode).
    pub keys_reloaded: bool,
}

/// `Found` or `NotFound`.
pub fn lookup_outcome(found: bool) -> Outcome {
    if found {
        Outcome::Found
    } else {
        Outcome::NotFound
    }
}

/// `NotFound` without a record, else `Match` or `Mismatch`.
pub fn verification_outcome(verification: Option<&Verification>) -> Outcome {
    match verification {
        None => Outcome::NotFound,
        Some(v) if v.matched() => Outcome::Match,
        Some(_) => Outcome::Mismatch,
    }
}

impl State {
    pub(crate) fn gauges(&self) -> Gauges {
        let served = self.snapshots.load();
        let (reloads, reload_failures) = self.snapshots.reload_counts();
        let audit = self.audit.as_ref().map(AuditLog::stats).unwrap_or_default();
        Gauges {
            snapshot_generation: served.as_ref().map_or(0, |s| s.generation),
            snapshot_records: served.as_ref().map_or(0, |s| s.records),
            ready: self.is_ready(),
            reloads,
            reload_failures,
            connections: (self.limits.max_connections - self.connections.available_permits())
                as u64,
            audit_backlog: audit.backlog,
            audit_written: audit.written,
            audit_refused: audit.refused,
            audit_enabled: self.audit.is_some(),
            audit_syncs: audit.syncs,
            audit_failures: audit.failures,
            audit_failure: self.audit.as_ref().and_then(AuditLog::failure),
            audit_stages: audit.stages,
            verify_mismatch_refused: self.mismatches.refused(),
            connections_refused_per_address: self.address_share.refused(),
            batches_queued: self.batches.depth().0,
            batches_running: self.batches.depth().1,
        }
    }

    /// Charges the items of a batch after the first (which
    /// [`authorize`](crate::auth::authorize) charged as the request) to the
    /// client's rate limit: limits count items, not requests.
    pub(crate) fn charge_batch_items(
        &self,
        client: ClientId,
        items: usize,
        now: Instant,
    ) -> Result<(), ApiError> {
        let keys = self.keys.load();
        let Some(limiter) = keys.client(client).and_then(|c| c.limiter.as_ref()) else {
            return Ok(());
        };
        let rate_limited =
            |message: String| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        let items = items as u64;
        if items > limiter.burst() {
            return Err(rate_limited(format!(
                "a batch of {items} items is more than this client's burst of {}; \
                 send smaller batches",
                limiter.burst()
            )));
        }
        limiter
            .check_n(now, items.saturating_sub(1))
            .map_err(|wait| {
                rate_limited(
                    "over this client's rate (batch items count one each); retry after the \
                     Retry-After seconds"
                        .into(),
                )
                .with_header(ErrorHeader::RetryAfter(retry_after_secs(wait)))
            })
    }

    /// Reads `keys.toml` again (see [`KeyStore::reloaded`]); false in demo
    /// mode, which has no file. On error the old keys stay.
    pub(crate) fn reload_keys(&self) -> Result<bool, crate::Error> {
        let Some(path) = &self.keys_path else {
            return Ok(false);
        };
        let _one_at_a_time = self.keys_reload.lock();
        let reloaded = self.keys.load().reloaded(path)?;
        self.keys.store(Arc::new(reloaded));
        Ok(true)
    }

    /// What SIGHUP and `POST /v1/admin/reload` do: the audit log reopened
    /// if it was failing (how an operator lifts the stop once the disk is
    /// fixed), `keys.toml` (an error there stops the reload, so that a
    /// broken file is noticed), then the newest snapshot. Blocking.
    pub(crate) fn reload(&self) -> Result<ReloadReport, crate::Error> {
        self.recover_audit();
        let keys_reloaded = self.reload_keys()?;
        let snapshot = self.snapshots.reload()?;
        Ok(ReloadReport {
            snapshot,
            keys_reloaded,
        })
    }

    /// Whether `/readyz` says ready.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && !self.shutting_down.load(Ordering::Acquire)
            && self.follower.as_ref().is_none_or(|f| f.is_current())
    }

    /// Audits one access; `503` when the log cannot take it (the access
    /// must then not be answered). The durability ticket goes to
    /// `access.ticket`.
    pub(crate) fn audit_access(
        &self,
        access: &Access<'_>,
        outcome: Outcome,
        subject: u64,
        legacy_id: u32,
    ) -> Result<(), ApiError> {
        match &self.audit {
            Some(log) => {
                let entry = access.entry(outcome, subject, legacy_id);
                let durable = log.append_one(entry).map_err(ApiError::audit_unavailable)?;
                access.ticket.put(durable);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Audits the `n` accesses of one request (see
    /// [`AuditLog::append_request`]). `entries` is only iterated when the
    /// log is on.
    pub(crate) fn audit_request(
        &self,
        access: &Access<'_>,
        n: usize,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), ApiError> {
        match &self.audit {
            Some(log) => {
                let durable = log
                    .append_request(n, entries)
                    .map_err(ApiError::audit_unavailable)?;
                access.ticket.put(durable);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// After an audit failure: tries to reopen the log (the operator fixed
    /// the disk and reloads). Says what happened on stderr.
    pub(crate) fn recover_audit(&self) {
        if let Some(log) = &self.audit {
            if let Err(e) = log.recover() {
                eprintln!("dancu-server: reload: the audit log still fails: {e}");
            }
        }
    }

    /// Counts an answered request in the metrics: its status and duration,
    /// its service time (the duration without `receive`, the body's), and
    /// tells the connection's clock to time the response's write.
    pub(crate) fn finish(
        &self,
        clock: &ConnClock,
        route: Route,
        client: ClientId,
        start: Instant,
        receive: Duration,
        resp: HttpResponse,
    ) -> HttpResponse {
        let elapsed = start.elapsed();
        self.metrics
            .observe(route, client, resp.status().as_u16(), elapsed);
        self.metrics.observe_phase(
            route,
            client,
            Phase::Service,
            elapsed.saturating_sub(receive),
        );
        // Zero for the routes without a body (a read always takes time).
        if !receive.is_zero() {
            self.metrics
                .observe_phase(route, client, Phase::Receive, receive);
        }
        clock.response_ready(route, client);
        resp
    }
}
