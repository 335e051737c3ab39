//! Drawing keys straight from a snapshot, read with the engine.
//!
//! Kept in one small module because it is the only place that depends on
//! the engine's reader API.

use std::path::Path;

use dancu_engine::{LegacyId, Memory, Modality, Snapshot};

use crate::error::{Error, Result};
use crate::keys::{random_legacy, random_valid_id, yyyymmdd, KeyKind, KeyPool};
use crate::rng::Rng;

/// How many random IDs of each kind are drawn and checked against the
/// snapshot for "unknown" requests.
const ABSENT_DRAWS: usize = 1 << 16;

/// Samples `sample` citizens spread evenly over the snapshot (every
/// province and birth year shows up) with their names, dates of birth,
/// sexes, legacy IDs and deaths, and up to `sample` template hashes per modality
/// (the biometric index is ordered by hash, so its first entries are a
/// random sample of the enrolled).
pub(crate) fn load(path: &Path, sample: usize) -> Result<KeyPool> {
    let fail = |message: String| Error::Snapshot {
        path: path.to_path_buf(),
        message,
    };
    let snap = Snapshot::open_file(path, Memory::Map).map_err(|e| fail(e.to_string()))?;
    let n = snap.len();
    if n == 0 {
        return Err(fail("the snapshot holds no citizens".into()));
    }
    let take = sample.clamp(1, n);
    let stride = n as f64 / take as f64;
    let mut pool = KeyPool::new();
    for k in 0..take {
        let index = (k as f64 * stride) as u32;
        let Some(view) = snap.record(index) else {
            continue;
        };
        let dob = yyyymmdd(view.date_of_birth());
        pool.push_id(view.id(), view.full_name(), Some(dob), Some(view.sex()));
        pool.set_last_address(view.permanent_residence().unwrap_or_default());
        if view.date_of_death().is_some() {
            pool.mark_deceased(pool.len(KeyKind::Id) - 1);
        }
        if let Some(legacy) = view.legacy_id() {
            pool.push_legacy(legacy.get());
        }
    }
    // "Unknown" requests must name nobody: checked here, while the snapshot
    // is open (a random ID of valid shape is sometimes issued at national
    // scale, and then its answer counted as the server's error).
    let mut rng = Rng::new(0xAB5E_471D);
    for _ in 0..ABSENT_DRAWS.min(take) {
        let id = random_valid_id(&mut rng);
        if snap.get(id).is_none() {
            pool.push_absent_id(id);
        }
        let legacy = random_legacy(&mut rng);
        if LegacyId::from_u32(legacy).is_ok_and(|l| snap.get_legacy(l).is_none()) {
            pool.push_absent_legacy(legacy);
        }
    }
    let (mut faces, mut fingers) = (0usize, 0usize);
    for (modality, digest, _) in snap.biometric_entries() {
        match modality {
            Modality::Face if faces < take => {
                pool.push_biometric(KeyKind::Face, digest.0);
                faces += 1;
            }
            Modality::Fingerprint if fingers < take => {
                pool.push_biometric(KeyKind::Fingerprint, digest.0);
                fingers += 1;
            }
            _ => {}
        }
        if faces >= take && fingers >= take {
            break;
        }
    }
    Ok(pool)
}
