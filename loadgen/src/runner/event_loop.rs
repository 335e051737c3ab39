//! The open model over plain HTTP/1.1 as one hand-polled event loop per
//! worker thread, like wrk's: non-blocking sockets on one epoll (through
//! `mio`) and per connection a state instead of a task.
//!
//! Why: at wrk's top rate the tokio engine ([`super::worker`]) spent about
//! 16 % of its CPU in its own code against wrk's 7 % (perf, RESULTS.md):
//! a task per connection, a `Notify` to hand it each request, a waker per
//! answer, a timer-wheel entry per connection. Here a due request is
//! written on an idle connection's socket directly from the dispatch loop,
//! and an answer is read, parsed ([`AnswerReader`]) and recorded where
//! epoll reports it: per request one `write`, one `read` and a share of an
//! `epoll_wait`, and no allocation.
//!
//! Sleeps and wakes cost more than all of that: measured at 20,000/s,
//! waking for every answer made 0.8 context switches per request and
//! ~14 µs of CPU; sleeping from one send wake to the next and reading
//! what arrived meanwhile made 0.2 and ~9 µs. So while a send is due
//! within the wake grid's step the loop sleeps to it, and answers read
//! late are timed by their kernel receive stamps ([`crate::arrival`]), not
//! by when they were read. Only while connections are plentiful, though
//! (twice the requests due per wake idle or unopened): an answer read late
//! keeps its connection busy, and at the cap a due request would wait for
//! it. Near the cap the loop sleeps on a finer grid that the spare
//! connections fit (down to 50 µs, [`coalesce_step`]); below that, while
//! a request waits for a connection, and while the run drains, it wakes
//! for the first answer or for the timerfd that marks the next send.
//!
//! The semantics are the tokio engine's, so reports mean the same: latency
//! runs from the intended send time; behind-schedule time from when a
//! request could leave to just before its bytes are written; one request
//! in flight per connection (no pipelining: with a connection cap, a
//! request beyond it waits, counted as `waited_for_connection`); at most
//! [`MAX_CONNECTING`] handshakes at once per target, opened no faster than
//! the pool's [`OpenBudget`] allows (a request that finds no connection
//! and no opening waits too, and counts alike); a request on a reused
//! connection that the server closed is sent once more on a fresh one;
//! a request times out `timeout` after its intended send time.
//! TLS targets and the hyper client stay on the tokio engine.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::opening::OpenBudget;
use super::worker::MAX_CONNECTING;
use super::worker::{
    on_grid, thread_budget, thread_cap, thread_connect_rate, Job, ThreadCtx, ThreadOut, Ticks,
};
use super::{bump, AuthTable, Live, Model, Reuse, RunConfig, ThreadLive};
use crate::answer::{AnswerReader, Done};
use crate::arrival::{self, Clock};
use crate::error::{Error, Result};
use crate::feed::Feed;
use crate::http::write_request;
use crate::rate::{RateCurve, Schedule};
use crate::stats::Recorder;
use crate::timer::{realtime_priority, reduce_timer_slack, WakeTimer};
use crate::workload::{Meta, Request};

/// The timerfd's token; connections use their slot index.
const TIMER: Token = Token(usize::MAX);

/// Bytes read per `read`. An answer shorter than this that arrives whole
/// is parsed straight from it.
const READ_BUF: usize = 64 * 1024;

/// Request buffers kept between requests; a rare large batch must not pin
/// its memory to the connection for the rest of the run.
const KEEP: usize = 16 * 1024;

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// TCP handshake under way, its request waiting. `again`: a request
    /// being sent once more after its reused connection failed (already
    /// built and counted as sent).
    Connecting { again: bool },
    /// Waiting for work, in its pool's idle list.
    Idle,
    /// A request written (or being written) and its answer awaited.
    Busy,
}

struct Connection {
    stream: TcpStream,
    target: usize,
    phase: Phase,
    job: Job,
    meta: Option<Meta>,
    req: Request,
    wire: Vec<u8>,
    /// Bytes of `wire` written so far.
    written: usize,
    reader: AnswerReader,
    /// Answers received on this connection: a failure after one is the
    /// server closing an idle keep-alive connection, worth one more try.
    answered: u64,
    /// The current request is already on its second connection.
    again: bool,
}

