//! Rate curves: how many requests per second the open model sends, and when.
//!
//! Every curve is piecewise linear in time over `[0, duration]` (a step is two
//! points at the same instant), so the expected number of requests sent by
//! time `t`, `N(t)`, is piecewise quadratic and can be inverted exactly. The
//! k-th request is due at `N⁻¹(k)`; with Poisson gaps, at `N⁻¹(E₁ + … + E_k)`
//! with unit exponential `E_i` (a non-homogeneous Poisson process by time
//! rescaling). Either way the schedule is fixed before the run and never
//! depends on how fast the server answers: that is what makes the open
//! model free of coordinated omission.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// A request rate (requests/s) as a function of time since the start of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    /// `(t seconds, rate)`, `t` non-decreasing, first `t` = 0, last = duration.
    points: Vec<(f64, f64)>,
    /// `cum[i]` = expected requests in `[0, points[i].0]`.
    cum: Vec<f64>,
}

impl RateCurve {
    fn from_points(points: Vec<(f64, f64)>) -> RateCurve {
        let mut cum = Vec::with_capacity(points.len());
        let mut total = 0.0;
        cum.push(0.0);
        for w in points.windows(2) {
            let (t0, r0) = w[0];
            let (t1, r1) = w[1];
            total += 0.5 * (r0 + r1) * (t1 - t0);
            cum.push(total);
        }
        RateCurve { points, cum }
    }

    /// Rebuilds a curve from its points (as stored in a report); `None`
    /// when there are fewer than two.
    pub fn from_report_points(points: &[(f64, f64)]) -> Option<RateCurve> {
        (points.len() >= 2).then(|| RateCurve::from_points(points.to_vec()))
    }

    /// The same rate throughout.
    pub fn constant(rate: f64, duration: Duration) -> RateCurve {
        let d = duration.as_secs_f64();
        RateCurve::from_points(vec![(0.0, rate), (d, rate)])
    }

    /// A straight line from `from` to `to` requests/s.
    pub fn ramp(from: f64, to: f64, duration: Duration) -> RateCurve {
        let d = duration.as_secs_f64();
        RateCurve::from_points(vec![(0.0, from), (d, to)])
    }

    /// Steps: `(fraction of the run where the step starts, rate)`, in order,
    /// the first at fraction 0. Each rate holds until the next step.
    pub fn steps(steps: &[(f64, f64)], duration: Duration) -> RateCurve {
        let d = duration.as_secs_f64();
        let mut points = Vec::with_capacity(steps.len() * 2);
        for (i, &(frac, rate)) in steps.iter().enumerate() {
            let start = frac * d;
            let end = steps.get(i + 1).map_or(d, |&(f, _)| f * d);
            points.push((start, rate));
            points.push((end, rate));
        }
        RateCurve::from_points(points)
    }

    /// `n` equal steps across the run, one per rate.
    pub fn equal_steps(rates: &[f64], duration: Duration) -> RateCurve {
        let n = rates.len() as f64;
        let steps: Vec<(f64, f64)> = rates
            .iter()
            .enumerate()
            .map(|(i, &r)| (i as f64 / n, r))
            .collect();
        RateCurve::steps(&steps, duration)
    }

    /// A curve of per-slot rates (typically one per minute of a day)
    /// compressed into `duration`: slot `i` holds its rate over
    /// `[i·d/n, (i+1)·d/n)`.
    pub fn per_slot(rates: &[f64], duration: Duration) -> RateCurve {
        RateCurve::equal_steps(rates, duration)
    }

