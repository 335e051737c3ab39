//! Prints `N` random records of a snapshot as
//! `id<TAB>full_name<TAB>date_of_birth<TAB>sex<TAB>legacy_id<TAB>permanent_residence`
//! lines (absent values empty), for the load scripts of `bench/http.sh` and
//! `bench/qr.sh` (the first three columns are what most scripts read).
//!
//! `cargo run --release -p dancu-server --example sample-ids -- data/demo/demo-1m.snap 10000`

use std::io::Write;

use dancu_engine::{Memory, Snapshot};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: sample-ids SNAPSHOT [N] [SEED]"))?;
    let n: usize = args.next().as_deref().unwrap_or("10000").parse()?;
    let mut state: u64 = args.next().as_deref().unwrap_or("42").parse::<u64>()? | 1;
    let snapshot = Snapshot::open_file(&path, Memory::Map)?;
    let len = snapshot.len() as u64;
    anyhow::ensure!(len > 0, "the snapshot is empty");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..n {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let view = snapshot
            .record((r % len) as u32)
            .expect("an index below len");
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            view.id(),
            view.full_name(),
            view.date_of_birth(),
            view.sex(),
            view.legacy_id().map(|l| l.to_string()).unwrap_or_default(),
            view.permanent_residence().unwrap_or_default()
        )?;
    }
    Ok(())
}
