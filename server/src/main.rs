//! `dancu-server`: serve a snapshot over HTTP. With no arguments, build (once)
//! and serve the 1 M-citizen demo on 127.0.0.1:8080. See `--help`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use dancu_engine::{LegacyId, Memory, PersonalId};
use dancu_server::audit::{self, AuditOptions, Durability, Rotation};
use dancu_server::{demo, Config, Layout, Server};

/// mimalloc rather than glibc's allocator: a durable write allocates a few
/// dozen small objects on request threads and frees some on the log thread,
/// and glibc's `_int_malloc` took 18 % of the server's CPU under PATCH load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dancu-server",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Snapshot to serve. Without it: the demo snapshot in --data-dir, built
    /// on first run.
    #[arg(long, value_name = "FILE")]
    snapshot: Option<PathBuf>,
    /// Where the demo snapshot and demo audit log live (relative to the
    /// current directory: run from the workspace root).
    #[arg(long, value_name = "DIR", default_value = "data/demo")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Client keys (keys.toml). Without it: demo mode, key `dancu-demo-key`
    /// with every scope, loopback addresses only.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Audit log file (appended). Demo mode defaults to <data-dir>/demo.audit;
    /// with --keys it is required unless --no-audit.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    /// Serve without an audit log (benchmarks only, loopback addresses only:
    /// personal-data access must be audited).
    #[arg(long, conflicts_with = "audit")]
    no_audit: bool,
    /// Skip the checksum verification before serving.
    #[arg(long)]
    no_verify: bool,
    /// How to hold the snapshot: map (page cache, read on first touch), warm
    /// (page cache, every page read in at open and at each swap, so no
    /// request waits for the disk) or hugepages (a private copy in 2 MiB
    /// pages).
    #[arg(long, value_name = "MODE", default_value = "map")]
    memory: Memory,
    /// Runtime layout: per-core (one current-thread runtime per CPU on
    /// SO_REUSEPORT listeners) or multi (one multi-thread runtime); append
    /// :N for N threads.
    #[arg(long, value_name = "LAYOUT")]
    runtime: Option<Layout>,
    /// Most open connections.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,
    /// Most open connections from one remote address (default: 10 % of
    /// --max-connections).
    #[arg(long, value_name = "N")]
    max_connections_per_address: Option<usize>,
    /// Largest request body in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,
    /// Seconds a client has to send a request head (also the idle keep-alive
    /// timeout) and a request body, and may leave a response unread.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    client_timeout: u64,
    /// Seconds shutdown waits for in-flight requests.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    shutdown_timeout: u64,
    /// Audit queue capacity in entries (a full queue answers 503).
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    audit_queue: usize,
    /// durable: answer an access only after its audit entry is fsynced
    /// (group commit). buffered: answer once it is queued; the file is
    /// fsynced every second, and a crash loses what was queued (kill -9) or
    /// up to a second more (power cut).
    #[arg(long, value_name = "MODE", default_value = "durable")]
    audit_durability: Durability,
    /// Rotate the audit log once the live file holds this many bytes (and
    /// at every UTC midnight).
    #[arg(long, value_name = "BYTES", default_value_t = 128 << 20)]
    audit_rotate_bytes: u64,
    /// A proxy whose X-Forwarded-For names the caller in the audit log
    /// (repeatable); from other peers the header is ignored.
    #[arg(long, value_name = "ADDR")]
    trusted_proxy: Vec<IpAddr>,
    /// The change-log directory: the server becomes the live register
    /// (registrar writes, the change feed, compaction), replaying the log
    /// at start. Demo mode uses <data-dir>/changes unless --read-only.
    #[arg(long, value_name = "DIR")]
    changes: Option<PathBuf>,
    /// Serve the snapshot as it is: no change log, no write routes.
    #[arg(long, conflicts_with = "changes")]
    read_only: bool,
    /// Compact automatically once this many citizens have changes (0: only
    /// on POST /v1/admin/compact).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    compact_after: u64,
    /// Follow this primary (http://host:port, its own listener, or
    /// https://host[:port], a TLS terminator in front of it): replay its
    /// change feed into --changes DIR and serve reads; writes are refused.
    #[arg(
        long,
        value_name = "URL",
        requires = "changes",
        requires = "follow_key_file"
    )]
    follow: Option<String>,
    /// File holding a key with `changes:read` on the primary (one line).
    #[arg(long, value_name = "FILE", requires = "follow")]
    follow_key_file: Option<PathBuf>,
    /// Trust only the CA certificates in this PEM file for an https://
    /// --follow URL (default: the system's trust store).
    #[arg(long, value_name = "FILE", requires = "follow")]
    follow_ca: Option<PathBuf>,
    /// Present this client certificate (PEM chain) to the primary's TLS
    /// terminator (mTLS); with --follow-cert-key.
    #[arg(long, value_name = "FILE", requires_all = ["follow", "follow_cert_key"])]
    follow_cert: Option<PathBuf>,
    /// The private key of --follow-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "follow_cert")]
    follow_cert_key: Option<PathBuf>,
    /// A follower further behind than this many seconds is not ready.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    max_lag_s: u64,
    /// Queue-wait budget of interactive clients: a data read that waited
    /// longer for its handler (or a batch for the batch pool) is answered
    /// 503 with Retry-After at once.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    queue_wait_budget_ms: u64,
    /// Queue-wait budget of bulk clients (class = "bulk" in keys.toml):
    /// smaller, so that they are shed first.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    bulk_queue_wait_budget_ms: u64,
    /// Threads that run batchGet and batchVerify (default: one per CPU); 0
    /// runs them on the runtime threads, as before the pool (to compare).
    #[arg(long, value_name = "N")]
    batch_threads: Option<usize>,
    /// Most batches waiting for the batch pool; more are shed.
    #[arg(long, value_name = "N", default_value_t = 64)]
    batch_queue: usize,
    /// Most batches one client may have queued or running while other
    /// clients' batches wait for the pool; more are shed (a client alone
    /// may fill the queue).
    #[arg(long, value_name = "N", default_value_t = 16)]
    client_batches: usize,
    /// Nice value of the batch pool's threads (the runtime threads, at 0,
    /// preempt them).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        allow_negative_numbers = true
    )]
    batch_nice: i32,
}

