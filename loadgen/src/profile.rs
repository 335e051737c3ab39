//! Traffic profiles: TOML files describing a rate curve and the callers.
//!
//! ```toml
//! name = "steady"
//! duration = "10m"          # default run length; --duration overrides
//!
//! [rate]
//! shape = "constant"        # constant | ramp | steps | curve
//! mean = 2300.0             # requests/s at scale 1 (≈ 200 M lookups a day)
//! scale = 1.0               # capacity planners turn this knob (--scale)
//! poisson = true            # exponential gaps instead of even spacing
//! # ramp:   from = 0.5, to = 2.0                 (multiples of mean)
//! # steps:  steps = [[0.0, 1.0], [0.4, 10.0], [0.5, 1.0]]
//! #         (fraction of the run where a step starts, multiple of mean)
//! # curve:  hourly = [24 multiples, one per hour from 00:00]
//! #         or csv = "day.csv" (per-minute rates; see rate::read_curve_csv)
//! #         the day is compressed into the run's duration
//!
//! [[callers]]
//! name = "social-insurance"
//! share = 0.25                          # shares add up to 1
//! ops = { verify = 0.3, batch_verify = 0.7 }   # also get, get_basic, batch_get, qr, match,
//!                                       # legacy, identify; writes: register,
//!                                       # update (a move), death
//! batch = { min = 100, max = 1000 }     # or batch = 100; also batch_get / batch_verify
//! popularity = { zipf = 1.05 }          # or "uniform"
//! malformed = 0.001                     # share of malformed keys (expect 400)
//! unknown = 0.01                        # share of unknown valid keys (expect 404)
//! mismatch = 0.05                       # verify requests with a wrong date of birth
//! key = "..."                           # optional API key; default --key
//! basic_key = "..."                     # optional basic-scope key for get_basic
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::rate::{read_curve_csv, RateCurve};
use crate::units::parse_duration;
use crate::workload::{BatchSize, Caller, Op, Popularity, Workload};

/// A parsed and validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Short name used in reports.
    pub name: String,
    /// What the profile models.
    pub description: String,
    /// Default run length.
    pub duration: Option<Duration>,
    /// Default random seed.
    pub seed: Option<u64>,
    /// The rate curve.
    pub rate: RateSpec,
    /// The callers.
    pub workload: Workload,
}

/// The shape and scale of a profile's traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSpec {
    /// The shape, in multiples of `mean`.
    pub shape: Shape,
    /// Mean requests/s at scale 1.
    pub mean: f64,
    /// Multiplier applied to every rate.
    pub scale: f64,
    /// Exponential gaps instead of even spacing.
    pub poisson: bool,
}

/// A curve shape in multiples of the mean rate.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Flat.
    Constant,
    /// From one multiple to another.
    Ramp {
        /// Multiple at the start.
        from: f64,
        /// Multiple at the end.
        to: f64,
    },
    /// `(fraction of the run, multiple)` in order, from fraction 0.
    Steps(Vec<(f64, f64)>),
    /// One multiple per slot (per minute of a day), averaging 1, compressed
    /// into the run.
    Curve(Vec<f64>),
}

