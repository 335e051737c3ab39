//! One worker thread: its event loop, connection pool, dispatcher (open
//! model) or connection loops (closed model), and the request path from
//! a due time to a recorded answer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::opening::OpenBudget;
use super::{auto_tick, bump, AuthTable, Live, Model, Reuse, RunConfig, ThreadLive};
use crate::error::{Error, Result};
use crate::feed::Feed;
use crate::http::{write_request, ClientKind, Conn};
use crate::rate::{RateCurve, Schedule};
use crate::stats::{Recorder, Stats};
use crate::timer::{realtime_priority, reduce_timer_slack, PreciseTimer};
use crate::workload::{Generator, Request};

pub(super) struct ThreadCtx {
    pub(super) index: usize,
    pub(super) threads: usize,
    pub(super) config: Arc<RunConfig>,
    pub(super) auth: Arc<AuthTable>,
    pub(super) generator: Generator,
    pub(super) build_ahead: bool,
    pub(super) live: Arc<Live>,
    pub(super) thread_live: Arc<ThreadLive>,
    pub(super) start: Instant,
    pub(super) callers: Vec<String>,
}

pub(super) struct ThreadOut {
    pub(super) stats: Stats,
    pub(super) cpu: Duration,
    pub(super) last_completion: Instant,
    pub(super) unsent: u64,
    pub(super) waited: u64,
    pub(super) realtime: bool,
}

/// A connection waiting for work in the open model.
#[derive(Default)]
struct Slot {
    job: Cell<Option<Job>>,
    wake: Notify,
}

/// One scheduled request of the open model.
#[derive(Debug, Clone, Copy)]
pub(super) struct Job {
    /// When the schedule wanted it sent; latency runs from here.
    pub(super) intended: Instant,
    /// From when it could have been sent had the generator been on time:
    /// `intended`, or later when every connection was busy (the server's
    /// doing) or its connection was still handshaking. Behind-schedule
    /// time runs from here to the moment its bytes are about to be written.
    pub(super) eligible: Instant,
}

/// One target's connections on one thread (open model).
struct Pool {
    /// Idle connections, the longest idle at the front ([`Reuse`]).
    idle: RefCell<VecDeque<Rc<Slot>>>,
    open: Cell<usize>,
    /// Connections whose TCP handshake is still under way.
    connecting: Cell<usize>,
    cap: usize,
    /// How fast new connections may open.
    opening: RefCell<OpenBudget>,
    /// Signalled when a connection turns idle or finishes connecting.
    freed: Notify,
}

/// Most connections one thread opens at once towards one target. Without
/// a bound, every request due while the first connections are still
/// handshaking opens one more: at 20,000/s the pool grew to over a hundred
/// connections for a load that needs five, and each extra connection is
/// CPU and memory on both sides. A request that finds none idle waits for
/// a handshake to finish instead; that wait is the generator's and counts
/// as behind schedule.
pub(super) const MAX_CONNECTING: usize = 8;

/// What the tasks of one thread share.
struct Shared {
    config: Arc<RunConfig>,
    auth: Arc<AuthTable>,
    live: Arc<Live>,
    counters: Arc<ThreadLive>,
    feed: Feed,
    /// The builder thread died (the run ends with an error).
    feed_failed: Cell<bool>,
    recorder: RefCell<Recorder>,
    deadline: Instant,
    budget: Cell<u64>,
    pools: Vec<Pool>,
    finished: Cell<bool>,
    tasks: Cell<usize>,
    tasks_done: Notify,
    last_completion: Cell<Instant>,
    unsent: Cell<u64>,
    waited: Cell<u64>,
}

impl Shared {
    fn take_budget(&self) -> bool {
        let b = self.budget.get();
        if b == 0 {
            return false;
        }
        self.budget.set(b - 1);
        true
    }

    fn task_started(&self) {
        self.tasks.set(self.tasks.get() + 1);
    }

    fn task_ended(&self) {
        self.tasks.set(self.tasks.get() - 1);
        self.tasks_done.notify_one();
    }
}

/// What a connection task keeps between requests.
#[derive(Default)]
struct Buffers {
    req: Request,
    wire: Vec<u8>,
    /// The connection's timeout timer, re-armed lazily (see [`execute`]).
    watchdog: Option<Pin<Box<tokio::time::Sleep>>>,
}

