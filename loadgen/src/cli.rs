//! The command line: argument definitions and what each command does.
//!
//! Lives in the library so that tests reach it; `main.rs` only parses and
//! maps errors to an exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::capacity::{find_capacity, CapacityConfig};
use crate::error::{Error, Result};
use crate::floor::{json_body, Floor, FloorConfig};
use crate::http::{ClientKind, Target};
use crate::keys::{KeyKind, KeyPool};
use crate::profile::Profile;
use crate::rate::{read_curve_csv, RateCurve};
use crate::report::Report;
use crate::runner::{default_threads, run, Engine, Model, Realtime, RunConfig};
use crate::tls::TlsClient;
use crate::units::{parse_duration, parse_ratio, Slo};
use crate::workload::{BatchSize, Caller, Op, Popularity, Workload};

/// `dancu-loadgen`: national traffic for capacity planners, with honest latency.
#[derive(Debug, Parser)]
#[command(
    name = "dancu-loadgen",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A subcommand; without one, run a load.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of a load run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Merge report.json files of processes that ran at the same time.
    Merge(MergeArgs),
    /// Run the floor: a bare hyper server answering every request with a
    /// fixed body, to measure what the box and network allow.
    Floor(FloorArgs),
}

/// Options of `floor`.
#[derive(Debug, Args)]
pub struct FloorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Threads, each with its own runtime and SO_REUSEPORT listener [one per core].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Bytes of the fixed JSON body (about one citizen record by default).
    #[arg(long, default_value_t = crate::floor::DEFAULT_BODY_BYTES)]
    pub body_bytes: usize,
    /// Stop after this long [run until interrupted].
    #[arg(long, short = 'd')]
    pub duration: Option<String>,
}

/// Options of `merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// report.json files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print the merged summary as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Write the merged report.json and report.html into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// When open-model worker threads run at real-time priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RealtimeArg {
    /// When a thread's share of the peak rate is at most 10,000/s.
    #[default]
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// The HTTP client to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ClientArg {
    /// Lean hand-rolled HTTP/1.1 client (fastest).
    #[default]
    Raw,
    /// hyper's client::conn::http1.
    Hyper,
}

/// What runs the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum EngineArg {
    /// A hand-polled epoll loop per thread for open-model runs against
    /// http:// targets with the raw client (the cheapest per request);
    /// tokio tasks otherwise (https://, --client hyper, --max).
    #[default]
    Auto,
    /// Tokio tasks, one per connection, for every run.
    Tasks,
}

/// Which idle connection takes a due request (open model).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ReuseArg {
    /// The one freed last: the few hottest connections carry the load.
    #[default]
    LastFreed,
    /// The one idle longest: the load goes round the pool (and round a
    /// per-core server's runtimes).
    LongestIdle,
}

