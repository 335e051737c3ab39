//! The report as text for people and as one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{round2, Breakdown, Report};
use crate::units::{Count, Micros};

impl Report {
    /// The one-line JSON summary printed by `--json`.
    pub fn json_line(&self) -> String {
        let s = &self.summary;
        let ops: BTreeMap<&str, serde_json::Value> = self
            .operations
            .iter()
            .map(|o| {
                (
                    o.name.as_str(),
                    serde_json::json!({
                        "requests": o.requests, "p50_us": o.p50_us, "p99_us": o.p99_us,
                        "p999_us": o.p999_us, "max_us": o.max_us, "errors": o.errors,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "mode": self.run.mode,
            "label": self.run.label,
            "targets": self.run.targets,
            "connections": self.run.connections,
            "peak_connections": self.run.peak_connections,
            "requests": s.requests,
            "requests_per_s": round2(s.requests_per_s),
            "target_rate": round2(s.target_rate),
            "sent": s.sent,
            "p50_us": s.p50_us,
            "p90_us": s.p90_us,
            "p99_us": s.p99_us,
            "p999_us": s.p999_us,
            "max_us": s.max_us,
            "mean_us": round2(s.mean_us),
            "errors": s.errors,
            "error_rate": s.error_rate,
            "behind_schedule_us": s.behind_schedule_us,
            "behind_schedule_p99_us": s.behind_schedule_p99_us,
            "unsent": s.unsent,
            "shed": s.shed,
            "elapsed_s": round2(s.elapsed_s),
            "threads": self.run.threads,
            "cpu_us_per_request": round2(s.cpu_us_per_request),
            "generator_cores": round2(s.generator_cores),
            "busiest_thread_share": round2(self.run.busiest_thread_share),
            "realtime": self.run.realtime,
            "engine": self.run.engine,
            "warnings": s.warnings,
            "statuses": self.statuses,
            "operations": ops,
        })
        .to_string()
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let s = &self.summary;
        let r = &self.run;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "dancu-loadgen: {} model{}{}, {:.1}s, {} target(s), {} thread(s), {}{} connections (peak {}, {} opened)",
            r.mode,
            if r.engine.is_empty() { String::new() } else { format!(" ({})", r.engine) },
            if r.label.is_empty() { String::new() } else { format!(" [{}]", r.label) },
            s.elapsed_s,
            r.targets.len(),
            r.threads,
            if r.mode == "closed" { "" } else { "up to " },
            r.connections,
            r.peak_connections,
            r.connects,
        );
        let vs_target = if s.target_rate > 0.0 {
            format!(
                ", target {:.1}/s: sent {:.2} % of schedule",
                s.target_rate,
                if s.scheduled > 0.0 {
                    100.0 * s.sent as f64 / s.scheduled
                } else {
                    0.0
                }
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  requests   {} ({:.1}/s{vs_target})",
            Count(s.requests),
            s.requests_per_s
        );
        let _ = writeln!(
            out,
            "  latency    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
            Micros(s.p50_us),
            Micros(s.p90_us),
            Micros(s.p99_us),
            Micros(s.p999_us),
            Micros(s.max_us),
            Micros(s.mean_us as u64),
        );
        let _ = writeln!(
            out,
            "             {}",
            if r.mode == "closed" {
                "(closed model: timed from the actual send; stalls are hidden, see the open model)"
            } else {
                "(timed from each request's intended send time)"
            }
        );
        if r.mode != "closed" {
            let _ = writeln!(
                out,
                "  generator  behind schedule p99 {}  max {}; {} waited for a connection; {} unsent; {} priority",
                Micros(s.behind_schedule_p99_us),
                Micros(s.behind_schedule_us),
                Count(r.waited_for_connection),
                Count(s.unsent),
                if r.realtime { "real-time" } else { "normal" },
            );
        }
        let _ = writeln!(
            out,
            "  self-check generator CPU {:.1} us/request, {:.2} cores, busiest thread {:.0} % of a core",
            s.cpu_us_per_request,
            s.generator_cores,
            100.0 * r.busiest_thread_share,
        );
        for w in &s.warnings {
            let _ = writeln!(out, "  WARNING    {w}");
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {}", Count(*v)))
            .collect();
        let _ = writeln!(
            out,
            "  errors     {} ({:.3} %), shed {} (503 + Retry-After)   statuses {}",
            Count(s.errors),
            100.0 * s.error_rate,
            Count(s.shed),
            statuses.join(", ")
        );
        let table = |out: &mut String, title: &str, rows: &[Breakdown]| {
            if rows.len() < 2 && title == "caller" {
                return;
            }
            let _ = writeln!(
                out,
                "  {:<24} {:>11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
                title, "requests", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors"
            );
            for b in rows {
                let _ = writeln!(
                    out,
                    "  {:<24} {:>11} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
                    b.name,
                    Count(b.requests).to_string(),
                    b.requests_per_s,
                    Micros(b.p50_us).to_string(),
                    Micros(b.p90_us).to_string(),
                    Micros(b.p99_us).to_string(),
                    Micros(b.p999_us).to_string(),
                    Micros(b.max_us).to_string(),
                    Count(b.errors).to_string(),
                );
            }
        };
        table(&mut out, "operation", &self.operations);
        table(&mut out, "caller", &self.callers);
        out
    }
}