pub(super) fn thread_main(ctx: ThreadCtx) -> Result<ThreadOut> {
    reduce_timer_slack();
    // Only the open model: its threads sleep whenever nothing is due, while
    // a closed-model thread sends flat out and at real-time priority would
    // starve a server on the same cores.
    let realtime = match &ctx.config.model {
        Model::Open { curve, .. } => {
            ctx.config.realtime.wanted(curve.peak(), ctx.threads) && realtime_priority().is_ok()
        }
        Model::Closed { .. } => false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })?;
    let local = tokio::task::LocalSet::new();
    let config = Arc::clone(&ctx.config);
    let targets = config.targets.len();
    let cap = thread_cap(&config, ctx.threads);
    let connect_rate = thread_connect_rate(&config, ctx.threads);
    let budget = thread_budget(&config, ctx.index, ctx.threads);
    let (feed, builder) = Feed::new(
        ctx.generator,
        ctx.build_ahead,
        format!("loadgen-{}-build", ctx.index),
    )?;
    let shared = Rc::new(Shared {
        config: Arc::clone(&config),
        auth: ctx.auth,
        live: ctx.live,
        counters: ctx.thread_live,
        feed,
        feed_failed: Cell::new(false),
        recorder: RefCell::new(Recorder::new(ctx.start, config.interval, ctx.callers.len())),
        deadline: ctx.start + config.duration,
        budget: Cell::new(budget),
        pools: (0..targets)
            .map(|_| Pool {
                idle: RefCell::new(VecDeque::new()),
                open: Cell::new(0),
                connecting: Cell::new(0),
                cap,
                opening: RefCell::new(OpenBudget::new(connect_rate, ctx.start)),
                freed: Notify::new(),
            })
            .collect(),
        finished: Cell::new(false),
        tasks: Cell::new(0),
        tasks_done: Notify::new(),
        last_completion: Cell::new(ctx.start),
        unsent: Cell::new(0),
        waited: Cell::new(0),
    });
    let sh = Rc::clone(&shared);
    local.block_on(&rt, async move {
        tokio::time::sleep_until(ctx.start.into()).await;
        match &sh.config.model {
            Model::Closed { connections } => {
                for c in (ctx.index..*connections).step_by(ctx.threads) {
                    sh.task_started();
                    tokio::task::spawn_local(closed_loop(Rc::clone(&sh), c % targets));
                }
            }
            Model::Open { curve, poisson, .. } => {
                let schedule = Schedule::new(
                    curve.clone(),
                    *poisson,
                    sh.config.seed,
                    ctx.index,
                    ctx.threads,
                );
                let ticks = match sh.config.tick {
                    Some(fixed) => Ticks::Fixed(fixed),
                    None => Ticks::Auto {
                        curve: curve.clone(),
                        threads: ctx.threads,
                    },
                };
                dispatcher(Rc::clone(&sh), schedule, ticks, ctx.start).await;
            }
        }
        while sh.tasks.get() > 0 {
            sh.tasks_done.notified().await;
        }
    });
    drop(local);
    let shared = Rc::try_unwrap(shared).map_err(|_| Error::Runtime {
        source: std::io::Error::other("worker tasks outlived their thread"),
    })?;
    let cpu = crate::cpu::thread();
    if shared.feed_failed.get() {
        return Err(Error::Runtime {
            source: std::io::Error::other("the request builder thread died"),
        });
    }
    let Shared { feed, recorder, .. } = shared;
    // Dropping the feed ends the builder thread.
    drop(feed);
    let builder_cpu = builder.map_or(Duration::ZERO, |b| b.join().unwrap_or_default());
    Ok(ThreadOut {
        cpu: cpu.max(builder_cpu),
        stats: recorder.into_inner().finish(&ctx.callers),
        last_completion: shared.last_completion.get(),
        unsent: shared.unsent.get(),
        waited: shared.waited.get(),
        realtime,
    })
}

