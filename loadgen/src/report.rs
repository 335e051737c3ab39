//! Reports: the JSON document (`report.json`), the text summary and the
//! one-line JSON summary, and merging reports of several processes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runner::RunInfo;
use crate::stats::{from_base64, to_base64, Class, Hist, IntervalRecord, Stats};
use crate::units::{Count, Micros};
use crate::workload::Op;

/// Version of the report layout; `merge` refuses other versions.
pub const REPORT_FORMAT: u32 = 1;

/// A whole run's figures, as written to `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always `dancu-loadgen`.
    pub tool: String,
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// How the run was made.
    pub run: RunInfo,
    /// The headline figures.
    pub summary: Summary,
    /// Figures per operation.
    pub operations: Vec<Breakdown>,
    /// Figures per caller.
    pub callers: Vec<Breakdown>,
    /// Answers by HTTP status (`io` = no answer).
    pub statuses: BTreeMap<String, u64>,
    /// Latency distribution: `(percentile, µs)`.
    pub distribution: Vec<(f64, u64)>,
    /// Figures per interval (time series).
    pub intervals: Vec<IntervalOut>,
    /// The histograms themselves, so that reports can be merged.
    pub histograms: Histograms,
}

/// The headline figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Completed requests (with or without an answer).
    pub requests: u64,
    /// Completed requests per second of the run.
    pub requests_per_s: f64,
    /// Mean scheduled rate (open model); 0 for the closed model.
    pub target_rate: f64,
    /// Requests the schedule asked for (open model).
    pub scheduled: f64,
    /// Requests sent.
    pub sent: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Requests whose answer was not the expected one, or that got none.
    pub errors: u64,
    /// `errors / requests`.
    pub error_rate: f64,
    /// How late the generator sent at worst, µs (open model).
    pub behind_schedule_us: u64,
    /// 99th percentile of that lateness, µs.
    pub behind_schedule_p99_us: u64,
    /// Scheduled requests never sent (the run ended while they waited for
    /// a connection).
    pub unsent: u64,
    /// Seconds from start to the last answer.
    pub elapsed_s: f64,
    /// Requests the server shed on purpose (503 with `Retry-After`); not
    /// counted in `errors`.
    #[serde(default)]
    pub shed: u64,
    /// The generator's own CPU per completed request, µs (user + system).
    #[serde(default)]
    pub cpu_us_per_request: f64,
    /// The generator's CPU over the run, in cores.
    #[serde(default)]
    pub generator_cores: f64,
    /// Why these figures may describe the generator rather than the server
    /// (see [`generator_warnings`]); empty when the generator kept up.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Behind-schedule p99 above which a run's latency is suspect: the
/// generator sent late often enough to move the tail.
pub const BEHIND_P99_LIMIT_US: u64 = 1_000;

/// Share of a core one worker thread may use before the generator is
/// likely the limit: above this, its wakes queue behind its own work.
pub const THREAD_SHARE_LIMIT: f64 = 0.7;

/// The self-check: reasons to believe the generator, not the server, set
/// the figures of a run.
pub fn generator_warnings(run: &RunInfo, behind_p99_us: u64) -> Vec<String> {
    let mut out = Vec::new();
    if run.mode == "open" && behind_p99_us > BEHIND_P99_LIMIT_US {
        out.push(format!(
            "generator behind schedule p99 {} > {}: latency includes the generator's own delays{}",
            Micros(behind_p99_us),
            Micros(BEHIND_P99_LIMIT_US),
            if run.realtime {
                ""
            } else {
                " (worker threads at normal priority: run as root or with CAP_SYS_NICE)"
            }
        ));
    }
    if run.busiest_thread_share > THREAD_SHARE_LIMIT {
        out.push(format!(
            "a generator thread used {:.0} % of a core (> {:.0} %): add --threads or generator machines",
            100.0 * run.busiest_thread_share,
            100.0 * THREAD_SHARE_LIMIT
        ));
    }
    out
}

/// Figures for one operation or one caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// The operation or caller.
    pub name: String,
    /// Completed requests.
    pub requests: u64,
    /// Per second of the run.
    pub requests_per_s: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Unexpected answers.
    pub errors: u64,
    /// Answers by status class.
    pub classes: BTreeMap<String, u64>,
}

/// One interval of the time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalOut {
    /// Interval index (start = index × interval_s).
    pub index: u64,
    /// Start of the interval, seconds from the run's start.
    pub t_s: f64,
    /// Scheduled requests/s over the interval (open model).
    pub target_rate: f64,
    /// Sent in the interval.
    pub sent: u64,
    /// Completed in the interval.
    pub completed: u64,
    /// Unexpected answers in the interval.
    pub errors: u64,
    /// Completions by status class.
    pub classes: BTreeMap<String, u64>,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Completions per operation.
    pub ops: BTreeMap<String, u64>,
    /// The interval's latency histogram (all operations, 2 significant
    /// digits; base64 of V2+DEFLATE).
    pub histogram: String,
}

