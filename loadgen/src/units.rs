//! Parsing and printing of durations, shares, SLOs and latencies.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// Parses `500us`, `250ms`, `10s`, `1.5s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| Error::invalid("duration", text, "expected a number and a unit, e.g. 10s"))?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(Error::invalid(
                "duration",
                text,
                format!("unknown unit {other:?} (use us, ms, s, m or h)"),
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=86_400.0 * 366.0).contains(&secs) {
        return Err(Error::invalid("duration", text, "out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a share: `0.1%` is 0.001, `0.001` is 0.001. Must lie in `[0, 1]`.
pub fn parse_ratio(text: &str) -> Result<f64> {
    let t = text.trim();
    let value = if let Some(p) = t.strip_suffix('%') {
        p.trim().parse::<f64>().map(|v| v / 100.0)
    } else {
        t.parse::<f64>()
    }
    .map_err(|_| Error::invalid("share", text, "expected e.g. 0.1% or 0.001"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(Error::invalid(
            "share",
            text,
            "must lie between 0 and 100 %",
        ));
    }
    Ok(value)
}

/// A latency objective: a percentile must stay at or under a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// The percentile, 0–100 (`99.9` for `p99.9`).
    pub percentile: f64,
    /// The limit in microseconds.
    pub limit_us: u64,
}

impl Slo {
    /// Parses `p99<5ms`, `p99.9<=20ms`, `p50<800us`.
    pub fn parse(text: &str) -> Result<Slo> {
        let t = text.trim();
        let rest = t
            .strip_prefix('p')
            .or_else(|| t.strip_prefix('P'))
            .ok_or_else(|| Error::invalid("SLO", text, "expected e.g. p99<5ms"))?;
        let (pct, limit) = rest
            .split_once("<=")
            .or_else(|| rest.split_once('<'))
            .ok_or_else(|| Error::invalid("SLO", text, "expected e.g. p99<5ms"))?;
        let percentile: f64 = pct
            .trim()
            .parse()
            .map_err(|_| Error::invalid("SLO", text, "the percentile is not a number"))?;
        if !(0.0..=100.0).contains(&percentile) {
            return Err(Error::invalid(
                "SLO",
                text,
                "the percentile must lie in 0..=100",
            ));
        }
        let limit = parse_duration(limit)?;
        let limit_us = limit.as_micros() as u64;
        if limit_us == 0 {
            return Err(Error::invalid(
                "SLO",
                text,
                "the limit must be at least 1us",
            ));
        }
        Ok(Slo {
            percentile,
            limit_us,
        })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}<{}", self.percentile, Micros(self.limit_us))
    }
}

/// Prints a number of microseconds with a fitting unit (`850us`, `1.25ms`, `2.00s`).
#[derive(Debug, Clone, Copy)]
pub struct Micros(pub u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us < 1_000 {
            write!(f, "{us}us")
        } else if us < 1_000_000 {
            write!(f, "{:.2}ms", us as f64 / 1e3)
        } else {
            write!(f, "{:.2}s", us as f64 / 1e6)
        }
    }
}

/// Prints an integer with thousands separators (`1,234,567`).
#[derive(Debug, Clone, Copy)]
pub struct Count(pub u64);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        f.pad(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn ratios() {
        assert!((parse_ratio("0.1%").unwrap() - 0.001).abs() < 1e-12);
        assert!((parse_ratio("0.25").unwrap() - 0.25).abs() < 1e-12);
        assert!(parse_ratio("120%").is_err());
    }

    #[test]
    fn slos() {
        let s = Slo::parse("p99<5ms").unwrap();
        assert_eq!(s.percentile, 99.0);
        assert_eq!(s.limit_us, 5_000);
        assert_eq!(Slo::parse("p99.9<=20ms").unwrap().percentile, 99.9);
        assert!(Slo::parse("99<5ms").is_err());
        assert!(Slo::parse("p101<5ms").is_err());
        assert_eq!(s.to_string(), "p99<5.00ms");
    }

    #[test]
    fn printing() {
        assert_eq!(Micros(850).to_string(), "850us");
        assert_eq!(Micros(1250).to_string(), "1.25ms");
        assert_eq!(Count(1234567).to_string(), "1,234,567");
        assert_eq!(Count(12).to_string(), "12");
    }
}
