//! Every read path of the engine on whatever bytes `open` accepts. Shared by
//! the property tests and the cargo-fuzz target (`fuzz/`), which includes
//! this file by path.

use dancu_engine::*;

/// Exercises every read path on whatever `open` accepts, both as the
/// engine's own bytes (text trusted once verified) and as a caller's.
pub fn exercise(bytes: &[u8]) {
    if let Ok(snap) = Snapshot::open_stable(bytes) {
        exercise_snapshot(&snap);
    }
    if let Ok(snap) = Snapshot::open(bytes) {
        exercise_snapshot(&snap);
    }
}

fn exercise_snapshot<D: AsRef<[u8]>>(snap: &Snapshot<D>) {
    let _ = snap.verify_checksums();
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
        let _ = snap.record(view.index());
        let _ = snap.get(view.id());
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

/// Rewrites the header checksum of `bytes` (if it has a header), so that
/// mutations behind the header reach the section checks and lookups instead
/// of stopping at `HeaderChecksum`.
pub fn reseal(bytes: &mut [u8]) {
    use zerocopy::{FromBytes, IntoBytes};
    if let Ok((mut h, _)) = format::Header::read_from_prefix(bytes) {
        let hb = h.as_bytes().to_vec();
        h.header_checksum = xxhash_rust::xxh3::xxh3_64(&hb[..hb.len() - 8]).into();
        bytes[..format::HEADER_SIZE].copy_from_slice(h.as_bytes());
    }
}
