//! Request counters and latency histograms per route and client, in the
//! Prometheus text format.
//!
//! Counting costs a few relaxed atomic adds on memory that belongs to the
//! counting thread: the counters are sharded per worker thread (cache-line
//! aligned shards), and a scrape sums the shards.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::keys::ClientId;
use crate::router::Route;

/// Upper bounds of the latency buckets, in microseconds.
pub const BUCKETS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
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

/// One (route, client) cell.
#[derive(Default)]
struct Cell {
    statuses: [AtomicU64; NS],
    buckets: [AtomicU64; NB],
    sum_us: AtomicU64,
}

#[repr(align(128))]
struct Shard {
    cells: Box<[Cell]>,
}

/// The registry.
pub struct Metrics {
    shards: Box<[Shard]>,
    clients: Vec<String>,
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
    /// Verifications refused for repeated mismatches on one subject.
    pub verify_mismatch_refused: u64,
    /// Connections closed at accept: their address held its share.
    pub connections_refused_per_address: u64,
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
        Metrics { shards, clients }
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
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(NB - 1);
        cell.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        cell.sum_us.fetch_add(us, Ordering::Relaxed);
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
        let sum_cell = |route: Route, client: usize| -> ([u64; NS], [u64; NB], u64) {
            let mut statuses = [0; NS];
            let mut buckets = [0; NB];
            let mut sum = 0;
            for shard in self.shards.iter() {
                let cell = &shard.cells[route.index() * nclients + client];
                for (t, s) in statuses.iter_mut().zip(&cell.statuses) {
                    *t += s.load(Ordering::Relaxed);
                }
                for (t, b) in buckets.iter_mut().zip(&cell.buckets) {
                    *t += b.load(Ordering::Relaxed);
                }
                sum += cell.sum_us.load(Ordering::Relaxed);
            }
            (statuses, buckets, sum)
        };
        let mut cells = Vec::new();
        for route in Route::ALL {
            for client in 0..nclients {
                let (statuses, buckets, sum) = sum_cell(route, client);
                if statuses.iter().any(|&n| n > 0) {
                    cells.push((route, client, statuses, buckets, sum));
                }
            }
        }
        let _ = writeln!(w, "# HELP dancu_http_requests_total HTTP requests answered, by route, client and status code.");
        let _ = writeln!(w, "# TYPE dancu_http_requests_total counter");
        for (route, client, statuses, _, _) in &cells {
            for (i, &n) in statuses.iter().enumerate() {
                if n > 0 {
                    let code = if STATUSES[i] == 0 {
                        "other".to_string()
                    } else {
                        STATUSES[i].to_string()
                    };
                    let _ = writeln!(
                        w,
                        "dancu_http_requests_total{{route=\"{}\",client=\"{}\",code=\"{code}\"}} {n}",
                        route.label(),
                        self.clients[*client]
                    );
                }
            }
        }
        let _ = writeln!(
            w,
            "# HELP dancu_http_errors_total HTTP requests answered with a 4xx or 5xx status."
        );
        let _ = writeln!(w, "# TYPE dancu_http_errors_total counter");
        for (route, client, statuses, _, _) in &cells {
            let errors: u64 = statuses
                .iter()
                .zip(STATUSES)
                .filter(|(_, s)| *s != 200)
                .map(|(n, _)| n)
                .sum();
            let _ = writeln!(
                w,
                "dancu_http_errors_total{{route=\"{}\",client=\"{}\"}} {errors}",
                route.label(),
                self.clients[*client]
            );
        }
        let _ = writeln!(w, "# HELP dancu_http_request_duration_seconds Time from request head to response, by route and client.");
        let _ = writeln!(w, "# TYPE dancu_http_request_duration_seconds histogram");
        for (route, client, _, buckets, sum) in &cells {
            let labels = format!(
                "route=\"{}\",client=\"{}\"",
                route.label(),
                self.clients[*client]
            );
            let mut cumulative = 0;
            for (i, &n) in buckets.iter().enumerate() {
                cumulative += n;
                let le = match BUCKETS_US.get(i) {
                    Some(&us) => format!("{}", us as f64 / 1e6),
                    None => "+Inf".to_string(),
                };
                let _ = writeln!(w, "dancu_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(
                w,
                "dancu_http_request_duration_seconds_sum{{{labels}}} {}",
                *sum as f64 / 1e6
            );
            let _ = writeln!(
                w,
                "dancu_http_request_duration_seconds_count{{{labels}}} {cumulative}"
            );
        }
        let gauges: [(&str, &str, &str, u64); 14] = [
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
}