/// Options of a load run.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Server base URL (http://host:port or https://host:port); repeat or
    /// separate with commas for several: the open model sends to each in
    /// turn, the closed model spreads connections over them.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub target: Vec<String>,
    /// PEM file of the CA certificates that https targets are checked
    /// against (a private CA, a self-signed certificate) [the system bundle].
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// API key sent as `Authorization: Bearer KEY` (callers in a profile may name their own).
    #[arg(long)]
    pub key: Option<String>,
    /// Basic-scope API key for get_basic (else get_basic asks for ?fields=...).
    #[arg(long)]
    pub key_basic: Option<String>,

    /// Draw keys from this snapshot (read with the engine).
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// How many citizens (and hashes per modality) to sample from the snapshot.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub snapshot_sample: usize,
    /// Key file: one key per line, kind recognised per line (12-digit ID with
    /// optional tab-separated name, DOB, sex; 9-digit legacy ID; face:HEX; fingerprint:HEX).
    #[arg(long, value_name = "FILE")]
    pub keys: Vec<PathBuf>,
    /// Key file of personal IDs (`dancu-data sample-keys --kind id`).
    #[arg(long, value_name = "FILE")]
    pub keys_id: Vec<PathBuf>,
    /// Key file of legacy IDs.
    #[arg(long, value_name = "FILE")]
    pub keys_legacy: Vec<PathBuf>,
    /// Key file of face template hashes.
    #[arg(long, value_name = "FILE")]
    pub keys_face: Vec<PathBuf>,
    /// Key file of fingerprint template hashes.
    #[arg(long, value_name = "FILE")]
    pub keys_fingerprint: Vec<PathBuf>,
    /// Make up N keys of valid shape (only useful against a stub server).
    #[arg(long, value_name = "N")]
    pub synthetic_keys: Option<usize>,

    /// Operation for a single-operation run: get, get_basic, batch_get, verify,
    /// batch_verify, legacy, identify, register, update, death.
    #[arg(long, conflicts_with = "profile")]
    pub op: Option<String>,
    /// Items per batch for batch_get / batch_verify.
    #[arg(long, default_value_t = 100, conflicts_with = "profile")]
    pub batch: u32,
    /// Zipf exponent of key popularity (default uniform).
    #[arg(long, conflicts_with = "profile")]
    pub zipf: Option<f64>,
    /// Share of malformed keys, e.g. 1% (expect 400).
    #[arg(long, conflicts_with = "profile")]
    pub malformed: Option<String>,
    /// Share of unknown but well-formed keys, e.g. 2% (expect 404).
    #[arg(long, conflicts_with = "profile")]
    pub unknown: Option<String>,

    /// Traffic profile (TOML): callers, mix and rate curve; replaces --op and --rate.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Multiply the profile's rates (capacity planning knob).
    #[arg(long)]
    pub scale: Option<f64>,

    /// Open model at a constant rate, requests/s.
    #[arg(long, group = "pace")]
    pub rate: Option<f64>,
    /// Open model, a linear ramp FROM:TO requests/s over the run.
    #[arg(long, group = "pace", value_name = "FROM:TO")]
    pub ramp: Option<String>,
    /// Open model, equal steps R1,R2,... requests/s over the run.
    #[arg(long, group = "pace", value_name = "R1,R2,...")]
    pub steps: Option<String>,
    /// Open model, a per-minute curve from CSV compressed into the run.
    #[arg(long, group = "pace", value_name = "FILE")]
    pub rate_csv: Option<PathBuf>,
    /// Closed model: each connection sends as soon as its previous answer arrives.
    #[arg(long, group = "pace")]
    pub max: bool,
    /// Exponential (Poisson) gaps between requests in the open model.
    #[arg(long)]
    pub poisson: bool,
    /// Closed model: connections; open model: the pool's cap [closed: 10, open: 1000].
    #[arg(long, short = 'c')]
    pub connections: Option<usize>,
    /// Open model: most new connections per second (after a first 32 per
    /// worker thread), like a gateway's pool that grows gradually; a
    /// request that finds every connection busy waits for one (its latency
    /// still runs from its intended time); 0: unbounded, every such request
    /// opens one up to the cap [1000].
    #[arg(long, value_name = "PER_S")]
    pub connect_rate: Option<f64>,

    /// How long to send (e.g. 30s, 10m) [profile's duration, else 10s].
    #[arg(long, short = 'd')]
    pub duration: Option<String>,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Worker threads [closed: one per core; open: one per 40,000/s of peak rate, at most one per core].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Per-request timeout.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// HTTP client.
    #[arg(long, value_enum, default_value_t = ClientArg::Raw)]
    pub client: ClientArg,
    /// What runs the connections (the report says which ran).
    #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
    pub engine: EngineArg,
    /// Open model: which idle connection takes a due request.
    #[arg(long, value_enum, default_value_t = ReuseArg::LastFreed)]
    pub reuse: ReuseArg,
    /// Report interval (time-series resolution).
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Open model: wake on a grid of this step and send all that is due
    /// (0 = one wake per request; costs more CPU, less lateness). auto:
    /// 250us, or 1ms while a thread's share of the rate is 45,000/s or more.
    #[arg(long, default_value = "auto")]
    pub tick: String,
    /// Open model: run the worker threads at the lowest real-time priority
    /// so that a busy box does not make them send late (needs root or
    /// CAP_SYS_NICE, else normal priority; the report says which). auto:
    /// when a thread's share of the peak rate is at most 10,000/s.
    #[arg(long, value_enum, default_value_t = RealtimeArg::Auto)]
    pub realtime: RealtimeArg,
    /// Random seed (keys, mix, Poisson gaps).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Write report.json and report.html into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// No progress line and no text summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Step the rate up until the SLO breaks; report the highest rate that held.
    #[arg(long, requires = "slo")]
    pub find_capacity: bool,
    /// Latency objective for --find-capacity, e.g. "p99<5ms".
    #[arg(long)]
    pub slo: Option<String>,
    /// Largest acceptable error share for --find-capacity.
    #[arg(long, default_value = "0.1%")]
    pub max_errors: String,
    /// First rate tried by --find-capacity [--rate, else 500].
    #[arg(long)]
    pub start_rate: Option<f64>,
    /// Length of each --find-capacity step.
    #[arg(long, default_value = "10s")]
    pub step_duration: String,
    /// Bisection steps of --find-capacity after the first failure.
    #[arg(long, default_value_t = 4)]
    pub refine: u32,
    /// National peak (requests/s) to size replicas for.
    #[arg(long)]
    pub peak: Option<f64>,
    /// Capacity kept free on each replica when sizing for --peak.
    #[arg(long, default_value = "30%")]
    pub headroom: String,
    /// With --find-capacity: search the floor server at this URL too
    /// (`dancu-loadgen floor`), same workload and objective, and report
    /// dancu's capacity as a share of the floor's.
    #[arg(long, value_name = "URL", requires = "find_capacity")]
    pub floor: Option<String>,
}