/// Connections one thread may open towards one target: its share of the
/// open model's cap (the closed model's count is split by connection).
pub(super) fn thread_cap(config: &RunConfig, threads: usize) -> usize {
    match &config.model {
        Model::Open {
            max_connections, ..
        } => max_connections
            .div_ceil(threads * config.targets.len())
            .max(1),
        Model::Closed { connections } => *connections,
    }
}

/// New connections per second one thread may open towards one target: its
/// share of the open model's opening rate (`None`: unbounded).
pub(super) fn thread_connect_rate(config: &RunConfig, threads: usize) -> Option<f64> {
    match &config.model {
        Model::Open { connect_rate, .. } => {
            connect_rate.map(|r| r / (threads * config.targets.len()) as f64)
        }
        Model::Closed { .. } => None,
    }
}

/// Thread `index`'s share of `--requests` (unbounded without it).
pub(super) fn thread_budget(config: &RunConfig, index: usize, threads: usize) -> u64 {
    match config.max_requests {
        None => u64::MAX,
        Some(n) => {
            let t = threads as u64;
            n / t + u64::from((index as u64) < n % t)
        }
    }
}

/// Sends one request on `conn` (connecting first if needed) and records it
/// with latency from `intended`. Returns false when there was no answer.
///
/// `eligible` (open model) is when the request could have left: how late
/// the generator was is measured from there to the moment the request is
/// built and about to be written, so a late timer wake, a wait for the
/// event loop and a wait for the builder thread all count, and a wait for
/// a busy connection does not.
async fn execute(
    sh: &Shared,
    conn: &mut Option<Conn>,
    target: usize,
    intended: Instant,
    eligible: Option<Instant>,
    bufs: &mut Buffers,
) -> bool {
    let t = &sh.config.targets[target];
    let Some(meta) = sh.feed.next(&mut bufs.req) else {
        // The builder thread died: end the run rather than spin.
        sh.feed_failed.set(true);
        sh.finished.set(true);
        sh.budget.set(0);
        return false;
    };
    if let Some(eligible) = eligible {
        record_behind(sh, Instant::now().saturating_duration_since(eligible));
    }
    let (main, basic) = &sh.auth[meta.caller as usize];
    let auth = if meta.basic_key {
        basic.as_deref()
    } else {
        main.as_deref()
    };
    let client = sh.config.client;
    if client == ClientKind::Raw {
        write_request(&mut bufs.wire, &bufs.req, t, auth);
    }
    bump(&sh.counters.sent);
    sh.recorder.borrow_mut().sent(intended);
    let (wire, req) = (&bufs.wire, &bufs.req);
    let attempt = async {
        let reused = conn.is_some();
        if !reused {
            *conn = Some(Conn::connect(client, t, sh.config.tls.as_ref()).await?);
            sh.live.connected();
        }
        let first = match conn.as_mut() {
            Some(c) => c.send(wire, req, t, auth).await,
            None => Err(std::io::ErrorKind::NotConnected.into()),
        };
        match first {
            Err(_) if reused => {
                // The server may close a keep-alive connection while it sits
                // idle (its idle timeout); like any HTTP client, send again
                // once on a fresh connection. Every API call here is safe to
                // repeat, and the latency includes both attempts.
                if conn.take().is_some() {
                    sh.live.disconnected();
                }
                let c = conn.insert(Conn::connect(client, t, sh.config.tls.as_ref()).await?);
                sh.live.connected();
                c.send(wire, req, t, auth).await
            }
            other => other,
        }
    };
    // The timeout counts from the intended send time. Arming a timer per
    // request costs a timer-wheel insert and removal each time; instead each
    // connection keeps one timer and moves it only when it would fire more
    // than a tenth of the timeout early. A request therefore times out
    // between 0.9 and 1.0 times the timeout after its intended send time.
    let timeout = sh.config.timeout;
    let deadline = intended + timeout;
    let slack = timeout / 10;
    let watchdog = bufs
        .watchdog
        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
    let armed: Instant = watchdog.deadline().into();
    if armed + slack < deadline || armed > deadline {
        watchdog.as_mut().reset(deadline.into());
    }
    let answer = tokio::select! {
        biased;
        answer = attempt => answer.ok(),
        _ = watchdog.as_mut() => None,
    };
    let status = answer.map(|a| a.status);
    let shed = answer.is_some_and(|a| a.shed());
    // A rare large batch must not pin its buffers to the connection for
    // the rest of the run: memory stays flat as the pool grows.
    const KEEP: usize = 16 * 1024;
    if bufs.wire.capacity() > KEEP {
        bufs.wire = Vec::with_capacity(1024);
    }
    if bufs.req.body.capacity() > KEEP {
        bufs.req.body = Vec::with_capacity(1024);
    }
    if (status.is_none() || conn.as_ref().is_some_and(|c| !c.reusable())) && conn.take().is_some() {
        sh.live.disconnected();
    }
    let now = Instant::now();
    let error = sh.recorder.borrow_mut().record(
        meta,
        status,
        shed,
        now.saturating_duration_since(intended),
        now,
    );
    bump(&sh.counters.completed);
    if error {
        bump(&sh.counters.errors);
    }
    if now > sh.last_completion.get() {
        sh.last_completion.set(now);
    }
    status.is_some()
}

