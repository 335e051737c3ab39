//! Running a load: worker threads, the open and closed models, progress.
//!
//! Like wrk, each worker thread runs its own single-threaded event loop
//! with its own connections, generator and recorder, so the hot path takes
//! no lock and crosses no thread. The threads share only a few atomic
//! counters that the progress line reads.
//!
//! **Open model.** A dispatcher per thread walks the thread's share of the
//! schedule ([`Schedule`]), sleeps until each request's intended send time
//! and hands it to an idle connection, opening a new one when none is idle
//! (up to the cap). Latency runs from the *intended* time: if the server
//! stalls, the requests that should have gone out meanwhile are late and
//! their lateness counts. How late the generator itself was (from the
//! intended time, or from when a connection freed up, to the moment the
//! request is about to be written) is recorded apart (`behind_schedule`),
//! so a slow generator is not mistaken for a slow server. Worker threads
//! run at real-time priority when allowed ([`RunConfig::realtime`]). Requests still unsent when the run ends are counted as
//! `unsent`, never silently dropped.
//!
//! **Closed model.** Each connection sends its next request as soon as the
//! previous answer arrives, as fast as the server allows, like wrk.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::feed::Feed;
use crate::http::{write_request, ClientKind, Conn, Target};
use crate::keys::KeyPool;
use crate::rate::{RateCurve, Schedule};
use crate::stats::{Recorder, Stats};
use crate::timer::{realtime_priority, reduce_timer_slack, PreciseTimer};
use crate::tls::TlsClient;
use crate::units::{Count, Micros};
use crate::workload::{Generator, Request, Workload};

/// How requests are paced.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Requests follow a rate curve whatever the server does.
    Open {
        /// Requests/s over time.
        curve: RateCurve,
        /// Exponential gaps instead of even spacing.
        poisson: bool,
        /// Most connections open at once, over all targets.
        max_connections: usize,
    },
    /// A fixed number of connections, each sending as soon as it can.
    Closed {
        /// Connections over all targets.
        connections: usize,
    },
}

/// Everything a run needs besides the workload and keys.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Servers; the load is split evenly across them (open model: request
    /// by request in turn; closed model: connection by connection).
    pub targets: Vec<Target>,
    /// TLS client for `https://` targets; `None` trusts the system's CA
    /// bundle when a target needs TLS.
    pub tls: Option<TlsClient>,
    /// Open or closed.
    pub model: Model,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many requests.
    pub max_requests: Option<u64>,
    /// Worker threads; 0 picks them: one per core for the closed model,
    /// [`open_threads`] of the peak rate for the open model.
    pub threads: usize,
    /// Per-request timeout (connect + send + answer).
    pub timeout: Duration,
    /// Which HTTP client.
    pub client: ClientKind,
    /// Length of a report interval.
    pub interval: Duration,
    /// Random seed.
    pub seed: u64,
    /// Draw a progress line on stderr (when it is a terminal).
    pub progress: bool,
    /// API key for callers that name none.
    pub api_key: Option<String>,
    /// What is being run (profile or operation name), for the report.
    pub label: String,
    /// Open model: the dispatcher wakes on a grid of this step and sends
    /// every request due by then (zero: one wake per request). See
    /// [`DEFAULT_TICK`].
    pub tick: Duration,
    /// Open model: when the worker threads ask for the lowest real-time
    /// priority (see [`crate::timer::realtime_priority`]), so that they
    /// send on time on a busy box.
    pub realtime: Realtime,
}

/// When open-model worker threads run at real-time priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Realtime {
    /// When each thread's share of the peak rate is at most
    /// [`REALTIME_RATE_PER_THREAD`].
    #[default]
    Auto,
    /// Always (open model).
    On,
    /// Never.
    Off,
}

/// Per-thread peak rate up to which [`Realtime::Auto`] asks for real-time
/// priority. Measured on 2 cores shared with the server (loadgen/RESULTS.md):
/// at the national-day peak (~6,600/s, one thread) it cut the
/// behind-schedule p99 from 2.0 ms to 0.4 ms; at ~45,000/s per thread a
/// worker that is seldom idle, preempting the server on every wake, held
/// 69,000 of 89,000 requests/s against 79,000 without it.
pub const REALTIME_RATE_PER_THREAD: f64 = 10_000.0;

impl Realtime {
    /// Whether `threads` open-model threads sharing a peak of `peak`
    /// requests/s ask for real-time priority.
    pub fn wanted(self, peak: f64, threads: usize) -> bool {
        match self {
            Realtime::On => true,
            Realtime::Off => false,
            Realtime::Auto => peak / threads.max(1) as f64 <= REALTIME_RATE_PER_THREAD,
        }
    }
}