/// Encoded histograms (base64 of HdrHistogram V2+DEFLATE), all in µs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Histograms {
    /// By caller, operation and status class.
    pub series: Vec<SeriesOut>,
    /// Unexpected answers by caller and operation.
    pub errors: Vec<ErrorCount>,
    /// The generator's lateness.
    pub behind_schedule: String,
}

/// One caller × operation × status class histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesOut {
    /// Caller.
    pub caller: String,
    /// Operation.
    pub op: Op,
    /// Status class (`2xx`, `4xx`, `io`, ...).
    pub class: String,
    /// Requests in it.
    pub count: u64,
    /// The histogram.
    pub histogram: String,
}

/// Unexpected answers of one caller and operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// Caller.
    pub caller: String,
    /// Operation.
    pub op: Op,
    /// How many.
    pub count: u64,
}

fn pct(h: &Hist, p: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(p / 100.0)
    }
}

fn classes_map(counts: impl IntoIterator<Item = (Class, u64)>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (c, n) in counts {
        if n > 0 {
            *m.entry(c.as_str().to_string()).or_insert(0) += n;
        }
    }
    m
}

/// Percentiles for a distribution chart: 0, then 1 − 10^(−x) for x up to 6.
fn spectrum(h: &Hist) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = vec![(0.0, h.min())];
    let mut x = 0.1;
    while x <= 6.0 + 1e-9 {
        let p = 100.0 * (1.0 - 10f64.powf(-x));
        out.push((p, h.value_at_quantile(p / 100.0)));
        x += 0.1;
    }
    out.push((100.0, h.max()));
    out
}

impl Report {
    /// Builds the report of a run.
    pub fn build(stats: &Stats, run: RunInfo) -> Result<Report> {
        let elapsed = run.elapsed_s.max(1e-9);
        let all = stats.latency(|_, _, _| true);
        let requests = all.len();
        let errors = stats.error_count(|_, _| true);
        let summary = Summary {
            requests,
            requests_per_s: requests as f64 / elapsed,
            target_rate: if run.duration_s > 0.0 {
                run.scheduled / run.duration_s
            } else {
                0.0
            },
            scheduled: run.scheduled,
            sent: run.sent,
            p50_us: pct(&all, 50.0),
            p90_us: pct(&all, 90.0),
            p99_us: pct(&all, 99.0),
            p999_us: pct(&all, 99.9),
            max_us: all.max(),
            mean_us: if all.is_empty() { 0.0 } else { all.mean() },
            errors,
            error_rate: if requests > 0 {
                errors as f64 / requests as f64
            } else {
                0.0
            },
            behind_schedule_us: stats.behind.max(),
            behind_schedule_p99_us: pct(&stats.behind, 99.0),
            unsent: run.unsent,
            elapsed_s: run.elapsed_s,
            shed: stats.shed,
            cpu_us_per_request: if requests > 0 {
                run.cpu_s * 1e6 / requests as f64
            } else {
                0.0
            },
            generator_cores: run.cpu_s / elapsed,
            warnings: generator_warnings(&run, pct(&stats.behind, 99.0)),
        };
        let breakdown =
            |name: String, h: &Hist, errors: u64, classes: BTreeMap<String, u64>| Breakdown {
                name,
                requests: h.len(),
                requests_per_s: h.len() as f64 / elapsed,
                p50_us: pct(h, 50.0),
                p90_us: pct(h, 90.0),
                p99_us: pct(h, 99.0),
                p999_us: pct(h, 99.9),
                max_us: h.max(),
                errors,
                classes,
            };
        let operations = stats
            .ops()
            .into_iter()
            .map(|op| {
                let h = stats.latency(|_, o, _| o == op);
                let classes =
                    classes_map(Class::ALL.map(|c| (c, stats.count(|_, o, k| o == op && k == c))));
                breakdown(
                    op.as_str().to_string(),
                    &h,
                    stats.error_count(|_, o| o == op),
                    classes,
                )
            })
            .collect();
        let callers = stats
            .callers()
            .into_iter()
            .map(|name| {
                let h = stats.latency(|c, _, _| c == name);
                let classes = classes_map(
                    Class::ALL.map(|k| (k, stats.count(|c, _, kk| c == name && kk == k))),
                );
                let errors = stats.error_count(|c, _| c == name);
                breakdown(name, &h, errors, classes)
            })
            .collect();
        let statuses = stats
            .statuses
            .iter()
            .map(|(&s, &n)| {
                (
                    if s == 0 {
                        "io".to_string()
                    } else {
                        s.to_string()
                    },
                    n,
                )
            })
            .collect();
        let target = crate::rate::RateCurve::from_report_points(&run.target_curve);
        let mut intervals = Vec::with_capacity(stats.intervals.len());
        for (&index, rec) in &stats.intervals {
            intervals.push(interval_out(
                stats,
                index,
                rec,
                run.interval_s,
                target.as_ref(),
            )?);
        }
        let histograms = Histograms {
            series: stats
                .series
                .iter()
                .map(|((caller, op, class), h)| SeriesOut {
                    caller: caller.clone(),
                    op: *op,
                    class: class.as_str().to_string(),
                    count: h.len(),
                    histogram: to_base64(h),
                })
                .collect(),
            errors: stats
                .errors
                .iter()
                .map(|((caller, op), &count)| ErrorCount {
                    caller: caller.clone(),
                    op: *op,
                    count,
                })
                .collect(),
            behind_schedule: to_base64(&stats.behind),
        };
        Ok(Report {
            tool: "dancu-loadgen".into(),
            format: REPORT_FORMAT,
            run,
            summary,
            operations,
            callers,
            statuses,
            distribution: spectrum(&all),
            intervals,
            histograms,
        })
    }

