//! Holding a connection's answers back until their audit entries are
//! durable.
//!
//! hyper answers a connection's requests one at a time. If each answer
//! waited for its fsync inside the service, sixteen pipelined requests
//! would wait for sixteen fsyncs one after another (measured: durable GET
//! pipelined ×16 ran at 0.27 × off). Instead the service records the commit
//! of each request's audit entry in the connection's [`AnswerGate`] and
//! gives hyper the answer at once; hyper puts it in its write buffer and
//! goes on with the next pipelined request; and [`GatedIo`], the
//! connection's socket, lets bytes through only once every commit recorded
//! so far is durable.
//!
//! Why no byte of an answer leaves early: an answer is made only after its
//! entry was appended and its commit recorded here, so when hyper hands
//! [`GatedIo`] bytes, the commit of every answer they belong to is already
//! recorded, and the gate waits for all of them. The pipelined requests of
//! one read therefore wait for one fsync together, and a keep-alive request
//! costs no boxed future, no channel and no second poll of the service.
//!
//! When a commit is lost (a write or fsync error), the held answers never
//! go out: if hyper was between answers (it had flushed everything before
//! them), a `503 audit_failing` goes out in their place, then the
//! connection closes; otherwise it just closes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::lanes::Commit;
use super::stages::Stage;
use super::{AuditError, Durable, Shared};

/// The commits one connection's unsent answers wait for.
#[derive(Debug)]
pub struct AnswerGate {
    shared: Arc<Shared>,
    /// The oldest commit recorded since the gate last opened (0: none).
    oldest: AtomicU64,
    /// The newest commit recorded.
    newest: AtomicU64,
    /// Whether the gate found its commits undecided since it last opened
    /// (its opening is then observed as [`Stage::Gate`]).
    waited: AtomicBool,
}

impl AnswerGate {
    pub(super) fn new(shared: Arc<Shared>) -> AnswerGate {
        AnswerGate {
            shared,
            oldest: AtomicU64::new(0),
            newest: AtomicU64::new(0),
            waited: AtomicBool::new(false),
        }
    }

    /// The connection's next bytes wait for `durable` (nothing to wait for
    /// when it is ready).
    ///
    /// The service and the socket of one connection are driven by one task,
    /// one after the other: relaxed atomics only make the gate shareable.
    pub fn hold(&self, durable: Durable) {
        let Some(commit) = durable.commit() else {
            return;
        };
        if self.oldest.load(Ordering::Relaxed) == 0 {
            self.oldest.store(commit, Ordering::Relaxed);
        }
        if commit > self.newest.load(Ordering::Relaxed) {
            self.newest.store(commit, Ordering::Relaxed);
        }
    }

    /// Ready once every recorded commit is decided: `Ok` when all are
    /// durable (the gate opens), the failure when any was lost (the gate
    /// stays shut).
    pub fn poll_open(&self, cx: &mut Context<'_>) -> Poll<Result<(), AuditError>> {
        let oldest: Commit = self.oldest.load(Ordering::Relaxed);
        if oldest == 0 {
            return Poll::Ready(Ok(()));
        }
        let newest = self.newest.load(Ordering::Relaxed);
        let Poll::Ready(result) = self.shared.poll_decided(oldest, newest, cx) else {
            self.waited.store(true, Ordering::Relaxed);
            return Poll::Pending;
        };
        if result.is_ok() {
            self.oldest.store(0, Ordering::Relaxed);
        }
        if self.waited.swap(false, Ordering::Relaxed) {
            self.shared.stages.since_decided(Stage::Gate, newest);
        }
        Poll::Ready(result)
    }
}

/// Renders the raw HTTP answer sent in place of withheld answers.
pub type RenderRefusal = fn(&AuditError) -> Vec<u8>;

/// Where a gate that found a lost commit stands.
enum Refusal {
    /// Nothing lost.
    None,
    /// Sending the `503`: the bytes and how many went out.
    Sending(Vec<u8>, usize),
    /// Done: every later write fails, and hyper closes the connection.
    Closed(io::ErrorKind),
}

/// A connection's socket that holds answers back until the commits of
/// their audit entries are durable (see the module docs).
pub struct GatedIo<T> {
    io: T,
    gate: Option<Arc<AnswerGate>>,
    render: RenderRefusal,
    /// Whether hyper has flushed everything it wrote: the next byte starts
    /// an answer, so a `503` can take the place of what is withheld.
    between_answers: bool,
    refusal: Refusal,
}

impl<T> GatedIo<T> {
    /// `io` gated by `gate` (`None`: audit off or buffered, nothing held).
    pub fn new(io: T, gate: Option<Arc<AnswerGate>>, render: RenderRefusal) -> GatedIo<T> {
        GatedIo {
            io,
            gate,
            render,
            between_answers: true,
            refusal: Refusal::None,
        }
    }
}

impl<T: AsyncWrite + Unpin> GatedIo<T> {
    /// Ready when bytes may pass; an error once a commit was lost (after
    /// the `503`, when one could be sent).
    fn poll_gate(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.refusal {
                Refusal::None => {
                    let Some(gate) = &self.gate else {
                        return Poll::Ready(Ok(()));
                    };
                    match ready!(gate.poll_open(cx)) {
                        Ok(()) => return Poll::Ready(Ok(())),
                        Err(e) => {
                            self.refusal = if self.between_answers {
                                Refusal::Sending((self.render)(&e), 0)
                            } else {
                                Refusal::Closed(io::ErrorKind::BrokenPipe)
                            };
                        }
                    }
                }
                Refusal::Sending(bytes, sent) => {
                    while *sent < bytes.len() {
                        match ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*sent..])) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => *sent += n,
                        }
                    }
                    let _ = ready!(Pin::new(&mut self.io).poll_flush(cx));
                    let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    self.refusal = Refusal::Closed(io::ErrorKind::BrokenPipe);
                }
                Refusal::Closed(kind) => {
                    return Poll::Ready(Err(io::Error::new(
                        *kind,
                        "the audit log is failing: answers withheld, connection closed",
                    )))
                }
            }
        }
    }

    fn wrote(&mut self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                self.between_answers = false;
            }
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GatedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GatedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_gate(cx))?;
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_gate(cx))?;
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !matches!(this.refusal, Refusal::None) {
            ready!(this.poll_gate(cx))?;
        }
        let result = Pin::new(&mut this.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = result {
            // hyper flushes the socket only once its buffer is empty.
            this.between_answers = true;
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Refusal::Sending(..) = this.refusal {
            let _ = ready!(this.poll_gate(cx));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
