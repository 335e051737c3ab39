//! Merging the reports of processes that ran at the same time.

use super::Report;
use crate::error::{Error, Result};
use crate::stats::Stats;

impl Report {
    /// Combines reports of processes that ran at the same time against the
    /// same service: counts add up, histograms merge, rates add up, and
    /// intervals are aligned by wall-clock start.
    pub fn merge(reports: &[Report]) -> Result<Report> {
        let first = reports.first().ok_or_else(|| Error::Merge {
            reason: "no reports given".into(),
        })?;
        let interval_s = first.run.interval_s;
        let t0 = reports
            .iter()
            .map(|r| r.run.started_unix_ms)
            .min()
            .unwrap_or(0);
        let mut stats = Stats::default();
        let mut run = first.run.clone();
        run.targets.clear();
        run.callers.clear();
        run.threads = 0;
        run.connections = 0;
        run.peak_connections = 0;
        run.connects = 0;
        run.scheduled = 0.0;
        run.unsent = 0;
        run.waited_for_connection = 0;
        run.sent = 0;
        run.processes = 0;
        run.cpu_s = 0.0;
        run.busiest_thread_share = 0.0;
        run.started_unix_ms = t0;
        let same_curve_times = reports.iter().all(|r| {
            r.run.target_curve.len() == first.run.target_curve.len()
                && r.run
                    .target_curve
                    .iter()
                    .zip(&first.run.target_curve)
                    .all(|(a, b)| (a.0 - b.0).abs() < 1e-6)
        });
        run.target_curve = first
            .run
            .target_curve
            .iter()
            .map(|&(t, _)| (t, 0.0))
            .collect();
        for r in reports {
            if (r.run.interval_s - interval_s).abs() > 1e-9 {
                return Err(Error::Merge {
                    reason: format!(
                        "interval lengths differ ({}s and {}s)",
                        interval_s, r.run.interval_s
                    ),
                });
            }
            let mut s = r.stats()?;
            let shift = ((r.run.started_unix_ms - t0) as f64 / 1000.0 / interval_s).round() as u64;
            if shift > 0 {
                s.intervals = s
                    .intervals
                    .into_iter()
                    .map(|(i, rec)| (i + shift, rec))
                    .collect();
            }
            stats.merge(s)?;
            if r.run.mode != run.mode {
                run.mode = "mixed".into();
            }
            for t in &r.run.targets {
                if !run.targets.contains(t) {
                    run.targets.push(t.clone());
                }
            }
            for c in &r.run.callers {
                if !run.callers.contains(c) {
                    run.callers.push(c.clone());
                }
            }
            run.threads += r.run.threads;
            run.connections += r.run.connections;
            run.peak_connections += r.run.peak_connections;
            run.connects += r.run.connects;
            run.scheduled += r.run.scheduled;
            run.unsent += r.run.unsent;
            run.waited_for_connection += r.run.waited_for_connection;
            run.sent += r.run.sent;
            run.processes += r.run.processes.max(1);
            run.cpu_s += r.run.cpu_s;
            run.busiest_thread_share = run.busiest_thread_share.max(r.run.busiest_thread_share);
            run.realtime &= r.run.realtime;
            if r.run.engine != run.engine {
                run.engine = "mixed".into();
            }
            run.elapsed_s = run
                .elapsed_s
                .max(r.run.elapsed_s + (r.run.started_unix_ms - t0) as f64 / 1000.0);
            run.duration_s = run.duration_s.max(r.run.duration_s);
            if same_curve_times {
                for (a, b) in run.target_curve.iter_mut().zip(&r.run.target_curve) {
                    a.1 += b.1;
                }
            }
        }
        if !same_curve_times {
            run.target_curve.clear();
        }
        Report::build(&stats, run)
    }
}
