//! The generator's own CPU time, for the self-check every report carries.
//!
//! A load generator that shares a box with the server, or runs out of
//! core, reports its own stalls as the server's latency. Each run
//! therefore measures what the generator itself used (user + system time,
//! from `getrusage`) so the report can say how much CPU a request cost and
//! warn when the generator, not the server, was the limit.

use std::time::Duration;

/// CPU time used by the whole process so far.
pub fn process() -> Duration {
    usage(libc::RUSAGE_SELF)
}

/// CPU time used by the calling thread so far (Linux; elsewhere the
/// process's, an overestimate that only makes the warning stricter).
pub fn thread() -> Duration {
    #[cfg(target_os = "linux")]
    {
        usage(libc::RUSAGE_THREAD)
    }
    #[cfg(not(target_os = "linux"))]
    {
        usage(libc::RUSAGE_SELF)
    }
}

fn usage(who: libc::c_int) -> Duration {
    // SAFETY: `rusage` is plain old data, so all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage that outlives the call.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let before = super::thread();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::thread() >= before);
        assert!(super::process() >= super::thread());
    }
}
