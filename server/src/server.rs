//! Listeners, runtimes, the accept loop, readiness, signals and graceful
//! shutdown.
//!
//! The shape is hyper's own server example: accept → `TokioIo` →
//! `http1::Builder::serve_connection` with a clonable [`Service`], and a
//! `tokio::select!` between accepting and the shutdown signal. Around it:
//!
//! - a *control* thread (a current-thread runtime) that verifies the
//!   snapshot before `/readyz` turns ready, handles SIGHUP (reload) and
//!   SIGTERM/SIGINT (shutdown), and on shutdown stops the workers, waits for
//!   them (bounded), then flushes the audit log;
//! - worker threads laid out as [`Layout`] says: one multi-thread runtime
//!   with one listener, or one current-thread runtime per core, each with
//!   its own `SO_REUSEPORT` listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::address_share::AddressShare;
use crate::admission::BatchPool;
use crate::admission::RuntimeLag;
use crate::audit::{AuditLog, AuditOptions, Durability, GatedIo, Pressure};
use crate::config::{Config, Layout, Limits};
use crate::conn::{ConnClock, ConnIo};
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::snapshot::{ReloadOutcome, ServedSnapshot, SnapshotSwap};
use crate::state::State;
use crate::throttle::MismatchThrottle;
use crate::Error;

/// A running server. Dropping it does not stop it: call
/// [`shutdown`](Server::shutdown) and [`wait`](Server::wait).
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    control: Option<JoinHandle<Result<(), Error>>>,
    samples: Vec<Sample>,
}

/// The ID of a record of the demo snapshot, for the demo banner. Only the
/// ID: the banner goes to logs, and nothing read out of a register may
/// appear there unaudited.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Personal ID.
    pub id: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// Whether demo mode may listen on `addr`.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

