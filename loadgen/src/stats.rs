//! Latency figures: HdrHistograms per caller, operation and status class,
//! and per interval, with constant memory per interval and none per request.
//!
//! Each worker thread owns a [`Recorder`]; nothing is shared on the hot
//! path. When an interval ends the recorder compresses that interval's
//! histograms (HdrHistogram V2 + DEFLATE, typically a few hundred bytes) and
//! keeps only those bytes. At the end the threads' recorders are merged into
//! one [`Stats`], which is also what `dancu-loadgen merge` rebuilds from
//! several reports.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::error::{Error, Result};
use crate::workload::{Meta, Op};

/// A latency histogram in microseconds.
pub type Hist = Histogram<u64>;

/// Largest latency recorded exactly: one hour. Longer ones saturate.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A histogram for latencies from 1 µs to an hour at 3 significant digits.
pub fn new_hist() -> Hist {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// A histogram for one interval of the time series: 2 significant digits
/// (1 % resolution) keep a compressed interval to a few hundred bytes, so
/// a long run's memory stays flat; whole-run figures keep 3 digits.
pub fn new_interval_hist() -> Hist {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant bounds are valid")
}

/// Compresses a histogram (V2 + DEFLATE).
pub fn encode(h: &Hist) -> Vec<u8> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .expect("serializing into a Vec cannot fail");
    out
}

/// Decompresses a histogram made by [`encode`] (or any V2 serializer).
pub fn decode(bytes: &[u8], name: &str) -> Result<Hist> {
    decode_into(bytes, name, new_hist())
}

/// [`decode`] at interval precision (see [`new_interval_hist`]).
pub fn decode_interval(bytes: &[u8], name: &str) -> Result<Hist> {
    decode_into(bytes, name, new_interval_hist())
}

fn decode_into(bytes: &[u8], name: &str, mut out: Hist) -> Result<Hist> {
    let h: Hist = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| Error::Histogram {
            name: name.to_string(),
            reason: format!("{e:?}"),
        })?;
    // Re-home into our bounds so that every histogram can be added to every other.
    out.add(&h).map_err(|e| Error::Histogram {
        name: name.to_string(),
        reason: format!("{e:?}"),
    })?;
    Ok(out)
}

/// [`encode`] as base64 text (for JSON).
pub fn to_base64(h: &Hist) -> String {
    base64::engine::general_purpose::STANDARD.encode(encode(h))
}

/// Inverse of [`to_base64`].
pub fn from_base64(text: &str, name: &str) -> Result<Hist> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::Histogram {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    decode(&bytes, name)
}

/// The outcome class of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// 2xx
    S2xx,
    /// 3xx (and 1xx)
    S3xx,
    /// 4xx
    S4xx,
    /// 5xx
    S5xx,
    /// No HTTP answer: connection refused or reset, timeout, bad response.
    Io,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 5] = [
        Class::S2xx,
        Class::S3xx,
        Class::S4xx,
        Class::S5xx,
        Class::Io,
    ];

    /// The class of an HTTP status (`None` = no answer).
    pub fn of(status: Option<u16>) -> Class {
        match status {
            None => Class::Io,
            Some(200..=299) => Class::S2xx,
            Some(400..=499) => Class::S4xx,
            Some(500..=599) => Class::S5xx,
            Some(_) => Class::S3xx,
        }
    }

    /// `2xx`, `3xx`, `4xx`, `5xx` or `io`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::S2xx => "2xx",
            Class::S3xx => "3xx",
            Class::S4xx => "4xx",
            Class::S5xx => "5xx",
            Class::Io => "io",
        }
    }

    /// Parses [`Class::as_str`].
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const OPS: usize = Op::ALL.len();
const CLASSES: usize = Class::ALL.len();

/// One finished interval of one recorder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalRecord {
    /// Requests sent (open model: dispatched) in the interval.
    pub sent: u64,
    /// Requests completed in the interval.
    pub completed: u64,
    /// Completed requests whose answer was not the expected one.
    pub errors: u64,
    /// Completions by status class ([`Class::ALL`] order).
    pub classes: [u64; CLASSES],
    /// Completions per operation.
    pub ops: BTreeMap<Op, u64>,
    /// Encoded latency histogram of the interval (all operations, 2
    /// significant digits); empty when nothing completed.
    pub latency: Vec<u8>,
}

#[derive(Debug)]
struct Current {
    index: u64,
    rec: IntervalRecord,
    latency: Hist,
}

