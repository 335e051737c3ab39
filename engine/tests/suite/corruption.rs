//! Damaged files give clear errors.

use dancu_engine::*;

use crate::common::{build, citizen};

fn sample() -> (tempfile::TempDir, Vec<u8>) {
    let citizens: Vec<Citizen> = (0..500)
        .map(|n| citizen(n + 1, u64::from(n) * 40_503))
        .collect();
    let (dir, path) = build(&citizens);
    let bytes = std::fs::read(path).unwrap();
    (dir, bytes)
}

#[test]
fn flipping_any_section_byte_fails_its_checksum() {
    let (_dir, bytes) = sample();
    let info = Snapshot::open(&bytes[..]).unwrap().info();
    for section in &info.sections {
        if section.length == 0 {
            continue;
        }
        for at in [0, section.length / 2, section.length - 1] {
            let mut damaged = bytes.clone();
            damaged[(section.offset + at) as usize] ^= 0x40;
            let snap = Snapshot::open(damaged).expect("open does not read sections");
            match snap.verify_checksums() {
                Err(Error::ChecksumMismatch { section: name, .. }) => {
                    assert_eq!(name, section.name)
                }
                other => panic!("{}+{at}: {other:?}", section.name),
            }
        }
    }
}

#[test]
fn flipping_a_header_byte_is_refused_at_open() {
    let (_dir, bytes) = sample();
    for at in [0usize, 9, 20, 40, 100, 300, 351] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1;
        let err = Snapshot::open(damaged)
            .err()
            .unwrap_or_else(|| panic!("byte {at} accepted"));
        let msg = err.to_string();
        assert!(!msg.is_empty());
    }
}

#[test]
fn truncation_is_a_clear_error() {
    let (_dir, bytes) = sample();
    for len in [0, 4, 8, 100, 352, 4096, bytes.len() / 2, bytes.len() - 1] {
        let err = Snapshot::open(&bytes[..len])
            .err()
            .unwrap_or_else(|| panic!("{len} accepted"));
        match (len, &err) {
            (0..=7, Error::BadMagic { .. }) => {}
            (
                8..=351,
                Error::Truncated {
                    what: "the header", ..
                },
            ) => {}
            (352.., Error::Truncated { .. }) => {}
            _ => panic!("length {len}: {err:?}"),
        }
        assert!(err.to_string().contains("truncated") || len < 8, "{err}");
    }
}

#[test]
fn foreign_files_are_refused() {
    let err = Snapshot::open(b"PK\x03\x04 this is a zip file, not a snapshot".to_vec())
        .err()
        .unwrap();
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");
    let (_dir, mut bytes) = sample();
    bytes[12..16].copy_from_slice(&99u32.to_le_bytes()); // format version
    let err = Snapshot::open(bytes).err().unwrap();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 99, .. }),
        "{err}"
    );
}
