//! A lock-free per-client rate limiter (GCRA, the generic cell rate
//! algorithm: a token bucket kept as one "theoretical arrival time").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Allows `rate` requests per second on average, with bursts of up to
/// `burst` requests.
#[derive(Debug)]
pub struct RateLimiter {
    interval_ns: u64,
    tolerance_ns: u64,
    /// Theoretical arrival time of the next request, in nanoseconds since
    /// [`epoch`].
    tat: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl RateLimiter {
    /// A limiter of `rate` (> 0) requests per second and bursts of `burst`
    /// (≥ 1).
    pub fn new(rate: f64, burst: u32) -> RateLimiter {
        let interval_ns = (1e9 / rate).clamp(1.0, 1e18) as u64;
        epoch();
        RateLimiter {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst.max(1)) - 1),
            tat: AtomicU64::new(0),
        }
    }

    /// Continues from what a client has used of `old` (same rate and
    /// burst), so that reloading `keys.toml` does not refill buckets.
    pub fn carry_over(&self, old: &RateLimiter) {
        if (self.interval_ns, self.tolerance_ns) == (old.interval_ns, old.tolerance_ns) {
            self.tat
                .store(old.tat.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Takes one request's worth at `now`; `Err(wait)` when over the rate.
    pub fn check(&self, now: Instant) -> Result<(), Duration> {
        self.check_n(now, 1)
    }

    /// The most items one take may ask for: the burst.
    pub fn burst(&self) -> u64 {
        self.tolerance_ns / self.interval_ns + 1
    }

    /// Takes `n` items' worth at `now` (all or none); `Err(wait)` when over
    /// the rate. More than [`burst`](RateLimiter::burst) items never fit.
    pub fn check_n(&self, now: Instant, n: u64) -> Result<(), Duration> {
        if n == 0 {
            return Ok(());
        }
        let now = now.saturating_duration_since(epoch()).as_nanos() as u64;
        // The items after the first must fit in the burst tolerance too.
        let extra = self.interval_ns.saturating_mul(n - 1);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let base = tat.max(now);
            let due = (base - now).saturating_add(extra);
            if due > self.tolerance_ns {
                return Err(Duration::from_nanos(due - self.tolerance_ns));
            }
            match self.tat.compare_exchange_weak(
                tat,
                base + extra + self.interval_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check(t0).unwrap();
        }
        let wait = limiter.check(t0).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        limiter.check(t0 + Duration::from_millis(100)).unwrap();
        assert!(limiter.check(t0 + Duration::from_millis(100)).is_err());
        // Over a long stretch, about rate × time requests pass.
        let mut passed = 0;
        for ms in (1_000..11_000).step_by(10) {
            passed += u32::from(limiter.check(t0 + Duration::from_millis(ms)).is_ok());
        }
        assert!((99..=103).contains(&passed), "{passed}");
    }

    #[test]
    fn items_count_against_the_burst() {
        let limiter = RateLimiter::new(10.0, 5);
        assert_eq!(limiter.burst(), 5);
        let t0 = Instant::now();
        limiter.check_n(t0, 4).unwrap();
        assert!(limiter.check_n(t0, 2).is_err());
        limiter.check_n(t0, 1).unwrap();
        assert!(limiter.check(t0).is_err());
        assert!(RateLimiter::new(10.0, 5).check_n(t0, 6).is_err());
    }
}