/// One target's connections on this thread.
struct Pool {
    /// Idle connections, the longest idle at the front ([`Reuse`]).
    idle: VecDeque<usize>,
    open: usize,
    connecting: usize,
    cap: usize,
    /// How fast new connections may open.
    opening: OpenBudget,
}

/// How a due request was placed.
enum Placed {
    /// On a connection (idle or being opened).
    Yes,
    /// Every connection is busy and no more may be opened now: it waits.
    /// `for_pool`: because of the connection cap or the opening budget
    /// (not only handshakes under way), which the report counts as waiting
    /// for a connection.
    No { for_pool: bool },
}

struct EventLoop {
    config: Arc<RunConfig>,
    auth: Arc<AuthTable>,
    live: Arc<Live>,
    counters: Arc<ThreadLive>,
    feed: Feed,
    feed_failed: bool,
    recorder: Recorder,
    poll: Poll,
    /// Wakes the loop for a send while it also waits for answers.
    timer: WakeTimer,
    /// The instant the timer is armed for, to skip re-arming it.
    armed: Option<Instant>,
    /// Maps the kernel's receive stamps onto Instant.
    clock: Clock,
    /// The loop is woken per answer (not sleeping through answers to the
    /// next send): an answer is read soon after it arrives, so it is timed
    /// when read, and a plain `read` spares `recvmsg`'s control message.
    woken_per_answer: bool,
    slots: Vec<Option<Connection>>,
    free_slots: Vec<usize>,
    pools: Vec<Pool>,
    /// Connections with a request in flight or a handshake under way.
    in_flight: usize,
    read_buf: Box<[u8]>,
    last_completion: Instant,
    /// A clock reading taken when the loop last woke: a receive stamp
    /// not after it is surely in the past (see [`answer_end`]).
    seen: Instant,
}

pub(super) fn thread_main(ctx: ThreadCtx) -> Result<ThreadOut> {
    reduce_timer_slack();
    let (curve, poisson) = match &ctx.config.model {
        Model::Open { curve, poisson, .. } => (curve.clone(), *poisson),
        Model::Closed { .. } => {
            return Err(Error::Runtime {
                source: io::Error::other("the event loop runs the open model only"),
            })
        }
    };
    let realtime =
        ctx.config.realtime.wanted(curve.peak(), ctx.threads) && realtime_priority().is_ok();
    let runtime = |source: io::Error| Error::Runtime { source };
    let config = Arc::clone(&ctx.config);
    let (feed, builder) = Feed::new(
        ctx.generator,
        ctx.build_ahead,
        format!("loadgen-{}-build", ctx.index),
    )?;
    let poll = Poll::new().map_err(runtime)?;
    let timer = WakeTimer::new().map_err(runtime)?;
    poll.registry()
        .register(&mut SourceFd(&timer.raw_fd()), TIMER, Interest::READABLE)
        .map_err(runtime)?;
    let cap = thread_cap(&config, ctx.threads);
    let connect_rate = thread_connect_rate(&config, ctx.threads);
    let mut lp = EventLoop {
        config: Arc::clone(&config),
        auth: ctx.auth,
        live: ctx.live,
        counters: ctx.thread_live,
        feed,
        feed_failed: false,
        recorder: Recorder::new(ctx.start, config.interval, ctx.callers.len()),
        poll,
        timer,
        armed: None,
        clock: Clock::new(),
        woken_per_answer: false,
        slots: Vec::new(),
        free_slots: Vec::new(),
        pools: (0..config.targets.len())
            .map(|_| Pool {
                idle: VecDeque::new(),
                open: 0,
                connecting: 0,
                cap,
                opening: OpenBudget::new(connect_rate, ctx.start),
            })
            .collect(),
        in_flight: 0,
        read_buf: vec![0; READ_BUF].into_boxed_slice(),
        last_completion: ctx.start,
        seen: ctx.start,
    };
    let schedule = Schedule::new(curve.clone(), poisson, config.seed, ctx.index, ctx.threads);
    let ticks = match config.tick {
        Some(fixed) => Ticks::Fixed(fixed),
        None => Ticks::Auto {
            curve: curve.clone(),
            threads: ctx.threads,
        },
    };
    std::thread::sleep(ctx.start.saturating_duration_since(Instant::now()));
    let budget = thread_budget(&config, ctx.index, ctx.threads);
    let (unsent, waited) = lp
        .run(
            schedule,
            ticks,
            (&curve, ctx.index, ctx.threads),
            ctx.start,
            budget,
        )
        .map_err(runtime)?;
    lp.close_all();
    let cpu = crate::cpu::thread();
    if lp.feed_failed {
        return Err(runtime(io::Error::other("the request builder thread died")));
    }
    let EventLoop {
        feed,
        recorder,
        last_completion,
        ..
    } = lp;
    // Dropping the feed ends the builder thread.
    drop(feed);
    let builder_cpu = builder.map_or(Duration::ZERO, |b| b.join().unwrap_or_default());
    Ok(ThreadOut {
        cpu: cpu.max(builder_cpu),
        stats: recorder.finish(&ctx.callers),
        last_completion,
        unsent,
        waited,
        realtime,
    })
}

