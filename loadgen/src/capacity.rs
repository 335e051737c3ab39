//! Capacity search: the highest constant rate at which a service still meets
//! a latency objective, and how many replicas a national peak needs.
//!
//! The search runs open-model steps of a fixed length. It doubles the rate
//! until a step breaks the objective, then bisects between the last rate
//! that held and the first that broke. A step holds when the chosen
//! percentile (timed from intended send times) is within the limit, the
//! share of errors is within bounds, and every scheduled request was sent.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys::KeyPool;
use crate::rate::RateCurve;
use crate::report::Report;
use crate::runner::{run, Model, RunConfig};
use crate::units::{Count, Micros, Slo};
use crate::workload::Workload;

/// How to search.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    /// The latency objective.
    pub slo: Slo,
    /// Largest acceptable share of errors (0.001 = 0.1 %).
    pub max_errors: f64,
    /// First rate tried, requests/s.
    pub start_rate: f64,
    /// Length of each step.
    pub step_duration: Duration,
    /// Bisection steps after the first failure.
    pub refine: u32,
    /// Hard cap on steps (the search is bounded whatever happens).
    pub max_steps: u32,
    /// A national peak to size for, requests/s.
    pub peak: Option<f64>,
    /// Share of each replica's capacity kept free (0.3 = 30 %).
    pub headroom: f64,
}

impl CapacityConfig {
    /// Defaults: start at 500/s, 10 s steps, 4 refinements, 20 steps at most,
    /// 30 % headroom.
    pub fn new(slo: Slo, max_errors: f64) -> CapacityConfig {
        CapacityConfig {
            slo,
            max_errors,
            start_rate: 500.0,
            step_duration: Duration::from_secs(10),
            refine: 4,
            max_steps: 20,
            peak: None,
            headroom: 0.3,
        }
    }
}

/// One step of the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Scheduled rate, requests/s.
    pub rate: f64,
    /// Completed requests/s.
    pub achieved: f64,
    /// The objective's percentile, µs.
    pub percentile_us: u64,
    /// p99, µs.
    pub p99_us: u64,
    /// Errors (unexpected answers and unsent requests) over scheduled.
    pub error_rate: f64,
    /// Shed answers (503 with `Retry-After`) over scheduled.
    pub shed_rate: f64,
    /// The generator's lateness, p99, µs.
    pub behind_p99_us: u64,
    /// The generator's CPU per request, µs.
    pub cpu_us_per_request: f64,
    /// The run's self-check warnings (the generator may be the limit).
    pub warnings: Vec<String>,
    /// Whether the step met the objective.
    pub held: bool,
    /// Why it did not.
    pub reason: String,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    /// The objective, as text.
    pub slo: String,
    /// The error bound.
    pub max_errors: f64,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// Highest rate that held, requests/s.
    pub capacity: Option<f64>,
    /// The national peak sized for.
    pub peak: Option<f64>,
    /// Headroom kept on each replica.
    pub headroom: f64,
    /// Replicas needed for the peak at that headroom.
    pub replicas: Option<u64>,
}

/// Judges one step.
pub fn judge(report: &Report, rate: f64, cfg: &CapacityConfig) -> Step {
    let s = &report.summary;
    let all = report.stats().ok().map(|st| st.latency(|_, _, _| true));
    let percentile_us = all
        .as_ref()
        .filter(|h| !h.is_empty())
        .map_or(0, |h| h.value_at_quantile(cfg.slo.percentile / 100.0));
    let scheduled = s.scheduled.max(1.0);
    let error_rate = (s.errors + s.unsent) as f64 / scheduled;
    let shed_rate = s.shed as f64 / scheduled;
    let mut reasons = Vec::new();
    if percentile_us > cfg.slo.limit_us {
        reasons.push(format!(
            "p{} {} > {}",
            cfg.slo.percentile,
            Micros(percentile_us),
            Micros(cfg.slo.limit_us)
        ));
    }
    if error_rate > cfg.max_errors {
        reasons.push(format!(
            "errors {:.3} % > {:.3} %",
            100.0 * error_rate,
            100.0 * cfg.max_errors
        ));
    }
    if shed_rate > cfg.max_errors {
        // Shedding is the server's overload protection working: not an
        // error, but a rate it sheds at is beyond its capacity.
        reasons.push(format!(
            "shed {:.3} % > {:.3} %",
            100.0 * shed_rate,
            100.0 * cfg.max_errors
        ));
    }
    if s.unsent > 0 {
        // Requests still waiting for a connection when the step ended: the
        // connection cap was reached because answers were too slow.
        reasons.push(format!(
            "{} requests never sent (connection cap reached)",
            s.unsent
        ));
    }
    if s.behind_schedule_p99_us > cfg.slo.limit_us {
        reasons.push(format!(
            "the generator itself fell behind (p99 {}): result limited by the load generator",
            Micros(s.behind_schedule_p99_us)
        ));
    }
    Step {
        rate,
        achieved: s.requests_per_s,
        percentile_us,
        p99_us: s.p99_us,
        error_rate,
        shed_rate,
        behind_p99_us: s.behind_schedule_p99_us,
        cpu_us_per_request: s.cpu_us_per_request,
        warnings: s.warnings.clone(),
        held: reasons.is_empty(),
        reason: reasons.join("; "),
    }
}

