//! `dancu-data`: see `dancu-data --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// Generation makes many small strings on several threads and frees them on
/// others; mimalloc handles that far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = dancu_data::cli::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match dancu_data::cli::run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            ExitCode::FAILURE
        }
    }
}