/// Records the requests of one worker thread.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    interval: Duration,
    callers: usize,
    series: Vec<Option<Box<Hist>>>,
    errors: Vec<u64>,
    /// Answers by status code (index 0: no answer); a flat array because
    /// it is touched on every request.
    statuses: Vec<u64>,
    shed: u64,
    behind: Hist,
    current: Current,
    done: BTreeMap<u64, IntervalRecord>,
}

impl Recorder {
    /// A recorder for a run that started at `start`, cutting time into
    /// `interval`s, for `callers` callers.
    pub fn new(start: Instant, interval: Duration, callers: usize) -> Recorder {
        Recorder {
            start,
            interval: interval.max(Duration::from_millis(1)),
            callers,
            series: (0..callers * OPS * CLASSES).map(|_| None).collect(),
            errors: vec![0; callers * OPS],
            statuses: vec![0; 1000],
            shed: 0,
            behind: new_hist(),
            current: Current {
                index: 0,
                rec: IntervalRecord::default(),
                latency: new_interval_hist(),
            },
            done: BTreeMap::new(),
        }
    }

    fn interval_of(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_nanos() / self.interval.as_nanos()) as u64
    }

    fn advance(&mut self, at: Instant) {
        let index = self.interval_of(at);
        if index > self.current.index {
            self.seal();
            self.current.index = index;
        }
    }

    fn seal(&mut self) {
        let cur = &mut self.current;
        if cur.rec.sent == 0 && cur.rec.completed == 0 {
            return;
        }
        if !cur.latency.is_empty() {
            cur.rec.latency = encode(&cur.latency);
            cur.latency.reset();
        }
        let rec = std::mem::take(&mut cur.rec);
        self.done.insert(cur.index, rec);
    }

    /// Counts a request sent at `at`.
    #[inline]
    pub fn sent(&mut self, at: Instant) {
        self.advance(at);
        self.current.rec.sent += 1;
    }

    /// How late the generator was for a request (open model).
    #[inline]
    pub fn behind(&mut self, late: Duration) {
        self.behind.saturating_record(late.as_micros() as u64);
    }

    /// Records a completed request: its answer (`None` = no answer), its
    /// latency and when it completed. `shed` marks a deliberate refusal
    /// (503 with `Retry-After`), counted apart and not as an error.
    /// Returns whether the answer was an error.
    #[inline]
    pub fn record(
        &mut self,
        meta: Meta,
        status: Option<u16>,
        shed: bool,
        latency: Duration,
        at: Instant,
    ) -> bool {
        self.advance(at);
        let us = (latency.as_micros() as u64).max(1);
        let class = Class::of(status);
        if shed {
            self.shed += 1;
        }
        let error = !shed && !status.is_some_and(|s| meta.expect.accepts(meta.op, s));
        let caller = (meta.caller as usize).min(self.callers - 1);
        let op = meta.op.index();
        let slot = &mut self.series[(caller * OPS + op) * CLASSES + class.index()];
        slot.get_or_insert_with(|| Box::new(new_hist()))
            .saturating_record(us);
        self.current.latency.saturating_record(us);
        *self.current.rec.ops.entry(meta.op).or_insert(0) += 1;
        self.statuses[usize::from(status.unwrap_or(0)).min(999)] += 1;
        let rec = &mut self.current.rec;
        rec.completed += 1;
        rec.classes[class.index()] += 1;
        if error {
            rec.errors += 1;
            self.errors[caller * OPS + op] += 1;
        }
        error
    }

    /// Ends recording and hands over everything recorded, with caller
    /// names from `callers`.
    pub fn finish(mut self, callers: &[String]) -> Stats {
        self.seal();
        let mut stats = Stats::default();
        for (i, slot) in self.series.into_iter().enumerate() {
            if let Some(h) = slot {
                let class = Class::ALL[i % CLASSES];
                let op = Op::ALL[i / CLASSES % OPS];
                let caller = callers.get(i / CLASSES / OPS).cloned().unwrap_or_default();
                stats.series.insert((caller, op, class), *h);
            }
        }
        for (i, &n) in self.errors.iter().enumerate() {
            if n > 0 {
                let caller = callers.get(i / OPS).cloned().unwrap_or_default();
                *stats.errors.entry((caller, Op::ALL[i % OPS])).or_insert(0) += n;
            }
        }
        stats.statuses = self
            .statuses
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(code, &n)| (code as u16, n))
            .collect();
        stats.behind = self.behind;
        stats.shed = self.shed;
        stats.intervals = self.done;
        stats
    }
}

