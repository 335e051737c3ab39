//! Any bytes given to `open` + `verify` + lookups give an error or an answer,
//! never a panic. The same property runs longer under `fuzz/`.

use dancu_engine::*;
use proptest::prelude::*;

use crate::common::{build, citizen};

/// Exercises every read path on whatever `open` accepts.
pub fn exercise(bytes: &[u8]) {
    let Ok(snap) = Snapshot::open(bytes) else {
        return;
    };
    let _ = snap.verify();
    let _ = snap.info();
    let ids: Vec<PersonalId> = (0..snap.len().min(64) as u32)
        .filter_map(|i| snap.record(i))
        .map(|v| v.id())
        .chain([PersonalId::parse("079089012345").unwrap()])
        .collect();
    let mut out = Vec::new();
    snap.get_many(&ids, &mut out);
    let mut json = Vec::new();
    for view in out
        .iter()
        .flatten()
        .chain(snap.iter().take(64).collect::<Vec<_>>().iter())
    {
        json.clear();
        write_citizen_json(view, FieldSet::ALL, &mut json);
        let _ = view.to_citizen();
        if let Some(l) = view.legacy_id() {
            let _ = snap.get_legacy(l);
        }
    }
    for (m, d, _) in snap.biometric_entries().take(64).collect::<Vec<_>>() {
        let _ = snap.identify(m, &d);
    }
    let _ = snap.get_legacy(LegacyId::from_u32(123_456_789).unwrap());
    let _ = snap.identify(Modality::Face, &TemplateDigest([7; 16]));
}

fn seed_file() -> Vec<u8> {
    let citizens: Vec<Citizen> = (0..40)
        .map(|n| citizen(n + 1, u64::from(n) * 0x9E37_79B9))
        .collect();
    let (_dir, path) = build(&citizens);
    std::fs::read(path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_snapshots_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate: bool,
    ) {
        thread_local!(static SEED: Vec<u8> = seed_file());
        let mut bytes = SEED.with(|s| s.clone());
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        // Re-seal the header so mutations reach the sections behind it.
        if let Ok((mut h, _)) = <format::Header as zerocopy::FromBytes>::read_from_prefix(&bytes) {
            let hb = zerocopy::IntoBytes::as_bytes(&h).to_vec();
            h.header_checksum = xxhash_rust::xxh3::xxh3_64(&hb[..hb.len() - 8]).into();
            bytes[..format::HEADER_SIZE].copy_from_slice(zerocopy::IntoBytes::as_bytes(&h));
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        exercise(&bytes);
    }
}
