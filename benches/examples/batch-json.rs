//! The engine's half of a `batchGet`: look up 1000 IDs with `get_many`, then
//! write every record's JSON into one buffer, pass after pass, printing
//! records/s for each look-ahead distance of `prefetch_citizen_json`
//! (0 = no prefetch). The loop to measure the JSON writer without HTTP.
//!
//! `cargo run --release -p dancu-benches --example batch-json -- FILE [map|hugepages] [all|basic]`

use dancu_benches::write_batch_json;
use dancu_engine::{FieldSet, Memory, Snapshot};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: batch-json FILE [map|hugepages] [all|basic]";
    let path = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let memory = match args.next().as_deref() {
        None | Some("map") => Memory::Map,
        Some("hugepages") => Memory::HugePages,
        Some(other) => anyhow::bail!("unknown memory mode {other:?}; {usage}"),
    };
    let fields = match args.next().as_deref() {
        None | Some("all") => FieldSet::ALL,
        Some("basic") => FieldSet::BASIC,
        Some(other) => anyhow::bail!("unknown projection {other:?}; {usage}"),
    };
    let snap = Snapshot::open_file(&path, memory)?;
    snap.verify_checksums()?;
    let ids = dancu_benches::sample_ids(&snap, 400_000, 0x5EED);
    let mut views = Vec::with_capacity(1000);
    let mut out = Vec::with_capacity(1_300_000);
    for pass in 0..3 {
        for ahead in [0usize, 2, 4, 8, 16] {
            let start = Instant::now();
            for batch in ids.chunks_exact(1000) {
                let written = write_batch_json(&snap, batch, fields, ahead, &mut views, &mut out);
                std::hint::black_box(written);
            }
            let per_s = ids.len() as f64 / start.elapsed().as_secs_f64();
            println!(
                "pass {pass} ahead {ahead:2}: {:.2} M records/s ({:.0} ns/record, {} B of JSON per batch)",
                per_s / 1e6,
                1e9 / per_s,
                out.len()
            );
        }
    }
    Ok(())
}
