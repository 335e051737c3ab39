//! Where a worker thread's requests come from: built when due, or built
//! ahead on a helper thread.
//!
//! A batch of 1,000 verify claims took about a millisecond to write (each
//! claim read a random citizen's name, date of birth and sex: cache
//! misses); copied from pre-rendered claims (`workload::claims`) it takes
//! about a sixth of that, still too long to spend between a due time and its
//! send. Written on the worker thread when due, that time delays
//! every send queued behind it, and since latency runs from the intended
//! send time, the generator's stall would be reported as the server's
//! latency. A workload with batch operations therefore gets a builder
//! thread per worker that writes requests ahead, in the order the worker
//! will send them, into a bounded queue; the worker only swaps buffers.
//! Spent buffers go back to the builder, so steady state allocates nothing.
//! Single lookups are cheaper to build in place than to hand across
//! threads, so workloads without batches build when due.

use std::cell::RefCell;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::workload::{Generator, Meta, Request};

/// Requests built ahead per worker. Bounds the memory held in the queue
/// (a 1,000-claim body is ~100 kB) while covering tens of milliseconds of
/// sends at any rate one worker thread reaches.
const AHEAD: usize = 64;

/// A worker thread's source of requests.
pub enum Feed {
    /// Built on the worker thread when due.
    Inline(RefCell<Generator>),
    /// Built ahead on a helper thread.
    Ahead {
        /// Built requests, in send order.
        ready: Receiver<(Meta, Request)>,
        /// Spent buffers going back to the builder.
        spent: SyncSender<Request>,
    },
}

impl Feed {
    /// Builds requests from `generator`: ahead on a new thread named
    /// `name` when `ahead`, else in place. Returns the builder thread, if
    /// any, to join once the feed is dropped; it yields its CPU time.
    pub fn new(
        generator: Generator,
        ahead: bool,
        name: String,
    ) -> Result<(Feed, Option<JoinHandle<Duration>>)> {
        if !ahead {
            return Ok((Feed::Inline(RefCell::new(generator)), None));
        }
        let (ready_tx, ready) = sync_channel(AHEAD);
        let (spent, spent_rx) = sync_channel::<Request>(AHEAD);
        let builder = std::thread::Builder::new()
            .name(name)
            .spawn(move || build_ahead(generator, ready_tx, spent_rx))
            .map_err(|source| Error::Runtime { source })?;
        Ok((Feed::Ahead { ready, spent }, Some(builder)))
    }

    /// The next request, written into `req` (whose old buffers may be
    /// recycled). `None` only if the builder thread died.
    #[inline]
    pub fn next(&self, req: &mut Request) -> Option<Meta> {
        match self {
            Feed::Inline(g) => Some(g.borrow_mut().next(req)),
            Feed::Ahead { ready, spent } => {
                let (meta, built) = ready.recv().ok()?;
                let old = std::mem::replace(req, built);
                // A full return queue just means the builder has spares.
                let _ = spent.try_send(old);
                Some(meta)
            }
        }
    }
}

fn build_ahead(
    mut generator: Generator,
    ready: SyncSender<(Meta, Request)>,
    spent: Receiver<Request>,
) -> Duration {
    loop {
        let mut req = spent.try_recv().unwrap_or_default();
        let meta = generator.next(&mut req);
        // The worker dropped its end: the run is over.
        if ready.send((meta, req)).is_err() {
            return crate::cpu::thread();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::KeyPool;
    use crate::workload::{Caller, Op, Workload};

    #[test]
    fn ahead_gives_the_same_requests_in_the_same_order_as_inline() {
        let workload = Workload {
            callers: vec![Caller::single(Op::BatchVerify)],
        };
        let keys = Arc::new(KeyPool::synthetic(1000, 3));
        let generator = Generator::new(&workload, keys, 7);
        let (inline, none) = Feed::new(generator.clone(), false, "t".into()).unwrap();
        assert!(none.is_none());
        let (ahead, builder) = Feed::new(generator, true, "t".into()).unwrap();
        let (mut a, mut b) = (Request::default(), Request::default());
        for _ in 0..200 {
            let ma = inline.next(&mut a).unwrap();
            let mb = ahead.next(&mut b).unwrap();
            assert_eq!(ma, mb);
            assert_eq!(a.path, b.path);
            assert_eq!(a.body, b.body);
        }
        drop(ahead);
        builder.unwrap().join().unwrap();
    }
}
