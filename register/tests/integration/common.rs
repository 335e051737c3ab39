//! A small synthetic snapshot and helpers shared by the tests.

use std::path::{Path, PathBuf};

use dancu_engine::{build_snapshot, BuildOptions, Citizen, Memory, Snapshot};
use dancu_register::{Provenance, Register};

/// 2026-11-29 00:00 UTC.
pub const NOW: i64 = 1_795_910_400;

/// A directory with a snapshot of `n` synthetic citizens and an empty log
/// directory beside it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub citizens: Vec<Citizen>,
}

impl Fixture {
    pub fn new(n: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let citizens: Vec<Citizen> = dancu_data::generate(n, 7).collect();
        let options = BuildOptions {
            generation: 1,
            build_time_unix: Some(1_700_000_000),
            ..Default::default()
        };
        build_snapshot(dir.path().join("gen1.snap"), options, &citizens).unwrap();
        Fixture { dir, citizens }
    }

    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.path().join("gen1.snap")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("changes")
    }

    pub fn snapshot(&self) -> Snapshot {
        open(&self.snapshot_path())
    }
}

pub fn open(path: &Path) -> Snapshot {
    Snapshot::open_file(path, Memory::Map).unwrap()
}

pub fn registrar(key: Option<&str>) -> Provenance {
    Provenance {
        client: "registrar-test".into(),
        reason: "test".into(),
        idempotency_key: key.map(str::to_owned),
    }
}

/// Opens the register and panics on error.
pub fn register(snapshot: &Snapshot, dir: &Path) -> Register {
    Register::open(snapshot, dir).unwrap()
}

/// A registration body for a newborn in Hà Nội.
pub fn newborn(name: &str, dob: &str, sex: &str) -> serde_json::Value {
    serde_json::json!({
        "full_name": name,
        "date_of_birth": dob,
        "sex": sex,
        "birth_registration_place": "Phường Láng Hạ, Quận Đống Đa, Hà Nội",
        "permanent_residence": "Số 1 Phố Huế, Hà Nội",
        "nationality": "VN",
        "ethnicity": "Kinh",
    })
}
