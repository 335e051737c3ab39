//! Sleeping until an instant with microsecond precision.
//!
//! tokio's timer wheel has millisecond granularity: a request meant for
//! t + 0.1 ms would leave at t + 1 ms and its latency, timed from the
//! intended send time, would carry 0.9 ms of the generator's own making.
//! On Linux a `timerfd` armed for the exact instant wakes the runtime's
//! epoll loop on time, and the thread's timer slack is cut to 1 µs.
//! Elsewhere this falls back to tokio's timer.
//!
//! A precise timer is not enough on a busy box: the kernel must also run
//! the thread when the timer fires. Under the national-day profile, with
//! the server and the request builder on the same two cores, a plain
//! thread that only sleeps on a 250 µs grid (no loadgen code at all) woke
//! 1.3 ms late at p99 — the same as loadgen's behind-schedule p99; the
//! same thread under `SCHED_FIFO` woke 67 µs late at p99 (loadgen/RESULTS.md).
//! So open-model worker threads ask for the lowest real-time priority
//! ([`realtime_priority`]): they preempt ordinary threads when a send is
//! due, and since they sleep whenever nothing is due, they take no more CPU
//! than before.

use std::time::Instant;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Instant;

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// A one-shot high-resolution timer bound to the current runtime.
    pub struct PreciseTimer {
        fd: AsyncFd<OwnedFd>,
    }

    impl PreciseTimer {
        pub fn new() -> io::Result<PreciseTimer> {
            let owned = WakeTimer::new()?.fd;
            // SAFETY: `owned` is an open timerfd handed over to the AsyncFd,
            // which owns it from here on; OwnedFd::as_raw_fd always returns
            // that one descriptor, and it stays open until the AsyncFd (with
            // the OwnedFd inside) is dropped.
            let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }?;
            Ok(PreciseTimer { fd })
        }

        pub async fn sleep_until(&self, when: Instant) -> io::Result<()> {
            if when <= Instant::now() {
                return Ok(());
            }
            arm(self.fd.as_raw_fd(), when)?;
            loop {
                let mut guard = self.fd.readable().await?;
                let read = guard.try_io(|inner| {
                    let mut ticks = [0u8; 8];
                    // SAFETY: `ticks` is 8 writable bytes, the size a
                    // timerfd read needs.
                    let n = unsafe {
                        libc::read(inner.as_raw_fd(), ticks.as_mut_ptr().cast(), ticks.len())
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                });
                match read {
                    Ok(result) => {
                        // The expiry is consumed. Without this the next
                        // sleep would find the old readiness, read, get
                        // EAGAIN and only then wait: one wasted system call
                        // per wake. Clearing is safe: the next expiry is a
                        // new edge that sets readiness again.
                        guard.clear_ready();
                        return result;
                    }
                    // Stale readiness from an earlier expiry: wait again.
                    Err(_would_block) => continue,
                }
            }
        }
    }

    /// A timerfd for a hand-polled event loop: armed for an instant and
    /// registered with the loop's epoll, it wakes `epoll_wait` on time.
    pub struct WakeTimer {
        fd: OwnedFd,
    }

    impl WakeTimer {
        /// A disarmed timer.
        pub fn new() -> io::Result<WakeTimer> {
            // SAFETY: timerfd_create takes no pointers; a negative result is
            // an error, checked below.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(WakeTimer { fd })
        }

        /// The descriptor, to register with epoll.
        pub fn raw_fd(&self) -> std::os::fd::RawFd {
            self.fd.as_raw_fd()
        }

        /// Arms the timer for `when` (one shot), replacing any earlier
        /// arming. Arming also resets the count of expiries, which is what
        /// makes an edge-triggered epoll report the next expiry: the loop
        /// never needs to read the timer.
        pub fn arm(&self, when: Instant) -> io::Result<()> {
            arm(self.fd.as_raw_fd(), when)
        }
    }

    /// Arms a timerfd for `when`, one shot.
    fn arm(fd: std::os::fd::RawFd, when: Instant) -> io::Result<()> {
        // A zero it_value would disarm the timer: a passed instant
        // becomes the shortest possible wait instead.
        let d = when
            .saturating_duration_since(Instant::now())
            .max(std::time::Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec that outlives the call,
        // and a null old-value pointer is allowed.
        let rc = unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn realtime_priority() -> io::Result<()> {
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: `param` is a valid sched_param that outlives the call; pid
        // 0 names the calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn reduce_timer_slack() {
        // SAFETY: PR_SET_TIMERSLACK takes an integer argument and only
        // affects the calling thread.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::time::Instant;

    pub struct PreciseTimer;

    impl PreciseTimer {
        pub fn new() -> io::Result<PreciseTimer> {
            Ok(PreciseTimer)
        }

        pub async fn sleep_until(&self, when: Instant) -> io::Result<()> {
            tokio::time::sleep_until(when.into()).await;
            Ok(())
        }
    }

    pub fn realtime_priority() -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub fn reduce_timer_slack() {}
}

/// Sleeps until an instant, to within a few microseconds on Linux.
pub struct PreciseTimer {
    inner: Option<imp::PreciseTimer>,
}

impl PreciseTimer {
    /// A timer for the current tokio runtime (falls back to tokio's timer
    /// if a timerfd cannot be made).
    pub fn new() -> PreciseTimer {
        PreciseTimer {
            inner: imp::PreciseTimer::new().ok(),
        }
    }

    /// Returns at `when` (at once if it has passed).
    pub async fn sleep_until(&self, when: Instant) {
        if let Some(t) = &self.inner {
            if t.sleep_until(when).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep_until(when.into()).await;
    }
}

impl Default for PreciseTimer {
    fn default() -> Self {
        PreciseTimer::new()
    }
}

/// A timer that wakes a hand-polled epoll loop at an instant (Linux).
#[cfg(target_os = "linux")]
pub use imp::WakeTimer;

/// Cuts the calling thread's timer slack to 1 µs (Linux; no-op elsewhere).
pub fn reduce_timer_slack() {
    imp::reduce_timer_slack();
}

/// Gives the calling thread the lowest real-time priority (`SCHED_FIFO` 1,
/// Linux): it then runs as soon as its timer fires instead of waiting for
/// ordinary threads' time slices. Needs `CAP_SYS_NICE` or an
/// `RLIMIT_RTPRIO` of at least 1; the error says why not. The kernel's
/// real-time throttling (by default 95 % of each second) keeps a runaway
/// thread from locking up a core.
pub fn realtime_priority() -> std::io::Result<()> {
    imp::realtime_priority()
}