/// The finest wake grid the loop sleeps through answers on when the
/// configured one would send more per wake than the spare connections
/// can take. Measured at 92,000/s on two threads of 32 connections (1 M
/// demo, `perf stat`, before this finer grid existed): woken per answer
/// the loop made 0.5-0.75 context switches per request; forced onto a
/// fixed 100, 150 or 250 µs grid (`--tick`) 0.17-0.18, 0.12-0.14 and
/// 0.13-0.14, and its own CPU per request fell by 7-10, 15-17 and 7-16 %.
pub(super) const FINE_TICK_MAX: Duration = Duration::from_micros(150);

/// Below this step a grid saves too few wakes against waking per answer
/// (at most a couple of requests per wake) to be worth the lateness.
pub(super) const FINE_TICK_MIN: Duration = Duration::from_micros(50);

/// The grid step on which the loop may sleep through answers to its next
/// send, or `None` to wake for the first answer. `tick`: the configured
/// grid; `per_thread`: this thread's share of the rate (requests/s);
/// `spare`: connections that could take a request now.
///
/// Sleeping through answers is safe while the requests due per wake are
/// at most half the spare connections, so that a due request does not
/// find them all busy with answers not yet read. The configured grid is
/// kept when it fits. At the connection cap (wrk's top rate with 64
/// connections) it does not, and waking per answer costs a context switch
/// for every request or two; a finer grid that fits, down to
/// [`FINE_TICK_MIN`], sends a few requests per wake instead. Either way
/// a send waits for its grid point at most one step, and that lateness
/// stays in the latency (timed from the intended send), while answers
/// read late are timed by their kernel receive stamps.
pub(super) fn coalesce_step(tick: Duration, per_thread: f64, spare: usize) -> Option<Duration> {
    let spare = spare as f64;
    let due = per_thread * tick.as_secs_f64();
    if spare >= 2.0 * due.max(1.0) {
        return Some(tick);
    }
    if tick.is_zero() || per_thread.is_nan() || per_thread <= 0.0 {
        return None;
    }
    let fits = Duration::from_secs_f64(spare / (2.0 * per_thread));
    let step = fits.min(FINE_TICK_MAX).min(tick);
    (step >= FINE_TICK_MIN).then_some(step)
}

/// When an answer ended, for its latency: its kernel receive stamp
/// `arrived` if there is one, else now (when it was read); never before
/// the intended send and never after now. `seen` is a clock reading taken
/// earlier (when the loop woke): a stamp not after it is in the past
/// without reading the clock again, which saves a clock read per answer
/// read on a wake that slept through answers. Only a stamp after `seen`
/// (the answer came while the loop was reading others) or no stamp reads
/// the clock (`now`).
fn answer_end(
    intended: Instant,
    arrived: Option<Instant>,
    seen: Instant,
    now: impl FnOnce() -> Instant,
) -> Instant {
    match arrived {
        Some(a) if a <= seen => a.max(intended).min(seen),
        Some(a) => {
            let now = now();
            a.max(intended).min(now)
        }
        None => now(),
    }
}

/// Where thread `index` of `threads` starts its grid of `step`: the
/// threads' wakes are spread over the step, so that their sends do not
/// reach the server together.
pub(super) fn grid_start(start: Instant, step: Duration, index: usize, threads: usize) -> Instant {
    let threads = threads.max(1) as u32;
    start + step / threads * (index as u32 % threads)
}