/// Runs what the command line asks for.
pub fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Merge(m)) => merge(m),
        Some(Command::Floor(f)) => floor(f),
        None => run_load(cli.run),
    }
}

fn floor(args: FloorArgs) -> Result<()> {
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    let floor = Floor::start(&FloorConfig {
        listen: args.listen,
        threads: args.threads.unwrap_or_else(default_threads).max(1),
        body: json_body(args.body_bytes),
    })?;
    println!("floor listening on http://{}", floor.addr());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })?;
    rt.block_on(async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    });
    drop(floor);
    Ok(())
}

fn merge(args: MergeArgs) -> Result<()> {
    let reports = args
        .files
        .iter()
        .map(|p| Report::read(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = Report::merge(&reports)?;
    print!("{}", merged.text());
    if let Some(dir) = &args.report {
        merged.write_dir(dir)?;
        eprintln!("report written to {}", dir.join("report.html").display());
    }
    if args.json {
        println!("{}", merged.json_line());
    }
    Ok(())
}

/// Everything a run needs, assembled from the command line.
#[derive(Debug)]
pub struct Plan {
    /// The run's configuration.
    pub config: RunConfig,
    /// The callers.
    pub workload: Workload,
    /// The keys.
    pub keys: Arc<KeyPool>,
}

/// Turns run arguments into a [`Plan`] (loads the profile and keys).
pub fn plan(args: &RunArgs) -> Result<Plan> {
    if args.target.is_empty() {
        return Err(Error::invalid(
            "target",
            "",
            "give at least one --target http://host:port",
        ));
    }
    let targets = args
        .target
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>>>()?;
    let profile = args
        .profile
        .as_deref()
        .map(Profile::from_file)
        .transpose()?;
    let duration = match (&args.duration, &profile) {
        (Some(d), _) => parse_duration(d)?,
        (None, Some(p)) => p.duration.unwrap_or(Duration::from_secs(10)),
        (None, None) => Duration::from_secs(10),
    };
    if duration.is_zero() {
        return Err(Error::invalid("duration", "0", "a run must last some time"));
    }
    let seed = args
        .seed
        .or(profile.as_ref().and_then(|p| p.seed))
        .unwrap_or(1);

    let (mut workload, label) = match &profile {
        Some(p) => (p.workload.clone(), p.name.clone()),
        None => {
            let op = Op::parse(args.op.as_deref().unwrap_or("get"))?;
            let mut c = Caller::single(op);
            c.popularity = args.zipf.map_or(Popularity::Uniform, Popularity::Zipf);
            c.malformed = args
                .malformed
                .as_deref()
                .map(parse_ratio)
                .transpose()?
                .unwrap_or(0.0);
            c.unknown = args
                .unknown
                .as_deref()
                .map(parse_ratio)
                .transpose()?
                .unwrap_or(0.0);
            c.batch_get = BatchSize::fixed(args.batch);
            c.batch_verify = BatchSize::fixed(args.batch);
            (Workload { callers: vec![c] }, op.as_str().to_string())
        }
    };
    if let Some(basic) = &args.key_basic {
        for c in &mut workload.callers {
            c.basic_key.get_or_insert_with(|| basic.clone());
        }
    }
    workload.validate()?;

    let model = pace(args, profile.as_ref(), duration)?;
    let keys = load_keys(args, seed)?;
    workload.check_keys(&keys)?;
    let tls = if targets.iter().any(Target::is_https) || args.ca.is_some() {
        Some(TlsClient::new(args.ca.as_deref())?)
    } else {
        None
    };
    let config = RunConfig {
        targets,
        tls,
        model,
        duration,
        max_requests: args.requests,
        threads: args.threads.unwrap_or(0),
        timeout: parse_duration(&args.timeout)?,
        client: match args.client {
            ClientArg::Raw => ClientKind::Raw,
            ClientArg::Hyper => ClientKind::Hyper,
        },
        interval: parse_duration(&args.interval)?,
        seed,
        progress: !args.quiet,
        api_key: args.key.clone(),
        label,
        tick: match args.tick.as_str() {
            "auto" => None,
            fixed => Some(parse_duration(fixed)?),
        },
        realtime: match args.realtime {
            RealtimeArg::Auto => Realtime::Auto,
            RealtimeArg::On => Realtime::On,
            RealtimeArg::Off => Realtime::Off,
        },
        reuse: match args.reuse {
            ReuseArg::LongestIdle => crate::runner::Reuse::LongestIdle,
            ReuseArg::LastFreed => crate::runner::Reuse::LastFreed,
        },
        engine: match args.engine {
            EngineArg::Auto => Engine::Auto,
            EngineArg::Tasks => Engine::Tasks,
        },
    };
    Ok(Plan {
        config,
        workload,
        keys: Arc::new(keys),
    })
}

fn pace(args: &RunArgs, profile: Option<&Profile>, duration: Duration) -> Result<Model> {
    if args.max {
        return Ok(Model::Closed {
            connections: args.connections.unwrap_or(10),
        });
    }
    let max_connections = args.connections.unwrap_or(1000);
    let scale = args.scale.unwrap_or(1.0);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::invalid(
            "scale",
            &scale.to_string(),
            "must be positive",
        ));
    }
    let mut poisson = args.poisson;
    let curve = if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::invalid("rate", &r.to_string(), "must be positive"));
        }
        RateCurve::constant(r, duration)
    } else if let Some(ramp) = &args.ramp {
        let (a, b) = ramp
            .split_once(':')
            .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)))
            .filter(|(a, b)| *a >= 0.0 && *b >= 0.0 && a + b > 0.0)
            .ok_or_else(|| {
                Error::invalid("ramp", ramp, "expected FROM:TO requests/s, e.g. 100:5000")
            })?;
        RateCurve::ramp(a, b, duration)
    } else if let Some(steps) = &args.steps {
        let rates = steps
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
            })
            .collect::<Option<Vec<f64>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::invalid("steps", steps, "expected rates like 1000,2000,4000"))?;
        RateCurve::equal_steps(&rates, duration)
    } else if let Some(csv) = &args.rate_csv {
        RateCurve::per_slot(&read_curve_csv(csv)?, duration)
    } else if let Some(p) = profile {
        poisson |= p.rate.poisson;
        p.rate.curve(duration)
    } else if args.find_capacity {
        RateCurve::constant(args.start_rate.unwrap_or(500.0), duration)
    } else {
        return Err(Error::invalid(
            "pace",
            "",
            "give --rate R (or --ramp, --steps, --rate-csv, --profile) for the open model, or --max for the closed model",
        ));
    };
    let curve = if profile.is_some() && args.rate.is_none() {
        curve.scaled(scale)
    } else {
        curve
    };
    let connect_rate = match args.connect_rate {
        None => Some(crate::runner::opening::DEFAULT_RATE),
        Some(0.0) => None,
        Some(r) if r.is_finite() && r > 0.0 => Some(r),
        Some(r) => {
            return Err(Error::invalid(
                "connect-rate",
                &r.to_string(),
                "must be positive, or 0 for unbounded",
            ))
        }
    };
    Ok(Model::Open {
        curve,
        poisson,
        max_connections,
        connect_rate,
    })
}

