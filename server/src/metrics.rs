//! Request counters and latency histograms per route and client, in the
//! Prometheus text format.
//!
//! Besides the whole request's duration, each request's time is split into
//! [`Phase`]s (queue wait, body receive, service, response write), so that
//! a slow client, a busy server and a slow handler look different, and
//! requests shed by admission control are counted by [`ShedReason`].
//!
//! Counting costs a few relaxed atomic adds on memory that belongs to the
//! counting thread: the counters are sharded per worker thread (cache-line
//! aligned shards), and a scrape sums the shards.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::Pressure;
use crate::keys::ClientId;
use crate::router::Route;

/// Upper bounds of the latency buckets, in microseconds.
pub const BUCKETS_US: [u64; 16] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000, 2_500_000, 10_000_000,
];
const NB: usize = BUCKETS_US.len() + 1;

/// The status codes counted separately; anything else is counted as its
/// class in the last slots.
const STATUSES: [u16; 13] = [
    200, 400, 401, 403, 404, 405, 408, 413, 429, 431, 500, 503, 0,
];
const NS: usize = STATUSES.len();

fn status_slot(status: u16) -> usize {
    STATUSES.iter().position(|&s| s == status).unwrap_or(NS - 1)
}

/// Where a request's time went, each with its own histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// From the arrival of its bytes (the kernel's receive stamp) to the
    /// start of its handler: time spent waiting for the runtime thread.
    QueueWait,
    /// Reading the request body (the client's pace as much as ours).
    Receive,
    /// The handler's own time: from its start to the response, without
    /// the body receive; includes a batch's wait for the batch pool and
    /// the durable audit fsync ([`Phase::AuditWait`]).
    Service,
    /// The part of the service time spent waiting for the fsync that
    /// makes the request's audit entries durable (durable mode only).
    AuditWait,
    /// From the response being ready to its last byte handed to the kernel.
    Write,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::QueueWait,
        Phase::Receive,
        Phase::Service,
        Phase::AuditWait,
        Phase::Write,
    ];

    fn metric(self) -> &'static str {
        match self {
            Phase::QueueWait => "dancu_http_queue_wait_seconds",
            Phase::Receive => "dancu_http_receive_seconds",
            Phase::Service => "dancu_http_service_seconds",
            Phase::AuditWait => "dancu_http_audit_wait_seconds",
            Phase::Write => "dancu_http_write_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Phase::QueueWait => "Time from a request's bytes arriving (kernel receive stamp) to its handler starting, or the runtime's wait for a turn when larger, by route and client.",
            Phase::Receive => "Time reading a request body, by route and client.",
            Phase::Service => "Handler time without the body receive (batch pool wait and durable audit fsync included), by route and client.",
            Phase::AuditWait => "Part of the service time spent waiting for the audit log's fsync (durable mode), by route and client.",
            Phase::Write => "Time from a response being ready to its last byte handed to the kernel, by route and client.",
        }
    }
}

/// Why admission control answered 503 instead of serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedReason {
    /// The request waited longer than its class's queue-wait budget before
    /// its handler (or its batch's turn in the pool) came.
    QueueWait,
    /// The batch pool's queue was full.
    BatchQueueFull,
    /// A batch would have waited past its budget for the pool, going by the
    /// batches ahead of it and the pool's recent service time: shed on
    /// arrival rather than after the wait.
    ExpectedWait,
    /// The client already had its share of batches queued or running, and
    /// other clients' batches were waiting.
    ClientShare,
}

impl ShedReason {
    const ALL: [ShedReason; 4] = [
        ShedReason::QueueWait,
        ShedReason::BatchQueueFull,
        ShedReason::ExpectedWait,
        ShedReason::ClientShare,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            ShedReason::QueueWait => "queue_wait",
            ShedReason::BatchQueueFull => "batch_queue_full",
            ShedReason::ExpectedWait => "expected_wait",
            ShedReason::ClientShare => "client_share",
        }
    }
}

const NP: usize = Phase::ALL.len();
const NR: usize = ShedReason::ALL.len();

/// A histogram's buckets (not cumulative) and sum in microseconds.
pub type HistogramSnapshot = ([u64; NB], u64);

