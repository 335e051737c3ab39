//! Latency over a window of a run, from its `report.json`: the intervals
//! that start inside `[FROM, TO)` (fractions of the run, or seconds with an
//! `s` suffix) have their histograms merged, and the percentiles printed.
//! For the burst profile, `0.45 0.55` is the spike.
//!
//! ```text
//! cargo run --release -p dancu-loadgen --example window -- out/report.json 0.45 0.55
//! ```

use std::process::ExitCode;

use base64::Engine as _;
use dancu_loadgen::stats::{decode_interval, new_interval_hist};
use dancu_loadgen::Report;

fn bound(arg: &str, duration_s: f64) -> Option<f64> {
    match arg.strip_suffix('s') {
        Some(secs) => secs.parse().ok(),
        None => arg.parse::<f64>().ok().map(|f| f * duration_s),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, from, to] = args.as_slice() else {
        eprintln!("usage: window REPORT.json FROM TO   (fractions of the run, or 12.5s)");
        return ExitCode::from(2);
    };
    let report = match Report::read(path.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let duration_s = report.run.duration_s;
    let (Some(from), Some(to)) = (bound(from, duration_s), bound(to, duration_s)) else {
        eprintln!("FROM and TO are fractions (0.45) or seconds (12.5s)");
        return ExitCode::from(2);
    };
    let mut merged = new_interval_hist();
    let (mut sent, mut errors, mut scheduled) = (0u64, 0u64, 0.0);
    for i in report
        .intervals
        .iter()
        .filter(|i| i.t_s >= from && i.t_s < to)
    {
        sent += i.sent;
        errors += i.errors;
        scheduled += i.target_rate * report.run.interval_s;
        if i.histogram.is_empty() {
            continue;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&i.histogram)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode_interval(&bytes, "interval").map_err(|e| e.to_string()));
        match decoded.map(|h| merged.add(&h).map_err(|e| format!("{e:?}"))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => {
                eprintln!("interval {}: {e}", i.index);
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "window {from:.1}-{to:.1} s: scheduled {scheduled:.0}, sent {sent}, completed {}, errors {errors}; \
         p50 {} us  p99 {} us  p99.9 {} us  max {} us",
        merged.len(),
        merged.value_at_quantile(0.5),
        merged.value_at_quantile(0.99),
        merged.value_at_quantile(0.999),
        merged.max(),
    );
    ExitCode::SUCCESS
}