/// The open model's default wake grid. Each wake of a sleeping thread costs
/// a context switch, a timer re-arm and an epoll round, about as much CPU
/// as the request itself; waking once per grid step and sending all that
/// is due amortises that over several requests. The price is lateness of
/// at most one step (mean half), which is recorded as behind-schedule time
/// and stays in the latency, since latency runs from the intended time.
pub const DEFAULT_TICK: Duration = Duration::from_micros(250);

impl RunConfig {
    /// A closed-model run of `connections` against one target.
    pub fn closed(target: Target, connections: usize, duration: Duration) -> RunConfig {
        RunConfig {
            targets: vec![target],
            tls: None,
            model: Model::Closed { connections },
            duration,
            max_requests: None,
            threads: default_threads(),
            timeout: Duration::from_secs(10),
            client: ClientKind::Raw,
            interval: Duration::from_secs(1),
            seed: 1,
            progress: false,
            api_key: None,
            label: String::new(),
            tick: DEFAULT_TICK,
            realtime: Realtime::Auto,
        }
    }

    /// An open-model run at a constant rate against one target.
    pub fn open(target: Target, rate: f64, duration: Duration) -> RunConfig {
        RunConfig {
            model: Model::Open {
                curve: RateCurve::constant(rate, duration),
                poisson: false,
                max_connections: 1000,
            },
            ..RunConfig::closed(target, 1, duration)
        }
    }
}

/// Worker threads by default: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Requests/s one open-model thread is given before a second is added.
/// Fewer threads wake less often and send more per wake (see
/// [`DEFAULT_TICK`]): at 20,000/s one thread costs half the CPU per request
/// of two (RESULTS.md), while one thread at 60,000/s already shows in the
/// tail.
pub const OPEN_RATE_PER_THREAD: f64 = 40_000.0;

/// Worker threads for an open-model run whose rate peaks at `peak`: one per
/// [`OPEN_RATE_PER_THREAD`], at most one per core.
pub fn open_threads(peak: f64) -> usize {
    let wanted = (peak / OPEN_RATE_PER_THREAD).ceil();
    if wanted.is_finite() && wanted >= 1.0 {
        (wanted as usize).min(default_threads())
    } else {
        1
    }
}

/// Facts about a finished run that are not latencies.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    /// `open` or `closed`.
    pub mode: String,
    /// What was run.
    pub label: String,
    /// Target URLs.
    pub targets: Vec<String>,
    /// Worker threads.
    pub threads: usize,
    /// Connection cap (open) or count (closed).
    pub connections: usize,
    /// Most connections open at once.
    pub peak_connections: u64,
    /// Connections opened over the run.
    pub connects: u64,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Seconds from the start to the last answer.
    pub elapsed_s: f64,
    /// Planned seconds of sending.
    pub duration_s: f64,
    /// Seconds per report interval.
    pub interval_s: f64,
    /// Requests the schedule asked for (open model), else 0.
    pub scheduled: f64,
    /// Requests/s over time the schedule asked for: `(t s, rate)` points.
    pub target_curve: Vec<(f64, f64)>,
    /// Scheduled requests never sent because the run ended while they waited
    /// for a connection.
    pub unsent: u64,
    /// Requests that waited for a connection because the cap was reached.
    pub waited_for_connection: u64,
    /// Requests sent.
    pub sent: u64,
    /// Callers' names, in workload order.
    pub callers: Vec<String>,
    /// Reports merged into this one (1 for a single run).
    pub processes: u32,
    /// CPU seconds (user + system) the generator used during the run.
    #[serde(default)]
    pub cpu_s: f64,
    /// The busiest worker thread's CPU time over the run's length: 1.0 is
    /// a whole core.
    #[serde(default)]
    pub busiest_thread_share: f64,
    /// Open model: every worker thread ran at real-time priority.
    #[serde(default)]
    pub realtime: bool,
}

/// Counters of rare events, shared by the threads.
#[derive(Debug, Default)]
struct Live {
    connections: AtomicU64,
    peak_connections: AtomicU64,
    connects: AtomicU64,
}

/// Per-request counters of one thread, read by the progress line. Each
/// thread has its own, on its own cache lines, written by that thread only:
/// no locked instruction and no cache-line ping-pong on the hot path.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ThreadLive {
    sent: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    behind_max_us: AtomicU64,
}

/// Adds one to a counter that only the calling thread writes.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn total(threads: &[Arc<ThreadLive>], f: impl Fn(&ThreadLive) -> &AtomicU64) -> u64 {
    threads.iter().map(|t| f(t).load(Ordering::Relaxed)).sum()
}

