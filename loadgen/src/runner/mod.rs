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
//!
//! **Engines.** Open-model runs against `http://` targets with the lean
//! client run on a hand-polled event loop per thread ([`Engine`],
//! `event_loop`), the cheapest per request; TLS targets, the hyper client
//! and the closed model run on a tokio runtime per thread (`worker`). Both
//! keep the semantics above.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::http::{ClientKind, Target};
use crate::keys::KeyPool;
use crate::rate::RateCurve;
use crate::stats::Stats;
use crate::tls::TlsClient;
use crate::units::{Count, Micros};
use crate::workload::{Generator, Workload};

#[cfg(target_os = "linux")]
mod event_loop;
pub mod opening;
mod worker;

use worker::{thread_main, ThreadCtx};

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
        /// Most new connections opened per second, over all targets, after
        /// a first [`opening::BURST`] per thread and target; `None`:
        /// unbounded (see [`opening`]).
        connect_rate: Option<f64>,
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
    /// every request due by then (zero: one wake per request); `None`
    /// picks it from the rate at each wake ([`auto_tick`]).
    pub tick: Option<Duration>,
    /// Open model: when the worker threads ask for the lowest real-time
    /// priority (see [`crate::timer::realtime_priority`]), so that they
    /// send on time on a busy box.
    pub realtime: Realtime,
    /// Which engine may run the load.
    pub engine: Engine,
    /// Open model: which idle connection takes a due request.
    pub reuse: Reuse,
}

/// Which idle connection the open model's pool hands a due request.
///
/// Last freed first (a gateway's usual stack), the few hottest connections
/// carry nearly every request, and against dancu's per-core runtimes (its
/// `SO_REUSEPORT` listeners hash connections between them) they land on
/// one: on the burst profile one runtime took nearly all the work for
/// seconds at a time while the other idled. Longest idle first spreads it
/// evenly, as many callers would, but on the 2-core reference box, shared
/// with loadgen, the spread cost more CPU on both sides (spike: dancu 0.84
/// against 0.6 cores, loadgen 0.6 against 0.45; each runtime half-loaded
/// sleeps and wakes more often), so the default stays last freed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reuse {
    /// The one freed last.
    #[default]
    LastFreed,
    /// The one idle longest: requests go round the pool.
    LongestIdle,
}

/// What runs a load's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// The event loop where it can (open model, `http://` targets, the
    /// lean client, Linux), else tokio tasks.
    #[default]
    Auto,
    /// Tokio tasks, a task per connection, whatever the run.
    Tasks,
}

impl Engine {
    /// Whether `config` runs on the event loop.
    pub fn event_loop(config: &RunConfig) -> bool {
        cfg!(target_os = "linux")
            && config.engine == Engine::Auto
            && matches!(config.model, Model::Open { .. })
            && config.client == ClientKind::Raw
            && !config.targets.iter().any(Target::is_https)
    }
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

/// The wake grid at high rates (see [`auto_tick`]).
pub const HIGH_RATE_TICK: Duration = Duration::from_millis(1);

/// Per-thread rate from which [`auto_tick`] wakes on [`HIGH_RATE_TICK`].
/// At wrk's top rate on 2 cores shared with the server (~38,000/s per
/// thread, loadgen/RESULTS.md), a 1 ms grid cost 10.8 µs of generator CPU
/// per request against 12.4 µs on the 250 µs grid and wrk's 12.4 µs, and
/// left the server the CPU it needed to keep up. The bar is above the
/// burst profile's spike (40,000/s on one thread), though: there, sending
/// forty requests at once per wake made the tail, with answers from the
/// bare floor server at p99 7.5-27 ms on the 1 ms grid against 1.4-8.5 ms
/// on the 250 µs grid (one thread, 8 s runs, commit 33eb480).
pub const HIGH_RATE_PER_THREAD: f64 = 45_000.0;

/// The wake grid for a thread whose share of the current rate is
/// `per_thread` requests/s: [`DEFAULT_TICK`], or [`HIGH_RATE_TICK`] from
/// [`HIGH_RATE_PER_THREAD`] on, where 45 or more requests are due per
/// wake and a wake saved is worth more than the half millisecond of mean
/// lateness it adds (which stays in the latency and the behind-schedule
/// figure).
pub fn auto_tick(per_thread: f64) -> Duration {
    if per_thread >= HIGH_RATE_PER_THREAD {
        HIGH_RATE_TICK
    } else {
        DEFAULT_TICK
    }
}

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
            tick: None,
            realtime: Realtime::Auto,
            engine: Engine::Auto,
            reuse: Reuse::LastFreed,
        }
    }

    /// An open-model run at a constant rate against one target.
    pub fn open(target: Target, rate: f64, duration: Duration) -> RunConfig {
        RunConfig {
            model: Model::Open {
                curve: RateCurve::constant(rate, duration),
                poisson: false,
                max_connections: 1000,
                connect_rate: Some(opening::DEFAULT_RATE),
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
    /// What ran the connections: `event-loop` or `tasks` (empty in reports
    /// from before the event loop).
    #[serde(default)]
    pub engine: String,
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
    let event_loop = Engine::event_loop(&config);
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
            .spawn(move || {
                #[cfg(target_os = "linux")]
                if event_loop {
                    return event_loop::thread_main(ctx);
                }
                thread_main(ctx)
            })
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
        engine: if event_loop { "event-loop" } else { "tasks" }.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_auto_only_for_lightly_loaded_threads() {
        assert!(Realtime::Auto.wanted(6_600.0, 1));
        assert!(Realtime::Auto.wanted(20_000.0, 2));
        assert!(!Realtime::Auto.wanted(40_000.0, 1));
        assert!(Realtime::On.wanted(100_000.0, 1));
        assert!(!Realtime::Off.wanted(1.0, 1));
    }

    #[test]
    fn auto_tick_widens_at_high_rates_only() {
        assert_eq!(auto_tick(2_300.0), DEFAULT_TICK);
        assert_eq!(auto_tick(40_000.0), DEFAULT_TICK);
        assert_eq!(auto_tick(45_000.0), HIGH_RATE_TICK);
    }
}