/// Everything recorded in a run (or several merged runs).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency by caller, operation and status class.
    pub series: BTreeMap<(String, Op, Class), Hist>,
    /// Unexpected answers by caller and operation.
    pub errors: BTreeMap<(String, Op), u64>,
    /// Completions by HTTP status; 0 stands for "no answer".
    pub statuses: BTreeMap<u16, u64>,
    /// Requests the server shed on purpose (503 with `Retry-After`); they
    /// are in `statuses` under 503 but not in `errors`.
    pub shed: u64,
    /// How late the generator sent requests (open model).
    pub behind: Hist,
    /// Interval index → what happened in it.
    pub intervals: BTreeMap<u64, IntervalRecord>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            series: BTreeMap::new(),
            errors: BTreeMap::new(),
            statuses: BTreeMap::new(),
            shed: 0,
            behind: new_hist(),
            intervals: BTreeMap::new(),
        }
    }
}

impl Stats {
    /// Adds another run's figures (another thread, or another process run
    /// at the same time against the same service).
    pub fn merge(&mut self, other: Stats) -> Result<()> {
        for (k, h) in other.series {
            match self.series.get_mut(&k) {
                Some(mine) => add(mine, &h)?,
                None => {
                    self.series.insert(k, h);
                }
            }
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_insert(0) += n;
        }
        self.shed += other.shed;
        for (k, n) in other.statuses {
            *self.statuses.entry(k).or_insert(0) += n;
        }
        add(&mut self.behind, &other.behind)?;
        for (index, rec) in other.intervals {
            match self.intervals.get_mut(&index) {
                None => {
                    self.intervals.insert(index, rec);
                }
                Some(mine) => {
                    mine.sent += rec.sent;
                    mine.completed += rec.completed;
                    mine.errors += rec.errors;
                    for (a, b) in mine.classes.iter_mut().zip(rec.classes) {
                        *a += b;
                    }
                    for (op, n) in rec.ops {
                        *mine.ops.entry(op).or_insert(0) += n;
                    }
                    if mine.latency.is_empty() {
                        mine.latency = rec.latency;
                    } else if !rec.latency.is_empty() {
                        let mut h = decode_interval(&mine.latency, "interval")?;
                        add(&mut h, &decode_interval(&rec.latency, "interval")?)?;
                        mine.latency = encode(&h);
                    }
                }
            }
        }
        Ok(())
    }

    /// All latencies matching a filter, merged.
    pub fn latency(&self, mut keep: impl FnMut(&str, Op, Class) -> bool) -> Hist {
        let mut out = new_hist();
        for ((caller, op, class), h) in &self.series {
            if keep(caller, *op, *class) {
                out.add(h).expect("histograms share bounds");
            }
        }
        out
    }

    /// Completed requests matching a filter.
    pub fn count(&self, mut keep: impl FnMut(&str, Op, Class) -> bool) -> u64 {
        self.series
            .iter()
            .filter(|((c, o, k), _)| keep(c, *o, *k))
            .map(|(_, h)| h.len())
            .sum()
    }

    /// Unexpected answers matching a filter.
    pub fn error_count(&self, mut keep: impl FnMut(&str, Op) -> bool) -> u64 {
        self.errors
            .iter()
            .filter(|((c, o), _)| keep(c, *o))
            .map(|(_, n)| n)
            .sum()
    }

    /// The callers that appear, in name order.
    pub fn callers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.series.keys().map(|k| k.0.clone()).collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    }

    /// The operations that appear, in [`Op::ALL`] order.
    pub fn ops(&self) -> Vec<Op> {
        Op::ALL
            .into_iter()
            .filter(|op| self.series.keys().any(|k| k.1 == *op))
            .collect()
    }

    /// The latency histogram of all operations in one interval.
    pub fn interval_latency(&self, rec: &IntervalRecord) -> Result<Hist> {
        if rec.latency.is_empty() {
            return Ok(new_interval_hist());
        }
        decode_interval(&rec.latency, "interval")
    }
}

fn add(into: &mut Hist, from: &Hist) -> Result<()> {
    into.add(from).map_err(|e| Error::Histogram {
        name: "merge".into(),
        reason: format!("{e:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trip() {
        let mut h = new_hist();
        for v in [1u64, 10, 100, 1000, 123_456, 9_999_999] {
            h.record(v).unwrap();
        }
        let back = from_base64(&to_base64(&h), "t").unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn classes() {
        assert_eq!(Class::of(Some(200)), Class::S2xx);
        assert_eq!(Class::of(Some(404)), Class::S4xx);
        assert_eq!(Class::of(Some(503)), Class::S5xx);
        assert_eq!(Class::of(None), Class::Io);
        assert_eq!(Class::parse("4xx"), Some(Class::S4xx));
    }
}