impl EventLoop {
    /// Sends the schedule until the deadline, then waits for the answers
    /// in flight. `share`: the rate curve, this thread's index and how
    /// many threads share it.
    /// Returns (unsent, waited for a connection).
    fn run(
        &mut self,
        mut schedule: Schedule,
        ticks: Ticks,
        (curve, index, threads): (&RateCurve, usize, usize),
        start: Instant,
        mut budget: u64,
    ) -> io::Result<(u64, u64)> {
        let deadline = start + self.config.duration;
        let at = |t: f64| start + Duration::from_secs_f64(t);
        let targets = self.pools.len();
        let mut next_target = 0;
        let mut next = schedule.next_time().map(at);
        // A due request that found every connection busy, with its target
        // and whether it was counted as waiting.
        let mut blocked: Option<(Job, usize)> = None;
        let mut pool_freed_at = start;
        let (mut unsent, mut waited) = (0u64, 0u64);
        let mut sending = true;
        let mut events = Events::with_capacity(1024);
        let scan_every = (self.config.timeout / 10).max(Duration::from_millis(1));
        let mut next_scan = start + scan_every;
        loop {
            let now = Instant::now();
            if sending {
                loop {
                    let (job, target, was_blocked) = match blocked.take() {
                        Some((job, target)) => (job, target, true),
                        None => match next {
                            Some(t) if t <= now => {
                                if t >= deadline || budget == 0 {
                                    sending = false;
                                    break;
                                }
                                budget -= 1;
                                next = schedule.next_time().map(at);
                                let target = next_target;
                                next_target = (next_target + 1) % targets;
                                let job = Job {
                                    intended: t,
                                    eligible: t.max(pool_freed_at),
                                };
                                (job, target, false)
                            }
                            Some(_) => break,
                            None => {
                                sending = false;
                                break;
                            }
                        },
                    };
                    match self.place(job, target)? {
                        Placed::Yes if was_blocked => pool_freed_at = Instant::now(),
                        Placed::Yes => {}
                        Placed::No { for_pool } => {
                            if for_pool && !was_blocked {
                                waited += 1;
                            }
                            blocked = Some((job, target));
                            break;
                        }
                    }
                    if self.feed_failed {
                        sending = false;
                        break;
                    }
                }
                if blocked.is_some() && now >= deadline {
                    // The run ends with this request still waiting.
                    blocked = None;
                    unsent += 1;
                    sending = false;
                }
                if !sending {
                    // Whatever the schedule still held before the deadline
                    // was never sent.
                    while let Some(t) = next {
                        if t >= deadline || budget == 0 || self.feed_failed {
                            break;
                        }
                        budget -= 1;
                        unsent += 1;
                        next = schedule.next_time().map(at);
                    }
                }
            }
            if !sending && self.in_flight == 0 {
                return Ok((unsent, waited));
            }
            // The next grid point that has a request due, and whether the
            // loop may sleep through answers until then: only while
            // connections are plentiful, since an answer read late leaves
            // its connection busy meanwhile, and at the cap a due request
            // would wait for it (see `coalesce_step`).
            let (wake, coalesce) = match (sending, blocked.is_some(), next) {
                (true, false, Some(t)) => {
                    let since = t.saturating_duration_since(start);
                    let tick = ticks.at(since);
                    let per_thread = curve.rate_at(since.as_secs_f64()) / threads as f64;
                    match coalesce_step(tick, per_thread, self.spare(now)) {
                        Some(step) => (
                            Some(on_grid(t, grid_start(start, step, index, threads), step)),
                            true,
                        ),
                        None => (Some(on_grid(t, start, tick)), false),
                    }
                }
                _ => (None, false),
            };
            let result = match wake {
                Some(wake) if coalesce => {
                    // Read all that came meanwhile; their receive stamps
                    // time them (see crate::arrival).
                    let until = wake.min(next_scan);
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    self.poll.poll(&mut events, Some(Duration::ZERO))
                }
                Some(wake) if wake <= Instant::now() => {
                    self.poll.poll(&mut events, Some(Duration::ZERO))
                }
                _ => {
                    // Wake for the first answer (or the send, on the timer).
                    self.arm(wake)?;
                    let mut limit = next_scan.saturating_duration_since(Instant::now());
                    if let Some((_, target)) = blocked {
                        let now = Instant::now();
                        limit = limit.min(deadline.saturating_duration_since(now));
                        // Out of openings: wake when the next one is due.
                        if let Some(at) = self.opening_due(target, now) {
                            limit = limit.min(at.saturating_duration_since(now));
                        }
                    }
                    self.poll.poll(&mut events, Some(limit))
                }
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            }
            self.woken_per_answer = !coalesce;
            self.seen = Instant::now();
            for event in events.iter() {
                let token = event.token();
                if token == TIMER {
                    // Re-arming clears the expiry: see WakeTimer::arm.
                    self.armed = None;
                    continue;
                }
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                self.on_event(token.0, readable)?;
            }
            let now = self.seen;
            if now >= next_scan {
                next_scan = now + scan_every;
                self.time_out(now)?;
                self.clock = Clock::new();
            }
        }
    }

