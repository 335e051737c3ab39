//! `dancu-loadgen`: parse the command line, run, map errors to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = dancu_loadgen::cli::Cli::parse();
    match dancu_loadgen::cli::execute(cli).map_err(anyhow::Error::from) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dancu-loadgen: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
