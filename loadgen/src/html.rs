//! A self-contained HTML report: inline CSS and SVG charts, no script and
//! no network, so it opens anywhere and can be mailed around.

use std::fmt::Write as _;

use crate::report::{Breakdown, Report};
use crate::units::{Count, Micros};

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 42.0;

const COLORS: [&str; 7] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
];

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Linear,
    /// Log scale; values are latencies in µs.
    LogMicros,
    /// x = −log10(1 − p/100) for percentiles p.
    Percentile,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let nice = if n < 1.5 {
        1.0
    } else if n < 3.0 {
        2.0
    } else if n < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn chart(title: &str, x_label: &str, x_axis: Axis, y_axis: Axis, series: &[Series<'_>]) -> String {
    let mut svg = String::new();
    let pts = || series.iter().flat_map(|s| s.points.iter().copied());
    if pts().next().is_none() {
        let _ = write!(svg, "<p class=\"empty\">{}: no data</p>", esc(title));
        return svg;
    }
    let tx = |x: f64| match x_axis {
        Axis::Percentile => -(1.0 - (x / 100.0).min(0.999_999_9)).log10(),
        _ => x,
    };
    let ty = |y: f64| match y_axis {
        Axis::LogMicros => y.max(1.0).log10(),
        _ => y,
    };
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for (x, y) in pts() {
        x0 = x0.min(tx(x));
        x1 = x1.max(tx(x));
        y0 = y0.min(ty(y));
        y1 = y1.max(ty(y));
    }
    if y_axis == Axis::Linear {
        y0 = 0.0;
        y1 = (y1 * 1.08).max(1.0);
    } else {
        y0 = y0.floor();
        y1 = y1.ceil().max(y0 + 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pw = WIDTH - LEFT - RIGHT;
    let ph = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (tx(x) - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (ty(y) - y0) / (y1 - y0) * ph;
    let _ = write!(
        svg,
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"{LEFT}\" y=\"20\" class=\"title\">{t}</text>\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" class=\"plot\"/>",
        t = esc(title)
    );
    // Y grid and labels.
    match y_axis {
        Axis::Linear => {
            let step = nice_step(y1 - y0, 5.0);
            let mut v = 0.0;
            while v <= y1 + 1e-9 {
                let y = py(v);
                let _ = write!(
                    svg,
                    "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
                     <text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
                    LEFT + pw,
                    LEFT - 6.0,
                    y + 4.0,
                    fmt_num(v)
                );
                v += step;
            }
        }
        _ => {
            let mut e = y0;
            while e <= y1 + 1e-9 {
                let v = 10f64.powf(e);
                let y = py(v);
                let _ = write!(
                    svg,
                    "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
                     <text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
                    LEFT + pw,
                    LEFT - 6.0,
                    y + 4.0,
                    Micros(v as u64)
                );
                e += 1.0;
            }
        }
    }
    // X grid and labels.
    match x_axis {
        Axis::Percentile => {
            let mut e = 0.0f64;
            while e <= x1 + 1e-9 {
                let x = LEFT + (e - x0) / (x1 - x0) * pw;
                let label = if e == 0.0 {
                    "0%".to_string()
                } else {
                    format!("{}%", 100.0 - 100.0 * 10f64.powf(-e))
                };
                let _ = write!(
                    svg,
                    "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" class=\"grid\"/>\
                     <text x=\"{x:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{label}</text>",
                    TOP + ph,
                    TOP + ph + 16.0
                );
                e += 1.0;
            }
        }
        _ => {
            let step = nice_step(x1 - x0, 8.0);
            let mut v = (x0 / step).ceil() * step;
            while v <= x1 + 1e-9 {
                let x = px(v);
                let _ = write!(
                    svg,
                    "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" class=\"grid\"/>\
                     <text x=\"{x:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
                    TOP + ph,
                    TOP + ph + 16.0,
                    fmt_num(v)
                );
                v += step;
            }
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"middle\">{}</text>",
        LEFT + pw / 2.0,
        HEIGHT - 6.0,
        esc(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let mut d = String::with_capacity(s.points.len() * 16);
        for (j, &(x, y)) in s.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if j == 0 { "M" } else { " L" },
                px(x),
                py(y)
            );
        }
        let _ = write!(
            svg,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"{}/>",
            s.color,
            if s.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            }
        );
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let lx = LEFT + pw + 12.0;
        let _ = write!(
            svg,
            "<line x1=\"{lx}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"2.5\"{}/>\
             <text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
            lx + 18.0,
            s.color,
            if s.dashed { " stroke-dasharray=\"5 3\"" } else { "" },
            lx + 24.0,
            ly + 4.0,
            esc(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(title: &str, rows: &[Breakdown]) -> String {
    let mut t = String::new();
    let _ = write!(
        t,
        "<table><tr><th>{}</th><th>requests</th><th>req/s</th><th>p50</th><th>p90</th><th>p99</th>\
         <th>p99.9</th><th>max</th><th>errors</th><th>by class</th></tr>",
        esc(title)
    );
    for b in rows {
        let classes: Vec<String> = b
            .classes
            .iter()
            .map(|(k, v)| format!("{k}: {}", Count(*v)))
            .collect();
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&b.name),
            Count(b.requests),
            b.requests_per_s,
            Micros(b.p50_us),
            Micros(b.p90_us),
            Micros(b.p99_us),
            Micros(b.p999_us),
            Micros(b.max_us),
            Count(b.errors),
            esc(&classes.join(", "))
        );
    }
    t.push_str("</table>");
    t
}

/// Renders a report as one self-contained HTML page.
pub fn render(r: &Report) -> String {
    let s = &r.summary;
    let iv = r.run.interval_s.max(1e-9);
    let mid = |t: f64| t + iv / 2.0;
    let mut throughput = vec![
        Series {
            name: "completed/s",
            color: COLORS[0],
            dashed: false,
            points: r
                .intervals
                .iter()
                .map(|i| (mid(i.t_s), i.completed as f64 / iv))
                .collect(),
        },
        Series {
            name: "sent/s",
            color: COLORS[2],
            dashed: false,
            points: r
                .intervals
                .iter()
                .map(|i| (mid(i.t_s), i.sent as f64 / iv))
                .collect(),
        },
    ];
    if !r.run.target_curve.is_empty() {
        throughput.push(Series {
            name: "target/s",
            color: COLORS[1],
            dashed: true,
            points: r
                .intervals
                .iter()
                .map(|i| (mid(i.t_s), i.target_rate))
                .collect(),
        });
    }
    let pick = |f: fn(&crate::report::IntervalOut) -> u64| -> Vec<(f64, f64)> {
        r.intervals
            .iter()
            .filter(|i| i.completed > 0)
            .map(|i| (mid(i.t_s), f(i) as f64))
            .collect()
    };
    let latency = [
        Series {
            name: "p50",
            color: COLORS[0],
            dashed: false,
            points: pick(|i| i.p50_us),
        },
        Series {
            name: "p90",
            color: COLORS[2],
            dashed: false,
            points: pick(|i| i.p90_us),
        },
        Series {
            name: "p99",
            color: COLORS[3],
            dashed: false,
            points: pick(|i| i.p99_us),
        },
        Series {
            name: "p99.9",
            color: COLORS[4],
            dashed: false,
            points: pick(|i| i.p999_us),
        },
        Series {
            name: "max",
            color: COLORS[1],
            dashed: true,
            points: pick(|i| i.max_us),
        },
    ];
    let distribution = [Series {
        name: "all requests",
        color: COLORS[0],
        dashed: false,
        points: r.distribution.iter().map(|&(p, v)| (p, v as f64)).collect(),
    }];
    let class_series = |name: &'static str, color: &'static str| Series {
        name,
        color,
        dashed: false,
        points: r
            .intervals
            .iter()
            .map(|i| (mid(i.t_s), *i.classes.get(name).unwrap_or(&0) as f64 / iv))
            .collect(),
    };
    let errors = [
        Series {
            name: "unexpected/s",
            color: COLORS[1],
            dashed: false,
            points: r
                .intervals
                .iter()
                .map(|i| (mid(i.t_s), i.errors as f64 / iv))
                .collect(),
        },
        class_series("4xx", COLORS[3]),
        class_series("5xx", COLORS[4]),
        class_series("io", COLORS[5]),
    ];
    let statuses: Vec<String> = r
        .statuses
        .iter()
        .map(|(k, v)| format!("<tr><td>{}</td><td>{}</td></tr>", esc(k), Count(*v)))
        .collect();
    let mut h = String::new();
    let title = if r.run.label.is_empty() {
        "load run".to_string()
    } else {
        r.run.label.clone()
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>dancu-loadgen: {title}</title><style>\
body{{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}}\
h1{{font-size:22px}}h2{{font-size:17px;margin-top:28px}}\
table{{border-collapse:collapse;margin:8px 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
td:first-child,th:first-child{{text-align:left}}th{{background:#f3f3f3}}\
svg{{display:block;margin:8px 0}}.plot{{fill:#fcfcfc;stroke:#999}}.grid{{stroke:#e4e4e4}}\
.tick,.legend{{font-size:11px;fill:#444}}.axis{{font-size:12px;fill:#333}}.title{{font-size:14px;font-weight:600}}\
.note{{color:#555}}.empty{{color:#888}}\
</style></head><body>\
<h1>dancu-loadgen report: {title}</h1>\
<p class=\"note\">{mode} model, {threads} thread(s), {conns} connection(s) {capnote} (peak {peak}), \
{procs} process(es); targets: {targets}. Interval {iv} s. Latency is timed from each request's \
{timed} send time.</p>\
<table>\
<tr><th>requests</th><td>{req}</td></tr><tr><th>requests/s</th><td>{rps:.1}</td></tr>\
<tr><th>target rate</th><td>{target}</td></tr>\
<tr><th>p50 / p90 / p99 / p99.9 / max</th><td>{p50} / {p90} / {p99} / {p999} / {max}</td></tr>\
<tr><th>errors</th><td>{err} ({erate:.3} %)</td></tr>\
<tr><th>generator behind schedule (p99 / max)</th><td>{bp99} / {bmax}</td></tr>\
<tr><th>unsent at the end</th><td>{unsent}</td></tr></table>",
        title = esc(&title),
        mode = esc(&r.run.mode),
        threads = r.run.threads,
        conns = r.run.connections,
        capnote = if r.run.mode == "closed" { "" } else { "at most" },
        peak = r.run.peak_connections,
        procs = r.run.processes,
        targets = esc(&r.run.targets.join(", ")),
        iv = r.run.interval_s,
        timed = if r.run.mode == "closed" { "actual (closed model)" } else { "intended" },
        req = Count(s.requests),
        rps = s.requests_per_s,
        target = if s.target_rate > 0.0 { format!("{:.1}/s", s.target_rate) } else { "— (closed model)".into() },
        p50 = Micros(s.p50_us),
        p90 = Micros(s.p90_us),
        p99 = Micros(s.p99_us),
        p999 = Micros(s.p999_us),
        max = Micros(s.max_us),
        err = Count(s.errors),
        erate = 100.0 * s.error_rate,
        bp99 = Micros(s.behind_schedule_p99_us),
        bmax = Micros(s.behind_schedule_us),
        unsent = Count(s.unsent),
    );
    h.push_str("<h2>Throughput against the target curve</h2>");
    h.push_str(&chart(
        "requests per second",
        "seconds since start",
        Axis::Linear,
        Axis::Linear,
        &throughput,
    ));
    h.push_str("<h2>Latency over time</h2>");
    h.push_str(&chart(
        "latency percentiles per interval (log scale)",
        "seconds since start",
        Axis::Linear,
        Axis::LogMicros,
        &latency,
    ));
    h.push_str("<h2>Latency distribution</h2>");
    h.push_str(&chart(
        "latency by percentile (log scale)",
        "percentile",
        Axis::Percentile,
        Axis::LogMicros,
        &distribution,
    ));
    h.push_str("<h2>Errors</h2>");
    h.push_str(&chart(
        "unexpected answers and non-2xx per second",
        "seconds since start",
        Axis::Linear,
        Axis::Linear,
        &errors,
    ));
    let _ = write!(
        h,
        "<table><tr><th>status</th><th>answers</th></tr>{}</table>",
        statuses.join("")
    );
    h.push_str("<h2>By operation</h2>");
    h.push_str(&table("operation", &r.operations));
    h.push_str("<h2>By caller</h2>");
    h.push_str(&table("caller", &r.callers));
    h.push_str("<p class=\"note\">Made by dancu-loadgen. The histograms behind every figure are in report.json \
(HdrHistogram V2+DEFLATE, base64) and can be merged with <code>dancu-loadgen merge</code>.</p></body></html>\n");
    h
}
