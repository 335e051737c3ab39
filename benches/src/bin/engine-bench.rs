//! Engine figures at a chosen scale, printed as one JSON object on the last
//! line. `cargo run --release -p dancu-benches --bin engine-bench -- --citizens 10000000`
//!
//! Builds a synthetic snapshot of N citizens with the data crate's generator
//! (or reuses `--snapshot FILE` if it exists), then measures open, verify,
//! dependent single lookups, batched lookups from a plain mapping and from a
//! huge-page copy, legacy and biometric lookups and verification.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use dancu_benches::*;
use dancu_engine::{Memory, Snapshot};

/// The same allocator as `dancu-data`, so `build_s` matches its builds (the
/// generator frees on one thread what it allocated on others).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Measure the dancu engine at a chosen scale; last line is JSON")]
struct Args {
    /// Citizens in the synthetic snapshot (when it has to be built).
    #[arg(long, default_value_t = 1_000_000)]
    citizens: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Snapshot to reuse, or to build at this path if it does not exist.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Keys per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    keys: usize,
    /// Skip the huge-page measurement (it copies the whole file into memory).
    #[arg(long)]
    no_hugepages: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = args.snapshot.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("dancu-bench-{}-{}.snap", args.citizens, args.seed))
    });
    let mut build_s = None;
    // The default cache is rebuilt when an older build (another format
    // version) left it; a file named with --snapshot is never overwritten.
    let stale_cache = args.snapshot.is_none() && Snapshot::open_file(&path, Memory::Map).is_err();
    if !path.exists() || stale_cache {
        eprintln!(
            "building {} citizens into {}",
            args.citizens,
            path.display()
        );
        let start = Instant::now();
        dancu_data::build_synthetic(&path, args.citizens, args.seed, true)
            .with_context(|| format!("building {}", path.display()))?;
        build_s = Some(start.elapsed().as_secs_f64());
    }

    let mut opens = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let snap = Snapshot::open_file(&path, Memory::Map)?;
        opens.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(snap.len());
    }
    let open_ms = median(&mut opens);
    let snap = Snapshot::open_file(&path, Memory::Map)?;
    let file_bytes = snap.bytes().len() as u64;
    let records = snap.len() as u64;
    snap.verify_checksums()?; // warms the page cache; the timed run below reads from memory
    let start = Instant::now();
    snap.verify_checksums()?;
    let verify_gb_per_s = file_bytes as f64 / start.elapsed().as_secs_f64() / 1e9;

    eprintln!("sampling keys");
    let ids = sample_ids(&snap, args.keys, args.seed ^ 0xA5);
    let legacy = sample_legacy(&snap, args.keys / 4, args.seed ^ 0xB6);
    let templates = sample_templates(&snap, args.keys / 4, args.seed ^ 0xC7);
    let claims = sample_claims(&snap, args.keys / 4, args.seed ^ 0xD8);

    eprintln!("measuring lookups (plain mapping)");
    let single_lookup_ns_p50 = dependent_ns_p50(&ids, 10_000, |id| {
        snap.get(*id)
            .map_or(0, |v| usize::from(v.date_of_birth().day()))
    });
    let batched = batched_lookups_per_s(&snap, &ids);
    let random_reads = random_reads_per_s(snap.bytes(), ids.len(), args.seed ^ 0xE9);
    let legacy_lookup_ns_p50 = dependent_ns_p50(&legacy, 10_000, |l| {
        snap.get_legacy(*l)
            .map_or(0, |v| usize::from(v.date_of_birth().day()))
    });
    let biometric_lookup_ns_p50 = dependent_ns_p50(&templates, 10_000, |(m, d)| {
        snap.identify(*m, d)
            .map_or(0, |v| usize::from(v.date_of_birth().day()))
    });
    let mut matched = 0usize;
    let verify_ns_p50 = dependent_ns_p50(&claims, 10_000, |c| {
        let ok = snap.verify_claims(c).is_some_and(|v| v.matched());
        matched += usize::from(ok);
        usize::from(ok)
    });
    drop(snap);

    let (
        batched_lookups_per_s_hugepages,
        single_lookup_ns_p50_hugepages,
        huge_kb,
        random_reads_huge,
    ) = if args.no_hugepages {
        (None, None, None, None)
    } else {
        eprintln!("measuring lookups (huge-page copy)");
        let snap = Snapshot::open_file(&path, Memory::HugePages)?;
        let huge = anon_huge_pages_kb();
        let single = dependent_ns_p50(&ids, 10_000, |id| {
            snap.get(*id)
                .map_or(0, |v| usize::from(v.date_of_birth().day()))
        });
        let reads = random_reads_per_s(snap.bytes(), ids.len(), args.seed ^ 0xE9);
        (
            Some(batched_lookups_per_s(&snap, &ids)),
            Some(single),
            huge,
            Some(reads),
        )
    };

    let report = serde_json::json!({
        "records": records,
        "file_bytes": file_bytes,
        "bytes_per_citizen": file_bytes as f64 / records.max(1) as f64,
        "build_s": build_s,
        "open_ms": open_ms,
        "verify_gb_per_s": verify_gb_per_s,
        "single_lookup_ns_p50": single_lookup_ns_p50,
        "single_lookup_ns_p50_hugepages": single_lookup_ns_p50_hugepages,
        "batched_lookups_per_s": batched,
        "batched_lookups_per_s_hugepages": batched_lookups_per_s_hugepages,
        "anon_huge_pages_mb": huge_kb.map(|kb| kb / 1024),
        "random_reads_per_s": random_reads,
        "random_reads_per_s_hugepages": random_reads_huge,
        "legacy_lookup_ns_p50": legacy_lookup_ns_p50,
        "biometric_lookup_ns_p50": biometric_lookup_ns_p50,
        "verify_ns_p50": verify_ns_p50,
        "verify_claims_matched_share": matched as f64 / claims.len().max(1) as f64,
        "keys": ids.len(),
        "snapshot": path,
    });
    println!("{report}");
    Ok(())
}