impl Server {
    /// Loads keys, opens the snapshot and the audit log, binds, and starts
    /// serving. The snapshot is verified in the background (unless
    /// `config.verify` is false); `/readyz` and the data routes answer 503
    /// until it is.
    pub fn start(config: Config) -> Result<Server, Error> {
        let keys = match &config.keys {
            Some(path) => KeyStore::load(path)?,
            None => {
                if !is_loopback(&config.listen) {
                    return Err(Error::DemoNotLoopback {
                        addr: config.listen,
                    });
                }
                KeyStore::demo()
            }
        };
        if config.audit.is_none() && !is_loopback(&config.listen) {
            return Err(Error::NoAuditNotLoopback {
                addr: config.listen,
            });
        }
        // With a change log, start from the newest generation beside the
        // configured file: a compaction may have written one, and the log
        // only holds the changes after the newest's fold.
        let snapshot_path = match &config.changes {
            Some(_) => crate::snapshot::newest_snapshot(&config.snapshot)?.0,
            None => config.snapshot.clone(),
        };
        let opening = std::time::Instant::now();
        let served = ServedSnapshot::open(&snapshot_path, config.memory, false)?;
        if config.memory != dancu_engine::Memory::Map {
            // Warm and hugepages read the whole file: tens of seconds at
            // national scale, worth a line in the log.
            eprintln!(
                "dancu-server: snapshot {} read into memory (--memory {}) in {:.1} s",
                snapshot_path.display(),
                config.memory,
                opening.elapsed().as_secs_f64()
            );
        }
        // Replayed before the server listens: a read served before the
        // replay ends would answer records as they were before their
        // changes (1 M changes replay in about 3 s).
        let register = match &config.changes {
            Some(dir) => {
                let register =
                    dancu_register::Register::open(&served.snapshot, dir).map_err(|source| {
                        Error::Register {
                            path: dir.clone(),
                            source,
                        }
                    })?;
                let recovery = register.recovery();
                eprintln!(
                    "dancu-server: change log {}: {} changes replayed, last sequence {}",
                    dir.display(),
                    recovery.replayed,
                    register.progress().applied
                );
                if let Some(cut) = &recovery.cut {
                    eprintln!("dancu-server: change log: torn tail {cut}");
                }
                Some(Arc::new(register))
            }
            None => None,
        };
        let follower = match (&config.follow, &register) {
            (None, _) => None,
            (Some(follow), Some(register)) => Some(Arc::new(
                crate::follower::FollowerStatus::new(follow.clone(), register.progress().applied)
                    .map_err(Error::Follow)?,
            )),
            (Some(_), None) => {
                return Err(Error::Internal(
                    "a follower needs its own change log (--changes DIR)".into(),
                ))
            }
        };
        // Sample IDs only for the demo's synthetic register: never read
        // records of a real register for a banner.
        let samples = match config.keys {
            None => spread_ids(&served, 3),
            Some(_) => Vec::new(),
        };
        // Sheds (counted by the metrics) hold the audit's index builds back.
        let pressure = Arc::new(Pressure::default());
        let audit = match &config.audit {
            Some(path) => Some(AuditLog::open(
                path,
                AuditOptions {
                    durability: config.audit_durability,
                    capacity: config.audit_queue,
                    rotation: config.audit_rotation,
                    pressure: Arc::clone(&pressure),
                    ..AuditOptions::default()
                },
                keys.client_names(),
            )?),
            None => None,
        };
        let threads = config.layout.threads();
        let batches =
            BatchPool::start(config.limits.admission.clone()).map_err(|source| Error::Io {
                path: "batch pool threads".into(),
                source,
            })?;
        let state = Arc::new(State {
            metrics: Metrics::new(keys.client_names(), threads + 2 + batches_threads(&config))
                .with_pressure(pressure),
            batches,
            keys: ArcSwap::from_pointee(keys),
            keys_path: config.keys.clone(),
            keys_reload: parking_lot::Mutex::new(()),
            audit,
            snapshots: SnapshotSwap::new(config.snapshot.clone(), config.memory, config.verify),
            connections: Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections)),
            address_share: Arc::new(AddressShare::new(config.limits.per_address_cap())),
            limits: config.limits.clone(),
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            mismatches: MismatchThrottle::new(
                config.limits.mismatch_limit,
                config.limits.mismatch_window,
            ),
            trusted_proxies: config.trusted_proxies.clone(),
            follower,
            register,
            compact_after: config.compact_after,
        });
        let (stop, _) = watch::channel(false);
        let (workers, addr) = start_workers(&config, &state, &stop)?;
        crate::follower::start(&state).map_err(|source| Error::Io {
            path: "follower thread".into(),
            source,
        })?;
        let io_err = |source| Error::Io {
            path: "control thread".into(),
            source,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err)?;
        // Installed before `start` returns, so that a signal sent as soon as
        // the server says it listens is handled, not fatal.
        let signals = match config.handle_signals {
            true => {
                let _enter = rt.enter();
                Some(Signals::install().map_err(io_err)?)
            }
            false => None,
        };
        let control = {
            let state = Arc::clone(&state);
            let stop = stop.clone();
            let verify = config.verify;
            let shutdown_timeout = config.limits.shutdown_timeout;
            std::thread::Builder::new()
                .name("dancu-control".into())
                .spawn(move || {
                    control(
                        rt,
                        state,
                        stop,
                        served,
                        verify,
                        signals,
                        workers,
                        shutdown_timeout,
                    )
                })
                .map_err(io_err)?
        };
        Ok(Server {
            addr,
            state,
            stop,
            control: Some(control),
            samples,
        })
    }

    /// The address it listens on (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::Acquire)
    }

    /// Blocks until `/readyz` turns 200 (true) or the server stopped before
    /// that, e.g. because verification failed (false; [`wait`](Server::wait)
    /// says why).
    pub fn wait_until_ready(&self) -> bool {
        loop {
            if self.is_ready() {
                return true;
            }
            if self.control.as_ref().is_none_or(JoinHandle::is_finished) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// In demo mode, the IDs of three records spread over the snapshot given
    /// at start (for the banner); empty with `keys.toml`.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Reads `keys.toml` again and reloads the newest snapshot now (what
    /// SIGHUP and `POST /v1/admin/reload` do). Blocks while it opens and
    /// verifies.
    pub fn reload(&self) -> Result<ReloadOutcome, Error> {
        self.state.reload().map(|report| report.snapshot)
    }

    /// Test hook: while `held`, batch requests queue on the batch pool but
    /// none starts (see [`BatchPool::hold`]).
    #[doc(hidden)]
    pub fn hold_batches(&self, held: bool) {
        self.state.batches.hold(held);
    }

    /// Starts a graceful shutdown (what SIGTERM does). Returns at once.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the server has stopped: in-flight requests finished (or
    /// the shutdown timeout passed) and the audit log flushed. An error when
    /// verification failed or the audit log could not be written.
    pub fn wait(mut self) -> Result<(), Error> {
        match self.control.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Internal("the control thread panicked".into())),
            None => Ok(()),
        }
    }
}