    /// Rebuilds the recorded figures from the encoded histograms.
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        for s in &self.histograms.series {
            let class = Class::parse(&s.class).ok_or_else(|| Error::Histogram {
                name: format!("{}/{}/{}", s.caller, s.op, s.class),
                reason: "unknown status class".into(),
            })?;
            let h = from_base64(&s.histogram, &format!("{}/{}/{}", s.caller, s.op, s.class))?;
            stats.series.insert((s.caller.clone(), s.op, class), h);
        }
        for e in &self.histograms.errors {
            *stats.errors.entry((e.caller.clone(), e.op)).or_insert(0) += e.count;
        }
        for (k, &n) in &self.statuses {
            let code = if k == "io" { 0 } else { k.parse().unwrap_or(0) };
            *stats.statuses.entry(code).or_insert(0) += n;
        }
        stats.behind = from_base64(&self.histograms.behind_schedule, "behind_schedule")?;
        stats.shed = self.summary.shed;
        for i in &self.intervals {
            let mut rec = IntervalRecord {
                sent: i.sent,
                completed: i.completed,
                errors: i.errors,
                ..IntervalRecord::default()
            };
            for (k, n) in &i.classes {
                if let Some(c) = Class::parse(k) {
                    rec.classes[Class::ALL.iter().position(|x| *x == c).unwrap_or(0)] += n;
                }
            }
            for (op, &n) in &i.ops {
                rec.ops.insert(Op::parse(op)?, n);
            }
            if !i.histogram.is_empty() {
                use base64::Engine as _;
                rec.latency = base64::engine::general_purpose::STANDARD
                    .decode(&i.histogram)
                    .map_err(|e| Error::Histogram {
                        name: format!("interval {}", i.index),
                        reason: e.to_string(),
                    })?;
            }
            stats.intervals.insert(i.index, rec);
        }
        Ok(stats)
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let report: Report = serde_json::from_str(&text).map_err(|source| Error::ReportFormat {
            path: path.to_path_buf(),
            source,
        })?;
        if report.format != REPORT_FORMAT {
            return Err(Error::Merge {
                reason: format!(
                    "{} has report format {}, this build reads {REPORT_FORMAT}",
                    path.display(),
                    report.format
                ),
            });
        }
        Ok(report)
    }

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
            "dancu-loadgen: {} model{}, {:.1}s, {} target(s), {} thread(s), {}{} connections (peak {}, {} opened)",
            r.mode,
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

    /// Writes `report.json` and `report.html` into `dir` (created if needed).
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json_path = dir.join("report.json");
        let json = serde_json::to_string_pretty(self).map_err(|source| Error::ReportFormat {
            path: json_path.clone(),
            source,
        })?;
        std::fs::write(&json_path, json).map_err(|e| Error::io(&json_path, e))?;
        let html_path = dir.join("report.html");
        std::fs::write(&html_path, crate::html::render(self))
            .map_err(|e| Error::io(&html_path, e))?;
        Ok(())
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn interval_out(
    stats: &Stats,
    index: u64,
    rec: &IntervalRecord,
    interval_s: f64,
    target: Option<&crate::rate::RateCurve>,
) -> Result<IntervalOut> {
    let h = stats.interval_latency(rec)?;
    let t = index as f64 * interval_s;
    let target_rate = target.map_or(0.0, |c| {
        (c.expected(t + interval_s) - c.expected(t)) / interval_s
    });
    Ok(IntervalOut {
        index,
        t_s: t,
        target_rate,
        sent: rec.sent,
        completed: rec.completed,
        errors: rec.errors,
        classes: classes_map(Class::ALL.into_iter().zip(rec.classes)),
        p50_us: pct(&h, 50.0),
        p90_us: pct(&h, 90.0),
        p99_us: pct(&h, 99.0),
        p999_us: pct(&h, 99.9),
        max_us: h.max(),
        ops: rec
            .ops
            .iter()
            .map(|(op, &n)| (op.as_str().to_string(), n))
            .collect(),
        histogram: {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&rec.latency)
        },
    })
}
