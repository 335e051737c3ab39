//! Keys for load tests: IDs, legacy IDs and template hashes that exist in a
//! snapshot, or valid-looking ones that do not.

use std::collections::HashSet;

use dancu_engine::{codes, KeyKind, LegacyId, PersonalId, Sex, Snapshot, TemplateDigest};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// `n` distinct keys of `kind` chosen at random with `seed`: keys that exist
/// in `snapshot`, or with `missing` well-formed keys that do not.
pub fn sample_keys<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    kind: KeyKind,
    n: u64,
    missing: bool,
    seed: u64,
) -> Result<Vec<String>> {
    let mut rng = Rng::stream(seed, 0x6b657973);
    if missing {
        return Ok(missing_keys(snapshot, kind, n, &mut rng));
    }
    let len = snapshot.len() as u64;
    let not_enough = |available| Error::NotEnoughKeys {
        kind: kind.as_str(),
        wanted: n,
        available,
    };
    match kind {
        KeyKind::Id => {
            if n > len {
                return Err(not_enough(len));
            }
            Ok(distinct_indexes(&mut rng, len, n)
                .into_iter()
                .filter_map(|i| snapshot.record(i as u32))
                .map(|v| v.id().to_string())
                .collect())
        }
        KeyKind::Legacy => {
            let mut chosen = HashSet::new();
            let mut out = Vec::new();
            let mut tries = 0u64;
            while (out.len() as u64) < n && tries < 20 * n + 1000 && len > 0 {
                tries += 1;
                let i = rng.below(len) as u32;
                if let Some(l) = snapshot.record(i).and_then(|v| v.legacy_id()) {
                    if chosen.insert(i) {
                        out.push(l.to_string());
                    }
                }
            }
            if (out.len() as u64) < n {
                // Sparse: take them from a full scan instead.
                let all: Vec<String> = snapshot
                    .iter()
                    .filter_map(|v| v.legacy_id())
                    .map(|l| l.to_string())
                    .collect();
                if (all.len() as u64) < n {
                    return Err(not_enough(all.len() as u64));
                }
                return Ok(distinct_indexes(&mut rng, all.len() as u64, n)
                    .into_iter()
                    .map(|i| all[i as usize].clone())
                    .collect());
            }
            Ok(out)
        }
        KeyKind::Face | KeyKind::Fingerprint => {
            let modality = kind.modality().expect("a template-hash kind");
            // Reservoir sampling (Algorithm R) over the biometric index.
            let mut reservoir: Vec<TemplateDigest> = Vec::with_capacity(n.min(1 << 24) as usize);
            let mut seen = 0u64;
            for (m, digest, _) in snapshot.biometric_entries() {
                if m != modality {
                    continue;
                }
                if seen < n {
                    reservoir.push(digest);
                } else {
                    let j = rng.below(seen + 1);
                    if j < n {
                        reservoir[j as usize] = digest;
                    }
                }
                seen += 1;
            }
            if seen < n {
                return Err(not_enough(seen));
            }
            Ok(reservoir.into_iter().map(|d| d.to_string()).collect())
        }
    }
}

/// `n` distinct numbers below `len` (`n <= len`).
fn distinct_indexes(rng: &mut Rng, len: u64, n: u64) -> Vec<u64> {
    if n * 2 > len {
        let mut all: Vec<u64> = (0..len).collect();
        for i in 0..n as usize {
            let j = i + rng.below(len - i as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(n as usize);
        return all;
    }
    let mut chosen = HashSet::with_capacity(n as usize);
    let mut out = Vec::with_capacity(n as usize);
    while (out.len() as u64) < n {
        let i = rng.below(len);
        if chosen.insert(i) {
            out.push(i);
        }
    }
    out
}

fn missing_keys<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    kind: KeyKind,
    n: u64,
    rng: &mut Rng,
) -> Vec<String> {
    let mut chosen = HashSet::new();
    let mut out = Vec::with_capacity(n as usize);
    while (out.len() as u64) < n {
        let key = match kind {
            KeyKind::Id => {
                let place = rng.pick(&codes::PROVINCES).0;
                let sex = if rng.chance(0.5) {
                    Sex::Male
                } else {
                    Sex::Female
                };
                let year = rng.range(1925, 2024) as u16;
                let id = PersonalId::new(place, sex, year, rng.below(1_000_000) as u32)
                    .expect("a province code and a 19xx/20xx year");
                if snapshot.get(id).is_some() {
                    continue;
                }
                id.to_string()
            }
            KeyKind::Legacy => {
                let id = LegacyId::from_u32(rng.range(1, 999_999_999)).expect("in range");
                if snapshot.get_legacy(id).is_some() {
                    continue;
                }
                id.to_string()
            }
            KeyKind::Face | KeyKind::Fingerprint => {
                let modality = kind.modality().expect("a template-hash kind");
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
                bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
                let d = TemplateDigest(bytes);
                if snapshot.identify(modality, &d).is_some() {
                    continue;
                }
                d.to_string()
            }
        };
        if chosen.insert(key.clone()) {
            out.push(key);
        }
    }
    out
}