    /// Arms the timer for `wake` unless it already is; with nothing to
    /// wake for, a stale arming fires once at most.
    fn arm(&mut self, wake: Option<Instant>) -> io::Result<()> {
        if let Some(w) = wake.filter(|&w| self.armed != Some(w)) {
            self.timer.arm(w)?;
            self.armed = Some(w);
        }
        Ok(())
    }

    /// When `target`'s pool may open its next connection, if only its
    /// opening budget (not the cap, not handshakes under way) holds a
    /// waiting request back.
    fn opening_due(&self, target: usize, now: Instant) -> Option<Instant> {
        let pool = &self.pools[target];
        if pool.open >= pool.cap || pool.connecting >= MAX_CONNECTING {
            return None;
        }
        pool.opening.next_at(now)
    }

    /// Connections that could take a request now: idle, or not yet opened
    /// under the cap and the opening budget.
    fn spare(&self, now: Instant) -> usize {
        self.pools
            .iter()
            .map(|p| {
                let openable = p.cap.saturating_sub(p.open);
                p.idle.len() + openable.min(p.opening.available(now))
            })
            .sum()
    }

    /// Puts a due request on an idle connection or a new one.
    fn place(&mut self, job: Job, target: usize) -> io::Result<Placed> {
        let pool = &mut self.pools[target];
        let idle = match self.config.reuse {
            Reuse::LongestIdle => pool.idle.pop_front(),
            Reuse::LastFreed => pool.idle.pop_back(),
        };
        if let Some(slot) = idle {
            self.in_flight += 1;
            self.start_request(slot, job);
            return Ok(Placed::Yes);
        }
        if pool.open >= pool.cap {
            return Ok(Placed::No { for_pool: true });
        }
        if pool.connecting >= MAX_CONNECTING {
            return Ok(Placed::No { for_pool: false });
        }
        if !pool.opening.try_take(Instant::now()) {
            return Ok(Placed::No { for_pool: true });
        }
        pool.open += 1;
        pool.connecting += 1;
        self.in_flight += 1;
        self.open_connection(target, job)?;
        Ok(Placed::Yes)
    }

