//! A real dancu server for the tests of operations that need one: a small
//! synthetic snapshot (format 5, with its deceased and its name index) and
//! one client key, on a free loopback port.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dancu_loadgen::report::Breakdown;
use dancu_loadgen::Report;
use dancu_server::{hash_key, Config, Layout, Server};

/// Starts a server over `citizens` synthetic citizens (seed `seed`) built
/// into `dir`, with one client `name` holding `key` and `scopes`;
/// `configure` adds what the test needs (an audit log, a change log).
/// Returns once the server is ready, with the snapshot's path.
pub fn start_dancu(
    dir: &Path,
    (citizens, seed): (u64, u64),
    (name, key, scopes): (&str, &str, &[&str]),
    configure: impl FnOnce(&mut Config),
) -> (Server, PathBuf) {
    let snapshot = dir.join("dancu.snap");
    dancu_data::build_synthetic(&snapshot, citizens, seed, false).expect("build the test snapshot");
    let keys = dir.join("keys.toml");
    let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    std::fs::write(
        &keys,
        format!(
            "[[client]]\nname = {name:?}\nkey_sha256 = \"{}\"\nscopes = [{}]\n",
            hash_key(key),
            scopes.join(", ")
        ),
    )
    .expect("write keys.toml");
    let mut config = Config::new(&snapshot);
    config.listen = "127.0.0.1:0".parse().expect("a socket address");
    config.keys = Some(keys);
    config.layout = Layout::MultiThread { threads: 1 };
    configure(&mut config);
    let server = Server::start(config).expect("server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.is_ready() {
        assert!(Instant::now() < deadline, "server not ready in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    (server, snapshot)
}

/// The figures of operation `name` in `report` (a test failure if absent).
pub fn by_op<'r>(report: &'r Report, name: &str) -> &'r Breakdown {
    report
        .operations
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("{name} missing from {:?}", report.operations))
}
