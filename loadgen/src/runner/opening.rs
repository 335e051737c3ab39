//! How fast an open-model pool may open connections: a token bucket.
//!
//! Why: the open model sends each due request on an idle connection and
//! opens a new one when none is idle. After any stall of the box (a
//! descheduled thread, 25-40 ms on the shared reference box) every request
//! that fell due meanwhile finds its connections busy, and without a bound
//! the pool jumps to its cap within milliseconds: at the burst profile's
//! 40,000/s a 25 ms stall is 1,000 new connections, each an accept, a
//! handshake and a new HTTP connection on the server exactly when it has a
//! backlog to clear, and a generator that then wakes per answer. A real
//! gateway keeps a bounded pool that grows gradually; so does this one.
//! Requests that wait for a connection meanwhile stay honest: latency runs
//! from their intended send time, and they count as waiting for a
//! connection like requests at the cap.

use std::time::{Duration, Instant};

/// New connections one pool may open at once after a quiet spell: enough
/// for a run that starts at 40,000/s (about 20 in flight at a fraction of a
/// millisecond each), few enough not to storm the server.
pub const BURST: f64 = 32.0;

/// The default opening rate over a whole run, new connections per second
/// (split over threads and targets like the connection cap): a pool grows
/// to the default cap of 1,000 in a second when the load needs it (a slow
/// server at a high rate), while a stall of a few tens of milliseconds
/// opens a few tens instead of the cap. (At 2,000/s, with the pool used
/// longest idle first, one burst run still went from 35 to 972 connections
/// in half a second.)
pub const DEFAULT_RATE: f64 = 1000.0;

/// A token bucket of connection openings; `None` rate: unbounded.
#[derive(Debug, Clone)]
pub struct OpenBudget {
    /// Openings per second; `None`: every `try_take` succeeds.
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

impl OpenBudget {
    /// A full bucket at `now`.
    pub fn new(rate: Option<f64>, now: Instant) -> OpenBudget {
        OpenBudget {
            rate: rate.filter(|r| r.is_finite() && *r > 0.0),
            tokens: BURST,
            last: now,
        }
    }

    /// Takes one opening if the bucket holds one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Openings available at `now` (`usize::MAX` when unbounded).
    pub fn available(&self, now: Instant) -> usize {
        let Some(rate) = self.rate else {
            return usize::MAX;
        };
        let mut b = self.clone();
        b.refill(rate, now);
        b.tokens as usize
    }

    /// When the next opening becomes available (`now` if one is; `None`
    /// when unbounded).
    pub fn next_at(&self, now: Instant) -> Option<Instant> {
        let rate = self.rate?;
        let mut b = self.clone();
        b.refill(rate, now);
        let missing = (1.0 - b.tokens).max(0.0);
        Some(now + Duration::from_secs_f64(missing / rate))
    }

    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(BURST);
        self.last = self.last.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_always_opens() {
        let now = Instant::now();
        let mut b = OpenBudget::new(None, now);
        assert!((0..10_000).all(|_| b.try_take(now)));
        assert_eq!(b.next_at(now), None);
        assert_eq!(b.available(now), usize::MAX);
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = OpenBudget::new(Some(1000.0), t0);
        let burst = (0..1000).take_while(|_| b.try_take(t0)).count();
        assert_eq!(burst, BURST as usize);
        assert_eq!(b.available(t0), 0);
        // The next token arrives a millisecond later, not before.
        let wait = b.next_at(t0).unwrap() - t0;
        assert!((999..=1001).contains(&wait.as_micros()), "{wait:?}");
        assert!(!b.try_take(t0 + Duration::from_micros(500)));
        assert!(b.try_take(t0 + Duration::from_micros(1100)));
        assert!(!b.try_take(t0 + Duration::from_micros(1100)));
        // Ten milliseconds refill ten openings.
        let t1 = t0 + Duration::from_micros(11_150);
        assert_eq!((0..100).take_while(|_| b.try_take(t1)).count(), 10);
    }

    #[test]
    fn a_long_quiet_spell_refills_only_the_burst() {
        let t0 = Instant::now();
        let mut b = OpenBudget::new(Some(1000.0), t0);
        while b.try_take(t0) {}
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.next_at(later), Some(later));
        assert_eq!(
            (0..1000).take_while(|_| b.try_take(later)).count(),
            BURST as usize
        );
    }

    #[test]
    fn nonsense_rates_mean_unbounded() {
        let now = Instant::now();
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut b = OpenBudget::new(Some(rate), now);
            assert!((0..100).all(|_| b.try_take(now)));
        }
    }
}