    /// Opens a connection for `job` (the pool has counted it).
    fn open_connection(&mut self, target: usize, job: Job) -> io::Result<()> {
        let addr = self.config.targets[target].addr;
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(_) => {
                self.pools[target].connecting -= 1;
                self.pools[target].open -= 1;
                self.in_flight -= 1;
                self.fail_unbuilt(job);
                return Ok(());
            }
        };
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.slots[slot] = Some(Connection {
            stream,
            target,
            phase: Phase::Connecting { again: false },
            job,
            meta: None,
            req: Request::default(),
            wire: Vec::with_capacity(256),
            written: 0,
            reader: AnswerReader::default(),
            answered: 0,
            again: false,
        });
        Ok(())
    }

    /// Records a request that never reached a connection (the connect
    /// failed at once) as sent without an answer, as the tokio engine does.
    fn fail_unbuilt(&mut self, job: Job) {
        let mut req = Request::default();
        let Some(meta) = self.feed.next(&mut req) else {
            self.feed_failed = true;
            return;
        };
        bump(&self.counters.sent);
        self.recorder.sent(job.intended);
        self.record(meta, job.intended, None);
    }

    /// Builds the request for `slot`'s job and writes it.
    fn start_request(&mut self, slot: usize, job: Job) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        c.phase = Phase::Busy;
        c.job = job;
        c.again = false;
        let Some(meta) = self.feed.next(&mut c.req) else {
            // The builder thread died: end the run rather than spin.
            self.feed_failed = true;
            self.in_flight -= 1;
            self.drop_connection(slot);
            return;
        };
        c.meta = Some(meta);
        let late = Instant::now().saturating_duration_since(job.eligible);
        self.recorder.behind(late);
        let late_us = late.as_micros() as u64;
        if late_us
            > self
                .counters
                .behind_max_us
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.counters
                .behind_max_us
                .store(late_us, std::sync::atomic::Ordering::Relaxed);
        }
        let (main, basic) = &self.auth[meta.caller as usize];
        let auth = if meta.basic_key {
            basic.as_deref()
        } else {
            main.as_deref()
        };
        write_request(&mut c.wire, &c.req, &self.config.targets[c.target], auth);
        c.written = 0;
        bump(&self.counters.sent);
        self.recorder.sent(job.intended);
        self.write_some(slot);
    }

    /// Writes what is left of `slot`'s request; a full socket buffer waits
    /// for a writable event.
    fn write_some(&mut self, slot: usize) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        while c.written < c.wire.len() {
            match c.stream.write(&c.wire[c.written..]) {
                Ok(0) => return self.failed(slot),
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.failed(slot),
            }
        }
    }

    /// An event on a connection; `readable`: bytes, a close or an error to
    /// read (not only room to write).
    fn on_event(&mut self, slot: usize, readable: bool) -> io::Result<()> {
        let Some(c) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return Ok(());
        };
        match c.phase {
            Phase::Connecting { again } => {
                match c.stream.take_error() {
                    Ok(None) => {}
                    _ => return self.connect_failed(slot, again),
                }
                match c.stream.peer_addr() {
                    Ok(_) => {}
                    // Not connected yet: a later event will say.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                    Err(_) => return self.connect_failed(slot, again),
                }
                let _ = c.stream.set_nodelay(true);
                // Without stamps answers are timed when read: later, never
                // earlier.
                let _ = arrival::enable(c.stream.as_raw_fd());
                self.live.connected();
                if again {
                    c.phase = Phase::Busy;
                    c.written = 0;
                    self.write_some(slot);
                } else {
                    self.pools[c.target].connecting -= 1;
                    // The handshake is the connection's, not a late send:
                    // the request counts as eligible from when it is done.
                    let job = Job {
                        eligible: c.job.eligible.max(Instant::now()),
                        ..c.job
                    };
                    self.start_request(slot, job);
                }
            }
            Phase::Busy if c.written < c.wire.len() => {
                self.write_some(slot);
                // The server may answer (and close) before taking the
                // whole request; edge-triggered, that event is this one.
                let sent = self.slots[slot]
                    .as_ref()
                    .is_some_and(|c| c.phase == Phase::Busy && c.written == c.wire.len());
                if sent && readable {
                    self.read_answer(slot);
                }
            }
            Phase::Busy if readable => self.read_answer(slot),
            Phase::Idle if readable => self.read_idle(slot),
            Phase::Busy | Phase::Idle => {}
        }
        Ok(())
    }

    fn connect_failed(&mut self, slot: usize, again: bool) -> io::Result<()> {
        let Some(c) = self.slots[slot].take() else {
            return Ok(());
        };
        self.free_slots.push(slot);
        let pool = &mut self.pools[c.target];
        pool.open -= 1;
        self.in_flight -= 1;
        if again {
            // Built and counted as sent: record it as unanswered.
            if let Some(meta) = c.meta {
                self.record(meta, c.job.intended, None);
            }
        } else {
            pool.connecting -= 1;
            self.fail_unbuilt(c.job);
        }
        Ok(())
    }

    /// Reads `slot`'s answer as far as it has arrived.
    fn read_answer(&mut self, slot: usize) {
        loop {
            let Some(c) = self.slots[slot].as_mut() else {
                return;
            };
            let read = if self.woken_per_answer {
                c.stream.read(&mut self.read_buf).map(|n| (n, None))
            } else {
                arrival::read(c.stream.as_raw_fd(), &mut self.read_buf)
            };
            let (done, stamp) = match read {
                Ok((0, _)) => (c.reader.eof(), None),
                Ok((n, stamp)) => match c.reader.feed(&self.read_buf[..n]) {
                    Ok(Some(done)) => (Ok(done), stamp),
                    Ok(None) if n == self.read_buf.len() => continue,
                    // A short read emptied the socket; edge-triggered epoll
                    // reports the next bytes as a new event.
                    Ok(None) => return,
                    Err(e) => (Err(e), None),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => (Err(e), None),
            };
            match done {
                Ok(done) => {
                    let at = stamp.map(|s| self.clock.instant(s));
                    self.answered(slot, done, at)
                }
                Err(_) => self.failed(slot),
            }
            return;
        }
    }

    /// Something arrived on an idle connection: the server closing it (its
    /// idle timeout), or bytes nobody asked for. Either way it is closed.
    fn read_idle(&mut self, slot: usize) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        match c.stream.read(&mut self.read_buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => {
                let target = c.target;
                self.pools[target].idle.retain(|&s| s != slot);
                self.drop_connection(slot);
            }
        }
    }

    /// `arrived`: the answer's receive stamp, if the kernel gave one.
    fn answered(&mut self, slot: usize, done: Done, arrived: Option<Instant>) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        c.answered += 1;
        let (meta, intended, target) = (c.meta, c.job.intended, c.target);
        if c.wire.capacity() > KEEP {
            c.wire = Vec::with_capacity(256);
        }
        if c.req.body.capacity() > KEEP {
            c.req.body = Vec::new();
        }
        self.in_flight -= 1;
        if done.close {
            self.drop_connection(slot);
        } else {
            c.phase = Phase::Idle;
            self.pools[target].idle.push_back(slot);
        }
        if let Some(meta) = meta {
            self.record_at(meta, intended, Some(done), arrived);
        }
    }

    /// The connection broke with a request on it: send the request once
    /// more on a fresh connection if this one had carried answers before
    /// (the server closed it while idle), else record it unanswered.
    fn failed(&mut self, slot: usize) {
        let Some(c) = self.slots[slot].as_mut() else {
            return;
        };
        let addr = self.config.targets[c.target].addr;
        if c.answered > 0 && !c.again {
            if let Ok(mut stream) = TcpStream::connect(addr) {
                let registry = self.poll.registry();
                let _ = registry.deregister(&mut c.stream);
                if registry
                    .register(
                        &mut stream,
                        Token(slot),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_ok()
                {
                    self.live.disconnected();
                    c.stream = stream;
                    c.phase = Phase::Connecting { again: true };
                    c.again = true;
                    c.answered = 0;
                    c.reader.reset();
                    return;
                }
            }
        }
        let (meta, intended) = (c.meta, c.job.intended);
        self.in_flight -= 1;
        self.drop_connection(slot);
        if let Some(meta) = meta {
            self.record(meta, intended, None);
        }
    }

    /// Closes a connection that has no request in flight (or whose request
    /// the caller records).
    fn drop_connection(&mut self, slot: usize) {
        let Some(mut c) = self.slots[slot].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        if !matches!(c.phase, Phase::Connecting { .. }) {
            self.live.disconnected();
        } else if c.phase == (Phase::Connecting { again: false }) {
            self.pools[c.target].connecting -= 1;
        }
        self.pools[c.target].open -= 1;
        self.free_slots.push(slot);
    }

    /// Requests past their timeout (from the intended send time) end
    /// unanswered, and their connections close.
    fn time_out(&mut self, now: Instant) -> io::Result<()> {
        let timeout = self.config.timeout;
        for slot in 0..self.slots.len() {
            let Some(c) = self.slots[slot].as_ref() else {
                continue;
            };
            if c.phase == Phase::Idle || now < c.job.intended + timeout {
                continue;
            }
            let (meta, job, phase) = (c.meta, c.job, c.phase);
            self.in_flight -= 1;
            self.drop_connection(slot);
            match (phase, meta) {
                (Phase::Connecting { again: false }, _) => self.fail_unbuilt(job),
                (_, Some(meta)) => self.record(meta, job.intended, None),
                (_, None) => {}
            }
        }
        Ok(())
    }

    /// Records an answer (or its absence) timed from the intended send
    /// to now.
    fn record(&mut self, meta: Meta, intended: Instant, done: Option<Done>) {
        self.record_at(meta, intended, done, None);
    }

    /// [`Self::record`] to when the answer arrived, if known (never later
    /// than now, never before the intended send).
    fn record_at(
        &mut self,
        meta: Meta,
        intended: Instant,
        done: Option<Done>,
        arrived: Option<Instant>,
    ) {
        let now = answer_end(intended, arrived, self.seen, Instant::now);
        let status = done.map(|d| d.answer.status);
        let shed = done.is_some_and(|d| d.answer.shed());
        let error = self.recorder.record(
            meta,
            status,
            shed,
            now.saturating_duration_since(intended),
            now,
        );
        bump(&self.counters.completed);
        if error {
            bump(&self.counters.errors);
        }
        if now > self.last_completion {
            self.last_completion = now;
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.drop_connection(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_configured_grid_is_kept_while_spare_connections_fit_it() {
        // 46 due per 1 ms wake: 92 spare connections take them.
        assert_eq!(coalesce_step(MS, 46_000.0, 92), Some(MS));
        // A trickle: one due per wake needs two spare.
        assert_eq!(coalesce_step(MS, 100.0, 2), Some(MS));
    }

    #[test]
    fn at_the_cap_a_finer_grid_that_fits_is_taken() {
        let step = coalesce_step(MS, 46_000.0, 27).expect("a finer grid fits");
        assert_eq!(step, FINE_TICK_MAX);
        // Its sends fit the spare connections twice over.
        let step = coalesce_step(MS, 46_000.0, 10).expect("a finer grid fits");
        assert!(46_000.0 * step.as_secs_f64() * 2.0 <= 10.0 + 1e-3);
        assert!(step >= FINE_TICK_MIN && step < FINE_TICK_MAX);
    }

    #[test]
    fn too_few_spare_connections_wake_per_answer() {
        assert_eq!(coalesce_step(MS, 46_000.0, 4), None);
        assert_eq!(coalesce_step(MS, 46_000.0, 0), None);
        // One wake per request (`--tick 0`) is never made coarser.
        assert_eq!(coalesce_step(Duration::ZERO, 46_000.0, 1), None);
        assert_eq!(
            coalesce_step(Duration::ZERO, 46_000.0, 2),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn a_finer_grid_is_never_coarser_than_the_configured_one() {
        let tick = Duration::from_micros(100);
        let step = coalesce_step(tick, 200_000.0, 30).expect("fits");
        assert!(step <= tick);
    }

    #[test]
    fn an_answer_ends_at_its_stamp_and_never_after_the_clock() {
        let t0 = Instant::now();
        let us = |n: u64| t0 + Duration::from_micros(n);
        let unread = || -> Instant { panic!("the clock was read") };
        // A stamp before the last clock reading: the stamp, clock unread.
        assert_eq!(answer_end(us(0), Some(us(50)), us(100), unread), us(50));
        // Never before the intended send.
        assert_eq!(answer_end(us(60), Some(us(50)), us(100), unread), us(60));
        // A stamp after the last reading is checked against the clock.
        assert_eq!(
            answer_end(us(0), Some(us(150)), us(100), || us(200)),
            us(150)
        );
        assert_eq!(
            answer_end(us(0), Some(us(250)), us(100), || us(200)),
            us(200)
        );
        // No stamp: timed when read.
        assert_eq!(answer_end(us(0), None, us(100), || us(120)), us(120));
    }

    #[test]
    fn threads_spread_their_grids_over_one_step() {
        let start = Instant::now();
        let step = Duration::from_micros(150);
        assert_eq!(grid_start(start, step, 0, 2), start);
        assert_eq!(grid_start(start, step, 1, 2), start + step / 2);
        assert_eq!(grid_start(start, step, 0, 1), start);
        // A grid point is never before the request it is for.
        let t = start + Duration::from_micros(10);
        assert!(on_grid(t, grid_start(start, step, 1, 2), step) >= t);
    }
}
