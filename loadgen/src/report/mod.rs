//! Reports: the JSON document (`report.json`), the text summary and the
//! one-line JSON summary, and merging reports of several processes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runner::RunInfo;
use crate::stats::{from_base64, to_base64, Class, Hist, IntervalRecord, Stats};
use crate::units::Micros;
use crate::workload::Op;

mod merge;
mod render;

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
                " (worker threads at normal priority: see --realtime)"
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