/// The batch pool's threads (they count into metrics shards like workers).
fn batches_threads(config: &Config) -> usize {
    config.limits.admission.batch_threads
}

fn spread_ids(served: &ServedSnapshot, n: usize) -> Vec<Sample> {
    let len = served.snapshot.len();
    (0..n.min(len))
        .filter_map(|i| served.snapshot.record((i * len / n) as u32))
        .map(|v| Sample {
            id: v.id().to_string(),
        })
        .collect()
}

fn http_builder(limits: &Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .pipeline_flush(true)
        .max_buf_size(256 * 1024);
    b
}

fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(4096)
}

type Worker = JoinHandle<()>;

fn start_workers(
    config: &Config,
    state: &Arc<State>,
    stop: &watch::Sender<bool>,
) -> Result<(Vec<Worker>, SocketAddr), Error> {
    let bind_err = |source| Error::Bind {
        addr: config.listen,
        source,
    };
    let spawn_err = |source| Error::Io {
        path: "thread".into(),
        source,
    };
    let mut workers = Vec::new();
    match config.layout {
        Layout::MultiThread { threads } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .thread_name("dancu-worker")
                .enable_all()
                .build()
                .map_err(spawn_err)?;
            let listener = {
                let _enter = rt.enter();
                bind(config.listen, false).map_err(bind_err)?
            };
            let addr = listener.local_addr().map_err(bind_err)?;
            let (state, stop) = (Arc::clone(state), stop.subscribe());
            let limits = config.limits.clone();
            workers.push(
                std::thread::Builder::new()
                    .name("dancu-accept".into())
                    .spawn(move || {
                        rt.block_on(serve(listener, state, stop, limits));
                        rt.shutdown_timeout(Duration::from_millis(100));
                    })
                    .map_err(spawn_err)?,
            );
            Ok((workers, addr))
        }
        Layout::PerCore { threads } => {
            let mut addr = config.listen;
            let mut runtimes = Vec::new();
            for _ in 0..threads.max(1) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(spawn_err)?;
                let listener = {
                    let _enter = rt.enter();
                    bind(addr, true).map_err(bind_err)?
                };
                addr = listener.local_addr().map_err(bind_err)?;
                runtimes.push((rt, listener));
            }
            for (i, (rt, listener)) in runtimes.into_iter().enumerate() {
                let (state, stop) = (Arc::clone(state), stop.subscribe());
                let limits = config.limits.clone();
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("dancu-worker-{i}"))
                        .spawn(move || {
                            rt.block_on(serve(listener, state, stop, limits));
                            rt.shutdown_timeout(Duration::from_millis(100));
                        })
                        .map_err(spawn_err)?,
                );
            }
            Ok((workers, addr))
        }
    }
}

/// The accept loop of one listener, then the graceful drain.
///
/// Each loop accepts first and then waits for a slot under the connection
/// cap. The other order (slot, then accept) is wrong with one listener per
/// core: at the cap, a freed slot can go to a worker whose `SO_REUSEPORT`
/// queue is empty, which then sits in `accept` holding it while a client
/// waits in the other listener's queue until some other connection closes,
/// however long that takes. Accepting first, every worker that waits for a
/// slot holds a client, and the semaphore hands slots out first come, first
/// served. The price: at the cap, each worker holds one accepted connection
/// that is not served yet (so at most `max_connections` + workers sockets).
async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let http = http_builder(&limits);
    let graceful = GracefulShutdown::new();
    // Durable audit: this worker's lane pump wakes the connections whose
    // answers wait for a commit (`audit::lanes`).
    let durable_audit = state
        .audit
        .as_ref()
        .filter(|log| log.durability() == Durability::Durable);
    if let Some(log) = durable_audit {
        tokio::spawn(log.lane_pump());
    }
    // This runtime's wait for a turn, which admission control counts into
    // every request's queue wait (`admission::RuntimeLag`).
    let lag = Arc::new(RuntimeLag::default());
    tokio::spawn(Arc::clone(&lag).probe());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors or a connection reset before
                    // accept: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        // Over its address's share: closed (dropped) before it takes a slot.
        let Some(address_slot) = state.address_share.try_acquire(peer.ip()) else {
            continue;
        };
        let permit = tokio::select! {
            permit = Arc::clone(&state.connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        let clock = Arc::new(ConnClock::new(&stream));
        let stream = ConnIo::new(
            stream,
            Arc::clone(&clock),
            Arc::clone(&state),
            limits.write_timeout,
        );
        // Durable audit: the socket holds answers until their entries are on
        // disk (`audit::gate`).
        let gate = durable_audit.map(AuditLog::answer_gate);
        let stream = GatedIo::new(stream, gate.clone(), crate::service::refusal_bytes);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            Service::new(
                Arc::clone(&state),
                address_slot,
                Some(peer.ip()),
                clock,
                gate,
                Arc::clone(&lag),
            ),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_timeout) => {}
    }
}