#[derive(Subcommand)]
enum Command {
    /// Print the SHA-256 of a key read from stdin (one line; not an
    /// argument, which `ps` would show), for `key_sha256` in keys.toml.
    HashKey,
    /// Print the accesses about one person ("who looked me up?"), from
    /// the live audit log and its rotated files (through their indexes).
    AuditQuery {
        /// The live audit log (rotated files beside it are read too).
        #[arg(long, value_name = "FILE")]
        audit: PathBuf,
        /// Personal ID (12 digits) or legacy ID (9 digits).
        #[arg(long, value_name = "ID")]
        subject: String,
    },
    /// Check the hash chain of audit-log files, in the order given (rotated
    /// files oldest first, then the live one: `audit.log.* audit.log`), and
    /// report the first broken line. A single live file stands for every
    /// file of its log.
    AuditVerify {
        /// The files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Write a synthetic audit log through the real writer (for timing
    /// audit-query): rounds of one 100-item batch_get and ten gets.
    AuditGen {
        /// The live audit log to append to.
        #[arg(long, value_name = "FILE")]
        audit: PathBuf,
        /// Accesses to write.
        #[arg(long, value_name = "N")]
        entries: u64,
        /// Rotation size in bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 128 << 20)]
        rotate_bytes: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our errors' messages already include their source's; print a
            // cause only when it adds something.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("dancu-server: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::HashKey) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the key from stdin")?;
            let key = line.trim_end_matches(['\n', '\r']);
            if key.is_empty() {
                bail!("no key on stdin (e.g. `dancu-server hash-key < key.txt`)");
            }
            println!("{}", dancu_server::hash_key(key));
            Ok(())
        }
        Some(Command::AuditQuery { audit, subject }) => audit_query(&audit, &subject),
        Some(Command::AuditVerify { files }) => audit_verify(files),
        Some(Command::AuditGen {
            audit,
            entries,
            rotate_bytes,
        }) => {
            let started = std::time::Instant::now();
            let options = AuditOptions {
                rotation: Rotation {
                    max_bytes: rotate_bytes,
                    daily: true,
                },
                ..AuditOptions::default()
            };
            let n = audit::generate::generate(&audit, entries, options)?;
            eprintln!(
                "{n} entries written to {} (and rotated files, indexed) in {:.1} s",
                audit.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        None => serve(cli.serve),
    }
}

fn audit_query(audit: &std::path::Path, subject: &str) -> anyhow::Result<()> {
    if subject.len() == 9 {
        LegacyId::parse(subject).with_context(|| format!("legacy ID {subject:?}"))?;
    } else {
        PersonalId::parse(subject).with_context(|| format!("personal ID {subject:?}"))?;
    }
    let started = std::time::Instant::now();
    let (matched, skipped) =
        audit::query(audit, subject, |line| match serde_json::to_string(line) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("unprintable entry: {e}"),
        })?;
    eprintln!(
        "{matched} entries about {subject} in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    if skipped > 0 {
        eprintln!("{skipped} unreadable lines skipped");
    }
    Ok(())
}

fn audit_verify(mut files: Vec<PathBuf>) -> anyhow::Result<()> {
    if let [live] = files.as_slice() {
        files = audit::index::log_files(live).with_context(|| format!("{}", live.display()))?;
    }
    let report = audit::verify(&files)?;
    match report.broken {
        None => {
            println!(
                "ok: {} lines in {} files, seq {}..{}",
                report.lines,
                files.len(),
                report.first_seq.unwrap_or(0),
                report.last_seq.unwrap_or(0)
            );
            Ok(())
        }
        Some(b) => bail!(
            "chain broken at {} line {}: {} ({} lines verified before it)",
            b.file.display(),
            b.line,
            b.reason,
            report.lines
        ),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let demo = args.keys.is_none();
    if demo && !dancu_server::is_loopback(&args.listen) {
        bail!(dancu_server::Error::DemoNotLoopback { addr: args.listen });
    }
    let snapshot = match args.snapshot {
        Some(path) => path,
        None => demo::ensure_snapshot(&args.data_dir)?,
    };
    let audit = match (args.audit, args.no_audit, demo) {
        (Some(path), _, _) => Some(path),
        (None, true, _) if !dancu_server::is_loopback(&args.listen) => {
            bail!(dancu_server::Error::NoAuditNotLoopback { addr: args.listen })
        }
        (None, true, _) => None,
        (None, false, true) => Some(args.data_dir.join(demo::DEMO_AUDIT_FILE)),
        (None, false, false) => bail!("--keys needs --audit FILE (or --no-audit for benchmarks)"),
    };
    if let Some(dir) = audit
        .as_ref()
        .and_then(|p| p.parent())
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut config = Config::new(snapshot);
    config.listen = args.listen;
    config.keys = args.keys;
    config.audit = audit;
    config.audit_queue = args.audit_queue.max(dancu_server::MAX_BATCH);
    config.audit_durability = args.audit_durability;
    config.audit_rotation = Rotation {
        max_bytes: args.audit_rotate_bytes.max(1),
        daily: true,
    };
    config.trusted_proxies = args.trusted_proxy;
    config.verify = !args.no_verify;
    config.memory = args.memory;
    if let Some(layout) = args.runtime {
        config.layout = layout;
    }
    config.limits.max_connections = args.max_connections.max(1);
    config.limits.max_connections_per_address = args.max_connections_per_address;
    config.limits.max_body_bytes = args.max_body;
    config.limits.header_timeout = Duration::from_secs(args.client_timeout.max(1));
    config.limits.body_timeout = Duration::from_secs(args.client_timeout.max(1));
    config.limits.write_timeout = Duration::from_secs(args.client_timeout.max(1));
    config.limits.shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    let admission = &mut config.limits.admission;
    admission.queue_wait_budget = Duration::from_millis(args.queue_wait_budget_ms);
    admission.bulk_queue_wait_budget = Duration::from_millis(args.bulk_queue_wait_budget_ms);
    if let Some(threads) = args.batch_threads {
        admission.batch_threads = threads;
    }
    admission.batch_queue = args.batch_queue.max(1);
    admission.client_batches = args.client_batches.max(1);
    admission.batch_nice = args.batch_nice;
    config.changes = match (args.changes, args.read_only, demo) {
        (Some(dir), _, _) => Some(dir),
        (None, false, true) => Some(args.data_dir.join(demo::DEMO_CHANGES_DIR)),
        _ => None,
    };
    config.compact_after = args.compact_after;
    if let (Some(primary), Some(key_file)) = (args.follow, args.follow_key_file) {
        let key = std::fs::read_to_string(&key_file)
            .with_context(|| format!("reading {}", key_file.display()))?;
        let key = key.trim().to_owned();
        if key.is_empty() {
            bail!("{} holds no key", key_file.display());
        }
        config.follow = Some(dancu_server::follower::FollowConfig {
            max_lag: Duration::from_secs(args.max_lag_s),
            ca_file: args.follow_ca,
            client_cert: args
                .follow_cert
                .zip(args.follow_cert_key)
                .map(|(cert_file, key_file)| dancu_server::follower::ClientCert {
                    cert_file,
                    key_file,
                }),
            ..dancu_server::follower::FollowConfig::new(primary, key)
        });
    }
    config.handle_signals = true;
    let changes_note = config.changes.clone();
    let follow_note = config.follow.as_ref().map(|f| f.primary.clone());
    let audit_note = config.audit.clone();
    let verify = config.verify;
    let server = Server::start(config)?;
    print!(
        "{}",
        demo::banner(server.local_addr(), demo, server.samples())
    );
    match audit_note {
        Some(path) => println!(
            "audit log: {} ({})",
            path.display(),
            match args.audit_durability {
                Durability::Durable => "durable",
                Durability::Buffered => "buffered: a crash may lose the last second",
            }
        ),
        None => println!("audit log: OFF"),
    }
    match changes_note {
        Some(dir) if follow_note.is_some() => println!(
            "change log: {} (follower of {}: writes refused)",
            dir.display(),
            follow_note.as_deref().unwrap_or_default()
        ),
        Some(dir) => println!("change log: {} (writes on)", dir.display()),
        None => println!("change log: none (read-only)"),
    }
    let started = std::time::Instant::now();
    if server.wait_until_ready() {
        println!(
            "ready: snapshot {} in {:.1} s",
            if verify {
                "verified"
            } else {
                "opened (not verified)"
            },
            started.elapsed().as_secs_f64()
        );
    }
    server.wait()?;
    eprintln!("dancu-server: stopped");
    Ok(())
}
