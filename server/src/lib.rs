//! The HTTP/1.1 front end of dancu, on hyper: upstream gateways look up,
//! verify and identify citizens in a memory-mapped snapshot.
//!
//! - [`Server`] binds, serves the API of `shared/DESIGN.md` (described in
//!   `server/openapi.yaml`, served at `GET /v1/openapi.yaml`), swaps in
//!   newer snapshots without failing a request ([`snapshot`]), and shuts
//!   down gracefully.
//! - [`keys`]: clients from `keys.toml` (read again on SIGHUP and reload),
//!   with hashed keys compared in constant time, scopes and per-client rate
//!   limits ([`ratelimit`]); [`throttle`] refuses a client that keeps
//!   guessing about one subject; [`address_share`] keeps one address from
//!   taking every connection.
//! - Requests: `service.rs` routes and authorizes (`auth.rs`), the
//!   handlers in [`routes`] return `Result<_, `[`ApiError`]`>`, and every
//!   record is read through [`lookup::Lookup`].
//! - [`audit`]: every data access in a tamper-evident (SHA-256 chained),
//!   rotated and indexed log; by default an access is answered only once
//!   its entry is fsynced (group commit), and an I/O error on the log stops
//!   data access until a reload recovers it; [`audit::query`] reads it back
//!   ("who looked me up?"), [`audit::verify`] checks the chain.
//! - [`metrics`]: Prometheus counters and latency histograms per route and
//!   client, with each request's time split into queue wait, body receive,
//!   service and response write.
//! - [`admission`]: batches on their own pool so that they never hold a
//!   runtime thread, interactive clients before bulk ones, and `503` with
//!   `Retry-After` for work that waited past its budget.
//! - [`demo`]: the 1 M-citizen demo snapshot that `dancu-server` with no
//!   arguments makes and serves.
//!
//! # Example
//!
//! Serve a snapshot in demo mode (the key `dancu-demo-key`, loopback only)
//! on a free port, then stop:
//!
//! ```no_run
//! use dancu_server::{Config, Server};
//!
//! let mut config = Config::new("data/demo/demo-1m.snap");
//! config.listen = "127.0.0.1:0".parse()?;
//! config.audit = Some("data/demo/demo.audit".into());
//! let server = Server::start(config)?;
//! println!("listening on http://{}", server.local_addr());
//! server.shutdown();
//! server.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use std::net::SocketAddr;
use std::path::PathBuf;

pub mod address_share;
pub mod admission;
pub mod api_error;
pub mod audit;
mod auth;
pub mod body;
pub mod compaction;
pub mod config;
mod conn;
pub mod demo;
mod fastpath;
pub mod follower;
pub mod keys;
pub mod lookup;
pub mod metrics;
pub mod openapi;
mod projection;
pub mod ratelimit;
pub mod router;
pub mod routes;
mod server;
mod service;
pub mod snapshot;
pub mod state;
pub mod statistics;
pub mod throttle;

pub use api_error::ApiError;
pub use config::{Config, Layout, Limits, MAX_BATCH};
pub use keys::{hash_key, KeyStore, Scopes, DEMO_KEY};
pub use lookup::{Lookup, RecordKey, SnapshotGuard};
pub use routes::public::OPENAPI_YAML;
pub use server::{is_loopback, Sample, Server};

/// Everything that can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot does not open or verify.
    #[error("snapshot {}: {source}", path.display())]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// The engine's reason.
        #[source]
        source: dancu_engine::Error,
    },
    /// `keys.toml` is not acceptable.
    #[error("{}: {message}", path.display())]
    Keys {
        /// The keys file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Cannot listen on the address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Demo mode (no `--keys`) on a non-loopback address.
    #[error(
        "demo mode (no --keys) serves the key `dancu-demo-key` with every scope, so it only \
         listens on loopback; {addr} is not loopback. Pass --keys keys.toml"
    )]
    DemoNotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// No audit log on a non-loopback address: personal-data access must be
    /// audited; serving without a log is for benchmarks on one machine.
    #[error(
        "--no-audit serves personal data unaudited, so it only listens on loopback; {addr} is \
         not loopback. Pass --audit FILE"
    )]
    NoAuditNotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Building the demo snapshot failed.
    #[error("building the demo snapshot {}: {message}", path.display())]
    Demo {
        /// The snapshot being built.
        path: PathBuf,
        /// Why it failed.
        message: String,
    },
    /// The change log does not open, or a compaction failed.
    #[error("change log beside {}: {source}", path.display())]
    Register {
        /// The snapshot (or log directory) concerned.
        path: PathBuf,
        /// The register's reason.
        #[source]
        source: dancu_register::Error,
    },
    /// `--follow` and its TLS files are not usable.
    #[error("{0}")]
    Follow(String),
    /// A bug: a thread panicked.
    #[error("internal error: {0}")]
    Internal(String),
}
