//! The demo: `dancu-server` with no arguments.
//!
//! The first run builds a deterministic synthetic population of
//! [`DEMO_CITIZENS`] citizens (seed [`DEMO_SEED`]) into
//! `<data-dir>/demo-1m.snap`, where `--data-dir` defaults to `data/demo`
//! relative to the current directory (git-ignored; run from the workspace
//! root). Later runs reuse the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::keys::DEMO_KEY;
use crate::server::Sample;
use crate::Error;

/// Citizens in the demo snapshot.
pub const DEMO_CITIZENS: u64 = 1_000_000;
/// Generator seed of the demo snapshot (the same file on every machine).
pub const DEMO_SEED: u64 = 2021;
/// File name of the demo snapshot inside the data directory.
pub const DEMO_FILE: &str = "demo-1m.snap";
/// The demo's change-log directory, inside the data directory.
pub const DEMO_CHANGES_DIR: &str = "changes";
/// File name of the demo audit log inside the data directory.
pub const DEMO_AUDIT_FILE: &str = "demo.audit";

/// The demo snapshot in `data_dir`, built first if it is not there.
pub fn ensure_snapshot(data_dir: &Path) -> Result<PathBuf, Error> {
    let path = data_dir.join(DEMO_FILE);
    if path.exists() {
        // A cache made by an older build (another format version) or damaged
        // is rebuilt: it is a demo, derived from the seed alone.
        match dancu_engine::Snapshot::open_file(&path, dancu_engine::Memory::Map) {
            Ok(_) => return Ok(path),
            Err(e) => eprintln!("dancu-server: cached demo snapshot unusable ({e}); rebuilding"),
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    eprintln!(
        "dancu-server: first run: building the demo snapshot ({DEMO_CITIZENS} synthetic citizens, \
         seed {DEMO_SEED}) at {}",
        path.display()
    );
    let report =
        dancu_data::build_synthetic(&path, DEMO_CITIZENS, DEMO_SEED, true).map_err(|e| {
            Error::Demo {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
    eprintln!("dancu-server: {report}");
    Ok(path)
}

/// What `dancu-server` prints once it listens: how to try it. Sample IDs
/// (and nothing else about anyone) only in demo mode.
pub fn banner(addr: SocketAddr, demo: bool, samples: &[Sample]) -> String {
    let mut s = format!("dancu-server listening on http://{addr}\n");
    if demo {
        s.push_str(&format!(
            "demo mode: the key `{DEMO_KEY}` has every scope (loopback only)\n"
        ));
        if let Some(first) = samples.first() {
            let ids: Vec<&str> = samples.iter().map(|x| x.id.as_str()).collect();
            s.push_str(&format!("sample IDs: {}\n", ids.join(" ")));
            s.push_str(&format!(
                "try:\n  curl -s -H 'Authorization: Bearer {DEMO_KEY}' http://{addr}/v1/citizens/{}\n",
                first.id
            ));
            // A claim to check, not a fact: the answer is the only disclosure.
            s.push_str(&format!(
                "  curl -s -H 'Authorization: Bearer {DEMO_KEY}' http://{addr}/v1/citizens:verify \
                 -d '{{\"id\":\"{}\",\"sex\":\"female\"}}'\n",
                first.id
            ));
        }
    }
    s.push_str(&format!(
        "API: http://{addr}/v1/openapi.yaml   metrics: http://{addr}/metrics\n"
    ));
    s
}