    /// A copy with every rate multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> RateCurve {
        RateCurve::from_points(self.points.iter().map(|&(t, r)| (t, r * factor)).collect())
    }

    /// The run length the curve covers.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s())
    }

    fn duration_s(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.0)
    }

    /// The points `(t seconds, rate)` that define the curve.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The rate at `t` seconds (the later value at a step).
    pub fn rate_at(&self, t: f64) -> f64 {
        let i = self.points.partition_point(|p| p.0 <= t);
        if i == 0 {
            return self.points.first().map_or(0.0, |p| p.1);
        }
        if i >= self.points.len() {
            return self.points.last().map_or(0.0, |p| p.1);
        }
        let (t0, r0) = self.points[i - 1];
        let (t1, r1) = self.points[i];
        if t1 <= t0 {
            return r1;
        }
        r0 + (r1 - r0) * (t - t0) / (t1 - t0)
    }

    /// Expected number of requests sent in `[0, t]`.
    pub fn expected(&self, t: f64) -> f64 {
        if self.points.len() < 2 || t <= 0.0 {
            return 0.0;
        }
        let t = t.min(self.duration_s());
        // The last point with time ≤ t starts the segment holding t.
        let i = self.points.partition_point(|p| p.0 <= t).saturating_sub(1);
        if i + 1 >= self.points.len() {
            return self.total();
        }
        let (t0, r0) = self.points[i];
        let (t1, r1) = self.points[i + 1];
        let x = t - t0;
        let slope = if t1 > t0 { (r1 - r0) / (t1 - t0) } else { 0.0 };
        self.cum[i] + r0 * x + 0.5 * slope * x * x
    }

    /// Expected number of requests over the whole curve.
    pub fn total(&self) -> f64 {
        self.cum.last().copied().unwrap_or(0.0)
    }

    /// The mean rate over the curve.
    pub fn mean(&self) -> f64 {
        let d = self.duration_s();
        if d > 0.0 {
            self.total() / d
        } else {
            0.0
        }
    }

    /// The highest rate anywhere on the curve.
    pub fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }

    /// The time (seconds) by which `n` requests are expected, or `None` when
    /// the curve ends first. Inverse of [`RateCurve::expected`].
    pub fn time_of(&self, n: f64) -> Option<f64> {
        if n > self.total() || self.points.len() < 2 {
            return None;
        }
        if n <= 0.0 {
            return Some(0.0);
        }
        // The segment whose cumulative range holds n: cum[i] < n ≤ cum[i+1].
        let i = self
            .cum
            .partition_point(|&c| c < n)
            .clamp(1, self.cum.len() - 1)
            - 1;
        let (t0, r0) = self.points[i];
        let (t1, r1) = self.points[i + 1];
        let m = n - self.cum[i];
        let dt = t1 - t0;
        if dt <= 0.0 {
            return Some(t0);
        }
        let a = (r1 - r0) / dt;
        // Solve r0·x + a/2·x² = m in the form that stays accurate when a → 0.
        let disc = (r0 * r0 + 2.0 * a * m).max(0.0);
        let denom = r0 + disc.sqrt();
        let x = if denom > 0.0 { 2.0 * m / denom } else { 0.0 };
        Some(t0 + x.clamp(0.0, dt))
    }
}

/// Reads a per-minute curve from CSV: one row per minute, either `rate` or
/// `minute,rate`. Blank lines and `#` comments are skipped. A header row is
/// allowed; if one of its column names contains `per_minute` the values are
/// requests per minute, otherwise requests per second.
pub fn read_curve_csv(path: &Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_curve_csv(&text).map_err(|(line, reason)| Error::KeyFile {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

/// [`read_curve_csv`] on text; the error is `(line, reason)`.
pub fn parse_curve_csv(text: &str) -> std::result::Result<Vec<f64>, (usize, String)> {
    let mut per_minute = false;
    let mut values = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cell = line.rsplit(',').next().unwrap_or(line).trim();
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => values.push(v),
            Ok(_) => return Err((i + 1, format!("rate {cell:?} must be finite and ≥ 0"))),
            Err(_) if values.is_empty() && !per_minute => {
                per_minute = line.contains("per_minute");
            }
            Err(_) => return Err((i + 1, format!("{cell:?} is not a number"))),
        }
    }
    if values.is_empty() {
        return Err((0, "the curve has no rows".into()));
    }
    if per_minute {
        values.iter_mut().for_each(|v| *v /= 60.0);
    }
    Ok(values)
}

/// The send times of one worker thread's share of a curve.
///
/// With `k` threads, thread `i` takes arrivals `i, i+k, i+2k, …` of the
/// deterministic schedule, or an independent Poisson stream at `1/k` of the
/// rate (the superposition of the threads' streams is Poisson again).
#[derive(Debug, Clone)]
pub struct Schedule {
    curve: RateCurve,
    poisson: bool,
    rng: Rng,
    /// Position on the cumulative axis of the next arrival.
    next: f64,
    step: f64,
}

impl Schedule {
    /// Thread `index` of `of` threads.
    pub fn new(curve: RateCurve, poisson: bool, seed: u64, index: usize, of: usize) -> Schedule {
        let of = of.max(1) as f64;
        let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (next, step) = if poisson {
            // Each thread runs at rate/of: scale unit gaps by `of`.
            (rng.exp1() * of, of)
        } else {
            // Centre each arrival in its slot: a constant rate r then sends
            // exactly r·T requests in T seconds.
            (index as f64 + 0.5, of)
        };
        Schedule {
            curve,
            poisson,
            rng,
            next,
            step,
        }
    }

    /// Seconds from the start at which the next request is due, or `None`
    /// when the curve is over.
    pub fn next_time(&mut self) -> Option<f64> {
        let t = self.curve.time_of(self.next)?;
        self.next += if self.poisson {
            self.rng.exp1() * self.step
        } else {
            self.step
        };
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_forms() {
        assert_eq!(parse_curve_csv("1\n2\n").unwrap(), vec![1.0, 2.0]);
        assert_eq!(
            parse_curve_csv("minute,requests_per_minute\n0,60\n1,120\n").unwrap(),
            vec![1.0, 2.0]
        );
        assert_eq!(
            parse_curve_csv("# comment\nminute,rate\n0,5\n").unwrap(),
            vec![5.0]
        );
        assert!(parse_curve_csv("0,5\n1,x\n").is_err());
        assert!(parse_curve_csv("").is_err());
    }
}