/// The seed of search step `index`: the base seed for the first step (a
/// one-step search draws what a plain run would), a different one for
/// every later step.
fn step_seed(base: u64, index: u32) -> u64 {
    base.wrapping_add(u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Searches for the capacity. `base` gives targets, threads, connection
/// cap and so on; its model and duration are replaced by each step's.
/// `on_step` sees each step as it ends.
pub fn find_capacity(
    base: &RunConfig,
    workload: &Workload,
    keys: Arc<KeyPool>,
    cfg: &CapacityConfig,
    mut on_step: impl FnMut(&Step),
) -> Result<Capacity> {
    if !(cfg.start_rate.is_finite() && cfg.start_rate > 0.0) {
        return Err(Error::invalid(
            "rate",
            &cfg.start_rate.to_string(),
            "the start rate must be positive",
        ));
    }
    if !(0.0..1.0).contains(&cfg.headroom) {
        return Err(Error::invalid(
            "headroom",
            &cfg.headroom.to_string(),
            "must lie in [0, 1)",
        ));
    }
    let (poisson, max_connections, connect_rate) = match &base.model {
        Model::Open {
            poisson,
            max_connections,
            connect_rate,
            ..
        } => (*poisson, *max_connections, *connect_rate),
        Model::Closed { connections } => (
            false,
            (*connections).max(1000),
            Some(crate::runner::opening::DEFAULT_RATE),
        ),
    };
    let mut steps = Vec::new();
    let mut held: Option<f64> = None;
    let mut broke: Option<f64> = None;
    let mut refined = 0;
    let mut rate = cfg.start_rate;
    for step_index in 0..cfg.max_steps {
        let mut config = base.clone();
        // A new seed per step: with one seed every step would draw the
        // same keys in the same order, so the deliberate mismatches of a
        // verify mix would meet the same subjects again within minutes and
        // the server's mismatch throttle would answer them 429, breaking
        // the later steps on errors the workload did not ask for.
        config.seed = step_seed(base.seed, step_index);
        config.duration = cfg.step_duration;
        config.max_requests = None;
        config.model = Model::Open {
            curve: RateCurve::constant(rate, cfg.step_duration),
            poisson,
            max_connections,
            connect_rate,
        };
        let (stats, info) = run(&config, workload, Arc::clone(&keys))?;
        let report = Report::build(&stats, info)?;
        let step = judge(&report, rate, cfg);
        on_step(&step);
        if step.held {
            held = Some(held.map_or(rate, |h: f64| h.max(rate)));
        } else {
            broke = Some(broke.map_or(rate, |b: f64| b.min(rate)));
        }
        steps.push(step);
        rate = match (held, broke) {
            (Some(h), None) => h * 2.0,
            (None, Some(b)) => {
                // Four halvings below the start without a step that held:
                // the objective is out of reach for this workload.
                if b <= 1.0 || b < cfg.start_rate / 16.0 * 1.01 {
                    break;
                }
                b / 2.0
            }
            (Some(h), Some(b)) => {
                if refined >= cfg.refine || (b - h) / h < 0.02 {
                    break;
                }
                refined += 1;
                (h + b) / 2.0
            }
            (None, None) => break,
        };
    }
    let replicas = match (cfg.peak, held) {
        (Some(peak), Some(c)) if c > 0.0 => {
            Some((peak / (c * (1.0 - cfg.headroom))).ceil().max(1.0) as u64)
        }
        _ => None,
    };
    Ok(Capacity {
        slo: cfg.slo.to_string(),
        max_errors: cfg.max_errors,
        steps,
        capacity: held,
        peak: cfg.peak,
        headroom: cfg.headroom,
        replicas,
    })
}

impl Capacity {
    /// The human-readable outcome.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "capacity search: {} with at most {:.3} % errors",
            self.slo,
            100.0 * self.max_errors
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "  {:>10.0}/s -> {:>10.1}/s  p(slo) {:>9}  p99 {:>9}  errors {:.3} %  generator {:.1} us/req{}  {}",
                s.rate,
                s.achieved,
                Micros(s.percentile_us).to_string(),
                Micros(s.p99_us).to_string(),
                100.0 * s.error_rate,
                s.cpu_us_per_request,
                if s.warnings.is_empty() { "" } else { " (GENERATOR-LIMITED?)" },
                if s.held {
                    "held".to_string()
                } else {
                    format!("BROKE: {}", s.reason)
                }
            );
        }
        match self.capacity {
            Some(c) => {
                let _ = writeln!(out, "highest rate that held: {}/s", Count(c as u64));
            }
            None => {
                let _ = writeln!(out, "no step held the objective");
            }
        }
        if let (Some(peak), Some(c), Some(n)) = (self.peak, self.capacity, self.replicas) {
            let _ = writeln!(
                out,
                "a peak of {}/s needs {n} replica(s), each run at ≤ {:.0} % of its capacity ({}/s, {:.0} % headroom); \
                 add one more to ride out the loss of a replica ({} in all)",
                Count(peak as u64),
                100.0 * (1.0 - self.headroom),
                Count((c * (1.0 - self.headroom)) as u64),
                100.0 * self.headroom,
                n + 1
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::step_seed;

    #[test]
    fn the_first_step_keeps_the_seed_and_every_later_step_draws_anew() {
        assert_eq!(step_seed(42, 0), 42);
        let seeds: std::collections::HashSet<u64> = (0..64).map(|i| step_seed(42, i)).collect();
        assert_eq!(seeds.len(), 64);
    }
}