/// Whether the overlay has grown past `--compact-after`.
fn compaction_due(state: &State) -> bool {
    match &state.register {
        Some(r) if state.compact_after > 0 => r.overlay().len() as u64 >= state.compact_after,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn control(
    rt: tokio::runtime::Runtime,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    served: ServedSnapshot,
    verify: bool,
    signals: Option<Signals>,
    workers: Vec<Worker>,
    shutdown_timeout: Duration,
) -> Result<(), Error> {
    let result = rt.block_on(async {
        let mut stop_rx = stop.subscribe();
        let prepare = {
            let state = Arc::clone(&state);
            tokio::task::spawn_blocking(move || {
                let served = if verify { served.verify()? } else { served };
                // A reload (SIGHUP or the admin route) during the
                // verification may have installed a newer generation: keep it.
                if !state.snapshots.install_if_newer(served) {
                    eprintln!(
                        "dancu-server: a reload during start-up verification installed a newer \
                         snapshot; serving it"
                    );
                }
                state.ready.store(true, Ordering::Release);
                Ok::<(), Error>(())
            })
        };
        let mut prepare = Some(prepare);
        let mut result = Ok(());
        let signal_state = Arc::clone(&state);
        let signal_loop = async move {
            match signals {
                Some(signals) => signals.run(&signal_state).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(signal_loop);
        let mut compaction_check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = compaction_check.tick() => {
                    if compaction_due(&state) {
                        let state = Arc::clone(&state);
                        // In the background: the control loop keeps answering
                        // signals; `compact_now` refuses a second one meanwhile.
                        tokio::task::spawn_blocking(move || {
                            match crate::compaction::compact_now(&state) {
                                Ok(Some(o)) => eprintln!(
                                    "dancu-server: compacted {} changed records into generation {} ({:.1} s)",
                                    o.changed_records, o.generation, o.build_s
                                ),
                                Ok(None) => {}
                                Err(e) => eprintln!("dancu-server: automatic compaction failed: {e}"),
                            }
                        });
                    }
                }
                done = async { prepare.as_mut().expect("guarded").await }, if prepare.is_some() => {
                    prepare = None;
                    match done {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => { result = Err(e); break; }
                        Err(_) => { result = Err(Error::Internal("verification panicked".into())); break; }
                    }
                }
                _ = &mut signal_loop => break,
                _ = stop_rx.wait_for(|s| *s) => break,
            }
        }
        result
    });
    state.shutting_down.store(true, Ordering::Release);
    stop.send_replace(true);
    // Workers drain for at most `shutdown_timeout`, then drop what is left.
    let deadline = std::time::Instant::now() + shutdown_timeout + Duration::from_secs(2);
    for worker in workers {
        while !worker.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if worker.is_finished() {
            let _ = worker.join();
        }
    }
    // Batches still queued are answered (or shed) before the pool stops.
    state.batches.stop();
    let audit = state.audit.as_ref().map_or(Ok(()), AuditLog::close);
    rt.shutdown_timeout(Duration::from_millis(100));
    result.and(audit)
}

/// SIGTERM, SIGINT and SIGHUP, registered with the control runtime.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Reloads on SIGHUP; returns on SIGTERM or SIGINT.
    async fn run(mut self, state: &Arc<State>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    let state = Arc::clone(state);
                    match tokio::task::spawn_blocking(move || state.reload()).await {
                        Ok(Ok(report)) => {
                            let o = report.snapshot;
                            eprintln!(
                                "dancu-server: SIGHUP reload: keys {}, snapshot {} (generation {} -> {}, {})",
                                if report.keys_reloaded { "re-read" } else { "not configured (demo)" },
                                if o.reloaded { "swapped" } else { "nothing newer" },
                                o.previous_generation, o.generation, o.path.display()
                            )
                        }
                        Ok(Err(e)) => eprintln!(
                            "dancu-server: SIGHUP reload failed, still serving the old keys or snapshot: {e}"
                        ),
                        Err(_) => eprintln!("dancu-server: SIGHUP reload task failed"),
                    }
                }
            }
        }
    }
}
