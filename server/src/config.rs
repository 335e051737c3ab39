//! Server configuration: what `dancu-server`'s flags fill in.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dancu_engine::Memory;

use crate::admission::Admission;
use crate::audit::{Durability, Rotation};

/// Most IDs or claims in one batch request.
pub const MAX_BATCH: usize = 1000;

/// How the server's threads are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One multi-thread tokio runtime with this many workers, one listener.
    MultiThread {
        /// Worker threads.
        threads: usize,
    },
    /// This many threads, each with a current-thread runtime and its own
    /// `SO_REUSEPORT` listener on the same address; the kernel spreads
    /// connections over them.
    PerCore {
        /// Threads (and listeners).
        threads: usize,
    },
}

impl Layout {
    /// The measured winner (see `server/RESULTS.md`) with one thread per CPU.
    pub fn default_for_machine() -> Layout {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Layout::PerCore { threads }
    }

    /// Worker threads.
    pub fn threads(self) -> usize {
        match self {
            Layout::MultiThread { threads } | Layout::PerCore { threads } => threads.max(1),
        }
    }
}

impl FromStr for Layout {
    type Err = String;

    /// `multi`, `per-core`, or either with `:N` threads (`per-core:4`).
    fn from_str(s: &str) -> Result<Layout, String> {
        let (kind, threads) = match s.split_once(':') {
            Some((kind, n)) => {
                let n: usize = n
                    .parse()
                    .map_err(|_| format!("{n:?} is not a thread count"))?;
                (kind, n.max(1))
            }
            None => (s, Layout::default_for_machine().threads()),
        };
        match kind {
            "multi" => Ok(Layout::MultiThread { threads }),
            "per-core" => Ok(Layout::PerCore { threads }),
            _ => Err(format!(
                "{s:?} is not a runtime layout (multi, per-core, multi:N, per-core:N)"
            )),
        }
    }
}

/// Limits that protect the server from its clients.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Most open connections from one remote address; `None` is 10 % of
    /// [`max_connections`](Limits::max_connections). See
    /// [`per_address_cap`](Limits::per_address_cap).
    pub max_connections_per_address: Option<usize>,
    /// Time a client has to send a complete request head; also how long an
    /// idle keep-alive connection is kept.
    pub header_timeout: Duration,
    /// Time a client has to send a request body (408 after).
    pub body_timeout: Duration,
    /// Time a client may leave a response unread (taking no bytes while the
    /// server has more to send) before the connection is closed.
    pub write_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Mismatches one client may get on one subject within
    /// [`mismatch_window`](Limits::mismatch_window) before its verifications
    /// of that subject are refused (429) until the window ends; 0 is off.
    pub mismatch_limit: u32,
    /// The window of [`mismatch_limit`](Limits::mismatch_limit).
    pub mismatch_window: Duration,
    /// Queue-wait budgets, the batch pool and its bounds.
    pub admission: Admission,
}

impl Limits {
    /// Most open connections from one remote address (at least 1).
    pub fn per_address_cap(&self) -> usize {
        self.max_connections_per_address
            .unwrap_or(self.max_connections / 10)
            .max(1)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            max_connections: 10_000,
            max_connections_per_address: None,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            mismatch_limit: 5,
            mismatch_window: Duration::from_secs(600),
            admission: Admission::default(),
        }
    }
}

/// Everything [`crate::Server::start`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The snapshot file to serve; reloads look for newer ones in its
    /// directory.
    pub snapshot: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// `keys.toml`; `None` is demo mode (the demo key, loopback only).
    pub keys: Option<PathBuf>,
    /// The audit log file; `None` turns auditing off.
    pub audit: Option<PathBuf>,
    /// Audit queue capacity in entries; at least [`MAX_BATCH`], or full
    /// batches are always refused.
    pub audit_queue: usize,
    /// When an access may be answered: after its audit entry is fsynced
    /// (durable, the default) or once it is queued (buffered).
    pub audit_durability: Durability,
    /// When the audit log rotates.
    pub audit_rotation: Rotation,
    /// Proxies whose `X-Forwarded-For` names the caller in the audit log;
    /// from any other peer the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// Check every section checksum before reporting ready.
    pub verify: bool,
    /// How to hold the snapshot.
    pub memory: Memory,
    /// Thread layout.
    pub layout: Layout,
    /// Limits.
    pub limits: Limits,
    /// The change-log directory: with one, the server is the live register
    /// (write routes, the change feed, compaction); without, it serves the
    /// snapshot as it is.
    pub changes: Option<PathBuf>,
    /// Compact automatically once this many citizens have changes in the
    /// overlay (0: only when asked, `POST /v1/admin/compact`).
    pub compact_after: u64,
    /// Follow a primary (`--follow`): apply its change feed, refuse writes.
    /// Needs [`changes`](Config::changes), the follower's own log.
    pub follow: Option<crate::follower::FollowConfig>,
    /// Install SIGTERM/SIGINT (shutdown) and SIGHUP (reload) handlers. Only
    /// the binary should: handlers are process-wide.
    pub handle_signals: bool,
}

impl Config {
    /// A configuration with defaults for everything but the snapshot.
    pub fn new(snapshot: impl Into<PathBuf>) -> Config {
        Config {
            snapshot: snapshot.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            keys: None,
            audit: None,
            audit_queue: 1 << 20,
            audit_durability: Durability::Durable,
            audit_rotation: Rotation::default(),
            trusted_proxies: Vec::new(),
            verify: true,
            memory: Memory::Map,
            layout: Layout::default_for_machine(),
            limits: Limits::default(),
            changes: None,
            compact_after: 0,
            follow: None,
            handle_signals: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layouts() {
        assert_eq!("multi:3".parse(), Ok(Layout::MultiThread { threads: 3 }));
        assert_eq!("per-core:1".parse(), Ok(Layout::PerCore { threads: 1 }));
        assert!("per-core".parse::<Layout>().is_ok());
        assert!("fast".parse::<Layout>().is_err());
        assert!("multi:x".parse::<Layout>().is_err());
    }
}
