use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dancu_engine::{BuildOptions, Citizen, Memory, Snapshot};

/// Builds the synthetic population `(n, seed)` into `dir/name` with a fixed
/// build time, so files can be compared.
pub fn synthetic(dir: &Path, name: &str, n: u64, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let options = dancu_data::SyntheticOptions {
        build: BuildOptions {
            generation: 1,
            build_time_unix: Some(0),
            ..Default::default()
        },
        progress: false,
    };
    let report = dancu_data::build_synthetic_with(&path, n, seed, &options).unwrap();
    assert_eq!(report.summary.records, n);
    path
}

pub fn open(path: &Path) -> Snapshot {
    Snapshot::open_file(path, Memory::Map).unwrap()
}

/// Records sorted by ID, for comparisons that ignore snapshot order.
pub fn sorted(mut v: Vec<Citizen>) -> Vec<Citizen> {
    v.sort_by_key(|c| c.id);
    v
}

pub fn parse_ndjson(bytes: &[u8]) -> Vec<Citizen> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs the `dancu-data` binary.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dancu-data"))
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