/// A histogram's buckets and sum.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; NB],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, elapsed: Duration) {
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(NB - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        (
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            self.sum_us.load(Ordering::Relaxed),
        )
    }
}

/// One (route, client) cell.
#[derive(Default)]
struct Cell {
    statuses: [AtomicU64; NS],
    duration: Histogram,
    phases: [Histogram; NP],
    shed: [AtomicU64; NR],
}

#[repr(align(128))]
struct Shard {
    cells: Box<[Cell]>,
}

/// The registry.
pub struct Metrics {
    shards: Box<[Shard]>,
    clients: Vec<String>,
    /// Told of every shed too: the audit's index builder waits while the
    /// server sheds (see `audit::Pressure`).
    pressure: Arc<Pressure>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("clients", &self.clients)
            .finish()
    }
}

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// Gauges sampled at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Generation of the served snapshot (0 before the first is ready).
    pub snapshot_generation: u64,
    /// Records in the served snapshot.
    pub snapshot_records: u64,
    /// Whether `/readyz` says ready.
    pub ready: bool,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Failed reloads since start.
    pub reload_failures: u64,
    /// Open connections.
    pub connections: u64,
    /// Audit entries queued or being written.
    pub audit_backlog: u64,
    /// Audit entries written.
    pub audit_written: u64,
    /// Requests refused for a full audit queue.
    pub audit_refused: u64,
    /// Whether the audit log is on.
    pub audit_enabled: bool,
    /// Audit log fsyncs.
    pub audit_syncs: u64,
    /// Audit write or fsync failures since start.
    pub audit_failures: u64,
    /// The audit log's current failure (data access is stopped).
    pub audit_failure: Option<String>,
    /// The audit commit path's stage histograms (`audit::stages`), by label.
    pub audit_stages: Vec<(&'static str, HistogramSnapshot)>,
    /// Verifications refused for repeated mismatches on one subject.
    pub verify_mismatch_refused: u64,
    /// Connections closed at accept: their address held its share.
    pub connections_refused_per_address: u64,
    /// Batches waiting for the batch pool, by class (interactive, bulk).
    pub batches_queued: [u64; 2],
    /// Batches running on the batch pool.
    pub batches_running: u64,
}

impl Metrics {
    /// A registry for these client names (indexed by [`ClientId`]) and
    /// `shards` worker threads.
    pub fn new(clients: Vec<String>, shards: usize) -> Metrics {
        let cells = Route::COUNT * clients.len();
        let shards = (0..shards.max(1))
            .map(|_| Shard {
                cells: (0..cells).map(|_| Cell::default()).collect(),
            })
            .collect();
        Metrics {
            shards,
            clients,
            pressure: Arc::default(),
        }
    }

    /// Tells `pressure` of every request shed.
    pub fn with_pressure(mut self, pressure: Arc<Pressure>) -> Metrics {
        self.pressure = pressure;
        self
    }

    fn cell(&self, route: Route, client: ClientId) -> &Cell {
        let shard = SHARD.with(|s| *s) % self.shards.len();
        let client = usize::from(client).min(self.clients.len() - 1);
        &self.shards[shard].cells[route.index() * self.clients.len() + client]
    }

    /// Counts one answered request.
    pub fn observe(&self, route: Route, client: ClientId, status: u16, elapsed: Duration) {
        let cell = self.cell(route, client);
        cell.statuses[status_slot(status)].fetch_add(1, Ordering::Relaxed);
        cell.duration.observe(elapsed);
    }

    /// Counts one phase of a request's time.
    pub fn observe_phase(&self, route: Route, client: ClientId, phase: Phase, took: Duration) {
        let slot = Phase::ALL.iter().position(|&p| p == phase).unwrap_or(0);
        self.cell(route, client).phases[slot].observe(took);
    }

    /// Counts one request shed by admission control.
    pub fn shed(&self, route: Route, client: ClientId, reason: ShedReason) {
        let slot = ShedReason::ALL
            .iter()
            .position(|&r| r == reason)
            .unwrap_or(0);
        self.cell(route, client).shed[slot].fetch_add(1, Ordering::Relaxed);
        self.pressure.note_shed();
    }

