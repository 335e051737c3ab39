//! Runs only the batched ID lookup, pass after pass, printing lookups/s per
//! pass: the loop to attach `perf record` to when working on `get_many`.
//!
//! `cargo run --release -p dancu-benches --example batched-loop -- FILE [map|hugepages] [passes]`

use dancu_engine::{Memory, Snapshot};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: batched-loop FILE [map|hugepages] [passes]"))?;
    let memory = match args.next().as_deref() {
        None | Some("map") => Memory::Map,
        Some("hugepages") => Memory::HugePages,
        Some(other) => anyhow::bail!("unknown memory mode {other:?}"),
    };
    let passes: usize = args.next().map_or(Ok(5), |p| p.parse())?;
    let snap = Snapshot::open_file(&path, memory)?;
    snap.verify_checksums()?;
    let ids = dancu_benches::sample_ids(&snap, 2_000_000, 0xA5);
    for _ in 0..passes {
        let rate = dancu_benches::batched_lookups_per_s(&snap, &ids);
        println!("{:.2} M lookups/s", rate / 1e6);
    }
    Ok(())
}