fn load_keys(args: &RunArgs, seed: u64) -> Result<KeyPool> {
    let mut pool = match &args.snapshot {
        Some(path) => KeyPool::from_snapshot(path, args.snapshot_sample.max(1))?,
        None => KeyPool::new(),
    };
    for p in &args.keys {
        pool.load_file(p, None)?;
    }
    for (files, kind) in [
        (&args.keys_id, KeyKind::Id),
        (&args.keys_legacy, KeyKind::Legacy),
        (&args.keys_face, KeyKind::Face),
        (&args.keys_fingerprint, KeyKind::Fingerprint),
    ] {
        for p in files {
            pool.load_file(p, Some(kind))?;
        }
    }
    if let Some(n) = args.synthetic_keys {
        let extra = KeyPool::synthetic(n, seed);
        for i in 0..extra.len(KeyKind::Id) {
            let c = extra.citizen(i);
            pool.push_id(extra.id(i), c.full_name, c.date_of_birth, c.sex);
        }
        for i in 0..extra.len(KeyKind::Legacy) {
            pool.push_legacy(extra.legacy(i));
        }
        for kind in [KeyKind::Face, KeyKind::Fingerprint] {
            for i in 0..extra.len(kind) {
                pool.push_biometric(kind, extra.biometric(kind, i));
            }
        }
    }
    pool.shuffle(seed);
    Ok(pool)
}

