//! Admission control: who is served, who waits, and who is told to come
//! back later when the national mix exceeds what the box can do.
//!
//! - **Batches run on their own pool** ([`BatchPool`]), never on the
//!   runtime threads that serve single requests: a 1,000-claim
//!   `batchVerify` takes a millisecond or more of CPU, and on a
//!   current-thread runtime every other connection of that core would
//!   wait for it. The pool's threads run at a lower OS priority (`nice`),
//!   so a runtime thread woken by a single request preempts them.
//! - **Priorities**: the pool takes interactive clients' batches before
//!   bulk ones ([`Class`]), and bulk requests have a smaller queue-wait
//!   budget, so under pressure bulk work waits and is shed first.
//! - **Shedding**: a request that waited longer than its class's budget
//!   (from the arrival of its bytes to its handler, or from its submission
//!   to its batch's turn) is answered at once with `503 overloaded` and
//!   `Retry-After`, instead of being served seconds late; so is a batch
//!   that finds the pool's queue full, or its client holding its share of
//!   the pool while other clients' batches wait for it. The answer is cheap
//!   and the backlog drains, so the server recovers as soon as the peak
//!   passes.
//! - **Every wait counts from arrival**: a request's wait is measured from
//!   when its bytes arrived, wherever it waited: in the runtime's run queue
//!   before its connection was even read ([`RuntimeLag`]), before its
//!   handler, and in the batch pool. A batch whose expected wait (the
//!   batches ahead of it × the pool's recent service time) would take it
//!   past its budget is shed when it arrives rather than after waiting.
//! - **Fair shares under contention only**: a client alone on an idle box
//!   may queue as many batches as the queue holds (shedding its 17th batch
//!   while the pool sits idle would only slow a re-verification job down).
//!   The share binds once someone else waits: the client's next batch is
//!   shed, and the pool takes the batches of clients within their share
//!   before those of a client past it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::api_error::{ApiError, ErrorHeader};
use crate::keys::{Class, ClientId};
use crate::metrics::ShedReason;
use crate::router::Route;

/// What admission control allows; part of [`crate::Limits`].
#[derive(Clone, Debug)]
pub struct Admission {
    /// Longest an interactive request may wait for its handler (or its
    /// batch for the pool) before it is shed.
    pub queue_wait_budget: Duration,
    /// The same for bulk clients: smaller, so they are shed first.
    pub bulk_queue_wait_budget: Duration,
    /// Threads of the batch pool; 0 runs batches on the runtime threads,
    /// as before the pool existed (kept to measure the difference).
    pub batch_threads: usize,
    /// Most batches waiting for the pool (both classes); more are shed.
    pub batch_queue: usize,
    /// A client's share: most batches it may have queued or running while
    /// other clients' batches wait for the pool; past it, its batches are
    /// shed (only then: alone, it may fill the queue) and wait behind
    /// theirs.
    pub client_batches: usize,
    /// The `nice` value of the batch pool's threads (0 = as the runtime's).
    pub batch_nice: i32,
}

impl Default for Admission {
    fn default() -> Admission {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Admission {
            queue_wait_budget: Duration::from_millis(50),
            bulk_queue_wait_budget: Duration::from_millis(20),
            batch_threads: cores,
            batch_queue: 64,
            client_batches: 16,
            batch_nice: 10,
        }
    }
}

impl Admission {
    /// The queue-wait budget of a class.
    pub fn budget(&self, class: Class) -> Duration {
        match class {
            Class::Interactive => self.queue_wait_budget,
            Class::Bulk => self.bulk_queue_wait_budget,
        }
    }
}

/// Whether admission control may shed a route: the data reads. Writes,
/// the change feed, admin and public routes are always served (a registrar's
/// birth and a replica's catch-up are not optional work).
pub fn sheddable(route: Route) -> bool {
    matches!(
        route,
        Route::GetCitizen
            | Route::Legacy
            | Route::BatchGet
            | Route::Verify
            | Route::BatchVerify
            | Route::Identify
            | Route::QrVerify
            | Route::Statistics
    )
}

/// Whether a route runs on the batch pool.
pub fn is_batch(route: Route) -> bool {
    matches!(route, Route::BatchGet | Route::BatchVerify)
}

