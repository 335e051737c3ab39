//! The socket of one connection, as hyper sees it ([`ConnIo`]), and the
//! clock it shares with the connection's service ([`ConnClock`]).
//!
//! The clock answers the two questions `/metrics` needs to tell a slow
//! server from a slow client:
//!
//! - *How long did a request wait before its handler started?* Two
//!   measures, the larger wins. Each read notes its time, which sees the
//!   wait between the read and the handler (µs precision) but not the time
//!   the bytes sat in the socket while the runtime thread was busy with
//!   other connections. That part the kernel knows: `TCP_INFO`'s
//!   `tcpi_last_data_recv` is the age of the last data segment received,
//!   in jiffies (4 ms at `HZ=250`); less one jiffy, it is a lower bound of
//!   the wait that catches the waits that matter (tens of milliseconds
//!   behind a batch) without inflating short ones. (`SO_TIMESTAMPNS`
//!   would be exact, but Linux does not stamp TCP segments over loopback,
//!   where the reference box runs loadgen.)
//! - *How long did the response take to write?* The service notes when the
//!   response was ready; the next flush that completes (every byte handed
//!   to the kernel) observes the difference.
//!
//! And, as before: writes fail with `TimedOut` once the client has taken no
//! bytes for the write timeout (hyper has none).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use std::os::fd::{AsRawFd, RawFd};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::keys::ClientId;
use crate::metrics::{Metrics, Phase};
use crate::router::Route;

/// What a connection's socket and its service tell each other. One task
/// owns a connection, so the atomics are never contended.
#[derive(Debug)]
pub struct ConnClock {
    /// The connection's socket, for `TCP_INFO`; open for as long as the
    /// connection (and so its service, the only caller) lives.
    fd: RawFd,
    /// When the last read returned bytes, in nanoseconds since [`epoch`].
    read_ns: AtomicU64,
    /// Whether the runtime thread that made that read had read nothing for
    /// more than a jiffy before it: only then can bytes have sat unread in
    /// the socket long enough for `TCP_INFO` to tell more than `read_ns`.
    thread_was_away: AtomicBool,
    /// When the last response was handed to hyper, in nanoseconds since
    /// [`epoch`]; 0 when no response waits to be flushed.
    ready_ns: AtomicU64,
    /// The route and client of that response, packed (route << 16 | client).
    ready_cell: AtomicU32,
}

/// A process-wide monotonic origin for the clock's times.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch_ns(at: Instant) -> u64 {
    // +1: 0 means "never" or "nothing pending".
    at.saturating_duration_since(epoch()).as_nanos() as u64 + 1
}

/// The coarsest jiffy in common use (`HZ=250`): the kernel's data age is
/// that much too high at worst.
const JIFFY: Duration = Duration::from_millis(4);

impl ConnClock {
    /// The clock of an accepted socket.
    pub fn new(stream: &TcpStream) -> ConnClock {
        ConnClock {
            fd: stream.as_raw_fd(),
            read_ns: AtomicU64::new(0),
            thread_was_away: AtomicBool::new(true),
            ready_ns: AtomicU64::new(0),
            ready_cell: AtomicU32::new(0),
        }
    }

    /// How long the request whose handler starts now has waited since its
    /// bytes arrived (see the module docs; zero when unknown).
    pub fn queue_wait(&self) -> Duration {
        let now = Instant::now();
        let read = self.read_ns.load(Ordering::Relaxed);
        let since_read = match read {
            0 => Duration::ZERO,
            read => Duration::from_nanos(since_epoch_ns(now).saturating_sub(read)),
        };
        if !self.thread_was_away.load(Ordering::Relaxed) {
            // The thread read another socket less than a jiffy before this
            // one, so it was not stalled by a long handler; the kernel's
            // age, a jiffy coarse, would rarely add to `since_read` then.
            // Asked on every request, the syscall cost 11 % of a GET's
            // throughput (server/bench/overload-cost.sh).
            return since_read;
        }
        since_read.max(last_data_age(self.fd).saturating_sub(JIFFY))
    }

    /// Notes that the response of `route` for `client` is ready to be
    /// written; the next completed flush observes its write time.
    pub fn response_ready(&self, route: Route, client: ClientId) {
        let cell = (route.index() as u32) << 16 | u32::from(client);
        self.ready_cell.store(cell, Ordering::Relaxed);
        self.ready_ns
            .store(since_epoch_ns(Instant::now()), Ordering::Relaxed);
    }

    fn read(&self) {
        thread_local! {
            /// When this runtime thread last read bytes from any socket.
            static LAST_READ_NS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        let now = since_epoch_ns(Instant::now());
        let previous = LAST_READ_NS.replace(now);
        let away = now.saturating_sub(previous) > JIFFY.as_nanos() as u64;
        self.thread_was_away.store(away, Ordering::Relaxed);
        self.read_ns.store(now, Ordering::Relaxed);
    }

    /// Observes the write time of the response that was ready, if any.
    fn flushed(&self, metrics: &Metrics) {
        let ready = self.ready_ns.swap(0, Ordering::Relaxed);
        if ready == 0 {
            return;
        }
        let cell = self.ready_cell.load(Ordering::Relaxed);
        let Some(route) = Route::ALL.get((cell >> 16) as usize) else {
            return;
        };
        let took = since_epoch_ns(Instant::now()).saturating_sub(ready);
        metrics.observe_phase(
            *route,
            cell as u16,
            Phase::Write,
            Duration::from_nanos(took),
        );
    }
}

/// The age of the last data segment the kernel received on `fd`
/// (`TCP_INFO`'s `tcpi_last_data_recv`); zero where unavailable.
#[cfg(target_os = "linux")]
fn last_data_age(fd: RawFd) -> Duration {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable tcp_info and `len` its size; the kernel
    // writes at most `len` bytes. `fd` is the connection's open socket (see
    // `ConnClock::fd`).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < std::mem::size_of::<libc::tcp_info>() / 2 {
        return Duration::ZERO;
    }
    // SAFETY: zero-initialised, then (partly) written by the kernel: every
    // field is an integer, valid at any value.
    let info = unsafe { info.assume_init() };
    Duration::from_millis(u64::from(info.tcpi_last_data_recv))
}

#[cfg(not(target_os = "linux"))]
fn last_data_age(_fd: RawFd) -> Duration {
    Duration::ZERO
}

/// The socket of one connection: reads with kernel receive stamps, a write
/// timeout, and write times observed into the metrics.
pub struct ConnIo {
    stream: TcpStream,
    clock: Arc<ConnClock>,
    state: Arc<crate::state::State>,
    timeout: Duration,
    /// Set while a write is refused.
    stalled: bool,
    /// The deadline of the current stall; kept to be reset, not reallocated.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ConnIo {
    /// Wraps an accepted socket.
    pub fn new(
        stream: TcpStream,
        clock: Arc<ConnClock>,
        state: Arc<crate::state::State>,
        timeout: Duration,
    ) -> ConnIo {
        ConnIo {
            stream,
            clock,
            state,
            timeout,
            stalled: false,
            timer: None,
        }
    }

    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = false;
            return result;
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timer = match (&mut self.timer, self.stalled) {
            (Some(timer), true) => timer,
            (Some(timer), false) => {
                timer.as_mut().reset(deadline);
                timer
            }
            (timer @ None, _) => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.stalled = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has not read its responses",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.clock.read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.check(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.check(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_flush(cx);
        // hyper flushes the socket once its write buffer is empty: the
        // response is in the kernel.
        if let Poll::Ready(Ok(())) = result {
            this.clock.flushed(&this.state.metrics);
        }
        this.check(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
