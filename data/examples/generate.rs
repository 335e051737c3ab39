//! Times generation alone (no snapshot): `cargo run --release -p dancu-data --example generate -- N SEED`.

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let started = Instant::now();
    let mut count = 0u64;
    let mut bytes = 0usize;
    for chunk in dancu_data::generate_chunks(n, seed) {
        count += chunk.len() as u64;
        bytes += chunk.iter().map(|c| c.full_name.len()).sum::<usize>();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} citizens in {secs:.2} s: {:.0}/s ({bytes} name bytes)",
        count as f64 / secs
    );
    let started = Instant::now();
    let chunk = dancu_data::generate_chunk(n, seed, 0);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "one chunk of {} on one thread: {:.0}/s",
        chunk.len(),
        chunk.len() as f64 / secs
    );
}