async fn closed_loop(sh: Rc<Shared>, target: usize) {
    let mut conn = None;
    let mut bufs = Buffers::default();
    loop {
        let now = Instant::now();
        if now >= sh.deadline || !sh.take_budget() {
            break;
        }
        if !execute(&sh, &mut conn, target, now, None, &mut bufs).await {
            // No answer (refused, reset, timeout): don't spin on a dead server.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if conn.is_some() {
        sh.live.disconnected();
    }
    sh.task_ended();
}

/// The open model's wake grid: fixed, or from the rate ([`auto_tick`]).
pub(super) enum Ticks {
    Fixed(Duration),
    Auto { curve: RateCurve, threads: usize },
}

impl Ticks {
    pub(super) fn at(&self, since_start: Duration) -> Duration {
        match self {
            Ticks::Fixed(tick) => *tick,
            Ticks::Auto { curve, threads } => {
                auto_tick(curve.rate_at(since_start.as_secs_f64()) / *threads as f64)
            }
        }
    }
}

async fn dispatcher(sh: Rc<Shared>, mut schedule: Schedule, ticks: Ticks, start: Instant) {
    let timer = PreciseTimer::new();
    let targets = sh.pools.len();
    let mut next_target = 0;
    let mut since_yield = 0u32;
    let mut pending: Option<Instant> = None;
    let mut pool_freed_at = start;
    loop {
        let intended = match pending.take() {
            Some(t) => t,
            None => match schedule.next_time() {
                Some(t) => start + Duration::from_secs_f64(t),
                None => break,
            },
        };
        if intended >= sh.deadline || !sh.take_budget() {
            pending = Some(intended);
            break;
        }
        let now = Instant::now();
        if intended > now {
            let tick = ticks.at(intended.saturating_duration_since(start));
            timer.sleep_until(on_grid(intended, start, tick)).await;
            since_yield = 0;
        } else {
            since_yield += 1;
            if since_yield >= 64 {
                // A backlog is being sent: let answers be read meanwhile.
                tokio::task::yield_now().await;
                since_yield = 0;
            }
        }
        // Requests held up because every connection was busy (pool at its
        // cap) are late because of the server: that wait is left out of
        // the generator's lateness but stays in their latency.
        let job = Job {
            intended,
            eligible: intended.max(pool_freed_at),
        };
        let target = next_target;
        next_target = (next_target + 1) % targets;
        let pool = &sh.pools[target];
        let mut waited = false;
        let mut out_of_time = false;
        loop {
            let slot = match sh.config.reuse {
                Reuse::LongestIdle => pool.idle.borrow_mut().pop_front(),
                Reuse::LastFreed => pool.idle.borrow_mut().pop_back(),
            };
            if let Some(slot) = slot {
                slot.job.set(Some(job));
                slot.wake.notify_one();
                break;
            }
            let below_cap = pool.open.get() < pool.cap;
            let handshakes_free = pool.connecting.get() < MAX_CONNECTING;
            let now = Instant::now();
            let may_open = below_cap && handshakes_free && pool.opening.borrow_mut().try_take(now);
            if may_open {
                pool.open.set(pool.open.get() + 1);
                pool.connecting.set(pool.connecting.get() + 1);
                sh.task_started();
                tokio::task::spawn_local(open_connection(Rc::clone(&sh), target, job));
                break;
            }
            // At the cap or out of openings (not only waiting for handshakes).
            if (!below_cap || handshakes_free) && !waited {
                waited = true;
                sh.waited.set(sh.waited.get() + 1);
            }
            // Out of openings: try again when the next one is due.
            let next_opening = match below_cap && handshakes_free {
                true => pool.opening.borrow().next_at(now),
                false => None,
            };
            let opening_due = async {
                match next_opening {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = pool.freed.notified() => {}
                _ = opening_due => {}
                _ = tokio::time::sleep_until(sh.deadline.into()) => {
                    // The run ends with this request still waiting.
                    sh.unsent.set(sh.unsent.get() + 1);
                    out_of_time = true;
                    break;
                }
            }
        }
        if out_of_time {
            break;
        }
        if waited {
            pool_freed_at = Instant::now();
        }
    }
    // Whatever the schedule still held before the deadline was never sent.
    let mut unsent = 0u64;
    let mut next = pending.or_else(|| {
        schedule
            .next_time()
            .map(|t| start + Duration::from_secs_f64(t))
    });
    while let Some(t) = next {
        if t >= sh.deadline || sh.budget.get() == 0 {
            break;
        }
        sh.budget.set(sh.budget.get() - 1);
        unsent += 1;
        next = schedule
            .next_time()
            .map(|t| start + Duration::from_secs_f64(t));
    }
    sh.unsent.set(sh.unsent.get() + unsent);
    sh.finished.set(true);
    for pool in &sh.pools {
        for slot in pool.idle.borrow_mut().drain(..) {
            slot.job.set(None);
            slot.wake.notify_one();
        }
    }
}

/// The first point of the grid `start + k * tick` at or after `t`.
pub(super) fn on_grid(t: Instant, start: Instant, tick: Duration) -> Instant {
    let tick_ns = tick.as_nanos();
    if tick_ns == 0 {
        return t;
    }
    let since = t.saturating_duration_since(start).as_nanos();
    let steps = since.div_ceil(tick_ns);
    start + Duration::from_nanos((steps * tick_ns).min(u64::MAX as u128) as u64)
}

/// How late the generator was with one request (open model).
fn record_behind(sh: &Shared, late: Duration) {
    sh.recorder.borrow_mut().behind(late);
    let late_us = late.as_micros() as u64;
    if late_us > sh.counters.behind_max_us.load(Ordering::Relaxed) {
        sh.counters.behind_max_us.store(late_us, Ordering::Relaxed);
    }
}

async fn open_connection(sh: Rc<Shared>, target: usize, first: Job) {
    let slot = Rc::new(Slot::default());
    let client = sh.config.client;
    let t = &sh.config.targets[target];
    // Connect before taking the first request, so that the dispatcher
    // learns when the handshake is done. A failure leaves `conn` empty and
    // `execute` tries again, recording the error against the request.
    let mut conn = match tokio::time::timeout(
        sh.config.timeout,
        Conn::connect(client, t, sh.config.tls.as_ref()),
    )
    .await
    {
        Ok(Ok(c)) => {
            sh.live.connected();
            Some(c)
        }
        _ => None,
    };
    let pool = &sh.pools[target];
    pool.connecting.set(pool.connecting.get() - 1);
    pool.freed.notify_one();
    let mut bufs = Buffers::default();
    // The handshake is the connection's, not a late send: the first
    // request counts as eligible from when it completes.
    let mut job = Job {
        eligible: first.eligible.max(Instant::now()),
        ..first
    };
    loop {
        execute(
            &sh,
            &mut conn,
            target,
            job.intended,
            Some(job.eligible),
            &mut bufs,
        )
        .await;
        if sh.finished.get() {
            break;
        }
        let pool = &sh.pools[target];
        pool.idle.borrow_mut().push_back(Rc::clone(&slot));
        pool.freed.notify_one();
        slot.wake.notified().await;
        match slot.job.take() {
            Some(next) => job = next,
            None => break,
        }
    }
    if conn.is_some() {
        sh.live.disconnected();
    }
    let pool = &sh.pools[target];
    pool.open.set(pool.open.get() - 1);
    sh.task_ended();
}