impl Live {
    fn connected(&self) {
        let now = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_connections.fetch_max(now, Ordering::Relaxed);
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    fn disconnected(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `Authorization` header values per caller: (main, basic).
type AuthTable = Vec<(Option<Vec<u8>>, Option<Vec<u8>>)>;

fn auth_table(workload: &Workload, default_key: Option<&str>) -> AuthTable {
    workload
        .callers
        .iter()
        .map(|c| {
            let main = c
                .key
                .as_deref()
                .or(default_key)
                .map(|k| format!("Bearer {k}").into_bytes());
            let basic = c
                .basic_key
                .as_deref()
                .map(|k| format!("Bearer {k}").into_bytes());
            (main, basic)
        })
        .collect()
}

/// Runs a load and returns its figures. Blocks until the run ends: after
/// `duration` (plus at most `timeout` for answers still in flight) or
/// `max_requests`, whichever comes first.
pub fn run(
    config: &RunConfig,
    workload: &Workload,
    keys: Arc<KeyPool>,
) -> Result<(Stats, RunInfo)> {
    if config.targets.is_empty() {
        return Err(Error::invalid(
            "targets",
            "",
            "at least one --target is needed",
        ));
    }
    workload.validate()?;
    workload.check_keys(&keys)?;
    let connections = match &config.model {
        Model::Open {
            max_connections, ..
        } => *max_connections,
        Model::Closed { connections } => *connections,
    };
    if connections == 0 {
        return Err(Error::invalid(
            "connections",
            "0",
            "at least one connection is needed",
        ));
    }
    let threads = match (&config.model, config.threads) {
        (Model::Closed { connections }, 0) => default_threads().clamp(1, *connections),
        (Model::Closed { connections }, t) => t.clamp(1, *connections),
        (Model::Open { curve, .. }, 0) => open_threads(curve.peak()),
        (Model::Open { .. }, t) => t,
    };
    let callers: Vec<String> = workload.callers.iter().map(|c| c.name.clone()).collect();
    let auth = Arc::new(auth_table(workload, config.api_key.as_deref()));
    let generator = Generator::new(workload, keys, config.seed);
    let live = Arc::new(Live::default());
    let thread_live: Vec<Arc<ThreadLive>> = (0..threads)
        .map(|_| Arc::new(ThreadLive::default()))
        .collect();
    let mut config = config.clone();
    if config.tls.is_none() && config.targets.iter().any(Target::is_https) {
        config.tls = Some(TlsClient::new(None)?);
    }
    let config = Arc::new(config);
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Give every thread a moment to build its runtime before the clock starts.
    let start = Instant::now() + Duration::from_millis(20);
    let cpu_before = crate::cpu::process();

    let mut handles = Vec::with_capacity(threads);
    for (index, counters) in thread_live.iter().enumerate() {
        let ctx = ThreadCtx {
            index,
            threads,
            config: Arc::clone(&config),
            auth: Arc::clone(&auth),
            generator: generator.fork(config.seed.wrapping_add(1 + index as u64)),
            build_ahead: workload.has_batches(),
            live: Arc::clone(&live),
            thread_live: Arc::clone(counters),
            start,
            callers: callers.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || thread_main(ctx))
            .map_err(|source| Error::Runtime { source })?;
        handles.push(handle);
    }

    let show = config.progress && std::io::stderr().is_terminal();
    let mut last_tick = Instant::now();
    let mut last_completed = 0;
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if show && last_tick.elapsed() >= Duration::from_secs(1) {
            let completed = total(&thread_live, |t| &t.completed);
            let rate = (completed - last_completed) as f64 / last_tick.elapsed().as_secs_f64();
            last_tick = Instant::now();
            last_completed = completed;
            progress_line(&config, &live, &thread_live, start, rate);
        }
    }
    if show {
        eprintln!();
    }

    let mut stats = Stats::default();
    let mut last = start;
    let (mut unsent, mut waited) = (0, 0);
    let mut busiest = Duration::ZERO;
    let mut realtime = true;
    for h in handles {
        let out = h.join().map_err(|_| Error::Runtime {
            source: std::io::Error::other("a worker thread panicked"),
        })??;
        stats.merge(out.stats)?;
        last = last.max(out.last_completion);
        unsent += out.unsent;
        waited += out.waited;
        busiest = busiest.max(out.cpu);
        realtime &= out.realtime;
    }
    let cpu_s = crate::cpu::process()
        .saturating_sub(cpu_before)
        .as_secs_f64();
    let elapsed_s = last.saturating_duration_since(start).as_secs_f64();
    let (mode, scheduled, target_curve) = match &config.model {
        Model::Open { curve, .. } => ("open", curve.total(), curve.points().to_vec()),
        Model::Closed { .. } => ("closed", 0.0, Vec::new()),
    };
    let info = RunInfo {
        mode: mode.into(),
        label: config.label.clone(),
        targets: config.targets.iter().map(|t| t.url.clone()).collect(),
        threads,
        connections,
        peak_connections: live.peak_connections.load(Ordering::Relaxed),
        connects: live.connects.load(Ordering::Relaxed),
        started_unix_ms,
        elapsed_s,
        duration_s: config.duration.as_secs_f64(),
        interval_s: config.interval.as_secs_f64(),
        scheduled,
        target_curve,
        unsent,
        waited_for_connection: waited,
        sent: total(&thread_live, |t| &t.sent),
        callers,
        processes: 1,
        cpu_s,
        busiest_thread_share: busiest.as_secs_f64() / elapsed_s.max(1e-3),
        realtime: realtime && mode == "open",
    };
    Ok((stats, info))
}

fn progress_line(
    config: &RunConfig,
    live: &Live,
    threads: &[Arc<ThreadLive>],
    start: Instant,
    rate: f64,
) {
    let t = start.elapsed().as_secs_f64();
    let target = match &config.model {
        Model::Open { curve, .. } => format!(" (target {:.0}/s)", curve.rate_at(t)),
        Model::Closed { .. } => String::new(),
    };
    eprint!(
        "\r[{t:6.1}s/{:.0}s] {:>9.0} req/s{target}  done {}  errors {}  conns {}  behind max {}\x1b[K",
        config.duration.as_secs_f64(),
        rate,
        Count(total(threads, |t| &t.completed)),
        Count(total(threads, |t| &t.errors)),
        live.connections.load(Ordering::Relaxed),
        Micros(threads.iter().map(|t| t.behind_max_us.load(Ordering::Relaxed)).max().unwrap_or(0)),
    );
}

struct ThreadCtx {
    index: usize,
    threads: usize,
    config: Arc<RunConfig>,
    auth: Arc<AuthTable>,
    generator: Generator,
    build_ahead: bool,
    live: Arc<Live>,
    thread_live: Arc<ThreadLive>,
    start: Instant,
    callers: Vec<String>,
}

struct ThreadOut {
    stats: Stats,
    cpu: Duration,
    last_completion: Instant,
    unsent: u64,
    waited: u64,
    realtime: bool,
}

/// A connection waiting for work in the open model.
#[derive(Default)]
struct Slot {
    job: Cell<Option<Job>>,
    wake: Notify,
}

/// One scheduled request of the open model.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// When the schedule wanted it sent; latency runs from here.
    intended: Instant,
    /// From when it could have been sent had the generator been on time:
    /// `intended`, or later when every connection was busy (the server's
    /// doing) or its connection was still handshaking. Behind-schedule
    /// time runs from here to the moment its bytes are about to be written.
    eligible: Instant,
}

/// One target's connections on one thread (open model).
struct Pool {
    idle: RefCell<Vec<Rc<Slot>>>,
    open: Cell<usize>,
    /// Connections whose TCP handshake is still under way.
    connecting: Cell<usize>,
    cap: usize,
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
const MAX_CONNECTING: usize = 8;

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

fn thread_main(ctx: ThreadCtx) -> Result<ThreadOut> {
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
    let per_thread_cap = |total: usize| total.div_ceil(ctx.threads * targets).max(1);
    let cap = match &config.model {
        Model::Open {
            max_connections, ..
        } => per_thread_cap(*max_connections),
        Model::Closed { connections } => *connections,
    };
    let budget = match config.max_requests {
        None => u64::MAX,
        Some(n) => {
            let t = ctx.threads as u64;
            n / t + u64::from((ctx.index as u64) < n % t)
        }
    };
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
                idle: RefCell::new(Vec::new()),
                open: Cell::new(0),
                connecting: Cell::new(0),
                cap,
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
                dispatcher(Rc::clone(&sh), schedule, ctx.start).await;
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

async fn dispatcher(sh: Rc<Shared>, mut schedule: Schedule, start: Instant) {
    let timer = PreciseTimer::new();
    let tick = sh.config.tick;
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
            let slot = pool.idle.borrow_mut().pop();
            if let Some(slot) = slot {
                slot.job.set(Some(job));
                slot.wake.notify_one();
                break;
            }
            let below_cap = pool.open.get() < pool.cap;
            if below_cap && pool.connecting.get() < MAX_CONNECTING {
                pool.open.set(pool.open.get() + 1);
                pool.connecting.set(pool.connecting.get() + 1);
                sh.task_started();
                tokio::task::spawn_local(open_connection(Rc::clone(&sh), target, job));
                break;
            }
            if !below_cap && !waited {
                waited = true;
                sh.waited.set(sh.waited.get() + 1);
            }
            tokio::select! {
                _ = pool.freed.notified() => {}
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
fn on_grid(t: Instant, start: Instant, tick: Duration) -> Instant {
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
        execute(&sh, &mut conn, target, job.intended, Some(job.eligible), &mut bufs).await;
        if sh.finished.get() {
            break;
        }
        let pool = &sh.pools[target];
        pool.idle.borrow_mut().push(Rc::clone(&slot));
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
