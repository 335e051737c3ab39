//! National traffic for capacity planners, with honest latency.
//!
//! `dancu-loadgen` drives a dancu server (see DESIGN.md, "HTTP API (v1)")
//! with the traffic a country of 100 M people sends it, and reports what
//! the server did with it.
//!
//! * **Workload** ([`profile`], [`workload`]): callers — social insurance,
//!   banks, telcos, the public-services portal, the e-ID app, police — each
//!   with an operation mix, batch sizes, a share of the traffic, a key
//!   popularity (uniform or Zipf) and shares of malformed and unknown keys.
//!   Keys ([`keys`]) come from a snapshot read with the engine or from
//!   `dancu-data sample-keys` files.
//! * **Open model** ([`runner`], [`rate`]): requests follow a rate curve
//!   (constant, ramp, steps, per-minute CSV; even or Poisson gaps) whatever
//!   the server does, and latency is timed from each request's *intended*
//!   send time, so stalls show (no coordinated omission). The generator's
//!   own lateness is reported apart. Connections are a pool that grows on
//!   demand up to a cap.
//! * **Closed model**: a fixed number of connections sending back to back,
//!   for maximum throughput, like wrk.
//! * **Figures** ([`stats`]): HdrHistograms (1 µs to 1 h, 3 significant
//!   digits) per caller, operation and status class, and per interval;
//!   memory per interval, none per request; mergeable across processes.
//! * **Reports** ([`report`], [`html`]): text, a one-line JSON summary, a
//!   `report.json` and a self-contained `report.html` with charts.
//! * **Capacity search** ([`capacity`]): the highest rate that meets an
//!   SLO, and the replicas a national peak needs.
//!
//! Every run is bounded by a duration and optionally a request count, and
//! contacts only the given targets.
//!
//! # Example
//!
//! An open-model run of `GET /v1/citizens/{id}` at 2,000 requests/s for ten
//! seconds, with keys sampled from a snapshot:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use dancu_loadgen::{run, Caller, KeyPool, Op, Report, RunConfig, Target, Workload};
//!
//! # fn main() -> Result<(), dancu_loadgen::Error> {
//! let target = Target::parse("http://127.0.0.1:8080")?;
//! let mut config = RunConfig::open(target, 2_000.0, Duration::from_secs(10));
//! config.api_key = Some("demo-key".into());
//! let workload = Workload { callers: vec![Caller::single(Op::Get)] };
//! let keys = Arc::new(KeyPool::from_snapshot("country.snap".as_ref(), 100_000)?);
//! let (stats, info) = run(&config, &workload, keys)?;
//! let report = Report::build(&stats, info)?;
//! println!("{}", report.text());
//! println!("p99 = {} us, behind schedule at worst {} us",
//!          report.summary.p99_us, report.summary.behind_schedule_us);
//! # Ok(())
//! # }
//! ```
//!
//! The same from the command line:
//!
//! ```text
//! dancu-loadgen --target http://127.0.0.1:8080 --key demo-key --snapshot country.snap \
//!     --op get --rate 2000 --duration 10s --report out/
//! dancu-loadgen --target http://127.0.0.1:8080 --key demo-key --snapshot country.snap \
//!     --profile loadgen/profiles/national-day.toml --duration 10m --scale 3
//! dancu-loadgen --target http://127.0.0.1:8080 --key demo-key --snapshot country.snap \
//!     --op get --max --connections 64 --duration 30s
//! dancu-loadgen --target http://127.0.0.1:8080 --key demo-key --snapshot country.snap \
//!     --profile loadgen/profiles/steady.toml --find-capacity --slo "p99<5ms" --peak 40000
//! dancu-loadgen merge a/report.json b/report.json --report merged/
//! ```

#![deny(missing_docs)]

// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod answer;
#[cfg(target_os = "linux")]
mod arrival;
pub mod capacity;
pub mod cli;
pub mod cpu;
mod error;
mod feed;
pub mod floor;
pub mod html;
pub mod http;
pub mod keys;
pub mod profile;
pub mod rate;
pub mod report;
pub mod rng;
pub mod runner;
mod snapshot_keys;
pub mod stats;
pub mod timer;
pub mod tls;
pub mod units;
pub mod workload;
pub mod writes;

pub use capacity::{find_capacity, Capacity, CapacityConfig};
pub use error::{Error, Result};
pub use http::{ClientKind, Target};
pub use keys::{KeyKind, KeyPool};
pub use profile::Profile;
pub use rate::RateCurve;
pub use report::{Report, Summary};
pub use runner::{run, Engine, Model, Realtime, Reuse, RunConfig, RunInfo};
pub use stats::Stats;
pub use tls::TlsClient;
pub use units::Slo;
pub use workload::{Caller, Op, Workload};