/// The answer of a shed request: `503 overloaded` with `Retry-After: 1`.
pub fn overloaded(reason: ShedReason) -> ApiError {
    let message = match reason {
        ShedReason::QueueWait | ShedReason::ExpectedWait => {
            "the server is over capacity and this request waited past its budget; \
             retry after the Retry-After seconds"
        }
        ShedReason::BatchQueueFull => {
            "the server is over capacity and its batch queue is full; retry after the \
             Retry-After seconds"
        }
        ShedReason::ClientShare => {
            "this client already has its share of batches queued or running while other \
             clients' batches wait; retry after the Retry-After seconds"
        }
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        .with_header(ErrorHeader::RetryAfter(1))
}

/// How long a task woken now waits for its turn on one runtime: the part
/// of a request's wait that comes before its connection is even read, when
/// the runtime has more ready connections than it can poll at once.
///
/// Neither the read's own time nor the kernel can tell it (the bytes are
/// read as soon as the task runs; `TCP_INFO` is asked only after a pause,
/// see [`crate::conn`]), so a probe task on the runtime measures it: it
/// yields and times how long the runtime takes to come back to it, which a
/// woken task waits too (to the back of the run queue). While the runtime
/// keeps up, it measures every [`LAG_PROBE_EVERY`]; behind, after every
/// turn, so that the figure falls as soon as the queue drains.
#[derive(Debug, Default)]
pub struct RuntimeLag {
    nanos: AtomicU64,
}

/// How often the [`RuntimeLag`] probe measures a runtime that keeps up.
pub const LAG_PROBE_EVERY: Duration = Duration::from_millis(10);

impl RuntimeLag {
    /// The last measured wait for a turn on the runtime.
    pub fn current(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// Measures until the runtime stops (spawn it on the runtime it
    /// measures).
    pub async fn probe(self: Arc<Self>) {
        loop {
            let start = Instant::now();
            tokio::task::yield_now().await;
            let lag = start.elapsed();
            self.nanos.store(
                lag.as_nanos().min(u128::from(u64::MAX)) as u64,
                Ordering::Relaxed,
            );
            if lag < LAG_PROBE_EVERY {
                tokio::time::sleep(LAG_PROBE_EVERY).await;
            }
        }
    }
}

type Job = Box<dyn FnOnce(Result<(), ShedReason>) + Send>;

struct Queued {
    client: ClientId,
    class: Class,
    /// When the request's bytes arrived (its budget counts from there).
    arrived: Instant,
    job: Job,
}

#[derive(Default)]
struct Queues {
    /// By class, in [`Class::ALL`] order.
    waiting: [VecDeque<Queued>; 2],
    /// Batches queued or running, by client.
    per_client: Vec<u32>,
    /// Test hook: while held, no batch starts.
    held: bool,
    stopping: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
    config: Admission,
    running: AtomicU64,
    /// Recent service time of a batch, in nanoseconds (a moving average).
    service_ns: AtomicU64,
}

/// The threads that run batch requests, interactive clients' first.
pub struct BatchPool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for BatchPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPool")
            .field("config", &self.shared.config)
            .finish()
    }
}

fn class_slot(class: Class) -> usize {
    match class {
        Class::Interactive => 0,
        Class::Bulk => 1,
    }
}