impl RateSpec {
    /// The rate curve for a run of `duration` (with the spec's scale).
    pub fn curve(&self, duration: Duration) -> RateCurve {
        let base = self.mean * self.scale;
        match &self.shape {
            Shape::Constant => RateCurve::constant(base, duration),
            Shape::Ramp { from, to } => RateCurve::ramp(base * from, base * to, duration),
            Shape::Steps(steps) => {
                let s: Vec<(f64, f64)> = steps.iter().map(|&(f, m)| (f, m * base)).collect();
                RateCurve::steps(&s, duration)
            }
            Shape::Curve(slots) => {
                let s: Vec<f64> = slots.iter().map(|m| m * base).collect();
                RateCurve::per_slot(&s, duration)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: Option<String>,
    #[serde(default)]
    description: String,
    duration: Option<String>,
    seed: Option<u64>,
    rate: RateFile,
    #[serde(default)]
    callers: Vec<CallerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateFile {
    #[serde(default = "default_shape")]
    shape: String,
    mean: Option<f64>,
    #[serde(default = "one")]
    scale: f64,
    #[serde(default)]
    poisson: bool,
    from: Option<f64>,
    to: Option<f64>,
    steps: Option<Vec<(f64, f64)>>,
    hourly: Option<Vec<f64>>,
    csv: Option<String>,
}

fn default_shape() -> String {
    "constant".into()
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerFile {
    name: String,
    share: f64,
    key: Option<String>,
    basic_key: Option<String>,
    ops: BTreeMap<String, f64>,
    popularity: Option<PopularityFile>,
    #[serde(default)]
    malformed: f64,
    #[serde(default)]
    unknown: f64,
    #[serde(default)]
    mismatch: f64,
    batch: Option<BatchFile>,
    batch_get: Option<BatchFile>,
    batch_verify: Option<BatchFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PopularityFile {
    Name(String),
    Zipf { zipf: f64 },
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(untagged)]
enum BatchFile {
    Fixed(u32),
    Range { min: u32, max: u32 },
}

impl BatchFile {
    fn size(self) -> BatchSize {
        match self {
            BatchFile::Fixed(n) => BatchSize::fixed(n),
            BatchFile::Range { min, max } => BatchSize { min, max },
        }
    }
}

impl Profile {
    /// Reads and validates a profile; a `csv` curve is read relative to the
    /// profile's directory.
    pub fn from_file(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Profile::parse_with_base(&text, &base).map_err(|e| match e {
            Error::ProfileSyntax { source, .. } => Error::ProfileSyntax {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates profile text (a `csv` curve is read relative to
    /// the current directory).
    pub fn parse(text: &str) -> Result<Profile> {
        Profile::parse_with_base(text, Path::new("."))
    }

    fn parse_with_base(text: &str, base: &Path) -> Result<Profile> {
        let file: ProfileFile = toml::from_str(text).map_err(|source| Error::ProfileSyntax {
            path: PathBuf::from("<profile>"),
            source,
        })?;
        let duration = file
            .duration
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| Error::profile("duration", e.to_string()))?;
        if duration == Some(Duration::ZERO) {
            return Err(Error::profile("duration", "must be positive"));
        }
        let rate = rate_spec(file.rate, base)?;
        let callers = file
            .callers
            .into_iter()
            .enumerate()
            .map(|(i, c)| caller(i, c))
            .collect::<Result<Vec<_>>>()?;
        let workload = Workload { callers };
        workload.validate()?;
        Ok(Profile {
            name: file.name.unwrap_or_else(|| "profile".into()),
            description: file.description,
            duration,
            seed: file.seed,
            rate,
            workload,
        })
    }
}

fn rate_spec(r: RateFile, base: &Path) -> Result<RateSpec> {
    let check = |field: &str, v: f64| -> Result<()> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(Error::profile(
                format!("rate.{field}"),
                "must be a finite number ≥ 0",
            ))
        }
    };
    if !(r.scale.is_finite() && r.scale > 0.0) {
        return Err(Error::profile("rate.scale", "must be positive"));
    }
    let mut mean = r.mean;
    if let Some(m) = mean {
        if !(m.is_finite() && m > 0.0) {
            return Err(Error::profile("rate.mean", "must be positive (requests/s)"));
        }
    }
    let unexpected = |field: &str, shape: &str| {
        Error::profile(
            format!("rate.{field}"),
            format!("does not apply to shape {shape:?}"),
        )
    };
    let shape = match r.shape.as_str() {
        "constant" => {
            for (f, present) in [
                ("from", r.from.is_some()),
                ("steps", r.steps.is_some()),
                ("hourly", r.hourly.is_some()),
                ("csv", r.csv.is_some()),
            ] {
                if present {
                    return Err(unexpected(f, "constant"));
                }
            }
            Shape::Constant
        }
        "ramp" => {
            let from = r
                .from
                .ok_or_else(|| Error::profile("rate.from", "a ramp needs from and to"))?;
            let to =
                r.to.ok_or_else(|| Error::profile("rate.to", "a ramp needs from and to"))?;
            check("from", from)?;
            check("to", to)?;
            Shape::Ramp { from, to }
        }
        "steps" => {
            let steps = r.steps.ok_or_else(|| {
                Error::profile(
                    "rate.steps",
                    "shape \"steps\" needs steps = [[fraction, multiple], ...]",
                )
            })?;
            if steps.first().map(|s| s.0) != Some(0.0) {
                return Err(Error::profile(
                    "rate.steps",
                    "the first step must start at fraction 0",
                ));
            }
            for (i, w) in steps.windows(2).enumerate() {
                if w[1].0 <= w[0].0 || w[1].0 >= 1.0 {
                    return Err(Error::profile(
                        format!("rate.steps[{}]", i + 1),
                        "fractions must increase and stay below 1",
                    ));
                }
            }
            for (i, s) in steps.iter().enumerate() {
                check(&format!("steps[{i}]"), s.1)?;
            }
            Shape::Steps(steps)
        }
        "curve" => {
            let slots = match (r.hourly, r.csv) {
                (Some(h), None) => {
                    if h.len() != 24 {
                        return Err(Error::profile(
                            "rate.hourly",
                            format!("needs 24 values, one per hour; found {}", h.len()),
                        ));
                    }
                    for (i, &v) in h.iter().enumerate() {
                        check(&format!("hourly[{i}]"), v)?;
                    }
                    hourly_to_minutes(&h)
                }
                (None, Some(csv)) => {
                    let values = read_curve_csv(&base.join(csv))?;
                    if mean.is_none() {
                        // Absolute rates: keep them as they are.
                        let m = values.iter().sum::<f64>() / values.len() as f64;
                        mean = Some(m);
                    }
                    values
                }
                _ => {
                    return Err(Error::profile(
                        "rate",
                        "shape \"curve\" needs exactly one of hourly or csv",
                    ))
                }
            };
            let avg = slots.iter().sum::<f64>() / slots.len() as f64;
            if avg <= 0.0 {
                return Err(Error::profile("rate", "the curve is zero everywhere"));
            }
            Shape::Curve(slots.iter().map(|v| v / avg).collect())
        }
        other => {
            return Err(Error::profile(
                "rate.shape",
                format!("{other:?} is not constant, ramp, steps or curve"),
            ))
        }
    };
    let mean =
        mean.ok_or_else(|| Error::profile("rate.mean", "missing (requests/s at scale 1)"))?;
    Ok(RateSpec {
        shape,
        mean,
        scale: r.scale,
        poisson: r.poisson,
    })
}

/// 24 hourly values (at each hour's start, wrapping at midnight) to 1440
/// per-minute values by linear interpolation.
pub fn hourly_to_minutes(hourly: &[f64]) -> Vec<f64> {
    (0..1440)
        .map(|m| {
            let h = m / 60;
            let frac = (m % 60) as f64 / 60.0;
            let a = hourly[h];
            let b = hourly[(h + 1) % 24];
            a + (b - a) * frac
        })
        .collect()
}

fn caller(i: usize, c: CallerFile) -> Result<Caller> {
    let at = |f: &str| format!("callers[{i}] ({}).{f}", c.name);
    let mut ops = Vec::with_capacity(c.ops.len());
    for (name, &w) in &c.ops {
        let op = Op::parse(name).map_err(|e| Error::profile(at("ops"), e.to_string()))?;
        ops.push((op, w));
    }
    ops.sort_by_key(|o| o.0);
    let popularity = match &c.popularity {
        None => Popularity::Uniform,
        Some(PopularityFile::Name(n)) if n == "uniform" => Popularity::Uniform,
        Some(PopularityFile::Name(n)) => {
            return Err(Error::profile(
                at("popularity"),
                format!("{n:?} is not \"uniform\" or {{ zipf = s }}"),
            ))
        }
        Some(PopularityFile::Zipf { zipf }) => Popularity::Zipf(*zipf),
    };
    let batch = c
        .batch
        .map(BatchFile::size)
        .unwrap_or(BatchSize::fixed(100));
    Ok(Caller {
        name: c.name.clone(),
        share: c.share,
        key: c.key.clone(),
        basic_key: c.basic_key.clone(),
        ops,
        popularity,
        malformed: c.malformed,
        unknown: c.unknown,
        mismatch: c.mismatch,
        batch_get: c.batch_get.map(BatchFile::size).unwrap_or(batch),
        batch_verify: c.batch_verify.map(BatchFile::size).unwrap_or(batch),
    })
}
