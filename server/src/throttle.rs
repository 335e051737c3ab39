//! Mismatch throttling: a client that keeps getting "no" about one subject
//! is guessing, so after [`Limits::mismatch_limit`] mismatches on one
//! subject within [`Limits::mismatch_window`] its verifications of that
//! subject are refused (429) until the window ends. Other clients and other
//! subjects are not affected.
//!
//! The counts live in a sharded map keyed by (client, subject); entries of
//! ended windows are dropped whenever a shard has doubled since it was last
//! swept, so memory follows the mismatch rate over one window.
//!
//! [`Limits::mismatch_limit`]: crate::config::Limits::mismatch_limit
//! [`Limits::mismatch_window`]: crate::config::Limits::mismatch_window

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::keys::ClientId;

const SHARDS: usize = 16;

/// Mismatches of one client on one subject in the current window.
#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    mismatches: u32,
}

#[derive(Default)]
struct Shard {
    windows: HashMap<(ClientId, u64), Window>,
    /// The shard's size after its last sweep.
    swept_len: usize,
}

/// See the module docs.
pub struct MismatchThrottle {
    limit: u32,
    window: Duration,
    shards: Box<[Mutex<Shard>]>,
    refused: AtomicU64,
}

impl std::fmt::Debug for MismatchThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MismatchThrottle")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish()
    }
}

impl MismatchThrottle {
    /// At most `limit` mismatches per client and subject within `window`
    /// (`limit` 0 turns throttling off).
    pub fn new(limit: u32, window: Duration) -> MismatchThrottle {
        MismatchThrottle {
            limit,
            window,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            refused: AtomicU64::new(0),
        }
    }

    fn shard(&self, client: ClientId, subject: u64) -> &Mutex<Shard> {
        let mix = subject ^ u64::from(client).rotate_left(48);
        &self.shards[(mix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS]
    }

    /// `Err(wait)` when `client` may not verify `subject` now (counted as a
    /// refusal), with how long until its window ends.
    pub fn check(&self, client: ClientId, subject: u64, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let shard = self.shard(client, subject).lock();
        let Some(w) = shard.windows.get(&(client, subject)) else {
            return Ok(());
        };
        let age = now.saturating_duration_since(w.started);
        if w.mismatches >= self.limit && age < self.window {
            drop(shard);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(self.window - age);
        }
        Ok(())
    }

    /// Counts one mismatch of `client` on `subject`.
    pub fn record_mismatch(&self, client: ClientId, subject: u64, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut shard = self.shard(client, subject).lock();
        let window = self.window;
        let w = shard.windows.entry((client, subject)).or_insert(Window {
            started: now,
            mismatches: 0,
        });
        if now.saturating_duration_since(w.started) >= window {
            *w = Window {
                started: now,
                mismatches: 0,
            };
        }
        w.mismatches = w.mismatches.saturating_add(1);
        let len = shard.windows.len();
        if len >= 1024 && len >= 2 * shard.swept_len {
            shard
                .windows
                .retain(|_, w| now.saturating_duration_since(w.started) < window);
            shard.swept_len = shard.windows.len();
        }
    }

    /// Verifications refused since start (for `/metrics`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_one_client_on_one_subject_for_one_window() {
        let t = MismatchThrottle::new(3, Duration::from_secs(600));
        let t0 = Instant::now();
        for _ in 0..3 {
            t.check(1, 42, t0).unwrap();
            t.record_mismatch(1, 42, t0);
        }
        assert!(t.check(1, 42, t0).is_err());
        assert!(t.check(2, 42, t0).is_ok());
        assert!(t.check(1, 43, t0).is_ok());
        assert!(t.check(1, 42, t0 + Duration::from_secs(600)).is_ok());
        assert_eq!(t.refused(), 1);
    }
}