impl BatchPool {
    /// Starts `config.batch_threads` threads.
    pub fn start(config: Admission) -> std::io::Result<BatchPool> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            running: AtomicU64::new(0),
            service_ns: AtomicU64::new(0),
            config,
        });
        let mut threads = Vec::new();
        for i in 0..shared.config.batch_threads {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("dancu-batch-{i}"))
                    .spawn(move || work(&shared))?,
            );
        }
        Ok(BatchPool {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// Runs `work` on the pool and waits for it; `Err` when the batch is
    /// shed (queue full, client share, expected or actual wait since
    /// `arrived` past its class's budget). If the caller goes away (the
    /// client hung up) before its turn, the work is skipped.
    pub async fn run<T: Send + 'static>(
        &self,
        client: ClientId,
        class: Class,
        arrived: Instant,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ShedReason> {
        if self.shared.config.batch_threads == 0 {
            return Ok(work());
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |admitted| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(admitted.map(|()| work()));
        });
        self.submit(client, class, arrived, job)?;
        // A dropped sender means the pool stopped (shutdown).
        rx.await.unwrap_or(Err(ShedReason::BatchQueueFull))
    }

    fn submit(
        &self,
        client: ClientId,
        class: Class,
        arrived: Instant,
        job: Job,
    ) -> Result<(), ShedReason> {
        let config = &self.shared.config;
        let mut q = self.shared.queues.lock();
        if q.stopping {
            return Err(ShedReason::BatchQueueFull);
        }
        let client_slot = usize::from(client);
        if q.per_client.len() <= client_slot {
            q.per_client.resize(client_slot + 1, 0);
        }
        if q.per_client[client_slot] as usize >= config.client_batches
            && q.waiting.iter().flatten().any(|b| b.client != client)
        {
            return Err(ShedReason::ClientShare);
        }
        if q.waiting.iter().map(VecDeque::len).sum::<usize>() >= config.batch_queue {
            return Err(ShedReason::BatchQueueFull);
        }
        // Interactive batches wait only for interactive ones; bulk ones for
        // every batch queued (interactive ones go first).
        let ahead = q.waiting[..=class_slot(class)]
            .iter()
            .map(VecDeque::len)
            .sum::<usize>();
        let expected = self.expected_wait(ahead);
        if arrived.elapsed() + expected > config.budget(class) {
            return Err(ShedReason::ExpectedWait);
        }
        q.per_client[client_slot] += 1;
        q.waiting[class_slot(class)].push_back(Queued {
            client,
            class,
            arrived,
            job,
        });
        drop(q);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// How long a batch with `ahead` batches before it waits for a thread,
    /// going by the recent service time; zero while every thread is free
    /// and none waits.
    fn expected_wait(&self, ahead: usize) -> Duration {
        let threads = self.shared.config.batch_threads.max(1) as u64;
        let busy = self.shared.running.load(Ordering::Relaxed);
        if ahead == 0 && busy < threads {
            return Duration::ZERO;
        }
        // Each batch ahead takes a thread for about the recent service
        // time; and this one waits for the first running one to finish
        // (half a service time, on average).
        let service = self.shared.service_ns.load(Ordering::Relaxed);
        Duration::from_nanos(service * ahead as u64 / threads + service / 2)
    }

    /// Batches waiting, by class (interactive, bulk), and running.
    pub fn depth(&self) -> ([u64; 2], u64) {
        let q = self.shared.queues.lock();
        (
            [q.waiting[0].len() as u64, q.waiting[1].len() as u64],
            self.shared.running.load(Ordering::Relaxed),
        )
    }

    /// Test hook: while held, batches queue but none starts (so a test can
    /// show, by order rather than by time, that singles are served while
    /// batches wait, and fill the queue).
    pub fn hold(&self, held: bool) {
        self.shared.queues.lock().held = held;
        self.shared.wake.notify_all();
    }

    /// Stops the threads once the queue is empty; batches submitted after
    /// this are shed.
    pub fn stop(&self) {
        {
            let mut q = self.shared.queues.lock();
            q.stopping = true;
            q.held = false;
        }
        self.shared.wake.notify_all();
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for BatchPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One pool thread: the next batch, interactive first; shed if it waited
/// past its budget, else run.
fn work(shared: &Shared) {
    lower_priority(shared.config.batch_nice);
    loop {
        let next = {
            let mut q = shared.queues.lock();
            loop {
                if !q.held {
                    if let Some(next) = next_batch(&mut q, shared.config.client_batches) {
                        break next;
                    }
                    if q.stopping {
                        return;
                    }
                }
                shared.wake.wait(&mut q);
            }
        };
        let waited = next.arrived.elapsed();
        let admitted = if waited > shared.config.budget(next.class) {
            Err(ShedReason::QueueWait)
        } else {
            Ok(())
        };
        let ran = admitted.is_ok();
        let started = Instant::now();
        shared.running.fetch_add(1, Ordering::Relaxed);
        (next.job)(admitted);
        shared.running.fetch_sub(1, Ordering::Relaxed);
        if ran {
            note_service(&shared.service_ns, started.elapsed());
        }
        let mut q = shared.queues.lock();
        if let Some(n) = q.per_client.get_mut(usize::from(next.client)) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Folds one batch's service time into the moving average (weight 1/8:
/// it follows a change of the mix within a few dozen batches).
fn note_service(average_ns: &AtomicU64, took: Duration) {
    let took = took.as_nanos().min(u128::from(u64::MAX)) as u64;
    let old = average_ns.load(Ordering::Relaxed);
    let new = if old == 0 {
        took
    } else {
        old - old / 8 + took / 8
    };
    average_ns.store(new, Ordering::Relaxed);
}

/// The next batch to run: the first class with any waiting, and in it the
/// oldest batch of a client within its share, else the oldest (a client
/// past its share, alone or not, waits behind the others but is served).
fn next_batch(q: &mut Queues, client_batches: usize) -> Option<Queued> {
    let Queues {
        waiting,
        per_client,
        ..
    } = q;
    let queue = waiting.iter_mut().find(|w| !w.is_empty())?;
    let within_share = |b: &Queued| {
        per_client
            .get(usize::from(b.client))
            .is_some_and(|&n| n as usize <= client_batches)
    };
    let at = queue.iter().position(within_share).unwrap_or(0);
    queue.remove(at)
}

/// Lowers the calling thread's scheduling priority (Linux: `nice` is per
/// thread), so that the runtime threads preempt batch work.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid has no preconditions; setpriority on our own thread ID
    // only changes this thread's nice value (a failure leaves it as it was).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(batch_queue: usize, client_batches: usize) -> Admission {
        Admission {
            batch_threads: 1,
            batch_queue,
            client_batches,
            batch_nice: 0,
            ..Admission::default()
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn runs_interactive_batches_before_bulk_ones() {
        let pool = BatchPool::start(config(8, 8)).unwrap();
        pool.hold(true);
        let order = Arc::new(Mutex::new(Vec::new()));
        let results = block_on(async {
            let run = |class, tag| {
                let order = Arc::clone(&order);
                pool.run(1, class, Instant::now(), move || order.lock().push(tag))
            };
            let bulk = run(Class::Bulk, "bulk");
            let interactive = run(Class::Interactive, "interactive");
            // Both are queued (the futures submit on first poll).
            let both = async { tokio::join!(bulk, interactive) };
            tokio::pin!(both);
            assert!(futures_poll_once(&mut both).await.is_none());
            assert_eq!(pool.depth().0, [1, 1]);
            pool.hold(false);
            both.await
        });
        assert!(results.0.is_ok() && results.1.is_ok());
        assert_eq!(*order.lock(), ["interactive", "bulk"]);
    }

    #[test]
    fn a_client_alone_passes_its_share_and_is_held_to_it_once_others_wait() {
        let pool = BatchPool::start(config(8, 1)).unwrap();
        pool.hold(true);
        let order = Arc::new(Mutex::new(Vec::new()));
        block_on(async {
            let run = |client, tag| {
                let order = Arc::clone(&order);
                pool.run(client, Class::Interactive, Instant::now(), move || {
                    order.lock().push(tag)
                })
            };
            // Client 1 alone: two batches on a share of one, both queued.
            let first = run(1, "1a");
            let second = run(1, "1b");
            tokio::pin!(first, second);
            assert!(futures_poll_once(&mut first).await.is_none());
            assert!(futures_poll_once(&mut second).await.is_none());
            assert_eq!(pool.depth().0, [2, 0]);
            // Client 2 comes: now each is held to its share.
            let other = run(2, "2a");
            tokio::pin!(other);
            assert!(futures_poll_once(&mut other).await.is_none());
            assert_eq!(run(1, "1c").await, Err(ShedReason::ClientShare));
            assert_eq!(run(2, "2b").await, Err(ShedReason::ClientShare));
            pool.hold(false);
            assert_eq!(tokio::join!(first, second, other), (Ok(()), Ok(()), Ok(())));
        });
        // Client 2, within its share, went before client 1's excess.
        assert_eq!(*order.lock(), ["2a", "1a", "1b"]);
    }

    #[test]
    fn sheds_past_the_queue_bound() {
        let pool = BatchPool::start(config(2, 8)).unwrap();
        pool.hold(true);
        block_on(async {
            let first = pool.run(1, Class::Interactive, Instant::now(), || 1);
            let second = pool.run(2, Class::Bulk, Instant::now(), || 2);
            tokio::pin!(first, second);
            assert!(futures_poll_once(&mut first).await.is_none());
            assert!(futures_poll_once(&mut second).await.is_none());
            // Two queued: the queue is full for anyone.
            assert_eq!(
                pool.run(3, Class::Interactive, Instant::now(), || 3).await,
                Err(ShedReason::BatchQueueFull)
            );
            pool.hold(false);
            assert_eq!(first.await, Ok(1));
            assert_eq!(second.await, Ok(2));
        });
    }

    #[test]
    fn sheds_a_batch_that_waited_past_its_budget() {
        let mut config = config(8, 8);
        config.bulk_queue_wait_budget = Duration::from_millis(20);
        let budget = config.bulk_queue_wait_budget;
        let pool = BatchPool::start(config).unwrap();
        pool.hold(true);
        block_on(async {
            // Nothing ahead and the pool idle: admitted to the queue.
            let arrived = Instant::now();
            let bulk = pool.run(1, Class::Bulk, arrived, || ());
            tokio::pin!(bulk);
            assert!(futures_poll_once(&mut bulk).await.is_none());
            while arrived.elapsed() <= budget {
                std::thread::sleep(Duration::from_millis(5));
            }
            pool.hold(false);
            assert_eq!(bulk.await, Err(ShedReason::QueueWait));
        });
    }

    #[test]
    fn counts_the_wait_before_the_pool_from_arrival() {
        let mut config = config(8, 8);
        config.bulk_queue_wait_budget = Duration::from_secs(60);
        let pool = BatchPool::start(config).unwrap();
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(61))
            .expect("the monotonic clock is older than a minute here");
        let shed = block_on(pool.run(1, Class::Bulk, long_ago, || ()));
        assert_eq!(shed, Err(ShedReason::ExpectedWait));
    }

    #[test]
    fn sheds_on_arrival_a_batch_expected_to_wait_past_its_budget() {
        let mut config = config(8, 8);
        config.bulk_queue_wait_budget = Duration::from_secs(100);
        config.queue_wait_budget = Duration::from_secs(100);
        let pool = BatchPool::start(config).unwrap();
        // The pool's recent batches took a minute each (one thread).
        note_service(&pool.shared.service_ns, Duration::from_secs(60));
        pool.hold(true);
        block_on(async {
            let run = |class| pool.run(1, class, Instant::now(), || ());
            // One ahead: ~60 s + 30 s expected, within 100 s.
            let first = run(Class::Bulk);
            let second = run(Class::Bulk);
            tokio::pin!(first, second);
            assert!(futures_poll_once(&mut first).await.is_none());
            assert!(futures_poll_once(&mut second).await.is_none());
            // Two ahead: ~150 s expected, shed at once.
            assert_eq!(run(Class::Bulk).await, Err(ShedReason::ExpectedWait));
            // An interactive batch waits for no bulk one: admitted.
            let interactive = run(Class::Interactive);
            tokio::pin!(interactive);
            assert!(futures_poll_once(&mut interactive).await.is_none());
            assert_eq!(pool.depth().0, [1, 2]);
            pool.hold(false);
            assert_eq!(
                tokio::join!(first, second, interactive),
                (Ok(()), Ok(()), Ok(()))
            );
        });
    }

    #[test]
    fn the_lag_probe_sees_a_runtime_held_by_a_task() {
        let held = Duration::from_millis(30);
        let lag = Arc::new(RuntimeLag::default());
        block_on(async {
            tokio::spawn(Arc::clone(&lag).probe());
            tokio::task::yield_now().await;
            // A task that keeps the runtime's only thread for each of its
            // turns: every turn of the probe comes after one of them.
            tokio::spawn(async move {
                for _ in 0..100 {
                    std::thread::sleep(held);
                    tokio::task::yield_now().await;
                }
            });
            for _ in 0..50 {
                if lag.current() >= held {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(lag.current() >= held, "{:?}", lag.current());
    }

    /// Polls a future once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