    /// Requests shed for a route (all clients and reasons), for tests.
    pub fn shed_count(&self, route: Route) -> u64 {
        self.shards
            .iter()
            .flat_map(|shard| {
                (0..self.clients.len())
                    .map(move |c| &shard.cells[route.index() * self.clients.len() + c])
            })
            .flat_map(|cell| cell.shed.iter())
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Total requests counted for a route (all clients and statuses), for tests.
    pub fn requests(&self, route: Route) -> u64 {
        let mut total = 0;
        for shard in self.shards.iter() {
            for c in 0..self.clients.len() {
                let cell = &shard.cells[route.index() * self.clients.len() + c];
                total += cell
                    .statuses
                    .iter()
                    .map(|s| s.load(Ordering::Relaxed))
                    .sum::<u64>();
            }
        }
        total
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let w = &mut out;
        let nclients = self.clients.len();
        let mut cells = Vec::new();
        for route in Route::ALL {
            for client in 0..nclients {
                let summed = Summed::of(
                    self.shards
                        .iter()
                        .map(|shard| &shard.cells[route.index() * nclients + client]),
                );
                if summed.statuses.iter().any(|&n| n > 0) {
                    cells.push((route, client, summed));
                }
            }
        }
        let labels = |route: &Route, client: &usize| {
            format!(
                "route=\"{}\",client=\"{}\"",
                route.label(),
                self.clients[*client]
            )
        };
        let _ = writeln!(w, "# HELP dancu_http_requests_total HTTP requests answered, by route, client and status code.");
        let _ = writeln!(w, "# TYPE dancu_http_requests_total counter");
        for (route, client, summed) in &cells {
            for (i, &n) in summed.statuses.iter().enumerate() {
                if n > 0 {
                    let code = if STATUSES[i] == 0 {
                        "other".to_string()
                    } else {
                        STATUSES[i].to_string()
                    };
                    let _ = writeln!(
                        w,
                        "dancu_http_requests_total{{{},code=\"{code}\"}} {n}",
                        labels(route, client)
                    );
                }
            }
        }
        let _ = writeln!(
            w,
            "# HELP dancu_http_errors_total HTTP requests answered with a 4xx or 5xx status."
        );
        let _ = writeln!(w, "# TYPE dancu_http_errors_total counter");
        for (route, client, summed) in &cells {
            let errors: u64 = summed
                .statuses
                .iter()
                .zip(STATUSES)
                .filter(|(_, s)| *s != 200)
                .map(|(n, _)| n)
                .sum();
            let _ = writeln!(
                w,
                "dancu_http_errors_total{{{}}} {errors}",
                labels(route, client)
            );
        }
        let _ = writeln!(
            w,
            "# HELP dancu_http_throttled_total Requests answered 429 (rate limit or repeated mismatches), by route and client."
        );
        let _ = writeln!(w, "# TYPE dancu_http_throttled_total counter");
        let throttled = status_slot(429);
        for (route, client, summed) in &cells {
            let _ = writeln!(
                w,
                "dancu_http_throttled_total{{{}}} {}",
                labels(route, client),
                summed.statuses[throttled]
            );
        }
        let _ = writeln!(
            w,
            "# HELP dancu_shed_total Requests answered 503 with Retry-After by admission control, by route, client and reason."
        );
        let _ = writeln!(w, "# TYPE dancu_shed_total counter");
        for (route, client, summed) in &cells {
            for (reason, n) in ShedReason::ALL.iter().zip(summed.shed) {
                let _ = writeln!(
                    w,
                    "dancu_shed_total{{{},reason=\"{}\"}} {n}",
                    labels(route, client),
                    reason.label()
                );
            }
        }
        let _ = writeln!(w, "# HELP dancu_http_request_duration_seconds Time from request head to response, by route and client.");
        let _ = writeln!(w, "# TYPE dancu_http_request_duration_seconds histogram");
        for (route, client, summed) in &cells {
            write_histogram(
                w,
                "dancu_http_request_duration_seconds",
                &labels(route, client),
                &summed.duration,
            );
        }
        for (p, phase) in Phase::ALL.iter().enumerate() {
            let name = phase.metric();
            let _ = writeln!(w, "# HELP {name} {}", phase.help());
            let _ = writeln!(w, "# TYPE {name} histogram");
            for (route, client, summed) in &cells {
                if summed.phases[p].0.iter().any(|&n| n > 0) {
                    write_histogram(w, name, &labels(route, client), &summed.phases[p]);
                }
            }
        }
        if !g.audit_stages.is_empty() {
            let name = "dancu_audit_stage_seconds";
            let _ = writeln!(w, "# HELP {name} Where a durable answer's wait goes: lane (entry to the writer's take), write, fsync, wake (commit decided to the worker's pump) and gate (commit decided to the held answer's release).");
            let _ = writeln!(w, "# TYPE {name} histogram");
            for (stage, histogram) in &g.audit_stages {
                write_histogram(w, name, &format!("stage=\"{stage}\""), histogram);
            }
        }
        let gauges: [(&str, &str, &str, u64); 17] = [
            (
                "dancu_snapshot_generation",
                "gauge",
                "Generation of the served snapshot.",
                g.snapshot_generation,
            ),
            (
                "dancu_snapshot_records",
                "gauge",
                "Records in the served snapshot.",
                g.snapshot_records,
            ),
            (
                "dancu_ready",
                "gauge",
                "1 when /readyz answers 200.",
                u64::from(g.ready),
            ),
            (
                "dancu_snapshot_reloads_total",
                "counter",
                "Snapshots swapped in after start.",
                g.reloads,
            ),
            (
                "dancu_snapshot_reload_failures_total",
                "counter",
                "Reloads that failed (the old snapshot stayed).",
                g.reload_failures,
            ),
            (
                "dancu_connections_open",
                "gauge",
                "Open client connections.",
                g.connections,
            ),
            (
                "dancu_audit_enabled",
                "gauge",
                "1 when the audit log is on.",
                u64::from(g.audit_enabled),
            ),
            (
                "dancu_audit_backlog",
                "gauge",
                "Audit entries queued or being written.",
                g.audit_backlog,
            ),
            (
                "dancu_audit_entries_written_total",
                "counter",
                "Audit entries written to the file.",
                g.audit_written,
            ),
            (
                "dancu_audit_refused_total",
                "counter",
                "Requests refused with 503 because the audit log could not take them (queue full, or failing).",
                g.audit_refused,
            ),
            (
                "dancu_audit_fsyncs_total",
                "counter",
                "Audit log fsyncs (durable mode: one per group commit).",
                g.audit_syncs,
            ),
            (
                "dancu_audit_failures_total",
                "counter",
                "Audit log write or fsync failures (each stopped data access until a reload recovered it).",
                g.audit_failures,
            ),
            (
                "dancu_verify_mismatch_throttled_total",
                "counter",
                "Verifications refused with 429 after repeated mismatches by one client on one subject.",
                g.verify_mismatch_refused,
            ),
            (
                "dancu_connections_refused_per_address_total",
                "counter",
                "Connections closed at accept because their remote address held its share of the cap.",
                g.connections_refused_per_address,
            ),
            (
                "dancu_batches_queued_interactive",
                "gauge",
                "Batches of interactive clients waiting for the batch pool.",
                g.batches_queued[0],
            ),
            (
                "dancu_batches_queued_bulk",
                "gauge",
                "Batches of bulk clients waiting for the batch pool.",
                g.batches_queued[1],
            ),
            (
                "dancu_batches_running",
                "gauge",
                "Batches running on the batch pool.",
                g.batches_running,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                w,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            w,
            "# HELP dancu_audit_failing 1 while an audit log I/O error stops data access; \
             the cause is the label.\n# TYPE dancu_audit_failing gauge"
        );
        match &g.audit_failure {
            Some(cause) => {
                let cause = cause
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = writeln!(w, "dancu_audit_failing{{cause=\"{cause}\"}} 1");
            }
            None => {
                let _ = writeln!(w, "dancu_audit_failing 0");
            }
        }
        out
    }
}

/// One cell summed over the shards: statuses, the duration histogram,
/// the phase histograms, shed counts.
struct Summed {
    statuses: [u64; NS],
    duration: ([u64; NB], u64),
    phases: [([u64; NB], u64); NP],
    shed: [u64; NR],
}

impl Summed {
    fn of<'a>(cells: impl Iterator<Item = &'a Cell>) -> Summed {
        let mut summed = Summed {
            statuses: [0; NS],
            duration: ([0; NB], 0),
            phases: [([0; NB], 0); NP],
            shed: [0; NR],
        };
        let add = |into: &mut ([u64; NB], u64), h: &Histogram| {
            for (t, b) in into.0.iter_mut().zip(&h.buckets) {
                *t += b.load(Ordering::Relaxed);
            }
            into.1 += h.sum_us.load(Ordering::Relaxed);
        };
        for cell in cells {
            for (t, s) in summed.statuses.iter_mut().zip(&cell.statuses) {
                *t += s.load(Ordering::Relaxed);
            }
            add(&mut summed.duration, &cell.duration);
            for (into, h) in summed.phases.iter_mut().zip(&cell.phases) {
                add(into, h);
            }
            for (t, s) in summed.shed.iter_mut().zip(&cell.shed) {
                *t += s.load(Ordering::Relaxed);
            }
        }
        summed
    }
}

/// One histogram's `_bucket`, `_sum` and `_count` lines.
fn write_histogram(w: &mut String, name: &str, labels: &str, (buckets, sum): &([u64; NB], u64)) {
    let mut cumulative = 0;
    for (i, &n) in buckets.iter().enumerate() {
        cumulative += n;
        let le = match BUCKETS_US.get(i) {
            Some(&us) => format!("{}", us as f64 / 1e6),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(w, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(w, "{name}_sum{{{labels}}} {}", *sum as f64 / 1e6);
    let _ = writeln!(w, "{name}_count{{{labels}}} {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::new(vec!["anonymous".into(), "bank".into()], 2);
        m.observe(Route::GetCitizen, 1, 200, Duration::from_micros(30));
        m.observe(Route::GetCitizen, 1, 404, Duration::from_micros(3_000_000));
        m.observe(Route::Healthz, 0, 200, Duration::from_micros(1));
        assert_eq!(m.requests(Route::GetCitizen), 2);
        let text = m.render(&Gauges {
            snapshot_generation: 7,
            ..Gauges::default()
        });
        assert!(
            text.contains(
                r#"dancu_http_requests_total{route="get_citizen",client="bank",code="404"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"dancu_http_errors_total{route="get_citizen",client="bank"} 1"#));
        assert!(text.contains(r#"dancu_http_request_duration_seconds_bucket{route="get_citizen",client="bank",le="0.00005"} 1"#), "{text}");
        assert!(text.contains(r#"dancu_http_request_duration_seconds_bucket{route="get_citizen",client="bank",le="+Inf"} 2"#));
        assert!(text.contains(
            r#"dancu_http_request_duration_seconds_count{route="healthz",client="anonymous"} 1"#
        ));
        assert!(text.contains("dancu_snapshot_generation 7"));
        assert!(!text.contains("route=\"verify\""));
    }

    #[test]
    fn renders_phases_and_shed_counts() {
        let pressure = Arc::new(Pressure::default());
        let m = Metrics::new(vec!["anonymous".into(), "bank".into()], 1)
            .with_pressure(Arc::clone(&pressure));
        m.observe(Route::BatchVerify, 1, 503, Duration::from_micros(70));
        m.observe_phase(
            Route::BatchVerify,
            1,
            Phase::QueueWait,
            Duration::from_millis(60),
        );
        m.shed(Route::BatchVerify, 1, ShedReason::QueueWait);
        assert_eq!(m.shed_count(Route::BatchVerify), 1);
        // The audit's index builder hears of it too.
        assert_eq!(pressure.sheds(), 1);
        let text = m.render(&Gauges::default());
        let labels = r#"route="batch_verify",client="bank""#;
        for line in [
            format!(r#"dancu_http_queue_wait_seconds_bucket{{{labels},le="0.05"}} 0"#),
            format!(r#"dancu_http_queue_wait_seconds_bucket{{{labels},le="0.1"}} 1"#),
            format!(r#"dancu_shed_total{{{labels},reason="queue_wait"}} 1"#),
            format!(r#"dancu_shed_total{{{labels},reason="client_share"}} 0"#),
            format!(r#"dancu_http_throttled_total{{{labels}}} 0"#),
        ] {
            assert!(text.contains(&line), "{line} in {text}");
        }
        // A phase never observed has no series.
        assert!(!text.contains("dancu_http_write_seconds_count{"));
    }
}
