//! Register figures at a chosen scale, printed as one JSON object on the last
//! line. `cargo run --release -p dancu-benches --bin register-bench -- --citizens 1000000 --changes 1000000`
//!
//! On a synthetic snapshot of N citizens (built or reused): durable changes
//! per second in process (W writer threads, each waiting for its change to
//! be durable, so group commit is what makes it fast); then enough more
//! changes to reach `--changes`; the time a restart takes to replay them;
//! batched lookups through the overlay with it empty and with every change
//! in it, in alternating rounds beside the snapshot alone; the overlay's
//! bytes per changed record; and a compaction's time and peak memory.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use dancu_benches::*;
use dancu_engine::{Memory, PersonalId, Snapshot};
use dancu_register::{compact, ChangeRequest, Found, Provenance, Register};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Measure the live register at a chosen scale; last line is JSON")]
struct Args {
    /// Citizens in the synthetic snapshot (when it has to be built).
    #[arg(long, default_value_t = 1_000_000)]
    citizens: u64,
    /// Changes in the overlay for the read and replay figures.
    #[arg(long, default_value_t = 1_000_000)]
    changes: u64,
    /// Changes written by waiting writers (the durable-write figure).
    #[arg(long, default_value_t = 100_000)]
    durable_changes: u64,
    /// Writer threads for the durable-write figure.
    #[arg(long, default_value_t = 64)]
    writers: u64,
    /// Snapshot to reuse, or to build at this path if it does not exist.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Directory for the log and the compacted snapshot (default: a
    /// temporary directory beside the snapshot).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Skip the compaction.
    #[arg(long)]
    no_compaction: bool,
    /// Only write the changes (no measurement) into this change-log
    /// directory and keep it, for a server to replay (server/bench/overlay.sh).
    #[arg(long, value_name = "DIR")]
    fill_log: Option<PathBuf>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn change(i: u64) -> ChangeRequest {
    ChangeRequest::Update(serde_json::json!({
        "current_residence": format!("Số {} Đường Lê Lợi, Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh", i % 997),
    }))
}

fn who() -> Provenance {
    Provenance {
        client: "register-bench".into(),
        reason: "move".into(),
        idempotency_key: None,
    }
}

fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

/// Lookups per second of the overlay's batch path over `ids`.
fn overlay_lookups_per_s(register: &Register, snap: &Snapshot, ids: &[PersonalId]) -> f64 {
    let mut out = Vec::with_capacity(1000);
    let mut found = 0usize;
    let start = Instant::now();
    for batch in ids.chunks(1000) {
        register.overlay().get_many(snap, batch, &mut out);
        found += out
            .iter()
            .flatten()
            .map(|f: &Found<'_>| usize::from(f.view().date_of_birth().day() > 0))
            .sum::<usize>();
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(found, ids.len(), "every sampled ID is found");
    ids.len() as f64 / elapsed
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = args.snapshot.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("dancu-register-bench-{}.snap", args.citizens))
    });
    if !path.exists() || Snapshot::open_file(&path, Memory::Map).is_err() {
        eprintln!(
            "building {} citizens into {}",
            args.citizens,
            path.display()
        );
        dancu_data::build_synthetic(&path, args.citizens, 1, true)
            .with_context(|| format!("building {}", path.display()))?;
    }
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => path.with_extension("bench-work"),
    };
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let log_dir = work.join("changes");
    let snap = Arc::new(Snapshot::open_file(&path, Memory::Map)?);
    snap.verify_checksums()?;
    let ids = sample_ids(
        &*snap,
        args.changes.max(args.durable_changes) as usize,
        0x5EED,
    );
    if let Some(dir) = &args.fill_log {
        let register = Register::open(&*snap, dir)?;
        let mut last = 0;
        for (i, id) in ids.iter().enumerate().take(args.changes as usize) {
            last = register
                .submit(&*snap, Some(*id), change(i as u64), who(), now_unix())?
                .sequence;
        }
        register.durable_blocking(last)?;
        println!(
            "{{\"changes\":{},\"overlay_records\":{},\"log\":{:?}}}",
            args.changes,
            register.overlay().len(),
            dir
        );
        return Ok(());
    }
    let lookups = sample_ids(&*snap, 1_000_000, 0xA5);

    // Lookups with the overlay empty, before any change.
    let register = Arc::new(Register::open(&*snap, &log_dir)?);
    let mut empty_rounds = Vec::new();
    let mut plain_rounds = Vec::new();

    eprintln!("durable changes: {} writers", args.writers);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.writers {
            let (register, snap, next, ids) = (register.clone(), snap.clone(), next.clone(), &ids);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.durable_changes {
                    break;
                }
                let a = register
                    .submit(&*snap, Some(ids[i as usize]), change(i), who(), now_unix())
                    .expect("a valid change");
                register.durable_blocking(a.sequence).expect("durable");
            });
        }
    });
    let durable_per_s = args.durable_changes as f64 / start.elapsed().as_secs_f64();

    eprintln!("filling the overlay to {} changes", args.changes);
    let start = Instant::now();
    let mut last = 0;
    for i in args.durable_changes..args.changes {
        last = register
            .submit(&*snap, Some(ids[i as usize]), change(i), who(), now_unix())?
            .sequence;
    }
    if last > 0 {
        register.durable_blocking(last)?;
    }
    let queued_per_s = (args.changes - args.durable_changes) as f64 / start.elapsed().as_secs_f64();
    let overlay_records = register.overlay().len();
    let overlay_bytes = register.overlay().bytes();
    let log_bytes = register.log_bytes();
    drop(register);

    eprintln!("replaying");
    let start = Instant::now();
    let register = Register::open(&*snap, &log_dir)?;
    let replay_s = start.elapsed().as_secs_f64();
    assert_eq!(register.recovery().replayed, args.changes);

    eprintln!("lookups: snapshot alone, overlay empty, overlay full (3 alternating rounds)");
    let empty = Register::open(&*snap, &work.join("empty-log"))?;
    let mut full_rounds = Vec::new();
    for _ in 0..3 {
        plain_rounds.push(batched_lookups_per_s(&*snap, &lookups));
        empty_rounds.push(overlay_lookups_per_s(&empty, &snap, &lookups));
        full_rounds.push(overlay_lookups_per_s(&register, &snap, &lookups));
    }

    let (compaction_s, compacted_bytes, end_compaction_s) = if args.no_compaction {
        (None, None, None)
    } else {
        eprintln!("compacting");
        let start = Instant::now();
        let fold = register.begin_compaction(snap.folded_sequence())?;
        let out = work.join("compacted.snap");
        let summary = compact(
            &*snap,
            &fold.changes,
            fold.folded,
            snap.generation() + 1,
            fold.last_change_time.unwrap_or_else(now_unix),
            &out,
        )?;
        let compaction_s = start.elapsed().as_secs_f64();
        // Ending it: the overlay drops what the new generation holds, the
        // idempotency keys are saved and the log is trimmed.
        let start = Instant::now();
        register.end_compaction(fold.folded)?;
        (
            Some(compaction_s),
            Some(summary.file_bytes),
            Some(start.elapsed().as_secs_f64()),
        )
    };

    let report = serde_json::json!({
        "records": snap.len(),
        "writers": args.writers,
        "durable_changes_per_s": durable_per_s,
        "queued_changes_per_s": queued_per_s,
        "changes": args.changes,
        "overlay_records": overlay_records,
        "overlay_bytes_per_record": overlay_bytes as f64 / overlay_records.max(1) as f64,
        "log_bytes_per_change": log_bytes as f64 / args.changes.max(1) as f64,
        "replay_s": replay_s,
        "lookups_per_s_snapshot_alone": plain_rounds,
        "lookups_per_s_overlay_empty": empty_rounds,
        "lookups_per_s_overlay_full": full_rounds,
        "overlay_full_vs_empty": median(&mut full_rounds.clone()) / median(&mut empty_rounds.clone()),
        "compaction_s": compaction_s,
        "end_compaction_s": end_compaction_s,
        "compacted_file_bytes": compacted_bytes,
        "peak_rss_mb": peak_rss_mb(),
        "snapshot": path,
    });
    println!("{report}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
