//! When an answer arrived: the kernel's receive timestamps (Linux).
//!
//! The event loop does not wake for every answer while it has a send due
//! soon: it sleeps until its next wake on the grid and reads everything
//! that arrived meanwhile, which cuts its sleeps and wakes (the dearest
//! part of a request on a virtual machine, where a sleeping vCPU halts)
//! from one per answer or two to one per tick. An answer read late must
//! not be timed late, though, so each socket asks the kernel to stamp the
//! packets it receives (`SO_TIMESTAMPNS`), and `recvmsg` returns the
//! stamp of the last packet it read: the moment the answer's last byte
//! reached this machine's network stack. Latency ends there, not when
//! the loop got round to reading it. A packet without a stamp (the kernel
//! turns stamping on asynchronously, so the first packets after the first
//! socket asks may have none) is timed when read: late, never early.
//!
//! The stamp is on the real-time clock; [`Clock`] maps it onto
//! [`Instant`] through a pair of readings of both clocks, taken again now
//! and then so that a slewed wall clock drifts by microseconds at most.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Asks the kernel to stamp the packets `fd` receives.
pub fn enable(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a c_int that outlives the call, and its size is
    // passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A receive stamp: nanoseconds on the real-time clock.
pub type Stamp = i128;

/// Reads from `fd` into `buf` like `read`, with the receive stamp of the
/// last packet read, when the kernel gave one.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Stamp>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timespec control message, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (which covers `buf`, writable for its
    // length) and at `control` (writable for msg_controllen bytes); all
    // three outlive the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR and CMSG_NXTHDR
    // walk its control buffer within msg_controllen and return null at
    // its end.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and points at a header inside
        // `control` (see above).
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS message carries one timespec
            // after its header; it may be unaligned, so it is read
            // unaligned.
            let ts: libc::timespec =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            stamp = Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
        }
        // SAFETY: as for CMSG_FIRSTHDR above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok((n as usize, stamp))
}

/// Maps receive stamps onto [`Instant`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    real: Stamp,
}

impl Clock {
    /// Both clocks read now.
    pub fn new() -> Clock {
        Clock {
            instant: Instant::now(),
            real: real_now(),
        }
    }

    /// The instant of `stamp`.
    pub fn instant(&self, stamp: Stamp) -> Instant {
        let since = stamp - self.real;
        if since >= 0 {
            self.instant + Duration::from_nanos(since.min(i128::from(u64::MAX)) as u64)
        } else {
            let before = Duration::from_nanos((-since).min(i128::from(u64::MAX)) as u64);
            self.instant.checked_sub(before).unwrap_or(self.instant)
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

fn real_now() -> Stamp {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec that outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_packet_read_later_keeps_the_time_it_arrived() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        enable(client.as_raw_fd()).unwrap();
        // The kernel turns packet stamping on for the box asynchronously
        // (`net_enable_timestamp` flips a static key from a work queue),
        // so on a box where no socket had asked for stamps, the first
        // packets may come unstamped (the loop then times them when read:
        // late, never early). Probe until stamps flow, for at most ~2 s.
        let mut buf = [0u8; 64];
        let mut stamped = false;
        for _ in 0..200 {
            server.write_all(b"probe").unwrap();
            std::thread::sleep(Duration::from_millis(10));
            let (n, stamp) = read(client.as_raw_fd(), &mut buf).unwrap();
            assert!(n > 0);
            if stamp.is_some() {
                stamped = true;
                break;
            }
        }
        assert!(stamped, "no receive stamp after 200 probes");
        let clock = Clock::new();
        let before = Instant::now();
        server.write_all(b"answer").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let read_at = Instant::now();
        let (n, stamp) = read(client.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"answer");
        let arrived = clock.instant(stamp.expect("a receive stamp"));
        // Stamped on arrival, before the read: ordering, not durations.
        assert!(arrived < read_at, "{arrived:?} vs read at {read_at:?}");
        assert!(arrived + Duration::from_millis(1) >= before);
    }
}