fn run_load(args: RunArgs) -> Result<()> {
    let plan = plan(&args)?;
    if args.find_capacity {
        let slo = Slo::parse(args.slo.as_deref().unwrap_or_default())?;
        let mut cfg = CapacityConfig::new(slo, parse_ratio(&args.max_errors)?);
        cfg.start_rate = args.start_rate.or(args.rate).unwrap_or(500.0);
        cfg.step_duration = parse_duration(&args.step_duration)?;
        cfg.refine = args.refine;
        cfg.peak = args.peak;
        cfg.headroom = parse_ratio(&args.headroom)?;
        let mut config = plan.config.clone();
        config.progress = false;
        let quiet = args.quiet;
        let show = |who: &'static str| {
            move |step: &crate::capacity::Step| {
                if !quiet {
                    eprintln!(
                        "{who} step {:.0}/s: achieved {:.1}/s, p{} {}us, errors {:.3} %, generator {:.1} us/req -> {}",
                        step.rate,
                        step.achieved,
                        slo.percentile,
                        step.percentile_us,
                        100.0 * step.error_rate,
                        step.cpu_us_per_request,
                        if step.held {
                            "held".to_string()
                        } else {
                            step.reason.clone()
                        }
                    );
                }
            }
        };
        let result = find_capacity(
            &config,
            &plan.workload,
            Arc::clone(&plan.keys),
            &cfg,
            show("dancu"),
        )?;
        print!("{}", result.text());
        let Some(floor_url) = &args.floor else {
            if args.json {
                println!("{}", serde_json::to_string(&result).unwrap_or_default());
            }
            return Ok(());
        };
        // The floor answers 200 to everything, so the answers a workload
        // expects to be 400 or 404 would count as errors: only latency and
        // unsent requests judge the floor's steps.
        config.targets = vec![Target::parse(floor_url)?];
        let mut floor_cfg = cfg.clone();
        floor_cfg.max_errors = 1.0;
        floor_cfg.peak = None;
        let floor = find_capacity(
            &config,
            &plan.workload,
            plan.keys,
            &floor_cfg,
            show("floor"),
        )?;
        println!("floor ({floor_url}):");
        print!("{}", floor.text());
        let ratio = match (result.capacity, floor.capacity) {
            (Some(d), Some(f)) if f > 0.0 => Some(d / f),
            _ => None,
        };
        match ratio {
            Some(r) => println!(
                "dancu's capacity is {:.0} % of the floor's: the rest of the floor's is the box, the HTTP stack and the generator",
                100.0 * r
            ),
            None => println!("no ratio: a search found no rate that held"),
        }
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "dancu": result, "floor": floor, "ratio": ratio })
            );
        }
        return Ok(());
    }
    let (stats, info) = run(&plan.config, &plan.workload, plan.keys)?;
    let report = Report::build(&stats, info)?;
    if !args.quiet {
        print!("{}", report.text());
    }
    if let Some(dir) = &args.report {
        report.write_dir(dir)?;
        eprintln!("report written to {}", dir.join("report.html").display());
    }
    if args.json {
        println!("{}", report.json_line());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_rate(flag: Option<f64>) -> Result<Option<f64>> {
        let args = RunArgs {
            rate: Some(100.0),
            connect_rate: flag,
            ..RunArgs::default()
        };
        match pace(&args, None, Duration::from_secs(1))? {
            Model::Open { connect_rate, .. } => Ok(connect_rate),
            Model::Closed { .. } => unreachable!("--rate is the open model"),
        }
    }

    #[test]
    fn connect_rate_defaults_bounds_and_zero_unbounds() {
        assert_eq!(
            connect_rate(None).unwrap(),
            Some(crate::runner::opening::DEFAULT_RATE)
        );
        assert_eq!(connect_rate(Some(250.0)).unwrap(), Some(250.0));
        assert_eq!(connect_rate(Some(0.0)).unwrap(), None);
        assert!(connect_rate(Some(-1.0)).is_err());
        assert!(connect_rate(Some(f64::NAN)).is_err());
    }
}
